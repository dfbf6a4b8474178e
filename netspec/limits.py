"""Size limits: what a spec may ask for, and what a backend command will try to allocate.

Two kinds of limit, both documented in docs/language.md (Limits):

* **Language limits** (the checker, every machine alike): every integer an
  expression produces, every dimension, and the element count of every value and
  weight tensor fit a signed 64-bit integer (``MAX_INT``), which is how ONNX,
  PyTorch and TensorFlow store them. A spec beyond them is an error (E304/E401).
* **Memory limits** (:func:`preflight`, before a backend command allocates
  anything): one tensor at most ``NETSPEC_MAX_TENSOR_BYTES`` (default 2 GiB),
  and the command's estimated peak at most ``NETSPEC_MAX_MEMORY_BYTES``
  (default 8 GiB, or 3/4 of the machine's physical memory if less). Both can be raised
  through those environment variables on a machine that has (or lacks) the memory.
  The estimate is the float32 bytes of every
  weight times the copies the command holds at once, plus the largest
  activation at the command's batch size; it is computed from the IR in
  microseconds, so a model too big for the machine is refused in well under a
  second instead of failing after minutes and gigabytes.

This module imports no framework and no numpy.
"""

from __future__ import annotations

import os
from math import prod
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, SpecError

if TYPE_CHECKING:  # the typed or the plain IR: both have these fields (netspec.ir_plain)
    from . import ir

#: Every integer an expression produces, every dimension, every element count: int64.
MAX_INT = 2**63 - 1
#: Window sizes, strides, dilations and upsampling scales: TensorFlow's op attributes are int32.
MAX_INT32 = 2**31 - 1

GiB = 2**30
#: Defaults of the memory ceilings (bytes); the environment variables below override them.
DEFAULT_MAX_TENSOR_BYTES = 2 * GiB
DEFAULT_MAX_MEMORY_BYTES = 8 * GiB
TENSOR_ENV = "NETSPEC_MAX_TENSOR_BYTES"
MEMORY_ENV = "NETSPEC_MAX_MEMORY_BYTES"
#: A protobuf message (an ONNX model held in memory, as verify runs it) is at most 2 GiB.
PROTOBUF_BYTES = 2**31 - 2**20

#: Copies of the weights each command holds at its peak (see docs/language.md, Limits).
COPIES = {
    "init_weights": 1,  # the arrays; each is drawn in float64 first, so the largest counts 2x more
    "torch": 2,  # the module's parameters and the canonical arrays loaded into them
    "keras": 2,  # the model's variables and the canonical arrays
    "onnx": 3,  # the canonical arrays, the graph's initializers and the serialised bytes
}
#: verify holds the canonical arrays once, plus these per backend it runs.
VERIFY_COPIES = {"torch": 1, "keras": 1, "onnx": 3}  # onnx: the graph, its bytes, the runtime's session
#: verify --train: per run, the model's weights, their gradients and up to two optimiser moments.
TRAIN_COPIES = 4
#: verify --train's default number of steps (netspec.verify.TRAIN_STEPS).
TRAIN_STEPS = 5

_DTYPE_BYTES = {"float32": 4, "int32": 4, "int64": 8}


def int_text(value: int) -> str:
    """An integer for a message: its digits, or ``1234...6789 (4400 digits)`` when it is long.

    Never converts more than a few digits to text, so it cannot hit Python's
    4300-digit conversion limit (a ValueError).
    """
    magnitude = abs(value)
    if magnitude < 10**60:
        return str(value)
    digits = magnitude.bit_length() * 30103 // 100000  # log10(2) ~ 0.30103: exact or one short
    if magnitude >= 10**digits:
        digits += 1
    lead, tail = magnitude // 10 ** (digits - 6), magnitude % 10**6
    return f"{'-' if value < 0 else ''}{lead}...{tail:06d} ({digits} digits)"


def elements(shape) -> int:
    """Elements of a per-sample shape, run-time dimensions counted as 1."""
    return prod(d if isinstance(d, int) else 1 for d in shape)


def shape_problem(shape, what) -> str | None:
    """Why a shape breaks the language limits (a dimension or the element count beyond int64), or None.

    ``what`` names the tensor: a string, or a function that returns one (called only for a problem,
    so that the checker formats nothing for the shapes that fit).
    """
    n = 1
    for d in shape:
        if isinstance(d, int):
            if d > MAX_INT:
                what = what() if callable(what) else what
                return f"{what}: dimension {int_text(d)} is too large; a dimension is at most 2**63 - 1 ({MAX_INT})"
            n *= d
    if n > MAX_INT:
        what = what() if callable(what) else what
        return f"{what} would hold {int_text(n)} elements; a tensor holds at most 2**63 - 1 ({MAX_INT})"
    return None


def human_bytes(n: int) -> str:
    """``n`` bytes in B, KiB, MiB, GiB or TiB (and beyond, in TiB)."""
    value = float(n) if n < 2**1000 else float("inf")
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB" if value < 1e15 else "over 10**15 TiB"


def _ceiling(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise SpecError([Diagnostic("E304", f"{env} must be a positive number of bytes; received: {raw[:40]!r}")])
    return value


def max_tensor_bytes() -> int:
    """The per-tensor ceiling in bytes (``NETSPEC_MAX_TENSOR_BYTES``, default 2 GiB)."""
    return _ceiling(TENSOR_ENV, DEFAULT_MAX_TENSOR_BYTES)


def max_memory_bytes() -> int:
    """The per-command ceiling in bytes: ``NETSPEC_MAX_MEMORY_BYTES``, else 8 GiB or 3/4 of the
    machine's physical memory, whichever is less."""
    default = DEFAULT_MAX_MEMORY_BYTES
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not every platform says
        physical = 0
    if physical > 0:
        default = min(default, physical * 3 // 4)
    return _ceiling(MEMORY_ENV, default)


def weight_bytes(network: ir.Network) -> int:
    """float32 bytes of every weight, shared layers counted once."""
    return 4 * sum(p.size for params in network.layers().values() for p in params)


def train_copies(backends: int, steps: int, float64: bool = False, noise_floor: bool = True) -> int:
    """The copies of the weights ``verify --train`` holds at its peak, in float32 units.

    The checkpoint (1); every backend's weights after every step, kept to compare at the end
    (``backends * steps``); and every run's model with its gradients and two optimiser moments
    (``TRAIN_COPIES`` per run), counted as held to the end: TensorFlow keeps the memory of a
    finished model for later ones rather than give it back. The runs are one per backend, and,
    in float32 with the noise floor, one more per backend in float64 (each of its tensors counts
    twice), which runs when a float32 difference goes beyond the tolerance. Measured: VGG-16,
    3 steps, both backends with the noise floor, peaked at 21 GB; this counts 43 x 553 MB = 23.8 GB.
    """
    width = 2 if float64 else 1
    copies = 1 + backends * steps * width + backends * TRAIN_COPIES * width
    if noise_floor and not float64:
        copies += backends * steps * 2 + backends * TRAIN_COPIES * 2
    return copies


def preflight(network: ir.Network, command: str, backends: tuple[str, ...] | list[str] = (),
              batch: int | None = None, *, steps: int = TRAIN_STEPS, float64: bool = False,
              noise_floor: bool = True) -> None:
    """Refuse, with a located E304, a command whose tensors the machine should not be asked to allocate.

    ``command`` is ``init_weights``, ``torch``, ``keras``, ``onnx`` (a build or
    an export), ``verify`` or ``train`` (``verify --train``, for ``steps`` steps, in float64 or
    not, with the noise floor or not: see :func:`train_copies`): ``backends`` run on ``batch``
    samples. Checks every weight tensor and, when ``batch`` is given, every activation against
    the per-tensor ceiling, then the command's estimated peak against the memory ceiling.
    Cheap: one pass over the IR.
    """
    tensor_limit, memory_limit = max_tensor_bytes(), max_memory_bytes()
    hint = f"set {TENSOR_ENV} (bytes) to raise the limit on a machine that has the memory"
    largest = 0
    for layer, params in network.layers().items():
        for p in params:
            size = 4 * p.size
            largest = max(largest, size)
            if size > tensor_limit:
                node = next(n for n in network.nodes if n.layer == layer)
                _refuse(node.span, f"weight '{layer}.{p.name}' {list(p.shape)} takes {human_bytes(size)} "
                        f"(float32); a tensor may take at most {human_bytes(tensor_limit)}",
                        f"{' * '.join(map(str, p.shape)) or '1'} elements * 4 bytes = {size:,} bytes", hint)
    activation = 0
    if batch is not None:
        values = [(v.name, v.type, v.span) for v in network.inputs]
        values += [(n.name, n.type, n.span) for n in network.nodes]
        for name, t, span in values:
            size = batch * elements(t.shape) * _DTYPE_BYTES.get(t.dtype, 4)
            activation = max(activation, size)
            if size > tensor_limit:
                dims = " * ".join(str(d if isinstance(d, int) else 5) for d in t.shape) or "1"
                _refuse(span, f"value '{name}' {t} takes {human_bytes(size)} for a batch of {batch}; "
                        f"a tensor may take at most {human_bytes(tensor_limit)}",
                        f"{batch} * {dims} elements * {_DTYPE_BYTES.get(t.dtype, 4)} bytes = {size:,} bytes", hint)
    weights = weight_bytes(network)
    if command in ("verify", "train"):
        if command == "train":
            copies = train_copies(len(backends), steps, float64, noise_floor)
        else:
            copies = 1 + sum(VERIFY_COPIES.get(b, 1) for b in backends)
        if "onnx" in backends and weights >= PROTOBUF_BYTES:
            _refuse(network.span, f"verify runs the ONNX model in memory, and a protobuf holds at most 2 GiB; "
                    f"the weights of network '{network.name}' take {human_bytes(weights)}", None,
                    "verify the other backends (--backends torch,keras), or export the model to a file")
        activation *= 4  # each backend holds its own activations, and a few live at once
    else:
        copies = COPIES.get(command, 2)
    peak = copies * weights + activation + (2 * largest if command == "init_weights" else 0)
    if peak > memory_limit:
        label = {"train": "verify --train", "torch": "a PyTorch build", "keras": "a Keras build",
                 "onnx": "an ONNX export"}.get(command, command)
        note = f"set {MEMORY_ENV} (bytes) to raise the limit on a machine that has the memory"
        if command == "train":
            note += (f", or hold fewer copies: fewer --steps (now {steps})"
                     + (", --no-noise-floor" if noise_floor and not float64 else ""))
        _refuse(network.span, f"{label} would need about {human_bytes(peak)} for network '{network.name}' "
                f"({human_bytes(weights)} of weights, held {copies} time{'s' if copies > 1 else ''}); "
                f"the limit is {human_bytes(memory_limit)}", None, note)


def _refuse(span, message: str, formula: str | None, note: str) -> None:
    raise SpecError([Diagnostic("E304", message, span, (note,), formula)])
