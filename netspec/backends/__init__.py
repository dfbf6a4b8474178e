"""Backends: generated PyTorch and Keras source, and ONNX graphs, from the IR."""

from __future__ import annotations

from importlib import import_module

TARGETS = ("torch", "keras")


def generator(target: str):
    """The backend module for a compile target; it provides ``generate(network, **options) -> str``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target '{target}'; expected one of {', '.join(TARGETS)}")
    return import_module(f"netspec.backends.{target}")
