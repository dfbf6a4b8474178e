"""Layer ops: dense, convolutions, pooling, reshaping, normalisation, embedding, RNNs."""

from __future__ import annotations

from math import prod

from .. import shapes
from ..ir_plain import Param, TensorType
from .base import (
    Attr,
    Bool,
    Callable,
    Enum,
    Float,
    InferError,
    Int,
    IntsOrInt,
    IntTuple,
    Layer,
    OpDef,
    Padding,
    Shape,
    lookup_op,
    norm_axis,
    static,
)

AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}

WEIGHTS = {
    "activation": Attr(Callable("activation"), None, "activation applied to the output"),
    "use_bias": Attr(Bool(), True, "add a bias vector"),
    "kernel_init": Attr(Callable("initializer"), "glorot_uniform", "kernel initializer"),
    "bias_init": Attr(Callable("initializer"), "zeros", "bias initializer"),
    "kernel_regularizer": Attr(Callable("regularizer"), None, "penalty on the kernel"),
    "bias_regularizer": Attr(Callable("regularizer"), None, "penalty on the bias"),
}


def _float(t: TensorType, shape) -> TensorType:
    return TensorType(dtype="float32", shape=tuple(shape))


def _kernel(name, shape, attrs, key="kernel") -> Param:
    return Param(name=name, shape=tuple(shape), init=attrs[f"{key}_init"],
                 regularizer=attrs.get(f"{key}_regularizer"))


def _bias(shape, attrs) -> list[Param]:
    if not attrs.get("use_bias", True):
        return []
    return [Param(name="bias", shape=tuple(shape), init=attrs["bias_init"],
                  regularizer=attrs.get("bias_regularizer"))]


def _product(shape) -> str:
    """``4 * 6 = 24`` (or ``24`` for one dimension, ``1`` for none)."""
    if len(shape) <= 1:
        return str(shape[0]) if shape else "1"
    return f"{' * '.join(map(str, shape))} = {prod(shape)}"


def _count(shape) -> int:
    """Elements of a shape, run-time dimensions counted as 1."""
    return prod(d if isinstance(d, int) else 1 for d in shape)


def _spatial_input(op: OpDef, t: TensorType) -> tuple[int, tuple]:
    want = op.rank + 1
    layout = {1: "[C, L]", 2: "[C, H, W]", 3: "[C, D, H, W]"}[op.rank]
    if t.rank != want:
        raise InferError(f"{op.name} expects a rank-{want} input {layout}; received: {t}")
    if not isinstance(t.shape[0], int):
        notes = ("a sequence [T, F] becomes channels-first [F, T] with `permute(1, 0)`",) if t.rank == 2 else ()
        raise InferError(f"{op.name} expects a channels-first input {layout} with a static channel axis; "
                         f"received: {t}", code="E404", notes=notes)
    return t.shape[0], t.shape[1:]


def _check_groups(op: OpDef, channels: int, attrs) -> None:
    g = attrs["groups"]
    if channels % g or attrs["filters"] % g:
        raise InferError(f"{op.name}: groups={g} must divide the input channels ({channels}) and "
                         f"filters ({attrs['filters']})", code="E402", arg="groups")


def _resolve_padding(op: OpDef, padding, sizes, kernel, stride, dilation):
    """Explicit (begin, end) pairs per spatial axis; 'same' follows TensorFlow's rule."""
    if padding != "same":
        return padding
    pads = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        if s == 1:
            total = shapes.effective_kernel(k, d) - 1
            pads.append((total // 2, total - total // 2))
        elif not isinstance(size, int):
            raise InferError(f"{op.name} with padding=same and stride {s} needs a static size; "
                             f"received the run-time dimension '{size}'", code="E404")
        else:
            pads.append(shapes.same_padding(size, k, s, d))
    return tuple(pads)


def _dynamic(size: str, k_eff: int, stride: int, pb: int, pe: int, ceil_mode: bool = False) -> str:
    """A run-time output size as a formula of the input's name (ceil mode: PyTorch's rounding up)."""
    delta = pb + pe - k_eff + 1
    if stride == 1:
        return size if delta == 0 else f"{size}{delta:+d}"
    if ceil_mode:
        return f"ceil(({size}{delta - 1:+d})/{stride})+1"
    return f"({size}{delta - 1:+d})//{stride}+1"


def _spatial_out(op: OpDef, sizes, kernel, stride, pads, dilation, ceil_mode=False):
    out = []
    for i, (size, k, s, (pb, pe), d) in enumerate(zip(sizes, kernel, stride, pads, dilation)):
        if not isinstance(size, int):
            out.append(_dynamic(size, shapes.effective_kernel(k, d), s, pb, pe, ceil_mode))
            continue
        if op.category == "pool":
            c = shapes.pool_output_length(size, k, s, pb, pe, d, ceil_mode)
        else:
            c = shapes.conv_output_length(size, k, s, pb, pe, d)
        k_eff = shapes.effective_kernel(k, d)
        if c.value < 1 or (ceil_mode and k_eff > size + pb + pe):
            # ceil mode would round a window past the whole input up to one output; every backend
            # but PyTorch then pads by the window's size (a bomb for a window of 2**62), so: the same rule
            axis = AXIS_NAMES[op.rank][i]
            window = f"the window ({k})" if d == 1 else f"the dilated window ({k_eff})"
            what = f"output {axis} is {c.value}" if c.value < 1 else f"{axis}: even with ceil_mode"
            raise InferError(f"{op.name} {what}: {window} is larger than the padded input ({size} + {pb + pe})",
                             formula=c.formula)
        out.append(c.value)
    return tuple(out)


# Dense ----------------------------------------------------------------------------


class Dense(OpDef):
    name = "dense"
    family = "dense"
    positional = ("units",)
    weight_layouts = {"keras": {"kernel": "transpose"}}
    attrs = {"units": Attr(Int(1), doc="output features"), **WEIGHTS}
    accepts_activation = True
    doc = "Fully connected layer on the last axis: `y = x W^T + b`."
    shape_rule = "[..., F] -> [..., units]"
    params_rule = "`kernel` [units, F]; `bias` [units] if use_bias"
    macs_rule = "output elements × F"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank == 0:
            raise InferError(f"dense expects at least one axis; received: {t}")
        static(t.shape[-1], "dense's input feature axis")
        return _float(t, t.shape[:-1] + (attrs["units"],)), attrs

    def params(self, attrs, inputs, out):
        return [_kernel("kernel", (attrs["units"], inputs[0].shape[-1]), attrs), *_bias((attrs["units"],), attrs)]

    def macs(self, attrs, inputs, out):
        return _count(out.shape) * inputs[0].shape[-1]


# Convolutions -----------------------------------------------------------------------


class _Conv(OpDef):
    family = "conv"
    spatial = windowed = True
    positional = ("filters", "kernel")
    weight_layouts = {"keras": {"kernel": "window_first"}}
    accepts_activation = True
    attrs = {
        "filters": Attr(Int(1), doc="output channels"),
        "kernel": Attr(IntTuple(), doc="window size"),
        "stride": Attr(IntTuple(), 1),
        "padding": Attr(Padding(), "valid", "valid, same (TensorFlow's rule), ints or (begin, end) pairs"),
        "dilation": Attr(IntTuple(), 1),
        "groups": Attr(Int(1), 1, "input and output channels split into groups"),
        **WEIGHTS,
    }
    doc = "Convolution (cross-correlation) over the spatial axes of a channels-first input."
    shape_rule = ("[C, *S] -> [filters, *O]; per spatial axis "
                  "O = (S + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1")
    params_rule = "`kernel` [filters, C / groups, *kernel]; `bias` [filters] if use_bias"
    macs_rule = "output elements × C / groups × prod(kernel)"

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        _check_groups(self, c, attrs)
        pads = _resolve_padding(self, attrs["padding"], sizes, attrs["kernel"], attrs["stride"], attrs["dilation"])
        spatial = _spatial_out(self, sizes, attrs["kernel"], attrs["stride"], pads, attrs["dilation"])
        return _float(inputs[0], (attrs["filters"], *spatial)), {**attrs, "padding": pads}

    def params(self, attrs, inputs, out):
        c = inputs[0].shape[0]
        shape = (attrs["filters"], c // attrs["groups"], *attrs["kernel"])
        return [_kernel("kernel", shape, attrs), *_bias((attrs["filters"],), attrs)]

    def macs(self, attrs, inputs, out):
        return _count(out.shape) * inputs[0].shape[0] // attrs["groups"] * prod(attrs["kernel"])


class _ConvTranspose(OpDef):
    family = "conv_transpose"
    spatial = True
    positional = ("filters", "kernel")
    weight_layouts = {"keras": {"kernel": "window_first"}}
    accepts_activation = True
    attrs = {
        "filters": Attr(Int(1), doc="output channels"),
        "kernel": Attr(IntTuple(), doc="window size"),
        "stride": Attr(IntTuple(), 1),
        "padding": Attr(Padding(), "valid", "valid, same (output = input * stride), or values cropped per side"),
        "output_padding": Attr(IntTuple(min=0), 0, "values added at the end of each axis"),
        "dilation": Attr(IntTuple(), 1),
        "groups": Attr(Int(1), 1),
        **WEIGHTS,
    }
    doc = "Transposed convolution: the gradient of a convolution with respect to its input."
    shape_rule = ("[C, *S] -> [filters, *O]; per spatial axis O = (S - 1) * stride + dilation * (kernel - 1) + 1 "
                  "- pad_begin - pad_end + output_padding; padding=same gives O = S * stride")
    params_rule = "`kernel` [C, filters / groups, *kernel]; `bias` [filters] if use_bias"
    macs_rule = "input elements × filters / groups × prod(kernel)"

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        _check_groups(self, c, attrs)
        op = attrs["output_padding"]
        for o, s, d in zip(op, attrs["stride"], attrs["dilation"]):
            if o >= max(s, d):
                raise InferError(f"{self.name}: output_padding ({o}) must be smaller than the stride ({s}) "
                                 f"or the dilation ({d})", code="E304", arg="output_padding")
        if attrs["padding"] == "same":
            if any(op):
                raise InferError(f"{self.name}: output_padding cannot be combined with padding=same "
                                 "(its output is input * stride)", code="E301", arg="output_padding")
            trip = [shapes.transpose_same_cropping(k, s, d)
                    for k, s, d in zip(attrs["kernel"], attrs["stride"], attrs["dilation"])]
            crops = tuple((b, e) for b, e, _ in trip)
            op = tuple(o for _, _, o in trip)
        else:
            crops = attrs["padding"]
        spatial = []
        for i, (size, k, s, (cb, ce), o, d) in enumerate(
                zip(sizes, attrs["kernel"], attrs["stride"], crops, op, attrs["dilation"])):
            if not isinstance(size, int):
                spatial.append(f"{size}*{s}" if attrs["padding"] == "same" else f"({size}-1)*{s}+"
                               f"{shapes.effective_kernel(k, d) - cb - ce + o}")
                continue
            r = shapes.conv_transpose_output_length(size, k, s, cb, ce, o, d)
            if r.value < 1:
                raise InferError(f"{self.name} output {AXIS_NAMES[self.rank][i]} is {r.value}", formula=r.formula)
            spatial.append(r.value)
        new = {**attrs, "padding": crops, "output_padding": op}
        return _float(inputs[0], (attrs["filters"], *spatial)), new

    def params(self, attrs, inputs, out):
        c = inputs[0].shape[0]
        shape = (c, attrs["filters"] // attrs["groups"], *attrs["kernel"])
        return [_kernel("kernel", shape, attrs), *_bias((attrs["filters"],), attrs)]

    def macs(self, attrs, inputs, out):
        return _count(inputs[0].shape) * attrs["filters"] // attrs["groups"] * prod(attrs["kernel"])


class DepthwiseConv2d(OpDef):
    name = "depthwise_conv2d"
    family = "depthwise_conv"
    spatial = windowed = True
    rank = 2
    weight_layouts = {"keras": {"kernel": "depthwise"}}
    positional = ("kernel",)
    accepts_activation = True
    attrs = {
        "kernel": Attr(IntTuple(), doc="window size"),
        "stride": Attr(IntTuple(), 1),
        "padding": Attr(Padding(), "valid"),
        "dilation": Attr(IntTuple(), 1),
        "depth_multiplier": Attr(Int(1), 1, "output channels per input channel"),
        **WEIGHTS,
    }
    doc = "One filter per input channel (groups = channels)."
    shape_rule = "[C, H, W] -> [C * depth_multiplier, H', W']; H', W' as for conv2d"
    params_rule = "`kernel` [C * depth_multiplier, 1, *kernel]; `bias` [C * depth_multiplier] if use_bias"
    macs_rule = "output elements × prod(kernel)"

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        pads = _resolve_padding(self, attrs["padding"], sizes, attrs["kernel"], attrs["stride"], attrs["dilation"])
        spatial = _spatial_out(self, sizes, attrs["kernel"], attrs["stride"], pads, attrs["dilation"])
        return _float(inputs[0], (c * attrs["depth_multiplier"], *spatial)), {**attrs, "padding": pads}

    def params(self, attrs, inputs, out):
        cm = inputs[0].shape[0] * attrs["depth_multiplier"]
        return [_kernel("kernel", (cm, 1, *attrs["kernel"]), attrs), *_bias((cm,), attrs)]

    def macs(self, attrs, inputs, out):
        return _count(out.shape) * prod(attrs["kernel"])


class SeparableConv2d(OpDef):
    name = "separable_conv2d"
    family = "separable_conv"
    spatial = windowed = True
    rank = 2
    weight_layouts = {"keras": {"depthwise_kernel": "depthwise", "pointwise_kernel": "window_first"}}
    positional = ("filters", "kernel")
    accepts_activation = True
    attrs = {
        "filters": Attr(Int(1), doc="output channels"),
        "kernel": Attr(IntTuple(), doc="depthwise window size"),
        "stride": Attr(IntTuple(), 1),
        "padding": Attr(Padding(), "valid"),
        "dilation": Attr(IntTuple(), 1),
        "depth_multiplier": Attr(Int(1), 1),
        **WEIGHTS,
    }
    doc = "Depthwise convolution (no bias) followed by a 1x1 pointwise convolution (with bias)."
    shape_rule = "[C, H, W] -> [filters, H', W']; H', W' as for conv2d"
    params_rule = ("`depthwise_kernel` [C * depth_multiplier, 1, *kernel]; "
                   "`pointwise_kernel` [filters, C * depth_multiplier, 1, 1]; `bias` [filters] if use_bias; "
                   "both kernels use kernel_init and kernel_regularizer")
    macs_rule = "H' × W' × C × depth_multiplier × (prod(kernel) + filters)"

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        pads = _resolve_padding(self, attrs["padding"], sizes, attrs["kernel"], attrs["stride"], attrs["dilation"])
        spatial = _spatial_out(self, sizes, attrs["kernel"], attrs["stride"], pads, attrs["dilation"])
        return _float(inputs[0], (attrs["filters"], *spatial)), {**attrs, "padding": pads}

    def params(self, attrs, inputs, out):
        cm = inputs[0].shape[0] * attrs["depth_multiplier"]
        return [_kernel("depthwise_kernel", (cm, 1, *attrs["kernel"]), attrs),
                _kernel("pointwise_kernel", (attrs["filters"], cm, 1, 1), attrs),
                *_bias((attrs["filters"],), attrs)]

    def macs(self, attrs, inputs, out):
        cm = inputs[0].shape[0] * attrs["depth_multiplier"]
        spatial = _count(out.shape[1:])
        return spatial * cm * prod(attrs["kernel"]) + spatial * cm * attrs["filters"]


# Pooling ------------------------------------------------------------------------------


class _Pool(OpDef):
    category = "pool"
    family = "pool"
    spatial = windowed = True
    positional = ("pool",)
    kind = "max"
    attrs = {
        "pool": Attr(IntTuple(), doc="window size"),
        "stride": Attr(IntTuple(), None, "default: the window size"),
        "padding": Attr(Padding(), "valid"),
        "ceil_mode": Attr(Bool(), False, "round the output size up (PyTorch's rule)"),
    }
    doc = "Max pooling; padded positions never win."
    shape_rule = ("[C, *S] -> [C, *O]; per spatial axis O = (S + pad_begin + pad_end - pool) // stride + 1; "
                  "ceil_mode rounds the division up but drops a last window that would start in the end padding")

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        stride = attrs["stride"] or attrs["pool"]
        if attrs["padding"] == "same" and attrs["ceil_mode"]:
            raise InferError(f"{self.name}: ceil_mode cannot be combined with padding=same", code="E301",
                             arg="ceil_mode")
        ones = (1,) * self.rank
        pads = _resolve_padding(self, attrs["padding"], sizes, attrs["pool"], stride, ones)
        if attrs["padding"] != "same":
            for (pb, pe), k in zip(pads, attrs["pool"]):
                if max(pb, pe) > k // 2:
                    raise InferError(f"{self.name}: padding ({max(pb, pe)}) must be at most half the window "
                                     f"({k} // 2 = {k // 2})", code="E304", arg="padding")
        spatial = _spatial_out(self, sizes, attrs["pool"], stride, pads, ones, attrs["ceil_mode"])
        return _float(inputs[0], (c, *spatial)), {**attrs, "stride": stride, "padding": pads}


class _AvgPool(_Pool):
    kind = "avg"
    attrs = {**_Pool.attrs,
             "count_include_pad": Attr(Bool(), False, "divide by the full window, padding included")}
    doc = "Average pooling; by default the average is over the window's real elements."


class _GlobalPool(OpDef):
    category = "pool"
    family = "global_pool"
    spatial = True
    doc = "Reduce every spatial axis: [C, ...] -> [C]."
    shape_rule = "[C, *S] -> [C]"

    def infer(self, attrs, inputs):
        c, _ = _spatial_input(self, inputs[0])
        return _float(inputs[0], (c,)), attrs


# Shape ops -------------------------------------------------------------------------------


class Flatten(OpDef):
    name = "flatten"
    category = "shape"
    family = "flatten"
    float_input = False  # integer ids may be rearranged before an embedding
    doc = "Flatten every per-sample axis in channels-first (row-major) order."
    shape_rule = "[d1, d2, ...] -> [d1 * d2 * ...]"

    def infer(self, attrs, inputs):
        (t,) = inputs
        for d in t.shape:
            static(d, "flatten's input")
        return TensorType(dtype=t.dtype, shape=(prod(t.shape),)), attrs


class Reshape(OpDef):
    name = "reshape"
    category = "shape"
    family = "reshape"
    float_input = False  # integer ids may be rearranged before an embedding
    positional = ("shape",)
    attrs = {"shape": Attr(Shape(), doc="per-sample target shape; one -1 is inferred")}
    doc = "Reshape per sample, row-major (channels-first) order."
    shape_rule = "[d1, d2, ...] -> shape; the element counts must match; one -1 takes the rest"

    def infer(self, attrs, inputs):
        (t,) = inputs
        for d in t.shape:
            static(d, "reshape's input")
        total = prod(t.shape)
        target = list(attrs["shape"])
        known = prod(d for d in target if d != -1)
        if -1 in target:
            if total % known:
                raise InferError(f"reshape cannot infer -1: {total} elements are not divisible by {known}",
                                 formula=f"{total} % {known} = {total % known}")
            target[target.index(-1)] = total // known
        elif known != total:
            raise InferError(f"reshape to {list(attrs['shape'])} needs {known} elements; the input {t} has {total}",
                             formula=f"{_product(t.shape)} != {_product(target)}")
        return TensorType(dtype=t.dtype, shape=tuple(target)), {**attrs, "shape": tuple(target)}


class Permute(OpDef):
    name = "permute"
    category = "shape"
    family = "permute"
    float_input = False  # integer ids may be rearranged before an embedding
    positional = ("dims",)
    attrs = {"dims": Attr(IntsOrInt(), doc="the new order of the per-sample axes")}
    doc = "Reorder per-sample axes: `permute(1, 0)` or `permute((1, 0))`."
    shape_rule = "[d0, d1, ...] -> [d[dims[0]], d[dims[1]], ...]"

    def bind_values(self, args, kwargs):
        if len(args) > 1:
            args = (tuple(args),)
        return super().bind_values(args, kwargs)

    def infer(self, attrs, inputs):
        (t,) = inputs
        dims = attrs["dims"] if isinstance(attrs["dims"], tuple) else (attrs["dims"],)
        norm = tuple(norm_axis(d, t.rank, "permute axis") for d in dims)
        if sorted(norm) != list(range(t.rank)):
            raise InferError(f"permute needs a permutation of 0..{t.rank - 1}; received: {dims}", code="E405")
        return TensorType(dtype=t.dtype, shape=tuple(t.shape[i] for i in norm)), {"dims": norm}


class Dropout(OpDef):
    name = "dropout"
    category = "regularization"
    family = "dropout"
    positional = ("rate",)
    attrs = {"rate": Attr(Float(0.0, 1.0, max_open=True), doc="fraction of inputs zeroed in training")}
    doc = "Inverted dropout; the identity at inference."
    shape_rule = "unchanged"


class _ZeroPad(OpDef):
    category = "shape"
    family = "zeropad"
    spatial = True
    positional = ("padding",)
    attrs = {"padding": Attr(Padding(), doc="an int, one per axis, or (begin, end) pairs")}
    doc = "Zero padding of the spatial axes."
    shape_rule = "[C, *S] -> [C, *(S + pad_begin + pad_end)]"

    def infer(self, attrs, inputs):
        if attrs["padding"] == "same":
            raise InferError(f"{self.name} takes explicit padding, not same", code="E301", arg="padding")
        c, sizes = _spatial_input(self, inputs[0])
        out = tuple(s + b + e if isinstance(s, int) else f"{s}+{b + e}" for s, (b, e) in zip(sizes, attrs["padding"]))
        return TensorType(dtype=inputs[0].dtype, shape=(c, *out)), attrs


class _Upsample(OpDef):
    category = "shape"
    family = "upsample"
    spatial = True
    positional = ("scale",)
    attrs = {"scale": Attr(IntTuple(), 2, "integer factor per spatial axis"),
             "mode": Attr(Enum("nearest", "linear"), "nearest",
                          "nearest, or linear (bilinear/trilinear; half-pixel centres)")}
    doc = "Upsampling by integer factors."
    shape_rule = "[C, *S] -> [C, *(S * scale)]"

    def bind_values(self, args, kwargs):
        kwargs = tuple((k, type(v)("linear") if k == "mode" and str(v) in ("bilinear", "trilinear") else v)
                       for k, v in kwargs)
        return super().bind_values(args, kwargs)

    def infer(self, attrs, inputs):
        c, sizes = _spatial_input(self, inputs[0])
        out = tuple(shapes.upsample_output_length(s, f).value if isinstance(s, int) else f"{s}*{f}"
                    for s, f in zip(sizes, attrs["scale"]))
        return _float(inputs[0], (c, *out)), attrs


# Normalisation ------------------------------------------------------------------------------


class BatchNorm(OpDef):
    name = "batchnorm"
    category = "normalization"
    family = "batchnorm"
    attrs = {
        "axis": Attr(Int(), 0, "the feature (channel) axis; 0 in channels-first layout"),
        "eps": Attr(Float(0.0, min_open=True), 1e-3, "added to the variance"),
        "momentum": Attr(Float(0.0, 1.0), 0.99, "moving = momentum * moving + (1 - momentum) * batch"),
        "center": Attr(Bool(), True, "learn beta"),
        "scale": Attr(Bool(), True, "learn gamma"),
        "gamma_init": Attr(Callable("initializer"), "ones"),
        "beta_init": Attr(Callable("initializer"), "zeros"),
    }
    doc = "Batch normalisation over every axis but `axis` (and the batch)."
    shape_rule = "unchanged"
    params_rule = ("`gamma` [N] if scale; `beta` [N] if center; `moving_mean` [N] and `moving_variance` [N], "
                   "non-trainable; N = the size of the feature axis (axis=)")

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank == 0:
            raise InferError(f"batchnorm expects at least one axis; received: {t}")
        axis = norm_axis(attrs["axis"], t.rank)
        static(t.shape[axis], "batchnorm's feature axis")
        return _float(t, t.shape), {**attrs, "axis": axis}

    def params(self, attrs, inputs, out):
        c = (inputs[0].shape[attrs["axis"]],)
        ps = []
        if attrs["scale"]:
            ps.append(Param(name="gamma", shape=c, init=attrs["gamma_init"]))
        if attrs["center"]:
            ps.append(Param(name="beta", shape=c, init=attrs["beta_init"]))
        ps.append(Param(name="moving_mean", shape=c, trainable=False, init={"name": "zeros"}))
        ps.append(Param(name="moving_variance", shape=c, trainable=False, init={"name": "ones"}))
        return ps


class LayerNorm(OpDef):
    name = "layernorm"
    category = "normalization"
    family = "layernorm"
    attrs = {
        "axis": Attr(IntsOrInt(), -1, "the axes normalised together"),
        "eps": Attr(Float(0.0, min_open=True), 1e-3),
        "center": Attr(Bool(), True),
        "scale": Attr(Bool(), True),
        "gamma_init": Attr(Callable("initializer"), "ones"),
        "beta_init": Attr(Callable("initializer"), "zeros"),
    }
    doc = "Layer normalisation over `axis` (trailing axes), per sample."
    shape_rule = "unchanged"
    params_rule = "`gamma` if scale; `beta` if center; each with the shape of the normalised axes"

    def infer(self, attrs, inputs):
        (t,) = inputs
        axes = attrs["axis"] if isinstance(attrs["axis"], tuple) else (attrs["axis"],)
        norm = tuple(sorted(norm_axis(a, t.rank) for a in axes))
        if list(norm) != list(range(t.rank - len(norm), t.rank)):
            raise InferError(f"layernorm normalises trailing axes; received axis={attrs['axis']} for {t}",
                             code="E405")
        for a in norm:
            static(t.shape[a], "layernorm's normalised axes")
        return _float(t, t.shape), {**attrs, "axis": norm}

    def params(self, attrs, inputs, out):
        shape = tuple(inputs[0].shape[a] for a in attrs["axis"])
        ps = []
        if attrs["scale"]:
            ps.append(Param(name="gamma", shape=shape, init=attrs["gamma_init"]))
        if attrs["center"]:
            ps.append(Param(name="beta", shape=shape, init=attrs["beta_init"]))
        return ps


# Embedding and recurrent layers --------------------------------------------------------------


class Embedding(OpDef):
    name = "embedding"
    family = "embedding"
    positional = ("vocab", "dim")
    float_input = False
    attrs = {
        "vocab": Attr(Int(1), doc="number of rows (token ids 0..vocab-1)"),
        "dim": Attr(Int(1), doc="vector size"),
        "embeddings_init": Attr(Callable("initializer"), "uniform", "default uniform(-0.05, 0.05)"),
        "embeddings_regularizer": Attr(Callable("regularizer"), None),
        # issue 13: padded sequences (docs/language.md, "Masking")
        "mask_zero": Attr(Bool(), False, "id 0 is padding: recurrent layers and 1-D global pools skip its steps"),
    }
    doc = ("Look up a vector per integer id. Used on float vectors `[..., dim]` (a shared `layer`, "
           "weight tying as in GPT-2's output), it projects them onto the vocabulary with the same "
           "table transposed: `x E^T`.")
    shape_rule = "int[...] -> [..., dim]; float [..., dim] -> [..., vocab]"
    params_rule = "`embeddings` [vocab, dim]"
    macs_rule = "0 for a lookup; output elements × dim for a projection"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if not t.is_integer:
            if t.rank and t.shape[-1] == attrs["dim"]:  # tying: x E^T
                return TensorType(shape=t.shape[:-1] + (attrs["vocab"],)), {**attrs, "reverse": True}
            raise InferError(f"embedding expects integer ids; received: {t}", code="E403",
                             notes=("declare the input with an integer dtype, e.g. `input ids: int64[T]`",
                                    f"on float vectors [..., {attrs['dim']}] it projects onto the vocabulary "
                                    "(weight tying)"))
        return TensorType(shape=t.shape + (attrs["dim"],)), attrs

    def macs(self, attrs, inputs, out):
        return _count(out.shape) * attrs["dim"] if attrs.get("reverse") else 0

    def params(self, attrs, inputs, out):
        return [Param(name="embeddings", shape=(attrs["vocab"], attrs["dim"]),
                                      init=attrs["embeddings_init"], regularizer=attrs["embeddings_regularizer"])]


class _Recurrent(OpDef):
    family = "recurrent"
    positional = ("units",)
    gates = 1
    weight_layouts = {"keras": {"kernel": "transpose", "recurrent_kernel": "transpose"}}
    attrs = {
        "units": Attr(Int(1), doc="state size"),
        "return_sequences": Attr(Bool(), False, "return every step ([T, units]) or the last ([units])"),
        # seq2seq state passing (issue 13; the checker handles both, docs/language.md "Several results")
        "return_state": Attr(Bool(), False, "also return the final state: `out, h, c = x -> lstm(..., "
                             "return_state=true)` (`out, h = ...` for gru and simple_rnn)"),
        "initial_state": Attr(Bool(), False, "start from given states: `initial_state=[h, c]` (lstm) or "
                              "`initial_state=h`, values of shape [units]; in the IR, true and the states are "
                              "the node's inputs after the sequence"),
        "kernel_init": Attr(Callable("initializer"), "glorot_uniform"),
        "recurrent_init": Attr(Callable("initializer"), "orthogonal"),
        "bias_init": Attr(Callable("initializer"), "zeros"),
        "use_bias": Attr(Bool(), True),
        "kernel_regularizer": Attr(Callable("regularizer"), None),
        "recurrent_regularizer": Attr(Callable("regularizer"), None),
        "bias_regularizer": Attr(Callable("regularizer"), None),
    }
    shape_rule = "[T, F] -> [T, units] with return_sequences, else [units]"
    params_rule = ("`kernel` [G * units, F]; `recurrent_kernel` [G * units, units]; `bias` [G * units] if use_bias; "
                   "G = the number of gates")
    macs_rule = "T × G × units × (F + units), G = the number of gates"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank != 2:
            raise InferError(f"{self.name} expects a sequence [T, F]; received: {t}")
        static(t.shape[1], f"{self.name}'s feature axis")
        u = attrs["units"]
        return _float(t, (t.shape[0], u) if attrs["return_sequences"] else (u,)), attrs

    def params(self, attrs, inputs, out):
        f, u, g = inputs[0].shape[1], attrs["units"], self.gates
        ps = [Param(name="kernel", shape=(g * u, f), init=attrs["kernel_init"],
                    regularizer=attrs["kernel_regularizer"]),
              Param(name="recurrent_kernel", shape=(g * u, u), init=attrs["recurrent_init"],
                    regularizer=attrs["recurrent_regularizer"])]
        if attrs["use_bias"]:
            ps.append(Param(name="bias", shape=(g * u,), init=self._bias_init(attrs),
                            regularizer=attrs["bias_regularizer"]))
        return ps

    def _bias_init(self, attrs):
        return attrs["bias_init"]

    def macs(self, attrs, inputs, out):
        t, f = inputs[0].shape
        steps = t if isinstance(t, int) else 1
        return steps * self.gates * attrs["units"] * (f + attrs["units"])


class SimpleRNN(_Recurrent):
    name = "simple_rnn"
    gates = 1
    doc = "Elman RNN: `h = tanh(x W^T + h U^T + b)`."
    params_rule = "`kernel` [units, F]; `recurrent_kernel` [units, units]; `bias` [units] if use_bias"
    macs_rule = "T × units × (F + units)"


class LSTM(_Recurrent):
    name = "lstm"
    gates = 4
    gate_orders = {"onnx": (0, 3, 1, 2)}  # i, f, g, o -> i, o, f, c
    attrs = {**_Recurrent.attrs,
             "unit_forget_bias": Attr(Bool(), True, "initialise the forget gate's bias to 1")}
    doc = "LSTM; gates in the order input, forget, cell, output; one bias per gate."
    params_rule = ("`kernel` [4 * units, F]; `recurrent_kernel` [4 * units, units]; `bias` [4 * units] if use_bias; "
                   "rows in gate order i, f, g (cell), o")
    macs_rule = "T × 4 × units × (F + units)"

    def _bias_init(self, attrs):
        init = dict(attrs["bias_init"])
        if attrs["unit_forget_bias"]:
            init["unit_forget_bias"] = True
        return init


class GRU(_Recurrent):
    name = "gru"
    gates = 3
    gate_orders = {"keras": (1, 0, 2), "onnx": (1, 0, 2)}  # r, z, n -> z, r, n
    doc = ("GRU with the reset gate applied after the recurrent matmul (Keras's reset_after=True, "
           "PyTorch's form); gates in the order reset, update, new; input and recurrent biases.")
    params_rule = ("`kernel` [3 * units, F]; `recurrent_kernel` [3 * units, units]; `bias` [3 * units] and "
                   "`recurrent_bias` [3 * units] if use_bias; rows in gate order r (reset), z (update), n (new)")
    macs_rule = "T × 3 × units × (F + units)"

    def params(self, attrs, inputs, out):
        ps = super().params(attrs, inputs, out)
        if attrs["use_bias"]:
            ps.append(Param(name="recurrent_bias", shape=(3 * attrs["units"],), init=attrs["bias_init"],
                            regularizer=attrs["bias_regularizer"]))
        return ps


class Bidirectional(OpDef):
    name = "bidirectional"
    family = "bidirectional"
    positional = ("layer",)
    attrs = {"layer": Attr(Layer("simple_rnn", "lstm", "gru"), doc="the recurrent layer run both ways"),
             "merge_mode": Attr(Enum("concat", "sum", "mul", "ave"), "concat")}
    doc = "Run a recurrent layer forwards and backwards; merge the two outputs."
    shape_rule = "the inner layer's output, last axis doubled with merge_mode=concat (unchanged otherwise)"
    params_rule = "`forward.<w>` and `backward.<w>` for every weight `<w>` of the inner layer"
    macs_rule = "2 × the inner layer's"

    def _inner(self, attrs):
        return lookup_op(attrs["layer"]["op"]), attrs["layer"]["attrs"]

    def infer(self, attrs, inputs):
        op, inner = self._inner(attrs)
        t, _ = op.infer(inner, inputs)
        if attrs["merge_mode"] == "concat":
            t = _float(t, t.shape[:-1] + (2 * t.shape[-1],))
        return t, attrs

    def params(self, attrs, inputs, out):
        op, inner = self._inner(attrs)
        one = op.params(inner, inputs, out)
        return [p.model_copy(update={"name": f"{d}.{p.name}"}) for d in ("forward", "backward") for p in one]

    def macs(self, attrs, inputs, out):
        op, inner = self._inner(attrs)
        return 2 * op.macs(inner, inputs, out)


def _family(base, prefix, ranks=(1, 2, 3), **extra):
    out = []
    for r in ranks:
        cls = type(f"{base.__name__.strip('_')}{r}d", (base,), {"name": f"{prefix}{r}d", "rank": r, **extra})
        out.append(cls)
    return out


LAYER_OPS = [
    Dense,
    *_family(_Conv, "conv"),
    *_family(_ConvTranspose, "conv_transpose"),
    DepthwiseConv2d,
    SeparableConv2d,
    *_family(_Pool, "maxpool"),
    *_family(_AvgPool, "avgpool"),
    *_family(_GlobalPool, "global_avgpool", kind="avg"),
    *_family(_GlobalPool, "global_maxpool", kind="max"),
    Flatten,
    Reshape,
    Permute,
    Dropout,
    *_family(_ZeroPad, "zeropad"),
    *_family(_Upsample, "upsample"),
    BatchNorm,
    LayerNorm,
    Embedding,
    SimpleRNN,
    LSTM,
    GRU,
    Bidirectional,
]
