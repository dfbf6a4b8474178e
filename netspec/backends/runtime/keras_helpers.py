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
