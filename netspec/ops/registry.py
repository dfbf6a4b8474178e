"""The registry: every op and family member, listed once."""

from __future__ import annotations

from .attention import ATTENTION_OPS
from .base import Attr, Bool, OpDef, install
from .functions import ACTIVATIONS, INITIALIZERS, LOSSES, MERGES, OPTIMIZERS, REGULARIZERS
from .layers import LAYER_OPS
from .lecture import LECTURE_LOSSES, LECTURE_OPS

#: Every layer with weights takes ``trainable``; false freezes them (docs/language.md, "Training controls")
TRAINABLE = Attr(Bool(), True, "false: freeze the weights (no updates; a batchnorm also normalises with its "
                 "moving statistics and keeps them)")
for _cls in LAYER_OPS:
    if _cls.params_rule and "trainable" not in _cls.attrs:
        _cls.attrs = {**_cls.attrs, "trainable": TRAINABLE}


def _index(classes) -> dict[str, OpDef]:
    out: dict[str, OpDef] = {}
    for cls in classes:
        assert cls.name not in out, f"op {cls.name} registered twice"
        out[cls.name] = cls()
    return out


#: Ops usable as chain steps (layers and activations) or as merge sources.
OPS: dict[str, OpDef] = _index([*LAYER_OPS, *ACTIVATIONS, *MERGES, *ATTENTION_OPS, *LECTURE_OPS])
ACTIVATION_OPS = {k: v for k, v in OPS.items() if v.category == "activation"}
MERGE_OPS = {k: v for k, v in OPS.items() if v.category == "merge"}
#: Layers with more than one input, usable as a chain source (`attention(x, memory, heads=8)`)
SOURCE_OPS = {k: v for k, v in OPS.items() if v.category != "merge" and (v.max_inputs or 2) > 1}
LOSS_FNS: dict[str, OpDef] = _index([*LOSSES, *LECTURE_LOSSES])
OPTIMIZER_DEFS: dict[str, OpDef] = _index(OPTIMIZERS)

#: Families of callables used as argument values.
FAMILIES: dict[str, dict[str, OpDef]] = {
    "activation": ACTIVATION_OPS,
    "initializer": _index(INITIALIZERS),
    "regularizer": _index(REGULARIZERS),
}
install(OPS, FAMILIES)
