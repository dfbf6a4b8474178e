"""Training with PyTorch: the generated module's loss and optimiser, DDP/FSDP under torchrun.

The step is the generated ``train_step`` spelled out (``compute_loss`` + ``regularization_loss``,
backward, ``optimizer.step``) so that it can (a) weight each process's share of a global batch,
(b) run under ``torch.autocast`` and (c) see the outputs for accuracy. A test keeps it equal to
the generated ``train_step``.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (gloo on CPU,
nccl on CUDA) and the model is wrapped in ``DistributedDataParallel`` (or FSDP). Every rank sees the
same global batches (drawn from the seed and epoch alone); rank ``r`` takes its contiguous part. Each
rank's loss is scaled by ``n_r * world / N`` before backward, so DDP's gradient average equals the
gradient of the mean over the global batch even when the parts differ in size: the result does not
depend on the number of processes.
"""

from __future__ import annotations

import inspect
import os

from .. import ir
from . import metrics as m


class UsageError(ValueError):
    """A training option that cannot be honoured here (e.g. ``--device cuda`` without a GPU)."""


def _torch():
    import torch

    return torch


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


class _DDPModule:
    """Mixin: attribute access falls through to the wrapped module (the generated functions read
    ``model.<layer>``), so a wrapped model can be handed to generated code."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


class TorchEngine:
    backend = "torch"

    def __init__(self, network: ir.Network, weights, *, device: str = "cpu", amp: bool = False,
                 fsdp: bool = False, threads: int | None = None):
        torch = _torch()
        from ..backends import torch as tb

        self.network = network
        self.rank, self.world, self.local_rank = dist_env()
        if device not in ("cpu", "cuda"):
            raise UsageError(f"--device must be cpu or cuda; received {device}")
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available to PyTorch here "
                             f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)")
        if fsdp and device != "cuda":
            raise UsageError("--fsdp shards the model across GPUs and needs --device cuda (and torchrun)")
        if fsdp and self.world < 2:
            raise UsageError("--fsdp needs several processes: run under torchrun or with --nproc N")
        # process-wide settings this run changes; close() puts them back (spec.fit in a notebook)
        self._saved = (torch.get_num_threads(), torch.get_rng_state())
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda", self.local_rank) if device == "cuda" else torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp = amp
        self.amp_dtype = torch.bfloat16
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")
        raw = tb.build(network, weights).to(self.device)
        self.raw = raw
        self.module = raw.netspec_module
        if network.optimizer is None:
            raise UsageError(f"network {network.name} has no optimizer statement; training needs one")
        if not network.loss:
            raise UsageError(f"network {network.name} has no loss statement; training needs one")
        self.model = raw
        if self.world > 1:
            if fsdp:
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

                cls = type("_FSDP", (_DDPModule, FSDP), {})
                self.model = cls(raw, use_orig_params=True, device_id=self.device)
            else:
                from torch.nn.parallel import DistributedDataParallel as DDP

                cls = type("_DDP", (_DDPModule, DDP), {})
                self.model = cls(raw, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = self.module.make_optimizer(self.model if fsdp else raw)
        self.loss_values = "return_loss_values" in inspect.signature(raw.forward).parameters
        outs, tgts = set(network.outputs), {t.name for t in network.targets}
        used = {v for t in network.loss for v in t.args}
        self.loss_inputs = [i for i, v in enumerate(network.inputs) if v.name in used and v.name not in outs | tgts]
        self.acc = m.accuracy_terms(network)
        self.fsdp = fsdp

    # collective helpers ------------------------------------------------------------------------------
    def allreduce(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        torch = _torch()
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            _torch().distributed.barrier()

    def close(self) -> None:
        torch = _torch()
        if self.world > 1 and torch.distributed.is_initialized():
            del self.model  # DDP's reducer holds the process group: release it first
            torch.distributed.destroy_process_group()
        torch.set_num_threads(self._saved[0])
        torch.set_rng_state(self._saved[1])

    def reseed(self, seed: int, epoch: int) -> None:
        """Dropout and other random layers: a stream per (seed, epoch, rank), so resuming is exact."""
        _torch().manual_seed((seed * 1_000_003 + epoch * 1009 + self.rank) % 2**63)

    # steps --------------------------------------------------------------------------------------------
    def _tensors(self, arrays: dict):
        torch = _torch()
        xs = [torch.from_numpy(arrays[v.name]).to(self.device) for v in self.network.inputs]
        ts = [torch.from_numpy(arrays[v.name]).to(self.device) for v in self.network.targets]
        return xs, ts

    def _loss(self, model, xs, ts):
        torch = _torch()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            if self.loss_values:
                outputs, values = model(*xs, return_loss_values=True)
            else:
                outputs, values = model(*xs), None
            args = [outputs, *ts, *(xs[i] for i in self.loss_inputs)]
            if values is not None:
                args.append(values)
            loss = self.module.compute_loss(*args) + self.module.regularization_loss(self.raw)
        return loss, outputs

    def _counts(self, outputs, arrays: dict, real: bool) -> list[float]:
        out = []
        outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        for term in self.acc.values():
            if not real:
                out += [0.0, 0.0]
                continue
            pred = outs[list(self.network.outputs).index(term.args[0])].detach().float().cpu().numpy()
            c, n = m.correct(term, self.network, pred, arrays[term.args[1]])
            out += [float(c), float(n)]
        return out

    def train_batch(self, arrays: dict, n_local: int, n_global: int, real: bool = True) -> list[float]:
        """One optimisation step on this rank's part of a global batch.

        Returns the reduced ``[loss * N, correct, counted, ...]``. ``real=False``: this rank has no
        sample of a short last batch and runs a zero-weighted step on a stand-in so that DDP's
        collectives still match.
        """
        xs, ts = self._tensors(arrays)
        self.model.train()
        self.optimizer.zero_grad()
        loss, outputs = self._loss(self.model, xs, ts)
        scale = n_local * self.world / n_global if real else 0.0
        (loss * scale if scale != 1.0 else loss).backward()
        self.optimizer.step()
        value = float(loss.detach()) * n_local if real else 0.0
        return self.allreduce([value, *self._counts(outputs, arrays, real)])

    def eval_batch(self, arrays: dict, n_local: int, real: bool = True) -> list[float]:
        torch = _torch()
        xs, ts = self._tensors(arrays)
        self.model.eval()
        with torch.no_grad():
            loss, outputs = self._loss(self.model, xs, ts)
        value = float(loss) * n_local if real else 0.0
        return self.allreduce([value, *self._counts(outputs, arrays, real)])

    def predict(self, arrays: dict) -> list:
        torch = _torch()
        xs = [torch.from_numpy(arrays[v.name]).to(self.device) for v in self.network.inputs]
        self.model.eval()
        with torch.no_grad():
            out = self.raw(*xs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().cpu().numpy() for o in out]

    # state ---------------------------------------------------------------------------------------------
    def weights(self) -> dict:
        """Canonical weights (numpy float32) of the trained model (every rank takes part under FSDP)."""
        from ..backends import torch as tb

        if self.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.summon_full_params(self.model, writeback=False, rank0_only=False):
                return tb.export_canonical(self.raw, self.network)
        return tb.export_canonical(self.raw, self.network)

    def optimizer_state(self) -> tuple[dict, dict]:
        """(tensors, JSON-able rest) of the optimiser's state, keyed by parameter index."""
        sd = self.optimizer.state_dict()
        tensors, meta = {}, {"param_groups": sd["param_groups"], "scalars": {}}
        for idx, state in sd["state"].items():
            for k, v in state.items():
                if hasattr(v, "detach"):
                    tensors[f"optimizer.{idx}.{k}"] = v.detach().cpu().contiguous().numpy()
                else:
                    meta["scalars"][f"{idx}.{k}"] = v
        return tensors, meta

    def load_optimizer_state(self, tensors: dict, meta: dict) -> None:
        torch = _torch()
        state: dict = {}
        for key, arr in tensors.items():
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = torch.from_numpy(arr.copy())
        for key, v in meta["scalars"].items():
            idx, k = key.split(".", 1)
            state.setdefault(int(idx), {})[k] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
