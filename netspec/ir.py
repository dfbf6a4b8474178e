"""The typed IR: what a spec means, with every shape known and every attribute normalised.

Backends read only this. Attributes store meaning, not a framework's parameter:
explicit begin/end padding per spatial axis, pooling rounding, whether an average
counts padding, BatchNorm momentum in the spec's convention, shared-layer
identity. Source spans ride along for diagnostics but are excluded from dumps
and comparisons of meaning (:meth:`Program.meaning`).

The spec's structure rides along too, for generators that mirror it: the
blocks a network uses (:class:`BlockDef`), every use of one
(:class:`BlockInstance`), every ``STEP * n`` run (:class:`RepeatGroup`), and
on each node the source text of the arguments that depend on block
parameters (``Node.exprs``). The nodes alone define the computation; the
structure is how the spec wrote it, so :meth:`Program.meaning` leaves it out
(renaming a block parameter or inlining a block changes no meaning).

The checker builds the same data as the plain objects of :mod:`netspec.ir_plain`
(``netspec check`` never imports pydantic); :func:`from_plain` turns them into
these models, and the behaviour (``rank``, ``type_of``, ``param_counts``, ...) is
written once there, in mixins both kinds inherit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import ir_plain
from .ir_plain import (
    Dim,
    NetworkBehaviour,
    NodeBehaviour,
    ParamBehaviour,
    ProgramBehaviour,
    TensorTypeBehaviour,
)
from .source import Span

__all__ = ["BlockDef", "BlockInstance", "BlockParam", "Dim", "LossTerm", "Network", "Node", "Optimizer", "Param",
           "Program", "RepeatGroup", "TensorType", "Value", "from_plain"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)


class TensorType(TensorTypeBehaviour, _Frozen):
    """A per-sample tensor type: dtype and shape (ints, or names for run-time sizes)."""

    dtype: str = "float32"
    shape: tuple[Dim, ...] = ()


class Value(_Frozen):
    """A named model input or training target."""

    name: str
    type: TensorType
    span: Span | None = Field(default=None, exclude=True, repr=False)


class Param(ParamBehaviour, _Frozen):
    """One weight tensor of a layer, in the canonical layout (see docs/weights.md)."""

    name: str
    shape: tuple[int, ...]
    trainable: bool = True
    init: dict[str, Any] = Field(default_factory=lambda: {"name": "zeros"})
    regularizer: dict[str, Any] | None = None


class Node(NodeBehaviour, _Frozen):
    """One op applied at one place in the network.

    ``name`` is unique and hierarchical (``stage2.0.main.conv2d``); ``inputs``
    name values (other nodes or network inputs); ``layer`` names the weight
    owner: equal to ``name`` unless the node is a use of a shared ``layer``.
    ``params`` are listed on every use; they count once per ``layer``.
    """

    name: str
    op: str
    attrs: dict[str, Any] = Field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    type: TensorType
    layer: str
    params: tuple[Param, ...] = ()
    macs: int = 0
    #: attribute -> source text (Python syntax) of its argument, for the arguments inside a block
    #: that use the block's parameters: ``{"filters": "width * 4", "stride": "stride"}``
    exprs: dict[str, str] = Field(default_factory=dict)
    span: Span | None = Field(default=None, exclude=True, repr=False)


class LossTerm(_Frozen):
    """``weight * fn(args..., attrs)``: one term of the loss sum."""

    fn: str
    args: tuple[str, ...]
    attrs: dict[str, Any] = Field(default_factory=dict)
    weight: float = 1.0
    span: Span | None = Field(default=None, exclude=True, repr=False)


class Optimizer(_Frozen):
    name: str
    attrs: dict[str, Any] = Field(default_factory=dict)
    span: Span | None = Field(default=None, exclude=True, repr=False)


class BlockParam(_Frozen):
    """A block parameter; ``default`` is the source text of its default (it may use earlier parameters)."""

    name: str
    default: str | None = None


class BlockDef(_Frozen):
    """A block a network uses: its name and parameters. Its body is what its instances expanded to."""

    name: str
    params: tuple[BlockParam, ...] = ()
    span: Span | None = Field(default=None, exclude=True, repr=False)


class BlockInstance(_Frozen):
    """One use of a block: every node it expanded to is named ``path + relative name``.

    ``path`` ends with a dot (``features.3.``; nested: ``features.3.main.0.``).
    ``args`` are the evaluated hyperparameter arguments, defaults applied, in
    parameter order (an op or block passed as an argument is kept as its spec
    text, ``relu()``). ``values`` are its value parameters: parameter -> the id
    of the value of the caller's scope it reads (``{"memory": "memory",
    "pad": "source_pad"}`` for ``decoder_layer(memory, source_pad)``), in
    parameter order; the nodes inside read those ids directly. ``input`` and
    ``output`` are the values it reads and returns; instances are listed in
    expansion order, an enclosing instance before those inside it.
    """

    path: str
    block: str
    args: dict[str, Any] = Field(default_factory=dict)
    values: dict[str, str] = Field(default_factory=dict)
    input: str
    output: str
    span: Span | None = Field(default=None, exclude=True, repr=False)


class RepeatGroup(_Frozen):
    """One ``STEP * n`` run: ``members`` are instance paths (a block step) or node names (an op step)."""

    step: str  # the block or op name
    kind: str  # "block" or "op"
    members: tuple[str, ...]
    span: Span | None = Field(default=None, exclude=True, repr=False)


class Network(NetworkBehaviour, _Frozen):
    """One network: inputs, targets, nodes in topological order, outputs, training setup."""

    name: str
    inputs: tuple[Value, ...]
    targets: tuple[Value, ...] = ()
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...] = ()
    loss: tuple[LossTerm, ...] = ()
    optimizer: Optimizer | None = None
    #: the spec's structure (not part of the meaning): blocks used, their instances, repeat runs
    blocks: tuple[BlockDef, ...] = ()
    instances: tuple[BlockInstance, ...] = ()
    repeats: tuple[RepeatGroup, ...] = ()
    span: Span | None = Field(default=None, exclude=True, repr=False)


class Program(ProgramBehaviour, _Frozen):
    """Every network of one spec file."""

    file: str
    networks: tuple[Network, ...]

    def meaning(self) -> dict:
        """A plain dump without file names, spans and structure: two specs mean the same iff equal.

        Structure (blocks, instances, repeat runs, ``Node.exprs``) is how the
        spec is written, not what it computes; node names still carry the paths.
        """
        structure = {"blocks": True, "instances": True, "repeats": True, "nodes": {"__all__": {"exprs"}}}
        return self.model_dump(exclude={"file": True, "networks": {"__all__": structure}})


#: plain class -> its typed twin (same name, same fields)
_TWINS: dict[type, type[_Frozen]] = {cls: globals()[name] for name, cls in ir_plain.CLASSES.items()}


def from_plain(obj):
    """The typed IR of a plain IR object (:mod:`netspec.ir_plain`), built without re-validating.

    The checker validated every value while it built it, so each model is made with
    ``model_construct``; an object reached twice (a shared layer's weights) is converted once.
    Typed objects pass through unchanged.
    """
    memo: dict[int, Any] = {}

    def convert(value):
        cls = _TWINS.get(type(value))
        if cls is not None:
            hit = memo.get(id(value))
            if hit is None:
                fields = {f: convert(getattr(value, f)) for f in value._fields}
                hit = memo[id(value)] = cls.model_construct(**fields)
            return hit
        if type(value) is tuple and value and type(value[0]) in _TWINS:
            key = id(value)
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = tuple(convert(v) for v in value)
            return hit
        return value

    return convert(obj)
