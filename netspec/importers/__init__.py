"""Bring existing models in: ONNX graphs to specs (``netspec import``)."""
