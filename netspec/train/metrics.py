"""Per-batch metrics that the spec implies: accuracy for classification losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .. import ir

CLASSIFICATION = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


def accuracy_terms(network: ir.Network) -> dict[str, ir.LossTerm]:
    """Metric name -> the classification loss term it measures (``accuracy``, or ``accuracy.<target>``).

    A term counts when its prediction is a network output: sparse categorical (argmax == id),
    categorical (argmax == argmax of the target) and binary (prediction above 0.5, or logit above 0,
    equal to target above 0.5).
    """
    terms = [t for t in network.loss if t.fn in CLASSIFICATION and t.args[0] in network.outputs]
    if len(terms) == 1:
        return {"accuracy": terms[0]}
    return {f"accuracy.{t.args[1]}": t for t in terms}


def correct(term: ir.LossTerm, network: ir.Network, pred, target) -> tuple[int, int]:
    """(correct, counted) for one batch; ``pred`` and ``target`` are numpy arrays in the spec's layout."""
    import numpy as np

    rank = network.type_of(term.args[0]).rank
    if term.fn == "binary_crossentropy":
        cut = 0.0 if term.attrs.get("from_logits") else 0.5
        hit = (pred > cut) == (np.asarray(target) > 0.5)
    else:
        axis = term.attrs.get("axis", -1) % rank + 1
        guess = np.argmax(pred, axis=axis)
        if term.fn == "sparse_categorical_crossentropy":
            t = np.asarray(target)
            if t.ndim == guess.ndim + 1:
                t = t[..., 0]
            hit = guess == t
        else:
            hit = guess == np.argmax(target, axis=axis)
    return int(hit.sum()), int(hit.size)
