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

from .base import Backend, Built

if TYPE_CHECKING:  # annotations only: the registry loads without pydantic (netspec check)
    from .. import ir


@dataclass(frozen=True)
class Entry:
    """One registered backend: where its class lives and what it needs."""

    path: str  # "module:Class"
    frameworks: tuple[str, ...]
    emits_source: bool  # a `netspec compile --target`
    trains: bool


REGISTRY: dict[str, Entry] = {
    "torch": Entry("netspec.backends:TorchBackend", ("torch",), True, True),
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


class TorchBackend(Backend):
    """PyTorch behind the contract: an adapter over ``netspec.backends.torch``'s module functions.

    The weight plan (canonical name -> module tensor) is learnt while the build generates the source
    (``model.netspec_plan``) and kept in ``Built.state``; the optimiser is the generated
    ``make_optimizer``'s, made at the first step.
    """

    name = "torch"
    emits_source = trains = True

    @staticmethod
    def _module():
        return import_module("netspec.backends.torch")

    @property
    def lowering(self):
        """The passes the PyTorch generator runs (``netspec.backends.torch.LOWERING``)."""
        return self._module().LOWERING

    def generate(self, network: ir.Network, **options) -> str:
        return self._module().generate(network, **options)

    def build(self, network: ir.Network, weights=None, dtype: str = "float32", eager: bool = False,
              **options) -> Built:
        if options:
            raise TypeError(f"unknown option(s) for the torch backend: {', '.join(sorted(options))}")
        tb = self._module()
        model = tb.build(network, weights)
        if dtype == "float64":
            model.double()
        elif dtype != "float32":
            raise ValueError(f"dtype must be float32 or float64; received {dtype}")
        return Built(model, network, {"plan": model.netspec_plan})  # learnt while generating: no second pass

    def load_canonical(self, built: Built, weights) -> None:
        self._module().load_canonical(built.model, built.network, weights)

    def export_canonical(self, built: Built) -> dict:
        return self._module().export_canonical(built.model, built.network, built.state["plan"])

    def _tensors(self, values: dict, names) -> list:
        import numpy as np
        import torch

        return [torch.from_numpy(np.ascontiguousarray(values[n])) for n in names]

    def run(self, built: Built, inputs: dict) -> list:
        import torch

        built.model.eval()
        with torch.no_grad():
            result = built.model(*self._tensors(inputs, [v.name for v in built.network.inputs]))
        result = result if isinstance(result, (tuple, list)) else (result,)
        return [r.detach().numpy() for r in result]

    def train_step(self, built: Built, inputs: dict, targets: dict) -> float:
        module = built.model.netspec_module
        if "optimizer" not in built.state:
            built.state["optimizer"] = module.make_optimizer(built.model)
        x = self._tensors(inputs, [v.name for v in built.network.inputs])
        t = self._tensors(targets, [v.name for v in built.network.targets])
        return float(module.train_step(built.model, built.state["optimizer"], x, t))

    def seed(self, seed: int) -> None:
        import_module("torch").manual_seed(seed)


__all__ = ["BACKENDS", "REGISTRY", "TARGETS", "TRAINERS", "Backend", "Built", "available", "generator", "get"]
