"""What every backend shares: the backend contract, the emitter registry pattern, safe names, literals.

A backend's generator lists one emitter per op in ``TRANSFORMS`` (sqlglot's
pattern), each called as ``emitter_fn(emitter, node)``: a subclass overrides only
what differs with ``TRANSFORMS = {**Parent.TRANSFORMS, "op": emit_fn}``. An op
without an emitter gives an E601 diagnostic at the op's place in the spec, never
a crash. :class:`Backend` is the contract every target fulfils (registered in
:mod:`netspec.backends`); verify, the CLI and the API talk to it only.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..diagnostics import Diagnostic, SpecError
from .printer import identifier, literal  # noqa: F401  (their home is the shared printer)

if TYPE_CHECKING:  # annotations only: the registry loads without pydantic (netspec check)
    from .. import ir


def unsupported(backend: str, node: ir.Node, what: str | None = None) -> Diagnostic:
    """E601: this backend cannot express this node (or one of its attributes)."""
    detail = what or f"op '{node.op}'"
    return Diagnostic("E601", f"the {backend} backend does not support {detail} (layer '{node.name}')", node.span)


class Emitter:
    """Base of a backend generator: dispatches each node to ``TRANSFORMS[node.op]``."""

    backend: ClassVar[str] = ""
    TRANSFORMS: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(self, network: ir.Network):
        self.network = network
        self.errors: list[Diagnostic] = []

    def emit(self, node: ir.Node, *args, **kwargs):
        fn = self.TRANSFORMS.get(node.op)
        if fn is None:
            self.errors.append(unsupported(self.backend, node))
            return None
        return fn(self, node, *args, **kwargs)

    def fail(self, node: ir.Node, what: str) -> None:
        """Report an attribute this backend cannot express."""
        self.errors.append(unsupported(self.backend, node, what))

    def raise_errors(self, sources=None) -> None:
        if self.errors:
            raise SpecError(self.errors, sources)


# The backend contract -----------------------------------------------------------------------------


@dataclass
class Built:
    """A model one backend built from one network: the framework's object and what the backend learnt.

    ``model`` is the ``nn.Module``, ``keras.Model`` or ``onnx.ModelProto``; ``network`` the IR it came
    from; ``state`` what the backend keeps between calls (layouts, a weight plan, an optimiser, a
    session), so that no call regenerates the source to learn it again.
    """

    model: Any
    network: ir.Network
    state: dict[str, Any] = field(default_factory=dict)


class Backend:
    """What every target offers, the one interface ``verify``, the CLI and the API use.

    A backend's module (``netspec.backends.<name>``) keeps its generator and helpers; its
    ``Backend`` subclass, registered in :mod:`netspec.backends`, is the contract:

    - ``generate(network, **options) -> str``: the source ``netspec compile`` writes (``emits_source``);
    - ``build(network, weights=None, dtype="float32", **options) -> Built``: a model made from that
      very source (ONNX: the graph), with canonical weights loaded if given;
    - ``load_canonical(built, weights)`` / ``export_canonical(built) -> dict``: canonical weights in
      and out (``<layer>.<param>`` -> numpy array, docs/weights.md);
    - ``run(built, inputs) -> list``: inference on a batch of channels-first numpy inputs keyed by input
      name; outputs channels-first, in output order;
    - ``train_step(built, inputs, targets) -> float``: one optimisation step of the spec's loss and
      optimiser (``trains``); returns the loss before the update;
    - ``session(dtype)``: a context for building and training in ``dtype`` (default: nothing to set);
    - ``seed(seed)``: seed the framework's own initialisers.

    ``lowering`` lists the passes (netspec/lower.py) the backend's emitters expect. Which frameworks
    a backend needs is registered beside it (``netspec.backends.REGISTRY``), so that availability is
    known without importing the backend's module.
    """

    name: ClassVar[str] = ""
    emits_source: ClassVar[bool] = False
    trains: ClassVar[bool] = False
    lowering: ClassVar[tuple[Callable[[ir.Network], ir.Network], ...]] = ()
    #: the options ``generate`` and ``build`` take beyond the contract's (Keras: ``layout``)
    options: ClassVar[tuple[str, ...]] = ()
    #: what verify reports about how this backend runs and trains (layouts), if anything
    run_note: ClassVar[str] = ""
    train_note: ClassVar[str] = ""

    def generate(self, network: ir.Network, **options) -> str:
        raise NotImplementedError(f"the {self.name} backend writes no source")

    def build(self, network: ir.Network, weights=None, dtype: str = "float32", **options) -> Built:
        raise NotImplementedError

    def load_canonical(self, built: Built, weights) -> None:
        raise NotImplementedError

    def export_canonical(self, built: Built) -> dict:
        raise NotImplementedError

    def run(self, built: Built, inputs: dict) -> list:
        raise NotImplementedError

    def train_step(self, built: Built, inputs: dict, targets: dict) -> float:
        raise NotImplementedError(f"the {self.name} backend cannot train")

    def session(self, dtype: str = "float32"):
        import contextlib

        return contextlib.nullcontext()

    def seed(self, seed: int) -> None:
        """Seed the framework's initialisers (nothing to seed by default)."""


# Runtime helpers --------------------------------------------------------------------------------------


@functools.cache
def _definitions(path: str) -> dict[str, str]:
    """Top-level function and class definitions of a Python file, decorators included, by name."""
    text = Path(path).read_text()
    lines = text.splitlines()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out[node.name] = "\n".join(lines[first - 1:node.end_lineno])
    return out


def helper_source(path: str | Path, name: str) -> str:
    """The source of one runtime helper (a top-level definition of ``path``), to copy into generated code.

    Runtime helpers live in real modules (``netspec/backends/runtime/``), linted and tested; the
    generators copy the definitions a network uses, so generated files never import netspec.
    """
    return _definitions(str(path))[name]
