"""Training from the spec: ``netspec train`` / ``netspec evaluate`` and their Python form.

``netspec.train(spec, data, ...)`` (this package is callable) and ``spec.fit(data, ...)`` are
:func:`fit`; :func:`evaluate` computes the spec's loss and accuracy. docs/training.md describes data
formats, checkpoints, resuming, several processes and machines, and what is deterministic.

Importing this package imports no framework: PyTorch or Keras is imported when training starts.
"""

from __future__ import annotations

import sys
import types

from .data import DataError, Dataset, check_data, load_data
from .loop import TrainingError, TrainResult, evaluate, fit
from .torch_engine import UsageError

#: The backend whose data-parallel runs torchrun launches (``--nproc``); Keras spreads over ``--replicas``.
TORCHRUN_BACKEND = "torch"

__all__ = ["TORCHRUN_BACKEND", "DataError", "Dataset", "TrainResult", "TrainingError", "UsageError", "check_data",
           "evaluate", "fit", "load_data"]


class _CallableModule(types.ModuleType):
    """``netspec.train(...)`` is ``netspec.train.fit(...)``."""

    def __call__(self, *args, **kwargs) -> TrainResult:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
