"""Cross-backend verification: one canonical checkpoint, the same inputs, every backend.

Inference (:func:`verify`) compares outputs; training (:func:`verify_training`, ``verify --train``)
runs K optimisation steps in PyTorch and Keras on the same batches and compares the loss and every
canonical tensor after each step; :func:`fresh_weights` and :func:`init_problems` check that freshly
built models draw the spec's initialisers.

Tolerance (documented in docs/verify.md): an output passes when, element by
element, ``|x - ref| <= atol * max(1, max|ref|) + rtol * |ref|`` with defaults
``atol = 1e-5`` and ``rtol = 0``: float32 absolute error, scaled by the output's
magnitude when it exceeds 1. That is ten times stricter than the 1e-4 absolute
that converter projects (nobuco, onnx2tf) accept. Maximum absolute and relative
errors are reported either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import backends as _backends
from . import ir
from .ops.registry import FAMILIES, LOSS_FNS

BACKENDS = _backends.BACKENDS
ATOL, RTOL = 1e-5, 0.0


def available(backend: str) -> bool:
    """Whether a backend's framework is installed (checked without importing it)."""
    return _backends.available(backend)


def make_inputs(network: ir.Network, batch: int = 2, seed: int = 0) -> dict:
    """Random inputs per dtype, channels-first: floats N(0, 1); integer ids below every consuming vocab."""
    import numpy as np

    return _draw_inputs(network, batch, np.random.default_rng(seed))


def _draw_inputs(network: ir.Network, batch: int, rng) -> dict:
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
    """Outputs (numpy, channels-first, in output order) of one backend, through the backend contract."""
    b = _backends.get(backend)
    return b.run(b.build(network, weights), inputs)


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
    from .limits import preflight
    from .weights import init_weights, prepare_weights

    present = [b for b in backends if available(b)]
    preflight(network, "verify", present, batch)  # refuse what the machine should not allocate, first
    weights = init_weights(network, seed) if weights is None else prepare_weights(weights, network)
    result = VerifyResult(network.name, present, [b for b in backends if b not in present], atol=atol,
                          rtol=rtol, batch=batch)
    result.notes += [n for b in present if (n := _backends.get(b).run_note)]
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


# Training ----------------------------------------------------------------------------------------------
#
# ``verify_training`` runs K optimisation steps in PyTorch and Keras from one canonical checkpoint on one
# fixed, seeded batch sequence, and compares, after every step, the loss and every canonical tensor
# (trainable weights and BatchNorm moving statistics). docs/verify.md describes it.

TRAIN_BACKENDS = _backends.TRAINERS
TRAIN_STEPS = 5
TRAIN_BATCH = 4


def without_dropout(network: ir.Network) -> ir.Network:
    """The same network with every dropout rate set to 0 (dropout is then the identity in training too),
    attention's dropout on its probabilities included.

    Training comparisons use it: dropout masks come from each framework's random stream, so they cannot
    agree; with rate 0 both generated models run the very same code path otherwise.
    """
    nodes = tuple(n.model_copy(update={"attrs": {**n.attrs, **_NO_NOISE[n.op]}}) if n.op in _NO_NOISE else n
                  for n in network.nodes)
    return network.model_copy(update={"nodes": nodes})


#: random ops and the attributes that make them draw nothing in training (docs/language.md, "Random ops"):
#: gaussian_noise and sample_normal are then the identity and the mean, as at inference
_NO_NOISE = {"dropout": {"rate": 0.0}, "attention": {"dropout": 0.0}, "gaussian_noise": {"stddev": 0.0},
             "sample_normal": {"scale": 0.0}}


def _target_kind(network: ir.Network, value: str) -> tuple[str, ir.LossTerm | None]:
    """How to draw a loss target: after the first loss term that compares a prediction with it."""
    for term in network.loss:
        if LOSS_FNS[term.fn].kind == "pair" and term.args[1] == value:
            return LOSS_FNS[term.fn].target, term
    return "real", None


def make_targets(network: ir.Network, batch: int, rng) -> dict:
    """One batch of targets, channels-first, drawn to suit the loss that reads each one.

    ``sparse_categorical_crossentropy``: class ids uniform in ``[0, classes)``; ``categorical_crossentropy``
    and ``kl_divergence``: a softmax of N(0, 1) draws along the class axis (positive, summing to 1);
    ``binary_crossentropy``: U(0, 1) (integer targets: 0 or 1); ``hinge``: -1 or 1; otherwise N(0, 1)
    (integer targets: 0 or 1). Run-time dimensions are 5, as for inputs.
    """
    import numpy as np

    out = {}
    for value in network.targets:
        t = value.type
        shape = (batch, *(d if isinstance(d, int) else 5 for d in t.shape))
        kind, term = _target_kind(network, value.name)
        if kind == "ids":
            pred = network.type_of(term.args[0])
            classes = pred.shape[term.attrs.get("axis", -1)]
            classes = classes if isinstance(classes, int) else 5
            arr = rng.integers(0, classes, size=shape)
        elif kind == "distribution" and not t.is_integer:
            axis = term.attrs.get("axis", -1) if term.fn == "categorical_crossentropy" else -1
            axis = axis + 1 if axis >= 0 else axis
            z = rng.standard_normal(shape)
            e = np.exp(z - z.max(axis=axis, keepdims=True))
            arr = e / e.sum(axis=axis, keepdims=True)
        elif kind == "sign":
            arr = rng.integers(0, 2, size=shape) * 2 - 1
        elif t.is_integer:
            arr = rng.integers(0, 2, size=shape)
        elif kind == "probability":
            arr = rng.uniform(0.0, 1.0, size=shape)
        else:
            arr = rng.standard_normal(shape)
        out[value.name] = arr.astype(t.dtype)
    return out


def make_batches(network: ir.Network, steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH, seed: int = 0) -> list:
    """``steps`` batches ``(inputs, targets)`` (dicts of channels-first arrays) from one seeded stream."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(_draw_inputs(network, batch, rng), make_targets(network, batch, rng)) for _ in range(steps)]


def _as_dtype(arrays: dict, dtype: str) -> dict:
    """Float arrays cast to ``dtype``; integer arrays unchanged."""
    return {k: a.astype(dtype) if a.dtype.kind == "f" else a for k, a in arrays.items()}


def train_backend(backend: str, network: ir.Network, weights, batches, dtype: str = "float32",
                  eager: bool = False) -> tuple[list[float], list[dict]]:
    """Train one backend's generated model on ``batches`` from ``weights``.

    Returns the loss of every step (regularisation included, computed before that step's update) and the
    canonical weights after every step. PyTorch runs the generated ``make_optimizer`` and ``train_step``;
    Keras the generated compiled model's ``train_on_batch`` (its metrics reset before each step, so
    the logged loss is that step's). ``dtype="float64"`` runs both in double precision (the PyTorch
    module converted with ``.double()``, Keras built under ``floatx`` float64), which separates their
    meaning from float32 rounding. ``eager=True`` runs Keras's step eagerly (``run_eagerly``), which
    skips tracing (seconds per model) and computes the same; the default is ``fit``'s graph mode.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64; received {dtype}")
    if backend not in TRAIN_BACKENDS:
        raise ValueError(f"backend {backend} cannot train")
    b = _backends.get(backend)
    losses: list[float] = []
    states: list[dict] = []
    batches = [(_as_dtype(i, dtype), _as_dtype(t, dtype)) for i, t in batches]
    with b.session(dtype):
        built = b.build(network, weights, dtype=dtype, eager=eager)
        for inputs, targets in batches:
            losses.append(b.train_step(built, inputs, targets))
            states.append(b.export_canonical(built))
    return losses, states


@dataclass(frozen=True)
class TensorComparison:
    name: str
    max_abs: float
    max_rel: float
    scale: float
    passed: bool


@dataclass
class TrainStep:
    step: int
    loss: dict[str, float]
    loss_abs: float
    loss_rel: float
    loss_passed: bool
    tensors: list[TensorComparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.loss_passed and all(t.passed for t in self.tensors)

    def worst(self) -> TensorComparison | None:
        """The tensor whose error uses the largest part of its tolerance (``max_abs / scale``)."""
        return max(self.tensors, key=lambda t: t.max_abs / t.scale, default=None)

    def to_json(self) -> dict:
        return {"step": self.step, "loss": self.loss, "loss_abs_err": self.loss_abs, "loss_rel_err": self.loss_rel,
                "loss_passed": self.loss_passed, "passed": self.passed,
                "tensors": [t.__dict__ for t in self.tensors]}


@dataclass
class TrainResult:
    network: str
    backends: list[str]
    missing: list[str] = field(default_factory=list)
    steps: list[TrainStep] = field(default_factory=list)
    n_steps: int = TRAIN_STEPS
    batch: int = TRAIN_BATCH
    seed: int = 0
    atol: float = ATOL
    rtol: float = RTOL
    dtype: str = "float32"
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return (not self.skipped and not self.missing and len(self.steps) == self.n_steps
                and all(s.passed for s in self.steps))

    def to_json(self) -> dict:
        return {"network": self.network, "mode": "train", "backends": self.backends, "missing": self.missing,
                "steps": self.n_steps, "batch": self.batch, "seed": self.seed, "dtype": self.dtype,
                "atol": self.atol, "rtol": self.rtol, "passed": self.passed, "skipped": self.skipped or None,
                "notes": self.notes,
                "per_step": [s.to_json() for s in self.steps]}

    def render(self) -> str:
        lines = [f"network {self.network}: training, backends {', '.join(self.backends) or 'none'}; "
                 f"{self.n_steps} steps, batch {self.batch}, seed {self.seed}; "
                 f"atol {self.atol:g} (x max(1, |ref|)), rtol {self.rtol:g}"]
        lines += [f"  note: {n}" for n in self.notes]
        for m in self.missing:
            lines.append(f"  {m}: NOT RUN (framework not installed) - counts as a failure")
        if self.skipped:
            lines.append(f"  NOT RUN: {self.skipped} - counts as a failure")
            lines.append("  FAIL")
            return "\n".join(lines)
        if len(self.backends) == 2 and self.steps:
            ref, other = self.backends
            header = ("step", f"loss {ref}", f"loss {other}", "loss abs err", "params max abs err",
                      "worst tensor", "its max rel err", "result")
            rows = []
            for s in self.steps:
                w = s.worst()
                rows.append((str(s.step), f"{s.loss[ref]:.7g}", f"{s.loss[other]:.7g}", f"{s.loss_abs:.3e}",
                             f"{w.max_abs:.3e}" if w else "-", w.name if w else "-",
                             f"{w.max_rel:.3e}" if w else "-", "pass" if s.passed else "FAIL"))
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            fmt = "  " + "  ".join(f"{{:{w}}}" for w in widths)
            lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
            lines += [fmt.format(*r) for r in rows]
            tensors = len(self.steps[0].tensors)
            lines.append(f"  ({tensors} canonical tensors, moving statistics included, compared after every step; "
                         "worst: the largest error relative to its tolerance)")
        lines.append(f"  {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(line.rstrip() for line in lines)


def verify_training(network: ir.Network, backends=TRAIN_BACKENDS, weights=None, steps: int = TRAIN_STEPS,
                    seed: int = 0, batch: int = TRAIN_BATCH, atol: float = ATOL, rtol: float = RTOL,
                    dtype: str = "float32", eager: bool = False) -> TrainResult:
    """Train ``network`` for ``steps`` steps in PyTorch and Keras from one checkpoint and compare every step.

    The checkpoint is ``weights`` or ``init_weights(network, seed)``; the batches are
    :func:`make_batches` ``(steps, batch, seed)``; dropout rates are forced to 0 (:func:`without_dropout`).
    The first backend is the reference. After every step the loss and every canonical tensor
    (BatchNorm moving statistics included) must pass :func:`compare`, the inference rule:
    ``|x - ref| <= atol * max(1, max|ref|) + rtol * |ref|``. ``dtype="float64"`` trains both in double
    precision and ``eager=True`` runs Keras eagerly (see :func:`train_backend`).
    """
    from .limits import preflight
    from .weights import init_weights, prepare_weights

    backends = list(backends)
    unknown = [b for b in backends if b not in TRAIN_BACKENDS]
    if unknown:
        raise ValueError(f"backend(s) {', '.join(unknown)} cannot train; choose from {', '.join(TRAIN_BACKENDS)}")
    present = [b for b in backends if available(b)]
    result = TrainResult(network.name, present, [b for b in backends if b not in present], n_steps=steps,
                         batch=batch, seed=seed, atol=atol, rtol=rtol, dtype=dtype)
    if not network.loss:
        result.skipped = "the network has no loss"
        return result
    if network.optimizer is None:
        result.skipped = "the network has no optimizer"
        return result
    if any(n.op == "dropout" or (n.op == "attention" and n.attrs["dropout"]) for n in network.nodes):
        result.notes.append("dropout rates forced to 0 in both backends for the comparison")
    if any(n.op in ("gaussian_noise", "sample_normal") for n in network.nodes):
        result.notes.append("gaussian_noise and sample_normal draw no noise in either backend for the comparison")
    result.notes += [n for b in present if (n := _backends.get(b).train_note)]
    net = without_dropout(network)
    preflight(network, "train", present, batch)  # refuse what the machine should not allocate, first
    weights = init_weights(network, seed) if weights is None else prepare_weights(weights, network)
    batches = make_batches(net, steps, batch, seed)
    if dtype != "float32":
        result.notes.append(f"both backends train in {dtype}")
    runs = {b: train_backend(b, net, weights, batches, dtype, eager) for b in present}
    if len(present) < 2:
        result.notes.append("fewer than two backends: nothing to compare")
        return result
    ref, other = present[0], present[1]
    for k in range(steps):
        loss = {b: runs[b][0][k] for b in present}
        labs, lrel, _, lok = compare(loss[other], loss[ref], atol, rtol)
        step = TrainStep(k + 1, loss, labs, lrel, lok)
        want, got = runs[ref][1][k], runs[other][1][k]
        for name in want:
            max_abs, max_rel, scale, passed = compare(got[name], want[name], atol, rtol) \
                if name in got else (float("inf"), float("inf"), 1.0, False)
            step.tensors.append(TensorComparison(name, max_abs, max_rel, scale, passed))
        result.steps.append(step)
    return result


# Initialisers --------------------------------------------------------------------------------------------


def fresh_weights(network: ir.Network, backend: str, seed: int | None = None) -> dict:
    """Canonical weights of a model freshly built by ``backend`` (no checkpoint loaded): its own initialisers.

    ``backend`` is ``torch``, ``keras`` or ``numpy`` (:func:`netspec.init_weights`).
    """
    if backend == "numpy":
        from .weights import init_weights

        return init_weights(network, seed or 0)
    b = _backends.get(backend)
    if seed is not None:
        b.seed(seed)
    return b.export_canonical(b.build(network))


def init_problems(init: dict, array) -> list[str]:
    """How a drawn tensor departs from its initialiser's distribution, beyond statistical tolerance.

    ``init`` is an IR ``Param.init``. Constants must be exact; random initialisers are checked on
    mean (within 6 standard errors), variance (within 6 standard errors of the sample variance, at
    least 1%) and support (uniform bounds, truncation at 2 standard deviations); ``orthogonal`` on
    ``W W^T = gain^2 I`` (rows <= columns, else ``W^T W``) of the tensor flattened to ``[dim0, rest]``;
    ``unit_forget_bias`` on the LSTM forget-gate quarter being 1 (the rest following ``init``).
    """
    import numpy as np

    from .weights import fans

    w = np.asarray(array, dtype=np.float64)
    name = init["name"]
    problems: list[str] = []
    if init.get("unit_forget_bias"):
        units = len(w) // 4
        if not np.all(w[units:2 * units] == 1.0):
            problems.append("unit_forget_bias: the forget gate's bias is not 1")
        rest = {k: v for k, v in init.items() if k != "unit_forget_bias"}
        return problems + init_problems(rest, np.concatenate([w[:units], w[2 * units:]]))
    if name in ("zeros", "ones", "constant"):
        value = {"zeros": 0.0, "ones": 1.0}.get(name, init.get("value"))
        if not np.all(w == np.float32(value)):
            problems.append(f"{name}: values differ from {value}")
        return problems
    if name == "orthogonal":
        gain = init.get("gain", 1.0)
        m = w.reshape(len(w), -1)
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        err = float(np.abs(gram - gain ** 2 * np.eye(len(gram))).max())
        if err > 1e-4 * max(1.0, gain ** 2):
            problems.append(f"orthogonal: the Gram matrix is {err:.2e} away from gain^2 I")
        return problems
    fan_in, fan_out = fans(tuple(w.shape))
    if name == "normal":
        mean, var, lo, hi, kurt = init["mean"], init["std"] ** 2, -np.inf, np.inf, 3.0
    elif name == "uniform":
        a, b = init["a"], init["b"]
        mean, var, lo, hi, kurt = (a + b) / 2, (b - a) ** 2 / 12, a, b, 1.8
    else:
        member = FAMILIES["initializer"][name]
        var, mean = member.variance(fan_in, fan_out), 0.0
        if member.distribution == "uniform":
            lo, hi, kurt = -np.sqrt(3 * var), np.sqrt(3 * var), 1.8
        else:  # a normal truncated at 2 standard deviations, rescaled to the variance
            bound = 2 * np.sqrt(var) / 0.87962566103423978
            lo, hi, kurt = -bound, bound, 3.0
    n = w.size
    if abs(w.mean() - mean) > 6 * np.sqrt(var / n) + 1e-7:
        problems.append(f"{name}: mean {w.mean():.4g}, expected {mean:.4g}")
    tol = max(6 * np.sqrt((kurt - 1) / n), 0.01)
    if var > 0 and abs(w.var() / var - 1) > tol:
        problems.append(f"{name}: variance {w.var():.4g}, expected {var:.4g} (tolerance {tol:.1%})")
    slack = 1e-6 * max(1.0, abs(lo) if np.isfinite(lo) else 1.0, abs(hi) if np.isfinite(hi) else 1.0)
    if w.min() < lo - slack or w.max() > hi + slack:
        problems.append(f"{name}: values outside [{lo:.4g}, {hi:.4g}]: [{w.min():.4g}, {w.max():.4g}]")
    return problems
