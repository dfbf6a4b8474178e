"""The conformance table: micro-specs covering every op and every cross-framework pitfall.

Each case is a tiny network verified across every backend (``netspec verify``
machinery) by the test suite and by ``scripts/conformance_report.py``, which
writes docs/conformance.md. A case is ``(name, what it covers, body)``; the body
is a network body with one input ``x`` (unless it declares its own) and one or
more outputs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    covers: str
    body: str
    blocks: str = ""

    def text(self) -> str:
        """The whole spec text of the case."""
        body = "\n".join("    " + line.strip() for line in self.body.strip().splitlines())
        return f"{self.blocks}\nnetwork {_camel(self.name)} {{\n{body}\n}}\n"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _slug(text: str) -> str:
    return "_".join(part for part in "".join(c if c.isalnum() else "_" for c in text).split("_") if part)


def _conv(name, covers, inp, step):
    return Case(name, covers, f"input x: {inp}\ny = x -> {step}\noutput y")


CASES: list[Case] = [
    # dense and activations
    Case("dense", "dense with bias and activation", "input x: [7]\ny = x -> dense(5, activation=tanh)\noutput y"),
    Case("dense_sequence", "dense on the last axis of [T, F]", "input x: [4, 6]\ny = x -> dense(3)\noutput y"),
    Case("dense_no_bias", "use_bias=false", "input x: [6]\ny = x -> dense(4, use_bias=false)\noutput y"),
    *[Case(_slug("act_" + a), f"activation {a}", f"input x: [3, 5]\ny = x -> {a}\noutput y") for a in (
        "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "leaky_relu(0.3)", "elu", "elu(0.5)", "gelu",
        "gelu(approximate=true)", "swish", "softplus", "relu6", "hard_sigmoid", "linear")],
    Case("softmax_axis0", "softmax on a non-last axis", "input x: [4, 5]\ny = x -> softmax(axis=0)\noutput y"),
    # convolutions and 'same' padding
    *[_conv(f"same_s{s}_k{k}_i{i}", f"'same' padding, stride {s}, kernel {k}, size {i}", f"[2, {i}, {i}]",
            f"conv2d(3, {k}, stride={s}, padding=same)")
      for s, k, i in ((1, 3, 7), (2, 3, 7), (2, 3, 8), (3, 3, 7), (3, 3, 8), (2, 4, 7), (2, 4, 8), (1, 4, 6),
                      (3, 5, 10))],
    _conv("conv_explicit_asymmetric", "explicit (begin, end) padding", "[2, 6, 7]",
          "conv2d(3, 3, padding=((0, 2), (1, 0)))"),
    _conv("conv_dilation", "dilation 2", "[2, 9, 9]", "conv2d(3, 3, dilation=2)"),
    _conv("conv_dilation_same", "dilation with 'same'", "[2, 9, 9]", "conv2d(3, 3, dilation=2, padding=same)"),
    _conv("conv_groups", "groups=2", "[4, 6, 6]", "conv2d(6, 3, groups=2)"),
    _conv("conv_rect", "rectangular kernel and stride", "[2, 9, 8]", "conv2d(3, (3, 2), stride=(2, 1))"),
    _conv("conv1d", "1-D convolution", "[3, 11]", "conv1d(4, 3, stride=2, padding=same)"),
    _conv("conv3d", "3-D convolution", "[2, 5, 6, 6]", "conv3d(3, 3, padding=1)"),
    _conv("depthwise", "depthwise convolution", "[3, 7, 7]", "depthwise_conv2d(3, depth_multiplier=2, padding=same)"),
    _conv("separable", "separable convolution", "[3, 7, 7]", "separable_conv2d(4, 3, padding=same)"),
    _conv("conv_transpose", "transposed conv, valid", "[3, 4, 4]", "conv_transpose2d(2, 3, stride=2)"),
    _conv("conv_transpose_pad_outpad", "transposed conv with padding and output_padding", "[3, 4, 5]",
          "conv_transpose2d(2, 3, stride=2, padding=1, output_padding=1)"),
    _conv("conv_transpose_same", "transposed conv 'same'", "[3, 4, 4]",
          "conv_transpose2d(2, 3, stride=2, padding=same)"),
    _conv("conv_transpose_k_lt_s", "transposed conv with kernel < stride", "[3, 4, 4]",
          "conv_transpose2d(2, 1, stride=2)"),
    _conv("conv_transpose1d", "1-D transposed conv", "[3, 5]", "conv_transpose1d(2, 4, stride=2, padding=1)"),
    _conv("conv_transpose3d", "3-D transposed conv", "[2, 3, 4, 4]",
          "conv_transpose3d(2, 3, stride=2, padding=1, output_padding=1)"),
    # pooling
    _conv("maxpool", "max pooling", "[2, 7, 7]", "maxpool2d(2)"),
    _conv("maxpool_pad", "max pooling with padding (-inf)", "[2, 7, 7]", "maxpool2d(3, stride=2, padding=1)"),
    _conv("maxpool_ceil", "max pooling, ceil_mode", "[2, 7, 7]", "maxpool2d(2, ceil_mode=true)"),
    _conv("maxpool_same", "max pooling 'same'", "[2, 7, 7]", "maxpool2d(3, stride=2, padding=same)"),
    _conv("avgpool", "average pooling", "[2, 7, 7]", "avgpool2d(2)"),
    _conv("avgpool_pad_exclude", "avg pool, count_include_pad=false", "[2, 7, 7]",
          "avgpool2d(3, stride=2, padding=1)"),
    _conv("avgpool_pad_include", "avg pool, count_include_pad=true", "[2, 7, 7]",
          "avgpool2d(3, stride=2, padding=1, count_include_pad=true)"),
    _conv("avgpool_ceil_exclude", "avg pool, ceil_mode, excluding padding", "[2, 8, 8]",
          "avgpool2d(3, stride=2, padding=1, ceil_mode=true)"),
    _conv("avgpool_ceil_include", "avg pool, ceil_mode, including padding", "[2, 8, 8]",
          "avgpool2d(3, stride=2, padding=1, ceil_mode=true, count_include_pad=true)"),
    _conv("avgpool_same", "avg pool 'same'", "[2, 7, 7]", "avgpool2d(3, stride=2, padding=same)"),
    _conv("maxpool1d", "1-D max pooling", "[2, 9]", "maxpool1d(3, stride=2)"),
    _conv("avgpool1d", "1-D average pooling with padding", "[2, 9]", "avgpool1d(3, stride=2, padding=1)"),
    _conv("maxpool3d", "3-D max pooling", "[2, 5, 6, 6]", "maxpool3d(2, ceil_mode=true)"),
    _conv("avgpool3d", "3-D average pooling", "[2, 5, 6, 6]", "avgpool3d(3, stride=2, padding=1)"),
    _conv("global_avgpool1d", "1-D global average pooling", "[3, 7]", "global_avgpool1d"),
    _conv("global_maxpool1d", "1-D global max pooling", "[3, 7]", "global_maxpool1d"),
    _conv("global_avgpool3d", "3-D global average pooling", "[3, 4, 5, 4]", "global_avgpool3d"),
    _conv("global_maxpool3d", "3-D global max pooling", "[3, 4, 5, 4]", "global_maxpool3d"),
    _conv("global_avgpool", "global average pooling", "[3, 5, 4]", "global_avgpool2d"),
    _conv("global_maxpool", "global max pooling", "[3, 5, 4]", "global_maxpool2d"),
    # shape ops
    Case("flatten_dense", "flatten (channels-first order) then dense",
         "input x: [3, 4, 5]\ny = x -> conv2d(2, 3) -> flatten -> dense(4)\noutput y"),
    _conv("reshape", "reshape", "[2, 6]", "reshape([3, -1])"),
    _conv("permute", "permute", "[2, 3, 4]", "permute(2, 0, 1)"),
    _conv("zeropad", "asymmetric zero padding", "[2, 4, 5]", "zeropad2d(((1, 0), (2, 3)))"),
    _conv("zeropad1d", "1-D zero padding", "[2, 5]", "zeropad1d(((2, 1),))"),
    _conv("zeropad3d", "3-D zero padding", "[2, 3, 4, 4]", "zeropad3d(1)"),
    _conv("upsample1d", "1-D nearest upsampling", "[2, 5]", "upsample1d(3)"),
    _conv("upsample1d_linear", "1-D linear upsampling", "[2, 5]", "upsample1d(2, mode=linear)"),
    _conv("upsample3d", "3-D nearest upsampling", "[2, 2, 3, 3]", "upsample3d(2)"),
    _conv("upsample_nearest", "nearest upsampling", "[2, 3, 4]", "upsample2d(2)"),
    _conv("upsample_bilinear", "bilinear upsampling", "[2, 3, 4]", "upsample2d(2, mode=bilinear)"),
    _conv("dropout", "dropout is the identity at inference", "[6]", "dropout(0.5)"),
    # normalisation
    _conv("batchnorm", "BatchNorm (inference) with non-default eps", "[3, 4, 4]", "batchnorm(eps=1e-2)"),
    _conv("batchnorm_dense", "BatchNorm on features", "[6]", "batchnorm"),
    _conv("layernorm", "LayerNorm", "[4, 6]", "layernorm(eps=1e-5)"),
    # embeddings and recurrent layers
    Case("embedding", "embedding", "input x: int64[5]\ny = x -> embedding(11, 4)\noutput y"),
    Case("ids_concat_embedding", "integer ids through concat, reshape and permute into an embedding",
         "input a: int64[2, 3]\ninput b: int64[2, 3]\n"
         "y = concat(a, b, axis=-1) -> flatten -> reshape([3, 4]) -> permute(1, 0) -> embedding(10, 2)\noutput y"),
    *[Case(f"{rnn}_{'seq' if seq else 'last'}", f"{rnn}, return_sequences={str(seq).lower()}",
           f"input x: [5, 3]\ny = x -> {rnn}(4, return_sequences={str(seq).lower()})\noutput y")
      for rnn in ("simple_rnn", "lstm", "gru") for seq in (True, False)],
    Case("bidirectional_lstm", "bidirectional LSTM", "input x: [5, 3]\ny = x -> bidirectional(lstm(4))\noutput y"),
    Case("bidirectional_gru_seq", "bidirectional GRU sequences",
         "input x: [5, 3]\ny = x -> bidirectional(gru(4, return_sequences=true))\noutput y"),
    # merges
    *[Case(f"merge_{m}", f"merge {m}", f"input a: [2, 3]\ninput b: [2, 3]\ny = {m}(a, b)\noutput y")
      for m in ("add", "subtract", "multiply", "average", "maximum", "minimum")],
    Case("merge_broadcast", "add with broadcasting", "input a: [2, 3]\ninput b: [1, 3]\ny = add(a, b)\noutput y"),
    Case("concat_channels", "concat on the channel axis",
         "input a: [2, 3, 3]\ninput b: [1, 3, 3]\ny = concat(a, b, axis=0)\noutput y"),
    Case("concat_last", "concat on the last axis",
         "input a: [2, 3]\ninput b: [2, 4]\ny = concat(a, b, axis=-1)\noutput y"),
    Case("dot", "dot product", "input a: [5]\ninput b: [5]\ny = dot(a, b, axes=0)\noutput y"),
    Case("dot_normalize", "cosine (dot with normalize)",
         "input a: [5]\ninput b: [5]\ny = dot(a, b, axes=0, normalize=true)\noutput y"),
    Case("dot_matrix", "dot of matrices", "input a: [3, 4]\ninput b: [3, 5]\ny = dot(a, b, axes=0)\noutput y"),
    Case("shared_layer", "one layer used twice",
         "input a: [4]\ninput b: [4]\nlayer enc = dense(3)\nu = a -> enc\nv = b -> enc\ny = add(u, v)\noutput y"),
]

# ---- Attention and Transformers (issue 14) ----
_PRE_NORM = """
block pre_norm(heads=2) {
    a = in -> layernorm(eps=1e-5) -> attention(heads, dropout=0.0)
    h = add(in, a)
    m = h -> layernorm(eps=1e-5) -> dense(16, activation=gelu(approximate=true)) -> dense(8)
    return add(h, m)
}
"""
_POST_NORM = """
block post_norm(heads=2) {
    a = in -> attention(heads) -> dropout(0.0)
    h = add(in, a) -> layernorm(eps=1e-12)
    m = h -> dense(16, activation=gelu) -> dense(8)
    return add(h, m) -> layernorm(eps=1e-12)
}
"""
CASES += [
    Case("attention_self", "self-attention, 2 heads", "input x: [5, 8]\ny = x -> attention(2)\noutput y"),
    Case("attention_causal", "causal self-attention", "input x: [6, 8]\ny = x -> attention(4, causal=true)\noutput y"),
    Case("attention_dims", "key_dim, value_dim, units, no bias, dropout at rate 0",
         "input x: [5, 6]\ny = x -> attention(3, key_dim=4, value_dim=5, units=7, use_bias=false, dropout=0.0)"
         "\noutput y"),
    Case("attention_cross", "cross-attention: queries from one value, keys and values from another",
         "input x: [4, 8]\ninput m: [6, 5]\ny = attention(x, m, heads=2)\noutput y"),
    Case("attention_mask", "a padding mask from an integer input",
         "input x: [6, 8]\ninput pad: int64[6]\ny = attention(x, x, heads=2, mask=pad)\noutput y"),
    Case("attention_cross_causal_mask", "cross-attention, causal and masked",
         "input x: [4, 8]\ninput m: [6, 5]\ninput pad: int64[6]\n"
         "y = attention(x, m, heads=2, key_dim=3, causal=true, mask=pad)\noutput y"),
    Case("position_embedding", "learned positions", "input x: [5, 4]\ny = x -> position_embedding(9)\noutput y"),
    Case("sinusoidal_position", "fixed sinusoidal positions",
         "input x: [7, 6]\ny = x -> sinusoidal_position\noutput y"),
    Case("class_token_select", "a class token prepended, then position 0 and the last selected",
         "input x: [3, 4]\nt = x -> class_token(init=normal(1.0))\ny = t -> select(0)\nz = t -> select(-1)"
         "\noutput y, z"),
    Case("tied_embedding", "weight tying: one embedding looks ids up and projects vectors back",
         "input ids: int64[5]\nlayer emb = embedding(11, 4)\nh = ids -> emb -> dense(4)\ny = h -> emb\noutput y"),
    Case("pre_norm_block", "a pre-norm encoder block (GPT-2, ViT)", "input x: [5, 8]\ny = x -> pre_norm * 2\noutput y",
         _PRE_NORM),
    Case("post_norm_block", "a post-norm encoder block (BERT)", "input x: [5, 8]\ny = x -> post_norm\noutput y",
         _POST_NORM),
]


# Lecture ops (issue 13): elementwise math, random ops (identity at inference), sequence plumbing, state passing
CASES += [
    Case("math_exp_scale_shift", "exp, scale and shift (the VAE's exp(0.5 * logvar))",
         "input x: [3, 5]\ny = x -> scale(0.5) -> exp -> shift(-1.0)\noutput y"),
    Case("math_log_sqrt_abs", "abs, log and sqrt on positive values",
         "input x: [6]\ny = x -> abs -> shift(0.1) -> log -> abs -> sqrt\noutput y"),
    Case("math_square_negative", "square and negative", "input x: [2, 3, 4]\ny = x -> square -> negative\noutput y"),
    Case("vae_sampling_explicit", "z = mu + exp(0.5 * logvar) * eps written with elementwise math",
         "input mu: [4]\ninput logvar: [4]\ninput eps: [4]\nstd = logvar -> scale(0.5) -> exp\n"
         "z = add(mu, multiply(std, eps))\noutput z"),
    Case("sample_normal", "sample_normal is the mean at inference",
         "input mu: [4]\ninput logvar: [4]\nz = sample_normal(mu, logvar) -> dense(3)\noutput z"),
    Case("sample_normal_image", "sample_normal on a channels-first map (layouts)",
         "input mu: [2, 4, 4]\ninput logvar: [2, 4, 4]\nz = sample_normal(mu, logvar) -> conv2d(3, 3)\noutput z"),
    _conv("gaussian_noise", "gaussian_noise is the identity at inference", "[2, 5, 5]",
          "gaussian_noise(0.3) -> conv2d(2, 3)"),
    _conv("repeat_vector", "repeat_vector then an LSTM over the copies", "[6]",
          "repeat_vector(3) -> lstm(4, return_sequences=true)"),
    Case("repeat_like", "repeat_like: RepeatVector for a run-time length T",
         "input v: [6]\ninput s: [T, 2]\ny = repeat_like(v, s) -> gru(3, return_sequences=true)\noutput y"),
    Case("time_distributed_dense", "time_distributed(dense) on a run-time length",
         "input x: [T, 5]\ny = x -> time_distributed(dense(3, activation=softmax))\noutput y"),
    Case("time_distributed_dropout", "time_distributed(dropout)",
         "input x: [4, 5]\ny = x -> time_distributed(dropout(0.5)) -> dense(2)\noutput y"),
    *[Case(f"{rnn}_state_passing", f"{rnn}: return_state results and initial_state (seq2seq)",
           f"input src: [S, 3]\ninput dst: [T, 2]\n{parts} = src -> {rnn}(4, return_state=true)\n"
           f"y = dst -> {rnn}(4, return_sequences=true, initial_state={init})\noutput y, {outs}")
      for rnn, parts, init, outs in (("lstm", "enc, h, c", "[h, c]", "enc, h, c"),
                                     ("gru", "enc, h", "h", "enc, h"),
                                     ("simple_rnn", "enc, h", "[h]", "enc, h"))],
    Case("lstm_state_sequences", "return_state with return_sequences, initial_state on a last-step LSTM",
         "input src: [5, 3]\ninput h0: [4]\ninput c0: [4]\n"
         "seq, h, c = src -> lstm(4, return_sequences=true, return_state=true, initial_state=[h0, c0])\n"
         "last = seq -> lstm(4, initial_state=[h, c])\noutput seq, last, c"),
    # masking: a vocabulary of 3 draws many padding ids (0) at any position
    Case("mask_zero_rnns", "embedding(mask_zero) masks lstm (sequences) then gru (last step)",
         "input x: int64[6]\ne = x -> embedding(3, 4, mask_zero=true)\n"
         "s = e -> lstm(4, return_sequences=true)\ny = s -> gru(3)\noutput s, y"),
    Case("mask_zero_pools", "masked 1-D global average and max pools (after permute)",
         "input x: int64[T]\ne = x -> embedding(3, 4, mask_zero=true) -> permute(1, 0)\n"
         "a = e -> global_avgpool1d\nm = e -> global_maxpool1d\noutput a, m"),
    Case("masking_values", "masking(0.0) after relu (some steps all zero) before simple_rnn",
         "input x: [6, 3]\ny = x -> relu -> masking(0.0) -> dense(4)\n"
         "z = y -> simple_rnn(3, return_sequences=true)\noutput z"),
    Case("mask_zero_state_passing", "a masked encoder's state passed to a masked decoder",
         "input src: int64[6]\ninput dst: int64[5]\n_, h, c = src -> embedding(3, 4, mask_zero=true) -> "
         "lstm(4, return_state=true)\ny = dst -> embedding(3, 4, mask_zero=true) -> "
         "lstm(4, return_sequences=true, initial_state=[h, c])\noutput y, h, c"),
]

CASES_BY_NAME = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "conformance case names must be unique"


# ---- Blocks that read values besides `in` (value parameters) ----
_BLOCK_VALUES = """
block mix(other, units=4) {
    h = add(in, other) -> dense(units, activation=tanh)
    return multiply(h, other)
}

block decoder_layer(memory, pad, heads=2) {
    s = in -> attention(heads, causal=true)
    h = add(in, s) -> layernorm(eps=1e-5)
    c = attention(h, memory, heads=heads, mask=pad)
    h2 = add(h, c) -> layernorm(eps=1e-5)
    m = h2 -> dense(16, activation=relu) -> dense(8)
    return add(h2, m) -> layernorm(eps=1e-5)
}

block cross(kv, mask) {
    return attention(in, kv, heads=2, mask=mask)
}

block outer(memory, pad) {
    a = in -> dense(8)
    b = a -> cross(memory, pad)
    return add(in, b) -> cross(memory, mask=pad)
}

block wrap(unit) {
    return in -> dense(8) -> unit
}

block seq_decoder(h0, c0) {
    return in -> lstm(4, return_sequences=true, initial_state=[h0, c0]) -> dense(3)
}
"""
CASES += [
    Case("block_value_merge", "a block reading a second value through a merge",
         "input x: [4]\ninput o: [4]\ny = x -> mix(o) -> mix(o, units=4)\noutput y", _BLOCK_VALUES),
    Case("block_value_cross_attention", "a decoder block: cross-attention to a memory value with a padding mask",
         "input x: [4, 8]\ninput m: [6, 8]\ninput pad: int64[6]\ny = x -> decoder_layer(m, pad)\noutput y",
         _BLOCK_VALUES),
    Case("block_value_repeat", "a repeated decoder block (* 3): every copy reads the same memory and mask",
         "input x: [4, 8]\ninput m: [6, 8]\ninput pad: int64[6]\nmem = m -> dense(8)\n"
         "y = x -> decoder_layer(mem, pad) * 3\noutput y", _BLOCK_VALUES),
    Case("block_value_nested", "a block passing its value parameters on to an inner block",
         "input x: [4, 8]\ninput m: [6, 8]\ninput pad: int64[6]\ny = x -> outer(m, pad) * 2\noutput y",
         _BLOCK_VALUES),
    Case("block_value_passed_block", "a block call with a value argument passed as a block parameter",
         "input x: [4, 8]\ninput m: [6, 8]\ninput pad: int64[6]\ny = x -> wrap(cross(m, pad)) -> wrap(relu)"
         "\noutput y", _BLOCK_VALUES),
    Case("block_value_initial_state", "value parameters as a recurrent layer's initial_state",
         "input x: [5, 3]\ninput h: [4]\ninput c: [4]\ny = x -> seq_decoder(h, c)\noutput y", _BLOCK_VALUES),
]
