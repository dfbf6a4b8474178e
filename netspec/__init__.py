"""netspec: one declarative spec, checked shapes, equivalent PyTorch, Keras and ONNX models.

The public names are imported on first use (PEP 562), so that ``import netspec.cli``
or ``netspec lsp`` loads only what its command needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Spec", "SpecError", "__version__", "import_onnx", "init_weights", "load", "parse_text",
           "train", "weights_from_keras", "weights_from_torch"]

#: public name -> the module that defines it
_LAZY = {
    "Spec": "api", "load": "api", "parse_text": "api",
    "Diagnostic": "diagnostics", "SpecError": "diagnostics",
    "init_weights": "weights",
    "import_onnx": "importers.onnx",
    "weights_from_torch": "importers.weights", "weights_from_keras": "importers.weights",
}
#: subpackages reachable as attributes (``netspec.train(spec, data, ...)`` trains: the package is callable)
_SUBPACKAGES = {"train"}

if TYPE_CHECKING:  # pragma: no cover
    from .api import Spec, load, parse_text
    from .diagnostics import Diagnostic, SpecError
    from .importers.onnx import import_onnx
    from .importers.weights import weights_from_keras, weights_from_torch
    from .weights import init_weights


def __getattr__(name: str):
    from importlib import import_module

    if name in _SUBPACKAGES:
        value = import_module(f".{name}", __name__)
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netspec' has no attribute '{name}'")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
