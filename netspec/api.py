"""The Python API: ``netspec.load(path) -> Spec``."""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir_plain
from .checker import Checker
from .diagnostics import Diagnostic, SpecError
from .frontend import form_of, parse_source, read_source
from .gcpause import building
from .source import Source

if TYPE_CHECKING:
    from . import ir


class Spec:
    """A checked spec: its source, syntax tree and IR.

    ``program`` (and ``networks``, ``network()``) is the typed pydantic IR (:mod:`netspec.ir`), built on
    first use from ``plain_program``, the same data as the checker built it (:mod:`netspec.ir_plain`);
    the report (``check()``) reads the plain one, so checking a spec never imports pydantic.
    """

    def __init__(self, source: Source, module, program: ir.Program | ir_plain.Program,
                 warnings: tuple[Diagnostic, ...] = ()):
        self.source = source
        self.module = module
        #: The checked program as the checker built it: plain objects with the fields and behaviour of
        #: ``program``, without pydantic (the typed program itself when the Spec was made from one).
        self.plain_program = program
        if not isinstance(program, ir_plain.Program):
            self.program = program  # already typed (fills the cached property)
        #: Warnings of the check (E208: an unused value, left out of the model), in source order.
        self.warnings = tuple(warnings)

    @cached_property
    def program(self) -> ir.Program:
        """The typed IR (built once, without re-validating: the checker validated every value)."""
        from .ir import from_plain

        return from_plain(self.plain_program)

    def render_warnings(self) -> str:
        """The warnings as ``netspec check`` prints them ('' when there are none)."""
        return "\n\n".join(w.render({self.source.name: self.source}) for w in self.warnings)

    @property
    def networks(self) -> tuple[ir.Network, ...]:
        return self.program.networks

    def network(self, name: str | None = None) -> ir.Network:
        """One network by name (default: the first); raises KeyError for an unknown name."""
        return self.program.network(name)

    def check(self):
        """The report (shapes, parameters, MACs) as an object."""
        from .report import build_report

        return build_report(self.plain_program)

    def compile(self, target: str, network: str | None = None, **options) -> str:
        """Generated source for ``target`` ("torch" or "keras"); the code ``netspec compile`` writes."""
        from .backends import generator

        return generator(target).generate(self.network(network), **options)

    @contextmanager
    def _located(self):
        """Diagnostics raised by a backend render with this spec's source lines."""
        try:
            yield
        except SpecError as exc:
            exc.sources.setdefault(self.source.name, self.source)
            raise

    def preflight(self, command: str, network: str | None = None, backends=(), batch: int | None = None,
                  **train) -> None:
        """Refuse (E304) a backend command whose tensors exceed the memory limits; see :mod:`netspec.limits`.

        ``train``: for ``"train"`` (verify --train), ``steps``, ``float64`` and ``noise_floor``.
        """
        from .limits import preflight

        with self._located():
            preflight(self.network(network), command, tuple(backends), batch, **train)

    def init_weights(self, seed: int = 0, network: str | None = None):
        """Deterministic canonical weights (numpy) drawn from the spec's initialisers."""
        from .weights import init_weights

        with self._located():
            return init_weights(self.program, seed, network)

    def to_torch(self, weights=None, network: str | None = None):
        """A ``torch.nn.Module`` built by executing the generated source; canonical ``weights`` loaded if given.

        ``weights``: a mapping of canonical names to arrays, or a safetensors path (see
        :func:`netspec.weights.prepare_weights`).
        """
        self.preflight("torch", network)
        from .backends import torch as backend

        with self._located():
            return backend.build(self.network(network), weights)

    def to_keras(self, weights=None, network: str | None = None, layout: str = "channels_last"):
        """A ``keras.Model`` built by executing the generated source; canonical ``weights`` loaded if given."""
        self.preflight("keras", network)
        from .backends import keras as backend

        with self._located():
            return backend.build(self.network(network), weights, layout=layout)

    def to_onnx(self, weights=None, network: str | None = None, opset: int | None = None,
                keep_bn: bool = False, seed: int = 0):
        """An ``onnx.ModelProto`` emitted straight from the IR (no torch, no tensorflow)."""
        self.preflight("onnx", network)
        from .backends import onnx as backend

        with self._located():
            return backend.export(self.network(network), weights, opset=opset, keep_bn=keep_bn, seed=seed)

    def fit(self, data, val=None, **options):
        """Train on ``data`` (see :func:`netspec.train.fit` for the options); returns a ``TrainResult``."""
        from .train import fit

        return fit(self, data, val, **options)

    def evaluate(self, weights, data, **options) -> dict:
        """The spec's loss and accuracy of canonical ``weights`` on ``data`` (:func:`netspec.train.evaluate`)."""
        from .train import evaluate

        return evaluate(self, weights, data, **options)


def parse_text(text: str, name: str = "<string>.net") -> Spec:
    """Parse and check spec text; the name's extension chooses the form."""
    source = Source(name, text)
    # the cyclic GC waits while the syntax tree and the IR grow (see netspec.gcpause)
    try:
        with building():
            module = parse_source(source)
            checker = Checker(module, source)
            program = checker.run()
    except SpecError as exc:
        exc.sources.setdefault(source.name, source)
        raise
    warnings = sorted(checker.bag.warnings, key=lambda d: (d.span is not None, d.span and d.span.line,
                                                           d.span and d.span.col))
    return Spec(source, module, program, tuple(warnings))


def load(path: str | Path) -> Spec:
    """Load and check a spec file (.net, .yaml or .yml).

    Raises :class:`netspec.SpecError` carrying the diagnostics on bad input.
    """
    form_of(path)
    source = read_source(path)
    return parse_text(source.text, source.name)
