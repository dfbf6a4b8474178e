"""Benchmark 1, checking: `netspec check` against the tools users would otherwise run.

Usage: python benchmarks/check_time.py [--quick | --smoke] [--rounds N] [--json OUT]

What a user runs to learn a model's shapes and parameter count, each as a whole fresh
process (interpreter start-up and imports included, as a user pays them), on ResNet-50,
ResNet-152 and VGG-16:

- ``python -m netspec check specs/<model>.net``: shapes, parameters and MACs of every layer;
- torchinfo.summary on the hand-written PyTorch model (benchmarks/reference_models.py), on
  the CPU: shapes, parameters and MACs, from a forward pass;
- ``keras.applications.<Model>(weights=None).summary()``: shapes and parameters (Keras's
  own definitions: its ResNets are "v1" with convolution biases, slightly more parameters);
- counting parameters on PyTorch's meta device (``with torch.device("meta")``): parameters
  only, no shapes.

Runs are interleaved (every tool once per round, the order rotating) after an untimed
warm-up run of each tool; the table gives the median and min-max wall time and the largest
peak resident memory (ru_maxrss of that child). netspec runs three times per round. Then
synthetic specs of 100, 1,000, 3,000 and 10,000 layers (dense and relu, one binding per
pair) show how checking grows with size.
A peer whose package is missing is reported as "not installed".
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import _common as c
from check_speed import synthetic_spec  # one synthetic chain for both scripts (within the 128 KiB limit)

MODELS = [  # label, reference_models / specs stem, keras.applications class
    ("ResNet-50", "resnet50", "ResNet50"),
    ("ResNet-152", "resnet152", "ResNet152"),
    ("VGG-16", "vgg16", "VGG16"),
]
SYNTHETIC = (100, 1_000, 3_000, 10_000)
#: torchvision's parameter counts, which the PyTorch peers must report (as reference_models.PARAMS).
TORCHVISION = {"resnet50": "25,557,032", "resnet152": "60,192,808", "vgg16": "138,357,544"}
TARGET_S, TARGET_MIB = 0.15, 60.0
NETSPEC = "netspec check"
PEERS = ("torchinfo.summary", "Keras summary()", "torch meta-device count")
WHAT = {
    NETSPEC: "shapes, params, MACs",
    "torchinfo.summary": "shapes, params, MACs (forward pass)",
    "Keras summary()": "shapes, params",
    "torch meta-device count": "params only",
}
_TOTAL = re.compile(r"total params:\s*([\d,]+)", re.I)


def _code(*lines: str) -> str:
    return "\n".join(lines)


def commands(stem: str, keras_class: str) -> dict[str, list[str] | str]:
    """Each tool's command line, or why it cannot run."""
    bench = str(c.BENCH)
    torch_ok, keras_ok = c.installed("torch"), c.installed("keras") and c.installed("tensorflow")
    cmds: dict[str, list[str] | str] = {NETSPEC: [c.PYTHON, "-m", "netspec", "check", f"specs/{stem}.net"]}
    if torch_ok and c.installed("torchinfo"):
        cmds["torchinfo.summary"] = [c.PYTHON, "-c", _code(
            f"import sys; sys.path.insert(0, {bench!r})",
            "from torchinfo import summary",
            f"from reference_models import {stem}",
            f"summary({stem}(), input_size=(1, 3, 224, 224), device='cpu')")]
    else:
        cmds["torchinfo.summary"] = c.NOT_INSTALLED
    if keras_ok:
        cmds["Keras summary()"] = [c.PYTHON, "-c", _code(
            "import keras",
            f"keras.applications.{keras_class}(weights=None).summary()")]
    else:
        cmds["Keras summary()"] = c.NOT_INSTALLED
    if torch_ok:
        cmds["torch meta-device count"] = [c.PYTHON, "-c", _code(
            f"import sys; sys.path.insert(0, {bench!r})",
            "import torch",
            f"from reference_models import {stem}",
            "with torch.device('meta'):",
            f"    model = {stem}()",
            "print('Total params:', format(sum(p.numel() for p in model.parameters()), ','))")]
    else:
        cmds["torch meta-device count"] = c.NOT_INSTALLED
    return cmds


def in_process_growth(sizes, repeats: int) -> tuple[list[list[str]], dict]:
    """parse_text (parse and check) of each synthetic spec in this process, with the cyclic GC on and off."""
    import gc

    from netspec.api import parse_text

    rows, data = [], {}
    for n in sizes:
        text = synthetic_spec(n)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for enabled in (True, False):
                gc.collect()
                if not enabled:
                    gc.disable()
                try:
                    times[enabled].append(c.timed(lambda text=text: parse_text(text, "synthetic.net")))
                finally:
                    gc.enable()
        on, off = c.Stats.of(times[True]), c.Stats.of(times[False])
        rows.append([f"{n:,}", c.fmt_seconds(on.median), f"{on.median * 1000 / (n / 1000):.0f} ms",
                     c.fmt_seconds(off.median), f"{off.median * 1000 / (n / 1000):.0f} ms"])
        data[str(n)] = {"gc_on": on.as_dict(), "gc_off": off.as_dict()}
    return rows, data


class Runner:
    """Runs a command, keeps its times and peaks, and the params it printed; fails loudly."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}
        self.peaks: dict[str, list[float]] = {}
        self.reported: dict[str, str] = {}
        self.failed: dict[str, str] = {}

    def case(self, key: str, cmd: list[str]):
        def run() -> float:
            if key in self.failed:
                return float("nan")
            r = c.run_process(cmd, capture_stdout=True)
            if r.returncode != 0:
                self.failed[key] = f"failed (exit {r.returncode}): {c.last_line(r.stderr)}"
                c.progress(f"{key}: {self.failed[key]}\n{r.stderr[-3000:]}")
                return float("nan")
            self.times.setdefault(key, []).append(r.seconds)
            self.peaks.setdefault(key, []).append(r.peak_mib)
            found = _TOTAL.findall(r.stdout)
            if found:
                self.reported[key] = found[-1]
            return r.seconds
        return run


def main(argv=None) -> dict:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, dest="rounds", help=argparse.SUPPRESS)  # the old spelling
    args = p.parse_args(argv)
    n_rounds, n_warm = c.rounds(args, full=3, quick=2), c.warmups(args)
    netspec_repeat = 1 if args.smoke else 3  # netspec is cheap: more samples of it per round
    models = MODELS[:1] if args.smoke else MODELS
    synthetic = (100, 1_000) if args.smoke else SYNTHETIC

    notes_models = []
    if c.installed("torch") and not args.smoke:
        c.progress("checking the reference models' parameter counts against torchvision's ...")
        r = c.run_process([c.PYTHON, str(c.BENCH / "reference_models.py")], capture_stdout=True)
        if r.returncode != 0:
            raise SystemExit(f"reference models do not match torchvision:\n{r.stderr}")
        counts = " / ".join(f"{n:,}" for n in (25_557_032, 60_192_808, 138_357_544))
        notes_models.append(f"the hand-written PyTorch models' parameter counts were checked equal to torchvision's "
                            f"({counts}) before timing")

    run = Runner()
    cases = {}
    cmds_by_model = {}
    for label, stem, keras_class in models:
        cmds = commands(stem, keras_class)
        cmds_by_model[label] = cmds
        for tool, cmd in cmds.items():
            if isinstance(cmd, list):
                repeat = netspec_repeat if tool == NETSPEC else 1
                for k in range(repeat):
                    cases[f"{label}|{tool}|{k}"] = run.case(f"{label}|{tool}", cmd)
    floors = {
        "python -c pass": [c.PYTHON, "-c", "pass"],
        "python -c 'import netspec'": [c.PYTHON, "-c", "import netspec"],
    }
    for name, cmd in floors.items():
        cases[f"floor|{name}"] = run.case(f"floor|{name}", cmd)

    if n_warm:  # warm the OS file cache: each tool once, on the first model, untimed
        c.progress("check: warm-up, each tool once ...")
        for cmd in cmds_by_model[models[0][0]].values():
            if isinstance(cmd, list):
                c.run_process(cmd)
    c.progress(f"check: {len(cases)} processes per round, {n_rounds} rounds ...")
    c.interleaved(cases, n_rounds, 0)

    rows, data, targets = [], {}, []
    for label, stem, _ in models:
        base = c.Stats.of(run.times[f"{label}|{NETSPEC}"]) if f"{label}|{NETSPEC}" in run.times else None
        base_mib = max(run.peaks.get(f"{label}|{NETSPEC}", [float("nan")]))
        for tool, cmd in cmds_by_model[label].items():
            key = f"{label}|{tool}"
            if isinstance(cmd, str) or key in run.failed:
                reason = cmd if isinstance(cmd, str) else run.failed[key]
                rows.append([label, tool, WHAT[tool], "", reason, "", "", "", ""])
                data[key] = {"error": reason}
                continue
            if tool in ("torchinfo.summary", "torch meta-device count") and run.reported.get(key) != TORCHVISION[stem]:
                raise SystemExit(f"{tool} reports {run.reported.get(key)} parameters for the hand-written {label}; "
                                 f"torchvision has {TORCHVISION[stem]}")
            st = c.Stats.of(run.times[key])
            mib = max(run.peaks[key])
            med, rng = c.fmt_stats(st)
            ratio = c.fmt_ratio(st.median / base.median) if base else ""
            mratio = c.fmt_ratio(mib / base_mib) if base else ""
            rows.append([label, tool, WHAT[tool], run.reported.get(key, "?"), med, rng, c.fmt_mib(mib), ratio,
                         mratio])
            data[key] = {**st.as_dict(), "peak_mib": mib, "params_reported": run.reported.get(key)}
        if stem == "resnet50" and base:
            targets.append(c.target(f"`netspec check` ResNet-50 under {TARGET_S} s (whole process)",
                                    f"{c.fmt_seconds(base.median)} median", base.median < TARGET_S))
            targets.append(c.target(f"`netspec check` ResNet-50 under {TARGET_MIB:.0f} MiB peak",
                                    c.fmt_mib(base_mib), base_mib < TARGET_MIB))

    floor_rows = []
    for name in floors:
        key = f"floor|{name}"
        if key in run.failed:
            floor_rows.append([name, run.failed[key], "", ""])
            continue
        st = c.Stats.of(run.times[key])
        floor_rows.append([name, *c.fmt_stats(st), c.fmt_mib(max(run.peaks[key]))])
        data[key] = {**st.as_dict(), "peak_mib": max(run.peaks[key])}

    # Synthetic specs: growth with size.
    syn_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        syn_cases = {}
        srun = Runner()
        for n in synthetic:
            path = Path(tmp) / f"synthetic_{n}.net"
            path.write_text(synthetic_spec(n))
            syn_cases[str(n)] = srun.case(str(n), [c.PYTHON, "-m", "netspec", "check", str(path)])
        c.progress(f"check: synthetic specs {', '.join(map(str, synthetic))} layers ...")
        c.interleaved(syn_cases, 2 * n_rounds, n_warm)
    prev = None
    marginal_ms = []
    for n in synthetic:
        key = str(n)
        if key in srun.failed:
            syn_rows.append([f"{n:,}", srun.failed[key], "", "", "", ""])
            prev = None
            continue
        st = c.Stats.of(srun.times[key])
        mib = max(srun.peaks[key])
        per_t = per_m = ""
        if prev:
            dn = (n - prev[0]) / 1000
            ms = (st.median - prev[1]) * 1000 / dn
            per_t, per_m = f"{ms:.0f} ms", f"{(mib - prev[2]) / dn:.1f} MiB"
            marginal_ms.append(ms)
        syn_rows.append([f"{n:,}", *c.fmt_stats(st), c.fmt_mib(mib), per_t, per_m])
        data[f"synthetic|{n}"] = {**st.as_dict(), "peak_mib": mib}
        prev = (n, st.median, mib)

    syn_notes = ["each added 1,000 layers cost the time and memory in the last two columns (from the row above); "
                 "equal costs per 1,000 layers mean linear growth"]
    if len(marginal_ms) >= 3:
        a, b = marginal_ms[-2], marginal_ms[-1]
        growth = b / max(a, 1e-9)
        verdict = ("linear within noise" if growth < 1.25 else "somewhat faster than linear" if growth < 2
                   else "clearly faster than linear")
        syn_notes.append(f"time from 1,000 to 3,000 layers: {a:.0f} ms per 1,000; from 3,000 to 10,000: "
                         f"{b:.0f} ms per 1,000 ({growth:.2f}x): {verdict}")

    c.progress("check: synthetic specs in process, cyclic GC on and off ...")
    gc_rows, gc_data = in_process_growth(synthetic, 1 if args.smoke else 3)
    data["in_process"] = gc_data

    per_round = (f"{n_rounds} interleaved rounds after an untimed warm-up run of each tool; netspec runs "
                 f"{netspec_repeat}x per round (it is cheap), the peers once; synthetic specs: {2 * n_rounds} rounds")
    result = {
        "benchmark": "check",
        "title": "1. Checking a model: whole process",
        "intro": ("Wall time and peak memory of one fresh process that reports a model's shapes and/or "
                  "parameters, as a user runs it (interpreter start-up and imports included). "
                  "Ratios are the peer's median (or peak) over netspec's: above 1 means netspec is faster "
                  "(smaller)."),
        "settings": {"rounds": n_rounds, "warmup": n_warm, "netspec_repeat": netspec_repeat, "mode": c.mode_name(args)},
        "sections": [
            c.section("Real models", ["model", "tool", "reports", "params reported", "median", "min - max",
                                      "peak RSS", "time / netspec", "memory / netspec"], rows,
                      [per_round,
                       "netspec counts BatchNorm moving statistics in its total (Keras's convention); its report "
                       "also lists the trainable count (torchvision's figure)",
                       "Keras's ResNets are \"v1\" with convolution biases (ResNet-50: 25,636,712 in all); "
                       "the netspec and PyTorch ResNets are torchvision's v1.5",
                       *notes_models]),
            c.section("Floors: interpreter and import", ["command", "median", "min - max", "peak RSS"], floor_rows,
                      ["`python -c pass` is the least any whole-process tool can take here; "
                       "`import netspec` is what netspec check pays before reading a spec"]),
            c.section("Synthetic specs: growth", ["layers", "median", "min - max", "peak RSS", "time per +1k layers",
                                                  "memory per +1k layers"], syn_rows, syn_notes),
            c.section("Synthetic specs in process: parse + check, Python's cyclic GC on and off",
                      ["layers", "GC on (median)", "per 1k layers", "GC off (median)", "per 1k layers"], gc_rows,
                      ["`netspec.parse_text` on the same synthetic specs in this process (no start-up), "
                       "alternately with `gc.disable()`: a constant time per 1,000 layers with GC off and a "
                       "growing one with GC on puts the faster-than-linear part in Python's garbage collector, "
                       "which scans the growing number of live objects more often"]),
        ],
        "targets": targets,
        "data": data,
    }
    c.finish(result, args)
    return result


if __name__ == "__main__":
    main()
