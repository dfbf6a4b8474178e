"""The PyTorch backend: readable ``nn.Module`` source from the IR, and canonical weights in and out.

``generate(network)`` writes one self-contained Python file (imports only
``math`` and ``torch``): the network's ``nn.Module`` class and, when the spec
has a training setup, ``compute_loss``, ``regularization_loss``,
``make_optimizer`` and ``train_step``. ``build(network, weights)`` executes
that very source (there is no second builder) and loads canonical weights.
docs/torch.md describes the generated code and every conversion.

Generation needs neither torch nor numpy; ``build``, ``load_canonical`` and
``export_canonical`` import them.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from math import prod
from typing import Any

from .. import ir
from ..diagnostics import Diagnostic, SpecError
from .base import Emitter, identifier, literal

LINE = 88  # ruff's default line length: the generated file passes `ruff format --check` as is

#: Names the generated module defines or imports; spec names never shadow them.
HELPERS = ("_init", "_avg_pool", "_final_state", "_merge_directions", "_dot", "_BatchNorm1d", "_BatchNorm2d",
           "_BatchNorm3d", "_binary_crossentropy", "_categorical_crossentropy",
           "_sparse_categorical_crossentropy", "_hinge", "_kl_divergence", "_cosine_similarity", "_kl_normal",
           "_decoupled_weight_decay", "_Optimizer", "_RMSprop", "_Adagrad", "_Adam")
PUBLIC = ("compute_loss", "regularization_loss", "make_optimizer", "train_step")
GLOBALS = frozenset({"math", "torch", "nn", "F", "self", *HELPERS, *PUBLIC})

#: Attributes of ``nn.Module`` a layer attribute must not replace (a test checks the list is complete).
MODULE_ATTRS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad", "reset_parameters",
})

_AMBIGUOUS = {"l", "O", "I"}  # E741


def _ident(name: str, taken: set[str]) -> str:
    """identifier() that also avoids the module's globals and E741's ambiguous names."""
    out = identifier(name)
    if out in GLOBALS or out in _AMBIGUOUS:
        out += "_"
    return identifier(out, taken)


def _lit(value: Any) -> str:
    """literal() in ruff's style: double-quoted strings."""
    if isinstance(value, str):
        text = literal(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_lit(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return literal(value)


# A tiny expression tree, formatted the way `ruff format` formats it ------------------------------


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple = ()
    kwargs: tuple = ()  # (name, expr) pairs


@dataclass(frozen=True)
class Tup:
    items: tuple
    explode: bool = False  # always one item per line (a magic trailing comma)
    bare: bool = False  # no parentheses when on one line (``return a, b``)


@dataclass(frozen=True)
class Bin:
    """``a + b - c`` (operands are atoms or calls); ``tail`` (``/ 2``) parenthesises the sum."""

    operands: tuple
    ops: tuple
    tail: str = ""


def flat(e) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, Call):
        parts = [flat(a) for a in e.args] + [f"{k}={flat(v)}" for k, v in e.kwargs]
        return f"{e.func}({', '.join(parts)})"
    if isinstance(e, Tup):
        inner = ", ".join(flat(a) for a in e.items)
        if e.bare and len(e.items) > 1:
            return inner
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, Bin):
        text = flat(e.operands[0]) + "".join(f" {op} {flat(x)}" for op, x in zip(e.ops, e.operands[1:]))
        return f"({text}) {e.tail}" if e.tail else text
    raise TypeError(type(e))


def fmt(prefix: str, e, suffix: str = "", indent: int = 0) -> list[str]:
    """Lines for ``prefix + e + suffix`` at ``indent``: one line if it fits, else split like ruff.

    Calls and tuples split one item per line with a magic trailing comma (which
    ruff keeps); sums split inside parentheses, one operator per line.
    """
    pad = " " * indent
    line = pad + prefix + flat(e) + suffix
    if (len(line) <= LINE and not (isinstance(e, Tup) and e.explode)) or isinstance(e, str):
        return [line]
    if isinstance(e, (Call, Tup)):
        items = [("", a) for a in e.args] if isinstance(e, Call) else [("", a) for a in e.items]
        if isinstance(e, Call):
            items += [(f"{k}=", v) for k, v in e.kwargs]
        if not items:
            return [line]
        head = pad + prefix + (e.func if isinstance(e, Call) else "") + "("
        if len(head) > LINE and prefix.endswith(" = "):  # ruff parenthesises the right-hand side
            return [pad + prefix + "(", *fmt("", e, "", indent + 4), pad + ")" + suffix]
        body = " " * (indent + 4) + ", ".join(key + flat(item) for key, item in items)
        if len(body) <= LINE and not (isinstance(e, Tup) and (e.explode or e.bare or len(items) == 1)):
            return [head, body, pad + ")" + suffix]
        out = [head]
        for key, item in items:
            out += fmt(key, item, ",", indent + 4)
        out.append(pad + ")" + suffix)
        return out
    if isinstance(e, Bin):
        inner = " " * (indent + 4)
        body = flat(Bin(e.operands, e.ops))
        out = [pad + prefix + "("]
        if len(inner + body) <= LINE:
            out.append(inner + body)
        else:
            out += fmt("", e.operands[0], "", indent + 4)
            for op, x in zip(e.ops, e.operands[1:]):
                out += fmt(f"{op} ", x, "", indent + 4)
        out.append(pad + ")" + (f" {e.tail}" if e.tail else "") + suffix)
        return out
    raise TypeError(type(e))


def docstring(text: str, indent: int) -> list[str]:
    pad = " " * indent
    one = f'{pad}"""{text}"""'
    if len(one) <= LINE:
        return [one]
    lines = textwrap.wrap(text, LINE - indent - 3)
    return [f'{pad}"""{lines[0]}', *(pad + x for x in lines[1:]), f'{pad}"""']


# The plan: which torch tensor holds which canonical weight ------------------------------------


@dataclass
class LayerPlan:
    """One weight owner: its attribute, constructor, and canonical-param -> tensor path (under the attribute)."""

    name: str
    attr: str
    ctor: Any
    params: dict[str, str] = field(default_factory=dict)
    #: frozen tensors the canonical form lacks: path -> (fill value, elements); torch's second RNN bias,
    #: a BatchNorm/LayerNorm gamma or beta the spec switches off
    fixed: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: canonical param -> a fixed tensor added to its own on export (the second RNN bias)
    plus: dict[str, str] = field(default_factory=dict)


def _one(values: tuple) -> Any:
    """An int when every axis has the same value, else the tuple (torch accepts both)."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def _pad_arg(pairs) -> tuple:
    """F.pad's flat tuple: the last axis first."""
    return tuple(v for b, e in reversed(pairs) for v in (b, e))


def _sym(pairs) -> bool:
    return all(b == e for b, e in pairs)


def _dim(axis: int) -> int:
    """A per-sample axis as a torch dim (negative axes count from the end either way)."""
    return axis + 1 if axis >= 0 else axis


_ACTS = {
    "relu": "F.relu", "relu6": "F.relu6", "sigmoid": "torch.sigmoid", "tanh": "torch.tanh", "swish": "F.silu",
    "softplus": "F.softplus", "hard_sigmoid": "F.hardsigmoid",
}


class TorchEmitter(Emitter):
    backend = "torch"

    def __init__(self, network: ir.Network):
        super().__init__(network)
        self.attr_taken: set[str] = set(MODULE_ATTRS) | GLOBALS
        self.layers: dict[str, LayerPlan] = {}
        self.helpers: set[str] = set()

    # layers ------------------------------------------------------------------------------------------
    def layer(self, node: ir.Node, ctor, params: dict[str, str], fixed=None, plus=None) -> str:
        """``self.<attr>`` for the node's weight owner, declared on first use."""
        plan = self.layers.get(node.layer)
        if plan is None:
            plan = LayerPlan(node.layer, _ident(node.layer, self.attr_taken), ctor, params, fixed or {}, plus or {})
            self.layers[node.layer] = plan
        return f"self.{plan.attr}"

    def activation(self, node: ir.Node, expr, act: dict | None):
        """``expr`` followed by a layer's ``activation=`` attribute."""
        if not act or act["name"] == "linear":
            return expr
        out = self.act_call(act, expr)
        if out is None:
            self.fail(node, f"activation '{act['name']}'")
            return expr
        return out

    def act_call(self, act: dict, x):
        name = act["name"]
        if name in _ACTS:
            return Call(_ACTS[name], (x,))
        if name == "linear":
            return x
        if name == "softmax":
            return Call("F.softmax", (x,), (("dim", _lit(_dim(act["axis"]))),))
        if name == "leaky_relu":
            return Call("F.leaky_relu", (x, _lit(act["alpha"])))
        if name == "elu":
            return Call("F.elu", (x, _lit(act["alpha"])) if act["alpha"] != 1.0 else (x,))
        if name == "gelu":
            return Call("F.gelu", (x,), (("approximate", '"tanh"'),) if act["approximate"] else ())
        return None  # caller reports


def _emit_activation(self: TorchEmitter, node, x):
    out = self.act_call({"name": node.op, **node.attrs}, x[0])
    if out is None:
        self.fail(node, f"activation '{node.op}'")
        return x[0]
    return out


def _emit_dense(self: TorchEmitter, node, x):
    a = node.attrs
    fin = self.network.type_of(node.inputs[0]).shape[-1]
    kw = () if a["use_bias"] else (("bias", "False"),)
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    mod = self.layer(node, Call("nn.Linear", (_lit(fin), _lit(a["units"])), kw), params)
    return self.activation(node, Call(mod, (x[0],)), a["activation"])


def _conv_common(a):
    kw = []
    if set(a["stride"]) != {1}:
        kw.append(("stride", _lit(_one(a["stride"]))))
    return kw


def _emit_conv(self: TorchEmitter, node, x):
    a, r = node.attrs, len(node.attrs["kernel"])
    c = self.network.type_of(node.inputs[0]).shape[0]
    kw = _conv_common(a)
    pads = a["padding"]
    xin = x[0]
    if _sym(pads):
        if any(b for b, _ in pads):
            kw.append(("padding", _lit(_one(tuple(b for b, _ in pads)))))
    else:
        xin = Call("F.pad", (xin, _lit(_pad_arg(pads))))
    if set(a["dilation"]) != {1}:
        kw.append(("dilation", _lit(_one(a["dilation"]))))
    if a["groups"] != 1:
        kw.append(("groups", _lit(a["groups"])))
    if not a["use_bias"]:
        kw.append(("bias", "False"))
    ctor = Call(f"nn.Conv{r}d", (_lit(c), _lit(a["filters"]), _lit(_one(a["kernel"]))), tuple(kw))
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    mod = self.layer(node, ctor, params)
    return self.activation(node, Call(mod, (xin,)), a["activation"])


def _emit_conv_transpose(self: TorchEmitter, node, x):
    a, r = node.attrs, len(node.attrs["kernel"])
    c = self.network.type_of(node.inputs[0]).shape[0]
    kw = _conv_common(a)
    crops = a["padding"]
    common = tuple(min(b, e) for b, e in crops)
    rest = tuple((b - m, e - m) for (b, e), m in zip(crops, common))
    if any(common):
        kw.append(("padding", _lit(_one(common))))
    if any(a["output_padding"]):
        kw.append(("output_padding", _lit(_one(a["output_padding"]))))
    if a["groups"] != 1:
        kw.append(("groups", _lit(a["groups"])))
    if not a["use_bias"]:
        kw.append(("bias", "False"))
    if set(a["dilation"]) != {1}:
        kw.append(("dilation", _lit(_one(a["dilation"]))))
    ctor = Call(f"nn.ConvTranspose{r}d", (_lit(c), _lit(a["filters"]), _lit(_one(a["kernel"]))), tuple(kw))
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    out = Call(self.layer(node, ctor, params), (x[0],))
    if any(b or e for b, e in rest):  # asymmetric crop: F.pad with negative amounts removes values
        out = Call("F.pad", (out, _lit(tuple(-v for v in _pad_arg(rest)))))
    return self.activation(node, out, a["activation"])


def _depthwise_ctor(a, c, cm, bias: bool, pad_kw):
    kw = _conv_common(a) + pad_kw
    if set(a["dilation"]) != {1}:
        kw.append(("dilation", _lit(_one(a["dilation"]))))
    kw.append(("groups", _lit(c)))
    if not bias:
        kw.append(("bias", "False"))
    return Call("nn.Conv2d", (_lit(c), _lit(cm), _lit(_one(a["kernel"]))), tuple(kw))


def _spatial_pad(pads, xin):
    if _sym(pads):
        kw = [("padding", _lit(_one(tuple(b for b, _ in pads))))] if any(b for b, _ in pads) else []
        return kw, xin
    return [], Call("F.pad", (xin, _lit(_pad_arg(pads))))


def _emit_depthwise(self: TorchEmitter, node, x):
    a = node.attrs
    c = self.network.type_of(node.inputs[0]).shape[0]
    pad_kw, xin = _spatial_pad(a["padding"], x[0])
    ctor = _depthwise_ctor(a, c, c * a["depth_multiplier"], a["use_bias"], pad_kw)
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    return self.activation(node, Call(self.layer(node, ctor, params), (xin,)), a["activation"])


def _emit_separable(self: TorchEmitter, node, x):
    a = node.attrs
    c = self.network.type_of(node.inputs[0]).shape[0]
    cm = c * a["depth_multiplier"]
    pad_kw, xin = _spatial_pad(a["padding"], x[0])
    depthwise = _depthwise_ctor(a, c, cm, False, pad_kw)
    pointwise = Call("nn.Conv2d", (_lit(cm), _lit(a["filters"]), "1"), () if a["use_bias"] else (("bias", "False"),))
    params = {"depthwise_kernel": "0.weight", "pointwise_kernel": "1.weight",
              **({"bias": "1.bias"} if a["use_bias"] else {})}
    mod = self.layer(node, Call("nn.Sequential", (depthwise, pointwise)), params)
    return self.activation(node, Call(mod, (xin,)), a["activation"])


def _emit_pool(self: TorchEmitter, node, x):
    a = node.attrs
    r = len(a["pool"])
    kind = "max" if node.op.startswith("max") else "avg"
    pads, window, stride, ceil = a["padding"], a["pool"], a["stride"], a["ceil_mode"]
    sizes = self.network.type_of(node.inputs[0]).shape[1:]
    args = [x[0], _lit(_one(window))]
    kw = []
    if tuple(stride) != tuple(window):
        args.append(_lit(_one(stride)))
    if _sym(pads):
        if any(b for b, _ in pads):
            kw.append(("padding", _lit(_one(tuple(b for b, _ in pads)))))
            if kind == "avg" and not a["count_include_pad"]:
                kw.append(("count_include_pad", "False"))
        if ceil:
            kw.append(("ceil_mode", "True"))
        return Call(f"F.{kind}_pool{r}d", tuple(args), tuple(kw))
    # Asymmetric padding: pad explicitly. PyTorch's ceil-mode rule depends on where the padding is,
    # so ceil mode becomes extra end padding that yields the IR's output size in floor mode.
    extra = []
    for size, k, s, (pb, pe), n in zip(sizes, window, stride, pads, node.type.shape[1:]):
        if ceil and not (isinstance(size, int) and isinstance(n, int)):
            self.fail(node, "ceil_mode with asymmetric padding on a run-time size")
            return x[0]
        extra.append(max((n - 1) * s + k - size - pb - pe, 0) if ceil else 0)
    if kind == "max":
        full = tuple((b, e + x_) for (b, e), x_ in zip(pads, extra))
        padded = Call("F.pad", (x[0], _lit(_pad_arg(full))), (("value", "-math.inf"),))
        return Call(f"F.max_pool{r}d", (padded, *args[1:]))
    self.helpers.add("_avg_pool")
    kw = [("stride", _lit(tuple(stride))), ("padding", _lit(tuple(pads)))]
    if any(extra):
        kw.append(("extra", _lit(tuple(extra))))
    if a["count_include_pad"]:
        kw.append(("count_include_pad", "True"))
    return Call("_avg_pool", (x[0], _lit(tuple(window))), tuple(kw))


def _emit_global_pool(self: TorchEmitter, node, x):
    r = int(node.op[-2])
    fn = "torch.mean" if "avg" in node.op else "torch.amax"
    return Call(fn, (x[0],), (("dim", _lit(tuple(range(2, 2 + r)))),))


def _emit_flatten(self, node, x):
    return Call("torch.flatten", (x[0], "1"))


def _emit_reshape(self, node, x):
    return Call("torch.reshape", (x[0], _lit((-1, *node.attrs["shape"]))))


def _emit_permute(self, node, x):
    return Call("torch.permute", (x[0], _lit((0, *(d + 1 for d in node.attrs["dims"])))))


def _emit_dropout(self, node, x):
    return Call("F.dropout", (x[0], _lit(node.attrs["rate"]), "self.training"))


def _emit_zeropad(self, node, x):
    return Call("F.pad", (x[0], _lit(_pad_arg(node.attrs["padding"]))))


def _emit_upsample(self, node, x):
    a = node.attrs
    r = len(a["scale"])
    kw = [("scale_factor", _lit(_one(a["scale"])))]
    if a["mode"] == "nearest":
        kw.append(("mode", '"nearest"'))
    else:
        kw += [("mode", _lit({1: "linear", 2: "bilinear", 3: "trilinear"}[r])), ("align_corners", "False")]
    return Call("F.interpolate", (x[0],), tuple(kw))


def _emit_batchnorm(self: TorchEmitter, node, x):
    a = node.attrs
    t = self.network.type_of(node.inputs[0])
    if t.rank > 4:
        self.fail(node, f"batchnorm on a rank-{t.rank} value (PyTorch's BatchNorm takes at most [C, D, H, W])")
        return x[0]
    c = t.shape[a["axis"]]
    dims = {1: 1, 2: 1, 3: 2, 4: 3}[t.rank]
    momentum = float(f"{1.0 - a['momentum']:.12g}")  # PyTorch's momentum is the new batch's weight
    kw = [("eps", _lit(a["eps"])), ("momentum", _lit(momentum))]
    params, fixed = {}, {}
    if not a["scale"] and not a["center"]:
        kw.append(("affine", "False"))
    else:
        if a["scale"]:
            params["gamma"] = "weight"
        else:
            fixed["weight"] = (1.0, c)
        if a["center"]:
            params["beta"] = "bias"
        else:
            fixed["bias"] = (0.0, c)
    params.update(moving_mean="running_mean", moving_variance="running_var")
    cls = f"_BatchNorm{dims}d"  # nn.BatchNorm{dims}d with the spec's (biased) moving-variance update
    self.helpers.add(cls)
    mod = self.layer(node, Call(cls, (_lit(c),), tuple(kw)), params, fixed)
    if a["axis"] == 0:
        return Call(mod, (x[0],))
    d = _lit(a["axis"] + 1)
    return Call("torch.movedim", (Call(mod, (Call("torch.movedim", (x[0], d, "1")),)), "1", d))


def _emit_layernorm(self: TorchEmitter, node, x):
    a = node.attrs
    t = self.network.type_of(node.inputs[0])
    shape = tuple(t.shape[i] for i in a["axis"])
    kw = [("eps", _lit(a["eps"]))]
    params, fixed = {}, {}
    if not a["scale"] and not a["center"]:
        kw.append(("elementwise_affine", "False"))
    else:
        if a["scale"]:
            params["gamma"] = "weight"
        else:
            fixed["weight"] = (1.0, prod(shape))
        if a["center"]:
            params["beta"] = "bias"
        else:
            kw.append(("bias", "False"))
    mod = self.layer(node, Call("nn.LayerNorm", (_lit(shape),), tuple(kw)), params, fixed)
    return Call(mod, (x[0],))


def _emit_embedding(self: TorchEmitter, node, x):
    a = node.attrs
    mod = self.layer(node, Call("nn.Embedding", (_lit(a["vocab"]), _lit(a["dim"]))), {"embeddings": "weight"})
    return Call(mod, (x[0],))


_RNN = {"simple_rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}


def _rnn_plan(op: str, a: dict, directions: tuple[tuple[str, str], ...]):
    use_bias = a["use_bias"]
    size = a["units"] * {"simple_rnn": 1, "lstm": 4, "gru": 3}[op]
    params, fixed, plus = {}, {}, {}
    for prefix, suffix in directions:
        params[prefix + "kernel"] = f"weight_ih_l0{suffix}"
        params[prefix + "recurrent_kernel"] = f"weight_hh_l0{suffix}"
        if use_bias:
            params[prefix + "bias"] = f"bias_ih_l0{suffix}"
            if op == "gru":
                params[prefix + "recurrent_bias"] = f"bias_hh_l0{suffix}"
            else:  # one canonical bias: PyTorch's second one is frozen at zero
                fixed[f"bias_hh_l0{suffix}"] = (0.0, size)
                plus[prefix + "bias"] = f"bias_hh_l0{suffix}"
    return params, fixed, plus


def _rnn_ctor(op: str, features: int, a: dict, bidirectional: bool):
    kw = [("batch_first", "True")]
    if not a["use_bias"]:
        kw.append(("bias", "False"))
    if bidirectional:
        kw.append(("bidirectional", "True"))
    return Call(_RNN[op], (_lit(features), _lit(a["units"])), tuple(kw))


def _emit_rnn(self: TorchEmitter, node, x):
    a = node.attrs
    features = self.network.type_of(node.inputs[0]).shape[1]
    params, fixed, plus = _rnn_plan(node.op, a, (("", ""),))
    mod = self.layer(node, _rnn_ctor(node.op, features, a, False), params, fixed, plus)
    if a["return_sequences"]:
        return ("unpack", Call(mod, (x[0],)))
    self.helpers.add("_final_state")
    return Call("_final_state", (Call(mod, (x[0],)),))


def _emit_bidirectional(self: TorchEmitter, node, x):
    inner = node.attrs["layer"]
    op, a = inner["op"], inner["attrs"]
    features = self.network.type_of(node.inputs[0]).shape[1]
    params, fixed, plus = _rnn_plan(op, a, (("forward.", ""), ("backward.", "_reverse")))
    mod = self.layer(node, _rnn_ctor(op, features, a, True), params, fixed, plus)
    mode = node.attrs["merge_mode"]
    if a["return_sequences"] and mode == "concat":
        return ("unpack", Call(mod, (x[0],)))
    self.helpers.add("_merge_directions")
    kw = (("mode", _lit(mode)), ("last", _lit(not a["return_sequences"])))
    return Call("_merge_directions", (Call(mod, (x[0],)), _lit(a["units"])), kw)


def _emit_elementwise(self: TorchEmitter, node, x):
    op = node.op
    rank = node.type.rank
    x = list(x)
    for i, v in enumerate(node.inputs):  # per-sample broadcasting: missing axes come first, after the batch
        for _ in range(rank - self.network.type_of(v).rank):
            x[i] = Call("torch.unsqueeze", (x[i], "1"))
    if op in ("add", "subtract", "multiply"):
        sym = {"add": "+", "subtract": "-", "multiply": "*"}[op]
        return Bin(tuple(x), (sym,) * (len(x) - 1))
    if op == "average":
        return Bin(tuple(x), ("+",) * (len(x) - 1), f"/ {len(x)}")
    fn = "torch.maximum" if op == "maximum" else "torch.minimum"
    out = x[0]
    for other in x[1:]:
        out = Call(fn, (out, other))
    return out


def _emit_concat(self, node, x):
    return Call("torch.cat", (Tup(tuple(x)),), (("dim", _lit(_dim(node.attrs["axis"]))),))


def _emit_dot(self: TorchEmitter, node, x):
    self.helpers.add("_dot")
    kw = [("axes", _lit(tuple(node.attrs["axes"])))]
    if node.attrs["normalize"]:
        kw.append(("normalize", "True"))
    return Call("_dot", (x[0], x[1]), tuple(kw))


def _family(prefix: str, fn, ranks=(1, 2, 3)) -> dict:
    return {f"{prefix}{r}d": fn for r in ranks}


TorchEmitter.TRANSFORMS = {
    "dense": _emit_dense,
    **_family("conv", _emit_conv),
    **_family("conv_transpose", _emit_conv_transpose),
    "depthwise_conv2d": _emit_depthwise,
    "separable_conv2d": _emit_separable,
    **_family("maxpool", _emit_pool),
    **_family("avgpool", _emit_pool),
    **_family("global_avgpool", _emit_global_pool),
    **_family("global_maxpool", _emit_global_pool),
    "flatten": _emit_flatten,
    "reshape": _emit_reshape,
    "permute": _emit_permute,
    "dropout": _emit_dropout,
    **_family("zeropad", _emit_zeropad),
    **_family("upsample", _emit_upsample),
    "batchnorm": _emit_batchnorm,
    "layernorm": _emit_layernorm,
    "embedding": _emit_embedding,
    "simple_rnn": _emit_rnn,
    "lstm": _emit_rnn,
    "gru": _emit_rnn,
    "bidirectional": _emit_bidirectional,
    **{name: _emit_activation for name in ("relu", "relu6", "sigmoid", "tanh", "softmax", "leaky_relu", "elu",
                                           "gelu", "swish", "softplus", "hard_sigmoid")},
    "linear": lambda self, node, x: x[0],
    **{name: _emit_elementwise for name in ("add", "subtract", "multiply", "average", "maximum", "minimum")},
    "concat": _emit_concat,
    "dot": _emit_dot,
}


# Helper source, emitted only when used -----------------------------------------------------------------

HELPER_SOURCE = {
    "_init": '''
def _init(w, name, unit_forget_bias=False, **args):
    """Fill w from a spec initialiser; fans: dim 0 = out, dim 1 = in, rest = window."""
    receptive = math.prod(w.shape[2:])
    fan_in = w.shape[1] * receptive if w.dim() > 1 else len(w)
    fan_out = w.shape[0] * receptive if w.dim() > 1 else len(w)
    glorot, he, lecun = 2 / (fan_in + fan_out), 2 / fan_in, 1 / fan_in  # variances
    variance = {"glorot": glorot, "he": he, "lecun": lecun}.get(name.split("_")[0])
    with torch.no_grad():
        if name == "zeros":
            w.zero_()
        elif name == "ones":
            w.fill_(1.0)
        elif name == "constant":
            w.fill_(args["value"])
        elif name == "normal":
            w.normal_(args["mean"], args["std"])
        elif name == "uniform":
            w.uniform_(args["a"], args["b"])
        elif name == "orthogonal":
            nn.init.orthogonal_(w.view(len(w), -1), args["gain"])
        elif name.endswith("_uniform"):  # variance limit ** 2 / 3
            limit = math.sqrt(3 * variance)
            w.uniform_(-limit, limit)
        elif name.endswith("_normal"):  # truncated at 2 std, rescaled to the variance
            std = math.sqrt(variance) / 0.87962566103423978
            nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
        else:
            raise ValueError(f"unknown initializer {name}")
        if unit_forget_bias:  # LSTM: the forget gate's bias (2nd quarter) is 1
            units = len(w) // 4
            w[units : 2 * units] = 1.0
''',
    "_avg_pool": '''
def _avg_pool(x, window, stride, padding, extra=None, count_include_pad=False):
    """Average pooling with (begin, end) padding per axis, possibly asymmetric.

    The divisor counts the window's input values, plus its padded ones when
    count_include_pad; `extra` end padding (ceil mode) is never counted.
    """
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(window) - 1]
    extra = extra or (0,) * len(window)
    spec = [p for b, e in reversed(padding) for p in (b, e)]
    more = [p for x_ in reversed(extra) for p in (0, x_)]
    ones = x.new_ones((1, 1, *x.shape[2:]))
    if count_include_pad:
        count = F.pad(F.pad(ones, spec, value=1.0), more)
    else:
        count = F.pad(F.pad(ones, spec), more)
    total = pool(F.pad(F.pad(x, spec), more), window, stride)
    return total / pool(count, window, stride)
''',
    "_final_state": '''
def _final_state(output):
    """A recurrent layer's last step, from its (sequence [N, T, units], state)."""
    return output[0][:, -1]
''',
    "_merge_directions": '''
def _merge_directions(output, units, mode, last):
    """Merge a bidirectional layer's directions; last: each one's final state."""
    forward, backward = output[0][..., :units], output[0][..., units:]
    if last:  # the backward direction ends at the first step
        forward, backward = forward[:, -1], backward[:, 0]
    if mode == "concat":
        return torch.cat((forward, backward), -1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    return (forward + backward) / 2
''',
    "_dot": '''
def _dot(a, b, axes, normalize=False):
    """Per-sample dot product of axis axes[0] of a with axis axes[1] of b."""
    if normalize:
        a, b = F.normalize(a, dim=axes[0] + 1), F.normalize(b, dim=axes[1] + 1)
    a, b = torch.movedim(a, axes[0] + 1, -1), torch.movedim(b, axes[1] + 1, -1)
    shape = (len(a), *a.shape[1:-1], *b.shape[1:-1])
    a, b = a.reshape(len(a), -1, a.shape[-1]), b.reshape(len(b), -1, b.shape[-1])
    out = a @ b.transpose(1, 2)
    return out.reshape(shape if len(shape) > 1 else (len(out), 1))
''',
    "_binary_crossentropy": '''
def _binary_crossentropy(p, t):
    """mean(-(t log p + (1 - t) log(1 - p))), p clipped to [1e-7, 1 - 1e-7]."""
    p = torch.clamp(p, 1e-7, 1 - 1e-7)
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
''',
    "_categorical_crossentropy": '''
def _categorical_crossentropy(p, t, from_logits=False, dim=-1):
    """mean(-sum(t log q, dim)); q is softmax(p), or p renormalised and clipped.

    q = clip(p / max(sum(p, dim), eps), eps, 1 - eps) with eps = 1e-7: probabilities
    are never read as logits.
    """
    if from_logits:
        logq = F.log_softmax(p, dim)
    else:
        q = p / torch.clamp(p.sum(dim, keepdim=True), min=1e-7)
        logq = torch.log(torch.clamp(q, 1e-7, 1 - 1e-7))
    return -(t * logq).sum(dim).mean()
''',
    "_sparse_categorical_crossentropy": '''
def _sparse_categorical_crossentropy(p, t, from_logits=False, dim=-1):
    """mean(-log q[t]) over every position, q as in categorical_crossentropy.

    t holds class ids, shaped like p without its class axis, or with a trailing 1.
    """
    if from_logits:
        logq = F.log_softmax(p, dim)
    else:
        q = p / torch.clamp(p.sum(dim, keepdim=True), min=1e-7)
        logq = torch.log(torch.clamp(q, 1e-7, 1 - 1e-7))
    t = t.long()
    if t.dim() == p.dim():
        t = t.squeeze(-1)
    return -torch.gather(logq, dim, t.unsqueeze(dim)).mean()
''',
    "_hinge": '''
def _hinge(p, t):
    """mean(max(1 - t p, 0)), t in {-1, 1}."""
    return torch.clamp(1 - t * p, min=0).mean()
''',
    "_kl_divergence": '''
def _kl_divergence(p, t):
    """mean(sum(t log(t / p), -1)), t and p clipped to [1e-7, 1]."""
    t, p = torch.clamp(t, 1e-7, 1), torch.clamp(p, 1e-7, 1)
    return (t * torch.log(t / p)).sum(-1).mean()
''',
    "_cosine_similarity": '''
def _cosine_similarity(p, t):
    """mean(-sum(p' t', -1)), x' = x / max(|x|, 1e-7) along the last axis."""
    p, t = F.normalize(p, dim=-1, eps=1e-7), F.normalize(t, dim=-1, eps=1e-7)
    return -(p * t).sum(-1).mean()
''',
    "_kl_normal": '''
def _kl_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)): batch mean of the per-sample sum."""
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar))
    return kl.flatten(1).sum(1).mean()
''',
    "_decoupled_weight_decay": '''
def _decoupled_weight_decay(rate):
    """An optimizer step pre-hook: w -= lr * rate * w (decoupled weight decay)."""

    def hook(optimizer, args, kwargs):
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * rate)

    return hook
''',
    "_Optimizer": '''
class _Optimizer(torch.optim.Optimizer):
    """Base of the spec's optimizers: decoupled weight decay, then the update."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if not state:
                    state["step"] = 0
                    self.init_state(w, state, group)
                state["step"] += 1
                if group["weight_decay"]:  # w -= lr * weight_decay * w
                    w.sub_(w * (group["lr"] * group["weight_decay"]))
                self.update(w, w.grad, state, group)
        return loss
''',
    "_RMSprop": '''
class _RMSprop(_Optimizer):
    """RMSprop with eps inside the square root (Keras's update).

    v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = v - a^2,
    else d = v; u = lr g / sqrt(d + eps); with momentum s = momentum s + u,
    w -= s, else w -= u.
    """

    def __init__(self, params, lr, rho, momentum, centered, eps, weight_decay):
        hyper = dict(lr=lr, rho=rho, momentum=momentum, centered=centered, eps=eps)
        super().__init__(params, dict(hyper, weight_decay=weight_decay))

    def init_state(self, w, state, group):
        state["v"] = torch.zeros_like(w)
        if group["centered"]:
            state["a"] = torch.zeros_like(w)
        if group["momentum"]:
            state["s"] = torch.zeros_like(w)

    def update(self, w, g, state, group):
        rho = group["rho"]
        v = state["v"].mul_(rho).add_((1 - rho) * g.square())
        if group["centered"]:
            a = state["a"].mul_(rho).add_((1 - rho) * g)
            d = v - a.square() + group["eps"]
        else:
            d = v + group["eps"]
        u = group["lr"] * g / torch.sqrt(d)
        if group["momentum"]:
            w.sub_(state["s"].mul_(group["momentum"]).add_(u))
        else:
            w.sub_(u)
''',
    "_Adagrad": '''
class _Adagrad(_Optimizer):
    """Adagrad with eps inside the square root (Keras's update).

    s starts at initial_accumulator; s += g^2; w -= lr g / sqrt(s + eps).
    """

    def __init__(self, params, lr, initial_accumulator, eps, weight_decay):
        hyper = dict(lr=lr, initial_accumulator=initial_accumulator, eps=eps)
        super().__init__(params, dict(hyper, weight_decay=weight_decay))

    def init_state(self, w, state, group):
        state["s"] = torch.full_like(w, group["initial_accumulator"])

    def update(self, w, g, state, group):
        s = state["s"].add_(g.square())
        w.sub_(group["lr"] * g / torch.sqrt(s + group["eps"]))
''',
    "_Adam": '''
class _Adam(_Optimizer):
    """Adam (and AdamW) with Keras's update: eps is added to sqrt(v), not sqrt(v_hat).

    m += (1 - beta1) (g - m); v += (1 - beta2) (g^2 - v); amsgrad: v = max(v) so far;
    w -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).
    """

    def __init__(self, params, lr, beta1, beta2, eps, amsgrad, weight_decay):
        hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, amsgrad=amsgrad)
        super().__init__(params, dict(hyper, weight_decay=weight_decay))

    def init_state(self, w, state, group):
        state["m"] = torch.zeros_like(w)
        state["v"] = torch.zeros_like(w)
        if group["amsgrad"]:
            state["v_max"] = torch.zeros_like(w)

    def update(self, w, g, state, group):
        beta1, beta2, t = group["beta1"], group["beta2"], state["step"]
        m = state["m"].add_((g - state["m"]) * (1 - beta1))
        v = state["v"].add_((g.square() - state["v"]) * (1 - beta2))
        if group["amsgrad"]:
            v = torch.maximum(state["v_max"], v, out=state["v_max"])
        alpha = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        w.sub_(m * alpha / (torch.sqrt(v) + group["eps"]))
''',
}

_BATCHNORM = '''
class _BatchNorm{d}d(nn.BatchNorm{d}d):
    """nn.BatchNorm{d}d whose moving variance takes the biased batch variance.

    Training normalises with the batch mean and biased variance, as PyTorch does,
    and updates moving = m * moving + (1 - m) * batch (m the spec's momentum;
    self.momentum is 1 - m) for the mean and the biased variance, as Keras does.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            var, mean = torch.var_mean(x, [0, *range(2, x.dim())], correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        w, b = self.weight, self.bias
        return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)
'''
HELPER_SOURCE.update({f"_BatchNorm{d}d": _BATCHNORM.replace("{d}", str(d)) for d in (1, 2, 3)})


# Losses and optimisers ------------------------------------------------------------------------------------


def _loss_call(term: ir.LossTerm, p: str, t: str, t_integer: bool, helpers: set[str]):
    fn, a = term.fn, term.attrs
    if t_integer and fn != "sparse_categorical_crossentropy":
        t = f"{t}.float()"
    if fn == "mse":
        return Call("F.mse_loss", (p, t))
    if fn == "mae":
        return Call("F.l1_loss", (p, t))
    if fn == "huber":
        return Call("F.huber_loss", (p, t), (("delta", _lit(a["delta"])),))
    if fn == "binary_crossentropy":
        if a["from_logits"]:
            return Call("F.binary_cross_entropy_with_logits", (p, t))
        helpers.add("_binary_crossentropy")
        return Call("_binary_crossentropy", (p, t))
    if fn in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        helpers.add("_" + fn)
        kw = []
        if a["from_logits"]:
            kw.append(("from_logits", "True"))
        if a["axis"] != -1:
            kw.append(("dim", _lit(_dim(a["axis"]))))
        return Call("_" + fn, (p, t), tuple(kw))
    helpers.add("_" + fn)
    return Call("_" + fn, (p, t))


def _optimizer_call(opt: ir.Optimizer) -> tuple[Call, float, str | None]:
    """(constructor, decoupled weight decay left to a step pre-hook (0 if none), generated class or None).

    ``sgd`` and ``adadelta`` are torch.optim classes (their updates are the spec's); ``rmsprop``,
    ``adagrad``, ``adam`` and ``adamw`` are generated classes (torch.optim places eps differently).
    """
    a, name = opt.attrs, opt.name
    params = "model.parameters()"
    lr = ("lr", _lit(a["lr"]))
    wd = a.get("weight_decay", 0.0)
    if name == "sgd":
        kw = [lr]
        if a["momentum"]:
            kw.append(("momentum", _lit(a["momentum"])))
            if a["nesterov"]:
                kw.append(("nesterov", "True"))
        return Call("torch.optim.SGD", (params,), tuple(kw)), wd, None
    if name == "adadelta":
        return Call("torch.optim.Adadelta", (params,), (lr, ("rho", _lit(a["rho"])), ("eps", _lit(a["eps"])))), wd, None
    if name == "rmsprop":
        cls, keys = "_RMSprop", ("rho", "momentum", "centered", "eps")
    elif name == "adagrad":
        cls, keys = "_Adagrad", ("initial_accumulator", "eps")
    else:  # adam, adamw
        cls, keys = "_Adam", ("beta1", "beta2", "eps", "amsgrad")
    kw = [lr, *((k, _lit(a[k])) for k in keys), ("weight_decay", _lit(wd))]
    return Call(cls, (params,), tuple(kw)), 0.0, cls


def _spec_call(name: str, attrs: dict) -> str:
    def show(v):
        return "true" if v is True else "false" if v is False else repr(v)

    return f"{name}(" + ", ".join(f"{k}={show(v)}" for k, v in attrs.items()) + ")"


# The generator ---------------------------------------------------------------------------------------------


class Generator:
    """Builds the module text and the weight plan of one network."""

    def __init__(self, network: ir.Network):
        self.net = network
        self.em = TorchEmitter(network)
        self.cls = identifier(network.name)
        if self.cls in GLOBALS or self.cls in _AMBIGUOUS:  # E742
            self.cls += "_"

    # forward --------------------------------------------------------------------------------------------
    def forward_lines(self) -> tuple[list[str], list[str], dict[str, str], list[str]]:
        """(signature params, body lines, value -> variable, loss intermediates)."""
        net = self.net
        out_values = set(net.outputs)
        loss_values = [v for term in net.loss for v in term.args]
        node_names = {n.name for n in net.nodes}
        intermediates = [v for v in dict.fromkeys(loss_values) if v in node_names and v not in out_values]
        keep = out_values | set(intermediates)
        last_use: dict[str, int] = {}
        for i, n in enumerate(net.nodes):
            for v in n.inputs:
                last_use[v] = i
        taken: set[str] = set()
        var: dict[str, str] = {}
        holds: dict[str, list[str]] = {}
        params = []
        for v in net.inputs:
            name = _ident(v.name, taken)
            var[v.name] = name
            holds[name] = [v.name]
            params.append(name)

        def free(name: str, i: int) -> bool:
            return all(h not in keep and last_use.get(h, -1) <= i for h in holds.get(name, []))

        body: list[str] = []
        for i, node in enumerate(net.nodes):
            x = [var[v] for v in node.inputs]
            if node.type.dtype == "float32" and node.op != "embedding":  # Keras-like autocast to float32
                x = [Call(f"{name}.float") if net.type_of(v).dtype != "float32" else name
                     for name, v in zip(x, node.inputs)]
            expr = self.em.emit(node, x)
            if expr is None:
                expr = x[0] if x else "None"
            if isinstance(expr, str) and expr in x:  # an identity (linear): no line
                var[node.name] = expr
                holds[expr].append(node.name)
                continue
            prefix = node.name.rsplit(".", 1)[0] if "." in node.name else node.name
            short = next((p for p in reversed(prefix.split(".")) if not p.isdigit()), prefix)
            name = None
            for candidate in dict.fromkeys((short, prefix)):  # `main`, then `features_0_main`
                want = identifier(candidate)
                if want in GLOBALS or want in _AMBIGUOUS:
                    want += "_"
                if want not in taken:
                    name = _ident(candidate, taken)
                    break
                if free(want, i):
                    name = want
                    break
            if name is None:
                name = _ident(node.name, taken)
            var[node.name] = name
            holds[name] = [node.name]
            comment = f"  # {node.type}"
            if isinstance(expr, tuple) and expr[0] == "unpack":
                body += fmt(f"{name}, _ = ", expr[1], comment, 8)
            else:
                body += fmt(f"{name} = ", expr, comment, 8)
        returns = [var[v] for v in net.outputs]
        ret = returns[0] if len(returns) == 1 else Tup(tuple(returns))
        if intermediates:
            extra = Tup(tuple(var[v] for v in intermediates))
            body.append("        if return_loss_values:")
            body += fmt("return ", Tup((ret, extra), bare=True), "", 12)
            params.append("return_loss_values=False")
        body += fmt("return ", ret if isinstance(ret, str) else Tup(ret.items, bare=True), "", 8)
        return params, body, var, intermediates

    def generate(self) -> str:
        net = self.net
        params, body, var, intermediates = self.forward_lines()
        em = self.em
        lines: list[str] = []
        first = textwrap.wrap(f"The network {net.name}, generated by netspec.", LINE - 3)
        lines += [f'"""{first[0]}', *first[1:], "",
                  "Inputs are channels-first (NCHW); comments give per-sample shapes.", '"""']
        out: list[str] = []
        # class
        out += ["", "", f"class {self.cls}(nn.Module):"]
        ins = ", ".join(f"{v.name} {v.type}" for v in net.inputs)
        outs = ", ".join(f"{name} {net.type_of(v)}" for name, v in zip(net.output_names or net.outputs, net.outputs))
        out += docstring(f"{net.name}: {ins} -> {outs}.", 4)
        out += ["", "    def __init__(self):", "        super().__init__()"]
        for plan in em.layers.values():
            out += fmt(f"self.{plan.attr} = ", plan.ctor, "", 8)
        frozen = [(plan, path) for plan in em.layers.values() for path in plan.fixed]
        for plan, path in frozen:
            out.append(f"        self.{plan.attr}{_torch_path(path)}.requires_grad_(False)")
        uses_init = bool(em.layers)
        if uses_init:
            out.append("        self.reset_parameters()")
            out += ["", "    def reset_parameters(self):"]
            out += docstring("Draw every weight from the spec's initialisers.", 8)
            params_by_layer = {n.layer: n.params for n in net.nodes if n.params}
            for plan in em.layers.values():
                for p in params_by_layer[plan.name]:
                    args = [f"self.{plan.attr}{_torch_path(plan.params[p.name])}", _lit(p.init["name"])]
                    kw = [(k, _lit(v)) for k, v in p.init.items() if k != "name"]
                    out += fmt("", Call("_init", tuple(args), tuple(kw)), "", 8)
                for path, (value, _) in plan.fixed.items():
                    out += fmt("", Call("_init", (f"self.{plan.attr}{_torch_path(path)}",
                                                  '"ones"' if value == 1.0 else '"zeros"')), "", 8)
        out += ["", *_def(4, "forward", ["self", *params])]
        out += body
        # training setup
        if net.loss:
            loss, step = self.loss_lines(var, intermediates)
            out += loss
        if net.optimizer is not None:
            out += self.optimizer_lines()
        if net.loss:
            out += step
        if em.errors:
            return ""
        helpers = (["_init"] if uses_init else []) + [h for h in HELPERS if h in em.helpers]
        code = [line for h in helpers for line in ["", "", *HELPER_SOURCE[h].strip("\n").split("\n")]] + out
        text = "\n".join(code)
        lines += ["", "import math", ""] if re.search(r"\bmath\.", text) else [""]
        if re.search(r"\btorch\.", text):
            lines.append("import torch")
        lines.append("from torch import nn")
        if re.search(r"\bF\.", text):
            lines.append("from torch.nn import functional as F")
        lines += code
        return "\n".join(lines) + "\n"

    def loss_lines(self, var: dict[str, str], intermediates: list[str]) -> list[str]:
        net, em = self.net, self.em
        taken: set[str] = set()
        names = list(net.output_names or net.outputs)
        single = len(net.outputs) == 1
        out_vars = [_ident(n, taken) for n in names]
        sig = [out_vars[0] if single else _ident("outputs", taken)]
        value_name = dict(zip(net.outputs, out_vars))
        for t in net.targets:
            value_name[t.name] = _ident(t.name, taken)
            sig.append(value_name[t.name])
        used = {v for term in net.loss for v in term.args}
        loss_inputs = [v.name for v in net.inputs if v.name in used and v.name not in value_name]
        for name in loss_inputs:
            value_name[name] = _ident(name, taken)
            sig.append(value_name[name])
        inter_vars = []
        for v in intermediates:
            value_name[v] = _ident(var[v], taken)
            inter_vars.append(value_name[v])
        if intermediates:
            sig.append(_ident("loss_values", taken))
        spec_text = ""
        for i, t in enumerate(net.loss):
            sign = (" - " if t.weight < 0 else " + ") if i else ("-" if t.weight < 0 else "")
            w = abs(t.weight)
            args = ", ".join(value_name[v] for v in t.args)
            spec_text += sign + ("" if w == 1.0 else f"{w!r} * ") + f"{t.fn}({args})"
        lines = ["", "", *_def(0, "compute_loss", sig)]
        lines += docstring(f"The spec's loss: {spec_text}.", 4)
        if not single:
            lines += _unpack(out_vars, sig[0], 4)
        if intermediates:
            target = f"({inter_vars[0]},)" if len(inter_vars) == 1 else ", ".join(inter_vars)
            lines += fmt(f"{target} = ", sig[-1], "", 4)
        types = {v.name: v.type for v in (*net.inputs, *net.targets)}
        terms = []
        for term in net.loss:
            p, t = (value_name[v] for v in term.args)
            t_int = (types[term.args[1]] if term.args[1] in types else net.type_of(term.args[1])).is_integer
            terms.append(_loss_call(term, p, t, t_int, em.helpers))
        if len(terms) == 1 and net.loss[0].weight == 1.0:
            lines += fmt("return ", terms[0], "", 4)
        else:
            operands, ops = [], []
            for i, (term, call) in enumerate(zip(net.loss, terms)):
                tv = _ident(term.fn, taken)
                lines += fmt(f"{tv} = ", call, "", 4)
                w = term.weight
                mag = abs(w) if i else w
                operands.append(tv if mag == 1.0 else f"-{tv}" if mag == -1.0 else f"{_lit(mag)} * {tv}")
                if i:
                    ops.append("-" if w < 0 else "+")
            lines += fmt("return ", Bin(tuple(operands), tuple(ops)) if ops else operands[0], "", 4)
        # regularisation
        lines += ["", "", "def regularization_loss(model):"]
        penalties = []
        for plan in em.layers.values():
            for p in next(n.params for n in net.nodes if n.layer == plan.name):
                reg = p.regularizer
                if not reg:
                    continue
                l1 = reg.get("l1", 0.0) if reg["name"] in ("l1", "l1_l2") else 0.0
                l2 = reg.get("l2", 0.0) if reg["name"] in ("l2", "l1_l2") else 0.0
                if l1 or l2:
                    w = f"model.{plan.attr}{_torch_path(plan.params[p.name])}"
                    penalties.append(Tup((w, _lit(float(l1)), _lit(float(l2)))))
        if penalties:
            lines += docstring("The spec's penalties: l1 * sum(|w|) + l2 * sum(w ** 2) per (w, l1, l2).", 4)
            lines += fmt("penalties = ", Tup(tuple(penalties), explode=len(penalties) > 1), "", 4)
            lines.append("    return sum(l1 * w.abs().sum() + l2 * w.square().sum() for w, l1, l2 in penalties)")
        else:
            lines += docstring("The spec has no regularisers.", 4)
            lines.append("    return 0.0")
        step = ["", "", "def train_step(model, optimizer, inputs, targets):"]
        step += docstring("One optimisation step on a batch; returns the loss, regularisation included.", 4)
        step += ["    model.train()", "    optimizer.zero_grad()"]
        if intermediates:
            step.append("    outputs, loss_values = model(*inputs, return_loss_values=True)")
        else:
            step.append("    outputs = model(*inputs)")
        args = ["outputs", "*targets"] + [f"inputs[{[v.name for v in net.inputs].index(n)}]" for n in loss_inputs]
        if intermediates:
            args.append("loss_values")
        step += fmt("loss = ", Call("compute_loss", tuple(args)), "", 4)
        step.append("    loss = loss + regularization_loss(model)")
        step += ["    loss.backward()", "    optimizer.step()", "    return loss.detach()"]
        return lines, step

    def optimizer_lines(self) -> list[str]:
        opt = self.net.optimizer
        call, decay, cls = _optimizer_call(opt)
        if cls:
            self.em.helpers.update(("_Optimizer", cls))
        lines = ["", "", "def make_optimizer(model):"]
        lines += docstring(f"The spec's optimizer: {_spec_call(opt.name, opt.attrs)}.", 4)
        if decay:
            self.em.helpers.add("_decoupled_weight_decay")
            lines += fmt("optimizer = ", call, "", 4)
            hook = Call("_decoupled_weight_decay", (_lit(decay),))
            lines += fmt("", Call("optimizer.register_step_pre_hook", (hook,)), "", 4)
            lines.append("    return optimizer")
        else:
            lines += fmt("return ", call, "", 4)
        return lines


def _torch_path(path: str) -> str:
    """Attribute access for a tensor path: ``0.weight`` (in a Sequential) is ``[0].weight``."""
    return "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path.split("."))


def _unpack(targets: list[str], value: str, indent: int) -> list[str]:
    """``a, b = value``; ruff parenthesises a target list that does not fit."""
    pad = " " * indent
    line = f"{pad}{', '.join(targets)} = {value}"
    if len(line) <= LINE:
        return [line]
    return [f"{pad}(", *(f"{pad}    {t}," for t in targets), f"{pad}) = {value}"]


def _def(indent: int, name: str, params: list[str]) -> list[str]:
    pad = " " * indent
    line = f"{pad}def {name}({', '.join(params)}):"
    if len(line) <= LINE:
        return [line]
    body = f"{pad}    {', '.join(params)}"
    if len(body) <= LINE:
        return [f"{pad}def {name}(", body, f"{pad}):"]
    return [f"{pad}def {name}(", *(f"{pad}    {p}," for p in params), f"{pad}):"]


def _generate(network: ir.Network) -> tuple[str, TorchEmitter]:
    gen = Generator(network)
    text = gen.generate()
    return text, gen.em


def generate(network: ir.Network, **options) -> str:
    """The PyTorch source for one network (deterministic; ruff-clean)."""
    if options:
        raise TypeError(f"unknown option(s) for the torch backend: {', '.join(sorted(options))}")
    text, em = _generate(network)
    em.raise_errors()
    return text


def plan(network: ir.Network) -> dict[str, LayerPlan]:
    """Weight owner -> its attribute and canonical-name -> tensor-path map."""
    _, em = _generate(network)
    em.raise_errors()
    return em.layers


# Executing the source; canonical weights ----------------------------------------------------------------


def load_source(network: ir.Network):
    """Execute the generated source as a fresh module; returns the module object."""
    import linecache
    import types

    text = generate(network)
    name = f"netspec_torch_{identifier(network.name)}"
    filename = f"<netspec-torch:{network.name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__dict__["__file__"] = filename
    exec(compile(text, filename, "exec"), module.__dict__)
    return module


def build(network: ir.Network, weights=None):
    """An ``nn.Module`` built by executing the generated source; canonical ``weights`` loaded if given.

    The executed module (``compute_loss``, ``make_optimizer``, ``train_step``)
    is reachable as ``model.netspec_module`` (a class attribute, so that
    ``copy.deepcopy(model)`` still works).
    """
    module = load_source(network)
    cls = getattr(module, Generator(network).cls)
    cls.netspec_module = module
    model = cls()
    if weights is not None:
        load_canonical(model, network, weights)
    return model


def _tensor(model, attr: str, path: str):
    obj = getattr(model, attr)
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _weights_error(network: ir.Network, message: str) -> SpecError:
    return SpecError([Diagnostic("E602", message, network.span)])


def load_canonical(model, network: ir.Network, weights) -> None:
    """Copy canonical weights (``<layer>.<param>`` -> array) into a built module, exactly."""
    import numpy as np
    import torch

    from ..weights import prepare_weights

    weights = prepare_weights(weights, network)  # the one weights boundary (type, dtype, shape, finiteness)
    layers = plan(network)
    with torch.no_grad():
        for plan_ in layers.values():
            for pname, path in plan_.params.items():
                t = _tensor(model, plan_.attr, path)
                value = torch.from_numpy(np.ascontiguousarray(weights[f"{plan_.name}.{pname}"]))
                if tuple(t.shape) != tuple(value.shape):
                    raise _weights_error(network, f"{plan_.name}.{pname}: the module's tensor has shape "
                                                  f"{list(t.shape)}, the checkpoint {list(value.shape)}")
                t.copy_(value)
            for path, (fill, _) in plan_.fixed.items():
                _tensor(model, plan_.attr, path).fill_(fill)


def export_canonical(model, network: ir.Network, layers: dict[str, LayerPlan] | None = None) -> dict:
    """The module's weights in canonical form, keyed ``<layer>.<param>`` (numpy, the module's dtype: float32).

    ``layers`` is ``plan(network)`` when the caller already has it (planning generates the source).
    """
    import torch

    out = {}
    with torch.no_grad():
        for plan_ in (layers or plan(network)).values():
            for pname, path in plan_.params.items():
                t = _tensor(model, plan_.attr, path).detach()
                if pname in plan_.plus:
                    t = t + _tensor(model, plan_.attr, plan_.plus[pname]).detach()
                out[f"{plan_.name}.{pname}"] = t.cpu().numpy().copy()
    return out


def extra_parameters(network: ir.Network) -> int:
    """Elements of the frozen tensors PyTorch has and the canonical form lacks.

    Those are PyTorch's second bias of an LSTM or simple RNN (``bias_hh``, frozen
    at zero: ``gates * units`` per direction) and a normalisation's gamma/beta
    the spec switches off (frozen at one/zero). They are ``nn.Parameter``s
    with ``requires_grad=False``: the trainable count equals the spec's.
    """
    return sum(size for plan_ in plan(network).values() for _, size in plan_.fixed.values())
