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

import ast as pyast
import builtins
import functools
import keyword
import operator
import re
import sys
import textwrap
from dataclasses import dataclass, field
from importlib import import_module
from math import prod
from pathlib import Path
from typing import Any

from .. import ir, lower
from ..diagnostics import Diagnostic, SpecError
from ..liveness import INPLACE_ACTIVATIONS, inplace_nodes
from ..ops.functions import CLIPS, CONTROLS
from ..ops.registry import OPS
from .base import Backend, Built, Emitter
from .printer import Bin, Call, Tup, def_lines, docstring, flat, fmt, identifier, lit, literal, unpack_lines  # noqa: F401

LINE = 88  # ruff's default line length: the generated file passes `ruff format --check` as is

#: The lowering passes the PyTorch generator runs (netspec/lower.py): ``extra`` on every pool (the
#: end padding ceil mode adds), and padding PyTorch's layers cannot take (asymmetric) moved into
#: ``pad`` nodes (-inf before a max pool, its ceil-mode extra folded in). Symmetric pads and ceil
#: mode stay on the layer (``padding=``, ``ceil_mode=True``).
LOWERING = (lower.ceil_extra, lower.pads("asymmetric"))

#: Names the generated module defines or imports; spec names never shadow them.
HELPERS = ("_expect", "_init", "_avg_pool", "_final_state", "_merge_directions", "_dot", "_BatchNorm1d", "_BatchNorm2d",
           "_BatchNorm3d", "_binary_crossentropy", "_categorical_crossentropy",
           "_sparse_categorical_crossentropy", "_hinge", "_kl_divergence", "_cosine_similarity", "_kl_normal",
           "_decoupled_weight_decay", "_scheduled_lr", "_learning_rate_schedule", "_clip_gradients", "_Optimizer",
           "_gaussian_noise", "_sample_normal", "_repeat_vector", "_repeat_like", "_contrastive", "_triplet",
           "_initial_state", "_with_state", "_mask", "_masking", "_masked", "_masked_pool",
           "_SGD", "_RMSprop", "_Adagrad", "_Adam", "_Nadam")
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

#: Names a submodule cannot take (``add_module`` refuses them, or the attribute would hide a method):
#: every attribute of ``nn.Module`` and ``nn.Sequential`` (torch.compile adds one), and ``netspec_module``
#: and ``netspec_plan`` (set by :func:`build`).
#: A test checks the list against the installed torch.
RESERVED = MODULE_ATTRS | {"append", "extend", "insert", "pop", "netspec_module", "netspec_plan"} | frozenset({
    "___needs_generation_tag_patch",
    '__add__', '__annotations__', '__call__', '__class__', '__delattr__', '__delitem__', '__dict__', '__dir__',
    '__doc__', '__eq__', '__format__', '__ge__', '__getattr__', '__getattribute__', '__getitem__',
    '__getstate__', '__gt__', '__hash__', '__iadd__', '__imul__', '__init__', '__init_subclass__', '__iter__',
    '__le__', '__len__', '__lt__', '__module__', '__mul__', '__ne__', '__new__', '__reduce__', '__reduce_ex__',
    '__repr__', '__rmul__', '__setattr__', '__setitem__', '__setstate__', '__sizeof__', '__str__',
    '__subclasshook__', '__weakref__', '_apply', '_backward_hooks', '_backward_pre_hooks', '_buffers',
    '_call_impl', '_compiled_call_impl', '_forward_hooks', '_forward_hooks_always_called',
    '_forward_hooks_with_kwargs', '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_get_backward_hooks',
    '_get_backward_pre_hooks', '_get_item_by_idx', '_get_name', '_is_full_backward_hook',
    '_load_from_state_dict', '_load_state_dict_post_hooks', '_load_state_dict_pre_hooks',
    '_maybe_warn_non_full_backward_hook', '_modules', '_named_members', '_non_persistent_buffers_set',
    '_parameters', '_register_load_state_dict_pre_hook', '_register_state_dict_hook',
    '_replicate_for_data_parallel', '_save_to_state_dict', '_slow_forward', '_state_dict_hooks',
    '_state_dict_pre_hooks', '_version', '_wrapped_call_impl'
})

_AMBIGUOUS = {"l", "O", "I"}  # E741
_BUILTINS = frozenset(dir(builtins))


def _ident(name: str, taken: set[str]) -> str:
    """identifier() for a generated name (a variable, a parameter, a class).

    It also avoids the module's globals, Python's builtins (``super``, ``len``,
    ``range``... which generated code calls), E741's ambiguous names, and
    names Python would mangle or that break ``super()`` inside a class body
    (``__h``, ``__class__``): those lose their leading underscores.
    """
    out = identifier(name)
    if out.startswith("__"):
        out = out.lstrip("_") or "v"
        out = identifier(out if not out[0].isdigit() else "v" + out) + "_"
    if out in GLOBALS or out in _AMBIGUOUS or out in _BUILTINS:
        out += "_"
    return identifier(out, taken)


_lit = lit  # the shared printer's ruff-style literal (netspec/backends/printer.py)


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


#: What PyTorch's normalisation layers initialise their tensors to (the generator leaves those to it)
_NORM_DEFAULTS = {"weight": {"name": "ones"}, "bias": {"name": "zeros"}, "running_mean": {"name": "zeros"},
                  "running_var": {"name": "ones"}}


class TorchEmitter(Emitter):
    backend = "torch"

    def __init__(self, network: ir.Network):
        super().__init__(network)
        self.body: Body | None = None  # the class body being written
        self.inplace = inplace_nodes(network)
        self.layers: dict[str, LayerPlan] = {}
        self.helpers: set[str] = set()

    # layers ------------------------------------------------------------------------------------------
    def layer(self, node: ir.Node, ctor, params: dict[str, str], fixed=None, plus=None) -> str:
        """The module of the node's weight owner (``self.main.conv2d``), declared in the class body on first use.

        Its attribute path is the canonical layer name under the body's prefix, each segment escaped.
        """
        b = self.body
        segs = tuple(escape(s) for s in node.layer[len(b.prefix):].split("."))
        mod = access("self", segs)
        if node.layer in self.layers:
            return mod
        attr = ".".join(escape(s) for s in node.layer.split("."))
        plan = LayerPlan(node.layer, attr, ctor, params, fixed or {}, plus or {})
        self.layers[node.layer] = plan
        if len(segs) > 1:
            b.space(segs[:-1])
        b.items.append(Item("layer", segs, ctor, node))
        norm = isinstance(ctor, Call) and ctor.func.startswith(("_BatchNorm", "nn.LayerNorm"))
        for p in node.params:
            path = plan.params[p.name]
            if norm and _NORM_DEFAULTS.get(path) == p.init:
                continue  # the constructor already initialised it so
            kw = tuple((k, _lit(v)) for k, v in p.init.items() if k != "name")
            b.inits.append((Call("_init", (mod + _torch_path(path), _lit(p.init["name"])), kw), node))
        if node.attrs.get("trainable") is False:  # trainable=false: every weight of the layer frozen
            b.frozen.append(mod)
        for path, (value, _) in plan.fixed.items():
            b.frozen.append(mod + _torch_path(path))
            if not (norm and _NORM_DEFAULTS.get(path) == {"name": "ones" if value == 1.0 else "zeros"}):
                b.inits.append((Call("_init", (mod + _torch_path(path), '"ones"' if value == 1.0 else '"zeros"')),
                                node))
        return mod

    def activation(self, node: ir.Node, expr, act: dict | None):
        """``expr`` followed by a layer's ``activation=`` attribute (in place: ``expr`` is a fresh tensor)."""
        if not act or act["name"] == "linear":
            return expr
        out = self.act_call(act, expr, inplace=True)
        if out is None:
            self.fail(node, f"activation '{act['name']}'")
            return expr
        return out

    def act_call(self, act: dict, x, inplace: bool = False):
        """The activation applied to ``x``; ``inplace``: ``x`` may be overwritten (see netspec/liveness.py)."""
        name = act["name"]
        inplace = inplace and name in INPLACE_ACTIVATIONS and act.get("alpha", 1.0) > 0
        kw = (("inplace", "True"),) if inplace else ()
        if name in _ACTS:
            return Call(_ACTS[name], (x,), kw)
        if name == "linear":
            return x
        if name == "softmax":
            return Call("F.softmax", (x,), (("dim", _lit(_dim(act["axis"]))),))
        if name == "leaky_relu":
            return Call("F.leaky_relu", (x, _lit(act["alpha"])), kw)
        if name == "elu":
            return Call("F.elu", (x, _lit(act["alpha"])) if act["alpha"] != 1.0 else (x,), kw)
        if name == "gelu":
            return Call("F.gelu", (x,), (("approximate", '"tanh"'),) if act["approximate"] else ())
        return None  # caller reports


def _emit_activation(self: TorchEmitter, node, x):
    out = self.act_call({"name": node.op, **node.attrs}, x[0], inplace=node.name in self.inplace)
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
    a, r = node.attrs, OPS[node.op].rank
    c = self.network.type_of(node.inputs[0]).shape[0]
    kw = _conv_common(a) + _padding_kw(a["padding"])
    if set(a["dilation"]) != {1}:
        kw.append(("dilation", _lit(_one(a["dilation"]))))
    if a["groups"] != 1:
        kw.append(("groups", _lit(a["groups"])))
    if not a["use_bias"]:
        kw.append(("bias", "False"))
    ctor = Call(f"nn.Conv{r}d", (_lit(c), _lit(a["filters"]), _lit(_one(a["kernel"]))), tuple(kw))
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    mod = self.layer(node, ctor, params)
    return self.activation(node, Call(mod, (x[0],)), a["activation"])


def _emit_conv_transpose(self: TorchEmitter, node, x):
    a, r = node.attrs, OPS[node.op].rank
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


def _padding_kw(pads) -> list:
    """``padding=`` of a layer whose pads the lowering left symmetric (asymmetric ones are ``pad`` nodes)."""
    return [("padding", _lit(_one(tuple(b for b, _ in pads))))] if any(b for b, _ in pads) else []


def _emit_depthwise(self: TorchEmitter, node, x):
    a = node.attrs
    c = self.network.type_of(node.inputs[0]).shape[0]
    ctor = _depthwise_ctor(a, c, c * a["depth_multiplier"], a["use_bias"], _padding_kw(a["padding"]))
    params = {"kernel": "weight", **({"bias": "bias"} if a["use_bias"] else {})}
    return self.activation(node, Call(self.layer(node, ctor, params), (x[0],)), a["activation"])


def _emit_separable(self: TorchEmitter, node, x):
    a = node.attrs
    c = self.network.type_of(node.inputs[0]).shape[0]
    cm = c * a["depth_multiplier"]
    depthwise = _depthwise_ctor(a, c, cm, False, _padding_kw(a["padding"]))
    pointwise = Call("nn.Conv2d", (_lit(cm), _lit(a["filters"]), "1"), () if a["use_bias"] else (("bias", "False"),))
    params = {"depthwise_kernel": "0.weight", "pointwise_kernel": "1.weight",
              **({"bias": "1.bias"} if a["use_bias"] else {})}
    mod = self.layer(node, Call("nn.Sequential", (depthwise, pointwise)), params)
    return self.activation(node, Call(mod, (x[0],)), a["activation"])


def _emit_pool(self: TorchEmitter, node, x):
    a = node.attrs
    op = OPS[node.op]
    kind, r = op.kind, op.rank
    pads, window, stride = a["padding"], a["pool"], a["stride"]
    extra = a["extra"]  # lower.ceil_extra: the end padding ceil mode adds
    args = [x[0], _lit(_one(window))]
    kw = []
    if tuple(stride) != tuple(window):
        args.append(_lit(_one(stride)))
    if _sym(pads):  # PyTorch's own padding and ceil-mode rounding are the IR's
        if any(b for b, _ in pads):
            kw.append(("padding", _lit(_one(tuple(b for b, _ in pads)))))
            if kind == "avg" and not a["count_include_pad"]:
                kw.append(("count_include_pad", "False"))
        if a["ceil_mode"]:
            kw.append(("ceil_mode", "True"))
        return Call(f"F.{kind}_pool{r}d", tuple(args), tuple(kw))
    # asymmetric pads left on the layer (a max pool's are a pad node): an average that must not count
    # them, or must not count the ceil-mode extra, which the lowering knows only for static sizes
    if kind == "max" or None in extra:
        self.fail(node, "ceil_mode with asymmetric padding on a run-time size")
        return x[0]
    self.helpers.add("_avg_pool")
    kw = [("stride", _lit(tuple(stride))), ("padding", _lit(tuple(pads)))]
    if any(extra):
        kw.append(("extra", _lit(tuple(extra))))
    if a["count_include_pad"]:
        kw.append(("count_include_pad", "True"))
    return Call("_avg_pool", (x[0], _lit(tuple(window))), tuple(kw))


def _emit_pad(self: TorchEmitter, node, x):
    """A ``pad`` node of the lowering: constant padding, ``-inf`` before a max pool."""
    value = node.attrs["value"]
    kw = (("value", "-math.inf" if value == lower.NEG_INF else _lit(float(value))),) if value else ()
    return Call("F.pad", (x[0], _lit(_pad_arg(node.attrs["padding"]))), kw)


def _emit_global_pool(self: TorchEmitter, node, x):
    op = OPS[node.op]
    fn = "torch.mean" if op.kind == "avg" else "torch.amax"
    return Call(fn, (x[0],), (("dim", _lit(tuple(range(2, 2 + op.rank)))),))


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
    r = OPS[node.op].rank
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
    size = a["units"] * OPS[op].gates
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
    if op == "add" and node.name in self.inplace and len(x) == 2 and isinstance(x[0], str):
        return ("iadd", x[0], x[1])  # `a += b`: the first operand is dead after this (netspec/liveness.py)
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
    "pad": _emit_pad,
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

def _helper_source() -> dict[str, str]:
    """name -> source of every top-level helper in runtime/torch_helpers.py, in file order (read, not imported)."""
    path = Path(__file__).with_name("runtime") / "torch_helpers.py"
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    out = {}
    for stmt in pyast.parse(text).body:
        if isinstance(stmt, (pyast.FunctionDef, pyast.ClassDef)):
            out[stmt.name] = "\n".join(lines[stmt.lineno - 1:stmt.end_lineno]) + "\n"
    return out


HELPER_SOURCE = _helper_source()



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
    if fn == "contrastive":
        return Call("_contrastive", (p, t), (("margin", _lit(a["margin"])),) if a["margin"] != 1.0 else ())
    return Call("_" + fn, (p, t))


def _optimizer_call(opt: ir.Optimizer) -> tuple[Call, float, str | None]:
    """(constructor, decoupled weight decay left to a step pre-hook (0 if none), generated class or None).

    ``sgd`` and ``adadelta`` are torch.optim classes (their updates are the spec's); ``rmsprop``,
    ``adagrad``, ``adam``, ``adamw`` and ``nadam`` are generated classes (torch.optim places eps differently;
    its NAdam has another momentum schedule).
    """
    a, name = opt.attrs, opt.name
    params = "model.parameters()"
    lr = ("lr", _lit(a["lr"]))
    wd = a.get("weight_decay", 0.0)
    if name == "sgd" and a["momentum"] and (a["schedule"] != "constant" or a["warmup"]):
        # torch.optim.SGD's momentum form equals the spec's only at a constant learning rate
        kw = [lr, ("momentum", _lit(a["momentum"])), ("nesterov", _lit(a["nesterov"])), ("weight_decay", _lit(wd))]
        return Call("_SGD", (params,), tuple(kw)), 0.0, "_SGD"
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
    elif name == "nadam":
        cls, keys = "_Nadam", ("beta1", "beta2", "eps")
    else:  # adam, adamw
        cls, keys = "_Adam", ("beta1", "beta2", "eps", "amsgrad")
    kw = [lr, *((k, _lit(a[k])) for k in keys), ("weight_decay", _lit(wd))]
    return Call(cls, (params,), tuple(kw)), 0.0, cls


def _spec_call(name: str, attrs: dict) -> str:
    def show(v):
        return "true" if v is True else "false" if v is False else v if isinstance(v, str) else repr(v)

    return f"{name}(" + ", ".join(f"{k}={show(v)}" for k, v in attrs.items()) + ")"


# Module paths: canonical names -> attributes --------------------------------------------------------------


def escape(segment: str) -> str:
    """The submodule name for one segment of a canonical layer name (docs/torch.md, "Names").

    A segment is kept as it is unless it names an attribute that ``nn.Module`` or
    ``nn.Sequential`` already has (``RESERVED``: ``forward``, ``training``,
    ``__init__``...), or is such a name followed by underscores: then it gets one
    more ``_``. The map is injective and undone by :func:`unescape`.
    """
    s = segment
    while True:
        if s in RESERVED:
            return segment + "_"
        if not s.endswith("_"):
            return segment
        s = s[:-1]


def unescape(name: str) -> str:
    """The canonical segment of a submodule name (the inverse of :func:`escape`)."""
    return name[:-1] if name.endswith("_") and escape(name[:-1]) == name else name


def torch_key(canonical: str, plans: dict[str, LayerPlan]) -> str:
    """The ``state_dict()`` key of a canonical weight name ``<layer>.<param>``."""
    layer, param = canonical.rsplit(".", 1)
    plan_ = plans[layer]
    return f"{plan_.attr}.{plan_.params[param]}"


def _plain_attr(name: str) -> bool:
    """Whether ``obj.name`` reads the attribute ``name`` (an identifier Python will not mangle)."""
    return (name.isidentifier() and not keyword.iskeyword(name)
            and not (name.startswith("__") and not name.endswith("__")))


def access(obj: str, segments) -> str:
    """Source that reads a submodule: ``self.main.conv2d``, ``self.features[3]``, ``getattr(self, "class")``."""
    previous = None
    for s in segments:
        if s.isdigit() and previous is not None and not previous.isdigit():
            obj = f"{obj}[{s}]"  # an instance in the nn.Sequential of its binding
        elif _plain_attr(s):
            obj = f"{obj}.{s}"
        else:  # a keyword, a name Python would mangle, an instance in a block's return chain
            obj = f'getattr({obj}, "{s}")'
        previous = s
    return obj


def _assign(obj: str, segments, value) -> tuple[str, Any, str]:
    """(prefix, value, suffix) for fmt(): ``obj.a.b = value`` or ``setattr(obj.a, "b", value)``."""
    *head, last = segments
    parent = access(obj, head)
    if _plain_attr(last):
        return f"{parent}.{last} = ", value, ""
    return "", Call("setattr", (parent, f'"{last}"', value)), ""


def _camel(name: str) -> str:
    parts = [p for p in name.split("_") if p]
    out = "".join(p[:1].upper() + p[1:] for p in parts) or "Block"
    return out if out.isidentifier() else "Block" + out


# A tiny, safe evaluator of the IR's parameter expressions ----------------------------------------------------

_BINOPS = {pyast.Add: operator.add, pyast.Sub: operator.sub, pyast.Mult: operator.mul,
           pyast.Div: operator.truediv, pyast.FloorDiv: operator.floordiv, pyast.Mod: operator.mod}


def _evaluate(tree, env: dict) -> Any:
    if isinstance(tree, pyast.Constant):
        return tree.value
    if isinstance(tree, pyast.Name):
        return env[tree.id]
    if isinstance(tree, (pyast.Tuple, pyast.List)):
        return tuple(_evaluate(x, env) for x in tree.elts)
    if isinstance(tree, pyast.UnaryOp) and isinstance(tree.op, pyast.USub):
        return -_evaluate(tree.operand, env)
    if isinstance(tree, pyast.BinOp) and type(tree.op) in _BINOPS:
        return _BINOPS[type(tree.op)](_evaluate(tree.left, env), _evaluate(tree.right, env))
    raise ValueError("unsupported expression")


class _Expr:
    """A parameter expression: its source and its value per instance (None when it cannot be evaluated)."""

    def __init__(self, text: str, envs: list[dict]):
        self.text = text
        try:
            self.tree = pyast.parse(text, mode="eval").body
            self.values = [_norm(_evaluate(self.tree, env)) for env in envs]
        except Exception:  # a name that is not a parameter, a division by zero...: no candidate
            self.tree, self.values = None, None

    def source(self, names: dict[str, str]) -> str:
        """The expression with block parameters renamed to their Python names."""
        tree = pyast.parse(self.text, mode="eval")
        for n in pyast.walk(tree):
            if isinstance(n, pyast.Name):
                n.id = names.get(n.id, n.id)
        return pyast.unparse(tree)


def _norm(v):
    """A value for comparison: lists as tuples, bools kept apart from ints."""
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, bool):
        return ("bool", v)
    return v


def _denorm(v):
    if isinstance(v, tuple):
        return v[1] if len(v) == 2 and v[0] == "bool" else tuple(_denorm(x) for x in v)
    return v


@functools.lru_cache(maxsize=4096)
def _value(text: str):
    try:
        return _norm(pyast.literal_eval(text))
    except Exception:
        return _NOVALUE


_NOVALUE = object()

#: PyTorch constructor defaults of the keyword arguments the emitters leave out when they equal them
_KW_DEFAULTS = {"stride": "1", "padding": "0", "dilation": "1", "groups": "1", "bias": "True",
                "output_padding": "0"}


# One class body: the network, or one block instance ---------------------------------------------------------


@dataclass
class Item:
    """One ``__init__`` statement: a namespace, a layer, or a Sequential of block instances."""

    kind: str  # "space" | "layer" | "seq"
    path: tuple[str, ...]  # escaped segments under self
    value: Any = None  # the constructor (layer); [(index, Call)] (seq)
    node: ir.Node | None = None
    runs: tuple = ()  # seq: (start, count) of STEP * n runs among its members
    modlist: bool = False  # seq: its instances read values besides their input: an nn.ModuleList and a loop


@dataclass
class Body:
    prefix: str
    items: list[Item] = field(default_factory=list)
    spaces: dict[tuple, Item] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    inits: list[tuple[Call, ir.Node]] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    seqs: set = field(default_factory=set)  # containers of block instances: nn.Sequential
    lists: set = field(default_factory=set)  # those whose instances read values: nn.ModuleList

    def space(self, segs: tuple[str, ...]) -> Item:
        """The container at ``segs`` (declared on first use, its parents first)."""
        if segs in self.spaces:
            return self.spaces[segs]
        if len(segs) > 1:
            self.space(segs[:-1])
        seq = segs in self.seqs
        item = Item("seq" if seq else "space", segs, [] if seq else None, modlist=segs in self.lists)
        self.spaces[segs] = item
        self.items.append(item)
        return item


class Generator:
    """Builds the module text and the weight plan of one network (lowered by :data:`LOWERING` first)."""

    def __init__(self, network: ir.Network):
        network = lower.lower(network, LOWERING)
        self.net = network
        self.em = TorchEmitter(network)
        self.cls = _ident(network.name, set())  # E742 and builtins too
        self.class_taken = set(GLOBALS) | {self.cls}
        net = network
        self.instances = {i.path: i for i in net.instances}
        # the innermost instance of every node, and the enclosing instance of every instance
        self.parent: dict[str, str] = {}
        for inst in net.instances:
            p = inst.path[:-1]
            while "." in p:
                p = p.rsplit(".", 1)[0]
                if p + "." in self.instances:
                    self.parent[inst.path] = p + "."
                    break
            else:
                self.parent[inst.path] = ""
        self.owner: dict[str, str] = {}
        for node in net.nodes:
            p = node.name
            while "." in p:
                p = p.rsplit(".", 1)[0]
                if p + "." in self.instances:
                    self.owner[node.name] = p + "."
                    break
            else:
                self.owner[node.name] = ""
        self.runs = {m: r for r in net.repeats if r.kind == "block" for m in r.members}
        self.by_name = {n.name: n for n in net.nodes}
        # the nodes under each scope ('' and every instance path), and those directly in it
        self.members: dict[str, list[ir.Node]] = {"": list(net.nodes)}
        self.direct: dict[str, list[ir.Node]] = {}
        for node in net.nodes:
            path = self.owner[node.name]
            self.direct.setdefault(path, []).append(node)
            while path:
                self.members.setdefault(path, []).append(node)
                path = self.parent[path]
        # the values an instance reads besides its input: its value parameters, then any other value of an
        # enclosing scope its nodes read (a block passed as a parameter with value arguments, `wrap(mix(memory))`)
        self.reads: dict[str, list[str]] = {}
        for inst in net.instances:
            given = {inst.input, *inst.values.values()}
            free = {v: None for n in self.members.get(inst.path, ()) for v in n.inputs
                    if not v.startswith(inst.path) and v not in given}
            self.reads[inst.path] = list(dict.fromkeys([*inst.values.values(), *free]))
        self.kids: dict[str, list[ir.BlockInstance]] = {}
        for inst in net.instances:
            self.kids.setdefault(self.parent[inst.path], []).append(inst)
        self.classes: list[str] = []  # class source blocks, dependencies first
        self.ctor: dict[str, Call] = {}  # instance path -> its constructor call

    # bodies -------------------------------------------------------------------------------------------------
    def child_of(self, path: str, scope: str) -> str | None:
        """The instance directly inside ``scope`` that holds ``path`` (an instance path or '')."""
        while path and path != scope:
            parent = self.parent[path]
            if parent == scope:
                return path
            path = parent
        return None

    def body(self, scope: str, inputs: dict[str, str], comments: bool = True) -> tuple[Body, dict[str, str]]:
        """Init items and forward lines of the class body at ``scope``; returns it and value -> variable."""
        net, em = self.net, self.em
        b = Body(scope)
        em.body = b
        nodes = self.members[scope]
        kids = self.kids.get(scope, [])
        seq_size: dict[tuple, int] = {}
        for kid in kids:  # a Sequential per container of block instances
            segs = tuple(escape(s) for s in kid.path[len(scope):-1].split("."))
            if not segs[:-1]:
                continue  # in a block's return chain: a submodule of the block itself
            b.seqs.add(segs[:-1])
            if self.reads[kid.path]:
                b.lists.add(segs[:-1])
            seq_size[segs[:-1]] = seq_size.get(segs[:-1], 0) + 1
        for n in nodes:  # a Sequential that also holds layers is not called as a whole
            if n.params and self.owner[n.name] == scope:
                segs = tuple(escape(s) for s in n.layer[len(scope):].split("."))
                if segs[:-1] in seq_size:
                    seq_size[segs[:-1]] = -1
        last_use: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for v in n.inputs:
                last_use[v] = i
        keep = set(net.outputs) | {v for t in net.loss for v in t.args}
        taken: set[str] = set(inputs.values())
        var = dict(inputs)
        holds = {name: [v] for v, name in inputs.items()}

        def free(name: str, i: int) -> bool:
            return all(h not in keep and last_use.get(h, -1) <= i for h in holds.get(name, []))

        def name_for(rel: str, i: int) -> str:
            prefix = rel.rsplit(".", 1)[0] if "." in rel else rel
            short = next((p for p in reversed(prefix.split(".")) if not p.isdigit()), prefix)
            for candidate in dict.fromkeys((short, prefix)):  # `main`, then `features_0_main`
                want = identifier(candidate)
                if want in GLOBALS or want in _AMBIGUOUS:
                    want += "_"
                if want not in taken:
                    return _ident(candidate, taken)
                if free(want, i):
                    return want
            return _ident(rel, taken)

        lines: list[str] = []
        done: set[str] = set()
        for i, node in enumerate(nodes):
            kid = self.child_of(self.owner[node.name], scope)
            if kid is not None:
                if kid in done:
                    continue
                run = self.chained_run(kid, kids, nodes, scope)
                first = self.instances[run[0]]
                last = self.instances[run[-1]]
                done.update(run)
                rel = first.path[len(scope):-1]
                segs = tuple(escape(s) for s in rel.split("."))
                if segs[:-1]:
                    seq = b.space(segs[:-1])
                    for path in run:
                        seq.value.append((path, self.ctor[path]))
                    whole = len(run) == len(seq.value) == seq_size[segs[:-1]]
                    if seq.modlist and (len(run) == 1 or len({tuple(var[v] for v in self.reads[p])
                                                              for p in run}) > 1):
                        whole = False  # one instance, or copies that read different values: one call each
                else:
                    for path in run:
                        b.items.append(Item("child", (escape(path[len(scope):-1]),), self.ctor[path]))
                    whole = False
                mod = access("self", segs[:-1] if whole else segs)
                name = name_for(last.path[len(scope):] + "out", i)
                comment = f"  # {net.type_of(last.output)}" if comments else ""
                values = tuple(var[v] for v in self.reads[first.path])  # the values besides its input
                if whole and values:  # an nn.ModuleList: a loop passes the values to each copy
                    lines += fmt(f"{name} = ", var[first.input], "", 8)
                    lines.append(f"        for layer in {mod}:")
                    lines += fmt(f"{name} = ", Call("layer", (name, *values)), comment, 12)
                else:
                    lines += fmt(f"{name} = ", Call(mod, (var[first.input], *values)), comment, 8)
                var[last.output] = name
                holds[name] = [last.output]
                if not whole:
                    for path in run[1:]:
                        inst = self.instances[path]
                        segs = tuple(escape(s) for s in inst.path[len(scope):-1].split("."))
                        lines += fmt(f"{name} = ", Call(access("self", segs),
                                                        (name, *(var[v] for v in self.reads[inst.path]))),
                                     f"  # {net.type_of(inst.output)}" if comments else "", 8)
                continue
            x = [var[v] for v in node.inputs]
            if node.type.dtype == "float32" and node.op != "embedding":  # Keras-like autocast to float32
                x = [Call(f"{name}.float") if net.type_of(v).dtype != "float32" else name
                     for name, v in zip(x, node.inputs)]
            expr = em.emit(node, x)
            if expr is None:
                expr = x[0] if x else "None"
            if isinstance(expr, str) and expr in x:  # an identity (linear): no line
                var[node.name] = expr
                holds[expr].append(node.name)
                continue
            if isinstance(expr, tuple) and expr[0] == "iadd":
                var[node.name] = expr[1]
                holds[expr[1]] = [node.name]
                lines += fmt(f"{expr[1]} += ", expr[2], f"  # {node.type}" if comments else "", 8)
                continue
            if node.name in em.inplace and isinstance(x[0], str) and x[0] in holds:
                name = x[0]  # overwritten in place: the same variable
            elif node.op == "pad":
                name = name_for("padded.pad", i)  # the padded input of the layer after it
            else:
                name = name_for(node.name[len(scope):], i)
            var[node.name] = name
            holds[name] = [node.name]
            comment = f"  # {node.type}" if comments else ""
            if isinstance(expr, tuple) and expr[0] == "unpack":
                lines += fmt(f"{name}, _ = ", expr[1], comment, 8)
            else:
                lines += fmt(f"{name} = ", expr, comment, 8)
        b.forward = lines
        return b, var

    def chained_run(self, kid: str, kids, nodes, scope: str) -> list[str]:
        """``kid`` and the instances after it in the same Sequential that each read the one before."""
        rel = kid[len(scope):-1]
        head = rel.rsplit(".", 1)[0] if "." in rel else ""
        run = [kid]
        k = int(rel.rsplit(".", 1)[-1])
        while True:
            nxt = f"{scope}{head}.{k + 1}." if head else f"{scope}{k + 1}."
            inst = self.instances.get(nxt)
            if inst is None or self.parent[nxt] != scope or inst.input != self.instances[run[-1]].output:
                return run
            run.append(nxt)
            k += 1

    # block classes ------------------------------------------------------------------------------------------
    def blocks(self) -> None:
        """One class per block (per variant when instances differ in structure), innermost blocks first."""
        net = self.net
        height: dict[str, int] = {}
        for inst in reversed(net.instances):
            height.setdefault(inst.path, 0)
            parent = self.parent[inst.path]
            if parent:
                height[parent] = max(height.get(parent, 0), height[inst.path] + 1)
        block_height: dict[str, int] = {}
        for inst in net.instances:
            block_height[inst.block] = max(block_height.get(inst.block, 0), height[inst.path])
        defs = {b.name: b for b in net.blocks}
        for block in sorted(defs, key=lambda name: block_height[name]):
            insts = [i for i in net.instances if i.block == block]
            groups: dict[Any, list] = {}
            taken = {"self", "x", *GLOBALS, *self.class_taken}
            vnames = {p.name: _ident(p.name, taken) for p in defs[block].params}
            for inst in insts:
                # the values it reads besides its input arrive as forward() arguments named after the parameters
                inputs = {v: vnames[k] for k, v in inst.values.items()}
                names = set(vnames.values())
                extras = [v for v in self.reads[inst.path] if v not in inputs]  # through a block passed as a parameter
                for v in extras:
                    inputs[v] = _ident(v, taken | names)
                    names.add(inputs[v])
                b_signature = [vnames[k] for k in inst.values] + [inputs[v] for v in extras]
                inputs[inst.input] = "x"
                b, var = self.body(inst.path, inputs, comments=False)
                b.forward += [f"        return {var[inst.output]}"]
                b.signature = b_signature
                groups.setdefault((self.skeleton(b), tuple(b.signature)), []).append((inst, b))
            base = _camel(block)
            for k, members in enumerate(groups.values()):
                name = base if k == 0 else f"{base}_{k + 1}"
                name = _ident(name, self.class_taken)
                self.unify(name, defs[block], members)

    def skeleton(self, b: Body):
        def sk(e):
            if isinstance(e, Call):
                kws = tuple(k for k, _ in e.kwargs if k not in _KW_DEFAULTS)
                return ("call", e.func, tuple(sk(a) for a in e.args), kws, tuple(sk(v) for k, v in e.kwargs
                                                                               if k not in _KW_DEFAULTS))
            if isinstance(e, Tup):
                return ("tup", tuple(sk(a) for a in e.items))
            return "?" if _value(e) is not _NOVALUE else e

        items = tuple((it.kind, it.path, sk(it.value) if it.kind in ("layer", "child") else
                       tuple((p[len(b.prefix):], sk(c)) for p, c in it.value) if it.kind == "seq" else None)
                      for it in b.items)
        return items, tuple(b.forward), tuple(b.frozen), tuple(sk(c) for c, _ in b.inits)

    def unify(self, name: str, block: ir.BlockDef, members: list) -> None:
        """Write one class for instances of one structure; their constructor literals become parameters."""
        insts = [m[0] for m in members]
        bodies = [m[1] for m in members]
        envs = [dict(i.args) for i in insts]
        pnames: dict[str, str] = {}
        taken = {"self", "x", *GLOBALS, *self.class_taken}
        for p in block.params:
            pnames[p.name] = _ident(p.name, taken)
        used: dict[str, None] = {}  # block parameters the class reads
        extra: dict[str, list] = {}  # added constructor arguments -> values per instance
        exprs = {}
        for node in self.nodes_of(insts[0]):
            for text in node.exprs.values():
                exprs.setdefault(text, None)
        block_exprs = [_Expr(t, envs) for t in exprs] + [_Expr(p.name, envs) for p in block.params]
        in0 = [_norm(self.net.type_of(i.input).shape[0]) if self.net.type_of(i.input).rank else None for i in insts]
        in1 = [_norm(self.net.type_of(i.input).shape[-1]) if self.net.type_of(i.input).rank else None for i in insts]
        chan: dict[str, dict[int, _Expr | str | None]] = {}

        owned: dict[str, dict[str, _Expr]] = {}

        def own(rel: str) -> dict[str, _Expr]:
            if rel not in owned:
                owned[rel] = {a: _Expr(t, envs) for a, t in self.node_at(insts[0], rel).exprs.items()}
            return owned[rel]

        def resolve(values: list, candidates: list, rel_input: str | None, hint: str | None) -> str | None:
            for c in candidates:
                if c.values == values:
                    return use(c)
            if rel_input is not None:
                for axis in (0, -1):
                    c = chan.get(rel_input, {}).get(axis)
                    if isinstance(c, _Expr) and c.values == values:
                        return use(c)
            if all(v == values[0] for v in values):
                return None
            for c in block_exprs:
                if c.values == values:
                    return use(c)
            sizes = (("in_channels", in0), ("in_features", in1))
            if all(self.net.type_of(i.input).rank == 1 for i in insts):  # a vector: features, not channels
                sizes = sizes[::-1]
            for label, ref in sizes:
                if values == ref:
                    extra.setdefault(label, ref)
                    return label
            for label, known in extra.items():  # the same values already have an argument
                if known == values:
                    return label
            label = _ident(hint or f"arg{len(extra)}", set(extra) | set(pnames.values()) | taken)
            extra[label] = values
            return label

        def use(c: _Expr) -> str:
            for n in pyast.walk(c.tree):
                if isinstance(n, pyast.Name):
                    used[n.id] = None
            return c.source(pnames)

        def merge_kwargs(calls: list[Call]) -> list[str]:
            order: list[str] = []
            for c in calls:
                for i, (k, _) in enumerate(c.kwargs):
                    if k in order:
                        continue
                    later = [k2 for k2, _ in c.kwargs[i + 1:] if k2 in order]
                    order.insert(order.index(later[0]) if later else len(order), k)
            return order

        def uni(es: list, mine: dict, rel_input: str | None, candidates: list | None = None,
                hint: str | None = None):
            """One constructor expression for every instance: equal parts stay, differing literals resolve."""
            e0 = es[0]
            if isinstance(e0, Call):
                keys = merge_kwargs(es)
                positional = [c for a, c in mine.items() if a not in keys]
                args = tuple(uni([e.args[j] for e in es], mine, rel_input, positional) for j in range(len(e0.args)))
                kwargs = []
                for k in keys:
                    vals = [dict(e.kwargs).get(k, _KW_DEFAULTS.get(k)) for e in es]
                    out = uni(vals, mine, rel_input, [mine[k]] if k in mine else [], hint=k)
                    if not (k in _KW_DEFAULTS and out == _KW_DEFAULTS[k]):
                        kwargs.append((k, out))
                return Call(e0.func, args, tuple(kwargs))
            if isinstance(e0, Tup):
                return Tup(tuple(uni([e.items[j] for e in es], mine, rel_input, candidates)
                                 for j in range(len(e0.items))), e0.explode, e0.bare)
            candidates = candidates or []
            if all(e == e0 for e in es) and not candidates:
                return e0
            values = [_value(e) for e in es]
            if any(v is _NOVALUE for v in values):
                return e0  # the skeleton made them equal
            out = resolve(values, candidates, rel_input, hint)
            return e0 if out is None else out

        # channel propagation: an expression for axis 0 and -1 of every value inside the block
        first = insts[0]
        for node in self.nodes_of(first):
            rel = node.name[len(first.path):]
            nodes = [self.node_at(i, rel) for i in insts]
            chan[rel] = {}
            for axis in (0, -1):
                if not node.type.rank:
                    continue
                out = [_norm(n.type.shape[axis]) for n in nodes]
                hit = next((c for c in own(rel).values() if c.values == out), None)
                if hit is None and node.inputs:
                    src = node.inputs[0]
                    srel = src[len(first.path):] if src.startswith(first.path) else None
                    ins = [self.net.type_of(n.inputs[0]) for n in nodes]
                    if all(t.rank for t in ins) and [_norm(t.shape[axis]) for t in ins] == out:
                        hit = chan.get(srel, {}).get(axis) if srel is not None else None
                chan[rel][axis] = hit
        # constructor statements
        init: list[str] = []
        b0 = bodies[0]
        for j, item in enumerate(b0.items):
            if item.kind == "space":
                init += fmt(*_assign("self", item.path, "nn.Module()"), 8)
            elif item.kind == "layer":
                rel = item.node.name[len(first.path):]
                src = item.node.inputs[0] if item.node.inputs else None
                rel_input = src[len(first.path):] if src and src.startswith(first.path) else None
                value = uni([b.items[j].value for b in bodies], own(rel), rel_input)
                init += fmt(*_assign("self", item.path, value), 8)
            elif item.kind == "child":
                kid = first.path + item.path[0] + "."
                kid_input = self.instances[kid].input
                rel_input = kid_input[len(first.path):] if kid_input.startswith(first.path) else None
                value = uni([b.items[j].value for b in bodies], {}, rel_input)
                init += fmt(*_assign("self", item.path, value), 8)
            else:
                calls = []
                for k in range(len(item.value)):
                    kid = item.value[k][0]
                    kid_input = self.instances[kid].input
                    rel_input = kid_input[len(first.path):] if kid_input.startswith(first.path) else None
                    calls.append(uni([b.items[j].value[k][1] for b in bodies], {}, rel_input))
                init += fmt(*_assign("self", item.path, self.sequential(item, calls, first.path)), 8)
        for path in b0.frozen:
            init.append(f"        {path}.requires_grad_(False)")
        resets = []
        for j in range(len(b0.inits)):
            resets += fmt("", uni([b.inits[j][0] for b in bodies], {}, None), "", 8)
        if resets:
            init.append("        self.reset_parameters()")
        # the signature: added arguments, then the block parameters the class reads
        params = [*extra]
        defaults = {}
        for p in block.params:
            if p.name not in used:
                continue
            default = _value(p.default) if p.default is not None else _NOVALUE
            if default is not _NOVALUE:
                defaults[p.name] = (p.default, default)
                params.append(f"{pnames[p.name]}={p.default}")
            else:
                params.append(pnames[p.name])
        title = f"block {block.name}(" + ", ".join(
            p.name if p.default is None else f"{p.name}={p.default}" for p in block.params) + ")"
        src = ["", "", f"class {name}(nn.Module):"]
        src += docstring(f"The spec's {title}.", 4)
        src += ["", *_def(4, "__init__", ["self", *params]), "        super().__init__()", *init]
        if resets:
            src += ["", "    def reset_parameters(self):"]
            src += docstring("Draw the block's own weights from the spec's initialisers.", 8)
            src += resets
        src += ["", *_def(4, "forward", ["self", "x", *b0.signature]), *b0.forward]
        self.classes.append("\n".join(src))
        for n, inst in enumerate(insts):
            args = [_lit(_denorm(extra[k][n])) for k in extra]
            kwargs = []
            for p in block.params:
                if p.name not in used:
                    continue
                v = inst.args[p.name]
                if p.name in defaults:
                    if _norm(v) != defaults[p.name][1]:
                        kwargs.append((pnames[p.name], _lit(v)))
                elif kwargs:
                    kwargs.append((pnames[p.name], _lit(v)))
                else:
                    args.append(_lit(v))
            self.ctor[inst.path] = Call(name, tuple(args), tuple(kwargs))

    def sequential(self, item: Item, calls: list, scope: str):
        """``nn.Sequential(A(...), *(B(...) for _ in range(n)), ...)``: STEP * n runs stay runs."""
        members = [p for p, _ in item.value]
        out = []
        k = 0
        while k < len(members):
            run = self.runs.get(members[k])
            n = 1
            if run is not None and run.members[0] == members[k]:
                while (k + n < len(members) and members[k + n] in run.members
                       and flat(calls[k + n]) == flat(calls[k])):
                    n += 1
            out.append(f"*({flat(calls[k])} for _ in range({n}))" if n > 1 else calls[k])
            k += n
        if item.modlist:  # instances that read values besides their input are called one by one
            if len(out) == 1 and isinstance(out[0], str):  # one STEP * n run
                return Call("nn.ModuleList", (out[0][2:-1],))
            return Call("nn.ModuleList", (Call("", tuple(out), open="["),))
        return Call("nn.Sequential", tuple(out))

    def nodes_of(self, inst: ir.BlockInstance) -> list[ir.Node]:
        """The nodes directly in an instance (not in instances inside it)."""
        return self.direct.get(inst.path, [])

    def node_at(self, inst: ir.BlockInstance, rel: str) -> ir.Node:
        return self.by_name[inst.path + rel]

    # the network class ---------------------------------------------------------------------------------------
    def forward_lines(self) -> tuple[list[str], list[str], dict[str, str], list[str], Body]:
        """(signature params, body lines, value -> variable, loss intermediates, the class body)."""
        net = self.net
        out_values = set(net.outputs)
        node_names = {n.name for n in net.nodes}
        loss_values = [v for term in net.loss for v in term.args]
        intermediates = [v for v in dict.fromkeys(loss_values) if v in node_names and v not in out_values]
        taken: set[str] = set()
        inputs = {v.name: _ident(v.name, taken) for v in net.inputs}
        params = list(inputs.values())
        b, var = self.body("", inputs)
        self.em.helpers.add("_expect")
        checks = []
        for v in net.inputs:  # a clear error for an unbatched or misshapen input
            shape = Tup(tuple(_lit(d) if isinstance(d, int) else "None" for d in v.type.shape))
            checks += fmt("", Call("_expect", (inputs[v.name], _lit(v.name), shape)), "", 8)
        body = checks + b.forward
        returns = [var[v] for v in net.outputs]
        ret = returns[0] if len(returns) == 1 else Tup(tuple(returns))
        if intermediates:
            extra = Tup(tuple(var[v] for v in intermediates))
            body.append("        if return_loss_values:")
            body += fmt("return ", Tup((ret, extra), bare=True), "", 12)
            params.append("return_loss_values=False")
        body += fmt("return ", ret if isinstance(ret, str) else Tup(ret.items, bare=True), "", 8)
        return params, body, var, intermediates, b

    def init_lines(self, b: Body) -> tuple[list[str], list[str]]:
        """(``__init__`` statements, ``reset_parameters`` statements) of the network class."""
        init = []
        for item in b.items:
            if item.kind == "space":
                init += fmt(*_assign("self", item.path, "nn.Module()"), 8)
            elif item.kind in ("layer", "child"):
                init += fmt(*_assign("self", item.path, item.value), 8)
            else:
                init += fmt(*_assign("self", item.path, self.sequential(item, [c for _, c in item.value], "")), 8)
        init += [f"        {path}.requires_grad_(False)" for path in b.frozen]
        resets = [line for call, _ in b.inits for line in fmt("", call, "", 8)]
        return init, resets

    def generate(self) -> str:
        net = self.net
        em = self.em
        self.blocks()
        params, body, var, intermediates, b = self.forward_lines()
        lines: list[str] = []
        first = textwrap.wrap(f"The network {net.name}, generated by netspec.", LINE - 3)
        lines += [f'"""{first[0]}', *first[1:], "",
                  "Inputs are channels-first (NCHW); comments give per-sample shapes.", '"""']
        out: list[str] = list(self.classes)
        out += ["", "", f"class {self.cls}(nn.Module):"]
        ins = ", ".join(f"{v.name} {v.type}" for v in net.inputs)
        outs = ", ".join(f"{name} {net.type_of(v)}" for name, v in zip(net.output_names or net.outputs, net.outputs))
        out += docstring(f"{net.name}: {ins} -> {outs}.", 4)
        init, resets = self.init_lines(b)
        out += ["", "    def __init__(self):", "        super().__init__()", *init]
        if resets:
            out.append("        self.reset_parameters()")
            out += ["", "    def reset_parameters(self):"]
            out += docstring("Draw every weight of this class's own layers from the spec's initialisers.", 8)
            out += resets
        out += self.frozen_norm_lines()
        out += ["", *_def(4, "forward", ["self", *params])]
        out += body
        if net.loss:
            loss, step = self.loss_lines(var, intermediates)
            out += loss
        if net.optimizer is not None:
            out += self.optimizer_lines()
        if net.loss:
            out += step
        if em.errors:
            return ""
        used = (["_init"] if em.layers else []) + sorted(em.helpers)
        helpers = [h for h in HELPER_SOURCE if h in used]  # in the runtime module's order
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

    def frozen_norm_lines(self) -> list[str]:
        """A ``train`` override that keeps frozen (``trainable=false``) BatchNorm layers in inference mode."""
        frozen = {n.layer for n in self.net.nodes if n.op == "batchnorm" and n.attrs.get("trainable") is False}
        mods = [access("self", plan.attr.split(".")) for plan in self.em.layers.values() if plan.name in frozen]
        if not mods:
            return []
        lines = ["", "    def train(self, mode=True):"]
        lines += docstring("Training mode; frozen BatchNorm layers (trainable=false) normalise with their "
                           "moving statistics and keep them.", 8)
        lines.append("        super().train(mode)")
        lines += [f"        {m}.eval()" for m in mods]
        lines.append("        return self")
        return lines

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
            if len(term.args) != 2:  # triplet: (anchor, positive, negative)
                em.helpers.add("_" + term.fn)
                margin = (("margin", _lit(term.attrs["margin"])),) if "margin" in term.attrs else ()
                terms.append(Call("_" + term.fn, tuple(value_name[v] for v in term.args), margin))
                continue
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
                if not reg or not p.trainable:  # a frozen weight's penalty is no part of the loss (Keras's rule)
                    continue
                l1 = reg.get("l1", 0.0) if reg["name"] in ("l1", "l1_l2") else 0.0
                l2 = reg.get("l2", 0.0) if reg["name"] in ("l2", "l1_l2") else 0.0
                if l1 or l2:
                    w = access("model", plan.attr.split(".")) + _torch_path(plan.params[p.name])
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
        step.append("    loss.backward()")
        clips = [(k, _lit(v)) for k, v in self.net.optimizer.attrs.items() if k in CLIPS and v] \
            if self.net.optimizer is not None else []
        if clips:
            em.helpers.add("_clip_gradients")
            step += fmt("", Call("_clip_gradients", ("model.parameters()",), tuple(clips)), "", 4)
        step += ["    optimizer.step()", "    return loss.detach()"]
        return lines, step

    def optimizer_lines(self) -> list[str]:
        opt = self.net.optimizer
        call, decay, cls = _optimizer_call(opt)
        if cls:
            self.em.helpers.update(("_Optimizer", cls))
        lines = ["", "", "def make_optimizer(model):"]
        shown = {k: v for k, v in opt.attrs.items() if k not in CONTROLS or v != CONTROLS[k].default}
        lines += docstring(f"The spec's optimizer: {_spec_call(opt.name, shown)}.", 4)
        a = opt.attrs
        if a["schedule"] != "constant" or a["warmup"]:
            # the schedule's hook runs before every other pre-hook and step: they read this step's rate
            self.em.helpers.update(("_scheduled_lr", "_learning_rate_schedule"))
            lines += fmt("optimizer = ", call, "", 4)
            keys = ("schedule", "decay_steps", "decay_rate", "alpha", "warmup")
            hook = Call("_learning_rate_schedule", (_lit(a["lr"]),), tuple((k, _lit(a[k])) for k in keys))
            lines += fmt("", Call("optimizer.register_step_pre_hook", (hook,)), "", 4)
            if decay:
                self.em.helpers.add("_decoupled_weight_decay")
                hook = Call("_decoupled_weight_decay", (_lit(decay),))
                lines += fmt("", Call("optimizer.register_step_pre_hook", (hook,)), "", 4)
            lines.append("    return optimizer")
        elif decay:
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


_unpack = unpack_lines  # the shared printer's, at ruff's default width
_def = def_lines


def _generate(network: ir.Network) -> tuple[str, Generator]:
    gen = Generator(network)
    text = gen.generate()
    gen.em.raise_errors()
    return text, gen


def generate(network: ir.Network, **options) -> str:
    """The PyTorch source for one network (deterministic; ruff-clean)."""
    if options:
        raise TypeError(f"unknown option(s) for the torch backend: {', '.join(sorted(options))}")
    return _generate(network)[0]


def plan(network: ir.Network) -> dict[str, LayerPlan]:
    """Weight owner -> its attribute and canonical-name -> tensor-path map.

    This generates the source; a built model carries its plan as ``model.netspec_plan``.
    """
    return _generate(network)[1].em.layers


# Executing the source; canonical weights ----------------------------------------------------------------


def _execute(network: ir.Network, text: str):
    import linecache
    import types

    name = f"netspec_torch_{identifier(network.name)}"
    filename = f"<netspec-torch:{network.name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__dict__["__file__"] = filename
    exec(compile(text, filename, "exec"), module.__dict__)
    return module


def load_source(network: ir.Network):
    """Execute the generated source as a fresh module; returns the module object."""
    return _execute(network, generate(network))


def build(network: ir.Network, weights=None):
    """An ``nn.Module`` built by executing the generated source; canonical ``weights`` loaded if given.

    The executed module (``compute_loss``, ``make_optimizer``, ``train_step``)
    is reachable as ``model.netspec_module`` and the weight plan (weight owner
    -> :class:`LayerPlan`, learnt while generating) as ``model.netspec_plan``;
    both are class attributes, so that ``copy.deepcopy(model)`` still works.
    """
    text, gen = _generate(network)
    module = _execute(network, text)
    cls = getattr(module, gen.cls)
    cls.netspec_module = module
    cls.netspec_plan = gen.em.layers
    model = cls()
    if weights is not None:
        load_canonical(model, network, weights)
    return model


def _plan_of(model, network: ir.Network) -> dict[str, LayerPlan]:
    """The plan a built model carries, or (a module not made by :func:`build`) the network's."""
    plans = getattr(type(model), "netspec_plan", None)
    return plans if isinstance(plans, dict) else plan(network)


def _tensor(model, attr: str, path: str):
    """The tensor at ``attr`` (a dotted submodule path) + ``path`` (its parameter path)."""
    obj = model
    for part in (*attr.split("."), *path.split(".")):
        obj = getattr(obj, part)
    return obj


def _weights_error(network: ir.Network, message: str) -> SpecError:
    return SpecError([Diagnostic("E602", message, network.span)])


def load_canonical(model, network: ir.Network, weights) -> None:
    """Copy canonical weights (``<layer>.<param>`` -> array) into a built module, exactly."""
    import numpy as np
    import torch

    from ..weights import prepare_weights

    weights = prepare_weights(weights, network)  # the one weights boundary (type, dtype, shape, finiteness)
    layers = _plan_of(model, network)
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

    ``layers`` is the weight plan when the caller already has it; by default the one the model
    carries (``model.netspec_plan``).
    """
    import torch

    out = {}
    with torch.no_grad():
        for plan_ in (layers or _plan_of(model, network)).values():
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


# ---- Attention and Transformers (issue 14) ----------------------------------------------------------------


def _emit_attention(self: TorchEmitter, node, x):
    a = node.attrs
    net = self.network
    cross = len(node.inputs) - a["mask"] >= 2
    dq = net.type_of(node.inputs[0]).shape[1]
    dkv = net.type_of(node.inputs[1]).shape[1] if cross else dq
    kw = []
    if not a["use_bias"]:
        kw.append(("bias", "False"))
    if a["dropout"]:
        kw.append(("dropout", _lit(a["dropout"])))
    if a["causal"]:
        kw.append(("causal", "True"))
    names = ("q", "k", "v", "o")
    params = {f"{p}_kernel": f"{p}.weight" for p in names}
    if a["use_bias"]:
        params.update({f"{p}_bias": f"{p}.bias" for p in names})
    self.helpers.add("_Attention")
    ctor = Call("_Attention", tuple(_lit(v) for v in (dq, dkv, a["heads"], a["key_dim"], a["value_dim"],
                                                        a["units"])), tuple(kw))
    mod = self.layer(node, ctor, params)
    args = (x[0], x[1]) if cross else (x[0],)
    return Call(mod, args, (("mask", x[-1]),) if a["mask"] else ())


def _emit_position_embedding(self: TorchEmitter, node, x):
    d = node.type.shape[1]
    self.helpers.add("_PositionEmbedding")
    mod = self.layer(node, Call("_PositionEmbedding", (_lit(node.attrs["max_len"]), _lit(d))),
                     {"embeddings": "weight"})
    return Call(mod, (x[0],))


def _emit_sinusoidal_position(self: TorchEmitter, node, x):
    self.helpers.add("_sinusoidal_position")
    base = node.attrs["base"]
    return Call("_sinusoidal_position", (x[0],), () if base == 10000.0 else (("base", _lit(base)),))


def _emit_class_token(self: TorchEmitter, node, x):
    self.helpers.add("_ClassToken")
    mod = self.layer(node, Call("_ClassToken", (_lit(node.type.shape[1]),)), {"token": "token"})
    return Call(mod, (x[0],))


def _emit_select(self: TorchEmitter, node, x):
    return Call("torch.select", (x[0], _lit(node.attrs["axis"] + 1), _lit(node.attrs["index"])))


def _emit_embedding_or_tied(self: TorchEmitter, node, x):
    """A lookup, or (on vectors) the projection onto the vocabulary with the same table: x E^T."""
    if not node.attrs.get("reverse"):
        return _emit_embedding(self, node, x)
    a = node.attrs
    mod = self.layer(node, Call("nn.Embedding", (_lit(a["vocab"]), _lit(a["dim"]))), {"embeddings": "weight"})
    return Call("F.linear", (x[0], f"{mod}.weight"))


TorchEmitter.TRANSFORMS.update({
    "attention": _emit_attention,
    "position_embedding": _emit_position_embedding,
    "sinusoidal_position": _emit_sinusoidal_position,
    "class_token": _emit_class_token,
    "select": _emit_select,
    "embedding": _emit_embedding_or_tied,
})
_NEW_HELPERS = ("_Attention", "_PositionEmbedding", "_sinusoidal_position", "_ClassToken")
HELPERS += _NEW_HELPERS
GLOBALS = GLOBALS | frozenset(_NEW_HELPERS)


# Lecture ops (issue 13): elementwise math, random ops, sequence plumbing ----------------------------------

_MATH_FUNCS = {"exp": "torch.exp", "log": "torch.log", "sqrt": "torch.sqrt", "square": "torch.square",
               "abs": "torch.abs", "negative": "torch.neg"}


def _emit_math(self: TorchEmitter, node, x):
    if node.op in _MATH_FUNCS:
        return Call(_MATH_FUNCS[node.op], (x[0],))
    return Call("torch.mul" if node.op == "scale" else "torch.add", (x[0], _lit(node.attrs["by"])))


def _emit_gaussian_noise(self: TorchEmitter, node, x):
    self.helpers.add("_gaussian_noise")
    return Call("_gaussian_noise", (x[0], _lit(node.attrs["stddev"]), "self.training"))


def _emit_sample_normal(self: TorchEmitter, node, x):
    self.helpers.add("_sample_normal")
    kw = (("scale", _lit(node.attrs["scale"])),) if node.attrs["scale"] != 1.0 else ()
    return Call("_sample_normal", (x[0], x[1], "self.training"), kw)


def _emit_repeat_vector(self: TorchEmitter, node, x):
    self.helpers.add("_repeat_vector")
    return Call("_repeat_vector", (x[0], _lit(node.attrs["n"])))


def _emit_repeat_like(self: TorchEmitter, node, x):
    self.helpers.add("_repeat_like")
    return Call("_repeat_like", (x[0], x[1]))


TorchEmitter.TRANSFORMS.update({
    **{name: _emit_math for name in (*_MATH_FUNCS, "scale", "shift")},
    "gaussian_noise": _emit_gaussian_noise,
    "sample_normal": _emit_sample_normal,
    "repeat_vector": _emit_repeat_vector,
    "repeat_like": _emit_repeat_like,
})


def _mask_expr(self: TorchEmitter, node, x):
    """The mask [N, T] a node reads: computed from its last input (the mask's source)."""
    self.helpers.add("_mask")
    return Call("_mask", (x[-1], _lit(node.attrs["sequence_mask"]), _lit(node.attrs["sequence_mask_value"])))


def _emit_rnn_state(self: TorchEmitter, node, x):
    """A recurrent layer with initial_state (its inputs after the sequence), return_state (a tuple value) or a mask
    (its last input is the mask's source)."""
    a = node.attrs
    if not (a.get("initial_state") or a.get("return_state") or a.get("sequence_mask")):
        return _emit_rnn(self, node, x)
    features = self.network.type_of(node.inputs[0]).shape[1]
    params, fixed, plus = _rnn_plan(node.op, a, (("", ""),))
    mod = self.layer(node, _rnn_ctor(node.op, features, a, False), params, fixed, plus)
    states = x[1:-1] if a.get("sequence_mask") else x[1:]
    args = (x[0],)
    if a.get("initial_state"):
        self.helpers.add("_initial_state")
        args = (x[0], Call("_initial_state", tuple(states)))
    call = Call(mod, args)
    if a.get("sequence_mask"):
        self.helpers.add("_masked")
        call = Call("_masked", (mod, x[0], _mask_expr(self, node, x), *args[1:]))
    if a.get("return_state"):
        self.helpers.add("_with_state")
        return Call("_with_state", (call,), (("last", _lit(not a["return_sequences"])),))
    if a["return_sequences"]:
        return ("unpack", call)
    self.helpers.add("_final_state")
    return Call("_final_state", (call,))


def _emit_result(self: TorchEmitter, node, x):
    return f"{x[0]}[{node.attrs['index']}]"


TorchEmitter.TRANSFORMS.update({"simple_rnn": _emit_rnn_state, "lstm": _emit_rnn_state, "gru": _emit_rnn_state,
                                "result": _emit_result})


def _emit_masking(self: TorchEmitter, node, x):
    self.helpers.add("_masking")
    return Call("_masking", (x[0], _lit(node.attrs["value"])))


def _emit_global_pool_masked(self: TorchEmitter, node, x):
    if not node.attrs.get("sequence_mask"):
        return _emit_global_pool(self, node, x)
    self.helpers.add("_masked_pool")
    return Call("_masked_pool", (x[0], _mask_expr(self, node, x), _lit("max" if "max" in node.op else "avg")))


TorchEmitter.TRANSFORMS.update({"masking": _emit_masking, "global_avgpool1d": _emit_global_pool_masked,
                                "global_maxpool1d": _emit_global_pool_masked})


# The backend contract ------------------------------------------------------------------------------


class TorchBackend(Backend):
    """PyTorch behind the contract: an adapter over ``netspec.backends.torch``'s module functions.

    The weight plan (canonical name -> module tensor) is learnt while the build generates the source
    (``model.netspec_plan``) and kept in ``Built.state``; the optimiser is the generated
    ``make_optimizer``'s, made at the first step.
    """

    name = "torch"
    emits_source = trains = True

    @staticmethod
    def _module():
        return sys.modules[__name__]

    @property
    def lowering(self):
        """The passes the PyTorch generator runs (``netspec.backends.torch.LOWERING``)."""
        return self._module().LOWERING

    def generate(self, network: ir.Network, **options) -> str:
        return self._module().generate(network, **options)

    def build(self, network: ir.Network, weights=None, dtype: str = "float32", eager: bool = False,
              **options) -> Built:
        if options:
            raise TypeError(f"unknown option(s) for the torch backend: {', '.join(sorted(options))}")
        tb = self._module()
        model = tb.build(network, weights)
        if dtype == "float64":
            model.double()
        elif dtype != "float32":
            raise ValueError(f"dtype must be float32 or float64; received {dtype}")
        return Built(model, network, {"plan": model.netspec_plan})  # learnt while generating: no second pass

    def load_canonical(self, built: Built, weights) -> None:
        self._module().load_canonical(built.model, built.network, weights)

    def export_canonical(self, built: Built) -> dict:
        return self._module().export_canonical(built.model, built.network, built.state["plan"])

    def _tensors(self, values: dict, names) -> list:
        import numpy as np
        import torch

        return [torch.from_numpy(np.ascontiguousarray(values[n])) for n in names]

    def run(self, built: Built, inputs: dict) -> list:
        import torch

        built.model.eval()
        with torch.no_grad():
            result = built.model(*self._tensors(inputs, [v.name for v in built.network.inputs]))
        result = result if isinstance(result, (tuple, list)) else (result,)
        return [r.detach().numpy() for r in result]

    def train_step(self, built: Built, inputs: dict, targets: dict) -> float:
        module = built.model.netspec_module
        if "optimizer" not in built.state:
            built.state["optimizer"] = module.make_optimizer(built.model)
        x = self._tensors(inputs, [v.name for v in built.network.inputs])
        t = self._tensors(targets, [v.name for v in built.network.targets])
        return float(module.train_step(built.model, built.state["optimizer"], x, t))

    def seed(self, seed: int) -> None:
        import_module("torch").manual_seed(seed)
