"""The check report: per-layer shapes, parameters and MACs, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

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

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def param_bytes(self) -> int:
        return 4 * self.total

    def to_json(self) -> dict:
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


def network_report(net: ir.Network) -> NetworkReport:
    """Rows and totals for one network; shared layers' weights count once."""
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


def build_report(program: ir.Program) -> Report:
    """The report for every network of a checked program."""
    return Report(program.file, tuple(network_report(n) for n in program.networks))


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
    return "\n".join(out)
