"""The op framework: attribute kinds and op definitions.

An op is a class declaring its attributes once (kind, default, doc), its
positional arguments, and three rules: ``infer`` (output type, and the
normalised attributes a backend needs), ``params`` (weight tensors in the
canonical layout) and ``macs`` (multiply-accumulates per sample). It also
declares the metadata the lowering stage and the backends read instead of
parsing op names (``family``, ``rank``, ``spatial``, ``gates``, ``gate_orders``,
``weight_layouts``; see :class:`OpDef`).

Imports flow one way: ``base`` <- ``layers``, ``functions`` <- ``registry``.
Kinds that look other ops up (an activation argument, a layer argument) read
the tables ``registry`` hands to :func:`install` when it is imported; importing
``netspec.ops`` imports ``registry``, so the tables are always there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..ir_plain import Dim, Param, TensorType
from ..limits import MAX_INT32
from ..source import Span

REQUIRED = object()
# how bind_values fills an attribute that was not given (see OpDef._defaults_plan)
_REQUIRED, _AS_IS, _SHALLOW, _DEEP, _EACH_TIME = (object() for _ in range(5))


def _fresh(value: Any) -> Any:
    """A copy of the dicts and lists in a normalised attribute value (each node owns its attributes)."""
    if type(value) is dict:
        return {k: _fresh(v) for k, v in value.items()}
    if type(value) is list:
        return [_fresh(v) for v in value]
    if type(value) is tuple and _mutable(value):
        return tuple(_fresh(v) for v in value)
    return value


def _mutable(value: Any) -> bool:
    """Whether a value is, or holds, a dict or a list."""
    if type(value) in (dict, list):
        return True
    return type(value) is tuple and any(_mutable(v) for v in value)


#: Lookup tables filled by :mod:`netspec.ops.registry` through :func:`install` (no import back).
_TABLES: dict[str, dict] = {"ops": {}, "families": {}}


def install(ops: dict, families: dict) -> None:
    """Give the kinds the registry's tables (called once, by ``registry`` at import)."""
    _TABLES["ops"] = ops
    _TABLES["families"] = families


def lookup_op(name: str) -> OpDef:
    """A registered chain op by name (``KeyError`` if none)."""
    return _TABLES["ops"][name]


@dataclass(frozen=True)
class Sym:
    """A bare name used as a value (``same``, ``relu``, ``nearest``)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CallValue:
    """A call used as a value (``l2(0.01)``, ``lstm(64)``, ``normal(0.02)``)."""

    name: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    span: Span | None = field(default=None, compare=False)
    arg_spans: tuple = field(default=(), compare=False)

    def __str__(self) -> str:
        parts = [show(a) for a in self.args] + [f"{k}={show(v)}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


def brief(value: Any, limit: int = 60) -> str:
    """``show(value)``, shortened for a message."""
    text = show(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def show(value: Any) -> str:
    """A value as the spec writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        inner = ", ".join(show(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class AttrError(Exception):
    """A value that does not fit an attribute; the message says what was expected.

    ``code`` is the diagnostic code; ``arg`` the argument at fault, when known.
    """

    def __init__(self, message: str, code: str = "E301", arg: str | int | None = None,
                 notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.code, self.arg, self.notes = code, arg, tuple(notes)


#: Argument names from Keras and PyTorch, and what netspec calls them.
KWARG_ALIASES = {
    "learning_rate": "lr", "strides": "stride", "kernel_size": "kernel", "pool_size": "pool",
    "dilation_rate": "dilation", "epsilon": "eps", "kernel_initializer": "kernel_init",
    "bias_initializer": "bias_init", "out_channels": "filters", "out_features": "units",
    "hidden_size": "units", "num_embeddings": "vocab", "input_dim": "vocab", "embedding_dim": "dim",
    "output_dim": "dim", "p": "rate", "negative_slope": "alpha", "bias": "use_bias",
    "target_shape": "shape", "scale_factor": "scale", "size": "scale", "beta_1": "beta1", "beta_2": "beta2",
}


def did_you_mean(name: str, choices) -> str:
    import difflib  # only for a misspelling: not on the import path of every check

    match = difflib.get_close_matches(name, [c for c in choices if c != name], n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else ""


# Attribute kinds ---------------------------------------------------------------


class Kind:
    """Validates and normalises one attribute value."""

    text = "a value"

    def __call__(self, value: Any, op: OpDef) -> Any:
        return value

    def fail(self, value: Any):
        raise AttrError(f"expected {self.text}; received: {brief(value)}")


class Int(Kind):
    def __init__(self, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max
        if min == 1:
            self.text = "a positive integer"
        elif min == 0:
            self.text = "a non-negative integer"
        else:
            self.text = "an integer"

    def __call__(self, value, op):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            self.fail(value)
        return value


class Float(Kind):
    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        lo = "" if min is None else ("(" if min_open else "[") + f"{min}"
        hi = "" if max is None else f"{max}" + (")" if max_open else "]")
        if lo and hi:
            self.text = f"a number in {lo}, {hi}"
        elif lo:
            self.text = f"a number {'>' if min_open else '>='} {min}"
        elif hi:
            self.text = f"a number {'<' if max_open else '<='} {max}"
        else:
            self.text = "a number"

    def __call__(self, value, op):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(value)
        try:
            v = float(value)
        except OverflowError:  # an int beyond the float range
            self.fail(value)
        if not math.isfinite(v):
            self.fail(value)
        if self.min is not None and (v < self.min or (self.min_open and v == self.min)):
            self.fail(value)
        if self.max is not None and (v > self.max or (self.max_open and v == self.max)):
            self.fail(value)
        return v


class Bool(Kind):
    text = "true or false"

    def __call__(self, value, op):
        if not isinstance(value, bool):
            self.fail(value)
        return value


class Enum(Kind):
    def __init__(self, *choices: str):
        self.choices = choices
        self.text = "one of " + ", ".join(choices)

    def __call__(self, value, op):
        name = value.name if isinstance(value, Sym) else value if isinstance(value, str) else None
        if name not in self.choices:
            hint = did_you_mean(str(name), self.choices) if name else ""
            raise AttrError(f"expected {self.text}; received: {brief(value)}" + (f"; {hint}" if hint else ""))
        return name


class IntTuple(Kind):
    """An int (broadcast to every spatial axis) or a tuple of ``op.rank`` ints."""

    def __init__(self, min: int = 1):
        self.min = min

    def __call__(self, value, op):
        rank = op.rank
        what = "a positive integer" if self.min == 1 else "a non-negative integer"
        self.text = f"{what} or a tuple of {rank}"
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,) * rank
        if not (isinstance(value, (tuple, list)) and len(value) == rank
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= self.min for v in value)):
            self.fail(value)
        if any(v > MAX_INT32 for v in value):
            raise AttrError(f"expected at most 2**31 - 1 ({MAX_INT32}): windows, strides, dilations and scales are "
                            f"int32 in TensorFlow; received: {brief(value)}", "E304")
        return tuple(value)


class Padding(Kind):
    """``valid``, ``same``, an int, a tuple per axis, or ``((begin, end), ...)``.

    Normalised to ``"same"`` or a tuple of (begin, end) pairs; ``same`` becomes
    pairs in ``infer`` once the input size is known.
    """

    def __call__(self, value, op):
        rank = op.rank
        self.text = f"valid, same, a non-negative integer, a tuple of {rank}, or {rank} (begin, end) pairs"
        if isinstance(value, str):
            value = Sym(value)
        if isinstance(value, Sym) and value.name in ("same", "valid"):
            return "same" if value.name == "same" else ((0, 0),) * rank
        if isinstance(value, Sym):
            hint = did_you_mean(value.name, ("same", "valid"))
            raise AttrError(f"expected {self.text}; received: {brief(value)}" + (f"; {hint}" if hint else ""))
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return ((value, value),) * rank
        if isinstance(value, (tuple, list)) and len(value) == rank:
            out = []
            for v in value:
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                    out.append((v, v))
                elif (isinstance(v, (tuple, list)) and len(v) == 2
                      and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)):
                    out.append(tuple(v))
                else:
                    self.fail(value)
            return tuple(out)
        self.fail(value)


class Shape(Kind):
    """A target shape for reshape: ints, at most one -1."""

    text = "a list of positive integers with at most one -1"

    def __call__(self, value, op):
        if not isinstance(value, (list, tuple)):
            self.fail(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v == -1) for v in value):
            self.fail(value)
        if sum(1 for v in value if v == -1) > 1:
            self.fail(value)
        return tuple(value)


class IntsOrInt(Kind):
    """An int or a tuple of ints (axes)."""

    text = "an integer or a tuple of integers"

    def __call__(self, value, op):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        self.fail(value)


class Callable(Kind):
    """A name or call from one family (activation, initializer, regularizer).

    Normalised to ``{"name": ..., <argument>: <value>, ...}`` with the family
    member's own defaults filled in.
    """

    def __init__(self, family: str):
        self.family = family
        self.text = f"an {family}" if family[0] in "aeiou" else f"a {family}"

    def __call__(self, value, op):
        members = _TABLES["families"][self.family]
        if isinstance(value, Sym):
            value = CallValue(value.name)
        if isinstance(value, str):
            value = CallValue(value)
        if not isinstance(value, CallValue):
            self.fail(value)
        if value.name not in members:
            hint = did_you_mean(value.name, members)
            raise AttrError(f"unknown {self.family} '{value.name}'" + (f"; {hint}" if hint else ""),
                            notes=(f"{self.family}s: {', '.join(sorted(members))}",))
        member = members[value.name]
        attrs = member.bind_values(value.args, value.kwargs)
        return {"name": value.name, **attrs}


class Layer(Kind):
    """A layer call used as an argument (``bidirectional(lstm(64))``)."""

    def __init__(self, *ops: str):
        self.ops = ops
        self.text = "a layer call: " + ", ".join(f"{o}(...)" for o in ops)

    def __call__(self, value, op):
        if isinstance(value, Sym):
            value = CallValue(value.name)
        if not isinstance(value, CallValue) or value.name not in self.ops:
            self.fail(value)
        inner = lookup_op(value.name)
        return {"op": value.name, "attrs": inner.bind_values(value.args, value.kwargs)}


@dataclass(frozen=True)
class Attr:
    """An attribute declaration: its kind, its default, and one line of documentation."""

    kind: Kind
    default: Any = REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# Op definitions -------------------------------------------------------------------


class InferError(Exception):
    """A shape or type error found by an op's ``infer``; may carry the arithmetic."""

    def __init__(self, message: str, formula: str | None = None, code: str = "E401",
                 notes: tuple[str, ...] = (), arg: str | None = None):
        super().__init__(message)
        self.message, self.formula, self.code, self.notes, self.arg = message, formula, code, notes, arg


class OpDef:
    """Base of every op. Subclasses declare ``name``, ``positional``, ``attrs``."""

    name: ClassVar[str] = ""
    category: ClassVar[str] = "layer"  # layer | activation | merge | loss | optimizer | initializer | regularizer
    positional: ClassVar[tuple[str, ...]] = ()
    attrs: ClassVar[dict[str, Attr]] = {}
    rank: ClassVar[int] = 0  # spatial rank for conv/pool families
    doc: ClassVar[str] = ""
    shape_rule: ClassVar[str] = ""
    # Documentation only (docs/language.md, docs/weights.md; scripts/gen_docs.py): the weights in
    # canonical layout and how ``macs`` counts, in words.
    params_rule: ClassVar[str] = ""
    macs_rule: ClassVar[str] = ""
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    #: keyword arguments that name a value of the spec rather than a constant (attention's ``mask``): the
    #: checker adds the value as the op's last input and binds the attribute as ``true``
    value_args: ClassVar[tuple[str, ...]] = ()
    float_input: ClassVar[bool] = True
    accepts_activation: ClassVar[bool] = False
    # Metadata for the lowering stage and the backends (read, never parsed from the op's name):
    #: the op family shared by every rank and variant (``conv``, ``pool``, ``recurrent``, ...)
    family: ClassVar[str] = ""
    #: ``max`` or ``avg`` for pools
    kind: ClassVar[str] = ""
    #: reads a channels-first spatial input ``[C, *S]`` (a backend may hold it channels-last)
    spatial: ClassVar[bool] = False
    #: takes ``padding`` as (begin, end) pairs and ``stride``/``dilation`` per axis (conv and pool families)
    windowed: ClassVar[bool] = False
    #: gate blocks along axis 0 of a recurrent layer's weights
    gates: ClassVar[int] = 0
    #: framework -> the order of the canonical gate blocks in that framework's weights
    gate_orders: ClassVar[dict[str, tuple[int, ...]]] = {}
    #: framework -> canonical param -> the named layout change that framework's variable needs
    #: (``transpose``, ``window_first``, ``depthwise``); a missing entry means "as canonical"
    weight_layouts: ClassVar[dict[str, dict[str, str]]] = {}

    def bind_values(self, args: tuple, kwargs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
        """Bind positional and keyword values to attributes, validate, fill defaults.

        Raises :class:`AttrError` (message names the argument) on the first problem.
        """
        attrs = self.attrs
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] is not attrs:
            plan = self._plan = (attrs, self._defaults_plan())
        if len(args) > len(self.positional):
            expected = len(self.positional)
            raise AttrError(f"{self.name} takes {expected} positional argument"
                            f"{'' if expected == 1 else 's'}; received: {len(args)}", arg=expected)
        bound = dict(zip(self.positional, args)) if args else {}
        for key, val in kwargs:
            if key not in attrs:
                alias = KWARG_ALIASES.get(key)
                hint = (f"did you mean '{alias}'?" if alias in attrs
                        else did_you_mean(key, attrs))
                notes = (f"{self.name}'s arguments: {', '.join(attrs)}",) if attrs else ()
                raise AttrError(f"{self.name} has no argument '{key}'" + (f"; {hint}" if hint else ""),
                                "E303", key, notes if not hint else ())
            if key in bound:
                raise AttrError(f"{self.name} got argument '{key}' twice", arg=key)
            bound[key] = val
        out: dict[str, Any] = {}
        for key, attr, how, value in plan[1]:
            if key in bound:
                try:
                    out[key] = attr.kind(bound[key], self)
                except AttrError as exc:
                    raise AttrError(f"{self.name} argument '{key}': {exc}", exc.code, key, exc.notes) from None
            elif how is _AS_IS:
                out[key] = value
            elif how is _SHALLOW:
                out[key] = value.copy()
            elif how is _DEEP:
                out[key] = _fresh(value)
            elif attr.required:
                raise AttrError(f"{self.name} needs argument '{key}'"
                                + (f" ({attr.doc})" if attr.doc else ""), "E302")
            else:  # a default its kind refuses: validated (and refused) at each use, as written
                out[key] = attr.kind(attr.default, self)
        return out

    def _defaults_plan(self) -> tuple:
        """Per attribute: (key, attr, how to fill it when not given, the validated default).

        A default is a constant: validated once per op; each node gets its own copy of a dict or list.
        """
        plan = []
        for key, attr in self.attrs.items():
            if attr.required:
                plan.append((key, attr, _REQUIRED, None))
                continue
            if attr.default is None:
                plan.append((key, attr, _AS_IS, None))
                continue
            try:
                value = attr.kind(attr.default, self)
            except Exception:  # raised again where it was: when the default is used
                plan.append((key, attr, _EACH_TIME, None))
                continue
            if not _mutable(value):
                how = _AS_IS
            elif type(value) is dict and not any(_mutable(v) for v in value.values()):
                how = _SHALLOW
            else:
                how = _DEEP
            plan.append((key, attr, how, value))
        return tuple(plan)

    def infer(self, attrs: dict[str, Any], inputs: list[TensorType]) -> tuple[TensorType, dict[str, Any]]:
        """Output type and the attributes to store in the IR (normalised)."""
        return inputs[0], attrs

    def params(self, attrs: dict[str, Any], inputs: list[TensorType], out: TensorType) -> list[Param]:
        """Weight tensors in canonical layout."""
        return []

    def macs(self, attrs: dict[str, Any], inputs: list[TensorType], out: TensorType) -> int:
        """Multiply-accumulates per sample."""
        return 0


def static(dim: Dim, what: str) -> int:
    """A dimension that must be known before run time."""
    if not isinstance(dim, int):
        raise InferError(f"{what} must have a static size; received the run-time dimension '{dim}'",
                         code="E404")
    return dim


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """A per-sample axis in [-rank, rank) as a non-negative index."""
    if not -rank <= axis < rank:
        raise InferError(f"{what}={axis} is out of range for a rank-{rank} value "
                         f"(per-sample axes {-rank}..{rank - 1})", code="E405")
    return axis % rank
