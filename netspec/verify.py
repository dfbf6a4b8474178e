"""Cross-backend verification: one canonical checkpoint, the same inputs, every backend.

Tolerance (documented in docs/verify.md): an output passes when, element by
element, ``|x - ref| <= atol * max(1, max|ref|) + rtol * |ref|`` with defaults
``atol = 1e-5`` and ``rtol = 0``: float32 absolute error, scaled by the output's
magnitude when it exceeds 1. That is ten times stricter than the 1e-4 absolute
that converter projects (nobuco, onnx2tf) accept. Maximum absolute and relative
errors are reported either way.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from . import ir

BACKENDS = ("torch", "keras", "onnx")
_MODULES = {"torch": ("torch",), "keras": ("tensorflow", "keras"), "onnx": ("onnx", "onnxruntime")}
ATOL, RTOL = 1e-5, 0.0


def available(backend: str) -> bool:
    """Whether a backend's framework is installed (checked without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in _MODULES[backend])


def make_inputs(network: ir.Network, batch: int = 2, seed: int = 0) -> dict:
    """Random inputs per dtype, channels-first: floats N(0, 1); integer ids below every consuming vocab."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for value in network.inputs:
        shape = (batch, *(d if isinstance(d, int) else 5 for d in value.type.shape))
        if value.type.is_integer:
            vocabs = [n.attrs["vocab"] for n in network.nodes if n.op == "embedding" and value.name in n.inputs]
            high = min(vocabs) if vocabs else 10
            out[value.name] = rng.integers(0, high, size=shape).astype(value.type.dtype)
        else:
            out[value.name] = rng.standard_normal(shape).astype(value.type.dtype)
    return out


def run_backend(backend: str, network: ir.Network, weights, inputs: dict) -> list:
    """Outputs (numpy, channels-first, in output order) of one backend."""
    import numpy as np

    if backend == "torch":
        import torch

        from .backends import torch as tb

        module = tb.build(network, weights)
        module.eval()
        with torch.no_grad():
            result = module(*(torch.from_numpy(np.ascontiguousarray(inputs[v.name])) for v in network.inputs))
        result = result if isinstance(result, (tuple, list)) else (result,)
        return [r.detach().numpy() for r in result]
    if backend == "keras":
        import keras

        from .backends import keras as kb

        model = kb.build(network, weights)
        feeds = [kb.to_model_layout(network, v.name, inputs[v.name]) for v in network.inputs]
        result = model(feeds if len(feeds) > 1 else feeds[0], training=False)
        result = result if isinstance(result, (tuple, list)) else (result,)
        return [kb.from_model_layout(network, name, keras.ops.convert_to_numpy(r))
                for name, r in zip(network.outputs, result)]
    if backend == "onnx":
        import onnxruntime as ort

        from .backends import onnx as ob

        model = ob.export(network, weights)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, {v.name: inputs[v.name] for v in network.inputs})
    raise ValueError(f"unknown backend {backend}")


@dataclass(frozen=True)
class Comparison:
    output: str
    backend: str
    reference: str
    max_abs: float
    max_rel: float
    scale: float
    passed: bool


@dataclass
class VerifyResult:
    network: str
    backends: list[str]
    missing: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    atol: float = ATOL
    rtol: float = RTOL
    batch: int = 2
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons) and not self.missing

    def to_json(self) -> dict:
        return {"network": self.network, "backends": self.backends, "missing": self.missing,
                "atol": self.atol, "rtol": self.rtol, "batch": self.batch, "passed": self.passed,
                "notes": self.notes,
                "comparisons": [c.__dict__ for c in self.comparisons]}

    def render(self) -> str:
        lines = [f"network {self.network}: backends {', '.join(self.backends) or 'none'}"
                 f"; batch {self.batch}; atol {self.atol:g} (x max(1, |ref|)), rtol {self.rtol:g}"]
        lines += [f"  note: {n}" for n in self.notes]
        for m in self.missing:
            lines.append(f"  {m}: NOT RUN (framework not installed) - counts as a failure")
        header = ("output", "backends", "max abs err", "max rel err", "result")
        rows = [(c.output, f"{c.backend} vs {c.reference}", f"{c.max_abs:.3e}", f"{c.max_rel:.3e}",
                 "pass" if c.passed else "FAIL") for c in self.comparisons]
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        fmt = "  " + "  ".join(f"{{:{w}}}" for w in widths)
        lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        lines.append(f"  {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def compare(actual, reference, atol: float = ATOL, rtol: float = RTOL) -> tuple[float, float, float, bool]:
    """(max abs error, max rel error, scale, passed) of two arrays."""
    import numpy as np

    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return float("inf"), float("inf"), 1.0, False
    if a.size == 0:
        return 0.0, 0.0, 1.0, True
    err = np.abs(a - r)
    scale = max(1.0, float(np.abs(r).max()))
    rel = err / np.maximum(np.abs(r), np.finfo(np.float32).tiny)
    passed = bool(np.all(err <= atol * scale + rtol * np.abs(r))) and bool(np.all(np.isfinite(a)))
    return float(err.max()), float(rel.max()), scale, passed


def verify(network: ir.Network, backends=BACKENDS, weights=None, seed: int = 0, batch: int = 2,
           atol: float = ATOL, rtol: float = RTOL) -> VerifyResult:
    """Build ``network`` in each backend from one checkpoint, run the same inputs, compare outputs.

    The first available backend in ``backends`` is the reference. Missing
    frameworks are reported and make the result fail; they never pass silently.
    """
    from .weights import init_weights

    weights = init_weights(network, seed) if weights is None else weights
    present = [b for b in backends if available(b)]
    result = VerifyResult(network.name, present, [b for b in backends if b not in present], atol=atol,
                          rtol=rtol, batch=batch)
    if "keras" in present:
        result.notes.append("keras runs channels-last: inputs are transposed in and outputs back")
    inputs = make_inputs(network, batch, seed)
    outputs = {b: run_backend(b, network, weights, inputs) for b in present}
    if len(present) < 2:
        result.notes.append("fewer than two backends: nothing to compare")
        return result
    ref = present[0]
    for b in present[1:]:
        for name, got, want in zip(network.output_names, outputs[b], outputs[ref]):
            max_abs, max_rel, scale, passed = compare(got, want, atol, rtol)
            result.comparisons.append(Comparison(name, b, ref, max_abs, max_rel, scale, passed))
    return result
