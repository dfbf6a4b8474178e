"""The Keras 3 backend: generated functional-API source, canonical weights in and out.

``generate(network)`` writes a module with one ``build_<network>()`` function that
returns a compiled ``keras.Model``; ``build(network, weights)`` executes that very
source and loads canonical weights. Generating imports no framework; building,
loading and exporting import Keras (TensorFlow backend by default) quietly.

Layouts. Every Keras value is held either in the spec's order (``CF``: channels
first for spatial data) or with the spec's axis 0 moved last (``CL``). Spatial
layers (convolutions, pools, padding, upsampling) always read ``CL``, the one layout
TensorFlow implements on every device (its CPU convolutions accept only NHWC when
oneDNN is off); the target's layout (``channels_last`` by default,
``channels_first`` as an option) is the layout of the model's inputs and outputs,
with a ``Permute`` at the boundary under ``channels_first``. Dense layers,
flatten, reshape, permute, recurrent layers, embeddings and ``dot`` read the spec's
order; the rest (activations, dropout, batchnorm, merges, concat) keep whatever
layout their input has, with axes mapped. A ``Permute`` is inserted where a value
is needed in the other layout, once per value. So ``flatten`` after a convolution
flattens in the spec's channels-first order (a ``Permute`` before ``Flatten``),
and canonical dense kernels load without any row permutation.

See docs/keras.md for every conversion and choice.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ir, lower, shapes
from ..diagnostics import Diagnostic, SpecError
from ..ops.registry import ACTIVATION_OPS, FAMILIES, OPS
from . import structure
from .base import Backend, Built, Emitter, helper_source, identifier, literal
from .keras_render import _call_lines, _ints, _kw, _lit, _pairs
from .keras_training import TrainingMixin, _fans, _init_expr, _keras_fans, _reg_expr

LAYOUTS = ("channels_last", "channels_first")
CF, CL = "cf", "cl"

#: Python names the generated module uses itself.
_RESERVED = {"keras", "layers", "model", "float", "kl_normal", "ConstantPadding", "PaddedAveragePooling", "TanhGelu",
             "SpecOrthogonal", "ConvTransposeByConv", "DilatedConv1DTranspose", "DilatedConv2DTranspose",
             "DilatedConv3DTranspose",
             "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge",
             "kl_divergence"}

_SIMPLE_ACTIVATIONS = {"relu", "sigmoid", "tanh", "relu6", "swish", "softplus", "hard_sigmoid"}
#: Families that keep whatever layout their input has (axes mapped).
_AGNOSTIC = {"dropout", "batchnorm", "activation", "elementwise", "concat"}


def _fusable(node: ir.Node, act: dict) -> bool:
    """An ``activation=`` Keras writes as the layer's own ``activation`` argument (softmax: decided per layout)."""
    name = act["name"]
    return (name in _SIMPLE_ACTIVATIONS or name == "softmax" or (name == "elu" and act["alpha"] == 1.0)
            or (name == "gelu" and not act["approximate"]))


#: The lowering passes the Keras generator runs (netspec/lower.py): Keras layers pad only 'valid' or
#: 'same', so other pads become ZeroPadding / ConstantPadding layers; activations Keras cannot fuse
#: become layers of their own.
LOWERING = (lower.ceil_extra, lower.same_intent, lower.pads("not_same"), lower.unfuse(_fusable))


def keras_name(name: str) -> str:
    """The Keras layer name of a spec name: dots become dashes.

    Keras's torch backend registers variables under ``<layer>/<variable>`` and
    PyTorch rejects dots there; TensorFlow's scope names allow dashes, and no
    spec name contains one, so the mapping is one-to-one.
    """
    return name.replace(".", "-")


def _frozen(node: ir.Node) -> list[str]:
    """``trainable=False`` for a layer the spec freezes (a BatchNorm then also runs in inference mode)."""
    return [_kw("trainable", "False")] if node.attrs.get("trainable") is False else []


def _rank_of(node: ir.Node) -> int:
    """The spatial rank of a node's op (a lowered ``pad``: its number of padded axes)."""
    if node.op == "pad":
        return len(node.attrs["padding"])
    return OPS[node.op].rank


def _family(node: ir.Node) -> str:
    return "pad" if node.op == "pad" else OPS[node.op].family


# Plans ---------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """How one node becomes Keras layers: optional per-use layers around one main layer."""

    cls: str
    args: list[str]
    layout: str | None  # the layout the input is read in (None: the input's own)
    pre: list[tuple[str, list[str], str]] = field(default_factory=list)  # (class, args, name suffix)
    post: list[tuple[str, list[str], str]] = field(default_factory=list)
    out_layout: str | None = None  # default: the input layout

    def ctor(self) -> str:
        return f"{self.cls}({', '.join(self.args)})"


class KerasGenerator(TrainingMixin, Emitter):
    """Generates the Keras source of one network."""

    backend = "keras"

    def __init__(self, network: ir.Network, layout: str = "channels_last"):
        network = lower.lower(network, LOWERING)
        super().__init__(network)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout '{layout}'; expected one of {', '.join(LAYOUTS)}")
        self.layout = layout
        # The model's inputs and outputs follow the layout asked for; spatial layers always run
        # channels-last: TensorFlow's CPU Conv and ConvTranspose kernels without oneDNN (CPUs
        # without AVX-512) reject NCHW, so data_format="channels_first" would not run everywhere.
        self.interface = CL if layout == "channels_last" else CF
        self.spatial = CL
        self.types: dict[str, ir.TensorType] = {v.name: v.type for v in (*network.inputs, *network.targets)}
        for n in network.nodes:
            self.types[n.name] = n.type
        self.consumers: dict[str, list[ir.Node]] = {}
        for n in network.nodes:
            for i in dict.fromkeys(n.inputs):
                self.consumers.setdefault(i, []).append(n)
        self.uses: dict[str, list[ir.Node]] = {}
        for n in network.nodes:
            self.uses.setdefault(n.layer, []).append(n)
        self.pynames: set[str] = set(_RESERVED)
        self.knames: set[str] = {keras_name(n) for n in (*(v.name for v in network.inputs),
                                                         *(n.name for n in network.nodes),
                                                         *(n.layer for n in network.nodes))}
        self.vars: dict[tuple[str, str], str] = {}
        self.natural: dict[str, str] = {}
        self.body: list[str] = []
        self.shared_lines: list[str] = []
        self.shared_vars: dict[str, str] = {}
        self.shared_native: dict[str, bool] = {}
        #: whether an emitter may use Keras's own padding modes ('same', 'valid' with output fill);
        #: False while planning the uses of a shared layer whose uses would need different layers
        self.native = True
        self.helpers: set[str] = set()
        self.local_helpers: dict[str, str] = {}
        self.input_layouts: dict[str, str] = {}
        self.output_layouts: list[str] = []
        self.output_vars: list[str] = []

    # names and layouts -------------------------------------------------------------------
    def pyname(self, name: str) -> str:
        return identifier(name, self.pynames)

    def kname(self, base: str) -> str:
        """A fresh Keras layer name for an auxiliary layer (``<node>.<suffix>``)."""
        name, k = base, 1
        while keras_name(name) in self.knames:
            k += 1
            name = f"{base}_{k}"
        self.knames.add(keras_name(name))
        return name

    def rank(self, value: str) -> int:
        return self.types[value].rank

    def norm_layout(self, value: str, layout: str) -> str:
        return CF if self.rank(value) <= 1 else layout

    def keras_order(self, rank: int, layout: str) -> list[int]:
        """Spec axes in the order Keras holds them (per sample)."""
        return list(range(rank)) if layout == CF or rank <= 1 else [*range(1, rank), 0]

    def kaxis(self, axis: int, rank: int, layout: str) -> int:
        """The Keras axis (batch included; -1 for the last) of a per-sample spec axis."""
        pos = self.keras_order(rank, layout).index(axis % rank)
        return -1 if pos == rank - 1 else pos + 1

    def var(self, value: str, layout: str) -> str:
        """The Python variable holding ``value`` in ``layout``; inserts a Permute once when needed."""
        layout = self.norm_layout(value, layout)
        if (value, layout) in self.vars:
            return self.vars[(value, layout)]
        have = self.natural[value]
        src = self.vars[(value, have)]
        r = self.rank(value)
        if layout == CL:
            dims, suffix = (*range(2, r + 1), 1), "to_channels_last"
        else:
            dims, suffix = (r, *range(1, r)), "to_channels_first"
        kname = self.kname(f"{value}.{suffix}")
        out = self.pyname(kname)
        self.body += _call_lines(out, "layers.Permute", [literal(dims), _kw("name", _lit(keras_name(kname)))], src)
        self.vars[(value, layout)] = out
        return out

    def memory_var(self, value: str) -> str:
        """The variable whose row-major order is the spec's (flatten, reshape): no Permute when equivalent."""
        have = self.natural[value]
        if have == CF or (value, CF) in self.vars:
            return self.var(value, CF)
        shape = self.types[value].shape
        cl_order = [a for a in self.keras_order(len(shape), CL) if shape[a] != 1]
        if cl_order == sorted(cl_order):
            return self.vars[(value, have)]
        return self.var(value, CF)

    def put(self, value: str, var: str, layout: str) -> None:
        layout = self.norm_layout(value, layout)
        self.vars[(value, layout)] = var
        self.natural[value] = layout

    def layout_of(self, value: str) -> str:
        return self.natural[value]

    def wants(self, node: ir.Node, value: str) -> str | None:
        """The layout a node reads ``value`` in: CL, CF, or None (whatever it has)."""
        family = _family(node)
        if family == "pad" or OPS[node.op].spatial:
            return self.spatial_layout(node)
        if family in _AGNOSTIC:
            return None
        if family == "layernorm":
            return CF if 0 in node.attrs["axis"] and self.rank(value) >= 2 else None
        return CF

    def spatial_layout(self, node: ir.Node) -> str:
        """Keras's 1-D Cropping and UpSampling have no data_format: they work channels-last."""
        if self.spatial == CF and _rank_of(node) == 1:
            if _family(node) == "upsample":
                return CL
            if _family(node) == "conv_transpose" and any(c != (0, 0) for c in node.attrs["padding"]):
                return CL
        return self.spatial

    def data_format(self, layout: str) -> list[str]:
        return [] if layout == CL else [_kw("data_format", '"channels_first"')]

    def input_layout(self, value: ir.Value) -> str:
        """Channels-last (in that mode) for float images and volumes, and for signals that reach a spatial layer."""
        t = value.type
        if self.interface == CF or t.rank <= 1 or t.is_integer:
            return CF
        if t.rank >= 3:
            return CL
        todo, seen = [value.name], set()
        while todo:
            v = todo.pop()
            for c in self.consumers.get(v, ()):
                w = self.wants(c, v)
                if w == CL:
                    return CL
                if w is None and c.name not in seen and len(c.inputs) == 1:
                    seen.add(c.name)
                    todo.append(c.name)
        return CF

    # emission --------------------------------------------------------------------------------
    def generate(self) -> str:
        net = self.network
        fn = identifier(f"build_{net.name}")
        self.pynames.add(fn)
        inputs = []
        for v in net.inputs:
            layout = self.input_layout(v)
            var = self.pyname(v.name)
            shape = self.keras_shape_of_type(v.type, layout)
            args = [_kw("shape", literal(shape))]
            if v.type.dtype != "float32":
                args.append(_kw("dtype", _lit(v.type.dtype)))
            args.append(_kw("name", _lit(v.name)))
            self.body += _call_lines(var, "keras.Input", args, "")
            self.put(v.name, var, layout)
            self.input_layouts[v.name] = self.norm_layout(v.name, layout)
            inputs.append(var)
            if layout != self.spatial and any(self.wants(c, v.name) == self.spatial
                                              for c in self.consumers.get(v.name, ())):
                self.var(v.name, self.spatial)  # the boundary Permute beside its input, not in a block's lines
        spans = {}
        for node in net.nodes:
            start = len(self.body)
            self.emit_node(node)
            spans[node.name] = (start, len(self.body))
        for value in net.outputs:
            want = self.natural[value]
            if self.rank(value) >= 3:
                want = self.interface
            elif self.interface == CF:
                want = CF
            self.output_vars.append(self.var(value, want))
            self.output_layouts.append(self.norm_layout(value, want))
        model_cls, compile_args, fit = self.training()
        self.errors = list(dict.fromkeys(self.errors))
        self.raise_errors({})
        ins = inputs[0] if len(inputs) == 1 else "[" + ", ".join(inputs) + "]"
        outs = self.output_vars[0] if len(self.output_vars) == 1 else "[" + ", ".join(self.output_vars) + "]"
        value_vars: dict[str, set[str]] = {}
        for (value, _), var in self.vars.items():
            value_vars.setdefault(value, set()).add(var)
        functions, self.body = structure.mirror(
            net, structure.Flat(self.body, spans, self.output_vars, _RESERVED | self.helpers | set(self.local_helpers),
                                value_vars),
            keras_name, self.pynames, _call_lines)
        lines = [*self.header(fit), "", "import keras", "from keras import layers", ""]
        for helper in sorted(self.helpers):
            text = self.local_helpers.get(helper) or helper_source(_HELPERS_FILE, helper)
            lines += ["", *text.strip("\n").splitlines(), ""]
        if model_cls:
            lines += ["", *model_cls, ""]
        if functions:
            lines += [*functions[1:], ""]
        lines += ["", f"def {fn}():", f'    """Build the compiled {net.name} model ({self.layout})."""']
        if self.shared_lines:
            lines += ["    # Layers used more than once share their weights.", *self.shared_lines]
        lines += self.body
        cls = self.model_class_name if model_cls else "keras.Model"
        lines += _call_lines("model", cls, [_kw("inputs", ins), _kw("outputs", outs), _kw("name", _lit(net.name))],
                             "")
        if compile_args:
            lines += _call_lines("", "model.compile", compile_args, "")
        lines += ["    return model", ""]
        return "\n".join(lines)

    def keras_shape_of_type(self, t: ir.TensorType, layout: str) -> tuple:
        order = self.keras_order(t.rank, layout if t.rank > 1 else CF)
        return tuple(t.shape[a] if isinstance(t.shape[a], int) else None for a in order)

    def signature(self, name: str, value: str, layout: str) -> str:
        shape = self.keras_shape_of_type(self.types[value], layout)
        return f"{name} [{', '.join('None' if d is None else str(d) for d in shape)}]"

    def header(self, fit: str) -> list[str]:
        net = self.network
        src = f" from {os.path.basename(net.span.file)}" if net.span and net.span.file else ""
        ins = ", ".join(self.signature(v.name, v.name, self.input_layouts[v.name]) for v in net.inputs)
        outs = ", ".join(self.signature(n, v, layout) for n, v, layout in
                         zip(net.output_names or net.outputs, net.outputs, self.output_layouts))
        moved = "images are [H, W, C]; the spec writes [C, H, W]" if self.interface == CL else \
            "images are [C, H, W], as in the spec; layers run channels-last"
        out = [f'"""{net.name}: a Keras 3 model generated by netspec{src}.', "",
               f"Layout: {self.layout} ({moved}).",
               f"Inputs (per sample): {ins}.",
               f"Outputs (per sample): {outs}."]
        if fit:
            out.append(f"Training: {fit}.")
        wrapped = []  # lines beyond 120 characters continue, indented, after a ", "
        for line in out:
            parts = line.split(", ")
            current = parts[0]
            for part in parts[1:]:
                if len(current) + len(part) + 3 > 120:
                    wrapped.append(current + ",")
                    current = "    " + part
                else:
                    current += ", " + part
            wrapped.append(current)
        return [*wrapped, '"""']

    def emit_node(self, node: ir.Node) -> None:
        fn = self.TRANSFORMS.get(node.op)
        if fn is None:
            self.emit(node)  # records E601
            self.put(node.name, "None", CF)
            return
        if fn not in _DIRECT and self.is_shared(node):
            plan = self.shared_plan(node)
        else:
            plan = fn(self, node)
        if plan is not None:
            self.emit_plan(node, plan)
        if node.name not in self.natural:  # unsupported: keep going to report every error at once
            self.put(node.name, "None", CF)

    def is_shared(self, node: ir.Node) -> bool:
        """One Keras layer object for every use: only weight owners need it."""
        return bool(node.params) and len(self.uses[node.layer]) > 1

    @staticmethod
    def main_name(node: ir.Node) -> str:
        """The Keras name of a node's main layer: the weight owner's name, else the node's own."""
        return node.layer if node.params else node.name

    def shared_plan(self, node: ir.Node) -> _Plan | None:
        """The plan of one use of a shared layer: one Keras layer object, made once, for every use."""
        try:
            return self._shared_plan(node, self.TRANSFORMS[node.op])
        finally:
            self.native = True

    def _shared_plan(self, node: ir.Node, fn) -> _Plan | None:
        if node.layer not in self.shared_native:
            native = self.native = True
            plans = [fn(self, n) for n in self.uses[node.layer]]
            if None in plans:
                return None
            if len({p.ctor() for p in plans}) > 1:
                native = self.native = False
                plans = [fn(self, n) for n in self.uses[node.layer]]
                if len({p.ctor() for p in plans}) > 1:
                    self.fail(node, "a shared layer whose uses need different Keras layers")
                    return None
            self.shared_native[node.layer] = native
            var = self.pyname(node.layer)
            self.shared_vars[node.layer] = var
            args = [*plans[0].args, *_frozen(node), _kw("name", _lit(keras_name(node.layer)))]
            self.shared_lines += _call_lines(var, plans[0].cls, args, "")
        self.native = self.shared_native[node.layer]
        return fn(self, node)

    def emit_plan(self, node: ir.Node, plan: _Plan) -> None:
        src = node.inputs[0]
        layout = plan.layout or self.layout_of(src)
        x = self.var(src, layout)
        for cls, args, suffix in plan.pre:
            kname = self.kname(f"{node.name}.{suffix}")
            out = self.pyname(kname)
            self.body += _call_lines(out, cls, [*args, _kw("name", _lit(keras_name(kname)))], x)
            x = out
        main_name = node.name if not plan.post else node.name + ".main"
        out = self.pyname(main_name if plan.post else node.name)
        if node.layer in self.shared_vars:
            self.body.append(f"    {out} = {self.shared_vars[node.layer]}({x})")
        else:
            self.body += _call_lines(out, plan.cls, [*plan.args, *_frozen(node),
                                                     _kw("name", _lit(keras_name(self.main_name(node))))], x)
        x = out
        for i, (cls, args, suffix) in enumerate(plan.post):
            kname = self.kname(f"{node.name}.{suffix}")
            out = self.pyname(node.name if i == len(plan.post) - 1 else kname)
            self.body += _call_lines(out, cls, [*args, _kw("name", _lit(keras_name(kname)))], x)
            x = out
        self.put(node.name, x, plan.out_layout or layout)

    def simple(self, node: ir.Node, cls: str, args: list[str], inputs: list[str], layout: str) -> None:
        """Emit one layer called on one or several inputs (merges)."""
        out = self.pyname(node.name)
        operand = inputs[0] if len(inputs) == 1 else "[" + ", ".join(inputs) + "]"
        self.body += _call_lines(out, cls, [*args, _kw("name", _lit(keras_name(node.name)))], operand)
        self.put(node.name, out, layout)

    # activations, initialisers, regularisers ------------------------------------------------
    def activation(self, act: dict | None, rank: int, layout: str) -> tuple[list[str], list]:
        """(kwargs for the layer, post layers) for an ``activation=`` attribute."""
        if act is None or act["name"] == "linear":
            return [], []
        name = act["name"]
        if name in _SIMPLE_ACTIVATIONS or (name == "elu" and act["alpha"] == 1.0) or (
                name == "gelu" and not act["approximate"]):
            return [_kw("activation", _lit(name))], []
        if name == "softmax" and (rank <= 1 or self.kaxis(act["axis"], rank, layout) == -1):
            return [_kw("activation", '"softmax"')], []
        cls, args = self.activation_layer(act, rank, layout)
        return [], [(cls, args, name)]

    def activation_layer(self, act: dict, rank: int, layout: str) -> tuple[str, list[str]]:
        name = act["name"]
        if name == "leaky_relu":
            return "layers.LeakyReLU", [_kw("negative_slope", literal(act["alpha"]))]
        if name == "elu":
            return "layers.ELU", [_kw("alpha", literal(act["alpha"]))]
        if name == "softmax":
            axis = self.kaxis(act["axis"], max(rank, 1), layout) if rank else -1
            return "layers.Softmax", [] if axis == -1 else [_kw("axis", str(axis))]
        if name == "gelu" and act["approximate"]:
            self.helpers.add("TanhGelu")
            return "TanhGelu", []
        return "layers.Activation", [_lit(name)]

    def init(self, kw: str, init: dict, default: dict, canon: tuple[int, ...] | None = None,
             keras: tuple[int, ...] | None = None) -> list[str]:
        scaled = FAMILIES["initializer"][init["name"]].variance is not None
        if init == default and not (canon and scaled and _fans(canon) != _keras_fans(keras)):
            return []
        if init["name"] == "orthogonal" and kw in ("bias_initializer", "gamma_initializer", "beta_initializer"):
            expr = f"SpecOrthogonal({literal(init.get('gain', 1.0))})"  # a vector: Keras's Orthogonal rejects rank 1
        else:
            expr = _init_expr(init, canon, keras)
        if expr.startswith("SpecOrthogonal("):
            self.helpers.add("SpecOrthogonal")
        return [_kw(kw, expr)]

    def reg(self, kw: str, reg: dict | None) -> list[str]:
        return [] if reg is None else [_kw(kw, _reg_expr(reg))]

    def weight_args(self, node: ir.Node, kernel_kw: str = "kernel", canon=None, keras=None) -> list[str]:
        a = node.attrs
        out = []
        if not a["use_bias"]:
            out.append("use_bias=False")
        out += self.init(f"{kernel_kw}_initializer", a["kernel_init"], {"name": "glorot_uniform"}, canon, keras)
        if a["use_bias"]:
            out += self.init("bias_initializer", a["bias_init"], {"name": "zeros"})
        out += self.reg(f"{kernel_kw}_regularizer", a["kernel_regularizer"])
        if a["use_bias"]:
            out += self.reg("bias_regularizer", a["bias_regularizer"])
        return out


# Op transforms ------------------------------------------------------------------------------


def _conv_padding(node: ir.Node) -> list[str]:
    """The Keras padding argument of a lowered windowed op: 'same' where that is the intent, else 'valid'.

    Lowering (``pad_nodes``) has moved every other padding into a ``pad`` node before the layer.
    """
    if node.attrs.get("same") and any(p != (0, 0) for p in node.attrs["padding"]):
        return ['padding="same"']
    return []


def _pad(g: KerasGenerator, node: ir.Node) -> _Plan:
    """A lowered ``pad`` node: ZeroPadding, or ConstantPadding(-inf) before a max pool."""
    a = node.attrs
    layout = g.spatial_layout(node)
    fmt = g.data_format(layout)
    if a["value"] == 0:
        return _Plan(f"layers.ZeroPadding{len(a['padding'])}D", [_pairs(a["padding"]), *fmt], layout)
    g.helpers.add("ConstantPadding")
    value = 'float("-inf")' if a["value"] == float("-inf") else literal(a["value"])
    return _Plan("ConstantPadding", [literal(tuple(tuple(p) for p in a["padding"])), f"value={value}", *fmt], layout)


def _conv(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    # An argument a block parameter sets (node.exprs) is written even at its default, so that every
    # instance of the block writes the same line and the block can become one function.
    a = node.attrs
    r = _rank_of(node)
    layout = g.spatial_layout(node)
    if any(s > 1 for s in a["stride"]) and any(d > 1 for d in a["dilation"]):
        g.fail(node, "stride and dilation both above 1 (TensorFlow cannot)")
        return None
    padding = _conv_padding(node)
    c_in = g.types[node.inputs[0]].shape[0]
    canon = (a["filters"], c_in // a["groups"], *a["kernel"])
    args = [str(a["filters"]), _ints(a["kernel"])]
    if any(s != 1 for s in a["stride"]) or "stride" in node.exprs:
        args.append(_kw("strides", _ints(a["stride"])))
    args += padding + g.data_format(layout)
    if any(d != 1 for d in a["dilation"]) or "dilation" in node.exprs:
        args.append(_kw("dilation_rate", _ints(a["dilation"])))
    if a["groups"] != 1:
        args.append(_kw("groups", str(a["groups"])))
    act, post = g.activation(a["activation"], node.type.rank, layout)
    args += act + g.weight_args(node, canon=canon, keras=_to_keras_shape(canon))
    return _Plan(f"layers.Conv{r}D", args, layout, [], post)


def _conv_transpose(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    a = node.attrs
    r = _rank_of(node)
    layout = g.spatial_layout(node)
    if a["groups"] != 1:
        g.fail(node, "grouped transposed convolutions (Keras has none)")
        return None
    if any(s > 1 for s in a["stride"]) and any(d > 1 for d in a["dilation"]):
        g.fail(node, "stride and dilation both above 1 (TensorFlow cannot)")
        return None
    # TensorFlow's CPU kernels without oneDNN cannot dilate a transposed convolution: a helper
    # computes it as the dilated convolution it equals (the stride is 1 here), always, so the
    # generated source is the same on every machine.
    dilated = any(d > 1 for d in a["dilation"])
    crops = tuple(tuple(c) for c in a["padding"])
    op = tuple(a["output_padding"])
    k_eff = [shapes.effective_kernel(k, d) for k, d in zip(a["kernel"], a["dilation"])]
    same = tuple(shapes.transpose_same_cropping(k, s, d) for k, s, d in zip(a["kernel"], a["stride"], a["dilation"]))
    args = [str(a["filters"]), _ints(a["kernel"])]
    if any(s != 1 for s in a["stride"]) or "stride" in node.exprs:
        args.append(_kw("strides", _ints(a["stride"])))
    post: list = []
    if g.native and all(c == (0, 0) for c in crops) and op == tuple(max(s - k, 0) for s, k in zip(a["stride"], k_eff)):
        pass  # Keras's 'valid': the full output, plus zeros up to i * s when the kernel is shorter than the stride
    elif g.native and not dilated and tuple((b, e, o) for (b, e), o in zip(crops, op)) == same:
        args.append('padding="same"')
    else:
        extra = tuple(max(o - e, 0) for (_, e), o in zip(crops, op))
        if any(q >= s for q, s in zip(extra, a["stride"])):
            g.fail(node, "output_padding larger than the stride (Keras's output_padding must be smaller)")
            return None
        args.append(_kw("output_padding", _ints(extra)))
        crop = tuple((b, e + q - o) for (b, e), q, o in zip(crops, extra, op))
        if any(c != (0, 0) for c in crop):
            post.append((f"layers.Cropping{r}D", [_pairs(crop), *([] if r == 1 else g.data_format(layout))], "crop"))
    args += g.data_format(layout)
    if any(d != 1 for d in a["dilation"]) or "dilation" in node.exprs:
        args.append(_kw("dilation_rate", _ints(a["dilation"])))
    act, act_post = g.activation(a["activation"], node.type.rank, layout)
    if post and a["activation"] and a["activation"]["name"] == "softmax" and act:
        # a softmax along a cropped axis must see the cropped output
        act, act_post = [], [("layers.Softmax", g.activation_layer(a["activation"], node.type.rank, layout)[1],
                              "softmax")]
    c_in = g.types[node.inputs[0]].shape[0]
    canon = (c_in, a["filters"], *a["kernel"])
    args += act + g.weight_args(node, canon=canon, keras=_to_keras_shape(canon))
    if dilated:
        g.helpers.update(("ConvTransposeByConv", f"DilatedConv{r}DTranspose"))
        return _Plan(f"DilatedConv{r}DTranspose", args, layout, [], post + act_post)
    return _Plan(f"layers.Conv{r}DTranspose", args, layout, [], post + act_post)


def _depthwise(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    a = node.attrs
    layout = g.spatial_layout(node)
    padding = _conv_padding(node)
    c_in = g.types[node.inputs[0]].shape[0]
    dm = a["depth_multiplier"]
    canon = (c_in * dm, 1, *a["kernel"])
    keras_shape = (*a["kernel"], c_in, dm)
    args = [_ints(a["kernel"])]
    if any(s != 1 for s in a["stride"]) or "stride" in node.exprs:
        args.append(_kw("strides", _ints(a["stride"])))
    args += padding
    if dm != 1:
        args.append(_kw("depth_multiplier", str(dm)))
    args += g.data_format(layout)
    if any(d != 1 for d in a["dilation"]) or "dilation" in node.exprs:
        args.append(_kw("dilation_rate", _ints(a["dilation"])))
    act, post = g.activation(a["activation"], node.type.rank, layout)
    args += act + g.weight_args(node, kernel_kw="depthwise", canon=canon, keras=keras_shape)
    return _Plan("layers.DepthwiseConv2D", args, layout, [], post)


def _separable(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    a = node.attrs
    layout = g.spatial_layout(node)
    padding = _conv_padding(node)
    c_in = g.types[node.inputs[0]].shape[0]
    dm = a["depth_multiplier"]
    args = [str(a["filters"]), _ints(a["kernel"])]
    if any(s != 1 for s in a["stride"]) or "stride" in node.exprs:
        args.append(_kw("strides", _ints(a["stride"])))
    args += padding + g.data_format(layout)
    if any(d != 1 for d in a["dilation"]) or "dilation" in node.exprs:
        args.append(_kw("dilation_rate", _ints(a["dilation"])))
    if dm != 1:
        args.append(_kw("depth_multiplier", str(dm)))
    act, post = g.activation(a["activation"], node.type.rank, layout)
    args += act
    if not a["use_bias"]:
        args.append("use_bias=False")
    default = {"name": "glorot_uniform"}
    args += g.init("depthwise_initializer", a["kernel_init"], default, (c_in * dm, 1, *a["kernel"]),
                   (*a["kernel"], c_in, dm))
    args += g.init("pointwise_initializer", a["kernel_init"], default)
    if a["use_bias"]:
        args += g.init("bias_initializer", a["bias_init"], {"name": "zeros"})
    args += g.reg("depthwise_regularizer", a["kernel_regularizer"])
    args += g.reg("pointwise_regularizer", a["kernel_regularizer"])
    if a["use_bias"]:
        args += g.reg("bias_regularizer", a["bias_regularizer"])
    return _Plan("layers.SeparableConv2D", args, layout, [], post)


def _pool(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    """Pools after lowering: plain, 'same', or (an average over uncounted or ceil-mode padding) the helper layer.

    Max pools and counting averages reach here with zero pads: lowering moved their padding (and the
    ceil-mode ``extra``) into a ``pad`` node.
    """
    a = node.attrs
    r = _rank_of(node)
    layout = g.spatial_layout(node)
    pool, stride = tuple(a["pool"]), tuple(a["stride"])
    pads = tuple(tuple(p) for p in a["padding"])
    extra = tuple(a["extra"])
    if None in extra:
        g.fail(node, "ceil_mode on an axis of run-time size")
        return None
    cls = f"layers.{'MaxPooling' if OPS[node.op].kind == 'max' else 'AveragePooling'}{r}D"
    args = [_ints(pool)]
    if stride != pool:
        args.append(_kw("strides", _ints(stride)))
    fmt = g.data_format(layout)
    if all(p == (0, 0) for p in pads) and not any(extra):
        return _Plan(cls, args + fmt, layout)
    if a["same"]:
        return _Plan(cls, args + ['padding="same"'] + fmt, layout)
    g.helpers.add("PaddedAveragePooling")
    pargs = [literal(pool), literal(stride), literal(pads)]
    if any(extra):
        pargs.append(_kw("extra", literal(extra)))
    if a.get("count_include_pad"):
        pargs.append("count_include_pad=True")
    return _Plan("PaddedAveragePooling", pargs + fmt, layout)


def _global_pool(g: KerasGenerator, node: ir.Node) -> _Plan:
    r = _rank_of(node)
    kind = "Average" if OPS[node.op].kind == "avg" else "Max"
    layout = g.spatial_layout(node)
    return _Plan(f"layers.Global{kind}Pooling{r}D", g.data_format(layout), layout, out_layout=CF)


def _zeropad(g: KerasGenerator, node: ir.Node) -> _Plan:
    r = _rank_of(node)
    layout = g.spatial_layout(node)
    return _Plan(f"layers.ZeroPadding{r}D", [_pairs(node.attrs["padding"]), *g.data_format(layout)], layout)


def _upsample(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    a = node.attrs
    r = _rank_of(node)
    layout = g.spatial_layout(node)
    scale = tuple(a["scale"])
    if a["mode"] == "nearest":
        if r == 1:
            return _Plan("layers.UpSampling1D", [str(scale[0])], layout)
        return _Plan(f"layers.UpSampling{r}D", [_ints(scale), *g.data_format(layout)], layout)
    if r == 3:
        g.fail(node, "trilinear upsampling (Keras's UpSampling3D only repeats)")
        return None
    if r == 2:
        return _Plan("layers.UpSampling2D", [_ints(scale), *g.data_format(layout), 'interpolation="bilinear"'],
                     layout)
    # 1-D linear: bilinear resize of a [L, 1, C] image, then back to [L * s, C].
    c = g.types[node.inputs[0]].shape[0]
    pre = [("layers.Reshape", [literal((-1, 1, c))], "as_image")]
    post = [("layers.Reshape", [literal((-1, c))], "as_signal")]
    return _Plan("layers.UpSampling2D", [literal((scale[0], 1)), 'interpolation="bilinear"'], layout, pre, post)


def _dense(g: KerasGenerator, node: ir.Node) -> _Plan:
    a = node.attrs
    f_in = g.types[node.inputs[0]].shape[-1]
    canon = (a["units"], f_in)
    act, post = g.activation(a["activation"], node.type.rank, CF)
    args = [str(a["units"]), *act, *g.weight_args(node, canon=canon, keras=(f_in, a["units"]))]
    return _Plan("layers.Dense", args, CF, [], post)


def _batchnorm(g: KerasGenerator, node: ir.Node) -> _Plan:
    a = node.attrs
    src = node.inputs[0]
    rank = g.rank(src)
    if g.is_shared(node):
        layout = g.spatial if rank >= 3 else CF
    else:
        layout = g.layout_of(src)
    args = []
    axis = g.kaxis(a["axis"], rank, layout)
    if axis != -1:
        args.append(_kw("axis", str(axis)))
    if a["momentum"] != 0.99:
        args.append(_kw("momentum", literal(a["momentum"])))
    if a["eps"] != 1e-3:
        args.append(_kw("epsilon", literal(a["eps"])))
    if not a["center"]:
        args.append("center=False")
    if not a["scale"]:
        args.append("scale=False")
    if a["scale"]:
        args += g.init("gamma_initializer", a["gamma_init"], {"name": "ones"})
    if a["center"]:
        args += g.init("beta_initializer", a["beta_init"], {"name": "zeros"})
    return _Plan("layers.BatchNormalization", args, layout)


def _layernorm(g: KerasGenerator, node: ir.Node) -> _Plan:
    a = node.attrs
    src = node.inputs[0]
    rank = g.rank(src)
    layout = g.wants(node, src) or (CF if g.is_shared(node) else g.layout_of(src))
    axes = sorted(g.kaxis(x, rank, layout) % (rank + 1) for x in a["axis"])
    args = []
    if axes != [rank]:
        args.append(_kw("axis", literal([x for x in axes])))
    if a["eps"] != 1e-3:
        args.append(_kw("epsilon", literal(a["eps"])))
    if not a["center"]:
        args.append("center=False")
    if not a["scale"]:
        args.append("scale=False")
    if a["scale"]:
        args += g.init("gamma_initializer", a["gamma_init"], {"name": "ones"})
    if a["center"]:
        args += g.init("beta_initializer", a["beta_init"], {"name": "zeros"})
    return _Plan("layers.LayerNormalization", args, layout)


def _embedding(g: KerasGenerator, node: ir.Node) -> _Plan:
    a = node.attrs
    args = [str(a["vocab"]), str(a["dim"])]
    args += g.init("embeddings_initializer", a["embeddings_init"], {"name": "uniform", "a": -0.05, "b": 0.05})
    args += g.reg("embeddings_regularizer", a["embeddings_regularizer"])
    return _Plan("layers.Embedding", args, CF)


def _rnn_args(g: KerasGenerator, op: str, a: dict) -> tuple[str, list[str]]:
    cls = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}[op]
    args = [str(a["units"])]
    if a["return_sequences"]:
        args.append("return_sequences=True")
    if not a["use_bias"]:
        args.append("use_bias=False")
    args += g.init("kernel_initializer", a["kernel_init"], {"name": "glorot_uniform"})
    args += g.init("recurrent_initializer", a["recurrent_init"], {"name": "orthogonal", "gain": 1.0})
    if a["use_bias"]:
        args += g.init("bias_initializer", a["bias_init"], {"name": "zeros"})
    if op == "lstm" and not a["unit_forget_bias"]:
        args.append("unit_forget_bias=False")
    args += g.reg("kernel_regularizer", a["kernel_regularizer"])
    args += g.reg("recurrent_regularizer", a["recurrent_regularizer"])
    if a["use_bias"]:
        args += g.reg("bias_regularizer", a["bias_regularizer"])
    return f"layers.{cls}", args


def _recurrent(g: KerasGenerator, node: ir.Node) -> _Plan:
    cls, args = _rnn_args(g, node.op, node.attrs)
    return _Plan(cls, args, CF)


def _bidirectional(g: KerasGenerator, node: ir.Node) -> _Plan:
    inner = node.attrs["layer"]
    cls, args = _rnn_args(g, inner["op"], inner["attrs"])
    out = [f"{cls}({', '.join(args)})"]
    if node.attrs["merge_mode"] != "concat":
        out.append(_kw("merge_mode", _lit(node.attrs["merge_mode"])))
    return _Plan("layers.Bidirectional", out, CF)


def _dropout(g: KerasGenerator, node: ir.Node) -> _Plan:
    return _Plan("layers.Dropout", [literal(node.attrs["rate"])], None)


def _flatten(g: KerasGenerator, node: ir.Node) -> None:
    x = g.memory_var(node.inputs[0])
    g.simple(node, "layers.Flatten", [], [x], CF)


def _reshape(g: KerasGenerator, node: ir.Node) -> None:
    x = g.memory_var(node.inputs[0])
    g.simple(node, "layers.Reshape", [literal(tuple(node.attrs["shape"]))], [x], CF)


def _permute(g: KerasGenerator, node: ir.Node) -> None:
    src = node.inputs[0]
    layout = g.layout_of(src)
    order = g.keras_order(g.rank(src), layout)
    dims = tuple(order.index(d) + 1 for d in node.attrs["dims"])
    g.simple(node, "layers.Permute", [literal(dims)], [g.var(src, layout)], CF)


def _activation(g: KerasGenerator, node: ir.Node) -> _Plan:
    src = node.inputs[0]
    layout = g.layout_of(src)
    act = {"name": node.op, **node.attrs}
    if node.op in _SIMPLE_ACTIVATIONS or node.op == "linear" or (node.op == "elu" and act["alpha"] == 1.0) or (
            node.op == "gelu" and not act["approximate"]):
        return _Plan("layers.Activation", [_lit(node.op)], None)
    cls, args = g.activation_layer(act, g.rank(src), layout)
    return _Plan(cls, args, None)


def _common_layout(g: KerasGenerator, node: ir.Node) -> str:
    ranks = {g.rank(v) for v in node.inputs}
    if len(ranks) > 1:
        return CF
    layouts = [g.layout_of(v) for v in node.inputs]
    if len(set(layouts)) == 1:
        return layouts[0]
    return max((CL, CF), key=lambda lay: (layouts.count(lay), lay == g.spatial))


_MERGE_CLASSES = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "average": "Average",
                  "maximum": "Maximum", "minimum": "Minimum"}


def _merge(g: KerasGenerator, node: ir.Node) -> None:
    layout = _common_layout(g, node)
    xs = [g.var(v, layout) for v in node.inputs]
    g.simple(node, f"layers.{_MERGE_CLASSES[node.op]}", [], xs, layout)


def _concat(g: KerasGenerator, node: ir.Node) -> None:
    layout = _common_layout(g, node)
    xs = [g.var(v, layout) for v in node.inputs]
    axis = g.kaxis(node.attrs["axis"], node.type.rank, layout)
    g.simple(node, "layers.Concatenate", [] if axis == -1 else [_kw("axis", str(axis))], xs, layout)


def _dot(g: KerasGenerator, node: ir.Node) -> None:
    ia, ib = node.attrs["axes"]
    xs = [g.var(v, CF) for v in node.inputs]
    axes = str(ia + 1) if ia == ib else literal((ia + 1, ib + 1))
    args = [_kw("axes", axes)] + (["normalize=True"] if node.attrs["normalize"] else [])
    g.simple(node, "layers.Dot", args, xs, CF)


_DIRECT = {_flatten, _reshape, _permute, _merge, _concat, _dot}

KerasGenerator.TRANSFORMS = {
    "dense": _dense,
    **{f"conv{r}d": _conv for r in (1, 2, 3)},
    **{f"conv_transpose{r}d": _conv_transpose for r in (1, 2, 3)},
    "depthwise_conv2d": _depthwise,
    "separable_conv2d": _separable,
    **{f"{k}pool{r}d": _pool for k in ("max", "avg") for r in (1, 2, 3)},
    **{f"global_{k}pool{r}d": _global_pool for k in ("max", "avg") for r in (1, 2, 3)},
    **{f"zeropad{r}d": _zeropad for r in (1, 2, 3)},
    **{f"upsample{r}d": _upsample for r in (1, 2, 3)},
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "dropout": _dropout,
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "embedding": _embedding,
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "bidirectional": _bidirectional,
    **{op: _activation for op in ACTIVATION_OPS},
    **{op: _merge for op in _MERGE_CLASSES},
    "pad": _pad,
    "concat": _concat,
    "dot": _dot,
}


# Helper classes written into generated modules -------------------------------------------------

#: The helper definitions generated modules may copy: netspec/backends/runtime/keras_helpers.py.
_HELPERS_FILE = Path(__file__).parent / "runtime" / "keras_helpers.py"


# Public API -------------------------------------------------------------------------------------


def generate(network: ir.Network, layout: str = "channels_last", **options) -> str:
    """The Keras source of one network: a module with ``build_<network>()``.

    ``layout`` is ``channels_last`` (Keras's default: images ``[H, W, C]``) or
    ``channels_first`` (the spec's ``[C, H, W]``). Raises :class:`SpecError`
    (E601) for what Keras cannot express. Imports no framework.
    """
    if options:
        raise TypeError(f"unknown option(s) for the keras target: {', '.join(sorted(options))}")
    return _generate(network, layout)[0]


def _generate(network: ir.Network, layout: str) -> tuple[str, dict[str, list[tuple[str, bool]]]]:
    """(the source, the interface) from one generation."""
    g = KerasGenerator(network, layout)
    source = g.generate()
    names = network.output_names or network.outputs
    signature = {"inputs": [(v.name, g.input_layouts[v.name] == CL) for v in network.inputs],
                 "outputs": [(n, lay == CL) for n, lay in zip(names, g.output_layouts)]}
    return source, signature


def interface(network: ir.Network, layout: str = "channels_last") -> dict[str, list[tuple[str, bool]]]:
    """Which inputs and outputs the generated model holds channels-last.

    ``{"inputs": [(name, moved), ...], "outputs": [(name, moved), ...]}`` in the
    model's order, where ``moved`` means the spec's axis 0 is the Keras tensor's
    last axis (``np.moveaxis(x, 1, -1)`` turns a spec-layout batch into the
    model's). Targets of a loss on an output take that output's layout.
    """
    return _generate(network, layout)[1]


def _moved(network: ir.Network, value: str, layout: str) -> bool:
    """Whether the model holds ``value`` (an input, an output value or an output name) channels-last."""
    sig = interface(network, layout)
    for name, moved in sig["inputs"]:
        if name == value:
            return moved
    for (name, moved), v in zip(sig["outputs"], network.outputs):
        if value in (name, v):
            return moved
    raise KeyError(f"'{value}' is neither an input nor an output of network '{network.name}'")


def to_model_layout(network: ir.Network, value: str, array, layout: str = "channels_last"):
    """A batch in the spec's layout ``[N, C, ...]`` -> the model's layout for that input or output."""
    import numpy as np

    array = np.asarray(array)
    return np.moveaxis(array, 1, -1) if _moved(network, value, layout) else array


def from_model_layout(network: ir.Network, value: str, array, layout: str = "channels_last"):
    """A batch in the model's layout for an input or output -> the spec's layout ``[N, C, ...]``."""
    import numpy as np

    array = np.asarray(array)
    return np.moveaxis(array, -1, 1) if _moved(network, value, layout) else array


def fit_targets(network: ir.Network, values: dict, layout: str = "channels_last", *, signature: dict | None = None):
    """``y`` for ``model.fit`` or ``train_on_batch`` from channels-first arrays keyed by target (or input) name.

    Per output, in output order: the value its loss terms compare it with, moved to the model's layout
    (class ids of a ``sparse_categorical_crossentropy`` follow the output's axes without the class axis),
    or None for an output without a term. One output gives its array (or None) alone. ``signature`` is
    ``interface(network, layout)`` when the caller already has it (it generates the source).
    """
    import numpy as np

    ys = []
    for (_, moved), value in zip((signature or interface(network, layout))["outputs"], network.outputs):
        term = next((t for t in network.loss if len(t.args) == 2 and t.fn != "kl_normal" and t.args[0] == value), None)
        if term is None:
            ys.append(None)
            continue
        arr = np.asarray(values[term.args[1]])
        rank = network.type_of(value).rank
        if moved and term.fn == "sparse_categorical_crossentropy":
            trailing = arr.ndim == rank + 1  # ids with a trailing 1
            if trailing:
                arr = arr[..., 0]
            a = term.attrs.get("axis", -1) % rank
            perm = [o if o < a else o - 1 for o in (*range(1, rank), 0) if o != a]
            arr = np.transpose(arr, (0, *(p + 1 for p in perm)))
            if trailing:
                arr = arr[..., None]
        elif moved:
            arr = np.moveaxis(arr, 1, -1)
        ys.append(arr)
    return ys[0] if len(ys) == 1 else ys


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ log lines written straight to file descriptor 2 (TensorFlow's absl logging)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # pragma: no cover - no real stderr
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _keras():
    """Import Keras with TensorFlow's log noise silenced."""
    if "keras" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _quiet_stderr():
            import keras  # noqa: F401
            with contextlib.suppress(ImportError):
                import absl.logging

                absl.logging.set_verbosity(absl.logging.ERROR)
    import keras

    return keras


def build(network: ir.Network, weights=None, layout: str = "channels_last"):
    """A compiled ``keras.Model`` made by executing the generated source; canonical ``weights`` loaded if given."""
    return _execute(network, generate(network, layout), weights, layout)


def _execute(network: ir.Network, source: str, weights, layout: str):
    import types

    _keras()
    module = types.ModuleType(f"netspec_keras_{identifier(network.name)}")
    with _quiet_stderr():
        exec(compile(source, f"<netspec keras: {network.name}>", "exec"), module.__dict__)
        model = getattr(module, identifier(f"build_{network.name}"))()
    if weights is not None:
        load_canonical(model, network, weights, layout=layout)
    return model


# Canonical weights <-> Keras variables -------------------------------------------------------------


def _gates(a, op: str, units: int, inverse: bool = False):
    """Gate blocks along axis 0 in Keras's order (the registry's ``gate_orders["keras"]``), or back."""
    import numpy as np

    order = OPS[op].gate_orders.get("keras")
    if order is None:
        return a
    if inverse:
        order = _inverse(order)
    return np.concatenate([a[i * units:(i + 1) * units] for i in order], axis=0)


def _spatial_perm(rank: int) -> tuple[int, ...]:
    return (*range(2, rank), 1, 0)


def _inverse(perm):
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def _to_keras_shape(canon: tuple[int, ...]) -> tuple[int, ...]:
    """A (transposed) convolution kernel's Keras shape: window first, then inputs/outputs swapped."""
    perm = _spatial_perm(len(canon))
    return tuple(canon[p] for p in perm)


# The named layout changes of the registry's ``weight_layouts["keras"]``: (to Keras, from Keras).
def _depthwise_to_keras(w, in_type: ir.TensorType):
    c_in = in_type.shape[0]
    cm, _, *k = w.shape
    return w.reshape(c_in, cm // c_in, *k).transpose(2, 3, 0, 1)


def _depthwise_from_keras(w):
    kh, kw, c, dm = w.shape
    return w.transpose(2, 3, 0, 1).reshape(c * dm, 1, kh, kw)


_LAYOUT_CHANGES = {
    "transpose": (lambda w, t: w.T, lambda w: w.T),
    "window_first": (lambda w, t: w.transpose(_spatial_perm(w.ndim)),
                     lambda w: w.transpose(_inverse(_spatial_perm(w.ndim)))),
    "depthwise": (_depthwise_to_keras, _depthwise_from_keras),
}


def _rnn_to_keras(op: str, attrs: dict, p: dict, in_type: ir.TensorType) -> dict:
    """Canonical recurrent weights -> the cell's variables (GRU: both biases stacked, Keras's reset_after)."""
    u = attrs["units"]
    changes = OPS[op].weight_layouts["keras"]
    out = {name: _LAYOUT_CHANGES[changes[name]][0](_gates(p[name], op, u), in_type)
           for name in ("kernel", "recurrent_kernel")}
    if "bias" in p:
        import numpy as np

        out["bias"] = (np.stack([_gates(p["bias"], op, u), _gates(p["recurrent_bias"], op, u)]) if op == "gru"
                       else p["bias"])
    return out


def _rnn_from_keras(op: str, attrs: dict, k: dict) -> dict:
    u = attrs["units"]
    changes = OPS[op].weight_layouts["keras"]
    out = {name: _gates(_LAYOUT_CHANGES[changes[name]][1](k[name]), op, u, inverse=True)
           for name in ("kernel", "recurrent_kernel")}
    if "bias" in k:
        if op == "gru":
            out["bias"] = _gates(k["bias"][0], op, u, inverse=True)
            out["recurrent_bias"] = _gates(k["bias"][1], op, u, inverse=True)
        else:
            out["bias"] = k["bias"]
    return out


def _to_keras(node: ir.Node, in_type: ir.TensorType, p: dict) -> dict[tuple[tuple[str, ...], str], Any]:
    """Canonical params of one layer -> {(sub-layer path, Keras variable name): array}."""
    op = node.op
    family = OPS[op].family
    if family == "bidirectional":
        inner = node.attrs["layer"]
        out = {}
        for d, sub in (("forward", "forward_layer"), ("backward", "backward_layer")):
            mine = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith(d + ".")}
            for name, arr in _rnn_to_keras(inner["op"], inner["attrs"], mine, in_type).items():
                out[((sub, "cell"), name)] = arr
        return out
    if family == "recurrent":
        return {(("cell",), k): v for k, v in _rnn_to_keras(op, node.attrs, p, in_type).items()}
    if family == "attention":
        return _attention_to_keras(node, p)
    changes = OPS[op].weight_layouts.get("keras", {})
    return {((), name): _LAYOUT_CHANGES[changes[name]][0](arr, in_type) if name in changes else arr
            for name, arr in p.items()}


def _from_keras(node: ir.Node, k: dict[tuple[tuple[str, ...], str], Any]) -> dict[str, Any]:
    op = node.op
    family = OPS[op].family
    if family == "bidirectional":
        inner = node.attrs["layer"]
        out = {}
        for d, sub in (("forward", "forward_layer"), ("backward", "backward_layer")):
            mine = {name: v for (path, name), v in k.items() if path[0] == sub}
            for name, arr in _rnn_from_keras(inner["op"], inner["attrs"], mine).items():
                out[f"{d}.{name}"] = arr
        return out
    if family == "recurrent":
        return _rnn_from_keras(op, node.attrs, {name: v for (_, name), v in k.items()})
    if family == "attention":
        return _attention_from_keras(node, k)
    changes = OPS[op].weight_layouts.get("keras", {})
    return {name: _LAYOUT_CHANGES[changes[name]][1](arr) if name in changes else arr for (_, name), arr in k.items()}


def _owners(network: ir.Network) -> dict[str, ir.Node]:
    """Weight owner -> its first node."""
    out: dict[str, ir.Node] = {}
    for n in network.nodes:
        if n.params and n.layer not in out:
            out[n.layer] = n
    return out


def _variables(layer, path: tuple[str, ...]) -> dict[str, Any]:
    obj = layer
    for attr in path:
        obj = getattr(obj, attr)
    return {v.name: v for v in obj.weights}


def _e602(message: str) -> SpecError:
    return SpecError([Diagnostic("E602", message)])


def load_canonical(model, network: ir.Network, weights, layout: str = "channels_last") -> None:
    """Assign canonical weights to a model built from ``network``.

    Kernels are transposed to Keras's layouts (HWIO, [in, units], depthwise
    [kh, kw, C, dm], RNN [F, G*u] with GRU gates reordered); the data layout
    does not change any weight, so ``layout`` only documents the call.
    Raises :class:`SpecError` E602 when the weights or the model do not fit.
    """
    import numpy as np

    from ..weights import prepare_weights

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}'; expected one of {', '.join(LAYOUTS)}")
    weights = prepare_weights(weights, network)  # the one weights boundary (type, dtype, shape, finiteness)
    types = {v.name: v.type for v in network.inputs}
    types.update({n.name: n.type for n in network.nodes})
    problems = []
    assignments = []
    for layer_name, node in _owners(network).items():
        try:
            layer = model.get_layer(keras_name(layer_name))
        except ValueError:
            problems.append(f"the model has no layer '{layer_name}'")
            continue
        params = {p.name: np.asarray(weights[f"{layer_name}.{p.name}"]) for p in node.params}
        for (path, name), arr in _to_keras(node, types[node.inputs[0]], params).items():
            var = _variables(layer, path).get(name)
            if var is None:
                problems.append(f"layer '{layer_name}' has no variable '{'/'.join((*path, name))}'")
            elif tuple(var.shape) != arr.shape:
                problems.append(f"layer '{layer_name}' variable '{name}': the model holds {list(var.shape)}, "
                                f"the weights give {list(arr.shape)}")
            else:
                assignments.append((var, arr))
    if problems:
        raise _e602("weights do not fit the Keras model: " + "; ".join(problems))
    for var, arr in assignments:
        var.assign(np.ascontiguousarray(arr, dtype=var.dtype))


def export_canonical(model, network: ir.Network) -> dict[str, Any]:
    """The model's weights as canonical numpy arrays keyed ``<layer>.<param>`` (the inverse of loading)."""
    import numpy as np

    out: dict[str, Any] = {}
    for layer_name, node in _owners(network).items():
        try:
            layer = model.get_layer(keras_name(layer_name))
        except ValueError:
            raise _e602(f"the model has no layer '{layer_name}'") from None
        found = {}
        paths = [()]
        if OPS[node.op].family == "recurrent":
            paths = [("cell",)]
        elif OPS[node.op].family == "bidirectional":
            paths = [("forward_layer", "cell"), ("backward_layer", "cell")]
        elif OPS[node.op].family == "attention":
            paths = [(sub,) for _, sub in _MHA_PARTS]
        for path in paths:
            for name, var in _variables(layer, path).items():
                found[(path, name)] = np.array(var.numpy())
        for name, arr in _from_keras(node, found).items():
            out[f"{layer_name}.{name}"] = np.ascontiguousarray(arr)
    from ..weights import check_weights

    try:
        check_weights(out, network)
    except ValueError as exc:
        raise _e602(str(exc)) from None
    return out


# The backend contract ------------------------------------------------------------------------------


class KerasBackend(Backend):
    """The Keras backend behind :class:`netspec.backends.base.Backend`; options: ``layout``."""

    name = "keras"
    emits_source = trains = True
    lowering = LOWERING
    options = ("layout",)
    run_note = "keras runs channels-last: inputs are transposed in and outputs back"
    train_note = "keras runs channels-last: inputs and targets are transposed in, weights are canonical"

    def generate(self, network: ir.Network, **options) -> str:
        return generate(network, **options)

    def build(self, network: ir.Network, weights=None, dtype: str = "float32", layout: str = "channels_last",
              eager: bool = False, **options) -> Built:
        """Build (in the current :meth:`session`: ``dtype`` is set there) and learn the layouts once."""
        if options:
            raise TypeError(f"unknown option(s) for the keras backend: {', '.join(sorted(options))}")
        source, signature = _generate(network, layout)
        model = _execute(network, source, weights, layout)
        model.run_eagerly = eager
        return Built(model, network, {"layout": layout, "signature": signature})

    def load_canonical(self, built: Built, weights) -> None:
        load_canonical(built.model, built.network, weights, layout=built.state["layout"])

    def export_canonical(self, built: Built) -> dict:
        return export_canonical(built.model, built.network)

    def _feeds(self, built: Built, inputs: dict):
        import numpy as np

        moved = dict(built.state["signature"]["inputs"])
        feeds = [np.moveaxis(inputs[v.name], 1, -1) if moved[v.name] else inputs[v.name]
                 for v in built.network.inputs]
        return feeds if len(feeds) > 1 else feeds[0]

    def run(self, built: Built, inputs: dict) -> list:
        import numpy as np

        keras = _keras()
        result = built.model(self._feeds(built, inputs), training=False)
        result = result if isinstance(result, (tuple, list)) else (result,)
        outs = []
        for (_, moved), r in zip(built.state["signature"]["outputs"], result):
            arr = keras.ops.convert_to_numpy(r)
            outs.append(np.moveaxis(arr, -1, 1) if moved else arr)
        return outs

    def train_step(self, built: Built, inputs: dict, targets: dict) -> float:
        """One ``train_on_batch`` of the compiled model (metrics reset first: the loss is this step's)."""
        y = fit_targets(built.network, {**inputs, **targets}, built.state["layout"],
                        signature=built.state["signature"])
        built.model.reset_metrics()
        logs = built.model.train_on_batch(self._feeds(built, inputs), y, return_dict=True)
        return float(logs["loss"])

    @contextlib.contextmanager
    def session(self, dtype: str = "float32"):
        """Keras's float type and dtype policy set to ``dtype`` (it also casts float batches to it)."""
        keras = _keras()
        floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        try:
            yield
        finally:
            keras.config.set_floatx(floatx)
            keras.config.set_dtype_policy(policy)

    def seed(self, seed: int) -> None:
        _keras().utils.set_random_seed(seed)


# ---- Attention and Transformers (issue 14) ------------------------------------------------------------
#
# Attention is keras.layers.MultiHeadAttention: the canonical [heads·dim, in] kernels become its per-head
# EinsumDense kernels ([in, heads, dim]; the output's [heads, value_dim, units]); causal is its own
# use_causal_mask, a padding mask its attention_mask [N, 1, T_k]. The sequence ops are helper layers.


def _attention(g: KerasGenerator, node: ir.Node) -> None:
    a = node.attrs
    cross = len(node.inputs) - a["mask"] >= 2
    dq = g.types[node.inputs[0]].shape[1]
    h, kd, vd = a["heads"], a["key_dim"], a["value_dim"]
    q = g.var(node.inputs[0], CF)
    operands = [q, g.var(node.inputs[1], CF) if cross else q]
    args = [_kw("num_heads", str(h)), _kw("key_dim", str(kd))]
    if vd != kd:
        args.append(_kw("value_dim", str(vd)))
    if a["units"] != dq:
        args.append(_kw("output_shape", str(a["units"])))
    if not a["use_bias"]:
        args.append("use_bias=False")
    if a["dropout"]:
        args.append(_kw("dropout", literal(a["dropout"])))
    args += g.init("kernel_initializer", a["kernel_init"], {"name": "glorot_uniform"}, (h * kd, dq), (dq, h, kd))
    if a["use_bias"]:
        args += g.init("bias_initializer", a["bias_init"], {"name": "zeros"})
    if a["mask"]:
        g.helpers.add("PaddingMask")
        kname = g.kname(f"{node.name}.mask")
        m = g.pyname(kname)
        g.body += _call_lines(m, "PaddingMask", [_kw("name", _lit(keras_name(kname)))], g.var(node.inputs[-1], CF))
        operands.append(_kw("attention_mask", m))
    if a["causal"]:
        operands.append("use_causal_mask=True")
    out = g.pyname(node.name)
    g.body += _call_lines(out, "layers.MultiHeadAttention", [*args, _kw("name", _lit(keras_name(node.layer)))],
                          ", ".join(operands))
    g.put(node.name, out, CF)


def _position_embedding(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("PositionEmbedding")
    args = [str(node.attrs["max_len"])]
    args += g.init("embeddings_initializer", node.attrs["embeddings_init"], {"name": "uniform", "a": -0.05, "b": 0.05})
    return _Plan("PositionEmbedding", args, CF)


def _sinusoidal_position(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("SinusoidalPosition")
    base = node.attrs["base"]
    return _Plan("SinusoidalPosition", [] if base == 10000.0 else [_kw("base", literal(base))], CF)


def _class_token(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("ClassToken")
    return _Plan("ClassToken", g.init("token_initializer", node.attrs["init"], {"name": "zeros"}), CF)


def _select(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("Select")
    return _Plan("Select", [str(node.attrs["index"]), _kw("axis", str(node.attrs["axis"] + 1))], CF)


def _embedding_or_tied(g: KerasGenerator, node: ir.Node) -> _Plan:
    """An embedding one of whose uses projects vectors (tying) is a ReversibleEmbedding in every use."""
    plan = _embedding(g, node)
    if any(n.attrs.get("reverse") for n in g.uses[node.layer]):
        g.helpers.add("ReversibleEmbedding")
        plan.cls = "ReversibleEmbedding"
    return plan


_DIRECT.add(_attention)
KerasGenerator.TRANSFORMS.update({
    "attention": _attention,
    "position_embedding": _position_embedding,
    "sinusoidal_position": _sinusoidal_position,
    "class_token": _class_token,
    "select": _select,
    "embedding": _embedding_or_tied,
})
_RESERVED.update({"PaddingMask", "PositionEmbedding", "SinusoidalPosition", "ClassToken", "Select",
                  "ReversibleEmbedding"})

_MHA_PARTS = (("q", "query_dense"), ("k", "key_dense"), ("v", "value_dense"), ("o", "output_dense"))


def _attention_to_keras(node: ir.Node, p: dict) -> dict:
    a = node.attrs
    h = a["heads"]
    out = {}
    for name, sub in _MHA_PARTS:
        k = p[f"{name}_kernel"]
        if name == "o":
            out[((sub,), "kernel")] = k.T.reshape(h, a["value_dim"], a["units"])
        else:
            out[((sub,), "kernel")] = k.T.reshape(k.shape[1], h, -1)
        if f"{name}_bias" in p:
            b = p[f"{name}_bias"]
            out[((sub,), "bias")] = b if name == "o" else b.reshape(h, -1)
    return out


def _attention_from_keras(node: ir.Node, k: dict) -> dict:
    out = {}
    for name, sub in _MHA_PARTS:
        for var, arr in ((v, arr) for (path, v), arr in k.items() if path == (sub,)):
            if var == "kernel":
                out[f"{name}_kernel"] = (arr.reshape(-1, arr.shape[-1]) if name == "o"
                                         else arr.reshape(arr.shape[0], -1)).T
            else:
                out[f"{name}_bias"] = arr.reshape(-1)
    return out


# Lecture ops (issue 13): elementwise math, random ops, sequence plumbing ------------------------------


def _math(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("ElementwiseMath")
    args = [_lit(node.op)] + ([_kw("by", literal(node.attrs["by"]))] if "by" in node.attrs else [])
    return _Plan("ElementwiseMath", args, None)


def _gaussian_noise(g: KerasGenerator, node: ir.Node) -> _Plan:
    return _Plan("layers.GaussianNoise", [literal(node.attrs["stddev"])], None)


def _sample_normal(g: KerasGenerator, node: ir.Node) -> None:
    g.helpers.add("SampleNormal")
    layout = _common_layout(g, node)
    xs = [g.var(v, layout) for v in node.inputs]
    args = [] if node.attrs["scale"] == 1.0 else [_kw("scale", literal(node.attrs["scale"]))]
    g.simple(node, "SampleNormal", args, xs, layout)


def _repeat_vector(g: KerasGenerator, node: ir.Node) -> _Plan:
    return _Plan("layers.RepeatVector", [str(node.attrs["n"])], CF)


def _repeat_like(g: KerasGenerator, node: ir.Node) -> None:
    g.helpers.add("RepeatLike")
    g.simple(node, "RepeatLike", [], [g.var(v, CF) for v in node.inputs], CF)


_DIRECT |= {_sample_normal, _repeat_like}
_AGNOSTIC |= {"math", "noise"}
KerasGenerator.TRANSFORMS.update({
    **{op: _math for op in ("exp", "log", "sqrt", "square", "abs", "negative", "scale", "shift")},
    "gaussian_noise": _gaussian_noise,
    "sample_normal": _sample_normal,
    "repeat_vector": _repeat_vector,
    "repeat_like": _repeat_like,
})


def _recurrent_state(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    """A recurrent layer with return_state (a list value [output, h, c]) or initial_state (its later inputs)."""
    a = node.attrs
    if not (a.get("initial_state") or a.get("return_state") or a.get("sequence_mask")):
        return _recurrent(g, node)
    cls, args = _rnn_args(g, node.op, a)
    if a["return_state"]:
        args.append("return_state=True")
    operand = g.var(node.inputs[0], CF)
    if a["initial_state"]:
        states = node.inputs[1:-1] if a.get("sequence_mask") else node.inputs[1:]
        operand += ", initial_state=[" + ", ".join(g.var(v, CF) for v in states) + "]"
    if a.get("sequence_mask"):
        operand += f", mask={_mask_var(g, node)}"
    out = g.pyname(node.name)
    g.body += _call_lines(out, cls, [*args, _kw("name", _lit(keras_name(g.main_name(node))))], operand)
    g.put(node.name, out, CF)
    return None


def _result(g: KerasGenerator, node: ir.Node) -> None:
    g.put(node.name, f"{g.vars[(node.inputs[0], CF)]}[{node.attrs['index']}]", CF)


_DIRECT |= {_result}
KerasGenerator.TRANSFORMS.update({"simple_rnn": _recurrent_state, "lstm": _recurrent_state, "gru": _recurrent_state,
                                  "result": _result})


def _mask_var(g: KerasGenerator, node: ir.Node) -> str:
    """The boolean mask [N, T] a node reads, from its last input (the mask's source); one layer per source."""
    src, kind, value = node.inputs[-1], node.attrs["sequence_mask"], node.attrs["sequence_mask_value"]
    key = (f"{src}.mask", f"{kind}:{value}")
    if key not in g.vars:
        g.helpers.add("SequenceMask")
        kname = g.kname(f"{src}.mask")
        out = g.pyname(kname)
        args = [_lit(kind)] + ([_kw("value", literal(value))] if value != 0.0 else [])
        g.body += _call_lines(out, "SequenceMask", [*args, _kw("name", _lit(keras_name(kname)))], g.var(src, CF))
        g.vars[key] = out
    return g.vars[key]


def _masking(g: KerasGenerator, node: ir.Node) -> _Plan:
    g.helpers.add("MaskValues")
    return _Plan("MaskValues", [] if node.attrs["value"] == 0.0 else [literal(node.attrs["value"])], CF)


def _global_pool_masked(g: KerasGenerator, node: ir.Node) -> _Plan | None:
    if not node.attrs.get("sequence_mask"):
        return _global_pool(g, node)
    g.helpers.add("MaskedGlobalPooling1D")
    kind = "max" if "max" in node.op else "avg"
    g.simple(node, "MaskedGlobalPooling1D", [_lit(kind)], [g.var(node.inputs[0], CF), _mask_var(g, node)], CF)
    return None


_DIRECT |= {_global_pool_masked}
KerasGenerator.TRANSFORMS.update({"masking": _masking, "global_avgpool1d": _global_pool_masked,
                                  "global_maxpool1d": _global_pool_masked})
