"""Bring existing models in: ONNX graphs to specs (``netspec import``), checkpoints to canonical weights."""

#: The frameworks whose checkpoints ``netspec weights import`` reads (its ``--from``).
CHECKPOINT_FORMATS = ("torch", "keras")
