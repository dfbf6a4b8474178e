"""Activations, merges, and the training families: losses, optimisers, initialisers, regularisers."""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import ClassVar

from ..ir_plain import TensorType
from .base import Attr, AttrError, Bool, Enum, Float, InferError, Int, IntsOrInt, OpDef, norm_axis

# Activations ---------------------------------------------------------------------------


class _Activation(OpDef):
    category = "activation"
    family = "activation"
    formula = ""
    shape_rule = "unchanged"

    def infer(self, attrs, inputs):
        t = inputs[0]
        return TensorType(shape=t.shape), attrs


def _act(name, formula, attrs=None, positional=(), infer=None):
    ns = {"name": name, "formula": formula, "doc": formula, "attrs": attrs or {}, "positional": positional}
    if infer:
        ns["infer"] = infer
    return type(name.title().replace("_", ""), (_Activation,), ns)


def _softmax_infer(self, attrs, inputs):
    t = inputs[0]
    axis = norm_axis(attrs["axis"], t.rank, "softmax axis")
    return TensorType(shape=t.shape), {**attrs, "axis": axis}


ACTIVATIONS = [
    _act("linear", "x"),
    _act("relu", "max(x, 0)"),
    _act("relu6", "min(max(x, 0), 6)"),
    _act("sigmoid", "1 / (1 + exp(-x))"),
    _act("tanh", "tanh(x)"),
    _act("softmax", "exp(x) / sum(exp(x), axis)", {"axis": Attr(Int(), -1, "the axis that sums to 1")},
         ("axis",), _softmax_infer),
    _act("leaky_relu", "x if x > 0 else alpha * x", {"alpha": Attr(Float(0.0), 0.01, "slope for x < 0")}, ("alpha",)),
    _act("elu", "x if x > 0 else alpha * (exp(x) - 1)", {"alpha": Attr(Float(0.0), 1.0)}, ("alpha",)),
    _act("gelu", "x * Phi(x) (exact, with erf); approximate=true uses the tanh form",
         {"approximate": Attr(Bool(), False)}),
    _act("swish", "x * sigmoid(x)"),
    _act("softplus", "log(1 + exp(x))"),
    _act("hard_sigmoid", "max(0, min(1, x / 6 + 1 / 2))"),
]


# Merges -------------------------------------------------------------------------------------


def broadcast(shapes: list[tuple]) -> tuple | None:
    """NumPy broadcasting of per-sample shapes; None when incompatible."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class _Elementwise(OpDef):
    category = "merge"  # float inputs only
    family = "elementwise"
    min_inputs = 2
    max_inputs = None
    shape_rule = "equal or broadcastable shapes -> the broadcast shape"

    def infer(self, attrs, inputs):
        shape = broadcast([t.shape for t in inputs])
        if shape is None:
            got = ", ".join(str(t) for t in inputs)
            raise InferError(f"{self.name} needs equal or broadcastable shapes; received: {got}", code="E402")
        return TensorType(shape=shape), attrs


def _merge(name, doc, max_inputs=None):
    return type(name.title(), (_Elementwise,), {"name": name, "doc": doc, "max_inputs": max_inputs,
                                                 "min_inputs": 2})


class Concat(OpDef):
    name = "concat"
    category = "merge"
    family = "concat"
    float_input = False  # any one dtype; the output keeps it
    min_inputs = 2
    max_inputs = None
    attrs = {"axis": Attr(Int(), None, "per-sample axis; omitted: the one axis where the sizes differ, else "
                                       "0 (the channels of `[C, H, W]`, the features of `[F]`); rank 2 "
                                       "(`[C, L]` or `[T, F]`) with equal shapes needs it")}
    doc = ("Concatenate along `axis`; every other axis must be equal. Without `axis`: the axis where the "
           "inputs' sizes differ; with equal shapes, 0 for vectors and channels-first maps, and `[T, F]` "
           "sequences or `[C, L]` signals must say which (E302)")
    shape_rule = "sizes along axis add up"

    def infer(self, attrs, inputs):
        ranks = {t.rank for t in inputs}
        if len(ranks) != 1:
            raise InferError("concat needs inputs of one rank; received: " + ", ".join(map(str, inputs)),
                             code="E402")
        rank = ranks.pop()
        axis = attrs["axis"]
        if axis is None:
            axis = _concat_axis(inputs, rank)
        axis = norm_axis(axis, rank, "concat axis")
        for i in range(rank):
            if i != axis and len({t.shape[i] for t in inputs}) > 1:
                got = ", ".join(str(t) for t in inputs)
                raise InferError(f"concat along axis {axis} needs equal sizes on axis {i}; received: {got}",
                                 code="E402")
        sizes = [t.shape[axis] for t in inputs]
        if all(isinstance(s, int) for s in sizes):
            total = sum(sizes)
        else:
            total = "+".join(str(s) for s in sizes)
        shape = list(inputs[0].shape)
        shape[axis] = total
        return TensorType(dtype=inputs[0].dtype, shape=tuple(shape)), {**attrs, "axis": axis}


def _concat_axis(inputs, rank: int) -> int:
    """concat's axis when the spec omits it: where the sizes differ, else 0 where that is unambiguous."""
    differ = [i for i in range(rank) if len({t.shape[i] for t in inputs}) > 1]
    if len(differ) == 1:
        return differ[0]
    if differ:  # several axes differ: no axis fits; say so along the first
        return differ[0]
    if rank == 2:
        got = ", ".join(str(t) for t in inputs)
        raise InferError(f"concat of rank-2 values of equal shape needs axis=: axis=-1 joins the features of "
                         f"[T, F] sequences, axis=0 the channels of [C, L] signals; received: {got}", code="E302",
                         arg="axis")
    return 0


class Dot(OpDef):
    name = "dot"
    category = "merge"
    family = "dot"
    min_inputs = 2
    max_inputs = 2
    attrs = {"axes": Attr(IntsOrInt(), -1, "the contracted axis of each input (one int for both)"),
             "normalize": Attr(Bool(), False, "L2-normalise both inputs along the axes first (cosine)")}
    doc = "Dot product per sample along one axis of each input."
    shape_rule = "a without axes[0] + b without axes[1]; [1] when nothing is left"
    macs_rule = "output elements × the contracted size"

    def infer(self, attrs, inputs):
        a, b = inputs
        axes = attrs["axes"] if isinstance(attrs["axes"], tuple) else (attrs["axes"],) * 2
        if len(axes) != 2:
            raise InferError(f"dot axes needs one int or a pair; received: {attrs['axes']}", code="E301",
                             arg="axes")
        ia, ib = norm_axis(axes[0], a.rank, "dot axis"), norm_axis(axes[1], b.rank, "dot axis")
        if a.shape[ia] != b.shape[ib]:
            raise InferError(f"dot contracts axis {ia} of {a} with axis {ib} of {b}: sizes "
                             f"{a.shape[ia]} and {b.shape[ib]} differ", code="E402")
        shape = a.shape[:ia] + a.shape[ia + 1:] + b.shape[:ib] + b.shape[ib + 1:]
        return TensorType(shape=shape or (1,)), {**attrs, "axes": (ia, ib)}

    def macs(self, attrs, inputs, out):
        a = inputs[0]
        k = a.shape[attrs["axes"][0]]
        return prod(d if isinstance(d, int) else 1 for d in out.shape) * (k if isinstance(k, int) else 1)


MERGES = [
    _merge("add", "a + b + ..."),
    _merge("subtract", "a - b", 2),
    _merge("multiply", "a * b * ..."),
    _merge("average", "(a + b + ...) / n"),
    _merge("maximum", "elementwise max"),
    _merge("minimum", "elementwise min"),
    Concat,
    Dot,
]


# Training families ------------------------------------------------------------------------


class _Member(OpDef):
    """A member of a family used as an argument value (initialiser, regulariser) or statement."""

    #: initialisers scaled by the fans: ``variance(fan_in, fan_out)`` (None for the others)
    variance: ClassVar[Callable[[int, int], float] | None] = None
    #: ``uniform`` or ``truncated_normal`` (a normal cut at 2 standard deviations) for the scaled ones
    distribution: ClassVar[str] = ""


def _member(category, name, doc, attrs=None, positional=(), **meta):
    return type(f"{category}_{name}", (_Member,), {"name": name, "category": category, "doc": doc,
                                                    "attrs": attrs or {}, "positional": positional, **meta})


def _scaled(name, doc, variance):
    """A fan-scaled initialiser: ``glorot_uniform`` is variance 2 / (fan_in + fan_out), drawn uniform."""
    dist = "uniform" if name.endswith("uniform") else "truncated_normal"
    return _member("initializer", name, doc, variance=staticmethod(variance), distribution=dist)


_GLOROT = lambda fan_in, fan_out: 2 / (fan_in + fan_out)  # noqa: E731
_HE = lambda fan_in, fan_out: 2 / fan_in  # noqa: E731
_LECUN = lambda fan_in, fan_out: 1 / fan_in  # noqa: E731


_gain = {"gain": Attr(Float(0.0), 1.0)}
INITIALIZERS = [
    _member("initializer", "zeros", "0"),
    _member("initializer", "ones", "1"),
    _member("initializer", "constant", "value", {"value": Attr(Float(), 0.0)}, ("value",)),
    _member("initializer", "normal", "N(mean, std^2)",
            {"std": Attr(Float(0.0), 0.05), "mean": Attr(Float(), 0.0)}, ("std", "mean")),
    _member("initializer", "uniform", "U(a, b)", {"a": Attr(Float(), -0.05), "b": Attr(Float(), 0.05)}, ("a", "b")),
    _scaled("glorot_uniform", "U(-l, l), l = sqrt(6 / (fan_in + fan_out))", _GLOROT),
    _scaled("glorot_normal", "N(0, 2 / (fan_in + fan_out))", _GLOROT),
    _scaled("he_uniform", "U(-l, l), l = sqrt(6 / fan_in)", _HE),
    _scaled("he_normal", "N(0, 2 / fan_in)", _HE),
    _scaled("lecun_uniform", "U(-l, l), l = sqrt(3 / fan_in)", _LECUN),
    _scaled("lecun_normal", "N(0, 1 / fan_in)", _LECUN),
    _member("initializer", "orthogonal", "a (semi-)orthogonal matrix times gain", _gain, ("gain",)),
]

REGULARIZERS = [
    _member("regularizer", "l1", "l1 * sum(|w|)", {"l1": Attr(Float(0.0), 0.01)}, ("l1",)),
    _member("regularizer", "l2", "l2 * sum(w^2)", {"l2": Attr(Float(0.0), 0.01)}, ("l2",)),
    _member("regularizer", "l1_l2", "l1 * sum(|w|) + l2 * sum(w^2)",
            {"l1": Attr(Float(0.0), 0.0), "l2": Attr(Float(0.0), 0.0)}, ("l1", "l2")),
]


class _Loss(OpDef):
    category = "loss"
    kind = "pair"  # pair: (prediction, target) ; normal: (mu, logvar)
    #: what a target of this loss is, for drawing test batches: ``ids`` (class ids along ``axis``),
    #: ``distribution`` (positive, summing to 1 along the class axis), ``probability`` (in [0, 1]),
    #: ``sign`` (-1 or 1) or ``real``
    target: ClassVar[str] = "real"


def _loss(name, doc, attrs=None, kind="pair", target="real"):
    return type(f"loss_{name}", (_Loss,), {"name": name, "doc": doc, "attrs": attrs or {}, "kind": kind,
                                           "target": target})


_logits = {"from_logits": Attr(Bool(), False, "the prediction is raw scores, not probabilities")}
_axis = {"axis": Attr(Int(), -1, "the class axis")}
LOSSES = [
    _loss("mse", "mean((p - t)^2)"),
    _loss("mae", "mean(|p - t|)"),
    _loss("huber", "mean(0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta)), e = p - t",
          {"delta": Attr(Float(0.0, min_open=True), 1.0)}),
    _loss("binary_crossentropy", "mean(-(t log p + (1 - t) log(1 - p))), p clipped to [1e-7, 1 - 1e-7]",
          dict(_logits), target="probability"),
    _loss("categorical_crossentropy", "mean(-sum(t log q, axis)), q = p / sum(p, axis) clipped to [1e-7, 1 - 1e-7]",
          {**_logits, **_axis}, target="distribution"),
    _loss("sparse_categorical_crossentropy", "mean(-log q[t]) over every position, q as in categorical_crossentropy",
          {**_logits, **_axis}, target="ids"),
    _loss("hinge", "mean(max(1 - t p, 0)), t in {-1, 1}", target="sign"),
    _loss("kl_divergence", "mean(sum(t log(t / p), -1)), t and p clipped to [1e-7, 1]", target="distribution"),
    _loss("cosine_similarity", "mean(-sum(p' t', -1)), x' = x / max(|x|, 1e-7) along the last axis"),
    _loss("kl_normal", "mean over the batch of -0.5 sum(1 + logvar - mu^2 - exp(logvar))", kind="normal"),
]


class OptimizerDef(OpDef):
    """An optimiser: its own hyperparameters, then the training controls every optimiser shares."""

    category = "optimizer"

    def bind_values(self, args, kwargs):
        out = super().bind_values(args, kwargs)
        clips = [k for k in CLIPS if out[k]]
        if len(clips) > 1:
            raise AttrError(f"{self.name} takes one of clipnorm, clipvalue and global_clipnorm; "
                            f"received {' and '.join(clips)}", arg=clips[1])
        if out["schedule"] == "constant":
            moved = [k for k in ("decay_steps", "decay_rate", "alpha") if out[k] != CONTROLS[k].default]
            if moved:
                raise AttrError(f"{self.name} argument '{moved[0]}' needs a schedule (step, exponential or "
                                "cosine); the learning rate is constant", arg=moved[0])
        return out


#: Gradient clipping: at most one of them, 0 is off (docs/language.md, "Training controls").
CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")
#: The training controls every optimiser takes (docs/language.md, "Training controls").
CONTROLS = {
    "clipnorm": Attr(Float(0.0), 0.0, "rescale each weight's gradient to an L2 norm of at most this (0: off)"),
    "clipvalue": Attr(Float(0.0), 0.0, "clip each gradient element to [-clipvalue, clipvalue] (0: off)"),
    "global_clipnorm": Attr(Float(0.0), 0.0,
                            "rescale all gradients together to a global L2 norm of at most this (0: off)"),
    "schedule": Attr(Enum("constant", "step", "exponential", "cosine"), "constant",
                     "learning-rate schedule after the warm-up"),
    "decay_steps": Attr(Int(1), 1000, "steps per decay period (step, exponential) or to the end of the cosine"),
    "decay_rate": Attr(Float(0.0, 1.0, min_open=True), 0.5,
                       "factor per decay period (step: per completed period; exponential: continuous)"),
    "alpha": Attr(Float(0.0, 1.0), 0.0, "cosine: the final learning rate as a fraction of lr"),
    "warmup": Attr(Int(0), 0, "steps of linear warm-up from lr/warmup to lr before the schedule"),
}


def _opt(name, doc, attrs):
    return type(f"optimizer_{name}", (OptimizerDef,), {"name": name, "doc": doc, "attrs": {**attrs, **CONTROLS}})


_lr = lambda v: {"lr": Attr(Float(0.0, min_open=True), v, "learning rate")}  # noqa: E731
_eps = lambda v: {"eps": Attr(Float(0.0), v, "numerical stability term")}  # noqa: E731
_wd = {"weight_decay": Attr(Float(0.0), 0.0, "decoupled weight decay: w -= lr * weight_decay * w before each update")}
OPTIMIZERS = [
    _opt("sgd", "SGD with optional (Nesterov) momentum",
         {**_lr(0.01), "momentum": Attr(Float(0.0, 1.0, max_open=True), 0.0),
          "nesterov": Attr(Bool(), False), **_wd}),
    _opt("rmsprop", "RMSprop", {**_lr(0.001), "rho": Attr(Float(0.0, 1.0, max_open=True), 0.9),
                                "momentum": Attr(Float(0.0, 1.0, max_open=True), 0.0),
                                "centered": Attr(Bool(), False), **_eps(1e-7), **_wd}),
    _opt("adagrad", "Adagrad", {**_lr(0.001), "initial_accumulator": Attr(Float(0.0), 0.1), **_eps(1e-7), **_wd}),
    _opt("adadelta", "Adadelta", {**_lr(1.0), "rho": Attr(Float(0.0, 1.0, max_open=True), 0.95),
                                  **_eps(1e-7), **_wd}),
    _opt("adam", "Adam", {**_lr(0.001), "beta1": Attr(Float(0.0, 1.0, max_open=True), 0.9),
                          "beta2": Attr(Float(0.0, 1.0, max_open=True), 0.999), **_eps(1e-7),
                          "amsgrad": Attr(Bool(), False), **_wd}),
    _opt("nadam", "Adam with Nesterov momentum (Keras's Nadam)",
         {**_lr(0.001), "beta1": Attr(Float(0.0, 1.0, max_open=True), 0.9),
          "beta2": Attr(Float(0.0, 1.0, max_open=True), 0.999), **_eps(1e-7), **_wd}),
    _opt("adamw", "Adam with decoupled weight decay",
         {**_lr(0.001), "beta1": Attr(Float(0.0, 1.0, max_open=True), 0.9),
          "beta2": Attr(Float(0.0, 1.0, max_open=True), 0.999), **_eps(1e-7),
          "amsgrad": Attr(Bool(), False),
          "weight_decay": Attr(Float(0.0), 0.004,
                               "decoupled weight decay: w -= lr * weight_decay * w before each update")}),
]

