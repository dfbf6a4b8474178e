"""Shape arithmetic as small pure functions.

Every caller (the checker, the diagnostics, the backends) computes output sizes
here, so there is exactly one definition of each rule. Functions that compute a
size return a :class:`Computed`: the value and the formula with the numbers
filled in, which a shape error prints verbatim.

Conventions: ``pad_begin``/``pad_end`` are the zeros added before/after an axis;
for transposed convolutions ``crop_begin``/``crop_end`` are the values removed
from the full transposed output (PyTorch's ``padding``), and ``output_padding``
adds values at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Computed",
    "conv_output_length",
    "conv_transpose_output_length",
    "effective_kernel",
    "pool_output_length",
    "same_padding",
    "transpose_same_cropping",
    "upsample_output_length",
]


@dataclass(frozen=True)
class Computed:
    """An output size and the arithmetic that produced it."""

    value: int
    formula: str

    def __int__(self) -> int:
        return self.value


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """The extent a dilated kernel covers: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def conv_output_length(
    size: int,
    kernel: int,
    stride: int = 1,
    pad_begin: int = 0,
    pad_end: int = 0,
    dilation: int = 1,
) -> Computed:
    """Output length of a convolution: ``floor((i + pb + pe - d(k-1) - 1) / s) + 1``."""
    k_eff = effective_kernel(kernel, dilation)
    numerator = size + pad_begin + pad_end - k_eff
    value = numerator // stride + 1
    ktext = str(k_eff) if dilation == 1 else f"({dilation} * ({kernel} - 1) + 1)"
    formula = f"({size} + {pad_begin} + {pad_end} - {ktext}) // {stride} + 1 = {value}"
    return Computed(value, formula)


def pool_output_length(
    size: int,
    pool: int,
    stride: int,
    pad_begin: int = 0,
    pad_end: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> Computed:
    """Output length of a pooling window, with PyTorch's ceil-mode rule.

    In ceil mode the division rounds up, but a last window that would start in
    the end padding (past the input and the begin padding) is dropped.
    """
    if not ceil_mode:
        return conv_output_length(size, pool, stride, pad_begin, pad_end, dilation)
    k_eff = effective_kernel(pool, dilation)
    numerator = size + pad_begin + pad_end - k_eff
    value = -(-numerator // stride) + 1
    dropped = value > 1 and (value - 1) * stride >= size + pad_begin
    if dropped:
        value -= 1
    ktext = str(k_eff) if dilation == 1 else f"({dilation} * ({pool} - 1) + 1)"
    formula = f"ceil(({size} + {pad_begin} + {pad_end} - {ktext}) / {stride}) + 1"
    if dropped:
        formula += " - 1 (last window starts in the padding)"
    return Computed(value, f"{formula} = {value}")


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' rule: output ``ceil(size / stride)``, extra padding at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def conv_transpose_output_length(
    size: int,
    kernel: int,
    stride: int = 1,
    crop_begin: int = 0,
    crop_end: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> Computed:
    """Output length of a transposed convolution.

    ``(i - 1) * s + d(k - 1) + 1 - cb - ce + op``: the full transposed output,
    cropped at both ends, extended by ``output_padding`` at the end.
    """
    k_eff = effective_kernel(kernel, dilation)
    value = (size - 1) * stride + k_eff - crop_begin - crop_end + output_padding
    ktext = str(k_eff) if dilation == 1 else f"({dilation} * ({kernel} - 1) + 1)"
    formula = f"({size} - 1) * {stride} + {ktext} - {crop_begin} - {crop_end} + {output_padding} = {value}"
    return Computed(value, formula)


def transpose_same_cropping(kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """(crop_begin, crop_end, output_padding) giving Keras's 'same' transposed output ``i * s``.

    This is the gradient of a 'same' convolution: the smaller crop at the begin,
    as TensorFlow puts the extra forward padding at the end. When the kernel is
    shorter than the stride, nothing is cropped and the missing values are added
    at the end.
    """
    total = effective_kernel(kernel, dilation) - stride
    if total < 0:
        return 0, 0, -total
    return total // 2, total - total // 2, 0


def upsample_output_length(size: int, scale: int) -> Computed:
    """Output length of nearest/linear upsampling by an integer factor."""
    value = size * scale
    return Computed(value, f"{size} * {scale} = {value}")
