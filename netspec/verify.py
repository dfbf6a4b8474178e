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
errors are reported either way. In float32 training, a difference beyond it passes
as rounding only within ``NOISE_FACTOR`` times the backends' own float32 error (their
float64 runs as the yardstick) and with the float64 runs equal (:func:`judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import backends as _backends
from . import ir
from .limits import TRAIN_STEPS
from .ops.registry import FAMILIES, LOSS_FNS

BACKENDS = _backends.BACKENDS
ATOL, RTOL = 1e-5, 0.0


def available(backend: str) -> bool:
    """Whether a backend's framework is installed (checked without importing it)."""
    return _backends.available(backend)


#: The run-time sizes verify tries, smallest first, for a dimension not bound with ``--dim``
DIM_CANDIDATES = (5, 6, 7, 8, 9, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)


class DimsError(ValueError):
    """Run-time dimensions that the spec's shapes do not allow (or that it does not have)."""


def _too_small(network: ir.Network, dims: dict) -> str:
    """Why ``dims`` do not fit the network ("" when they do): the first value whose size is below 1."""
    from .report import eval_dim

    for n in network.nodes:
        shape = tuple(eval_dim(d, dims) for d in n.type.shape)
        bad = [(d, v) for d, v in zip(n.type.shape, shape) if isinstance(v, int) and v < 1]
        if bad:
            d, size = bad[0]
            return f"'{n.name}' ({n.op}) would have a dimension {d} = {size}"
    return ""


def run_dims(network: ir.Network, dims: dict | None = None) -> dict[str, int]:
    """The size of each run-time dimension verify uses: ``dims`` where given, else a default.

    The default is the smallest size in :data:`DIM_CANDIDATES` (5 first) at which every value of the
    network has a size of at least 1, for every unbound name at once (a 1-D conv text model whose
    pooling needs ``T >= 12`` gets 12). Raises :class:`DimsError` for a name the network does not use,
    a size below 1, or sizes the shapes do not allow.
    """
    from .report import dim_names

    names = dim_names(network)
    dims = dict(dims or {})
    for name, size in dims.items():
        if name not in names:
            known = ", ".join(names) if names else "none: every dimension is static"
            raise DimsError(f"--dim {name}={size}: {network.name} has no run-time dimension '{name}' "
                            f"(its run-time dimensions: {known})")
        if size < 1:
            raise DimsError(f"--dim {name}={size}: a size must be at least 1")
    free = [n for n in names if n not in dims]
    if not free:
        why = _too_small(network, dims)
        if why:
            shown = ", ".join(f"{k}={v}" for k, v in dims.items())
            raise DimsError(f"{network.name}: with {shown}, {why}; choose larger sizes with --dim")
        return dims
    for size in DIM_CANDIDATES:
        trial = {**dims, **dict.fromkeys(free, size)}
        if not _too_small(network, trial):
            return trial
    trial = {**dims, **dict.fromkeys(free, DIM_CANDIDATES[-1])}
    raise DimsError(f"{network.name}: no size up to {DIM_CANDIDATES[-1]} for {', '.join(free)} fits: "
                    f"{_too_small(network, trial)}; set it with --dim NAME=SIZE")


def make_inputs(network: ir.Network, batch: int = 2, seed: int = 0, dims: dict | None = None) -> dict:
    """Random inputs per dtype, channels-first: floats N(0, 1); integer ids below every consuming vocab.

    Run-time dimensions take the sizes of :func:`run_dims` (``dims``, else the defaults).
    """
    import numpy as np

    return _draw_inputs(network, batch, np.random.default_rng(seed), run_dims(network, dims))


def _draw_inputs(network: ir.Network, batch: int, rng, dims: dict | None = None) -> dict:
    dims = dims or {}
    out = {}
    for value in network.inputs:
        shape = (batch, *(d if isinstance(d, int) else dims.get(d, 5) for d in value.type.shape))
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
    dims: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (bool(self.comparisons) and all(c.passed for c in self.comparisons) and not self.missing
                and not self.errors)

    def to_json(self) -> dict:
        return {"network": self.network, "backends": self.backends, "missing": self.missing,
                "atol": self.atol, "rtol": self.rtol, "batch": self.batch, "dims": self.dims,
                "passed": self.passed, "notes": self.notes, "errors": self.errors,
                "comparisons": [c.__dict__ for c in self.comparisons]}

    def render(self) -> str:
        dims = "".join(f"; {k}={v}" for k, v in self.dims.items())
        lines = [f"network {self.network}: backends {', '.join(self.backends) or 'none'}"
                 f"; batch {self.batch}{dims}; atol {self.atol:g} (x max(1, |ref|)), rtol {self.rtol:g}"]
        lines += [f"  note: {n}" for n in self.notes]
        for m in self.missing:
            lines.append(f"  {m}: NOT RUN (framework not installed) - counts as a failure")
        lines += [f"  ERROR {e} - counts as a failure" for e in self.errors]
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


def backend_error(backend: str, exc: BaseException) -> str:
    """One line for an exception a backend raised inside verify: never a traceback."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{backend}: {type(exc).__name__}: {text}" if text else f"{backend}: {type(exc).__name__}"


def verify(network: ir.Network, backends=BACKENDS, weights=None, seed: int = 0, batch: int = 2,
           atol: float = ATOL, rtol: float = RTOL, dims: dict | None = None) -> VerifyResult:
    """Build ``network`` in each backend from one checkpoint, run the same inputs, compare outputs.

    The first available backend in ``backends`` is the reference. Missing
    frameworks are reported and make the result fail; they never pass silently. Run-time
    dimensions take ``dims`` or :func:`run_dims`'s defaults; a backend that raises is a failure
    line of the result (``errors``), not an exception.
    """
    from .limits import preflight
    from .weights import init_weights, prepare_weights

    present = [b for b in backends if available(b)]
    preflight(network, "verify", present, batch)  # refuse what the machine should not allocate, first
    weights = init_weights(network, seed) if weights is None else prepare_weights(weights, network)
    dims = run_dims(network, dims)
    result = VerifyResult(network.name, present, [b for b in backends if b not in present], atol=atol,
                          rtol=rtol, batch=batch, dims=dims)
    result.notes += [n for b in present if (n := _backends.get(b).run_note)]
    inputs = make_inputs(network, batch, seed, dims)
    outputs = {}
    for b in present:
        try:
            outputs[b] = run_backend(b, network, weights, inputs)
        except Exception as exc:  # noqa: BLE001 - any framework error is the backend's failure, reported
            result.errors.append(backend_error(b, exc))
    present = [b for b in present if b in outputs]
    if result.errors:
        return result
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


def make_targets(network: ir.Network, batch: int, rng, dims: dict | None = None) -> dict:
    """One batch of targets, channels-first, drawn to suit the loss that reads each one.

    ``sparse_categorical_crossentropy``: class ids uniform in ``[0, classes)``; ``categorical_crossentropy``
    and ``kl_divergence``: a softmax of N(0, 1) draws along the class axis (positive, summing to 1);
    ``binary_crossentropy``: U(0, 1) (integer targets: 0 or 1); ``hinge``: -1 or 1; otherwise N(0, 1)
    (integer targets: 0 or 1). Run-time dimensions take ``dims`` (5 where missing), as inputs do.
    """
    import numpy as np

    dims = dims or {}
    out = {}
    for value in network.targets:
        t = value.type
        shape = (batch, *(d if isinstance(d, int) else dims.get(d, 5) for d in t.shape))
        kind, term = _target_kind(network, value.name)
        if kind == "ids":
            pred = network.type_of(term.args[0])
            classes = pred.shape[term.attrs.get("axis", -1)]
            classes = classes if isinstance(classes, int) else dims.get(classes, 5)
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


def make_batches(network: ir.Network, steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH, seed: int = 0,
                 dims: dict | None = None) -> list:
    """``steps`` batches ``(inputs, targets)`` (dicts of channels-first arrays) from one seeded stream.

    Run-time dimensions take the sizes of :func:`run_dims` (``dims``, else the defaults).
    """
    import numpy as np

    dims = run_dims(network, dims)
    rng = np.random.default_rng(seed)
    return [(_draw_inputs(network, batch, rng, dims), make_targets(network, batch, rng, dims))
            for _ in range(steps)]


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


#: A float32 difference between the backends that exceeds verify's tolerance still passes as rounding when it
#: is at most this many times the backends' own float32 error (each one's float32 run against its float64 run,
#: per tensor and step) and the two float64 runs agree within the tolerance; docs/verify.md measures it
NOISE_FACTOR = 10.0


@dataclass(frozen=True)
class TensorComparison:
    name: str
    max_abs: float
    max_rel: float
    scale: float
    passed: bool
    #: ``max(max|ref32 - ref64|, max|other32 - other64|)``: the backends' own float32 error (None: not measured)
    noise: float | None = None
    #: ``max|other64 - ref64|``: the difference in float64 (None: not measured)
    float64_abs: float | None = None
    #: passed only because the difference is rounding: within the noise floor, and equal in float64
    noise_dominated: bool = False
    #: the tolerance's absolute term, ``atol * scale``
    atol_abs: float = ATOL

    @property
    def allowed(self) -> float:
        """The largest difference that passes: the tolerance, or the measured noise floor if larger."""
        return max(self.atol_abs, NOISE_FACTOR * (self.noise or 0.0))


def _maxdiff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def judge(name: str, got, want, probes=None, atol: float = ATOL, rtol: float = RTOL) -> TensorComparison:
    """Compare ``got`` with ``want`` by verify's tolerance; where it fails, tell rounding from meaning.

    ``probes`` is ``(want64, got64)``, both backends' float64 results at the same step (None: the
    tolerance alone decides). The difference is rounding, and passes, when
    ``max|got - want| <= NOISE_FACTOR * max(max|want - want64|, max|got - got64|)`` (within ten times
    the float32 error the backends make themselves) and ``got64`` and ``want64`` pass the tolerance.
    """
    import numpy as np

    max_abs, max_rel, scale, passed = compare(got, want, atol, rtol)
    if passed or probes is None:
        return TensorComparison(name, max_abs, max_rel, scale, passed, atol_abs=atol * scale)
    want64, got64 = probes
    noise = max(_maxdiff(want, want64), _maxdiff(got, got64))
    meaning_abs, _, _, meaning_ok = compare(got64, want64, atol, rtol)
    finite = bool(np.all(np.isfinite(np.asarray(got, dtype=np.float64))))
    dominated = finite and meaning_ok and max_abs <= NOISE_FACTOR * noise
    return TensorComparison(name, max_abs, max_rel, scale, dominated, noise, meaning_abs, dominated, atol * scale)


@dataclass
class TrainStep:
    step: int
    loss: dict[str, float]
    loss_abs: float
    loss_rel: float
    loss_passed: bool
    tensors: list[TensorComparison] = field(default_factory=list)
    loss_noise: float | None = None
    loss_noise_dominated: bool = False

    @property
    def passed(self) -> bool:
        return self.loss_passed and all(t.passed for t in self.tensors)

    def worst(self) -> TensorComparison | None:
        """The tensor whose error uses the largest part of verify's tolerance (``max_abs / scale``)."""
        return max(self.tensors, key=lambda t: t.max_abs / t.scale, default=None)

    def noise_dominated(self) -> list[str]:
        """The tensors (and ``loss``) that passed only through the noise floor."""
        return (["loss"] if self.loss_noise_dominated else []) + [t.name for t in self.tensors if t.noise_dominated]

    def to_json(self) -> dict:
        return {"step": self.step, "loss": self.loss, "loss_abs_err": self.loss_abs, "loss_rel_err": self.loss_rel,
                "loss_noise": self.loss_noise, "loss_passed": self.loss_passed, "passed": self.passed,
                "noise_dominated": self.noise_dominated(),
                "tensors": [{**t.__dict__, "allowed": t.allowed} for t in self.tensors]}


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
    dims: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: whether float32 differences were judged against the reference's float32-vs-float64 noise floor
    noise_floor: bool = False

    @property
    def passed(self) -> bool:
        return (not self.skipped and not self.missing and not self.errors and len(self.steps) == self.n_steps
                and all(s.passed for s in self.steps))

    def to_json(self) -> dict:
        return {"network": self.network, "mode": "train", "backends": self.backends, "missing": self.missing,
                "steps": self.n_steps, "batch": self.batch, "seed": self.seed, "dtype": self.dtype, "dims": self.dims,
                "atol": self.atol, "rtol": self.rtol, "noise_floor": self.noise_floor,
                "noise_factor": NOISE_FACTOR if self.noise_floor else None, "passed": self.passed,
                "skipped": self.skipped or None, "notes": self.notes, "errors": self.errors,
                "per_step": [s.to_json() for s in self.steps]}

    def render(self) -> str:
        dims = "".join(f", {k}={v}" for k, v in self.dims.items())
        floor = (f"; beyond it, within {NOISE_FACTOR:g}x both backends' own float32 error and equal in float64"
                 if self.noise_floor else "")
        lines = [f"network {self.network}: training, backends {', '.join(self.backends) or 'none'}; "
                 f"{self.n_steps} steps, batch {self.batch}, seed {self.seed}{dims}; "
                 f"atol {self.atol:g} (x max(1, |ref|)), rtol {self.rtol:g}{floor}"]
        lines += [f"  note: {n}" for n in self.notes]
        for m in self.missing:
            lines.append(f"  {m}: NOT RUN (framework not installed) - counts as a failure")
        lines += [f"  ERROR {e} - counts as a failure" for e in self.errors]
        if self.skipped:
            lines.append(f"  NOT RUN: {self.skipped} - counts as a failure")
            lines.append("  FAIL")
            return "\n".join(lines)
        if len(self.backends) == 2 and self.steps:
            ref, other = self.backends
            header = ("step", f"loss {ref}", f"loss {other}", "loss abs err", "params max abs err",
                      "worst tensor", "its max rel err") + (("its noise floor",) if self.noise_floor else ()) \
                + ("result",)
            rows = []
            for s in self.steps:
                w = s.worst()
                row = [str(s.step), f"{s.loss[ref]:.7g}", f"{s.loss[other]:.7g}", f"{s.loss_abs:.3e}",
                       f"{w.max_abs:.3e}" if w else "-", w.name if w else "-", f"{w.max_rel:.3e}" if w else "-"]
                if self.noise_floor:
                    row.append(f"{w.noise:.3e}" if w and w.noise is not None else "-")
                row.append(("pass" + (" (noise)" if s.noise_dominated() else "")) if s.passed else "FAIL")
                rows.append(tuple(row))
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            fmt = "  " + "  ".join(f"{{:{w}}}" for w in widths)
            lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
            lines += [fmt.format(*r) for r in rows]
            tensors = len(self.steps[0].tensors)
            lines.append(f"  ({tensors} canonical tensors, moving statistics included, compared after every step; "
                         "worst: the largest error relative to its tolerance)")
            dominated = [(s.step, s.noise_dominated()) for s in self.steps if s.noise_dominated()]
            if dominated:
                listed = "; ".join(f"step {k}: " + (", ".join(names) if len(names) <= 4 else
                                                    f"{len(names)} tensors ({', '.join(names[:3])}, ...)")
                                   for k, names in dominated)
                lines.append(f"  noise-dominated (beyond atol; within {NOISE_FACTOR:g}x the backends' own float32 "
                             f"error against float64, and equal in float64): {listed}")
        lines.append(f"  {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(line.rstrip() for line in lines)


def verify_training(network: ir.Network, backends=TRAIN_BACKENDS, weights=None, steps: int = TRAIN_STEPS,
                    seed: int = 0, batch: int = TRAIN_BATCH, atol: float = ATOL, rtol: float = RTOL,
                    dtype: str = "float32", eager: bool = False, dims: dict | None = None,
                    noise_floor: bool = True) -> TrainResult:
    """Train ``network`` for ``steps`` steps in PyTorch and Keras from one checkpoint and compare every step.

    The checkpoint is ``weights`` or ``init_weights(network, seed)``; the batches are
    :func:`make_batches` ``(steps, batch, seed, dims)``; dropout rates are forced to 0
    (:func:`without_dropout`). The first backend is the reference. After every step the loss and every
    canonical tensor (BatchNorm moving statistics included) must pass :func:`compare`, the inference
    rule ``|x - ref| <= atol * max(1, max|ref|) + rtol * |ref|``, or, in float32 with ``noise_floor``,
    lie within ``NOISE_FACTOR`` times the reference's own float32 error at that step, measured by
    training the reference once more in float64 (:func:`judge`). ``dtype="float64"`` trains both in
    double precision (the tolerance alone decides) and ``eager=True`` runs Keras eagerly (see
    :func:`train_backend`). A backend that raises is a failure line (``errors``), not an exception.
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
    preflight(network, "train", present, batch, steps=steps, float64=dtype == "float64",
              noise_floor=noise_floor)  # refuse what the machine should not allocate, first
    weights = init_weights(network, seed) if weights is None else prepare_weights(weights, network)
    result.dims = run_dims(network, dims)
    batches = make_batches(net, steps, batch, seed, result.dims)
    if dtype != "float32":
        result.notes.append(f"both backends train in {dtype}")
    runs = {}
    for b in present:
        try:
            runs[b] = train_backend(b, net, weights, batches, dtype, eager)
        except Exception as exc:  # noqa: BLE001 - any framework error is the backend's failure, reported
            result.errors.append(backend_error(b, exc))
    present = [b for b in present if b in runs]
    if result.errors:
        return result
    if len(present) < 2:
        result.notes.append("fewer than two backends: nothing to compare")
        return result
    ref, other = present[0], present[1]
    result.steps = _compare_runs((ref, other), runs[ref], runs[other], steps, atol, rtol)
    if noise_floor and dtype == "float32" and not all(s.passed for s in result.steps):
        # beyond the tolerance somewhere: both backends again in float64 tell rounding from meaning
        try:
            probes = [train_backend(b, net, weights, batches, "float64", eager) for b in (ref, other)]
        except Exception as exc:  # noqa: BLE001
            result.notes.append(f"no noise floor: {backend_error(ref, exc)}")
        else:
            result.noise_floor = True
            result.steps = _compare_runs((ref, other), runs[ref], runs[other], steps, atol, rtol, probes)
    return result


def _compare_runs(names, ref_run, other_run, steps: int, atol: float, rtol: float, probes=None) -> list[TrainStep]:
    """Per step: the loss and every canonical tensor of ``other_run`` against ``ref_run`` (:func:`judge`).

    ``names`` are the two backends' names; ``probes`` their float64 runs, in the same order.
    """
    out = []
    for k in range(steps):
        loss = {names[0]: ref_run[0][k], names[1]: other_run[0][k]}

        def at(run, name=None, k=k):
            return run[0][k] if name is None else run[1][k].get(name)

        lc = judge("loss", other_run[0][k], ref_run[0][k], (at(probes[0]), at(probes[1])) if probes else None,
                   atol, rtol)
        step = TrainStep(k + 1, loss, lc.max_abs, lc.max_rel, lc.passed, loss_noise=lc.noise,
                         loss_noise_dominated=lc.noise_dominated)
        want, got = ref_run[1][k], other_run[1][k]
        for name in want:
            if name in got:
                pair = (at(probes[0], name), at(probes[1], name)) if probes else None
                step.tensors.append(judge(name, got[name], want[name], pair, atol, rtol))
            else:
                step.tensors.append(TensorComparison(name, float("inf"), float("inf"), 1.0, False))
        out.append(step)
    return out


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
