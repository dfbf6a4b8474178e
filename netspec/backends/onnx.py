"""ONNX export straight from the IR: an ``onnx.ModelProto`` built with ``onnx.helper``.

No torch, no tensorflow: the graph is emitted node by node from the typed IR
and the canonical weights (see docs/onnx.md for the conventions). Layout is the
spec's, channels-first, with a symbolic batch axis in front of every value.
Each IR op has one emitter in :attr:`OnnxEmitter.TRANSFORMS`; an op without
one, or an attribute ONNX cannot express, is an E601 diagnostic.

Lean graphs: dropout, ``linear``, a flatten of a rank-1 value and identity
reshapes/permutations emit nothing; BatchNorm after a convolution or dense layer
is folded into its weights (unless ``keep_bn``); recurrent stacks stay
time-major between ONNX RNN ops. Bytes are deterministic: names come from the
IR, initializers are sorted, and nothing depends on time or memory addresses.
"""

from __future__ import annotations

import os
from math import sqrt
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import TensorProto, helper

from .. import ir, lower
from ..diagnostics import Diagnostic, SpecError
from ..files import write_atomic
from ..ops.registry import OPS
from .base import Backend, Built, Emitter

#: The opset written unless ``opset=`` asks for another (docs/onnx.md says why).
DEFAULT_OPSET = 18
#: The oldest opset this backend can write: Reduce* ops take ``axes`` as an input from 18 on.
MIN_OPSET = 18

#: Models at least this large are saved with their tensors in a side file (protobuf's 2 GiB limit).
EXTERNAL_DATA_BYTES = 2**31 - 2**20

#: Families whose weights a following BatchNorm folds into.
_FOLDABLE = {"dense", "conv", "depthwise_conv", "separable_conv", "conv_transpose"}

#: The lowering passes the ONNX emitter runs (netspec/lower.py): ONNX fuses no activation into a layer,
#: so every ``activation=`` becomes a node of its own (and a BatchNorm after it is never folded).
LOWERING = (lower.unfuse(lambda node, act: False),)


def _family(op: str) -> str:
    return OPS[op].family


def _recurrent_op(op: str) -> bool:
    return _family(op) in ("recurrent", "bidirectional")


def max_opset() -> int:
    """The newest default-domain opset the installed onnx package knows."""
    return onnx.defs.onnx_opset_version()


# Canonical weights -> ONNX tensors -------------------------------------------------------


def _weights_for(network: ir.Network, weights, seed: int) -> dict[str, np.ndarray]:
    from ..weights import init_weights, prepare_weights

    if weights is None:
        return init_weights(network, seed)
    return prepare_weights(weights, network)  # the one weights boundary (type, dtype, shape, finiteness)


def _gates(w: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Reorder the gate blocks along axis 0 (``[G*u, ...]``)."""
    blocks = np.split(w, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _gate_order(op: str) -> tuple[int, ...]:
    """Canonical gate order -> ONNX's (the registry's ``gate_orders["onnx"]``; LSTM i,f,g,o -> i,o,f,c)."""
    return OPS[op].gate_orders.get("onnx", tuple(range(OPS[op].gates)))
_RNN_OP = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}


# The emitter ------------------------------------------------------------------------------


class OnnxEmitter(Emitter):
    """Emits one network as an ONNX graph; ``TRANSFORMS`` maps each IR op to its emitter."""

    backend: ClassVar[str] = "onnx"

    def __init__(self, network: ir.Network, weights: dict[str, np.ndarray], opset: int = DEFAULT_OPSET,
                 keep_bn: bool = False):
        super().__init__(network)
        self.weights = weights
        self.opset = opset
        self.keep_bn = keep_bn
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self._const_names: dict[tuple, str] = {}
        self.values: dict[str, str] = {v.name: v.name for v in network.inputs}
        self.time_major: dict[str, str] = {}
        self.annotations: dict[str, ir.TensorType] = {}
        self._node_names: set[str] = set()
        self.consumers: dict[str, list[ir.Node]] = {}
        for n in network.nodes:
            for i in dict.fromkeys(n.inputs):
                self.consumers.setdefault(i, []).append(n)
        self.layer_uses: dict[str, int] = {}
        for n in network.nodes:
            self.layer_uses[n.layer] = self.layer_uses.get(n.layer, 0) + 1
        self.types: dict[str, ir.TensorType] = {v.name: v.type for v in network.inputs}
        self.types.update((n.name, n.type) for n in network.nodes)
        self.folds: dict[str, ir.Node] = {} if keep_bn else self._plan_folds()

    def type_of(self, value: str) -> ir.TensorType:
        return self.types[value]

    # -- planning --------------------------------------------------------------------------

    def _plan_folds(self) -> dict[str, ir.Node]:
        """Producer name -> the BatchNorm folded into it."""
        out: dict[str, ir.Node] = {}
        names = {n.name: n for n in self.network.nodes}
        for bn in self.network.nodes:
            if bn.op != "batchnorm":
                continue
            p = names.get(bn.inputs[0])
            act = p.attrs.get("activation") if p is not None else None
            if (p is None or _family(p.op) not in _FOLDABLE or (act is not None and act["name"] != "linear")
                    or [c.name for c in self.consumers.get(p.name, [])] != [bn.name]
                    or p.name in self.network.outputs or self.layer_uses[p.layer] != 1):
                continue
            feature_axis = p.type.rank - 1 if p.op == "dense" else 0
            if bn.attrs["axis"] != feature_axis:
                continue
            out[p.name] = bn
        return out

    # -- graph building blocks -------------------------------------------------------------

    def add(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> list[str]:
        """Append one node; names are made unique deterministically."""
        base, k = name, 1
        while name in self._node_names:
            k += 1
            name = f"{base}_{k}"
        self._node_names.add(name)
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        """One single-output node whose node name is its output tensor's name."""
        self.add(op_type, inputs, [out], out, **attrs)
        return out

    def init(self, name: str, array: np.ndarray) -> str:
        """An initializer (a layer's tensor); created once per name."""
        if name not in self.inits:
            self.inits[name] = np.ascontiguousarray(array).reshape(np.shape(array))  # a scalar stays 0-d
        return name

    def const(self, kind: str, values, dtype=np.int64) -> str:
        """A small constant initializer named by its content (``axes:[1]``), shared by every use."""
        arr = np.asarray(values, dtype=dtype)
        key = (kind, arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_names:
            flat = ",".join(_fmt(v) for v in arr.reshape(-1).tolist())
            text = flat if arr.ndim == 0 else f"[{flat}]"
            self._const_names[key] = self.init(f"{kind}:{text}", arr)
        return self._const_names[key]

    def w(self, layer: str, param: str) -> np.ndarray:
        return np.asarray(self.weights[f"{layer}.{param}"], dtype=np.float32)

    def has(self, node: ir.Node, param: str) -> bool:
        return any(p.name == param for p in node.params)

    # -- values ----------------------------------------------------------------------------

    def get(self, value: str) -> str:
        """The tensor holding an IR value (batch-major), transposing a time-major one on demand."""
        if value not in self.values:
            tm = self.time_major[value]
            self.values[value] = self.op("Transpose", [tm], value, perm=[1, 0, 2])
        return self.values[value]

    def get_time_major(self, value: str) -> str:
        """The ``[T, N, F]`` form of a ``[N, T, F]`` value (for ONNX's recurrent ops)."""
        if value not in self.time_major:
            self.time_major[value] = self.op("Transpose", [self.get(value)], f"{value}/time_major",
                                             perm=[1, 0, 2])
        return self.time_major[value]

    def out_name(self, node: ir.Node) -> str:
        """The tensor name of a node's final output (a folded BatchNorm's when one is folded in)."""
        bn = self.folds.get(node.name)
        return bn.name if bn is not None else node.name

    def finish(self, node: ir.Node, tensor: str) -> None:
        """Bind the node's value (or the value of the BatchNorm folded into it)."""
        self.values[self.out_name(node)] = tensor

    def apply_activation(self, node: ir.Node, x: str, act: dict | None, out: str) -> str:
        """The node's ``activation=`` as the next node (nothing for None or linear)."""
        if act is None or act["name"] == "linear":
            return x
        return self.activation(node, act, x, out, node.type.rank)

    # -- activations -----------------------------------------------------------------------

    def activation(self, node: ir.Node, act: dict, x: str, out: str, rank: int) -> str:
        name = act["name"]
        if name == "linear":
            return x
        if name in ("relu", "sigmoid", "tanh", "softplus"):
            return self.op({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}[name],
                           [x], out)
        if name == "relu6":
            return self.op("Clip", [x, self.const("min", 0.0, np.float32), self.const("max", 6.0, np.float32)],
                           out)
        if name == "softmax":
            axis = act.get("axis", -1)
            return self.op("Softmax", [x], out, axis=axis if axis < 0 else axis + 1)
        if name == "leaky_relu":
            return self.op("LeakyRelu", [x], out, alpha=float(act["alpha"]))
        if name == "elu":
            return self.op("Elu", [x], out, alpha=float(act["alpha"]))
        if name == "hard_sigmoid":
            return self.op("HardSigmoid", [x], out, alpha=1.0 / 6.0, beta=0.5)
        if name == "swish":
            s = self.op("Sigmoid", [x], f"{out}/sigmoid")
            return self.op("Mul", [x, s], out)
        if name == "gelu":
            approximate = bool(act.get("approximate", False))
            if self.opset >= 20:
                return self.op("Gelu", [x], out, approximate="tanh" if approximate else "none")
            return self._gelu(x, out, approximate)
        self.fail(node, f"activation '{name}'")
        return x

    def _gelu(self, x: str, out: str, approximate: bool) -> str:
        """GELU before opset 20 (no Gelu op): the erf form, or the tanh approximation."""
        f32 = np.float32
        if approximate:
            x3 = self.op("Mul", [self.op("Mul", [x, x], f"{out}/x2"), x], f"{out}/x3")
            inner = self.op("Add", [x, self.op("Mul", [x3, self.const("c", 0.044715, f32)], f"{out}/cx3")],
                            f"{out}/inner")
            t = self.op("Tanh", [self.op("Mul", [inner, self.const("c", sqrt(2 / np.pi), f32)], f"{out}/scaled")],
                        f"{out}/tanh")
        else:
            t = self.op("Erf", [self.op("Mul", [x, self.const("c", 1 / sqrt(2), f32)], f"{out}/scaled")],
                        f"{out}/erf")
        one_plus = self.op("Add", [t, self.const("c", 1.0, f32)], f"{out}/one_plus")
        half_x = self.op("Mul", [x, self.const("c", 0.5, f32)], f"{out}/half_x")
        return self.op("Mul", [half_x, one_plus], out)

    # -- BatchNorm folding -----------------------------------------------------------------

    def bn_affine(self, bn: ir.Node) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) of an inference-mode BatchNorm, in float64."""
        mean = self.w(bn.layer, "moving_mean").astype(np.float64)
        var = self.w(bn.layer, "moving_variance").astype(np.float64)
        gamma = self.w(bn.layer, "gamma").astype(np.float64) if self.has(bn, "gamma") else np.ones_like(mean)
        beta = self.w(bn.layer, "beta").astype(np.float64) if self.has(bn, "beta") else np.zeros_like(mean)
        scale = gamma / np.sqrt(var + bn.attrs["eps"])
        return scale, beta - mean * scale

    def kernel_bias(self, node: ir.Node, kernel: str = "kernel", out_axis: int = 0, groups: int = 1,
                    transpose: bool = False) -> tuple[str, str | None]:
        """Initializer names for a layer's kernel and bias, with a folded BatchNorm applied.

        ``out_axis`` is the kernel's output-channel axis; for a transposed
        convolution (``[in, out / g, *k]``) the output channel also depends on
        the group, so the kernel is viewed as ``[g, in / g, out / g, *k]``.
        ``transpose`` stores a 2-D kernel transposed (``[in, units]`` for MatMul).
        """
        bn = self.folds.get(node.name)
        has_bias = self.has(node, "bias")
        suffix = ".T" if transpose else ""
        if bn is None:
            k = f"{node.layer}.{kernel}{suffix}"
            if k not in self.inits:
                w = self.w(node.layer, kernel)
                self.init(k, w.T if transpose else w)
            b = self.init(f"{node.layer}.bias", self.w(node.layer, "bias")) if has_bias else None
            return k, b
        scale, shift = self.bn_affine(bn)
        w = self.w(node.layer, kernel).astype(np.float64)
        if out_axis == 0:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        else:
            cin, cout_g = w.shape[0], w.shape[1]
            view = w.reshape((groups, cin // groups, cout_g) + w.shape[2:])
            view = view * scale.reshape((groups, 1, cout_g) + (1,) * (w.ndim - 2))
            w = view.reshape(w.shape)
        b = self.w(node.layer, "bias").astype(np.float64) if has_bias else np.zeros_like(scale)
        b = b * scale + shift
        w = w.astype(np.float32)
        return (self.init(f"{node.layer}.{kernel}.bn_folded{suffix}", w.T if transpose else w),
                self.init(f"{node.layer}.bias.bn_folded", b.astype(np.float32)))


def _fmt(v) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def _flat_pads(pairs) -> list[int]:
    return [int(b) for b, _ in pairs] + [int(e) for _, e in pairs]


# Emitters: one per IR op ---------------------------------------------------------------------


def _dense(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    out = e.out_name(node)
    act = node.attrs.get("activation")
    pre = f"{out}/linear" if act and act["name"] != "linear" else out
    if e.type_of(node.inputs[0]).rank == 1:
        k, b = e.kernel_bias(node)
        y = e.op("Gemm", [x, k] + ([b] if b else []), pre, transB=1)
    else:
        kt, b = e.kernel_bias(node, transpose=True)
        if b is None:
            y = e.op("MatMul", [x, kt], pre)
        else:
            y = e.op("Add", [e.op("MatMul", [x, kt], f"{out}/matmul"), b], pre)
    e.finish(node, e.apply_activation(node, y, act, out))


def _conv_attrs(node: ir.Node, groups: int) -> dict[str, Any]:
    a = node.attrs
    return {"kernel_shape": list(a["kernel"]), "strides": list(a["stride"]), "pads": _flat_pads(a["padding"]),
            "dilations": list(a["dilation"]), "group": groups}


def _conv(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    out = e.out_name(node)
    act = node.attrs.get("activation")
    pre = f"{out}/linear" if act and act["name"] != "linear" else out
    if node.op == "depthwise_conv2d":
        groups = e.type_of(node.inputs[0]).shape[0]
    else:
        groups = node.attrs["groups"]
    k, b = e.kernel_bias(node)
    y = e.op("Conv", [x, k] + ([b] if b else []), pre, **_conv_attrs(node, groups))
    e.finish(node, e.apply_activation(node, y, act, out))


def _separable(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    out = e.out_name(node)
    act = node.attrs.get("activation")
    pre = f"{out}/linear" if act and act["name"] != "linear" else out
    c = e.type_of(node.inputs[0]).shape[0]
    dw = e.init(f"{node.layer}.depthwise_kernel", e.w(node.layer, "depthwise_kernel"))
    d = e.op("Conv", [x, dw], f"{out}/depthwise", **_conv_attrs(node, c))
    k, b = e.kernel_bias(node, "pointwise_kernel")
    y = e.op("Conv", [d, k] + ([b] if b else []), pre, kernel_shape=[1, 1])
    e.finish(node, e.apply_activation(node, y, act, out))


def _conv_transpose(e: OnnxEmitter, node: ir.Node) -> None:
    a = node.attrs
    x = e.get(node.inputs[0])
    out = e.out_name(node)
    act = a.get("activation")
    pre = f"{out}/linear" if act and act["name"] != "linear" else out
    k, b = e.kernel_bias(node, out_axis=1, groups=a["groups"])
    attrs: dict[str, Any] = {"kernel_shape": list(a["kernel"]), "strides": list(a["stride"]),
                             "pads": _flat_pads(a["padding"]), "dilations": list(a["dilation"]),
                             "group": a["groups"]}
    if any(a["output_padding"]):
        attrs["output_padding"] = list(a["output_padding"])
    y = e.op("ConvTranspose", [x, k] + ([b] if b else []), pre, **attrs)
    e.finish(node, e.apply_activation(node, y, act, out))


def _pool(e: OnnxEmitter, node: ir.Node) -> None:
    """MaxPool / AveragePool with explicit (asymmetric) pads and the IR's rounding.

    ceil_mode: ONNX Runtime follows PyTorch's rule (a last window that would
    start in the end padding is dropped) but ONNX shape inference does not.
    Where the two counts differ, floor mode gives PyTorch's count with the same
    windows (the dropped window's predecessor always ends inside the padding),
    so ceil_mode is written only where every reading agrees.
    """
    a = node.attrs
    is_max = OPS[node.op].kind == "max"
    sizes = e.type_of(node.inputs[0]).shape[1:]
    ceil = bool(a["ceil_mode"])
    if ceil and all(isinstance(s, int) for s in sizes):
        onnx_ceil = [-(-(s + pb + pe - k) // st) + 1
                     for s, (pb, pe), k, st in zip(sizes, a["padding"], a["pool"], a["stride"])]
        ceil = onnx_ceil == list(node.type.shape[1:])
    attrs: dict[str, Any] = {"kernel_shape": list(a["pool"]), "strides": list(a["stride"]),
                             "pads": _flat_pads(a["padding"])}
    if ceil:
        attrs["ceil_mode"] = 1
    if not is_max:
        attrs["count_include_pad"] = int(a["count_include_pad"])
    y = e.op("MaxPool" if is_max else "AveragePool", [e.get(node.inputs[0])], e.out_name(node), **attrs)
    e.finish(node, y)


def _global_pool(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    rank = e.type_of(node.inputs[0]).rank
    op_type = "ReduceMax" if OPS[node.op].kind == "max" else "ReduceMean"
    axes = e.const("axes", list(range(2, rank + 1)))
    e.finish(node, e.op(op_type, [x, axes], e.out_name(node), keepdims=0))


def _alias(e: OnnxEmitter, node: ir.Node) -> None:
    """Dropout (the identity at inference), and every no-op."""
    if node.inputs[0] not in e.values and node.inputs[0] in e.time_major:
        e.time_major[node.name] = e.time_major[node.inputs[0]]
        return
    e.finish(node, e.get(node.inputs[0]))


def _flatten(e: OnnxEmitter, node: ir.Node) -> None:
    if e.type_of(node.inputs[0]).rank == 1:
        return _alias(e, node)
    e.finish(node, e.op("Flatten", [e.get(node.inputs[0])], e.out_name(node), axis=1))


def _reshape(e: OnnxEmitter, node: ir.Node) -> None:
    if tuple(e.type_of(node.inputs[0]).shape) == tuple(node.type.shape):
        return _alias(e, node)
    shape = e.const("shape", [0, *node.attrs["shape"]])
    e.finish(node, e.op("Reshape", [e.get(node.inputs[0]), shape], e.out_name(node)))


def _permute(e: OnnxEmitter, node: ir.Node) -> None:
    dims = list(node.attrs["dims"])
    if dims == sorted(dims):
        return _alias(e, node)
    e.finish(node, e.op("Transpose", [e.get(node.inputs[0])], e.out_name(node), perm=[0] + [d + 1 for d in dims]))


def _zeropad(e: OnnxEmitter, node: ir.Node) -> None:
    pads = e.const("pads", [0, 0] + [b for b, _ in node.attrs["padding"]] + [0, 0]
                   + [p for _, p in node.attrs["padding"]])
    e.finish(node, e.op("Pad", [e.get(node.inputs[0]), pads], e.out_name(node)))


def _upsample(e: OnnxEmitter, node: ir.Node) -> None:
    scales = e.const("scales", [1.0, 1.0] + [float(s) for s in node.attrs["scale"]], np.float32)
    if node.attrs["mode"] == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    y = e.op("Resize", [e.get(node.inputs[0]), "", scales], e.out_name(node), **attrs)
    e.annotations[y] = node.type  # shape inference loses the batch symbol through scales
    e.finish(node, y)


def _batchnorm(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    rank = node.type.rank
    axis = node.attrs["axis"]
    out = e.out_name(node)
    if axis == 0:
        c = node.type.shape[0]
        gamma = (e.init(f"{node.layer}.gamma", e.w(node.layer, "gamma")) if e.has(node, "gamma")
                 else e.init(f"{node.layer}.gamma.ones", np.ones(c, np.float32)))
        beta = (e.init(f"{node.layer}.beta", e.w(node.layer, "beta")) if e.has(node, "beta")
                else e.init(f"{node.layer}.beta.zeros", np.zeros(c, np.float32)))
        mean = e.init(f"{node.layer}.moving_mean", e.w(node.layer, "moving_mean"))
        var = e.init(f"{node.layer}.moving_variance", e.w(node.layer, "moving_variance"))
        y = e.op("BatchNormalization", [x, gamma, beta, mean, var], out, epsilon=float(node.attrs["eps"]))
    else:
        # BatchNormalization normalises axis 1 only; another feature axis is an affine map.
        scale, shift = e.bn_affine(node)
        bshape = (-1,) + (1,) * (rank - 1 - axis)
        s = e.init(f"{node.layer}.bn_scale", scale.astype(np.float32).reshape(bshape))
        t = e.init(f"{node.layer}.bn_shift", shift.astype(np.float32).reshape(bshape))
        y = e.op("Add", [e.op("Mul", [x, s], f"{out}/scale"), t], out)
    e.finish(node, y)


def _layernorm(e: OnnxEmitter, node: ir.Node) -> None:
    axes = node.attrs["axis"]
    shape = tuple(node.type.shape[a] for a in axes)
    gamma = (e.init(f"{node.layer}.gamma", e.w(node.layer, "gamma")) if e.has(node, "gamma")
             else e.init(f"{node.layer}.gamma.ones", np.ones(shape, np.float32)))
    inputs = [e.get(node.inputs[0]), gamma]
    if e.has(node, "beta"):
        inputs.append(e.init(f"{node.layer}.beta", e.w(node.layer, "beta")))
    e.finish(node, e.op("LayerNormalization", inputs, e.out_name(node), axis=axes[0] + 1,
                        epsilon=float(node.attrs["eps"])))


def _embedding(e: OnnxEmitter, node: ir.Node) -> None:
    table = e.init(f"{node.layer}.embeddings", e.w(node.layer, "embeddings"))
    e.finish(node, e.op("Gather", [table, e.get(node.inputs[0])], e.out_name(node), axis=0))


def _rnn_tensors(e: OnnxEmitter, node: ir.Node, kind: str, prefixes: tuple[str, ...]) -> list[str]:
    """W, R (and B) in ONNX's layout: ``[D, G*u, F]``, ``[D, G*u, u]``, ``[D, 2*G*u]``."""
    order = _gate_order(kind)
    layer = node.layer
    w_name, r_name, b_name = f"{layer}.W", f"{layer}.R", f"{layer}.B"
    if w_name not in e.inits:
        e.init(w_name, np.stack([_gates(e.w(layer, f"{p}kernel"), order) for p in prefixes]))
        e.init(r_name, np.stack([_gates(e.w(layer, f"{p}recurrent_kernel"), order) for p in prefixes]))
        if f"{layer}.{prefixes[0]}bias" in e.weights:
            bs = []
            for p in prefixes:
                wb = _gates(e.w(layer, f"{p}bias"), order)
                rb = (_gates(e.w(layer, f"{p}recurrent_bias"), order) if kind == "gru"
                      else np.zeros_like(wb))
                bs.append(np.concatenate([wb, rb]))
            e.init(b_name, np.stack(bs))
    return [w_name, r_name] + ([b_name] if b_name in e.inits else [])


def _recurrent(e: OnnxEmitter, node: ir.Node) -> None:
    """simple_rnn / lstm / gru, and bidirectional around one of them, as one ONNX RNN/LSTM/GRU.

    ONNX's recurrent ops are time-major; the input is transposed once, and a
    sequence output whose every consumer is recurrent stays time-major.
    """
    if _family(node.op) == "bidirectional":
        kind, inner = node.attrs["layer"]["op"], node.attrs["layer"]["attrs"]
        merge, prefixes, direction = node.attrs["merge_mode"], ("forward.", "backward."), "bidirectional"
    else:
        kind, inner, merge, prefixes, direction = node.op, node.attrs, None, ("",), "forward"
    units = inner["units"]
    out = e.out_name(node)
    x = e.get_time_major(node.inputs[0])
    attrs: dict[str, Any] = {"hidden_size": units, "direction": direction}
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    tensors = _rnn_tensors(e, node, kind, prefixes)
    op_type = _RNN_OP[kind]
    if inner["return_sequences"]:
        consumers = e.consumers.get(node.name, [])
        keep_tm = (bool(consumers) and node.name not in e.network.outputs
                   and all(_recurrent_op(c.op) or c.op == "dropout" for c in consumers))
        (y,) = e.add(op_type, [x, *tensors], [f"{out}/{op_type}"], f"{out}/{op_type}", **attrs)
        # y: [T, D, N, u]
        if merge is None:
            if keep_tm:
                e.time_major[node.name] = e.op("Squeeze", [y, e.const("axes", [1])], f"{out}/time_major")
            else:
                t = e.op("Transpose", [y], f"{out}/batch_major", perm=[2, 0, 1, 3])
                e.finish(node, e.op("Squeeze", [t, e.const("axes", [2])], out))
        elif merge == "concat":
            if keep_tm:
                t = e.op("Transpose", [y], f"{out}/transpose", perm=[0, 2, 1, 3])
                e.time_major[node.name] = e.op("Reshape", [t, e.const("shape", [0, 0, -1])], f"{out}/time_major")
            else:
                t = e.op("Transpose", [y], f"{out}/batch_major", perm=[2, 0, 1, 3])
                e.finish(node, e.op("Reshape", [t, e.const("shape", [0, 0, -1])], out))
        else:
            reduce = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[merge]
            r = e.op(reduce, [y, e.const("axes", [1])], f"{out}/time_major", keepdims=0)
            e.time_major[node.name] = r
            if not keep_tm:
                e.get(node.name)
    else:
        outputs = ["", f"{out}/{op_type}_h"]
        (_, yh) = e.add(op_type, [x, *tensors], outputs, f"{out}/{op_type}", **attrs)
        # yh: [D, N, u]
        if merge is None:
            y = e.op("Squeeze", [yh, e.const("axes", [0])], out)
        elif merge == "concat":
            t = e.op("Transpose", [yh], f"{out}/batch_major", perm=[1, 0, 2])
            y = e.op("Reshape", [t, e.const("shape", [0, -1])], out)
        else:
            reduce = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[merge]
            y = e.op(reduce, [yh, e.const("axes", [0])], out, keepdims=0)
        e.finish(node, y)


def _activation_op(e: OnnxEmitter, node: ir.Node) -> None:
    act = {"name": node.op, **node.attrs}
    e.finish(node, e.activation(node, act, e.get(node.inputs[0]), e.out_name(node), node.type.rank))


def _aligned(e: OnnxEmitter, node: ir.Node) -> list[str]:
    """Merge inputs with per-sample ranks equalised (size-1 axes after the batch axis)."""
    rank = node.type.rank
    out = []
    for i, v in enumerate(node.inputs):
        t = e.get(v)
        diff = rank - e.type_of(v).rank
        if diff:
            t = e.op("Unsqueeze", [t, e.const("axes", list(range(1, diff + 1)))], f"{e.out_name(node)}/in{i}")
        out.append(t)
    return out


def _elementwise(e: OnnxEmitter, node: ir.Node) -> None:
    xs = _aligned(e, node)
    out = e.out_name(node)
    if node.op == "subtract":
        y = e.op("Sub", xs, out)
    elif node.op == "add":
        y = e.op("Add" if len(xs) == 2 else "Sum", xs, out)
    elif node.op == "average":
        y = e.op("Mean", xs, out)
    elif node.op in ("maximum", "minimum"):
        y = e.op("Max" if node.op == "maximum" else "Min", xs, out)
    else:  # multiply
        y = xs[0]
        for i, t in enumerate(xs[1:], start=1):
            y = e.op("Mul", [y, t], out if i == len(xs) - 1 else f"{out}/mul{i}")
    e.finish(node, y)


def _concat(e: OnnxEmitter, node: ir.Node) -> None:
    xs = [e.get(v) for v in node.inputs]
    e.finish(node, e.op("Concat", xs, e.out_name(node), axis=node.attrs["axis"] + 1))


def _dot(e: OnnxEmitter, node: ir.Node) -> None:
    """Per-sample dot product along one axis of each input (optionally cosine)."""
    out = e.out_name(node)
    ia, ib = node.attrs["axes"]
    ta, tb = (e.type_of(v) for v in node.inputs)
    xs = [e.get(v) for v in node.inputs]
    if node.attrs["normalize"]:
        # x / max(||x||, 1e-6): Keras's l2_normalize, x * rsqrt(max(sum(x^2), 1e-12)).
        eps = e.const("eps", 1e-6, np.float32)
        for i, (x, ax) in enumerate(zip(list(xs), (ia, ib))):
            n = e.op("ReduceL2", [x, e.const("axes", [ax + 1])], f"{out}/norm{i}", keepdims=1)
            xs[i] = e.op("Div", [x, e.op("Max", [n, eps], f"{out}/norm{i}_clipped")], f"{out}/unit{i}")
    if ta.rank == 1 and tb.rank == 1:
        p = e.op("Mul", xs, f"{out}/mul")
        y = e.op("ReduceSum", [p, e.const("axes", [1])], out, keepdims=1)
    else:
        letters = iter("abcdefghijlmopqrstuvwxyz")
        la = [next(letters) for _ in range(ta.rank)]
        lb = [next(letters) for _ in range(tb.rank)]
        lb[ib] = la[ia] = "k"
        rest = [c for i, c in enumerate(la) if i != ia] + [c for i, c in enumerate(lb) if i != ib]
        eq = f"n{''.join(la)},n{''.join(lb)}->n{''.join(rest)}"
        y = e.op("Einsum", xs, out, equation=eq)
    e.finish(node, y)


#: One emitter per op family (the registry lists each family's ops: every rank, max and avg).
_FAMILY_EMITTERS = {
    "dense": _dense,
    "conv": _conv,
    "depthwise_conv": _conv,
    "separable_conv": _separable,
    "conv_transpose": _conv_transpose,
    "pool": _pool,
    "global_pool": _global_pool,
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "dropout": _alias,
    "zeropad": _zeropad,
    "upsample": _upsample,
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "embedding": _embedding,
    "recurrent": _recurrent,
    "bidirectional": _recurrent,
    "activation": _activation_op,
    "elementwise": _elementwise,
    "concat": _concat,
    "dot": _dot,
}
OnnxEmitter.TRANSFORMS = {name: _FAMILY_EMITTERS[op.family] for name, op in OPS.items()
                          if op.family in _FAMILY_EMITTERS}


# Graph inputs and outputs ------------------------------------------------------------------


def _elem_type(dtype: str) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _value_info(name: str, t: ir.TensorType, batch: str) -> onnx.ValueInfoProto:
    dims: list[int | str | None] = [batch]
    for d in t.shape:
        dims.append(d if isinstance(d, int) or d.isidentifier() else None)
    return helper.make_tensor_value_info(name, _elem_type(t.dtype), dims)


def _batch_symbol(network: ir.Network) -> str:
    taken = {d for v in network.inputs for d in v.type.shape if isinstance(d, str)}
    name = "batch"
    while name in taken:
        name += "_"
    return name


# API ------------------------------------------------------------------------------------------


def export(network: ir.Network, weights=None, opset: int | None = None, keep_bn: bool = False,
           seed: int = 0) -> onnx.ModelProto:
    """Emit ``network`` as an ONNX model.

    ``weights``: canonical weights (a mapping ``"<layer>.<param>" -> array`` or a
    safetensors path); when None they are drawn with ``init_weights(network, seed)``.
    ``opset``: the default-domain opset (``DEFAULT_OPSET`` when None; ``MIN_OPSET``
    up to what the installed onnx knows). ``keep_bn``: keep every BatchNorm as a
    node instead of folding it into the convolution or dense layer before it.

    Raises :class:`SpecError` with E601 for what ONNX cannot express, E602 for
    weights that do not fit the network.
    """
    from .. import __version__

    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not MIN_OPSET <= opset <= max_opset():
        raise SpecError([Diagnostic("E601", f"the onnx backend writes opsets {MIN_OPSET} to {max_opset()}; "
                                            f"received opset {opset}", network.span)])
    given = weights is not None
    arrays = _weights_for(network, weights, seed)
    network = lower.lower(network, LOWERING)
    e = OnnxEmitter(network, arrays, opset, keep_bn)
    folded = {bn.name for bn in e.folds.values()}
    for node in network.nodes:
        if node.name in folded:
            continue
        before = len(e.errors)
        e.emit(node)
        if len(e.errors) > before:  # keep going, to report every problem at once
            for value in (node.name, e.out_name(node)):
                e.values.setdefault(value, value)

    batch = _batch_symbol(network)
    inputs = [_value_info(v.name, v.type, batch) for v in network.inputs]
    input_names = {v.name for v in network.inputs}
    names = network.output_names or network.outputs
    rename: dict[str, str] = {}
    outputs = []
    for value, name in zip(network.outputs, names):
        t = e.get(value)
        if t == name and t in input_names:
            pass  # an input returned as it is: ONNX lists the input as an output too
        elif t in input_names or t in rename:
            e.op("Identity", [t], name)  # a second name for one tensor: the only Identity ever written
        else:
            rename[t] = name
        outputs.append(_value_info(name, network.type_of(value), batch))
    e.raise_errors()
    for n in e.nodes:
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename.get(o, o) for o in n.output]
        if n.name in rename:
            n.name = rename[n.name]

    declared = {o.name for o in outputs}
    value_info = [_value_info(rename.get(t, t), typ, batch) for t, typ in e.annotations.items()
                  if rename.get(t, t) not in declared]
    # Built in place: a model's tensors are copied once (helper.make_graph/make_model copy them twice more).
    model = onnx.ModelProto()
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    model.opset_import.add(domain="", version=opset)
    model.producer_name, model.producer_version = "netspec", __version__
    model.doc_string = f"netspec network {network.name}"
    graph = model.graph
    graph.name = network.name
    graph.node.extend(e.nodes)
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    graph.value_info.extend(value_info)
    for name in sorted(e.inits):
        _tensor(graph.initializer.add(), name, e.inits[name])
    source = "canonical weights (given)" if given else \
        f"random: init_weights(seed={seed}), freshly initialised, not trained"
    for key, value in (("netspec.version", __version__), ("netspec.network", network.name),
                       ("netspec.weights", source), ("netspec.keep_bn", str(bool(keep_bn)).lower())):
        model.metadata_props.add(key=key, value=value)
    return model


def _tensor(t: TensorProto, name: str, array: np.ndarray) -> None:
    """Fill an initializer: raw little-endian data, as numpy_helper.from_array writes it."""
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    t.dims.extend(array.shape)
    t.raw_data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def save(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically (a temporary file in the same folder, then ``os.replace``).

    A model over protobuf's 2 GiB limit keeps its tensors in ``<name>.data``
    beside it (written first, so the .onnx file never points at missing data).
    """
    def write(f, target: Path) -> None:
        if model.ByteSize() < EXTERNAL_DATA_BYTES:
            f.write(model.SerializeToString())
        else:
            _write_external(model, target, f)

    write_atomic(path, write)


def _write_external(model: onnx.ModelProto, path: Path, f) -> None:
    """Tensors of 1 KiB or more go to ``<name>.data`` beside ``path`` (written atomically first)."""
    from onnx.external_data_helper import set_external_data

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    location = f"{path.name}.data"

    def data(fh, _target: Path) -> None:
        offset = 0
        for t in copy.graph.initializer:
            if t.HasField("raw_data") and len(t.raw_data) >= 1024:
                fh.write(t.raw_data)
                set_external_data(t, location, offset, len(t.raw_data))
                offset += len(t.raw_data)
                t.ClearField("raw_data")
                t.data_location = TensorProto.EXTERNAL

    write_atomic(path.parent / location, data)
    f.write(copy.SerializeToString())


# The backend contract ------------------------------------------------------------------------------


class OnnxBackend(Backend):
    """ONNX behind :class:`netspec.backends.base.Backend`: built graphs run in ONNX Runtime.

    Options: ``opset``, ``keep_bn``. The graph holds the weights (BatchNorm folded into the layer
    before it unless ``keep_bn``), so loading weights rebuilds it; canonical weights cannot be read
    back from a folded graph, so ``export_canonical`` returns the weights the graph was made from.
    """

    name = "onnx"
    lowering = LOWERING
    options = ("opset", "keep_bn", "seed")

    def build(self, network: ir.Network, weights=None, dtype: str = "float32", eager: bool = False,
              opset: int | None = None, keep_bn: bool = False, seed: int = 0) -> Built:
        if dtype != "float32":
            raise ValueError(f"the onnx backend builds float32 graphs; received dtype {dtype}")
        built = Built(None, network, {"opset": opset, "keep_bn": keep_bn, "seed": seed})
        self.load_canonical(built, weights)
        return built

    def load_canonical(self, built: Built, weights) -> None:
        s = built.state
        s["weights"] = _weights_for(built.network, weights, s["seed"])
        built.model = export(built.network, s["weights"], opset=s["opset"], keep_bn=s["keep_bn"])
        s.pop("session", None)

    def export_canonical(self, built: Built) -> dict:
        return {k: np.array(v) for k, v in built.state["weights"].items()}

    def run(self, built: Built, inputs: dict) -> list:
        """ONNX Runtime on the CPU, graph optimisations off (the graph as written is what is compared)."""
        import onnxruntime as ort

        if "session" not in built.state:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            built.state["session"] = ort.InferenceSession(built.model.SerializeToString(), options,
                                                          providers=["CPUExecutionProvider"])
        return built.state["session"].run(None, {v.name: inputs[v.name] for v in built.network.inputs})


# ---- Attention and Transformers (issue 14) -------------------------------------------------------------


def _proj(e: OnnxEmitter, node: ir.Node, x: str, p: str, out: str) -> str:
    """x W_p^T (+ b_p) for the attention projection ``p`` (q, k, v, o)."""
    kt = f"{node.layer}.{p}_kernel.T"
    if kt not in e.inits:
        e.init(kt, e.w(node.layer, f"{p}_kernel").T)
    y = e.op("MatMul", [x, kt], f"{out}/matmul")
    if e.has(node, f"{p}_bias"):
        y = e.op("Add", [y, e.init(f"{node.layer}.{p}_bias", e.w(node.layer, f"{p}_bias"))], out)
    return y


def _attention(e: OnnxEmitter, node: ir.Node) -> None:
    """Multi-head attention: the standard Attention op from opset 23, else MatMul/Softmax."""
    a = node.attrs
    out = e.out_name(node)
    h, kd, vd = a["heads"], a["key_dim"], a["value_dim"]
    cross = len(node.inputs) - a["mask"] >= 2
    x = e.get(node.inputs[0])
    kv = e.get(node.inputs[1]) if cross else x
    q = _proj(e, node, x, "q", f"{out}/q")
    k = _proj(e, node, kv, "k", f"{out}/k")
    v = _proj(e, node, kv, "v", f"{out}/v")
    keep = None
    if a["mask"]:  # [N, T_k] nonzero -> [N, 1, 1, T_k] bool
        m = e.get(node.inputs[-1])
        integer = e.type_of(node.inputs[-1]).is_integer
        zero = e.const("zero_int" if integer else "zero_float", 0, np.int64 if integer else np.float32)
        keep = e.op("Not", [e.op("Equal", [m, zero], f"{out}/padded")], f"{out}/keep")
        keep = e.op("Unsqueeze", [keep, e.const("axes", [1, 2])], f"{out}/keep4")
    if e.opset >= 23:
        inputs = [q, k, v]
        if keep is not None:  # runtimes want the mask's query axis: [N, 1, T_q, T_k]
            tq = e.op("Shape", [q], f"{out}/tq", start=1, end=2)
            rows = e.op("Concat", [e.const("shape", [1, 1]), tq, e.const("shape", [1])], f"{out}/mask_rows", axis=0)
            inputs.append(e.op("Expand", [keep, rows], f"{out}/keep_rows"))
        y = e.add("Attention", inputs, [f"{out}/heads_merged"], f"{out}/attention", q_num_heads=h,
                  kv_num_heads=h, is_causal=int(a["causal"]))[0]
        e.finish(node, _proj(e, node, y, "o", out))
        e.annotations[out] = node.type
        return
    split = e.const("shape", [0, 0, h, -1])
    qh = e.op("Transpose", [e.op("Reshape", [q, split], f"{out}/q4")], f"{out}/qh", perm=[0, 2, 1, 3])
    kh = e.op("Transpose", [e.op("Reshape", [k, split], f"{out}/k4")], f"{out}/kh", perm=[0, 2, 3, 1])
    vh = e.op("Transpose", [e.op("Reshape", [v, split], f"{out}/v4")], f"{out}/vh", perm=[0, 2, 1, 3])
    s = e.op("Mul", [e.op("MatMul", [qh, kh], f"{out}/qk"), e.const("scale", 1 / sqrt(kd), np.float32)],
             f"{out}/scores")
    if a["causal"]:  # keep[i, j] = j <= i, top-left aligned
        shape = e.op("Shape", [s], f"{out}/scores_shape")
        one = e.const("one", 1)
        tq = e.op("Squeeze", [e.op("Slice", [shape, e.const("starts", [2]), e.const("ends", [3])], f"{out}/tq1"),
                              e.const("axes", [0])], f"{out}/tq")
        tk = e.op("Squeeze", [e.op("Slice", [shape, e.const("starts", [3]), e.const("ends", [4])], f"{out}/tk1"),
                              e.const("axes", [0])], f"{out}/tk")
        zero = e.const("zero", 0)
        rows = e.op("Range", [zero, tq, one], f"{out}/rows")
        rows = e.op("Unsqueeze", [rows, e.const("axes", [1])], f"{out}/rows_col")
        cols = e.op("Range", [zero, tk, one], f"{out}/cols")
        tril = e.op("LessOrEqual", [cols, rows], f"{out}/tril")
        keep = tril if keep is None else e.op("And", [keep, tril], f"{out}/keep_causal")
    if keep is not None:
        s = e.op("Where", [keep, s, e.const("neg_inf", -np.inf, np.float32)], f"{out}/masked")
    p = e.op("Softmax", [s], f"{out}/probs", axis=-1)
    y = e.op("MatMul", [p, vh], f"{out}/weighted")
    y = e.op("Transpose", [y], f"{out}/heads_last", perm=[0, 2, 1, 3])
    y = e.op("Reshape", [y, e.const("shape", [0, 0, h * vd])], f"{out}/heads_merged")
    e.finish(node, _proj(e, node, y, "o", out))
    e.annotations[out] = node.type  # shape inference loses the length through the heads' Reshape


def _seq_len(e: OnnxEmitter, x: str, out: str) -> str:
    """[T]: a sequence's run-time length."""
    return e.op("Shape", [x], f"{out}/length", start=1, end=2)


def _position_embedding(e: OnnxEmitter, node: ir.Node) -> None:
    out = e.out_name(node)
    x = e.get(node.inputs[0])
    table = e.init(f"{node.layer}.embeddings", e.w(node.layer, "embeddings"))
    rows = e.op("Slice", [table, e.const("starts", [0]), _seq_len(e, x, out), e.const("axes", [0])], f"{out}/rows")
    e.finish(node, e.op("Add", [x, rows], out))
    e.annotations[out] = node.type  # shape inference cannot tell the slice's length is the input's


def _sinusoidal_position(e: OnnxEmitter, node: ir.Node) -> None:
    out = e.out_name(node)
    x = e.get(node.inputs[0])
    d = node.type.shape[1]
    t = e.op("Squeeze", [_seq_len(e, x, out), e.const("axes", [0])], f"{out}/t")
    pos = e.op("Cast", [e.op("Range", [e.const("zero", 0), t, e.const("one", 1)], f"{out}/range")], f"{out}/pos",
               to=TensorProto.DOUBLE)
    pos = e.op("Unsqueeze", [pos, e.const("axes", [1])], f"{out}/pos_col")
    freq = node.attrs["base"] ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    angle = e.op("Mul", [pos, e.const("freq", freq, np.float64)], f"{out}/angle")
    sin = e.op("Unsqueeze", [e.op("Sin", [angle], f"{out}/sin"), e.const("axes", [2])], f"{out}/sin_pair")
    cos = e.op("Unsqueeze", [e.op("Cos", [angle], f"{out}/cos"), e.const("axes", [2])], f"{out}/cos_pair")
    pairs = e.op("Concat", [sin, cos], f"{out}/pairs", axis=2)
    table = e.op("Reshape", [pairs, e.const("shape", [-1, d])], f"{out}/table64")
    table = e.op("Cast", [table], f"{out}/table", to=TensorProto.FLOAT)
    e.finish(node, e.op("Add", [x, table], out))
    e.annotations[out] = node.type  # shape inference cannot tell the table's length is the input's


def _class_token(e: OnnxEmitter, node: ir.Node) -> None:
    out = e.out_name(node)
    x = e.get(node.inputs[0])
    d = node.type.shape[1]
    token = e.init(f"{node.layer}.token.3d", e.w(node.layer, "token").reshape(1, 1, d))
    n = e.op("Shape", [x], f"{out}/batch", start=0, end=1)
    shape = e.op("Concat", [n, e.const("shape", [1, d])], f"{out}/token_shape", axis=0)
    tokens = e.op("Expand", [token, shape], f"{out}/tokens")
    e.finish(node, e.op("Concat", [tokens, x], out, axis=1))
    e.annotations[out] = node.type  # the batch symbol does not survive Expand


def _select(e: OnnxEmitter, node: ir.Node) -> None:
    x = e.get(node.inputs[0])
    e.finish(node, e.op("Gather", [x, e.const("index", node.attrs["index"])], e.out_name(node),
                        axis=node.attrs["axis"] + 1))


def _embedding_or_tied(e: OnnxEmitter, node: ir.Node) -> None:
    """A lookup (Gather), or on vectors x E^T with the one table (a Transpose node, folded by runtimes)."""
    if not node.attrs.get("reverse"):
        _embedding(e, node)
        return
    out = e.out_name(node)
    table = e.init(f"{node.layer}.embeddings", e.w(node.layer, "embeddings"))
    et = f"{node.layer}.embeddings/transposed"
    if et not in {o for n in e.nodes for o in n.output}:
        e.op("Transpose", [table], et, perm=[1, 0])
    e.finish(node, e.op("MatMul", [e.get(node.inputs[0]), et], out))


_FAMILY_EMITTERS.update({
    "attention": _attention,
    "position_embedding": _position_embedding,
    "sinusoidal_position": _sinusoidal_position,
    "class_token": _class_token,
    "select": _select,
    "embedding": _embedding_or_tied,
})


# Lecture ops (issue 13): elementwise math, random ops (the identity at inference), sequence plumbing --------

_MATH_OPS = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "negative": "Neg"}


def _math(e: OnnxEmitter, node: ir.Node) -> None:
    x, out = e.get(node.inputs[0]), e.out_name(node)
    if node.op in _MATH_OPS:
        y = e.op(_MATH_OPS[node.op], [x], out)
    elif node.op == "square":
        y = e.op("Mul", [x, x], out)
    else:
        by = e.const("c", node.attrs["by"], np.float32)
        y = e.op("Mul" if node.op == "scale" else "Add", [x, by], out)
    e.finish(node, y)


def _repeat(e: OnnxEmitter, node: ir.Node) -> None:
    """repeat_vector(n) and repeat_like(v, seq): Unsqueeze, then Expand to [N, T, F]."""
    out = e.out_name(node)
    v = e.op("Unsqueeze", [e.get(node.inputs[0]), e.const("axes", [1])], f"{out}/unsqueeze")
    f = node.type.shape[1]
    if node.op == "repeat_vector":
        shape = e.const("shape", [1, node.attrs["n"], f])
    else:
        seq = e.op("Shape", [e.get(node.inputs[1])], f"{out}/shape")
        steps = e.op("Slice", [seq, e.const("starts", [1]), e.const("ends", [2])], f"{out}/steps")
        shape = e.op("Concat", [e.const("one", [1]), steps, e.const("features", [f])], f"{out}/target", axis=0)
    e.finish(node, e.op("Expand", [v, shape], out))


_FAMILY_EMITTERS.update({"math": _math, "noise": _alias, "sampling": _alias, "repeat": _repeat,
                         "repeat_like": _repeat})
OnnxEmitter.TRANSFORMS = {name: _FAMILY_EMITTERS[op.family] for name, op in OPS.items()
                          if op.family in _FAMILY_EMITTERS}


def _recurrent_state(e: OnnxEmitter, node: ir.Node) -> None:
    """A recurrent layer with initial_state (ONNX's initial_h, initial_c) or return_state (Y_h, Y_c kept)."""
    a = node.attrs
    if a.get("sequence_mask"):
        return _masked_recurrent(e, node)
    if _family(node.op) == "bidirectional" or not (a.get("initial_state") or a.get("return_state")):
        return _recurrent(e, node)
    kind, out = node.op, e.out_name(node)
    op_type = _RNN_OP[kind]
    attrs: dict[str, Any] = {"hidden_size": a["units"], "direction": "forward"}
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    tensors = _rnn_tensors(e, node, kind, ("",))
    ins = [e.get_time_major(node.inputs[0]), *tensors]
    if a["initial_state"]:  # X, W, R, B, sequence_lens, initial_h[, initial_c]
        ins += [""] * (4 - len(tensors))  # no B, no sequence_lens
        ins += [e.op("Unsqueeze", [e.get(v), e.const("axes", [0])], f"{out}/initial{i}")
                for i, v in enumerate(node.inputs[1:])]
    names = [f"{out}/{op_type}", f"{out}/{op_type}_h"] + ([f"{out}/{op_type}_c"] if kind == "lstm" else [])
    y, *states = e.add(op_type, ins, names, f"{out}/{op_type}", **attrs)
    parts = [e.op("Squeeze", [s, e.const("axes", [0])], f"{out}/{suffix}") for s, suffix in zip(states, "hc")]
    if a["return_sequences"]:  # y: [T, 1, N, u]
        t = e.op("Transpose", [y], f"{out}/batch_major", perm=[2, 0, 1, 3])
        e.finish(node, e.op("Squeeze", [t, e.const("axes", [2])], out))
    else:
        e.finish(node, parts[0])
    e.__dict__.setdefault("state_results", {})[node.name] = parts


def _result(e: OnnxEmitter, node: ir.Node) -> None:
    i = node.attrs["index"]
    src = node.inputs[0]
    e.finish(node, e.get(src) if i == 0 else e.__dict__["state_results"][src][i - 1])


_FAMILY_EMITTERS.update({"recurrent": _recurrent_state, "result": _result})
OnnxEmitter.TRANSFORMS = {name: _FAMILY_EMITTERS[op.family] for name, op in OPS.items()
                          if op.family in _FAMILY_EMITTERS}


# Masking: padded steps are skipped (issue 13) ---------------------------------------------------------------


def _mask(e: OnnxEmitter, node: ir.Node) -> str:
    """The boolean mask [N, T] a node reads, from its last input (the mask's source); one per source."""
    src, kind, value = node.inputs[-1], node.attrs["sequence_mask"], node.attrs["sequence_mask_value"]
    cache = e.__dict__.setdefault("masks", {})
    if (src, kind, value) not in cache:
        x = e.get(src)
        name = f"{src}/mask"
        if kind == "ids":
            dtype = np.int64 if e.type_of(src).dtype == "int64" else np.int32
            pad = e.op("Equal", [x, e.const("pad", int(value), dtype)], f"{name}/pad")
            cache[(src, kind, value)] = e.op("Not", [pad], name)
        else:
            same = e.op("Equal", [x, e.const("pad", value, np.float32)], f"{name}/same")
            diff = e.op("Cast", [e.op("Not", [same], f"{name}/differs")], f"{name}/float", to=TensorProto.FLOAT)
            kept = e.op("ReduceMax", [diff, e.const("axes", [-1])], f"{name}/any", keepdims=0)
            cache[(src, kind, value)] = e.op("Cast", [kept], name, to=TensorProto.BOOL)
    return cache[(src, kind, value)]


def _masking(e: OnnxEmitter, node: ir.Node) -> None:
    x, out = e.get(node.inputs[0]), e.out_name(node)
    same = e.op("Equal", [x, e.const("pad", node.attrs["value"], np.float32)], f"{out}/same")
    diff = e.op("Cast", [e.op("Not", [same], f"{out}/differs")], f"{out}/float", to=TensorProto.FLOAT)
    keep = e.op("ReduceMax", [diff, e.const("axes", [-1])], f"{out}/keep", keepdims=1)
    e.finish(node, e.op("Mul", [x, keep], out))


def _masked_global_pool(e: OnnxEmitter, node: ir.Node) -> None:
    """Average or max over the kept steps of [N, C, L]; 0 where every step is masked."""
    if not node.attrs.get("sequence_mask"):
        return _global_pool(e, node)
    x, out = e.get(node.inputs[0]), e.out_name(node)
    keep = e.op("Unsqueeze", [_mask(e, node), e.const("axes", [1])], f"{out}/keep")  # [N, 1, L]
    count = e.op("ReduceSum", [e.op("Cast", [keep], f"{out}/keep_float", to=TensorProto.FLOAT),
                               e.const("axes", [2])], f"{out}/count", keepdims=0)
    zero = e.const("c", 0.0, np.float32)
    if OPS[node.op].kind == "avg":
        total = e.op("ReduceSum", [e.op("Where", [keep, x, zero], f"{out}/kept"), e.const("axes", [2])],
                     f"{out}/sum", keepdims=0)
        y = e.op("Div", [total, e.op("Max", [count, e.const("c", 1.0, np.float32)], f"{out}/count1")], out)
    else:
        kept = e.op("Where", [keep, x, e.const("c", float("-inf"), np.float32)], f"{out}/kept")
        top = e.op("ReduceMax", [kept, e.const("axes", [2])], f"{out}/max", keepdims=0)
        y = e.op("Where", [e.op("Greater", [count, zero], f"{out}/any"), top, zero], out)
    e.finish(node, y)


def _masked_recurrent(e: OnnxEmitter, node: ir.Node) -> None:
    """A recurrent layer that skips masked steps, as Keras does: a Loop over time whose body runs one step of
    ONNX's RNN/GRU/LSTM and keeps the previous state (and output) where the step is masked."""
    a, kind, out = node.attrs, node.op, e.out_name(node)
    units, lstm = a["units"], node.op == "lstm"
    op_type = _RNN_OP[kind]
    x = e.get_time_major(node.inputs[0])  # [T, N, F]
    mask = e.op("Transpose", [_mask(e, node)], f"{out}/mask_time_major", perm=[1, 0])  # [T, N]
    tensors = _rnn_tensors(e, node, kind, ("",))
    shape = e.op("Shape", [x], f"{out}/shape")
    steps = e.op("Gather", [shape, e.const("index", 0)], f"{out}/steps", axis=0)
    n = e.op("Slice", [shape, e.const("starts", [1]), e.const("ends", [2])], f"{out}/batch")
    zeros = e.op("ConstantOfShape", [e.op("Concat", [e.const("one", [1]), n, e.const("units", [units])],
                                         f"{out}/state_shape", axis=0)], f"{out}/zero_state",
                 value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    zero_out = e.op("Squeeze", [zeros, e.const("axes", [0])], f"{out}/zero_output")
    states = node.inputs[1:-1] if a.get("initial_state") else []
    init = [e.op("Unsqueeze", [e.get(v), e.const("axes", [0])], f"{out}/initial{i}") for i, v in enumerate(states)]
    init = init or [zeros] * (2 if lstm else 1)
    # the body: one step
    b = f"{out}/step"
    f32 = TensorProto.FLOAT
    names = ["h", "c"][: len(init)]
    body_in = [helper.make_tensor_value_info(f"{b}/i", TensorProto.INT64, []),
               helper.make_tensor_value_info(f"{b}/cond", TensorProto.BOOL, []),
               *[helper.make_tensor_value_info(f"{b}/{s}_prev", f32, [1, None, units]) for s in names],
               helper.make_tensor_value_info(f"{b}/out_prev", f32, [None, units])]
    nodes = [
        helper.make_node("Gather", [x, f"{b}/i"], [f"{b}/x"], axis=0),
        helper.make_node("Unsqueeze", [f"{b}/x", e.const("axes", [0])], [f"{b}/x1"]),
        helper.make_node(op_type, [f"{b}/x1", *tensors, *([""] * (4 - len(tensors))),
                                   *[f"{b}/{s}_prev" for s in names]],
                         ["", *[f"{b}/{s}_new" for s in names]], hidden_size=units, direction="forward",
                         **({"linear_before_reset": 1} if kind == "gru" else {})),
        helper.make_node("Gather", [mask, f"{b}/i"], [f"{b}/m"], axis=0),
        helper.make_node("Unsqueeze", [f"{b}/m", e.const("axes", [0, 2])], [f"{b}/m3"]),
        helper.make_node("Unsqueeze", [f"{b}/m", e.const("axes", [1])], [f"{b}/m2"]),
        *[helper.make_node("Where", [f"{b}/m3", f"{b}/{s}_new", f"{b}/{s}_prev"], [f"{b}/{s}"]) for s in names],
        helper.make_node("Squeeze", [f"{b}/h_new", e.const("axes", [0])], [f"{b}/y"]),
        helper.make_node("Where", [f"{b}/m2", f"{b}/y", f"{b}/out_prev"], [f"{b}/out"]),
        helper.make_node("Identity", [f"{b}/cond"], [f"{b}/cond_out"]),
        helper.make_node("Identity", [f"{b}/out"], [f"{b}/scan"]),
    ]
    body_out = [helper.make_tensor_value_info(f"{b}/cond_out", TensorProto.BOOL, []),
                *[helper.make_tensor_value_info(f"{b}/{s}", f32, [1, None, units]) for s in names],
                helper.make_tensor_value_info(f"{b}/out", f32, [None, units]),
                helper.make_tensor_value_info(f"{b}/scan", f32, [None, units])]
    body = helper.make_graph(nodes, b, body_in, body_out)
    finals = [f"{out}/{s}_final" for s in names]
    *carried, last, scan = e.add("Loop", [steps, "", *init, zero_out],
                                 [*finals, f"{out}/last", f"{out}/sequence_time_major"], f"{out}/loop", body=body)
    parts = [e.op("Squeeze", [s, e.const("axes", [0])], f"{out}/{s_}") for s, s_ in zip(carried, names)]
    if a["return_sequences"]:
        e.finish(node, e.op("Transpose", [scan], out, perm=[1, 0, 2]))
    else:
        e.finish(node, last)
    e.__dict__.setdefault("state_results", {})[node.name] = parts


_FAMILY_EMITTERS.update({"masking": _masking, "global_pool": _masked_global_pool})
OnnxEmitter.TRANSFORMS = {name: _FAMILY_EMITTERS[op.family] for name, op in OPS.items()
                          if op.family in _FAMILY_EMITTERS}
