"""Tests for ``netspec.shapes``: the shape arithmetic every other module relies on.

Three sources of truth, all hard-coded here so the tests import no framework:

* Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
  (arXiv 1603.07285): Relationships 1-15, with the paper's own figure numbers
  wherever the paper gives an example. Each relationship's closed form is
  written out below (``PAPER``) and checked against both the expected value and
  the function under test.
* TensorFlow 'same' padding: each (pad_begin, pad_end) was found once by
  searching for the explicit ``tf.pad`` + ``padding='VALID'`` whose
  ``tf.nn.conv2d`` output equals ``padding='SAME'`` on random data (smallest
  total padding; cases where several placements give identical outputs, e.g. a
  dilated kernel whose taps all miss a 1-element input, were left out).
* PyTorch ``max_pool1d(ceil_mode=...)`` output lengths, and Keras
  ``Conv2DTranspose(padding='same')`` outputs (TensorFlow backend; the torch
  backend for dilation, which TensorFlow's CPU kernel lacks), compared value by
  value with a cropped full transposed convolution.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netspec.shapes import (
    Computed,
    conv_output_length,
    conv_transpose_output_length,
    effective_kernel,
    pool_output_length,
    same_padding,
    transpose_same_cropping,
    upsample_output_length,
)


def numbers_in(formula: str) -> list[str]:
    return re.findall(r"\d+", formula)


def check_computed(c: Computed, expected: int, *numbers: int) -> None:
    """Value, the trailing ``= value``, and every input number in the formula."""
    assert isinstance(c, Computed)
    assert c.value == expected
    assert int(c) == expected
    assert c.formula.endswith(f"= {expected}"), c.formula
    found = numbers_in(c.formula)
    for n in numbers:
        assert str(n) in found, (n, c.formula)


# --------------------------------------------------------------------------
# Dumoulin & Visin, Relationships 1-15
# --------------------------------------------------------------------------

# The paper's closed forms, and the conditions under which each one is stated.
# Direct convolutions and pooling: (i, k, s, p, d) -> o.
# Transposed convolutions: (i', k, s, p, a) -> o'  (i' is the transposed input).
PAPER = {
    1: (lambda i, k, s, p, d: (i - k) + 1, lambda i, k, s, p, d: s == 1 and p == 0 and d == 1),
    2: (lambda i, k, s, p, d: (i - k) + 2 * p + 1, lambda i, k, s, p, d: s == 1 and d == 1),
    3: (lambda i, k, s, p, d: i, lambda i, k, s, p, d: k % 2 == 1 and s == 1 and p == k // 2 and d == 1),
    4: (lambda i, k, s, p, d: i + (k - 1), lambda i, k, s, p, d: p == k - 1 and s == 1 and d == 1),
    5: (lambda i, k, s, p, d: (i - k) // s + 1, lambda i, k, s, p, d: p == 0 and d == 1),
    6: (lambda i, k, s, p, d: (i + 2 * p - k) // s + 1, lambda i, k, s, p, d: d == 1),
    7: (lambda i, k, s, p, d: (i - k) // s + 1, lambda i, k, s, p, d: p == 0 and d == 1),
    15: (
        lambda i, k, s, p, d: (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1,
        lambda i, k, s, p, d: True,
    ),
}

PAPER_TRANSPOSED = {
    8: (lambda i, k, s, p, a: i + (k - 1), lambda i, k, s, p, a: s == 1 and p == 0 and a == 0),
    9: (lambda i, k, s, p, a: i + (k - 1) - 2 * p, lambda i, k, s, p, a: s == 1 and a == 0),
    10: (lambda i, k, s, p, a: i, lambda i, k, s, p, a: k % 2 == 1 and s == 1 and p == k // 2 and a == 0),
    11: (lambda i, k, s, p, a: i - (k - 1), lambda i, k, s, p, a: s == 1 and p == k - 1 and a == 0),
    12: (lambda i, k, s, p, a: s * (i - 1) + k, lambda i, k, s, p, a: p == 0 and a == 0),
    13: (lambda i, k, s, p, a: s * (i - 1) + k - 2 * p, lambda i, k, s, p, a: a == 0),
    14: (lambda i, k, s, p, a: s * (i - 1) + a + k - 2 * p, lambda i, k, s, p, a: 0 <= a < s),
}


# rel, i, k, s, p, d, expected o
CONV_CASES = [
    # Relationship 1: no zero padding, unit strides.
    pytest.param(1, 4, 3, 1, 0, 1, 2, id="rel1-paper-fig2.1-i4k3"),
    pytest.param(1, 5, 1, 1, 0, 1, 5, id="rel1-k1"),
    pytest.param(1, 5, 5, 1, 0, 1, 1, id="rel1-kernel-equals-input"),
    pytest.param(1, 7, 2, 1, 0, 1, 6, id="rel1-even-kernel"),
    pytest.param(1, 10, 4, 1, 0, 1, 7, id="rel1-i10k4"),
    # Relationship 2: zero padding, unit strides.
    pytest.param(2, 5, 4, 1, 2, 1, 6, id="rel2-paper-fig2.2-i5k4p2"),
    pytest.param(2, 6, 3, 1, 2, 1, 8, id="rel2-i6k3p2"),
    pytest.param(2, 4, 5, 1, 1, 1, 2, id="rel2-kernel-larger-than-input"),
    pytest.param(2, 5, 2, 1, 3, 1, 10, id="rel2-i5k2p3"),
    # Relationship 3: half (same) padding, odd kernel: o = i.
    pytest.param(3, 5, 3, 1, 1, 1, 5, id="rel3-paper-fig2.3-i5k3p1"),
    pytest.param(3, 6, 5, 1, 2, 1, 6, id="rel3-i6k5p2"),
    pytest.param(3, 1, 3, 1, 1, 1, 1, id="rel3-i1k3p1"),
    pytest.param(3, 8, 7, 1, 3, 1, 8, id="rel3-i8k7p3"),
    pytest.param(3, 4, 1, 1, 0, 1, 4, id="rel3-k1p0"),
    # Relationship 4: full padding p = k - 1: o = i + k - 1.
    pytest.param(4, 5, 3, 1, 2, 1, 7, id="rel4-paper-fig2.4-i5k3p2"),
    pytest.param(4, 4, 4, 1, 3, 1, 7, id="rel4-even-kernel"),
    pytest.param(4, 1, 5, 1, 4, 1, 5, id="rel4-i1k5p4"),
    pytest.param(4, 6, 1, 1, 0, 1, 6, id="rel4-k1"),
    # Relationship 5: no zero padding, non-unit strides.
    pytest.param(5, 5, 3, 2, 0, 1, 2, id="rel5-paper-fig2.5-i5k3s2"),
    pytest.param(5, 6, 3, 2, 0, 1, 2, id="rel5-floor-i6k3s2"),
    pytest.param(5, 7, 3, 2, 0, 1, 3, id="rel5-exact-i7k3s2"),
    pytest.param(5, 8, 3, 3, 0, 1, 2, id="rel5-floor-i8k3s3"),
    pytest.param(5, 9, 3, 3, 0, 1, 3, id="rel5-exact-i9k3s3"),
    pytest.param(5, 10, 4, 3, 0, 1, 3, id="rel5-i10k4s3"),
    pytest.param(5, 5, 1, 2, 0, 1, 3, id="rel5-k1s2"),
    # Relationship 6: zero padding, non-unit strides.
    pytest.param(6, 5, 3, 2, 1, 1, 3, id="rel6-paper-fig2.6-i5k3s2p1"),
    pytest.param(6, 6, 3, 2, 1, 1, 3, id="rel6-paper-fig2.7-i6k3s2p1-floor"),
    pytest.param(6, 7, 3, 2, 1, 1, 4, id="rel6-i7k3s2p1"),
    pytest.param(6, 224, 7, 2, 3, 1, 112, id="rel6-resnet-stem-i224k7s2p3"),
    pytest.param(6, 224, 3, 2, 1, 1, 112, id="rel6-i224k3s2p1-floor"),
    pytest.param(6, 10, 4, 3, 1, 1, 3, id="rel6-floor-i10k4s3p1"),
    pytest.param(6, 11, 5, 4, 2, 1, 3, id="rel6-floor-i11k5s4p2"),
    pytest.param(6, 4, 5, 2, 1, 1, 1, id="rel6-kernel-larger-than-input"),
    # Relationship 15: dilated convolutions.
    pytest.param(15, 7, 3, 1, 0, 2, 3, id="rel15-paper-fig5.1-i7k3d2"),
    pytest.param(15, 7, 3, 1, 2, 2, 7, id="rel15-same-i7k3d2p2"),
    pytest.param(15, 10, 3, 2, 0, 3, 2, id="rel15-i10k3s2d3"),
    pytest.param(15, 9, 2, 1, 0, 4, 5, id="rel15-even-kernel-i9k2d4"),
    pytest.param(15, 16, 3, 2, 2, 2, 8, id="rel15-i16k3s2p2d2"),
    pytest.param(15, 6, 3, 2, 1, 2, 2, id="rel15-floor-i6k3s2p1d2"),
    pytest.param(15, 5, 1, 1, 0, 7, 5, id="rel15-k1-dilation-irrelevant"),
]


@pytest.mark.parametrize(("rel", "i", "k", "s", "p", "d", "expected"), CONV_CASES)
def test_conv_output_length_paper(rel, i, k, s, p, d, expected):
    closed_form, applies = PAPER[rel]
    assert applies(i, k, s, p, d), "case outside the relationship's conditions"
    assert closed_form(i, k, s, p, d) == expected
    c = conv_output_length(i, k, s, p, p, d)
    check_computed(c, expected, i, k, s, p, d)


# Relationship 7: pooling, o = floor((i - k) / s) + 1 (no padding in the paper).
POOL_CASES = [
    pytest.param(5, 3, 1, 3, id="rel7-paper-fig1.5-i5k3s1"),
    pytest.param(4, 2, 2, 2, id="rel7-i4k2s2"),
    pytest.param(5, 2, 2, 2, id="rel7-floor-i5k2s2"),
    pytest.param(7, 3, 2, 3, id="rel7-overlapping-i7k3s2"),
    pytest.param(112, 3, 2, 55, id="rel7-i112k3s2"),
    pytest.param(6, 3, 3, 2, id="rel7-i6k3s3"),
    pytest.param(8, 3, 3, 2, id="rel7-floor-i8k3s3"),
    pytest.param(3, 3, 2, 1, id="rel7-window-equals-input"),
]


@pytest.mark.parametrize(("i", "k", "s", "expected"), POOL_CASES)
def test_pool_output_length_paper(i, k, s, expected):
    closed_form, applies = PAPER[7]
    assert applies(i, k, s, 0, 1)
    assert closed_form(i, k, s, 0, 1) == expected
    c = pool_output_length(i, k, s)
    check_computed(c, expected, i, k, s)
    assert c == conv_output_length(i, k, s)


# rel, i' (transposed input), k, s, p (crop at both ends), a (output_padding), expected o'
TRANSPOSED_CASES = [
    # Relationship 8: transpose of rel 1.
    pytest.param(8, 2, 3, 1, 0, 0, 4, id="rel8-paper-fig4.1-i2k3"),
    pytest.param(8, 3, 4, 1, 0, 0, 6, id="rel8-even-kernel"),
    pytest.param(8, 1, 5, 1, 0, 0, 5, id="rel8-i1k5"),
    # Relationship 9: transpose of rel 2.
    pytest.param(9, 6, 4, 1, 2, 0, 5, id="rel9-paper-fig4.2-i6k4p2"),
    pytest.param(9, 8, 4, 1, 1, 0, 9, id="rel9-i8k4p1"),
    pytest.param(9, 6, 5, 1, 1, 0, 8, id="rel9-i6k5p1"),
    # Relationship 10: transpose of half padding: o' = i'.
    pytest.param(10, 5, 3, 1, 1, 0, 5, id="rel10-paper-fig4.3-i5k3p1"),
    pytest.param(10, 6, 5, 1, 2, 0, 6, id="rel10-i6k5p2"),
    pytest.param(10, 4, 1, 1, 0, 0, 4, id="rel10-k1"),
    # Relationship 11: transpose of full padding: o' = i' - (k - 1).
    pytest.param(11, 7, 3, 1, 2, 0, 5, id="rel11-paper-fig4.4-i7k3p2"),
    pytest.param(11, 7, 4, 1, 3, 0, 4, id="rel11-even-kernel"),
    pytest.param(11, 5, 5, 1, 4, 0, 1, id="rel11-i5k5p4"),
    # Relationship 12: transpose of rel 5 when (i - k) mod s == 0.
    pytest.param(12, 2, 3, 2, 0, 0, 5, id="rel12-paper-fig4.5-i2k3s2"),
    pytest.param(12, 3, 3, 3, 0, 0, 9, id="rel12-i3k3s3"),
    pytest.param(12, 4, 2, 2, 0, 0, 8, id="rel12-i4k2s2"),
    # Relationship 13: transpose of rel 6 when (i + 2p - k) mod s == 0.
    pytest.param(13, 3, 3, 2, 1, 0, 5, id="rel13-paper-fig4.6-i3k3s2p1"),
    pytest.param(13, 3, 4, 2, 1, 0, 6, id="rel13-i3k4s2p1"),
    pytest.param(13, 4, 5, 3, 2, 0, 10, id="rel13-i4k5s3p2"),
    # Relationship 14: any (i + 2p - k) mod s = a, recovered by output_padding a.
    # (The paper's Figure 4.7: i' = 3, stretched to 5, a = 1 -> 6 = the i of Figure 2.7.)
    pytest.param(14, 3, 3, 2, 1, 1, 6, id="rel14-paper-fig4.7-i3k3s2p1a1"),
    pytest.param(14, 2, 3, 3, 0, 1, 7, id="rel14-i2k3s3a1"),
    pytest.param(14, 2, 3, 3, 0, 2, 8, id="rel14-i2k3s3a2"),
    pytest.param(14, 3, 4, 3, 1, 2, 10, id="rel14-i3k4s3p1a2"),
    pytest.param(14, 112, 3, 2, 1, 1, 224, id="rel14-i112k3s2p1a1"),
    pytest.param(14, 3, 3, 2, 1, 0, 5, id="rel14-a0-is-rel13"),
]


@pytest.mark.parametrize(("rel", "i", "k", "s", "p", "a", "expected"), TRANSPOSED_CASES)
def test_conv_transpose_output_length_paper(rel, i, k, s, p, a, expected):
    closed_form, applies = PAPER_TRANSPOSED[rel]
    assert applies(i, k, s, p, a), "case outside the relationship's conditions"
    assert closed_form(i, k, s, p, a) == expected
    c = conv_transpose_output_length(i, k, s, p, p, a)
    check_computed(c, expected, i, k, s, p, a)


# The transposed relationships exist to undo a direct convolution's shape: every
# (i, k, s, p) convolution's output maps back to i with a = (i + 2p - k) mod s.
# i, k, s, p, d, o, a
ROUND_TRIP_CASES = [
    pytest.param(4, 3, 1, 0, 1, 2, 0, id="rel1-rel8-i4k3"),
    pytest.param(5, 4, 1, 2, 1, 6, 0, id="rel2-rel9-i5k4p2"),
    pytest.param(5, 3, 1, 1, 1, 5, 0, id="rel3-rel10-i5k3p1"),
    pytest.param(5, 3, 1, 2, 1, 7, 0, id="rel4-rel11-i5k3p2"),
    pytest.param(5, 3, 2, 0, 1, 2, 0, id="rel5-rel12-i5k3s2"),
    pytest.param(5, 3, 2, 1, 1, 3, 0, id="rel6-rel13-i5k3s2p1"),
    pytest.param(6, 3, 2, 1, 1, 3, 1, id="rel6-rel14-paper-i6k3s2p1-a1"),
    pytest.param(6, 3, 2, 0, 1, 2, 1, id="rel5-rel14-i6k3s2-a1"),
    pytest.param(8, 3, 3, 0, 1, 2, 2, id="rel5-rel14-i8k3s3-a2"),
    pytest.param(10, 4, 3, 1, 1, 3, 2, id="rel6-rel14-i10k4s3p1-a2"),
    pytest.param(224, 3, 2, 1, 1, 112, 1, id="rel6-rel14-i224k3s2p1-a1"),
    pytest.param(7, 3, 1, 0, 2, 3, 0, id="rel15-i7k3d2"),
    pytest.param(16, 3, 2, 2, 2, 8, 1, id="rel15-i16k3s2p2d2-a1"),
]


@pytest.mark.parametrize(("i", "k", "s", "p", "d", "o", "a"), ROUND_TRIP_CASES)
def test_transpose_recovers_conv_input(i, k, s, p, d, o, a):
    assert (i + 2 * p - effective_kernel(k, d)) % s == a
    assert conv_output_length(i, k, s, p, p, d).value == o
    back = conv_transpose_output_length(o, k, s, p, p, a, d)
    check_computed(back, i, o, k, s, p, a)
    if a:
        # Without output_padding the transpose falls short by exactly a.
        assert conv_transpose_output_length(o, k, s, p, p, 0, d).value == i - a


# Dilation (Section 5.1): effective kernel k + (k - 1)(d - 1).
@pytest.mark.parametrize(
    ("k", "d", "expected"),
    [
        pytest.param(3, 1, 3, id="no-dilation"),
        pytest.param(3, 2, 5, id="paper-fig5.1-k3d2"),
        pytest.param(3, 3, 7, id="k3d3"),
        pytest.param(2, 4, 5, id="even-k2d4"),
        pytest.param(1, 5, 1, id="k1-any-d"),
        pytest.param(5, 2, 9, id="k5d2"),
    ],
)
def test_effective_kernel(k, d, expected):
    assert k + (k - 1) * (d - 1) == expected
    assert effective_kernel(k, d) == expected


def test_dilated_formula_shows_kernel_and_dilation():
    c = conv_output_length(7, 3, dilation=2)
    assert c.formula == "(7 + 0 + 0 - (2 * (3 - 1) + 1)) // 1 + 1 = 3"
    t = conv_transpose_output_length(3, 3, dilation=2)
    assert t.formula == "(3 - 1) * 1 + (2 * (3 - 1) + 1) - 0 - 0 + 0 = 7"


@pytest.mark.parametrize(
    ("args", "formula"),
    [
        pytest.param((4, 5), "(4 + 0 + 0 - 5) // 1 + 1 = 0", id="kernel-larger-than-input"),
        pytest.param((5, 3, 2, 1, 1), "(5 + 1 + 1 - 3) // 2 + 1 = 3", id="paper-fig2.6"),
        pytest.param((6, 3, 2, 1, 0), "(6 + 1 + 0 - 3) // 2 + 1 = 3", id="asymmetric-padding"),
    ],
)
def test_conv_formula_exact(args, formula):
    assert conv_output_length(*args).formula == formula


def test_failing_case_is_reported_not_raised():
    c = conv_output_length(4, 5)
    assert c == Computed(0, "(4 + 0 + 0 - 5) // 1 + 1 = 0")
    assert conv_output_length(2, 5, 2).value < 1


def test_computed_is_frozen():
    c = Computed(3, "x = 3")
    with pytest.raises(AttributeError):
        c.value = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pb", "pe", "expected"),
    [
        pytest.param(0, 0, 2, id="none"),
        pytest.param(1, 0, 3, id="begin-only"),
        pytest.param(0, 1, 3, id="end-only"),
        pytest.param(0, 2, 3, id="end-two"),
        pytest.param(2, 1, 4, id="uneven"),
    ],
)
def test_asymmetric_padding(pb, pe, expected):
    # i=6, k=3, s=2: asymmetric padding is what 'same' produces.
    check_computed(conv_output_length(6, 3, 2, pb, pe), expected, 6, 3, 2, pb, pe)


# --------------------------------------------------------------------------
# TensorFlow 'same' padding
# --------------------------------------------------------------------------

# i, k, s, d, TF output length, pad_begin, pad_end  (from tf.nn.conv2d, see module docstring)
TF_SAME = [
    (1, 1, 1, 1, 1, 0, 0),
    (1, 3, 1, 1, 1, 1, 1),
    (1, 4, 1, 1, 1, 1, 2),
    (2, 1, 1, 1, 2, 0, 0),
    (2, 3, 1, 1, 2, 1, 1),
    (2, 4, 1, 1, 2, 1, 2),
    (5, 1, 1, 1, 5, 0, 0),
    (5, 2, 1, 1, 5, 0, 1),
    (5, 2, 1, 2, 5, 1, 1),
    (5, 2, 1, 3, 5, 1, 2),
    (5, 3, 1, 1, 5, 1, 1),
    (5, 3, 1, 2, 5, 2, 2),
    (5, 3, 1, 3, 5, 3, 3),
    (5, 4, 1, 1, 5, 1, 2),
    (5, 5, 1, 1, 5, 2, 2),
    (6, 1, 1, 1, 6, 0, 0),
    (6, 2, 1, 1, 6, 0, 1),
    (6, 2, 1, 2, 6, 1, 1),
    (6, 2, 1, 3, 6, 1, 2),
    (6, 3, 1, 1, 6, 1, 1),
    (6, 3, 1, 2, 6, 2, 2),
    (6, 3, 1, 3, 6, 3, 3),
    (6, 4, 1, 1, 6, 1, 2),
    (6, 5, 1, 1, 6, 2, 2),
    (7, 1, 1, 1, 7, 0, 0),
    (7, 2, 1, 1, 7, 0, 1),
    (7, 3, 1, 1, 7, 1, 1),
    (7, 4, 1, 1, 7, 1, 2),
    (7, 5, 1, 1, 7, 2, 2),
    (8, 1, 1, 1, 8, 0, 0),
    (8, 2, 1, 1, 8, 0, 1),
    (8, 3, 1, 1, 8, 1, 1),
    (8, 4, 1, 1, 8, 1, 2),
    (8, 5, 1, 1, 8, 2, 2),
    (1, 1, 2, 1, 1, 0, 0),
    (1, 3, 2, 1, 1, 1, 1),
    (1, 4, 2, 1, 1, 1, 2),
    (2, 1, 2, 1, 1, 0, 0),
    (2, 3, 2, 1, 1, 0, 1),
    (2, 4, 2, 1, 1, 1, 1),
    (5, 1, 2, 1, 3, 0, 0),
    (5, 2, 2, 1, 3, 0, 1),
    (5, 2, 2, 2, 3, 1, 1),
    (5, 2, 2, 3, 3, 1, 2),
    (5, 3, 2, 1, 3, 1, 1),
    (5, 3, 2, 2, 3, 2, 2),
    (5, 3, 2, 3, 3, 3, 3),
    (5, 4, 2, 1, 3, 1, 2),
    (5, 5, 2, 1, 3, 2, 2),
    (6, 1, 2, 1, 3, 0, 0),
    (6, 2, 2, 1, 3, 0, 0),
    (6, 2, 2, 2, 3, 0, 1),
    (6, 2, 2, 3, 3, 1, 1),
    (6, 3, 2, 1, 3, 0, 1),
    (6, 3, 2, 2, 3, 1, 2),
    (6, 3, 2, 3, 3, 2, 3),
    (6, 4, 2, 1, 3, 1, 1),
    (6, 5, 2, 1, 3, 1, 2),
    (7, 1, 2, 1, 4, 0, 0),
    (7, 2, 2, 1, 4, 0, 1),
    (7, 3, 2, 1, 4, 1, 1),
    (7, 4, 2, 1, 4, 1, 2),
    (7, 5, 2, 1, 4, 2, 2),
    (8, 1, 2, 1, 4, 0, 0),
    (8, 2, 2, 1, 4, 0, 0),
    (8, 3, 2, 1, 4, 0, 1),
    (8, 4, 2, 1, 4, 1, 1),
    (8, 5, 2, 1, 4, 1, 2),
    (1, 1, 3, 1, 1, 0, 0),
    (1, 3, 3, 1, 1, 1, 1),
    (1, 4, 3, 1, 1, 1, 2),
    (2, 1, 3, 1, 1, 0, 0),
    (2, 3, 3, 1, 1, 0, 1),
    (2, 4, 3, 1, 1, 1, 1),
    (5, 1, 3, 1, 2, 0, 0),
    (5, 2, 3, 1, 2, 0, 0),
    (5, 3, 3, 1, 2, 0, 1),
    (5, 4, 3, 1, 2, 1, 1),
    (5, 5, 3, 1, 2, 1, 2),
    (6, 1, 3, 1, 2, 0, 0),
    (6, 2, 3, 1, 2, 0, 0),
    (6, 3, 3, 1, 2, 0, 0),
    (6, 4, 3, 1, 2, 0, 1),
    (6, 5, 3, 1, 2, 1, 1),
    (7, 1, 3, 1, 3, 0, 0),
    (7, 2, 3, 1, 3, 0, 1),
    (7, 3, 3, 1, 3, 1, 1),
    (7, 4, 3, 1, 3, 1, 2),
    (7, 5, 3, 1, 3, 2, 2),
    (8, 1, 3, 1, 3, 0, 0),
    (8, 2, 3, 1, 3, 0, 0),
    (8, 3, 3, 1, 3, 0, 1),
    (8, 4, 3, 1, 3, 1, 1),
    (8, 5, 3, 1, 3, 1, 2),
]


@pytest.mark.parametrize(
    ("i", "k", "s", "d", "o", "pb", "pe"),
    [pytest.param(*row, id="i{}-k{}-s{}-d{}".format(*row[:4])) for row in TF_SAME],
)
def test_same_padding_matches_tensorflow(i, k, s, d, o, pb, pe):
    assert o == math.ceil(i / s)
    assert same_padding(i, k, s, d) == (pb, pe)
    # The padding reproduces TensorFlow's output length through the general rule.
    check_computed(conv_output_length(i, k, s, pb, pe, d), o, i, k, s, pb, pe)


def test_same_padding_clamps_at_zero():
    # Stride larger than the kernel: TensorFlow pads nothing (rather than negatively).
    assert same_padding(6, 1, 3) == (0, 0)
    assert same_padding(6, 2, 3) == (0, 0)
    assert same_padding(5, 1, 2) == (0, 0)


# --------------------------------------------------------------------------
# Pooling with ceil_mode (PyTorch rule)
# --------------------------------------------------------------------------

# i, k, s, p, d, floor-mode o, ceil-mode o, whether PyTorch dropped a last window
# that would start in the padding (ceil-mode o < ceil((i+2p-k_eff)/s) + 1).
# From torch.nn.functional.max_pool1d; floor 0 means PyTorch rejects floor mode.
TORCH_POOL = [
    (1, 2, 2, 1, 1, 1, 1, True),
    (1, 2, 3, 1, 1, 1, 1, True),
    (1, 4, 3, 2, 1, 1, 1, True),
    (2, 2, 3, 1, 1, 1, 1, True),
    (2, 3, 3, 1, 1, 1, 1, True),
    (3, 2, 2, 1, 1, 2, 2, True),
    (3, 2, 3, 0, 1, 1, 1, True),
    (4, 2, 3, 1, 1, 2, 2, True),
    (4, 4, 3, 2, 1, 2, 2, True),
    (5, 2, 2, 0, 1, 2, 3, False),
    (5, 2, 2, 1, 1, 3, 3, True),
    (5, 2, 3, 0, 1, 2, 2, False),
    (5, 2, 3, 1, 1, 2, 2, True),
    (5, 3, 2, 0, 1, 2, 2, False),
    (5, 3, 2, 1, 1, 3, 3, False),
    (5, 3, 3, 0, 1, 1, 2, False),
    (5, 3, 3, 1, 1, 2, 2, True),
    (6, 2, 2, 0, 1, 3, 3, False),
    (6, 2, 2, 1, 1, 4, 4, False),
    (6, 2, 3, 0, 1, 2, 2, True),
    (6, 2, 3, 1, 1, 3, 3, False),
    (6, 3, 2, 0, 1, 2, 3, False),
    (6, 3, 2, 1, 1, 3, 4, False),
    (6, 3, 3, 0, 1, 2, 2, False),
    (6, 3, 3, 1, 1, 2, 3, False),
    (7, 2, 2, 0, 1, 3, 4, False),
    (7, 2, 2, 1, 1, 4, 4, True),
    (7, 2, 3, 0, 1, 2, 3, False),
    (7, 2, 3, 1, 1, 3, 3, True),
    (7, 3, 2, 0, 1, 3, 3, False),
    (7, 3, 2, 1, 1, 4, 4, False),
    (7, 3, 2, 0, 2, 2, 2, False),
    (7, 3, 2, 1, 2, 3, 3, False),
    (7, 3, 3, 0, 1, 2, 3, False),
    (7, 3, 3, 1, 1, 3, 3, False),
    (7, 4, 3, 2, 1, 3, 3, True),
    (8, 2, 2, 0, 1, 4, 4, False),
    (8, 2, 2, 1, 1, 5, 5, False),
    (8, 2, 3, 0, 1, 3, 3, False),
    (8, 2, 3, 1, 1, 3, 3, True),
    (8, 3, 2, 0, 1, 3, 4, False),
    (8, 3, 2, 1, 1, 4, 5, False),
    (8, 3, 2, 0, 2, 2, 3, False),
    (8, 3, 2, 1, 2, 3, 4, False),
    (8, 3, 3, 0, 1, 2, 3, False),
    (8, 3, 3, 1, 1, 3, 3, True),
    (9, 3, 2, 0, 2, 3, 3, False),
    (9, 3, 2, 1, 2, 4, 4, False),
    (10, 3, 2, 0, 2, 3, 4, False),
    (10, 3, 2, 1, 2, 4, 5, False),
]


def _pool_id(row):
    i, k, s, p, d, floor_o, ceil_o, dropped = row
    tag = "-dropped" if dropped else ("-ceil-adds" if ceil_o > floor_o else "")
    return f"i{i}-k{k}-s{s}-p{p}-d{d}{tag}"


@pytest.mark.parametrize(
    ("i", "k", "s", "p", "d", "floor_o", "ceil_o", "dropped"),
    [pytest.param(*row, id=_pool_id(row)) for row in TORCH_POOL],
)
def test_pool_ceil_mode_matches_pytorch(i, k, s, p, d, floor_o, ceil_o, dropped):
    c = pool_output_length(i, k, s, p, p, d, ceil_mode=True)
    check_computed(c, ceil_o, i, k, s, p)
    assert c.formula.startswith("ceil(")
    assert ("last window starts in the padding" in c.formula) == dropped
    f = pool_output_length(i, k, s, p, p, d, ceil_mode=False)
    if floor_o:
        check_computed(f, floor_o, i, k, s, p)
    else:
        assert f.value < 1
    assert f == conv_output_length(i, k, s, p, p, d)


def test_pool_ceil_mode_drop_example():
    # i=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but window 4 would start at
    # padded index 6, past the input (indices 1..5), so PyTorch gives 3.
    c = pool_output_length(5, 2, 2, 1, 1, ceil_mode=True)
    assert c == Computed(3, "ceil((5 + 1 + 1 - 2) / 2) + 1 - 1 (last window starts in the padding) = 3")


# --------------------------------------------------------------------------
# Keras 'same' transposed convolution
# --------------------------------------------------------------------------

# k, s, d, crop_begin, crop_end, output_padding  (Keras Conv2DTranspose(padding='same');
# dilation > 1 only with stride 1, the only combination Keras accepts)
KERAS_TRANSPOSE_SAME = [
    (1, 1, 1, 0, 0, 0),
    (1, 2, 1, 0, 0, 1),
    (1, 3, 1, 0, 0, 2),
    (2, 1, 1, 0, 1, 0),
    (2, 2, 1, 0, 0, 0),
    (2, 3, 1, 0, 0, 1),
    (3, 1, 1, 1, 1, 0),
    (3, 2, 1, 0, 1, 0),
    (3, 3, 1, 0, 0, 0),
    (4, 1, 1, 1, 2, 0),
    (4, 2, 1, 1, 1, 0),
    (4, 3, 1, 0, 1, 0),
    (5, 1, 1, 2, 2, 0),
    (5, 2, 1, 1, 2, 0),
    (5, 3, 1, 1, 1, 0),
    (1, 1, 2, 0, 0, 0),
    (2, 1, 2, 1, 1, 0),
    (3, 1, 2, 2, 2, 0),
    (4, 1, 2, 3, 3, 0),
    (5, 1, 2, 4, 4, 0),
    (1, 1, 3, 0, 0, 0),
    (2, 1, 3, 1, 2, 0),
    (3, 1, 3, 3, 3, 0),
    (4, 1, 3, 4, 5, 0),
    (5, 1, 3, 6, 6, 0),
]


@pytest.mark.parametrize(
    ("k", "s", "d", "cb", "ce", "op"),
    [pytest.param(*row, id="k{}-s{}-d{}".format(*row[:3])) for row in KERAS_TRANSPOSE_SAME],
)
def test_transpose_same_matches_keras(k, s, d, cb, ce, op):
    assert transpose_same_cropping(k, s, d) == (cb, ce, op)
    for i in range(1, 6):
        c = conv_transpose_output_length(i, k, s, cb, ce, op, d)
        check_computed(c, i * s, i, s, cb, ce, op)
    if effective_kernel(k, d) >= s:
        # The transpose of a 'same' convolution from i*s down to i: same crops.
        assert (cb, ce) == same_padding(4 * s, k, s, d)


# --------------------------------------------------------------------------
# Upsampling
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("i", "scale", "expected"),
    [pytest.param(4, 2, 8, id="x2"), pytest.param(7, 3, 21, id="x3"), pytest.param(5, 1, 5, id="x1")],
)
def test_upsample_output_length(i, scale, expected):
    c = upsample_output_length(i, scale)
    assert c == Computed(expected, f"{i} * {scale} = {expected}")


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

sizes = st.integers(1, 40)
kernels = st.integers(1, 7)
strides = st.integers(1, 5)
pads = st.integers(0, 6)
dilations = st.integers(1, 4)


def count_windows(i, k, s, pb, pe, d):
    """Window start positions in the padded input where the dilated kernel fits."""
    length = i + pb + pe
    k_eff = d * (k - 1) + 1
    return sum(1 for start in range(0, length, s) if start + k_eff <= length)


@given(sizes, kernels, strides, pads, pads, dilations)
def test_conv_output_counts_window_positions(i, k, s, pb, pe, d):
    c = conv_output_length(i, k, s, pb, pe, d)
    n = count_windows(i, k, s, pb, pe, d)
    if n:
        assert c.value == n
    else:
        assert c.value <= 0
    assert c.formula.endswith(f"= {c.value}")


@given(sizes, kernels, strides, pads, dilations)
def test_transpose_with_output_padding_inverts_conv(i, k, s, p, d):
    o = conv_output_length(i, k, s, p, p, d).value
    if o < 1:
        return
    a = (i + 2 * p - effective_kernel(k, d)) % s
    assert conv_transpose_output_length(o, k, s, p, p, a, d).value == i


def count_ceil_windows(i, k, s, pb, pe, d):
    """PyTorch ceil mode: add windows until the padded input is covered, but
    never one that starts past the input and the begin padding.

    Only meaningful for end padding shorter than the (dilated) window, which
    PyTorch enforces (padding <= kernel_size / 2): otherwise even floor mode
    has windows lying wholly in the padding.
    """
    length = i + pb + pe
    k_eff = d * (k - 1) + 1
    n, start = 1, 0
    while start + k_eff < length and start + s < i + pb:
        n, start = n + 1, start + s
    return n


@given(sizes, kernels, strides, pads, pads, dilations)
def test_pool_ceil_mode_counts_windows(i, k, s, pb, pe, d):
    assume(i + pb + pe >= effective_kernel(k, d))
    assume(pb < effective_kernel(k, d) and pe < effective_kernel(k, d))
    ceil_o = pool_output_length(i, k, s, pb, pe, d, ceil_mode=True).value
    floor_o = pool_output_length(i, k, s, pb, pe, d).value
    assert ceil_o == count_ceil_windows(i, k, s, pb, pe, d)
    assert floor_o <= ceil_o <= floor_o + 1


@given(sizes, kernels, strides, dilations)
def test_same_padding_gives_ceil_output(i, k, s, d):
    pb, pe = same_padding(i, k, s, d)
    assert 0 <= pb <= pe <= pb + 1
    assert conv_output_length(i, k, s, pb, pe, d).value == -(-i // s)


@given(sizes, kernels, strides, dilations)
def test_transpose_same_gives_i_times_s(i, k, s, d):
    cb, ce, op = transpose_same_cropping(k, s, d)
    assert min(cb, ce, op) >= 0 and cb <= ce
    assert conv_transpose_output_length(i, k, s, cb, ce, op, d).value == i * s
