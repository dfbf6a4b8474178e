"""Backends: generated PyTorch and Keras source, and ONNX graphs, from the IR.

Every backend fulfils one contract, :class:`netspec.backends.base.Backend` (generate, build,
canonical weights in and out, run, train step); this module is the one place that registers
them. ``get(name)`` returns the backend; ``available(name)`` says whether its framework is
installed without importing it. verify, the CLI and the API use nothing else.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the contract is imported with the first backend: the registry itself is cheap
    from .base import Backend, Built


@dataclass(frozen=True)
class Entry:
    """One registered backend: where its class lives and what it needs."""

    path: str  # "module:Class"
    frameworks: tuple[str, ...]
    emits_source: bool  # a `netspec compile --target`
    trains: bool


REGISTRY: dict[str, Entry] = {
    "torch": Entry("netspec.backends.torch:TorchBackend", ("torch",), True, True),
    "keras": Entry("netspec.backends.keras:KerasBackend", ("tensorflow", "keras"), True, True),
    "onnx": Entry("netspec.backends.onnx:OnnxBackend", ("onnx", "onnxruntime"), False, False),
}

#: Every backend, in verify's reference order; those that write source; those that train.
BACKENDS = tuple(REGISTRY)
TARGETS = tuple(n for n, e in REGISTRY.items() if e.emits_source)
TRAINERS = tuple(n for n, e in REGISTRY.items() if e.trains)

_INSTANCES: dict[str, Backend] = {}


def get(name: str) -> Backend:
    """The backend registered as ``name`` (imports its module, not its framework)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend '{name}'; expected one of {', '.join(REGISTRY)}")
    if name not in _INSTANCES:
        module, cls = REGISTRY[name].path.split(":")
        _INSTANCES[name] = getattr(import_module(module), cls)()
    return _INSTANCES[name]


def available(name: str) -> bool:
    """Whether a backend's framework is installed (checked without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in REGISTRY[name].frameworks)


def generator(target: str) -> Backend:
    """The backend of a compile target; it provides ``generate(network, **options) -> str``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target '{target}'; expected one of {', '.join(TARGETS)}")
    return get(target)


def __getattr__(name: str):
    """``Backend`` and ``Built`` (netspec.backends.base), imported on first use: the CLI reads the
    registry on every command, and only the commands that build something need the IR classes."""
    if name in ("Backend", "Built"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module 'netspec.backends' has no attribute '{name}'")


__all__ = ["BACKENDS", "REGISTRY", "TARGETS", "TRAINERS", "Backend", "Built", "available", "generator", "get"]
