"""Ops the lecture's models need beyond the core layers (issue 13).

- elementwise math on values (``exp``, ``log``, ``sqrt``, ``square``, ``abs``, ``negative``) and scalar
  arithmetic (``scale``, ``shift``), so that the VAE's ``z = mu + exp(0.5 * logvar) * eps`` is written
  as taught;
- random ops that are the identity at inference and draw from the framework's random stream in
  training: ``gaussian_noise`` (denoising autoencoders) and the merge ``sample_normal(mu, logvar)``
  (the reparameterisation trick);
- sequence plumbing of the Keras seq2seq decks: ``repeat_vector(n)``, the merge ``repeat_like(v, seq)``
  (the same for a run-time length T) and ``time_distributed(layer)``.

The losses of the lecture (``contrastive``, ``triplet``) are in :mod:`netspec.ops.functions`' style at
the end of this module (``LECTURE_LOSSES``).
"""

from __future__ import annotations

from typing import ClassVar

from ..ir_plain import TensorType
from .base import Attr, Float, InferError, Int, Layer, OpDef, static
from .functions import _Loss

# Elementwise math ----------------------------------------------------------------------------


class _Math(OpDef):
    category = "math"
    family = "math"
    shape_rule = "unchanged"
    #: the formula, for docs and generators
    formula: ClassVar[str] = ""

    def infer(self, attrs, inputs):
        return TensorType(shape=inputs[0].shape), attrs


def _math(name, formula, attrs=None, positional=()):
    return type(f"Math{name.title()}", (_Math,), {"name": name, "formula": formula, "doc": f"Elementwise `{formula}`.",
                                                  "attrs": attrs or {}, "positional": positional})


MATH_OPS = [
    _math("exp", "exp(x)"),
    _math("log", "log(x)"),
    _math("sqrt", "sqrt(x)"),
    _math("square", "x * x"),
    _math("abs", "|x|"),
    _math("negative", "-x"),
    _math("scale", "by * x", {"by": Attr(Float(), doc="the constant factor")}, ("by",)),
    _math("shift", "x + by", {"by": Attr(Float(), doc="the constant added")}, ("by",)),
]


# Random ops: the identity at inference ----------------------------------------------------------


class GaussianNoise(OpDef):
    name = "gaussian_noise"
    category = "regularization"
    family = "noise"
    positional = ("stddev",)
    attrs = {"stddev": Attr(Float(0.0), doc="standard deviation of the added noise (training only)")}
    doc = ("Adds `stddev * N(0, 1)` noise in training (a denoising autoencoder's corruption); the identity at "
           "inference. The noise comes from the framework's random stream (see Random ops).")
    shape_rule = "unchanged"


class SampleNormal(OpDef):
    name = "sample_normal"
    category = "merge"
    family = "sampling"
    min_inputs = 2
    max_inputs = 2
    attrs = {"scale": Attr(Float(0.0), 1.0, "eps ~ N(0, scale^2); 0 makes training use the mean too")}
    doc = ("The reparameterisation trick: `mu + exp(0.5 * logvar) * eps`, eps ~ N(0, 1), in training; "
           "`mu` (the mean) at inference.")
    shape_rule = "(mu, logvar) of one shape -> that shape"

    def infer(self, attrs, inputs):
        mu, logvar = inputs
        if mu.shape != logvar.shape:
            raise InferError(f"sample_normal needs mu and logvar of one shape; received: {mu}, {logvar}", code="E402")
        return TensorType(shape=mu.shape), attrs


# Sequences -----------------------------------------------------------------------------------------


class RepeatVector(OpDef):
    name = "repeat_vector"
    category = "shape"
    family = "repeat"
    positional = ("n",)
    attrs = {"n": Attr(Int(1), doc="how many times (the output's time axis)")}
    doc = "Repeat a vector `n` times: the decoder input of a seq2seq model (Keras's RepeatVector)."
    shape_rule = "[F] -> [n, F]"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank != 1:
            raise InferError(f"repeat_vector expects a vector [F]; received: {t}",
                             notes=("flatten it first, or pool a sequence to its last state",))
        return TensorType(shape=(attrs["n"], t.shape[0])), attrs


class RepeatLike(OpDef):
    name = "repeat_like"
    category = "merge"
    family = "repeat_like"
    float_input = False
    min_inputs = 2
    max_inputs = 2
    doc = ("Repeat a vector once per step of a sequence: `repeat_like(code, seq)` is `repeat_vector(T)` for the "
           "sequence's length T, which may be a run-time dimension.")
    shape_rule = "([F], [T, ...]) -> [T, F]"

    def infer(self, attrs, inputs):
        v, seq = inputs
        if v.rank != 1 or v.is_integer:
            raise InferError(f"repeat_like repeats a float vector [F]; received: {v}")
        if seq.rank < 1:
            raise InferError(f"repeat_like takes its length from a sequence [T, ...]; received: {seq}")
        static(v.shape[0], "repeat_like's vector")
        return TensorType(shape=(seq.shape[0], v.shape[0])), attrs


class TimeDistributed(OpDef):
    name = "time_distributed"
    category = "layer"
    family = "time_distributed"
    positional = ("layer",)
    attrs = {"layer": Attr(Layer("dense", "dropout"), doc="the layer applied to every step")}
    doc = ("Apply a layer to every step of a sequence (Keras's TimeDistributed). The checker writes it as the "
           "inner layer on `[T, F]`, which is the same function (dense acts on the last axis), so the IR, the "
           "weights and every backend see the inner layer.")
    shape_rule = "[T, F] -> [T, the inner layer's output]"
    params_rule = "the inner layer's: `kernel` [units, F] and `bias` [units] for dense, none for dropout"

    def inner(self, attrs) -> tuple[str, dict]:
        return attrs["layer"]["op"], attrs["layer"]["attrs"]

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank != 2:
            raise InferError(f"time_distributed expects a sequence [T, F]; received: {t}")
        return t, attrs


# Masking -----------------------------------------------------------------------------------------------


class Masking(OpDef):
    name = "masking"
    category = "shape"
    family = "masking"
    positional = ("value",)
    attrs = {"value": Attr(Float(), 0.0, "a step whose every feature equals it is padding")}
    doc = ("Mark padded steps of a sequence [T, F]: a step whose features all equal `value` is masked (Keras's "
           "Masking: such steps become 0). Recurrent layers and 1-D global pools downstream skip masked steps.")
    shape_rule = "unchanged ([T, F])"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank != 2:
            raise InferError(f"masking expects a sequence [T, F]; received: {t}")
        return TensorType(shape=t.shape), attrs


#: families through which a mask follows a value (the time axis stays where it is), docs/language.md "Masking"
MASK_KEEPING = frozenset({"dropout", "activation", "math", "noise", "masking"})
#: families that read a mask: recurrent layers over axis 0, 1-D global pools over axis 1 ([C, L])
MASK_READING = frozenset({"recurrent", "global_pool"})


# Several results ------------------------------------------------------------------------------------


class Result(OpDef):
    name = "result"
    category = "shape"
    family = "result"
    float_input = False
    attrs = {"index": Attr(Int(0), 0, "which result: 0 the output, 1 the final h, 2 the final c (lstm)")}
    doc = ("One result of a layer with several (a recurrent layer with `return_state=true`). The checker writes it "
           "for each name of `out, h, c = CHAIN`; a spec never calls it (E301).")
    shape_rule = "the output's shape (index 0) or [units] (a state)"


# Losses -----------------------------------------------------------------------------------------


def _loss(name, doc, attrs=None, kind="pair", target="real"):
    return type(f"loss_{name}", (_Loss,), {"name": name, "doc": doc, "attrs": attrs or {}, "kind": kind,
                                           "target": target})


LECTURE_LOSSES = [
    _loss("contrastive", "mean(t d^2 + (1 - t) max(margin - d, 0)^2): d a distance (prediction), t = 1 for a "
          "matching pair, 0 otherwise (Hadsell et al. 2006, with Y = 1 - t and without the 1/2 factors)",
          {"margin": Attr(Float(0.0, min_open=True), 1.0, "distance beyond which a non-matching pair costs nothing")},
          target="probability"),
    _loss("triplet", "mean(max(|a - p|^2 - |a - n|^2 + margin, 0)) over (anchor, positive, negative) embeddings, "
          "squared distances summed over every per-sample axis (FaceNet, Schroff et al. 2015)",
          {"margin": Attr(Float(0.0), 0.2, "the margin alpha")}, kind="triplet"),
]

LECTURE_OPS = [*MATH_OPS, GaussianNoise, SampleNormal, RepeatVector, RepeatLike, TimeDistributed, Result, Masking]

#: recurrent op -> the names of its results with ``return_state=true``
STATE_RESULTS = {"lstm": ("output", "h", "c"), "gru": ("output", "h"), "simple_rnn": ("output", "h")}
