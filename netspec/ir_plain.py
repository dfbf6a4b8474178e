"""The IR as plain objects, and the behaviour it shares with the typed IR of :mod:`netspec.ir`.

The checker builds every node of a spec, and ``netspec check`` only reads them:
validating each through pydantic would cost more than the checking (and the
import of pydantic alone, more than the whole check of a ResNet). So the checker,
the op registry's rules and the report work on the classes here: one plain
``__slots__`` class per IR class, with the same field names, defaults,
properties and methods, and no import beyond the standard library.

The typed pydantic classes of :mod:`netspec.ir` stay the public model: they
inherit the behaviour written once here (the ``*Behaviour`` mixins), and
:func:`netspec.ir.from_plain` turns a plain program into them without
re-validating (everything was validated while it was built). ``netspec.load``
does that on first access of ``Spec.program``.

Plain objects are values: compare and hash by their fields (as the frozen
pydantic models do), and are never changed once built; ``model_copy(update=...)``
gives a changed copy, as on the pydantic models.
"""

from __future__ import annotations

from math import prod
from typing import Any

Dim = int | str


# Behaviour shared by the plain and the pydantic classes (no fields, no annotations) -----------------


class TensorTypeBehaviour:
    __slots__ = ()

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def size(self) -> int | None:
        """Number of elements per sample, or None when a dimension is dynamic."""
        return prod(self.shape) if self.is_static else None

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"[{dims}]" if self.dtype == "float32" else f"{self.dtype}[{dims}]"


class ParamBehaviour:
    __slots__ = ()

    @property
    def size(self) -> int:
        return prod(self.shape)


class NodeBehaviour:
    __slots__ = ()

    @property
    def shared(self) -> bool:
        return self.layer != self.name


class NetworkBehaviour:
    __slots__ = ()

    def type_of(self, value: str):
        """The type of a node output, input or target."""
        for v in (*self.inputs, *self.targets):
            if v.name == value:
                return v.type
        return self.node(value).type

    def node(self, name: str):
        return _node_index(self.nodes)[name]

    def layers(self) -> dict[str, tuple]:
        """Weight owners and their params, each shared layer once, in first-use order."""
        out: dict[str, tuple] = {}
        for n in self.nodes:
            if n.params and n.layer not in out:
                out[n.layer] = n.params
        return out

    def param_counts(self) -> tuple[int, int]:
        """(trainable, non-trainable) parameter counts, shared layers counted once."""
        trainable = non = 0
        for params in self.layers().values():
            for p in params:
                if p.trainable:
                    trainable += p.size
                else:
                    non += p.size
        return trainable, non


class ProgramBehaviour:
    __slots__ = ()

    def network(self, name: str | None = None):
        if name is None:
            return self.networks[0]
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)


_INDEXES: dict[int, tuple[tuple, dict]] = {}


def _node_index(nodes: tuple) -> dict:
    """name -> node for a node tuple, cached by the tuple's identity (networks are immutable)."""
    hit = _INDEXES.get(id(nodes))
    if hit is not None and hit[0] is nodes:
        return hit[1]
    if len(_INDEXES) >= 64:
        _INDEXES.clear()
    index = {n.name: n for n in nodes}
    _INDEXES[id(nodes)] = (nodes, index)
    return index


# The plain classes ------------------------------------------------------------------------------------


class _Plain:
    """Value semantics over ``_fields`` (every field, as the pydantic model lists them)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    #: fields left out of ``repr`` (as ``Field(repr=False)`` on the pydantic model)
    _hidden: tuple[str, ...] = ("span",)

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields if f not in self._hidden)
        return f"{type(self).__name__}({fields})"

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False):
        """A copy with ``update``'s fields changed (shallow, as pydantic's ``model_copy``)."""
        new = object.__new__(type(self))
        for f in self._fields:
            object.__setattr__(new, f, getattr(self, f))
        for f, v in (update or {}).items():
            if f not in self._fields:
                raise AttributeError(f"{type(self).__name__} has no field '{f}'")
            object.__setattr__(new, f, v)
        return new

    def to_model(self):
        """The typed pydantic object (:mod:`netspec.ir`), built without re-validating."""
        from .ir import from_plain

        return from_plain(self)

    def model_dump(self, **options) -> dict:
        """As the typed object's ``model_dump`` (builds it)."""
        return self.to_model().model_dump(**options)


class TensorType(TensorTypeBehaviour, _Plain):
    """A per-sample tensor type: dtype and shape (ints, or names for run-time sizes)."""

    __slots__ = ("dtype", "shape")
    _fields = ("dtype", "shape")

    def __init__(self, dtype: str = "float32", shape: tuple = ()):
        self.dtype = dtype
        self.shape = shape


class Value(_Plain):
    """A named model input or training target."""

    __slots__ = ("name", "type", "span")
    _fields = ("name", "type", "span")

    def __init__(self, name: str, type: TensorType, span=None):
        self.name = name
        self.type = type
        self.span = span


class Param(ParamBehaviour, _Plain):
    """One weight tensor of a layer, in the canonical layout (see docs/weights.md)."""

    __slots__ = ("name", "shape", "trainable", "init", "regularizer")
    _fields = ("name", "shape", "trainable", "init", "regularizer")

    def __init__(self, name: str, shape: tuple, trainable: bool = True, init: dict | None = None,
                 regularizer: dict | None = None):
        self.name = name
        self.shape = shape
        self.trainable = trainable
        self.init = {"name": "zeros"} if init is None else init
        self.regularizer = regularizer


class Node(NodeBehaviour, _Plain):
    """One op applied at one place in the network (see :class:`netspec.ir.Node`)."""

    __slots__ = ("name", "op", "attrs", "inputs", "type", "layer", "params", "macs", "exprs", "span")
    _fields = ("name", "op", "attrs", "inputs", "type", "layer", "params", "macs", "exprs", "span")

    def __init__(self, name: str, op: str, type: TensorType, layer: str, attrs: dict | None = None,
                 inputs: tuple = (), params: tuple = (), macs: int = 0, exprs: dict | None = None, span=None):
        self.name = name
        self.op = op
        self.attrs = {} if attrs is None else attrs
        self.inputs = inputs
        self.type = type
        self.layer = layer
        self.params = params
        self.macs = macs
        self.exprs = {} if exprs is None else exprs
        self.span = span


class LossTerm(_Plain):
    """``weight * fn(args..., attrs)``: one term of the loss sum."""

    __slots__ = ("fn", "args", "attrs", "weight", "span")
    _fields = ("fn", "args", "attrs", "weight", "span")

    def __init__(self, fn: str, args: tuple, attrs: dict | None = None, weight: float = 1.0, span=None):
        self.fn = fn
        self.args = args
        self.attrs = {} if attrs is None else attrs
        self.weight = weight
        self.span = span


class Optimizer(_Plain):
    __slots__ = ("name", "attrs", "span")
    _fields = ("name", "attrs", "span")

    def __init__(self, name: str, attrs: dict | None = None, span=None):
        self.name = name
        self.attrs = {} if attrs is None else attrs
        self.span = span


class BlockParam(_Plain):
    """A block parameter; ``default`` is the source text of its default."""

    __slots__ = ("name", "default")
    _fields = ("name", "default")

    def __init__(self, name: str, default: str | None = None):
        self.name = name
        self.default = default


class BlockDef(_Plain):
    """A block a network uses: its name and parameters."""

    __slots__ = ("name", "params", "span")
    _fields = ("name", "params", "span")

    def __init__(self, name: str, params: tuple = (), span=None):
        self.name = name
        self.params = params
        self.span = span


class BlockInstance(_Plain):
    """One use of a block (see :class:`netspec.ir.BlockInstance`)."""

    __slots__ = ("path", "block", "args", "values", "input", "output", "span")
    _fields = ("path", "block", "args", "values", "input", "output", "span")

    def __init__(self, path: str, block: str, input: str, output: str, args: dict | None = None,
                 values: dict | None = None, span=None):
        self.path = path
        self.block = block
        self.args = {} if args is None else args
        self.values = {} if values is None else values
        self.input = input
        self.output = output
        self.span = span


class RepeatGroup(_Plain):
    """One ``STEP * n`` run: ``members`` are instance paths (a block step) or node names (an op step)."""

    __slots__ = ("step", "kind", "members", "span")
    _fields = ("step", "kind", "members", "span")

    def __init__(self, step: str, kind: str, members: tuple, span=None):
        self.step = step
        self.kind = kind
        self.members = members
        self.span = span


class Network(NetworkBehaviour, _Plain):
    """One network: inputs, targets, nodes in topological order, outputs, training setup."""

    __slots__ = ("name", "inputs", "targets", "nodes", "outputs", "output_names", "loss", "optimizer", "blocks",
                 "instances", "repeats", "span")
    _fields = __slots__

    def __init__(self, name: str, inputs: tuple, nodes: tuple, outputs: tuple, targets: tuple = (),
                 output_names: tuple = (), loss: tuple = (), optimizer: Optimizer | None = None,
                 blocks: tuple = (), instances: tuple = (), repeats: tuple = (), span=None):
        self.name = name
        self.inputs = inputs
        self.targets = targets
        self.nodes = nodes
        self.outputs = outputs
        self.output_names = output_names
        self.loss = loss
        self.optimizer = optimizer
        self.blocks = blocks
        self.instances = instances
        self.repeats = repeats
        self.span = span


class Program(ProgramBehaviour, _Plain):
    """Every network of one spec file."""

    __slots__ = ("file", "networks")
    _fields = ("file", "networks")

    def __init__(self, file: str, networks: tuple):
        self.file = file
        self.networks = networks

    def meaning(self) -> dict:
        """As :meth:`netspec.ir.Program.meaning` (builds the typed program)."""
        return self.to_model().meaning()


#: Every plain class, by name (the names of their pydantic twins in :mod:`netspec.ir`).
CLASSES: dict[str, type[_Plain]] = {cls.__name__: cls for cls in (
    TensorType, Value, Param, Node, LossTerm, Optimizer, BlockParam, BlockDef, BlockInstance, RepeatGroup,
    Network, Program)}
