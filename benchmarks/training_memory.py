"""`netspec check --training` against the peak memory PyTorch really allocates on CPU.

For each spec: build the generated PyTorch model and the spec's optimiser, run one
training step (so the optimiser state exists), then profile a second step with
``torch.profiler`` (``profile_memory=True``): every CPU allocation and free is an
event; their running sum over the step, plus the tensors alive before it
(weights, buffers, optimiser state, the batch; the previous step's gradients are
freed by ``zero_grad``), gives the peak of allocated tensor memory. This is the
same quantity netspec estimates: tensors, not the process's RSS (interpreter,
libraries and allocator caches are not counted by either).

    PYTHONPATH=. python benchmarks/training_memory.py [--json OUT] [--spec PATH:BATCH ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT = ["specs/resnet50.net:32", "specs/vgg16.net:8", "specs/unet.net:16", "specs/siamese.net:64"]


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size()


def measure(path: str, batch: int, seed: int = 0) -> dict:
    """Estimated and measured peak (bytes) of one training step of the spec at ``path``."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    import netspec
    from netspec.report import training_memory
    from netspec.verify import make_batches

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # deterministic allocation order; memory does not depend on threads
    spec = netspec.load(ROOT / path)
    net = spec.network()
    model = spec.to_torch()
    module = model.netspec_module
    optimizer = module.make_optimizer(model)
    batches = make_batches(net, steps=2, batch=batch, seed=seed)

    def tensors(b):
        inputs, targets = b
        x = [torch.from_numpy(np.ascontiguousarray(inputs[v.name])) for v in net.inputs]
        t = [torch.from_numpy(np.ascontiguousarray(targets[v.name])) for v in net.targets]
        return x, t

    x, t = tensors(batches[0])
    module.train_step(model, optimizer, x, t)
    x, t = tensors(batches[1])
    optimizer.zero_grad(set_to_none=True)  # as train_step does first; frees made outside the profile go unseen
    gc.collect()
    alive = sum(_tensor_bytes(p) for p in model.parameters()) + sum(_tensor_bytes(b) for b in model.buffers())
    alive += sum(_tensor_bytes(v) for state in optimizer.state.values() for v in state.values()
                 if torch.is_tensor(v) and v.dim() > 0)
    alive += sum(_tensor_bytes(v) for v in (*x, *t))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        module.train_step(model, optimizer, x, t)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    running = peak = 0
    for _, n in events:
        running += n
        peak = max(peak, running)
    estimate = training_memory(net, batch)
    return {"spec": path, "batch": batch, "optimizer": estimate.optimizer,
            "estimate": estimate.to_json(), "measured_peak": alive + peak,
            "measured_before_step": alive,
            "error": (estimate.peak - (alive + peak)) / (alive + peak)}


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", action="append", metavar="PATH:BATCH", help=f"default: {' '.join(DEFAULT)}")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    rows = []
    for item in args.spec or DEFAULT:
        path, _, batch = item.rpartition(":")
        r = measure(path, int(batch))
        rows.append(r)
        e = r["estimate"]
        print(f"{r['spec']:<22} batch {r['batch']:>3}  {r['optimizer'] or '-':<6} "
              f"estimate {mib(e['peak']):>14}  measured {mib(r['measured_peak']):>14}  error {r['error']:+.1%}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
