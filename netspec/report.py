"""The check report: per-layer shapes, parameters and MACs, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the typed or the plain IR: both have these fields (netspec.ir_plain)
    from . import ir


DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
               "uint8": 1, "bool": 1}


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    shape: tuple
    params: int
    macs: int
    shared_with: str | None = None  # the weight owner when this row reuses a shared layer's weights


@dataclass(frozen=True)
class NetworkReport:
    name: str
    inputs: tuple[ir.Value, ...]
    targets: tuple[ir.Value, ...]
    outputs: tuple[tuple[str, ir.TensorType], ...]
    rows: tuple[LayerRow, ...]
    trainable: int
    non_trainable: int
    macs: int
    activation_bytes: int
    dynamic: bool  # some dimension is only known at run time (counted as 1)
    receptive: dict | None = None  # value name -> ReceptiveField, on convolutional paths
    training: TrainingMemory | None = None  # with --training
    show_slots: bool = False  # with --optimizer-state: each optimiser slot on its own line
    dims: tuple[tuple[str, int], ...] = ()  # run-time dimensions bound with --dim

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def param_bytes(self) -> int:
        return 4 * self.total

    def to_json(self) -> dict:
        out = self._base_json()
        if self.receptive:
            for layer in out["layers"]:
                rf = self.receptive.get(layer["name"])
                if rf is not None:
                    layer["receptive_field"] = rf.to_json()
        if self.dims:
            out["dims"] = dict(self.dims)
        if self.training is not None:
            out["training"] = self.training.to_json()
        return out

    def _base_json(self) -> dict:
        return {
            "name": self.name,
            "inputs": [{"name": v.name, "shape": list(v.type.shape), "dtype": v.type.dtype} for v in self.inputs],
            "outputs": [{"name": n, "shape": list(t.shape), "dtype": t.dtype} for n, t in self.outputs],
            "targets": [{"name": v.name, "shape": list(v.type.shape), "dtype": v.type.dtype} for v in self.targets],
            "layers": [{"name": r.name, "op": r.op, "shape": list(r.shape), "params": r.params, "macs": r.macs,
                        **({"shared_with": r.shared_with} if r.shared_with else {})} for r in self.rows],
            "params": {"total": self.total, "trainable": self.trainable, "non_trainable": self.non_trainable},
            "param_bytes": self.param_bytes,
            "macs": self.macs,
            "activation_bytes": self.activation_bytes,
            "dynamic": self.dynamic,
        }


@dataclass(frozen=True)
class Report:
    file: str
    networks: tuple[NetworkReport, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"file": self.file, "networks": [n.to_json() for n in self.networks]}

    def render(self) -> str:
        return "\n\n".join(render_network(n) for n in self.networks)


def _elements(t: ir.TensorType) -> int:
    return prod(d if isinstance(d, int) else 1 for d in t.shape)


def network_report(net: ir.Network, *, training_batch: int | None = None, dims: dict[str, int] | None = None,
                   show_slots: bool = False) -> NetworkReport:
    """Rows and totals for one network; shared layers' weights count once.

    ``dims`` binds run-time dimensions (their names must be the network's);
    ``training_batch`` adds the training memory (:func:`training_memory`).
    """
    import dataclasses

    if dims:
        net = bind_dims(net, dims)
    rep = _network_report(net)
    return dataclasses.replace(
        rep, receptive=receptive_fields(net) or None, dims=tuple(sorted((dims or {}).items())),
        training=training_memory(net, training_batch) if training_batch else None, show_slots=show_slots)


def _network_report(net: ir.Network) -> NetworkReport:
    rows = []
    owners_seen: set[str] = set()
    act = 0
    dynamic = any(not v.type.is_static for v in net.inputs)
    for node in net.nodes:
        count = sum(p.size for p in node.params)
        shared_with = None
        if node.layer in owners_seen:
            count, shared_with = 0, node.layer
        elif node.params:
            owners_seen.add(node.layer)
            if node.shared:
                shared_with = node.layer
        rows.append(LayerRow(node.name, node.op, node.type.shape, count, node.macs, shared_with))
        act += _elements(node.type) * DTYPE_BYTES.get(node.type.dtype, 4)
        dynamic = dynamic or not node.type.is_static
    trainable, non = net.param_counts()
    outputs = tuple((name, net.type_of(v)) for name, v in zip(net.output_names, net.outputs))
    return NetworkReport(net.name, net.inputs, net.targets, outputs, tuple(rows), trainable, non,
                         sum(n.macs for n in net.nodes), act, dynamic)


def build_report(program: ir.Program, *, training_batch: int | None = None, dims: dict[str, int] | None = None,
                 show_slots: bool = False) -> Report:
    """The report for every network of a checked program (options: see :func:`network_report`).

    Each network binds the ``dims`` it uses; a name no network uses raises ValueError.
    """
    dims = dict(dims or {})
    used = {d for n in program.networks for d in dim_names(n)}
    for name, size in dims.items():
        if name not in used:
            bind_dims(program.networks[0], {name: size})  # raises the ValueError that names the known ones
    return Report(program.file, tuple(
        network_report(n, training_batch=training_batch, show_slots=show_slots,
                       dims={k: v for k, v in dims.items() if k in dim_names(n)}) for n in program.networks))


def human_bytes(n: int) -> str:
    """Bytes in B, KiB, MiB or GiB (TiB and beyond for the limits' messages); never overflows."""
    from .limits import human_bytes as text

    return text(n)


def human_count(n: int) -> str:
    """``1.23G``, ``4.56M``, ``7.89K`` or the number; integer arithmetic, so no float overflow."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            hundredths = (n * 100 + size // 2) // size
            return f"{hundredths // 100:,}.{hundredths % 100:02d}{unit}"
    return str(n)


def shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def render_network(rep: NetworkReport) -> str:
    """A plain-text table: layer, op, output shape, params, MACs; then the totals."""
    header = ("layer", "op", "output shape", "params", "MACs")
    rows = [(v.name, "input", str(v.type), "", "") for v in rep.inputs]
    for r in rep.rows:
        params = f"{r.params:,}" if not r.shared_with else (f"(shared: {r.shared_with})" if r.params == 0
                                                            else f"{r.params:,}")
        rows.append((r.name, r.op, shape_text(r.shape), params, f"{r.macs:,}" if r.macs else ""))
    header, rows = _with_receptive_fields(rep, header, rows)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {3, 4}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    out = [f"network {rep.name}", rule, line(header), rule, *(line(r).rstrip() for r in rows), rule]
    outs = ", ".join(f"{n} {shape_text(t.shape)}" for n, t in rep.outputs)
    note = " (run-time dimensions counted as 1)" if rep.dynamic else ""
    out += [
        f"outputs:              {outs}",
        f"total params:         {rep.total:,}",
        f"trainable params:     {rep.trainable:,}",
        f"non-trainable params: {rep.non_trainable:,}",
        f"parameter memory:     {human_bytes(rep.param_bytes)} (float32)",
        f"MACs per sample:      {rep.macs:,}" + (f" ({human_count(rep.macs)})" if rep.macs >= 1000 else "") + note,
        f"activation memory:    {human_bytes(rep.activation_bytes)} per sample{note}",
    ]
    out += _extra_lines(rep)
    return "\n".join(out)


def _with_receptive_fields(rep: NetworkReport, header: tuple, rows: list) -> tuple[tuple, list]:
    """The table with a receptive-field column (size/jump/start) when the network has convolutional paths."""
    if not rep.receptive:
        return header, rows
    names = [v.name for v in rep.inputs] + [r.name for r in rep.rows]
    cells = [rep.receptive[n].text() if n in rep.receptive else "" for n in names]
    return (*header, "RF size/jump/start"), [(*row, cell) for row, cell in zip(rows, cells)]


def _extra_lines(rep: NetworkReport) -> list[str]:
    out = []
    if rep.dims:
        out.append("run-time dimensions:  " + ", ".join(f"{k}={v}" for k, v in rep.dims))
    if rep.training is not None:
        out += ["", *rep.training.render(rep.show_slots)]
    return out


# ---------------------------------------------------------------------------------------------
# Run-time dimensions bound (--dim T=128), receptive fields, and training memory (--training).
# The arithmetic lives in small pure functions; docs/language.md ("The report") and
# docs/graph.md explain the model and its measured error.


def eval_dim(d, dims: dict[str, int]):
    """A dimension with names bound: an int, a name (``T``) or a formula of names (``(T-3)//2+1``).

    Returns an int when every name is bound, else ``d`` unchanged.
    """
    if isinstance(d, int):
        return d
    import ast
    import math

    try:
        tree = ast.parse(str(d), mode="eval")
    except SyntaxError:
        return d

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, int):
            return n.value
        if isinstance(n, ast.Name):
            if n.id not in dims:
                raise LookupError(n.id)
            return dims[n.id]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.FloorDiv: lambda: a // b, ast.Div: lambda: a / b, ast.Mod: lambda: a % b}
            return ops[type(n.op)]()
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("ceil", "floor") \
                and len(n.args) == 1:
            return getattr(math, n.func.id)(ev(n.args[0]))
        raise LookupError(ast.dump(n))

    try:
        value = ev(tree)
    except (LookupError, KeyError, ZeroDivisionError):
        return d
    return int(value)


def dim_names(net: ir.Network) -> list[str]:
    """The run-time dimension names of a network's inputs and targets, in order of appearance."""
    out: list[str] = []
    for v in (*net.inputs, *net.targets):
        for d in v.type.shape:
            if isinstance(d, str) and d not in out:
                out.append(d)
    return out


def bind_dims(net: ir.Network, dims: dict[str, int]) -> ir.Network:
    """The network with run-time dimensions bound: every shape evaluated and every MAC count redone.

    Raises ValueError for a name the network does not use or a size below 1.
    """
    from .ops.registry import OPS

    names = dim_names(net)
    for name, size in dims.items():
        if name not in names:
            known = ", ".join(names) if names else "none: every dimension is static"
            raise ValueError(f"--dim {name}={size}: {net.name} has no run-time dimension '{name}' "
                             f"(its run-time dimensions: {known})")
        if size < 1:
            raise ValueError(f"--dim {name}={size}: a size must be at least 1")
    if not dims:
        return net

    def bound(t: ir.TensorType) -> ir.TensorType:
        return t.model_copy(update={"shape": tuple(eval_dim(d, dims) for d in t.shape)})

    types: dict[str, ir.TensorType] = {}
    inputs = tuple(v.model_copy(update={"type": bound(v.type)}) for v in net.inputs)
    targets = tuple(v.model_copy(update={"type": bound(v.type)}) for v in net.targets)
    for v in (*inputs, *targets):
        types[v.name] = v.type
    nodes = []
    for n in net.nodes:
        out = bound(n.type)
        ins = [types[i] for i in n.inputs]
        macs = n.macs
        if out.is_static and all(t.is_static for t in ins) and n.op in OPS:
            try:
                macs = OPS[n.op].macs(n.attrs, ins, out)
            except Exception:  # an op whose count cannot be redone keeps the checker's
                macs = n.macs
        node = n.model_copy(update={"type": out, "macs": macs})
        types[n.name] = out
        nodes.append(node)
    return net.model_copy(update={"inputs": inputs, "targets": targets, "nodes": tuple(nodes)})


# ---- receptive fields ----------------------------------------------------------------------

@dataclass(frozen=True)
class ReceptiveField:
    """Per spatial axis: ``size`` (input pixels seen by one unit), ``jump`` (input pixels between
    neighbouring units) and ``start`` (input coordinate of the centre of the first unit's field;
    pixel i has centre i, so padding makes it negative). As torchscan and Dang Ha The Hien's
    "guide to receptive field arithmetic" define them."""

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[float, ...]

    def to_json(self) -> dict:
        return {"size": list(self.size), "jump": list(self.jump), "start": [_num(s) for s in self.start]}

    def text(self) -> str:
        def axes(values):
            values = [_num(v) for v in values]
            return str(values[0]) if len(set(values)) == 1 else "×".join(str(v) for v in values)

        return f"{axes(self.size)}/{axes(self.jump)}/{axes(self.start)}"


def _num(v):
    return int(v) if float(v).is_integer() else float(v)


def rf_input(axes: int) -> ReceptiveField:
    """A network input: each unit sees itself."""
    return ReceptiveField((1,) * axes, (1,) * axes, (0.0,) * axes)


def rf_window(rf: ReceptiveField, kernel, stride, pad_begin, dilation) -> ReceptiveField:
    """After a window (convolution or pooling) per axis: k_eff = d (k - 1) + 1,
    size' = size + (k_eff - 1) jump, jump' = jump s, start' = start + ((k_eff - 1) / 2 - pad) jump."""
    size, jump, start = [], [], []
    for r, j, s0, k, s, p, d in zip(rf.size, rf.jump, rf.start, kernel, stride, pad_begin, dilation):
        k_eff = d * (k - 1) + 1
        size.append(r + (k_eff - 1) * j)
        jump.append(j * s)
        start.append(s0 + ((k_eff - 1) / 2 - p) * j)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def rf_pad(rf: ReceptiveField, pad_begin) -> ReceptiveField:
    """After zero padding: the first unit lies ``pad`` units before the old first one."""
    return ReceptiveField(rf.size, rf.jump, tuple(s - p * j for s, p, j in zip(rf.start, pad_begin, rf.jump)))


def rf_merge(fields: list[ReceptiveField]) -> ReceptiveField:
    """A merge of aligned branches (add, concat on channels): the widest field per axis."""
    best = max(fields, key=lambda f: f.size)
    size = tuple(max(f.size[i] for f in fields) for i in range(len(best.size)))
    start = tuple(min(f.start[i] for f in fields) for i in range(len(best.size)))
    return ReceptiveField(size, best.jump, start)


_RF_PASS = ("activation", "normalization", "regularization")


def _pads(padding) -> tuple[int, ...]:
    return tuple(p[0] if isinstance(p, (tuple, list)) else p for p in padding)


def receptive_fields(net: ir.Network) -> dict[str, ReceptiveField]:
    """The receptive field of every value on a convolutional path (channels-first [C, *spatial]).

    Windows (convolutions, pooling) grow it; activations, normalisations,
    dropout and merges of aligned branches keep it; anything else (dense,
    flatten, global pooling, transposed convolution, upsampling, recurrent
    layers) ends the path. Empty when the network has no window op.
    """
    from .ops.registry import OPS

    if not any("kernel" in n.attrs or "pool" in n.attrs for n in net.nodes):
        return {}
    out: dict[str, ReceptiveField] = {}
    for v in net.inputs:
        if v.type.rank >= 2 and not v.type.is_integer:
            out[v.name] = rf_input(v.type.rank - 1)
    for n in net.nodes:
        ins = [out.get(i) for i in n.inputs]
        if not ins or any(f is None for f in ins):
            continue
        a = n.attrs
        window = a.get("kernel") or a.get("pool")
        op = OPS.get(n.op)
        category = op.category if op else ""
        family = op.family if op else ""
        axes = len(ins[0].size)
        if n.type.rank - 1 != axes:
            continue
        if window is not None and family != "conv_transpose" and "output_padding" not in a:
            stride = a.get("stride") or window
            out[n.name] = rf_window(ins[0], window, stride, _pads(a.get("padding", ((0, 0),) * axes)),
                                    a.get("dilation") or (1,) * axes)
        elif family == "zeropad":
            out[n.name] = rf_pad(ins[0], _pads(a.get("padding", ((0, 0),) * axes)))
        elif category == "merge" and len({f.jump for f in ins}) == 1 and all(len(f.size) == axes for f in ins):
            out[n.name] = rf_merge(ins)
        elif category in _RF_PASS or n.op in ("relu", "dropout"):
            out[n.name] = ins[0]
    return out


# ---- training memory -----------------------------------------------------------------------

#: PyTorch's per-weight state tensors for each optimiser of the spec language.
def optimizer_slots(opt: ir.Optimizer | None) -> list[str]:
    """The state tensors the optimiser keeps per weight tensor (each the weight's size), by PyTorch's names."""
    if opt is None:
        return []
    a = opt.attrs
    if opt.name == "sgd":
        return ["momentum_buffer"] if a.get("momentum", 0.0) else []
    if opt.name in ("adam", "adamw"):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if a.get("amsgrad") else [])
    if opt.name == "nadam":
        return ["exp_avg", "exp_avg_sq"]
    if opt.name == "rmsprop":
        return (["square_avg"] + (["momentum_buffer"] if a.get("momentum", 0.0) else [])
                + (["grad_avg"] if a.get("centered") else []))
    if opt.name == "adagrad":
        return ["sum"]
    if opt.name == "adadelta":
        return ["square_avg", "acc_delta"]
    return []


#: What autograd keeps of each op for the backward pass (PyTorch, as the generated code calls it):
#: "input": the op's input; "output": its output; "pre": an extra tensor the size of the output
#: (an activation applied inside the layer that needs its argument); numbers: bytes per output element.
_SAVES_OUTPUT_ACTS = ("relu", "relu6", "sigmoid", "tanh", "softmax", "elu", "hard_sigmoid")
_VIEW_OPS = ("flatten", "reshape")


def _activation_saves(name: str | None) -> str | None:
    if not name or name == "linear":
        return None
    return "output" if name in _SAVES_OUTPUT_ACTS else "pre"


def saved_for_backward(node: ir.Node) -> tuple[set[str], int]:
    """(which of "input" / "output" this op keeps for backward, extra bytes per sample it keeps).

    A table of PyTorch's derivative formulas for the ops netspec emits; see docs/graph.md.
    """
    from .ops.registry import OPS

    op = node.op
    spec = OPS.get(op)
    category, family, kind = (spec.category, spec.family, spec.kind) if spec else ("", "", "")
    out_elems = _elements(node.type)
    keep: set[str] = set()
    extra = 0
    act = node.attrs.get("activation")
    act_name = act.get("name") if isinstance(act, dict) else None
    if category == "activation":
        keep.add("output" if op in _SAVES_OUTPUT_ACTS else "input")
    elif op in _VIEW_OPS or category == "merge" and op in ("add", "subtract", "concat", "average", "maximum",
                                                              "minimum"):
        if op in ("maximum", "minimum"):
            keep.add("input")
    elif category == "merge":  # multiply, dot: each input is the other's gradient factor
        keep.add("input")
    elif family == "pool" and kind == "max":
        keep.add("input")
        extra += out_elems * 8  # int64 argmax indices
    elif family == "global_pool" and kind == "max":
        keep.add("input")
        extra += out_elems * 8
    elif family == "global_pool":
        pass  # torch.mean keeps only sizes
    elif op == "dropout":
        extra += out_elems * 1  # bool mask
    elif op in ("lstm", "gru", "simple_rnn", "bidirectional"):
        keep.add("input")
        keep.add("output")
        layer = node.attrs.get("layer") if op == "bidirectional" else None
        kind = layer.get("op") if isinstance(layer, dict) else op
        gates = {"lstm": 6, "gru": 4, "simple_rnn": 1}.get(kind, 4)  # per step: gates, cell, hidden
        units = node.type.shape[-1] if node.type.shape and isinstance(node.type.shape[-1], int) else 0
        steps = prod(d if isinstance(d, int) else 1 for d in node.type.shape[:-1]) or 1
        if op == "bidirectional" or not node.attrs.get("return_sequences", True):
            steps = max(steps, 1)
        extra += gates * units * steps * 4
    elif family in ("upsample", "zeropad") or op == "permute":
        pass
    else:  # layers with weights, pooling by average, normalisations: their input
        keep.add("input")
    if act_name and category != "activation":
        how = _activation_saves(act_name)
        if how == "output":
            keep.add("output")
        elif how == "pre":
            extra += out_elems * DTYPE_BYTES.get(node.type.dtype, 4)
    return keep, extra


@dataclass(frozen=True)
class TrainingMemory:
    """Memory of one training step (``netspec check --training``), in bytes; see :func:`training_memory`."""

    batch: int
    dtype: str
    optimizer: str | None
    slots: tuple[str, ...]
    weights: int  # every weight tensor, non-trainable ones included
    gradients: int  # one per trainable weight
    optimizer_state: int  # slots x trainable weights
    inputs_per_sample: int  # inputs and targets
    activations_per_sample: int  # kept for backward
    workspace_per_sample: int  # the gradient flowing back through the largest activation
    per_layer: tuple[tuple[str, int], ...]  # activation bytes kept per sample, by the node that holds them
    assumptions: tuple[str, ...]

    @property
    def per_sample(self) -> int:
        return self.inputs_per_sample + self.activations_per_sample + self.workspace_per_sample

    @property
    def fixed(self) -> int:
        return self.weights + self.gradients + self.optimizer_state

    @property
    def peak(self) -> int:
        return self.fixed + self.batch * self.per_sample

    def to_json(self) -> dict:
        return {
            "batch": self.batch, "dtype": self.dtype, "optimizer": self.optimizer, "optimizer_slots": list(self.slots),
            "weights": self.weights, "gradients": self.gradients, "optimizer_state": self.optimizer_state,
            "per_sample": {"inputs": self.inputs_per_sample, "activations": self.activations_per_sample,
                           "workspace": self.workspace_per_sample, "total": self.per_sample},
            "batch_bytes": {"inputs": self.batch * self.inputs_per_sample,
                            "activations": self.batch * self.activations_per_sample,
                            "workspace": self.batch * self.workspace_per_sample},
            "peak": self.peak,
            "assumptions": list(self.assumptions),
        }

    def render(self, slots_detail: bool = False) -> list[str]:
        b = self.batch
        opt = f"{self.optimizer}: {len(self.slots)} slot{'s' if len(self.slots) != 1 else ''}" if self.optimizer \
            else "no optimizer in the spec"
        rows = [
            ("weights", "", human_bytes(self.weights)),
            ("gradients", "", human_bytes(self.gradients)),
            (f"optimizer state ({opt})", "", human_bytes(self.optimizer_state)),
        ]
        if slots_detail and self.slots:
            each = self.optimizer_state // len(self.slots)
            rows += [(f"  {s}", "", human_bytes(each)) for s in self.slots]
        rows += [
            ("inputs and targets", human_bytes(self.inputs_per_sample), human_bytes(b * self.inputs_per_sample)),
            ("activations kept for backward", human_bytes(self.activations_per_sample),
             human_bytes(b * self.activations_per_sample)),
            ("backward workspace", human_bytes(self.workspace_per_sample), human_bytes(b * self.workspace_per_sample)),
        ]
        w0 = max(len(r[0]) for r in rows)
        head = f"{'training memory (' + self.dtype + ')':<{w0}}  {'per sample':>12}  {'batch ' + str(b):>12}"
        out = [head, "-" * len(head)]
        out += [f"{n:<{w0}}  {s:>12}  {t:>12}" for n, s, t in rows]
        out.append("-" * len(head))
        out.append(f"{'peak estimate':<{w0}}  {'':>12}  {human_bytes(self.peak):>12}")
        out += [f"  assumes {a}" for a in self.assumptions]
        return out


def training_memory(net: ir.Network, batch: int = 1) -> TrainingMemory:
    """Memory of one training step in PyTorch on the spec's float32 model, at its peak.

    peak = weights + gradients + optimiser state
           + batch x (inputs and targets + activations kept for backward + backward workspace)

    Activations kept: every distinct tensor autograd saves (:func:`saved_for_backward`),
    counted once however many ops keep it (views share their input's memory), plus
    what the loss keeps (one tensor the size of each output). Workspace: the
    gradient flowing back through the largest activation (1 x the largest node
    output; calibrated against measured peaks, see docs/graph.md). The peak falls at the start of the backward
    pass, when every kept activation is alive and gradients are being allocated;
    gradients are counted whole (an upper bound of a few percent).
    """
    slots = optimizer_slots(net.optimizer)
    trainable, non = net.param_counts()
    width = 4  # netspec models compute in float32
    producer_of: dict[str, str] = {}  # a view's value -> the value whose memory it shares
    sizes: dict[str, int] = {}
    for v in (*net.inputs, *net.targets):
        sizes[v.name] = _elements(v.type) * DTYPE_BYTES.get(v.type.dtype, 4)
    kept: dict[str, int] = {}  # value whose memory stays alive -> bytes per sample
    holder: dict[str, str] = {}
    extra_by: dict[str, int] = {}

    def root(name: str) -> str:
        while name in producer_of:
            name = producer_of[name]
        return name

    for n in net.nodes:
        sizes[n.name] = _elements(n.type) * DTYPE_BYTES.get(n.type.dtype, 4)
        if n.op in _VIEW_OPS and n.inputs:
            producer_of[n.name] = n.inputs[0]
        keep, extra = saved_for_backward(n)
        if "input" in keep:
            for i in n.inputs:
                r = root(i)
                kept[r] = sizes[r]
                holder.setdefault(r, n.name)
        if "output" in keep:
            r = root(n.name)
            kept[r] = sizes[r]
            holder.setdefault(r, n.name)
        if extra:
            extra_by[n.name] = extra_by.get(n.name, 0) + extra
    network_inputs = {v.name for v in (*net.inputs, *net.targets)}
    loss_keeps = sum(sizes.get(root(v), 0) for v in net.outputs) if net.loss else 0
    activations = sum(b for name, b in kept.items() if name not in network_inputs) + sum(extra_by.values())
    activations += loss_keeps
    per_layer: dict[str, int] = {}
    for name, b in kept.items():
        if name not in network_inputs:
            per_layer[name] = per_layer.get(name, 0) + b
    for name, b in extra_by.items():
        per_layer[name] = per_layer.get(name, 0) + b
    inputs = sum(sizes[v.name] for v in (*net.inputs, *net.targets))
    largest = max((sizes[n.name] for n in net.nodes), default=0)
    dynamic = not all(v.type.is_static for v in (*net.inputs, *net.targets))
    assumptions = [
        "PyTorch's autograd running the generated model in float32 (weights, gradients and state 4 bytes each)",
        "the peak at the start of the backward pass: every kept activation alive, gradients allocated whole",
        "optimiser state exists (after the first step); "
        + (f"{net.optimizer.name} keeps {', '.join(slots)} per weight" if slots else "none for this optimiser"),
        "no allocator caching, fragmentation or framework overhead (interpreter, libraries)",
    ]
    if dynamic:
        assumptions.append("run-time dimensions not bound by --dim counted as 1")
    return TrainingMemory(
        batch=batch, dtype="float32", optimizer=net.optimizer.name if net.optimizer else None, slots=tuple(slots),
        weights=(trainable + non) * width, gradients=trainable * width,
        optimizer_state=len(slots) * trainable * width, inputs_per_sample=inputs,
        activations_per_sample=activations, workspace_per_sample=largest,
        per_layer=tuple(per_layer.items()), assumptions=tuple(assumptions))
