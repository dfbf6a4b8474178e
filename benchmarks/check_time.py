"""Whole-process time and peak memory of `netspec check` on the large specs.

Usage: python benchmarks/check_time.py [--runs N] [--json OUT]

Each run is a fresh interpreter (`python -m netspec check SPEC`), as a user
runs it; the first, cache-warming run is discarded. Prints median, min and max
wall time and the peak resident memory (ru_maxrss of the child).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ["specs/resnet50.net", "specs/resnet152.net", "specs/vgg16.net"]


def run_once(spec: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "netspec", "check", spec], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"netspec check {spec} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024  # KiB -> MiB (Linux)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    results = {}
    print(f"python {platform.python_version()} on {platform.machine()}, {args.runs} runs each")
    print(f"{'spec':24} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}")
    for spec in SPECS:
        run_once(spec)  # warm the grammar cache and the OS file cache
        times, peaks = zip(*(run_once(spec) for _ in range(args.runs)))
        row = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
               "peak_mib": max(peaks)}
        results[spec] = row
        print(f"{spec:24} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} {row['peak_mib']:9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
