"""netspec: one declarative spec, checked shapes, equivalent PyTorch, Keras and ONNX models."""

from .api import Spec, load, parse_text
from .diagnostics import Diagnostic, SpecError

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Spec", "SpecError", "__version__", "load", "parse_text"]
