"""The op registry: every op declared once (attributes, shape rule, weights, MACs, backend metadata).

Importing the package imports :mod:`netspec.ops.registry`, which fills the lookup tables of
:mod:`netspec.ops.base` (no module of this package imports ``registry`` back).
"""

from . import registry  # noqa: F401  (fills base's tables)
