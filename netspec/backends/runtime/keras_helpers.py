"""Keras runtime helpers: layers, an initialiser and losses that generated Keras models use.

This is real, linted, tested code; the Keras generator copies the source of the definitions a
network uses into the generated file (``netspec.backends.base.helper_source``), so generated files
stay standalone. Every definition is self-contained at top level, needs only ``keras`` and
``layers`` (imported as the generated file imports them); the layers, the initialiser and the
losses Keras may save by name are registered as serialisable under the package ``netspec``.
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="netspec")
class ConstantPadding(layers.Layer):
    """Pads the spatial axes with a constant: -inf before a max pool, so that padding never wins."""

    def __init__(self, padding, value=0.0, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(p) for p in padding)
        self.value = value
        self.data_format = data_format

    def call(self, inputs):
        if self.data_format == "channels_last":
            pads = [(0, 0), *self.padding, (0, 0)]
        else:
            pads = [(0, 0), (0, 0), *self.padding]
        return keras.ops.pad(inputs, pads, constant_values=self.value)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding, value=self.value, data_format=self.data_format)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class PaddedAveragePooling(layers.Layer):
    """Average pooling over explicit (begin, end) zero padding, divided as PyTorch divides.

    Each window's sum is divided by the number of positions it covers in the input,
    or in the padded input when `count_include_pad`; the `extra` positions that
    ceil_mode adds at the end never count.
    """

    def __init__(
        self, pool_size, strides, padding, extra=None, count_include_pad=False, data_format="channels_last", **kwargs
    ):
        super().__init__(**kwargs)
        self.pool_size = tuple(pool_size)
        self.strides = tuple(strides)
        self.padding = tuple(tuple(p) for p in padding)
        self.extra = tuple(extra) if extra is not None else (0,) * len(self.padding)
        self.count_include_pad = count_include_pad
        self.data_format = data_format

    def _pad(self, x, pads, value):
        if self.data_format == "channels_last":
            pads = [(0, 0), *pads, (0, 0)]
        else:
            pads = [(0, 0), (0, 0), *pads]
        return keras.ops.pad(x, pads, constant_values=value)

    def _pool(self, x):
        return keras.ops.average_pool(x, self.pool_size, self.strides, "valid", self.data_format)

    def call(self, inputs):
        total = [(b, e + x) for (b, e), x in zip(self.padding, self.extra)]
        if self.data_format == "channels_last":
            ones = keras.ops.ones_like(inputs[..., :1])
        else:
            ones = keras.ops.ones_like(inputs[:, :1])
        if self.count_include_pad:
            mask = self._pad(self._pad(ones, self.padding, 1.0), [(0, x) for x in self.extra], 0.0)
        else:
            mask = self._pad(ones, total, 0.0)
        return self._pool(self._pad(inputs, total, 0.0)) / self._pool(mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            extra=self.extra,
            count_include_pad=self.count_include_pad,
            data_format=self.data_format,
        )
        return config


class ConvTransposeByConv:
    """A transposed convolution with a dilation (strides 1, padding "valid"), computed as a convolution.

    TensorFlow's CPU kernels without oneDNN cannot dilate a transposed convolution. With strides 1 it
    equals a convolution of the input, zero-padded by dilation * (kernel - 1) on each side, with the
    kernel flipped and its input and output axes swapped. Mixed into ConvNDTranspose, whose variables
    (and so whose weights and saved files) it keeps.
    """

    def call(self, inputs):
        spatial = tuple(range(len(self.kernel_size)))
        kernel = keras.ops.swapaxes(keras.ops.flip(self.kernel, axis=spatial), -1, -2)
        pads = [(d * (k - 1), d * (k - 1)) for k, d in zip(self.kernel_size, self.dilation_rate)]
        if self.data_format == "channels_last":
            pads, bias_shape = [(0, 0), *pads, (0, 0)], (self.filters,)
        else:
            pads, bias_shape = [(0, 0), (0, 0), *pads], (self.filters, *(1 for _ in spatial))
        outputs = keras.ops.conv(
            keras.ops.pad(inputs, pads),
            kernel,
            strides=1,
            padding="valid",
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if self.use_bias:
            outputs = outputs + keras.ops.reshape(self.bias, bias_shape)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="netspec")
class DilatedConv1DTranspose(ConvTransposeByConv, layers.Conv1DTranspose):
    """Conv1DTranspose with a dilation, runnable without oneDNN (see ConvTransposeByConv)."""


@keras.saving.register_keras_serializable(package="netspec")
class DilatedConv2DTranspose(ConvTransposeByConv, layers.Conv2DTranspose):
    """Conv2DTranspose with a dilation, runnable without oneDNN (see ConvTransposeByConv)."""


@keras.saving.register_keras_serializable(package="netspec")
class DilatedConv3DTranspose(ConvTransposeByConv, layers.Conv3DTranspose):
    """Conv3DTranspose with a dilation, runnable without oneDNN (see ConvTransposeByConv)."""


@keras.saving.register_keras_serializable(package="netspec")
class TanhGelu(layers.Layer):
    """GELU in its tanh approximation."""

    def call(self, inputs):
        return keras.activations.gelu(inputs, approximate=True)


@keras.saving.register_keras_serializable(package="netspec")
class SpecOrthogonal(keras.initializers.Initializer):
    """orthogonal(gain) where Keras's Orthogonal differs from the spec's.

    A vector is a unit vector times gain (Keras rejects rank 1); a depthwise kernel (kh, kw, C, m) is
    orthogonal in the spec's layout [C * m, kh * kw] (Keras would orthogonalise its m columns).
    """

    def __init__(self, gain=1.0, depthwise=False, seed=None):
        self.gain = gain
        self.depthwise = depthwise
        self.seed = seed

    def __call__(self, shape, dtype=None):
        orthogonal = keras.initializers.Orthogonal(self.gain, self.seed)
        if len(shape) == 1:
            return keras.ops.reshape(orthogonal((shape[0], 1), dtype=dtype), shape)
        if not self.depthwise:
            return orthogonal(shape, dtype=dtype)
        kh, kw, c, m = shape
        flat = orthogonal((c * m, kh * kw), dtype=dtype)
        return keras.ops.transpose(keras.ops.reshape(flat, (c, m, kh, kw)), (2, 3, 0, 1))

    def get_config(self):
        return {"gain": self.gain, "depthwise": self.depthwise, "seed": self.seed}


@keras.saving.register_keras_serializable(package="netspec")
def binary_crossentropy(y_true, y_pred):
    """-(t log p + (1 - t) log(1 - p)) per element, p clipped to [1e-7, 1 - 1e-7], never read as logits."""
    t = keras.ops.cast(y_true, y_pred.dtype)
    p = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
    return -(t * keras.ops.log(p) + (1 - t) * keras.ops.log(1 - p))


@keras.saving.register_keras_serializable(package="netspec")
def categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """-sum(t log q, axis): q = softmax(y_pred), or clip(y_pred / max(sum(y_pred), 1e-7), 1e-7, 1 - 1e-7).

    Probabilities are never read as logits (Keras's own loss does that to a softmax output).
    """
    t = keras.ops.cast(y_true, y_pred.dtype)
    if from_logits:
        log_q = keras.ops.log_softmax(y_pred, axis=axis)
    else:
        q = y_pred / keras.ops.maximum(keras.ops.sum(y_pred, axis=axis, keepdims=True), 1e-7)
        log_q = keras.ops.log(keras.ops.clip(q, 1e-7, 1 - 1e-7))
    return -keras.ops.sum(t * log_q, axis=axis)


@keras.saving.register_keras_serializable(package="netspec")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """categorical_crossentropy of the one-hot class ids: y_true is y_pred without `axis`, or with a trailing 1."""
    if len(y_true.shape) == len(y_pred.shape):
        y_true = keras.ops.squeeze(y_true, -1)
    ids = keras.ops.cast(y_true, "int32")
    t = keras.ops.one_hot(ids, y_pred.shape[axis], axis=axis, dtype=y_pred.dtype)
    return categorical_crossentropy(t, y_pred, from_logits, axis)


@keras.saving.register_keras_serializable(package="netspec")
def hinge(y_true, y_pred):
    """max(1 - t p, 0) per element, targets as given (Keras's "hinge" turns 0/1 targets into -1/1)."""
    return keras.ops.maximum(1 - keras.ops.cast(y_true, y_pred.dtype) * y_pred, 0)


@keras.saving.register_keras_serializable(package="netspec")
def kl_divergence(y_true, y_pred, axis=-1):
    """sum(t log(t / p), axis), t and p clipped to [1e-7, 1]: Keras's formula on any axis."""
    t = keras.ops.clip(keras.ops.cast(y_true, y_pred.dtype), 1e-7, 1)
    p = keras.ops.clip(y_pred, 1e-7, 1)
    return keras.ops.sum(t * keras.ops.log(t / p), axis=axis)


def dense_gradient(g):
    """A gradient as one dense tensor: TensorFlow's sparse slices (an embedding's) summed per id."""
    if g is None or not hasattr(g, "indices"):
        return g
    return keras.ops.segment_sum(g.values, g.indices, num_segments=g.dense_shape[0])


@keras.saving.register_keras_serializable(package="netspec")
class SpecSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The spec's learning rate after `step` completed steps: a linear warm-up, then a schedule.

    step < warmup: lr (step + 1) / warmup; then, with u = step - warmup, step: lr rate^floor(u / n),
    exponential: lr rate^(u / n), cosine: lr (alpha + (1 - alpha) (1 + cos(pi min(u, n) / n)) / 2).
    """

    def __init__(self, lr, schedule="constant", decay_steps=1000, decay_rate=0.5, alpha=0.0, warmup=0):
        self.lr, self.schedule, self.decay_steps = lr, schedule, decay_steps
        self.decay_rate, self.alpha, self.warmup = decay_rate, alpha, warmup

    def __call__(self, step):
        t = keras.ops.cast(step, keras.config.floatx())
        u = keras.ops.maximum(t - self.warmup, 0.0) / self.decay_steps
        if self.schedule == "step":
            rate = keras.ops.power(self.decay_rate, keras.ops.floor(u))
        elif self.schedule == "exponential":
            rate = keras.ops.power(self.decay_rate, u)
        elif self.schedule == "cosine":
            cosine = 0.5 * (1.0 + keras.ops.cos(keras.ops.minimum(u, 1.0) * 3.141592653589793))
            rate = self.alpha + (1.0 - self.alpha) * cosine
        else:
            rate = keras.ops.ones_like(t)
        if self.warmup:
            rate = keras.ops.where(t < self.warmup, (t + 1.0) / self.warmup, rate)
        return self.lr * rate

    def get_config(self):
        return {
            "lr": self.lr,
            "schedule": self.schedule,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "alpha": self.alpha,
            "warmup": self.warmup,
        }


def kl_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over each sample's axes, averaged over the batch."""
    axes = tuple(range(1, len(mu.shape)))
    terms = 1.0 + logvar - keras.ops.square(mu) - keras.ops.exp(logvar)
    return keras.ops.mean(-0.5 * keras.ops.sum(terms, axis=axes))


# ---- Attention and Transformers (issue 14) ----------------------------------------------------


@keras.saving.register_keras_serializable(package="netspec")
class PaddingMask(layers.Layer):
    """A padding mask [N, T_k] (nonzero = attend) as MultiHeadAttention's attention_mask [N, 1, T_k]."""

    def call(self, mask):
        return keras.ops.expand_dims(keras.ops.not_equal(mask, 0), 1)


@keras.saving.register_keras_serializable(package="netspec")
class PositionEmbedding(layers.Layer):
    """Learned positions: x + embeddings[:T] for x [N, T, D]."""

    def __init__(self, max_len, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_len, input_shape[-1]), initializer=self.embeddings_initializer, name="embeddings"
        )

    def call(self, inputs):
        return inputs + self.embeddings[: keras.ops.shape(inputs)[1]]

    def get_config(self):
        config = super().get_config()
        config.update(
            max_len=self.max_len, embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer)
        )
        return config


@keras.saving.register_keras_serializable(package="netspec")
class SinusoidalPosition(layers.Layer):
    """x + the fixed sin/cos encodings of Vaswani et al. for x [N, T, D] (computed in float64)."""

    def __init__(self, base=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.base = base

    def call(self, inputs):
        ops = keras.ops
        t, d = ops.shape(inputs)[1], inputs.shape[-1]
        pos = ops.cast(ops.arange(t), "float64")[:, None]
        freq = ops.power(ops.cast(self.base, "float64"), -ops.arange(0, d, 2, dtype="float64") / d)
        angle = pos * freq
        table = ops.reshape(ops.stack([ops.sin(angle), ops.cos(angle)], axis=-1), (-1, d))
        return inputs + ops.cast(table, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(base=self.base)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class ClassToken(layers.Layer):
    """A learned token prepended to x [N, T, D]."""

    def __init__(self, token_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.token_initializer = keras.initializers.get(token_initializer)

    def build(self, input_shape):
        self.token = self.add_weight(shape=(input_shape[-1],), initializer=self.token_initializer, name="token")

    def call(self, inputs):
        ops = keras.ops
        d = inputs.shape[-1]
        token = ops.reshape(ops.cast(self.token, inputs.dtype), (1, 1, d))
        token = ops.broadcast_to(token, (ops.shape(inputs)[0], 1, d))
        return ops.concatenate([token, inputs], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(token_initializer=keras.initializers.serialize(self.token_initializer))
        return config


@keras.saving.register_keras_serializable(package="netspec")
class Select(layers.Layer):
    """One position of an axis (a Keras axis: the batch is axis 0), which goes away."""

    def __init__(self, index, axis, **kwargs):
        super().__init__(**kwargs)
        self.index, self.axis = index, axis

    def call(self, inputs):
        index = self.index if self.index >= 0 else keras.ops.shape(inputs)[self.axis] + self.index
        return keras.ops.take(inputs, index, axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config.update(index=self.index, axis=self.axis)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class ReversibleEmbedding(layers.Embedding):
    """An Embedding that, called on float vectors [..., dim], projects them onto the vocabulary: x E^T (tying)."""

    def call(self, inputs):
        if keras.backend.is_float_dtype(inputs.dtype):
            return keras.ops.matmul(inputs, keras.ops.transpose(keras.ops.cast(self.embeddings, inputs.dtype)))
        return super().call(inputs)

    def compute_output_spec(self, inputs):
        if keras.backend.is_float_dtype(inputs.dtype):
            return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)


# Lecture ops (issue 13) ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="netspec")
class ElementwiseMath(layers.Layer):
    """One elementwise function of the spec: exp, log, sqrt, square, abs, negative, scale(by), shift(by)."""

    def __init__(self, op, by=None, **kwargs):
        super().__init__(**kwargs)
        self.op = op
        self.by = by

    def call(self, inputs):
        if self.op == "scale":
            return inputs * self.by
        if self.op == "shift":
            return inputs + self.by
        return getattr(keras.ops, self.op)(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(op=self.op, by=self.by)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class SampleNormal(layers.Layer):
    """The reparameterisation trick: mu + exp(logvar / 2) * eps in training, mu at inference.

    eps ~ N(0, scale^2) is drawn from a SeedGenerator (seeded by keras.utils.set_random_seed when no seed
    is given).
    """

    def __init__(self, scale=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mu, logvar = inputs
        if not training:
            return mu
        eps = keras.random.normal(keras.ops.shape(mu), stddev=self.scale, dtype=mu.dtype, seed=self.seed_generator)
        return mu + keras.ops.exp(0.5 * logvar) * eps

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class RepeatLike(layers.Layer):
    """RepeatVector for a run-time length: [N, F] repeated once per step of a sequence [N, T, ...]."""

    def call(self, inputs):
        vector, sequence = inputs
        return keras.ops.repeat(keras.ops.expand_dims(vector, 1), keras.ops.shape(sequence)[1], axis=1)


@keras.saving.register_keras_serializable(package="netspec")
def contrastive(y_true, y_pred, margin=1.0):
    """t d^2 + (1 - t) max(margin - d, 0)^2 per position: d a distance, t = 1 for a matching pair."""
    t = keras.ops.cast(y_true, y_pred.dtype)
    return t * keras.ops.square(y_pred) + (1 - t) * keras.ops.square(keras.ops.maximum(margin - y_pred, 0.0))


def triplet(anchor, positive, negative, margin=0.2):
    """FaceNet's triplet loss: mean(max(|a - p|^2 - |a - n|^2 + margin, 0)), distances over every per-sample axis."""
    axes = tuple(range(1, len(anchor.shape)))
    pos = keras.ops.sum(keras.ops.square(anchor - positive), axis=axes)
    neg = keras.ops.sum(keras.ops.square(anchor - negative), axis=axes)
    return keras.ops.mean(keras.ops.maximum(pos - neg + margin, 0.0))


@keras.saving.register_keras_serializable(package="netspec")
class SequenceMask(layers.Layer):
    """The steps [N, T] that are not padding: ids != value, or sequences [N, T, F] with a feature != value."""

    def __init__(self, kind="ids", value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.value = value

    def call(self, inputs):
        if self.kind == "ids":
            return keras.ops.not_equal(inputs, keras.ops.cast(self.value, inputs.dtype))
        return keras.ops.any(keras.ops.not_equal(inputs, self.value), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, value=self.value)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class MaskValues(layers.Layer):
    """Keras's Masking without the implicit mask (netspec passes masks explicitly): padding steps become 0."""

    def __init__(self, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def call(self, inputs):
        keep = keras.ops.any(keras.ops.not_equal(inputs, self.value), axis=-1, keepdims=True)
        return inputs * keras.ops.cast(keep, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(value=self.value)
        return config


@keras.saving.register_keras_serializable(package="netspec")
class MaskedGlobalPooling1D(layers.Layer):
    """Global average or max over the kept steps of x [N, C, L] (mask [N, L]); 0 where every step is masked."""

    def __init__(self, kind="avg", **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, inputs):
        x, mask = inputs
        keep = keras.ops.expand_dims(mask, 1)
        count = keras.ops.sum(keras.ops.cast(keep, x.dtype), axis=-1)
        if self.kind == "avg":
            return keras.ops.sum(keras.ops.where(keep, x, 0.0), axis=-1) / keras.ops.maximum(count, 1.0)
        top = keras.ops.max(keras.ops.where(keep, x, float("-inf")), axis=-1)
        return keras.ops.where(count > 0, top, 0.0)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind)
        return config
