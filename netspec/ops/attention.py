"""Attention and the small sequence ops Transformers need (issue 14).

* ``attention``: multi-head scaled dot-product attention with its four projections,
  self-attention (``x -> attention(12)``) or cross-attention (``attention(x, memory, heads=8)``),
  optionally causal, optionally masked by a padding-mask input (``mask=pad``);
* ``position_embedding`` (learned) and ``sinusoidal_position`` (fixed): add a position
  vector to each step of a ``[T, D]`` sequence;
* ``class_token``: a learned vector prepended to a sequence (ViT);
* ``select``: one position of an axis (BERT's pooler and ViT's head read token 0).

Weight tying (GPT-2's output projection) is the ``embedding`` op used on float vectors;
see ``layers.Embedding``.
"""

from __future__ import annotations

from ..ir_plain import Param, TensorType
from .base import Attr, Bool, Callable, Float, InferError, Int, OpDef, norm_axis, static


def _seq(t: TensorType, what: str) -> tuple:
    """A float sequence ``[T, D]`` with a static feature size."""
    if t.is_integer:
        raise InferError(f"{what} must be a float sequence [T, D]; received integer values {t}", code="E403",
                         notes=("integer ids go through `embedding(vocab, dim)` first",))
    if t.rank != 2:
        raise InferError(f"{what} must be a sequence [T, D]; received: {t}")
    static(t.shape[1], f"{what}'s feature axis")
    return t.shape


def _count(*dims) -> int:
    """A product with run-time sizes counted as 1 (the report binds them with --dim)."""
    out = 1
    for d in dims:
        out *= d if isinstance(d, int) else 1
    return out


def _plus(dim, n: int):
    return dim + n if isinstance(dim, int) else f"{dim}+{n}"


class Attention(OpDef):
    name = "attention"
    category = "attention"
    family = "attention"
    positional = ("heads",)
    min_inputs, max_inputs = 1, 3
    float_input = False  # the mask may be integer; infer checks the query and key/value
    #: keyword arguments that name a value of the spec, not a constant (the checker adds them as inputs)
    value_args = ("mask",)
    # Keras: MultiHeadAttention's per-head EinsumDense kernels; the conversion is the attention family's
    attrs = {
        "heads": Attr(Int(1), doc="number of attention heads"),
        "key_dim": Attr(Int(1), None, "size of each head's queries and keys (default: query features / heads)"),
        "value_dim": Attr(Int(1), None, "size of each head's values (default: key_dim)"),
        "units": Attr(Int(1), None, "output features of the output projection (default: query features)"),
        "use_bias": Attr(Bool(), True, "biases on the four projections"),
        "dropout": Attr(Float(0.0, 1.0, max_open=True), 0.0, "dropout on the attention probabilities (training)"),
        "causal": Attr(Bool(), False, "query i attends only keys j <= i"),
        "mask": Attr(Bool(), False, "set by `mask=VALUE`: a padding mask [T_k] (nonzero = attend)"),
        "kernel_init": Attr(Callable("initializer"), "glorot_uniform", "initializer of the four kernels"),
        "bias_init": Attr(Callable("initializer"), "zeros", "initializer of the four biases"),
    }
    doc = ("Multi-head scaled dot-product attention: `softmax(q k^T / sqrt(key_dim) [+ mask]) v`, per head, "
           "then the output projection. Self-attention as a step (`x -> attention(12)`), cross-attention "
           "as a source (`attention(x, memory, heads=8)`: queries from the first value, keys and values "
           "from the second); `mask=VALUE` names a padding mask `[T_k]` (nonzero or true = attend), as a "
           "source's keyword (`attention(x, x, heads=12, mask=pad)`).")
    shape_rule = "query [T_q, D_q], key/value [T_k, D_kv] (default: the query) -> [T_q, units]"
    params_rule = ("`q_kernel` [heads·key_dim, D_q], `k_kernel` [heads·key_dim, D_kv], "
                   "`v_kernel` [heads·value_dim, D_kv], `o_kernel` [units, heads·value_dim]; "
                   "`q_bias`, `k_bias`, `v_bias`, `o_bias` (their kernels' first axis) if use_bias; "
                   "head h owns rows h·key_dim ... (h+1)·key_dim-1")
    macs_rule = ("T_q·D_q·heads·key_dim + T_k·D_kv·heads·(key_dim + value_dim) "
                 "+ heads·T_q·T_k·(key_dim + value_dim) + T_q·heads·value_dim·units")

    def infer(self, attrs, inputs):
        q = inputs[0]
        _seq(q, "attention's query")
        kv = q
        if len(inputs) >= 2 and not (attrs["mask"] and len(inputs) == 2):
            kv = inputs[1]
            _seq(kv, "attention's key/value")
        if attrs["mask"]:
            m = inputs[-1]
            if m.rank != 1 or m.shape[0] != kv.shape[0]:
                raise InferError(f"attention's mask must be [T_k] = [{kv.shape[0]}], one entry per key; "
                                 f"received: {m}", arg="mask")
        heads = attrs["heads"]
        dq = q.shape[1]
        key_dim = attrs["key_dim"]
        if key_dim is None:
            if dq % heads:
                raise InferError(f"attention: {dq} query features do not split into {heads} heads; "
                                 "give key_dim", formula=f"{dq} % {heads} = {dq % heads}", arg="heads")
            key_dim = dq // heads
        value_dim = attrs["value_dim"] or key_dim
        units = attrs["units"] or dq
        out = TensorType(shape=(q.shape[0], units))
        return out, {**attrs, "key_dim": key_dim, "value_dim": value_dim, "units": units}

    def params(self, attrs, inputs, out):
        dq = inputs[0].shape[1]
        kv = inputs[1] if len(inputs) - attrs["mask"] >= 2 else inputs[0]
        dkv = kv.shape[1]
        h, kd, vd, units = attrs["heads"], attrs["key_dim"], attrs["value_dim"], attrs["units"]
        shapes = {"q": (h * kd, dq), "k": (h * kd, dkv), "v": (h * vd, dkv), "o": (units, h * vd)}
        ps = []
        for p, shape in shapes.items():
            ps.append(Param(name=f"{p}_kernel", shape=shape, init=attrs["kernel_init"]))
        if attrs["use_bias"]:
            for p, shape in shapes.items():
                ps.append(Param(name=f"{p}_bias", shape=shape[:1], init=attrs["bias_init"]))
        return ps

    def macs(self, attrs, inputs, out):
        q = inputs[0]
        kv = inputs[1] if len(inputs) - attrs["mask"] >= 2 else q
        h, kd, vd, units = attrs["heads"], attrs["key_dim"], attrs["value_dim"], attrs["units"]
        tq, tk = _count(q.shape[0]), _count(kv.shape[0])
        return (tq * q.shape[1] * h * kd + tk * kv.shape[1] * h * (kd + vd)
                + h * tq * tk * (kd + vd) + tq * h * vd * units)


class PositionEmbedding(OpDef):
    name = "position_embedding"
    category = "embedding"
    family = "position_embedding"
    positional = ("max_len",)
    attrs = {
        "max_len": Attr(Int(1), doc="the longest sequence (rows of the table)"),
        "embeddings_init": Attr(Callable("initializer"), "uniform", "default uniform(-0.05, 0.05)"),
    }
    doc = "Learned position embeddings: adds row t of a `[max_len, D]` table to step t (`x + P[:T]`)."
    shape_rule = "[T, D] -> [T, D]; T <= max_len"
    params_rule = "`embeddings` [max_len, D]"

    def infer(self, attrs, inputs):
        (t,) = inputs
        _seq(t, "position_embedding's input")
        if isinstance(t.shape[0], int) and t.shape[0] > attrs["max_len"]:
            raise InferError(f"position_embedding({attrs['max_len']}) holds {attrs['max_len']} positions; "
                             f"the sequence has {t.shape[0]}", formula=f"{t.shape[0]} > {attrs['max_len']}",
                             arg="max_len")
        return t, attrs

    def params(self, attrs, inputs, out):
        return [Param(name="embeddings", shape=(attrs["max_len"], inputs[0].shape[1]),
                                      init=attrs["embeddings_init"])]


class SinusoidalPosition(OpDef):
    name = "sinusoidal_position"
    category = "embedding"
    family = "sinusoidal_position"
    attrs = {"base": Attr(Float(1.0, min_open=True), 10000.0, "the wavelength base")}
    doc = ("Fixed sinusoidal position encodings (Vaswani et al.): adds `PE[t, 2i] = sin(t / base^(2i/D))`, "
           "`PE[t, 2i+1] = cos(t / base^(2i/D))` to step t.")
    shape_rule = "[T, D] -> [T, D]; D even"

    def infer(self, attrs, inputs):
        (t,) = inputs
        _seq(t, "sinusoidal_position's input")
        if t.shape[1] % 2:
            raise InferError(f"sinusoidal_position needs an even feature size (sin/cos pairs); received: {t}",
                             formula=f"{t.shape[1]} % 2 = 1")
        return t, attrs


class ClassToken(OpDef):
    name = "class_token"
    category = "embedding"
    family = "class_token"
    attrs = {"init": Attr(Callable("initializer"), "zeros", "initializer of the token")}
    doc = "A learned vector prepended to a sequence (ViT's class token); position 0 of the output."
    shape_rule = "[T, D] -> [T+1, D]"
    params_rule = "`token` [D]"

    def infer(self, attrs, inputs):
        (t,) = inputs
        _seq(t, "class_token's input")
        return TensorType(shape=(_plus(t.shape[0], 1), t.shape[1])), attrs

    def params(self, attrs, inputs, out):
        return [Param(name="token", shape=(inputs[0].shape[1],), init=attrs["init"])]


class Select(OpDef):
    name = "select"
    category = "shape"
    family = "select"
    float_input = False
    positional = ("index", "axis")
    attrs = {
        "index": Attr(Int(), doc="the position (negative: from the end)"),
        "axis": Attr(Int(), 0, "the per-sample axis"),
    }
    doc = "One position of a per-sample axis, which goes away: `select(0)` of `[T, D]` is the first step."
    shape_rule = "[..., n, ...] -> [..., ...] (axis removed); -n <= index < n"

    def infer(self, attrs, inputs):
        (t,) = inputs
        if t.rank == 0:
            raise InferError(f"select needs at least one axis; received: {t}")
        axis = norm_axis(attrs["axis"], t.rank)
        n, i = t.shape[axis], attrs["index"]
        if isinstance(n, int) and not -n <= i < n:
            raise InferError(f"select index {i} is out of range for an axis of size {n}", code="E405",
                             arg="index")
        shape = t.shape[:axis] + t.shape[axis + 1:]
        return TensorType(dtype=t.dtype, shape=shape), {**attrs, "axis": axis}


ATTENTION_OPS = [Attention, PositionEmbedding, SinusoidalPosition, ClassToken, Select]
