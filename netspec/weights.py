"""Canonical weights: framework-neutral numpy arrays keyed ``<layer>.<param>``.

The layout of each parameter is the one its op declares (see docs/weights.md):
dense ``kernel [units, in]``; convolution ``kernel [out, in / groups, *window]``;
transposed convolution ``kernel [in, out / groups, *window]``; recurrent
``kernel [gates * units, features]`` with gates in PyTorch's order. Every backend
loads and exports this form. numpy is needed here (a backend extra), not by the
core checker.
"""

from __future__ import annotations

import hashlib
from math import prod, sqrt
from pathlib import Path
from typing import TYPE_CHECKING

from .ops.registry import FAMILIES

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from . import ir

Weights = dict[str, "np.ndarray"]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a canonical weight: dim 0 is outputs, dim 1 inputs, the rest the window."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _rng(seed: int, name: str):
    import numpy as np

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))


def _truncated_normal(rng, std: float, shape) -> np.ndarray:
    """Normal truncated at two standard deviations, rescaled so the variance is ``std**2``."""
    import numpy as np

    scale = std / 0.87962566103423978
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * scale


def draw(init: dict, shape: tuple[int, ...], rng) -> np.ndarray:
    """Draw one tensor from an initialiser description (the IR's ``Param.init``)."""
    import numpy as np

    name = init["name"]
    fan_in, fan_out = fans(shape)
    if name == "zeros":
        out = np.zeros(shape)
    elif name == "ones":
        out = np.ones(shape)
    elif name == "constant":
        out = np.full(shape, init["value"])
    elif name == "normal":
        out = rng.normal(init["mean"], init["std"], shape)
    elif name == "uniform":
        out = rng.uniform(init["a"], init["b"], shape)
    elif (member := FAMILIES["initializer"].get(name)) is not None and member.variance is not None:
        var = member.variance(fan_in, fan_out)  # the registry's rule (netspec/ops/functions.py)
        if member.distribution == "uniform":  # U(-l, l) has variance l ** 2 / 3
            out = rng.uniform(-sqrt(3 * var), sqrt(3 * var), shape)
        else:
            out = _truncated_normal(rng, sqrt(var), shape)
    elif name == "orthogonal":
        rows = shape[0] if shape else 1
        cols = prod(shape[1:]) if len(shape) > 1 else 1
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        out = init.get("gain", 1.0) * q.reshape(shape)
    else:  # pragma: no cover - the registry lists every initialiser
        raise ValueError(f"unknown initializer {name}")
    if init.get("unit_forget_bias") and len(shape) == 1:
        units = shape[0] // 4
        out = out.copy()
        out[units:2 * units] = 1.0
    return out.astype(np.float32)


def init_weights(spec, seed: int = 0, network: str | None = None) -> Weights:
    """Deterministic canonical weights drawn from the spec's initialisers.

    ``spec`` is a :class:`netspec.Spec`, an :class:`ir.Program` or an
    :class:`ir.Network`. Each tensor's stream depends only on the seed and its
    canonical name, so adding a layer does not change the others' weights.
    """
    from .limits import preflight

    net = _network(spec, network)
    preflight(net, "init_weights")  # refuse, before drawing, what the machine should not allocate
    import numpy as np

    out: Weights = {}
    for layer, params in net.layers().items():
        for p in params:
            key = f"{layer}.{p.name}"
            with np.errstate(over="ignore", invalid="ignore"):
                out[key] = draw(p.init, p.shape, _rng(seed, key))
            if not np.isfinite(out[key]).all():
                from .diagnostics import Diagnostic, SpecError
                from .ops.base import CallValue

                init = p.init
                text = str(CallValue(init["name"], (), tuple((k, v) for k, v in init.items() if k != "name")))
                node = next(n for n in net.nodes if n.layer == layer)
                raise SpecError([Diagnostic(
                    "E304", f"initializer {text} of '{key}' draws values beyond float32's range "
                    f"(+-{float(np.finfo(np.float32).max):.4g})", node.span,
                    ("weights are float32; choose a smaller scale",))])
    return out


def _network(spec, name: str | None) -> ir.Network:
    from . import ir, ir_plain

    if isinstance(spec, (ir.Network, ir_plain.Network)):
        return spec
    program = spec if isinstance(spec, (ir.Program, ir_plain.Program)) else spec.program
    return program.network(name)


def expected_shapes(spec, network: str | None = None) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape for every weight of a network."""
    net = _network(spec, network)
    return {f"{layer}.{p.name}": p.shape for layer, params in net.layers().items() for p in params}


def save_weights(weights: Weights, path: str | Path) -> None:
    """Write canonical weights as safetensors (atomically)."""
    import numpy as np
    from safetensors.numpy import save

    from .files import write_atomic

    tensors = {k: np.ascontiguousarray(v) for k, v in sorted(weights.items())}
    write_atomic(path, save(tensors, metadata={"format": "netspec-canonical"}))


def load_weights(path: str | Path) -> Weights:
    """Read canonical weights from a safetensors file."""
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def check_weights(weights: Weights, spec, network: str | None = None) -> None:
    """Raise ValueError naming every missing, unexpected or misshapen tensor."""
    want = expected_shapes(spec, network)
    problems = []
    for key, shape in want.items():
        if key not in weights:
            problems.append(f"missing {key} {list(shape)}")
        elif tuple(weights[key].shape) != shape:
            problems.append(f"{key}: expected shape {list(shape)}, received {list(weights[key].shape)}")
    for key in sorted(set(weights) - set(want)):
        problems.append(f"unexpected {key}")
    if problems:
        raise ValueError("weights do not fit the spec: " + "; ".join(problems))


# The one weights boundary ------------------------------------------------------------------------------


def _weights_error(network, problems: list[str]):
    from .diagnostics import Diagnostic, SpecError

    shown = problems[:20] + ([f"and {len(problems) - 20} more"] if len(problems) > 20 else [])
    return SpecError([Diagnostic("E602", "weights do not fit the spec: " + "; ".join(shown)
                                 + f" (network '{network.name}')", network.span,
                                 ("canonical weights map '<layer>.<param>' names to finite float32 arrays; "
                                  "see docs/weights.md",))])


def _as_array(value):
    """A numpy array from an array (numpy, or a framework tensor), else None; no Python lists or scalars."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (str, bytes, bool, int, float, complex, list, tuple, dict)) or value is None:
        return None
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
            return value.detach().cpu().numpy()  # (bfloat16 has no numpy dtype: a TypeError, refused below)
        if hasattr(value, "__array__"):  # TensorFlow/JAX tensors, numpy scalars
            return np.asarray(value)
    except Exception:  # noqa: BLE001 - an array-like that numpy cannot take is a bad value, reported as such
        return None
    return None


def _float32(key: str, a, problems: list[str]):
    """``a`` as float32 when that is exact and every value is finite; else a problem is recorded."""
    import numpy as np

    if a.dtype == np.float32:
        out = a
    elif a.dtype in (np.float16, np.float64) or a.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            out = a.astype(np.float32)
            inexact = ~((out.astype(a.dtype) == a) | np.isnan(a))
        if inexact.any():
            problems.append(f"{key}: {a.dtype} values that float32 cannot hold exactly "
                            f"({int(inexact.sum())} of {a.size}); cast them with .astype(numpy.float32) "
                            "if the rounding is meant")
            return None
    else:
        what = {"i": "integer", "u": "unsigned integer", "b": "bool", "c": "complex", "U": "string",
                "S": "bytes", "O": "object"}.get(a.dtype.kind, str(a.dtype))
        problems.append(f"{key}: expected a float32 array; received {what}"
                        + (f" ({a.dtype})" if what != str(a.dtype) else ""))
        return None
    bad = ~np.isfinite(out)
    if bad.any():
        nan = int(np.isnan(out).sum())
        problems.append(f"{key}: {nan} NaN and {int(bad.sum()) - nan} infinite values; weights must be finite")
        return None
    return np.ascontiguousarray(out)


def prepare_weights(weights, spec, network: str | None = None) -> Weights:
    """The one weights boundary: check canonical weights once, the same way for every backend.

    ``weights`` is a mapping ``"<layer>.<param>" -> array`` (numpy, or a
    framework tensor) or the path of a safetensors file. Every array must be
    floating point, convertible to float32 exactly (float32, float16, or float64
    whose values float32 holds), finite, and of its parameter's shape; no name
    may be missing or extra. Anything else raises :class:`SpecError` E602 naming
    every problem at once. Returns C-contiguous float32 arrays. ``to_torch``,
    ``to_keras``, ``to_onnx``, ``export --weights`` and ``verify`` all pass
    through here, so one bad input gets one error everywhere.
    """
    import os

    net = _network(spec, network)
    if isinstance(weights, (str, os.PathLike)):
        try:
            weights = load_weights(weights)
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
            raise _weights_error(net, [f"cannot read weights '{os.fspath(weights)}': "
                                       f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"]) \
                from None
    from collections.abc import Mapping

    if not isinstance(weights, Mapping):
        raise _weights_error(net, [f"expected a mapping of canonical names to arrays, or the path of a "
                                   f"safetensors file; received {type(weights).__name__}"])
    want = expected_shapes(net)
    problems: list[str] = []
    out: Weights = {}
    for key, shape in want.items():
        if key not in weights:
            problems.append(f"missing {key} {list(shape)}")
            continue
        a = _as_array(weights[key])
        if a is None:
            dtype = getattr(weights[key], "dtype", None)
            problems.append(f"{key}: expected an array; received {type(weights[key]).__name__}"
                            + (f" of dtype {str(dtype)[:40]}, which numpy cannot hold" if dtype is not None else ""))
        elif tuple(a.shape) != shape:
            problems.append(f"{key}: expected shape {list(shape)}, received {list(a.shape)}")
        else:
            a = _float32(key, a, problems)
            if a is not None:
                out[key] = a
    for key in sorted(weights, key=str):
        if not isinstance(key, str):
            problems.append(f"unexpected key {type(key).__name__} {str(key)[:40]!r} (names are strings)")
        elif key not in want:
            problems.append(f"unexpected {key[:200]}")
    if problems:
        raise _weights_error(net, problems)
    return out
