"""ONNX -> spec: a readable ``.net`` file and its canonical weights.

The graph is read in topological order; each node (or a small multi-node pattern:
Pad before Conv, MatMul + Add, a global pool followed by Flatten) becomes one step
of the language. Steps are grouped into chains with ``->`` wherever a value has one
consumer, and a chain is bound to a name where a value is shared, merged or an
output. The written spec is then checked by netspec itself, and the initialisers
are matched to the checked layers' canonical weights, shape by shape. A node
outside the language is an :class:`ImportError_` naming the node and its op type,
never a wrong model.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference


class ConversionError(Exception):
    """The model cannot be written as a spec; the message names the node and why."""


@dataclass
class _Step:
    """One step of a chain: a unary op (``conv2d(8, 3)``) or a merge that starts a chain."""

    text: str                      # op call; for a merge, a format string over its inputs
    inputs: list[str]              # ONNX tensors read (one for a unary step)
    output: str                    # ONNX tensor written
    node: str                      # the ONNX node's name, for value names and errors
    op: str = ""                   # the netspec op, when the step has weights
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    merge: bool = False


@dataclass
class Imported:
    """The result of an import: spec text, canonical weights, and a mapping report."""

    text: str
    weights: dict[str, np.ndarray]
    mapping: list[tuple[str, str, tuple[int, ...]]]  # (canonical name, ONNX initialiser, shape)
    network: str


_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus"}
_MERGES = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Max": "maximum", "Min": "minimum",
           "Sum": "add", "Mean": "average"}
_SKIP = {"Identity", "Dropout"}
_FLOATS = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32"}


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _tup(values) -> str:
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return "(" + ", ".join(str(v) for v in values) + ")"


def _num(x: float) -> str:
    text = repr(float(np.float32(x)))
    short = f"{float(np.float32(x)):.6g}"
    return short if float(np.float32(short)) == float(np.float32(x)) else text


def _reshape(dims: list[int]) -> str:
    return f"reshape(({', '.join(map(str, dims))}{',' if len(dims) == 1 else ''}))"


def _pads(pads: list[int], rank: int) -> str | None:
    """ONNX ``[b1.., e1..]`` as the language's padding: an int, a tuple, or (begin, end) pairs."""
    if not pads:
        return None
    begin, end = [int(p) for p in pads[:rank]], [int(p) for p in pads[rank:]]
    if not any(begin) and not any(end):
        return None
    if begin == end:
        return _tup(begin)
    return "(" + ", ".join(f"({b}, {e})" for b, e in zip(begin, end)) + ")"


class _Reader:
    def __init__(self, model: onnx.ModelProto):
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx raises ValidationError and others
            raise ConversionError(f"not a valid ONNX model: {str(exc).splitlines()[0]}") from None
        try:
            model = shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # shapes are a help, not a requirement
            pass
        self.model = model
        g = model.graph
        self.graph = g
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.used_consts: set[str] = set()
        self.shapes: dict[str, list] = {}
        self.dtypes: dict[str, int] = {}
        for vi in (*g.input, *g.value_info, *g.output):
            t = vi.type.tensor_type
            self.dtypes[vi.name] = t.elem_type
            self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                    for d in t.shape.dim]
        self.inputs = [vi for vi in g.input if vi.name not in self.consts]
        self.nodes = list(g.node)
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.absorbed: set[int] = set()
        self.folded_pads: dict[str, list[int]] = {}  # consumer's output -> pads folded into it
        self.zeros: set[str] = set()  # zero-filled tensors of a run-time shape (initial states)
        self.tm: dict[str, str] = {}  # a time-major tensor -> the batch-major tensor it views
        self.alias: dict[str, str] = {}  # tensors that are another tensor (Identity, Dropout)
        self.steps: list[_Step] = []

    # helpers ---------------------------------------------------------------------------------
    def fail(self, node: onnx.NodeProto, why: str):
        raise ConversionError(f"node '{node.name or node.output[0]}' ({node.op_type}): {why}")

    def const(self, name: str, node: onnx.NodeProto, what: str) -> np.ndarray:
        if name not in self.consts:
            self.fail(node, f"{what} must be a constant (an initializer), not a computed tensor '{name}'")
        self.used_consts.add(name)
        return self.consts[name]

    def src(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return len(shape) if shape is not None else None

    def shape(self, name: str) -> list | None:
        return self.shapes.get(name)

    def only_consumer(self, tensor: str) -> tuple[int, onnx.NodeProto] | None:
        users = self.consumers.get(tensor, [])
        outputs = {o.name for o in self.graph.output}
        if len(users) == 1 and tensor not in outputs:
            return users[0], self.nodes[users[0]]
        return None

    def add(self, node: onnx.NodeProto, text: str, output: str | None = None, op: str = "", **weights):
        output = output or node.output[0]
        self.steps.append(_Step(text, [self.src(node.input[0])], output, node.name or output, op, dict(weights)))

    # translation -------------------------------------------------------------------------------
    def _needed(self) -> set[int]:
        """Nodes the outputs depend on; shape arithmetic that only sizes zero states is not."""
        producer = {t: k for k, n in enumerate(self.nodes) for t in n.output if t}
        needed: set[int] = set()
        stack = [o.name for o in self.graph.output]
        while stack:
            k = producer.get(stack.pop())
            if k is None or k in needed:
                continue
            needed.add(k)
            node = self.nodes[k]
            if node.op_type != "ConstantOfShape":  # its shape input only sizes the zeros
                stack.extend(t for t in node.input if t)
        return needed

    def run(self) -> None:
        for node in self.nodes:  # constants first: patterns look ahead at their consumers' constants
            if node.op_type == "Constant":
                value = _attrs(node).get("value")
                if value is None:
                    self.fail(node, "only tensor constants are supported")
                self.consts[node.output[0]] = numpy_helper.to_array(value)
        needed = self._needed()
        for i, node in enumerate(self.nodes):
            if i in self.absorbed or i not in needed or node.op_type == "Constant":
                continue
            if node.op_type == "ConstantOfShape":
                value = _attrs(node).get("value")
                if value is not None and np.any(numpy_helper.to_array(value)):
                    self.fail(node, "only zero-filled tensors (initial states) have an equivalent")
                self.zeros.add(node.output[0])
                continue
            fn = getattr(self, f"op_{node.op_type}", None)
            if node.op_type in _SKIP:
                self.alias[node.output[0]] = self.src(node.input[0])
            elif node.op_type in _ACTIVATIONS:
                self.add(node, _ACTIVATIONS[node.op_type])
            elif node.op_type in _MERGES:
                self.merge(node, _MERGES[node.op_type])
            elif fn is not None:
                fn(i, node)
            else:
                self.fail(node, "this op has no equivalent in the netspec language")

    def merge(self, node: onnx.NodeProto, op: str) -> None:
        consts = [t for t in node.input if t in self.consts]
        if consts:
            self.fail(node, f"'{op}' with a constant operand ('{consts[0]}') has no equivalent; "
                            "merges combine computed values")
        inputs = [self.src(t) for t in node.input]
        if op in ("subtract",) and len(inputs) != 2:
            self.fail(node, "subtract takes two values")
        if len(inputs) == 1:
            self.alias[node.output[0]] = inputs[0]
            return
        text = f"{op}(" + ", ".join(f"{{{k}}}" for k in range(len(inputs))) + ")"
        self.steps.append(_Step(text, inputs, node.output[0], node.name or node.output[0], merge=True))

    def op_Concat(self, i, node):
        axis = int(_attrs(node).get("axis", 1))
        if axis == 0 or (axis < 0 and self.rank(node.output[0]) is not None
                         and axis + self.rank(node.output[0]) == 0):
            self.fail(node, "concatenation along the batch axis has no per-sample equivalent")
        inputs = [self.src(t) for t in node.input]
        if any(t in self.consts for t in node.input):
            self.fail(node, "concat with a constant tensor has no equivalent")
        k = axis - 1 if axis > 0 else axis
        text = "concat(" + ", ".join(f"{{{j}}}" for j in range(len(inputs))) + f", axis={k})"
        self.steps.append(_Step(text, inputs, node.output[0], node.name or node.output[0], merge=True))

    def op_LeakyRelu(self, i, node):
        self.add(node, f"leaky_relu({_num(_attrs(node).get('alpha', 0.01))})")

    def op_Elu(self, i, node):
        alpha = _attrs(node).get("alpha", 1.0)
        self.add(node, "elu" if alpha == 1.0 else f"elu({_num(alpha)})")

    def op_Gelu(self, i, node):
        approx = _attrs(node).get("approximate", "none")
        self.add(node, "gelu(approximate=true)" if approx == "tanh" else "gelu")

    def op_HardSigmoid(self, i, node):
        a = _attrs(node)
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-7:
            self.fail(node, "only HardSigmoid(alpha=1/6, beta=0.5) is the language's hard_sigmoid")
        self.add(node, "hard_sigmoid")

    def op_Clip(self, i, node):
        a = _attrs(node)
        lo, hi = a.get("min"), a.get("max")
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node.input[1], node, "Clip's min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node.input[2], node, "Clip's max"))
        if lo == 0 and hi == 6:
            self.add(node, "relu6")
        elif lo == 0 and hi is None:
            self.add(node, "relu")
        else:
            self.fail(node, f"Clip({lo}, {hi}) has no equivalent (relu6 is Clip(0, 6))")

    def op_Softmax(self, i, node):
        opset = max((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), default=13)
        axis = int(_attrs(node).get("axis", -1 if opset >= 13 else 1))
        rank = self.rank(node.input[0])
        if opset < 13 and not (rank is not None and axis in (rank - 1, -1)):
            self.fail(node, "Softmax before opset 13 flattens from its axis; only the last axis is supported")
        if axis == 0:
            self.fail(node, "softmax over the batch axis has no per-sample equivalent")
        k = axis - 1 if axis > 0 else axis
        if rank is not None and k == rank - 2:
            k = -1
        self.add(node, "softmax" if k == -1 else f"softmax(axis={k})")

    def op_Swish(self, i, node):
        self.add(node, "swish")

    def _spatial(self, node) -> int:
        rank = self.rank(node.input[0])
        if rank is None:
            w = node.input[1] if len(node.input) > 1 else None
            if w in self.consts:
                return self.consts[w].ndim - 2
            kernel = _attrs(node).get("kernel_shape")
            if kernel:
                return len(kernel)
            self.fail(node, "the input's rank is unknown")
        return rank - 2

    def _pad_arg(self, node, a: dict, n: int, extra: list[int] | None = None) -> str | None:
        auto = a.get("auto_pad", "NOTSET")
        if auto == "VALID":
            return None
        if auto == "SAME_UPPER":
            return "same"
        if auto == "SAME_LOWER":
            self.fail(node, "auto_pad SAME_LOWER has no equivalent (the language's 'same' puts the extra "
                            "padding at the end)")
        pads = [int(p) for p in a.get("pads", [0] * (2 * n))]
        if extra:
            pads = [p + q for p, q in zip(pads, extra)]
        return _pads(pads, n)

    def _absorb_pad(self, node) -> list[int] | None:
        """Spatial pads of a zero Pad that feeds only this node (folded into it by op_Pad)."""
        return self.folded_pads.pop(node.output[0], None)

    def op_Pad(self, i, node):
        a = _attrs(node)
        if a.get("mode", "constant") != "constant":
            self.fail(node, f"Pad mode '{a.get('mode')}' has no equivalent (only zero padding)")
        pads = list(a.get("pads", []))
        if len(node.input) > 1 and node.input[1]:
            pads = [int(p) for p in self.const(node.input[1], node, "Pad's pads")]
        if len(node.input) > 2 and node.input[2] and float(self.const(node.input[2], node, "Pad's value")) != 0:
            self.fail(node, "only zero padding has an equivalent (zeropad)")
        if len(node.input) > 3 and node.input[3]:
            self.fail(node, "Pad with axes has no equivalent")
        r = len(pads) // 2
        if r < 3 or pads[0] or pads[1] or pads[r] or pads[r + 1]:
            self.fail(node, "only padding of spatial axes has an equivalent (zeropad1d/2d/3d)")
        n = r - 2
        spatial = pads[2:r] + pads[r + 2:]
        nxt = self.only_consumer(node.output[0])
        foldable = nxt is not None and nxt[1].input[0] == node.output[0] and (
            _attrs(nxt[1]).get("auto_pad", "NOTSET") == "NOTSET"
            and (nxt[1].op_type == "Conv"
                 or (nxt[1].op_type == "AveragePool" and _attrs(nxt[1]).get("count_include_pad", 0))))
        if foldable:
            self.folded_pads[nxt[1].output[0]] = spatial  # Pad -> Conv: one convolution with padding
            self.alias[node.output[0]] = self.src(node.input[0])
            return
        text = _pads(spatial, n) or "0"
        self.add(node, f"zeropad{n}d({text})")

    def op_Conv(self, i, node):
        a = _attrs(node)
        w = self.const(node.input[1], node, "the kernel")
        n = w.ndim - 2
        extra = self._absorb_pad(node)
        bias = self.const(node.input[2], node, "the bias") if len(node.input) > 2 and node.input[2] else None
        groups = int(a.get("group", 1))
        c_in = w.shape[1] * groups
        out = w.shape[0]
        kernel = a.get("kernel_shape") or list(w.shape[2:])
        args, tail = [], []
        if groups > 1 and groups == c_in and n == 2:
            op, head = "depthwise_conv2d", [_tup(kernel)]
            if out != c_in:
                tail.append(f"depth_multiplier={out // c_in}")
        else:
            op, head = f"conv{n}d", [str(out), _tup(kernel)]
            if groups > 1:
                tail.append(f"groups={groups}")
        if n not in (1, 2, 3):
            self.fail(node, f"a {n}-D convolution has no equivalent")
        strides = a.get("strides", [1] * n)
        if any(s != 1 for s in strides):
            args.append(f"stride={_tup(strides)}")
        pad = self._pad_arg(node, a, n, extra)
        if pad is not None:
            args.append(f"padding={pad}")
        dil = a.get("dilations", [1] * n)
        if any(d != 1 for d in dil):
            args.append(f"dilation={_tup(dil)}")
        args += tail
        if bias is None:
            args.append("use_bias=false")
        weights = {"kernel": w}
        if bias is not None:
            weights["bias"] = bias
        self.add(node, f"{op}({', '.join(head + args)})", op=op, **weights)

    def op_ConvTranspose(self, i, node):
        a = _attrs(node)
        w = self.const(node.input[1], node, "the kernel")
        n = w.ndim - 2
        groups = int(a.get("group", 1))
        bias = self.const(node.input[2], node, "the bias") if len(node.input) > 2 and node.input[2] else None
        if a.get("output_shape"):
            self.fail(node, "ConvTranspose with output_shape has no equivalent; give pads instead")
        args = [str(w.shape[1] * groups), _tup(a.get("kernel_shape") or w.shape[2:])]
        strides = a.get("strides", [1] * n)
        if any(s != 1 for s in strides):
            args.append(f"stride={_tup(strides)}")
        pad = self._pad_arg(node, a, n)
        if pad is not None:
            args.append(f"padding={pad}")
        op_pad = a.get("output_padding", [0] * n)
        if any(op_pad):
            args.append(f"output_padding={_tup(op_pad)}")
        dil = a.get("dilations", [1] * n)
        if any(d != 1 for d in dil):
            args.append(f"dilation={_tup(dil)}")
        if groups > 1:
            args.append(f"groups={groups}")
        if bias is None:
            args.append("use_bias=false")
        weights = {"kernel": w}
        if bias is not None:
            weights["bias"] = bias
        self.add(node, f"conv_transpose{n}d({', '.join(args)})", op=f"conv_transpose{n}d", **weights)

    def op_Gemm(self, i, node):
        a = _attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            self.fail(node, "only Gemm(transA=0, alpha=1, beta=1) is a dense layer")
        b = self.const(node.input[1], node, "Gemm's B")
        kernel = b if a.get("transB", 0) else b.T
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node.input[2], node, "Gemm's C").reshape(-1)
            if bias.shape[0] != kernel.shape[0]:
                bias = np.broadcast_to(bias, (kernel.shape[0],)).copy()
        self._dense(node, kernel, bias, node.output[0])

    def _dense(self, node, kernel, bias, output):
        weights = {"kernel": np.ascontiguousarray(kernel)}
        text = f"dense({kernel.shape[0]}"
        if bias is None:
            text += ", use_bias=false"
        else:
            weights["bias"] = bias
        self.add(node, text + ")", output, op="dense", **weights)

    def op_MatMul(self, i, node):
        if node.input[1] not in self.consts:
            self.fail(node, "MatMul of two computed values has no equivalent (a constant right side is dense)")
        w = self.const(node.input[1], node, "MatMul's right side")
        if w.ndim != 2:
            self.fail(node, "only a 2-D constant right side is a dense layer")
        bias, output = None, node.output[0]
        nxt = self.only_consumer(node.output[0])
        if nxt is not None and nxt[1].op_type == "Add":
            other = [t for t in nxt[1].input if t != node.output[0]]
            if len(other) == 1 and other[0] in self.consts and self.consts[other[0]].size == w.shape[1]:
                bias = self.const(other[0], nxt[1], "the bias").reshape(-1)
                output = nxt[1].output[0]
                self.absorbed.add(nxt[0])
        self._dense(node, w.T, bias, output)

    def op_BatchNormalization(self, i, node):
        a = _attrs(node)
        if a.get("training_mode", 0):
            self.fail(node, "BatchNormalization in training mode has no inference equivalent")
        scale, beta, mean, var = (self.const(t, node, what) for t, what in
                                  zip(node.input[1:5], ("the scale", "the bias", "the mean", "the variance")))
        eps = a.get("epsilon", 1e-5)
        momentum = a.get("momentum", 0.9)
        self.add(node, f"batchnorm(eps={_num(eps)}, momentum={_num(momentum)})", op="batchnorm",
                 gamma=scale, beta=beta, moving_mean=mean, moving_variance=var)

    def _pool(self, node, kind: str):
        a = _attrs(node)
        kernel = a["kernel_shape"]
        n = len(kernel)
        if any(d != 1 for d in a.get("dilations", [1] * n)):
            self.fail(node, "dilated pooling has no equivalent")
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "MaxPool's indices output has no equivalent")
        args = [_tup(kernel)]
        strides = a.get("strides", [1] * n)
        if list(strides) != list(kernel):
            args.append(f"stride={_tup(strides)}")
        extra = self._absorb_pad(node) if kind == "avg" and a.get("count_include_pad", 0) else None
        pad = self._pad_arg(node, a, n, extra)
        if pad is not None:
            args.append(f"padding={pad}")
        if a.get("ceil_mode", 0):
            args.append("ceil_mode=true")
        if kind == "avg" and a.get("count_include_pad", 0) and pad is not None:
            args.append("count_include_pad=true")
        self.add(node, f"{kind}pool{n}d({', '.join(args)})")

    def op_MaxPool(self, i, node):
        self._pool(node, "max")

    def op_AveragePool(self, i, node):
        self._pool(node, "avg")

    def _global(self, i, node, kind: str):
        n = self._spatial(node)
        out = node.output[0]
        nxt = self.only_consumer(out)
        text = f"global_{kind}pool{n}d"
        if nxt is not None and nxt[1].op_type == "Flatten" and _attrs(nxt[1]).get("axis", 1) == 1:
            self.absorbed.add(nxt[0])
            self.add(node, text, nxt[1].output[0])
            return
        if nxt is not None and nxt[1].op_type in ("Reshape", "Squeeze") and self.rank(nxt[1].output[0]) == 2:
            self.absorbed.add(nxt[0])
            self.add(node, text, nxt[1].output[0])
            return
        shape = self.shape(node.input[0])
        channels = shape[1] if shape and isinstance(shape[1], int) and shape[1] else None
        if channels is None:
            self.fail(node, "the channel count is unknown; a global pool keeps [C, 1, ...] only when it is static")
        self.add(node, text, out + "#pooled")
        ones = ", ".join(["1"] * n)
        self.steps.append(_Step(f"reshape(({channels}, {ones}))", [out + "#pooled"], out, node.name or out))

    def op_GlobalAveragePool(self, i, node):
        self._global(i, node, "avg")

    def op_GlobalMaxPool(self, i, node):
        self._global(i, node, "max")

    def _reduce(self, i, node, kind: str):
        a = _attrs(node)
        rank = self.rank(node.input[0])
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(x) for x in self.const(node.input[1], node, "the axes")]
        if rank is None or axes is None or sorted(x % rank for x in axes) != list(range(2, rank)):
            self.fail(node, "only a reduction over every spatial axis (a global pool) has an equivalent")
        if a.get("keepdims", 1):
            self._global(i, node, kind)
        else:
            self.add(node, f"global_{kind}pool{rank - 2}d")

    def op_ReduceMean(self, i, node):
        self._reduce(i, node, "avg")

    def op_ReduceMax(self, i, node):
        self._reduce(i, node, "max")

    def op_Flatten(self, i, node):
        if int(_attrs(node).get("axis", 1)) != 1:
            self.fail(node, "only Flatten(axis=1) keeps the batch axis")
        self.add(node, "flatten")

    def _target_shape(self, node) -> list[int]:
        out = self.shape(node.output[0])
        if not out or any(not isinstance(d, int) or d <= 0 for d in out[1:]):
            self.fail(node, "the per-sample output shape must be static")
        return [int(d) for d in out[1:]]

    def op_Reshape(self, i, node):
        shape = [int(s) for s in self.const(node.input[1], node, "Reshape's shape")]
        if not shape or shape[0] not in (0, -1) and not (self.shape(node.input[0]) or [None])[0] == shape[0]:
            self.fail(node, "a reshape must keep the batch axis (0 or -1 first)")
        rest = shape[1:]
        if -1 in rest or 0 in rest:
            rest = self._target_shape(node)
        if len(rest) == 1 and self.rank(node.input[0]) not in (None, 2) and self._flat_ok(node, rest[0]):
            self.add(node, "flatten")
        else:
            self.add(node, _reshape(rest))

    def _flat_ok(self, node, size: int) -> bool:
        shape = self.shape(node.input[0])
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
            return False
        return int(np.prod(shape[1:])) == size

    def op_Squeeze(self, i, node):
        self.add(node, _reshape(self._target_shape(node)))

    op_Unsqueeze = op_Squeeze

    def op_Resize(self, i, node):
        a = _attrs(node)
        mode = a.get("mode", "nearest")
        n = (self.rank(node.input[0]) or 0) - 2
        scales = None
        if len(node.input) > 2 and node.input[2]:
            scales = [float(s) for s in self.const(node.input[2], node, "Resize's scales")]
        elif len(node.input) > 3 and node.input[3]:
            sizes = [int(s) for s in self.const(node.input[3], node, "Resize's sizes")]
            shape = self.shape(node.input[0])
            if not shape or any(not isinstance(d, int) or d <= 0 for d in shape[2:]):
                self.fail(node, "Resize by sizes needs a static input shape")
            scales = [1.0, 1.0] + [s / d for s, d in zip(sizes[2:], shape[2:])]
        if not scales or scales[:2] != [1.0, 1.0] or any(s != int(s) or s < 1 for s in scales[2:]) or n < 1:
            self.fail(node, "only integer upsampling of the spatial axes has an equivalent")
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        scale = _tup([int(s) for s in scales[2:]])
        if mode == "nearest":
            if a.get("nearest_mode", "round_prefer_floor") not in ("floor", "round_prefer_floor") or \
                    ctm not in ("asymmetric", "half_pixel", "pytorch_half_pixel"):
                self.fail(node, "only floor-nearest upsampling has an equivalent")
            self.add(node, f"upsample{n}d({scale})")
        elif mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel"):
            self.add(node, f"upsample{n}d({scale}, mode=linear)")
        else:
            self.fail(node, f"Resize mode '{mode}' with '{ctm}' coordinates has no equivalent")

    def op_Upsample(self, i, node):
        self.op_Resize(i, onnx.helper.make_node("Resize", [node.input[0], "", node.input[1]], list(node.output),
                                                name=node.name, mode=_attrs(node).get("mode", "nearest"),
                                                coordinate_transformation_mode="asymmetric",
                                                nearest_mode="floor"))

    # recurrent layers ------------------------------------------------------------------------------
    # ONNX's LSTM/GRU/RNN are time-major ([T, N, F]); the language's are batch-major per sample. A
    # time-major tensor is tracked as a view of a batch-major one (self.tm), never written as a value.

    def op_Transpose(self, i, node):
        perm = list(_attrs(node).get("perm") or [])
        if perm == [1, 0, 2]:
            src = self.src(node.input[0])
            if src in self.tm:  # back to batch-major
                self.alias[node.output[0]] = self.tm[src]
            else:
                self.tm[node.output[0]] = src
            return
        if not perm or perm[0] != 0:
            self.fail(node, "a transpose must keep the batch axis first")
        self.add(node, f"permute(({', '.join(str(p - 1) for p in perm[1:])}{',' if len(perm) == 2 else ''}))")

    def _consumer(self, tensor: str, op_type: str, **want) -> tuple[int, onnx.NodeProto] | None:
        found = self.only_consumer(tensor)
        if found is None or found[1].op_type != op_type:
            return None
        a = _attrs(found[1])
        for key, value in want.items():
            got = a.get(key)
            if key == "axes" and got is None and len(found[1].input) > 1 and found[1].input[1] in self.consts:
                got = [int(v) for v in self.consts[found[1].input[1]]]
            if key == "shape":
                got = [int(v) for v in self.consts.get(found[1].input[1], [])] if len(found[1].input) > 1 else None
            if got is not None and not isinstance(got, int):
                got = list(got)
            if got != value:
                return None
        return found

    def _recurrent(self, i, node, kind: str):
        a = _attrs(node)
        for k, what in ((4, "sequence_lens"), (7, "peephole weights")):
            if len(node.input) > k and node.input[k]:
                self.fail(node, f"{what} have no equivalent")
        for k in (5, 6):
            if len(node.input) > k and node.input[k]:
                init = node.input[k]
                if init not in self.zeros and (init not in self.consts or np.any(self.consts[init])):
                    self.fail(node, "only zero initial states have an equivalent")
        if a.get("clip") is not None or a.get("input_forget", 0):
            self.fail(node, "clip and input_forget have no equivalent")
        default_acts = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"], "simple_rnn": ["Tanh"]}
        acts = [x.decode() if isinstance(x, bytes) else x for x in a.get("activations", [])]
        if acts and acts[: len(default_acts[kind])] != default_acts[kind]:
            self.fail(node, f"activations {acts} have no equivalent (the defaults only)")
        if kind == "gru" and not a.get("linear_before_reset", 0):
            self.fail(node, "GRU with linear_before_reset=0 has no equivalent: the language's gru applies the "
                            "reset gate after the recurrent product (PyTorch's form, Keras's reset_after=True)")
        direction = a.get("direction", "forward")
        if direction == "reverse":
            self.fail(node, "a reverse-only recurrent layer has no equivalent (bidirectional runs both ways)")
        layout = a.get("layout", 0)
        x = self.src(node.input[0])
        if layout == 0:
            if x not in self.tm:
                self.fail(node, "its time-major input does not come from a batch-major value (Transpose [1, 0, 2])")
            x = self.tm[x]
        W = self.const(node.input[1], node, "W")
        R = self.const(node.input[2], node, "R")
        B = self.const(node.input[3], node, "B") if len(node.input) > 3 and node.input[3] else None
        units = int(a.get("hidden_size", R.shape[-1]))
        order = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2), "simple_rnn": (0,)}[kind]

        def gates(m):
            blocks = np.split(m, len(order), axis=0)
            return np.concatenate([blocks[k] for k in order], axis=0)

        dirs = 2 if direction == "bidirectional" else 1
        weights = {}
        for d, prefix in enumerate(("forward.", "backward.")[:dirs] if dirs == 2 else ("",)):
            weights[f"{prefix}kernel"] = gates(W[d])
            weights[f"{prefix}recurrent_kernel"] = gates(R[d])
            if B is not None:
                wb, rb = np.split(B[d], 2)
                if kind == "gru":
                    weights[f"{prefix}bias"], weights[f"{prefix}recurrent_bias"] = gates(wb), gates(rb)
                else:
                    weights[f"{prefix}bias"] = gates(wb + rb)
        outs = list(node.output) + [""] * 3
        y, yh = outs[0], outs[1]
        used = [bool(t) and bool(self.consumers.get(t)) or t in {o.name for o in self.graph.output}
                for t in outs[:3]]
        if used[2]:
            self.fail(node, "the cell state output has no equivalent")
        if used[0] and used[1]:
            self.fail(node, "using both the sequence and the final state has no equivalent yet")
        merge, out, time_major = None, None, False
        if used[1]:  # final state [D, N, u]
            if dirs == 1 and (c := self._consumer(yh, "Squeeze", axes=[0])):
                out = c
            elif dirs == 2 and (t := self._consumer(yh, "Transpose", perm=[1, 0, 2])) and \
                    (c := self._consumer(t[1].output[0], "Reshape", shape=[0, -1])):
                self.absorbed.add(t[0])
                out, merge = c, "concat"
            elif dirs == 2:
                for op_type, mode in (("ReduceSum", "sum"), ("ReduceMean", "ave"), ("ReduceProd", "mul")):
                    if c := self._consumer(yh, op_type, axes=[0], keepdims=0):
                        out, merge = c, mode
                        break
            sequences = False
        else:  # every step [T, D, N, u]
            sequences = True
            if dirs == 1 and (c := self._consumer(y, "Squeeze", axes=[1])):
                out, time_major = c, True
            elif dirs == 1 and (t := self._consumer(y, "Transpose", perm=[2, 0, 1, 3])) and \
                    (c := self._consumer(t[1].output[0], "Squeeze", axes=[2])):
                self.absorbed.add(t[0])
                out = c
            elif dirs == 2 and (t := self._consumer(y, "Transpose", perm=[0, 2, 1, 3])) and \
                    (c := self._consumer(t[1].output[0], "Reshape", shape=[0, 0, -1])):
                self.absorbed.add(t[0])
                out, merge, time_major = c, "concat", True
            elif dirs == 2 and (t := self._consumer(y, "Transpose", perm=[2, 0, 1, 3])) and \
                    (c := self._consumer(t[1].output[0], "Reshape", shape=[0, 0, -1])):
                self.absorbed.add(t[0])
                out, merge = c, "concat"
            elif dirs == 2:
                for op_type, mode in (("ReduceSum", "sum"), ("ReduceMean", "ave"), ("ReduceProd", "mul")):
                    if c := self._consumer(y, op_type, axes=[1], keepdims=0):
                        out, merge, time_major = c, mode, True
                        break
        if out is None:
            self.fail(node, "its outputs are used in a way the language cannot express (expected the "
                            "sequence or the final state, squeezed, or merged across directions)")
        self.absorbed.add(out[0])
        call = f"{kind}({units}{', return_sequences=true' if sequences else ''}"
        call += ", use_bias=false)" if B is None else ")"
        op = kind
        if dirs == 2:
            call = f"bidirectional({call}{'' if merge == 'concat' else f', merge_mode={merge}'})"
            op = "bidirectional"
        result = out[1].output[0]
        if time_major:
            self.tm[result] = result + "#batch_major"
            result = result + "#batch_major"
        self.steps.append(_Step(call, [x], result, node.name or result, op, weights))

    def op_LSTM(self, i, node):
        self._recurrent(i, node, "lstm")

    def op_GRU(self, i, node):
        self._recurrent(i, node, "gru")

    def op_RNN(self, i, node):
        self._recurrent(i, node, "simple_rnn")

    def op_Gather(self, i, node):
        data = node.input[0]
        if data not in self.consts or int(_attrs(node).get("axis", 0)) != 0:
            self.fail(node, "only a lookup in a constant table along axis 0 is an embedding")
        table = self.const(data, node, "the embedding table")
        if table.ndim != 2:
            self.fail(node, "an embedding table must be 2-D")
        self.steps.append(_Step(f"embedding({table.shape[0]}, {table.shape[1]})", [self.src(node.input[1])],
                                node.output[0], node.name or node.output[0], "embedding",
                                {"embeddings": table}))


# writing the spec ----------------------------------------------------------------------------------

_IDENT = re.compile(r"[^0-9A-Za-z_]+")
_RESERVED = {"in", "input", "target", "output", "loss", "optimizer", "network", "block", "layer", "return",
             "true", "false"}


def _ident(text: str, taken: set[str], fallback: str = "x") -> str:
    base = _IDENT.sub("_", text).strip("_").lower() or fallback
    base = re.sub(r"_+", "_", base)
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    if keyword.iskeyword(base) or base in _RESERVED:
        base += "_"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _value_name(step: _Step) -> str:
    """A readable name from an exporter's node name: ``/layer1/layer1.0/conv1/Conv`` -> ``layer1_0_conv1``."""
    text = step.node
    if text.startswith("/"):
        parts = [p for p in text.split("/") if p]
        if len(parts) > 1:
            parts = parts[:-1]  # the op type
        # torch repeats the parent path: layer1/layer1.0/conv1 -> keep the last, most specific path
        text = parts[-1] if len(parts) == 1 else "_".join(
            p for k, p in enumerate(parts) if not any(q.startswith(p + ".") for q in parts[k + 1:]))
    return text


def _network_name(model: onnx.ModelProto, path: str | None) -> str:
    name = model.graph.name or (Path(path).stem if path else "Imported")
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    out = "".join(w[:1].upper() + w[1:] for w in words) or "Imported"
    return out if not out[0].isdigit() else f"Net{out}"


def _type_text(reader: _Reader, vi) -> str:
    t = vi.type.tensor_type
    dtype = _FLOATS.get(t.elem_type)
    if dtype is None:
        raise ConversionError(f"input '{vi.name}': element type {onnx.TensorProto.DataType.Name(t.elem_type)} "
                              "has no equivalent (float32, int32, int64)")
    dims = []
    for k, d in enumerate(t.shape.dim):
        if k == 0:
            continue  # the batch axis
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(str(d.dim_value))
        elif d.dim_param:
            dims.append(_IDENT.sub("_", d.dim_param) or "D")
        else:
            raise ConversionError(f"input '{vi.name}': axis {k} has no size and no name")
    if not t.shape.dim:
        raise ConversionError(f"input '{vi.name}' has no batch axis")
    prefix = "" if dtype == "float32" else dtype
    return f"{prefix}[{', '.join(dims)}]"


def _weight_key(step: _Step) -> tuple:
    """The buffers a step's weights live in: equal keys read the same initialisers."""
    return tuple(sorted((k, v.__array_interface__["data"][0], v.shape) for k, v in step.weights.items()))


def _write(reader: _Reader, network: str, source: str) -> tuple[str, list[_Step]]:
    """Group steps into chains, bind shared values, and write the .net text."""
    taken: set[str] = set()
    names: dict[str, str] = {}  # ONNX tensor -> bound name
    lines = [f"# Imported from {source} by netspec import.", f"network {network} {{"]
    for vi in reader.inputs:
        names[vi.name] = _ident(vi.name, taken, "input")
        lines.append(f"    input {names[vi.name]}: {_type_text(reader, vi)}")
    lines.append("")
    outputs = [reader.src(o.name) for o in reader.graph.output]
    uses: dict[str, int] = {}
    for s in reader.steps:
        for t in s.inputs:
            uses[t] = uses.get(t, 0) + 1
    ordered: list[_Step] = []  # weighted steps, in the order the text lists them
    # Steps reading the same initialisers are one shared layer: `layer NAME = op(...)`, used by name.
    groups: dict[tuple, list[_Step]] = {}
    for s in reader.steps:
        if s.weights:
            groups.setdefault(_weight_key(s), []).append(s)
    layer_lines = []
    for members in groups.values():
        if len(members) > 1:
            name = _ident(_value_name(members[0]), taken, "layer")
            layer_lines.append(f"    layer {name} = {members[0].text}")
            for m in members:
                m.text = name
    if layer_lines:
        lines += [*layer_lines, ""]
    open_chains: dict[str, list[_Step]] = {}  # tail tensor -> steps (first may be a merge)

    def close(tail: str) -> None:
        steps = open_chains.pop(tail)
        if tail in outputs:
            name = _ident(next(o.name for o in reader.graph.output if reader.src(o.name) == tail), taken, "y")
        else:
            name = _ident(_value_name(steps[-1]), taken, "x")
        names[tail] = name
        first = steps[0]
        if first.merge:
            head = first.text.format(*(names[t] for t in first.inputs))
            rest = steps[1:]
        else:
            head, rest = names[first.inputs[0]], steps
        parts = [head, *(s.text for s in rest)]
        text = f"    {name} = {parts[0]}"
        for p in parts[1:]:
            piece = f" -> {p}"
            if len(text.rsplit(chr(10), 1)[-1]) + len(piece) > 96:
                text += f"\n        -> {p}"
            else:
                text += piece
        lines.append(text)
        for s in steps:
            if s.weights and all(_weight_key(s) != _weight_key(o) for o in ordered):
                ordered.append(s)

    for s in reader.steps:
        src = s.inputs[0] if not s.merge else None
        if src is not None and src in open_chains and uses.get(src, 0) == 1 and src not in outputs:
            chain = open_chains.pop(src)
            chain.append(s)
            open_chains[s.output] = chain
            continue
        for t in s.inputs:
            if t in open_chains:
                close(t)
            if t not in names:
                raise ConversionError(f"value '{t}' is read before it is computed (node '{s.node}')")
        open_chains[s.output] = [s]
    for tail in list(open_chains):
        close(tail)
    missing = [o for o in outputs if o not in names]
    if missing:
        raise ConversionError(f"output '{missing[0]}' is computed by nothing the language can express")
    out_names = [names[o] for o in outputs]
    lines += ["", f"    output {', '.join(out_names)}", "}"]
    return "\n".join(lines) + "\n", ordered


def import_onnx(model: onnx.ModelProto | str | Path, network: str | None = None) -> Imported:
    """Translate an ONNX model into spec text and canonical weights, checked by netspec.

    Raises :class:`ConversionError` for a node outside the language, naming it.
    """
    path = None
    if isinstance(model, (str, Path)):
        path = str(model)
        try:
            model = onnx.load(path)
        except Exception as exc:  # protobuf's DecodeError and OSError
            raise ConversionError(f"cannot read '{path}' as ONNX: {exc}") from None
    reader = _Reader(model)
    reader.run()
    name = network or _network_name(model, path)
    source = Path(path).name if path else "an ONNX model"
    text, ordered = _write(reader, name, source)

    from ..api import parse_text
    from ..diagnostics import SpecError

    try:
        spec = parse_text(text, f"{name}.net")
    except SpecError as exc:  # a translation the checker refuses is a bug here, but say it clearly
        raise ConversionError("the written spec does not check:\n" + exc.render()) from None
    net = spec.network()
    owners, seen = [], set()
    for n in net.nodes:
        if n.params and n.layer not in seen:
            seen.add(n.layer)
            owners.append(n)
    if len(owners) != len(ordered):
        raise ConversionError(f"internal: {len(ordered)} weighted steps but {len(owners)} layers with weights")
    weights: dict[str, np.ndarray] = {}
    mapping = []
    by_id = {id(v): k for k, v in reader.consts.items()}
    for node, step in zip(owners, ordered):
        if node.op != step.op:
            raise ConversionError(f"internal: layer '{node.name}' is {node.op}, expected {step.op}")
        for p in node.params:
            if p.name not in step.weights:
                raise ConversionError(f"layer '{node.name}' needs '{p.name}', which node '{step.node}' lacks")
            arr = np.asarray(step.weights[p.name])
            if arr.dtype.kind != "f":
                raise ConversionError(f"node '{step.node}': weight '{p.name}' is {arr.dtype}, not floating point")
            if tuple(arr.shape) != tuple(p.shape):
                raise ConversionError(f"node '{step.node}': weight '{p.name}' has shape {list(arr.shape)}, "
                                      f"layer '{node.name}' expects {list(p.shape)}")
            weights[f"{node.layer}.{p.name}"] = np.ascontiguousarray(arr, dtype=np.float32)
            mapping.append((f"{node.layer}.{p.name}", by_id.get(id(step.weights[p.name]), "(derived)"),
                            tuple(arr.shape)))
    return Imported(text, weights, mapping, name)
