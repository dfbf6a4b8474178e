"""The training loop shared by both backends: epochs, validation, metrics, checkpoints, resuming."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import ir
from .checkpoint import load_state, save_canonical, save_state
from .data import DataError, Dataset, check_data, dtypes_of, global_batches, load_data, split_rows
from .progress import Progress
from .torch_engine import UsageError

BACKENDS = ("torch", "keras")


class TrainingError(RuntimeError):
    """Training stopped: the loss became NaN or infinite (no checkpoint of that epoch is written)."""


@dataclass
class TrainResult:
    """What a run produced: per-epoch metrics, the best epoch and the files written."""

    network: str
    backend: str
    epochs: int
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_loss: float | None = None
    monitor: str = "val_loss"
    out: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    weights: dict | None = field(default=None, repr=False)
    seconds: float = 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("weights")
        return d

    def render(self) -> str:
        last = self.history[-1] if self.history else {}
        lines = [f"trained {self.network} with {self.backend}: {len(self.history)} epoch(s) in "
                 f"{self.seconds:.1f} s on {self.world_size} process(es)"]
        if last:
            from .progress import _fmt

            lines.append("final: " + _fmt({k: v for k, v in last.items() if k not in ("epoch", "seconds")}))
        if self.best_epoch is not None:
            lines.append(f"best: epoch {self.best_epoch}, {self.monitor} {self.best_loss:.4g}")
        for k, v in self.files.items():
            lines.append(f"{k}: {v}")
        return "\n".join(lines)


def _network(spec, network: str | None) -> ir.Network:
    if isinstance(spec, ir.Network):
        return spec
    if isinstance(spec, (str, Path)):
        from .. import load

        spec = load(spec)
    try:
        return spec.network(network)
    except KeyError:
        names = ", ".join(n.name for n in spec.networks)
        raise UsageError(f"no network '{network}' in the spec; networks: {names}") from None


def _training_setup(net: ir.Network, optimizer: bool) -> None:
    if not net.loss:
        raise UsageError(f"network {net.name} has no loss statement; training and evaluation need one")
    if optimizer and net.optimizer is None:
        raise UsageError(f"network {net.name} has no optimizer statement; training needs one")


def spec_digest(network: ir.Network) -> str:
    """A hash of the network's meaning: resuming refuses a state trained for another network."""
    return hashlib.sha256(json.dumps(network.model_dump(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def engine_rank() -> int:
    """This process's rank under torchrun (0 outside it)."""
    from .torch_engine import dist_env

    return dist_env()[0]


def _engine(backend: str, network: ir.Network, weights, options: dict):
    if backend == "torch":
        from .torch_engine import TorchEngine

        return TorchEngine(network, weights, **options)
    if backend == "keras":
        from .keras_engine import KerasEngine

        return KerasEngine(network, weights, **options)
    raise UsageError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")


def _check_weights(weights, network: ir.Network):
    from ..weights import check_weights, load_weights

    if weights is None:
        return None
    if isinstance(weights, (str, Path)):
        try:
            weights = load_weights(weights)
        except Exception as exc:
            raise UsageError(f"cannot read weights '{weights}': {exc}") from None
    try:
        check_weights(weights, network)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return weights


def _run_epoch_eval(engine, data: Dataset, batch: int, names, dtypes, acc_names) -> dict:
    n = len(data)
    totals = None
    for gb in global_batches(n, batch, 0, 0, shuffle=False):
        part = split_rows(gb, engine.world)[engine.rank]
        real = len(part) > 0
        arrays = data.take(part if real else gb[:1], names, dtypes)
        res = engine.eval_batch(arrays, len(part), real)
        totals = res if totals is None else [a + b for a, b in zip(totals, res)]
    return _summarise(totals, n, acc_names)


def _summarise(totals: list[float], n: int, acc_names) -> dict:
    out = {"loss": totals[0] / n}
    for i, name in enumerate(acc_names):
        c, k = totals[1 + 2 * i], totals[2 + 2 * i]
        if k > 0 and not math.isnan(c):
            out[name] = c / k
    return out


def evaluate(spec, weights, data, *, backend: str = "torch", batch_size: int = 256, network: str | None = None,
             device: str = "cpu") -> dict:
    """The spec's loss (regularisation included) and accuracy of ``weights`` on ``data``.

    ``weights``: canonical weights or a .safetensors path; ``data``: paths or a dict of arrays (see
    :func:`netspec.train.data.load_data`). Returns ``{"loss": ..., "accuracy": ..., "samples": N}``.
    """
    net = _network(spec, network)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; received {batch_size}")
    _training_setup(net, optimizer=False)
    weights = _check_weights(weights, net)
    if weights is None:
        raise UsageError("evaluate needs weights (a canonical .safetensors checkpoint)")
    ds = check_data(load_data(data, net), net, role="data")
    engine = _engine(backend, net, weights, {"device": device})
    try:
        names, dtypes = list(dtypes_of(net)), dtypes_of(net)
        result = _run_epoch_eval(engine, ds, batch_size, names, dtypes, list(engine.acc))
    finally:
        engine.close()
    return {**result, "samples": len(ds)}


def fit(spec, data, val=None, *, backend: str = "torch", epochs: int = 1, batch_size: int = 32, seed: int = 0,
        weights=None, out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
        network: str | None = None, shuffle: bool = True, device: str = "cpu", amp: bool = False,
        fsdp: bool = False, replicas: int = 1, keep_epochs: bool = False, progress: str = "auto",
        threads: int | None = None, eager: bool = False, check_values: bool = True) -> TrainResult:
    """Train a spec's network on ``data``; the Python form of ``netspec train``.

    ``spec``: a :class:`netspec.Spec`, a path or an IR network. ``data``/``val``: paths (``.npz``,
    ``.npy``, a folder of ``.npy``, ``.csv``) or dicts of arrays. ``batch_size`` is the global batch,
    split across processes under torchrun, so results do not depend on the process count. ``seed``
    fixes the initial weights (unless ``weights`` is given), the sample order and dropout. With
    ``out``, checkpoints, ``metrics.jsonl`` and ``summary.json`` are written there (rank 0 only);
    ``resume=True`` continues the run in ``out`` exactly where it stopped (to ``epochs`` in total).

    Every array is checked against the spec before the first step (:class:`DataError`); nothing is
    written until the data and weights have passed. ``check_values=False`` skips the scan for NaN and
    id ranges (data too large to read twice; a NaN loss still stops training). ``threads``: CPU
    threads per process (default: 1 for tiny models, see :func:`auto_threads`, else PyTorch's
    default). Returns a :class:`TrainResult` whose ``weights`` are the final canonical weights.
    """
    t0 = time.perf_counter()
    net = _network(spec, network)
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    for flag, value, low in (("--epochs", epochs, 1), ("--batch-size", batch_size, 1), ("--replicas", replicas, 1)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}; received {value}")
    _training_setup(net, optimizer=True)
    if replicas > 1 and backend != "keras":
        raise UsageError("--replicas applies to --backend keras (for torch, use --nproc or torchrun)")
    # 1. data and weights: checked before anything is built or written
    train_ds = check_data(load_data(data, net), net, role="training data", scan=check_values)
    val_ds = (check_data(load_data(val, net), net, role="validation data", scan=check_values)
              if val is not None else None)
    state = None
    out_dir = Path(out) if out is not None else None
    if resume:
        if out_dir is None:
            raise UsageError("--resume needs --out DIR (the folder of the run to continue)")
        if not (out_dir / "state.safetensors").is_file():
            raise UsageError(f"--resume: no training state in '{out_dir}' (state.safetensors)")
        if weights is not None:
            raise UsageError("--resume continues from the saved state; --weights cannot be given with it")
        try:
            state = load_state(out_dir / "state.safetensors")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        info = state[2]
        expect = {"spec": spec_digest(net), "backend": backend, "batch_size": batch_size, "seed": seed,
                  "shuffle": shuffle, "data": train_ds.fingerprint()}
        for key, want in expect.items():
            if info["config"].get(key) != want:
                raise UsageError(f"--resume: the run in '{out_dir}' was started with {key} "
                                 f"{info['config'].get(key)!r}; this call has {want!r}")
        weights = state[0]
    elif out_dir is not None and (out_dir / "state.safetensors").exists() and not overwrite:
        raise UsageError(f"'{out_dir}' already holds a training run; pass --resume to continue it, "
                         "--overwrite to replace it, or another --out")
    weights = _check_weights(weights, net)
    if out_dir is not None and engine_rank() == 0:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create --out '{out_dir}': {exc}") from None
        if overwrite and not resume:  # the replaced run's per-epoch files would be mistaken for this one's
            for stale in out_dir.glob("epoch-[0-9][0-9][0-9]*.safetensors"):
                stale.unlink()
    if weights is None:
        from ..weights import init_weights

        weights = init_weights(net, seed)
    if threads is None and backend == "torch" and device == "cpu":
        threads = auto_threads(net, batch_size)
    options: dict[str, Any] = {"device": device, "amp": amp, "fsdp": fsdp, "threads": threads}
    if backend == "keras":
        options.update(replicas=replicas, eager=eager)
    engine = _engine(backend, net, weights, options)
    main = engine.rank == 0
    report = Progress(progress if main else "quiet")
    names, dtypes = list(dtypes_of(net)), dtypes_of(net)
    acc_names = list(engine.acc)
    config = {"spec": spec_digest(net), "network": net.name, "backend": backend, "batch_size": batch_size,
              "seed": seed, "shuffle": shuffle, "data": train_ds.fingerprint(), "epochs": epochs}
    result = TrainResult(net.name, backend, epochs, monitor="val_loss" if val_ds is not None else "loss",
                         out=str(out_dir) if out_dir else None, world_size=engine.world)
    start = 1
    if state is not None:
        engine.load_optimizer_state(state[1], state[2]["optimizer"])
        result.history = state[2]["history"]
        result.best_epoch, result.best_loss = state[2]["best_epoch"], state[2]["best_loss"]
        start = state[2]["epoch"] + 1
        if start > epochs:
            report.message(f"the run in '{out_dir}' already has {start - 1} epoch(s); nothing to do "
                           f"(raise --epochs to train further)")
    if getattr(engine, "note", ""):
        report.message(engine.note)
    if main and train_ds.ignored:
        report.message(f"note: arrays the spec does not name are ignored: {', '.join(train_ds.ignored)}")
    try:
        n = len(train_ds)
        for epoch in range(start, epochs + 1):
            t_epoch = time.perf_counter()
            engine.reseed(seed, epoch)
            batches = global_batches(n, batch_size, seed, epoch, shuffle)
            report.start_epoch(epoch, epochs, len(batches))
            totals, seen = None, 0
            for step, gb in enumerate(batches, start=1):
                part = split_rows(gb, engine.world)[engine.rank]
                real = len(part) > 0
                arrays = train_ds.take(part if real else gb[:1], names, dtypes)
                res = engine.train_batch(arrays, len(part), len(gb), real)
                loss = res[0] / len(gb)
                if not math.isfinite(loss):
                    raise TrainingError(f"the loss became {loss} at epoch {epoch}, step {step}; stopped before "
                                        "writing this epoch's checkpoint (try a lower learning rate, or check "
                                        "the data's scale)")
                totals = res if totals is None else [a + b for a, b in zip(totals, res)]
                seen += len(gb)
                report.step(loss, seen)
            row: dict[str, Any] = {"epoch": epoch}
            row.update(_summarise(totals, n, acc_names))
            if val_ds is not None:
                row.update({f"val_{k}": v for k, v in
                            _run_epoch_eval(engine, val_ds, batch_size, names, dtypes, acc_names).items()})
            seconds = time.perf_counter() - t_epoch
            row["samples_per_second"] = n / max(seconds, 1e-9)
            row["seconds"] = seconds
            result.history.append(row)
            monitored = row[result.monitor]
            improved = result.best_loss is None or monitored < result.best_loss
            if improved:
                result.best_epoch, result.best_loss = epoch, monitored
            canonical = engine.weights()
            if main and out_dir is not None:
                meta = {"network": net.name, "epoch": epoch, "backend": backend}
                save_canonical(canonical, out_dir / "last.safetensors", meta)
                if improved:
                    save_canonical(canonical, out_dir / "best.safetensors", {**meta, result.monitor: monitored})
                if keep_epochs:
                    save_canonical(canonical, out_dir / f"epoch-{epoch:03d}.safetensors", meta)
                opt_tensors, opt_meta = engine.optimizer_state()
                save_state(out_dir / "state.safetensors", canonical, opt_tensors,
                           {"epoch": epoch, "config": config, "optimizer": opt_meta, "history": result.history,
                            "best_epoch": result.best_epoch, "best_loss": result.best_loss})
                _write_metrics(out_dir / "metrics.jsonl", result.history)
            engine.barrier()
            report.end_epoch(epoch, epochs, {k: v for k, v in row.items() if k not in ("epoch", "seconds")})
        result.weights = engine.weights()
        engine.barrier()  # every rank done before any tears the process group down
    finally:
        engine.close()
    result.seconds = time.perf_counter() - t0
    if main and out_dir is not None:
        result.files = {"last": str(out_dir / "last.safetensors"), "best": str(out_dir / "best.safetensors"),
                        "state": str(out_dir / "state.safetensors"), "metrics": str(out_dir / "metrics.jsonl"),
                        "summary": str(out_dir / "summary.json")}
        from ..files import write_atomic

        write_atomic(out_dir / "summary.json", json.dumps(result.to_json(), indent=2) + "\n")
    return result


#: Below this many multiply-accumulates per step, PyTorch's CPU thread pool costs more than it gains.
SMALL_STEP_MACS = 10_000_000


def auto_threads(network: ir.Network, batch_size: int) -> int | None:
    """1 for models whose step is tiny (thread hand-offs dominate, badly so on a busy machine); else
    None (PyTorch's default). ``threads=N`` / ``--threads N`` overrides it."""
    macs = sum(n.macs for n in network.nodes)
    return 1 if macs * batch_size < SMALL_STEP_MACS else None


def _write_metrics(path: Path, history: list[dict]) -> None:
    from ..files import write_atomic

    write_atomic(path, "".join(json.dumps(row) + "\n" for row in history))


__all__ = ["DataError", "TrainResult", "TrainingError", "UsageError", "evaluate", "fit"]
