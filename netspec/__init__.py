"""netspec: one declarative spec, checked shapes, equivalent PyTorch, Keras and ONNX models."""

from .api import Spec, load, parse_text
from .diagnostics import Diagnostic, SpecError
from .weights import init_weights

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Spec", "SpecError", "__version__", "init_weights", "load", "parse_text"]
