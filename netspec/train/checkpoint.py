"""Checkpoints: canonical safetensors weights, and the training state that ``--resume`` reads.

Files in the output folder (each written atomically: a crash leaves the previous version):

- ``last.safetensors``: canonical weights after the latest epoch (``netspec export --weights``,
  ``netspec verify --weights`` and ``spec.to_torch(weights=...)`` read it);
- ``best.safetensors``: the epoch with the lowest validation loss (training loss without ``--val``);
- ``epoch-NNN.safetensors`` with ``keep_epochs``;
- ``state.safetensors``: weights (``model.<name>``), optimiser state (``optimizer.*``) and, in the
  metadata, the position (epoch), settings and metric history: one file, so weights and optimiser
  can never come from different epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "netspec-canonical"
STATE_FORMAT = "netspec-train-state"


def save_canonical(weights: dict, path: str | Path, meta: dict | None = None) -> None:
    """Canonical weights as safetensors, atomically, with ``meta`` (strings) in the header."""
    import numpy as np
    from safetensors.numpy import save

    from ..files import write_atomic

    tensors = {k: np.ascontiguousarray(v) for k, v in sorted(weights.items())}
    header = {"format": FORMAT, **{k: str(v) for k, v in (meta or {}).items()}}
    write_atomic(path, save(tensors, metadata=header))


def save_state(path: str | Path, weights: dict, optimizer: dict, info: dict) -> None:
    import numpy as np
    from safetensors.numpy import save

    from ..files import write_atomic

    tensors = {f"model.{k}": np.ascontiguousarray(v) for k, v in weights.items()}
    tensors.update({k: np.ascontiguousarray(v) for k, v in optimizer.items()})
    scalars = sorted(k for k, v in optimizer.items() if np.ndim(v) == 0)  # stored as [1]: reshaped on load
    write_atomic(path, save(tensors, metadata={"format": STATE_FORMAT, "state": json.dumps(info),
                                               "scalars": json.dumps(scalars)}))


def load_state(path: str | Path) -> tuple[dict, dict, dict]:
    """(canonical weights, optimiser tensors, info) from a state file; ValueError when it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != STATE_FORMAT:
                raise ValueError(f"'{path}' is not a netspec training state")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
            for k in json.loads(meta.get("scalars", "[]")):
                tensors[k] = tensors[k].reshape(())
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot read '{path}': {exc}") from None
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    opt = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return weights, opt, json.loads(meta["state"])
