"""Shared helpers of the benchmark scripts: options, timing, child processes, the machine, tables.

Every script prints its tables and, with ``--json OUT``, writes a result object::

    {"benchmark": "check", "title": ..., "intro": ..., "settings": {...},
     "sections": [{"title": ..., "columns": [...], "rows": [[...], ...], "notes": [...]}],
     "targets": [{"target": ..., "result": ..., "met": true | false | null}],
     "data": {...raw numbers...}}

``benchmarks/run.py`` runs every script and renders these objects into docs/benchmarks.md.
This module imports no framework.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PYTHON = sys.executable


def _bytecode_dir() -> str:
    """Where child processes keep their compiled bytecode: a temporary folder of this run (or the one a
    parent run already chose), not the repository's ``__pycache__``."""
    chosen = os.environ.get("PYTHONPYCACHEPREFIX")
    if chosen:
        return chosen
    import atexit
    import shutil

    folder = tempfile.mkdtemp(prefix="netspec-bench-pyc-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


#: Environment of every child process: quiet TensorFlow, and bytecode compiled once and reused, as an
#: installed package runs (pip compiles it at install time). Without it (PYTHONDONTWRITEBYTECODE, as
#: some shells and CI images set), every process would compile every module it imports from source,
#: and a start-up figure would time the compiler. The warm-up round compiles.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPYCACHEPREFIX": _bytecode_dir()})

NOT_INSTALLED = "not installed"

PACKAGES = ("netspec", "torch", "torchinfo", "tensorflow", "keras", "onnx", "onnxruntime", "onnxscript",
            "numpy", "lark", "pydantic")


# Options -----------------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer rounds: a rough result in about a third of the time")
    mode.add_argument("--smoke", action="store_true",
                      help="one round, no warm-up, smallest cases: proves the script runs (numbers meaningless)")
    p.add_argument("--rounds", type=int, help="measured rounds (overrides the mode's default)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where latency benchmarks run (cuda: fails with a message when CUDA is not available)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for torch, TensorFlow and ONNX Runtime (default 1: the most repeatable "
                        "on a shared machine)")
    p.add_argument("--json", metavar="OUT", help="write the result object to OUT")
    return p


def rounds(args, full: int, quick: int) -> int:
    if args.rounds:
        return args.rounds
    return 1 if args.smoke else quick if args.quick else full


def warmups(args) -> int:
    return 0 if args.smoke else 1


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def threads(args) -> int:
    """Intra-op threads of the latency benchmarks: --threads, else 1.

    One thread by default: the ratios are the result, and on a machine shared with other
    work a parallel region waits for its slowest thread, so with two or more threads one
    descheduled thread can make a forward pass ten times slower (seen with torch's OpenMP
    on a 2-core VM). --threads N measures N-thread latency on a quiet machine.
    """
    return args.threads or 1


def mode_name(args) -> str:
    return "smoke" if args.smoke else "quick" if args.quick else "full"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def require_cuda_torch() -> None:
    """Exit with a clear message when --device cuda is asked for and torch has no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        sys.exit(f"--device cuda: torch {torch.__version__} sees no CUDA device (CUDA in this build: {build}); "
                 f"run with --device cpu")


# Statistics --------------------------------------------------------------------------------------


@dataclass
class Stats:
    median: float
    min: float
    max: float
    n: int
    q1: float  # quartiles: the middle half of the values lies in [q1, q3]
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        values = list(values)
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
        return cls(statistics.median(values), min(values), max(values), len(values), q1, q3)

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n, "q1": self.q1, "q3": self.q3}


#: A latency ratio "equals 1.00x within noise" when its median is within this of 1 ...
RATIO_TOLERANCE = 0.03


def ratio_verdict(q: dict) -> tuple[str, bool]:
    """Verdict on "1.00x within noise" for per-round ratios (new / reference): (words, met).

    Met when the median is within 3 % of 1.00x, or 1.00x lies in the middle half of the
    rounds' ratios (between the quartiles), or the median is below 1.00x (netspec's side
    is faster: not a shortfall, but said so). The min - max alone would be too lenient:
    with twenty rounds on a shared machine one disturbed round reaches almost anything.
    """
    med = q["median"]
    if abs(med - 1.0) <= RATIO_TOLERANCE or q["q1"] <= 1.0 <= q["q3"]:
        return "equal within noise", True
    if med < 1.0:
        return f"netspec's side {1 - med:.0%} faster", True
    return f"netspec's side {med - 1:.0%} slower", False


def interleaved(cases: dict[str, Callable[[], float]], n_rounds: int, n_warmup: int) -> dict[str, list[float]]:
    """Run every case once per round, in an order that rotates each round; drop the warm-up rounds.

    Each case returns its own measurement (seconds, or anything else), so a case can time
    exactly the part it means. Rotation spreads slow phases of a shared machine over all cases.
    """
    names = list(cases)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(n_warmup + n_rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        if r % 2:
            order.reverse()
        for name in order:
            value = cases[name]()
            if r >= n_warmup:
                out[name].append(value)
    return out


def timed(fn: Callable[[], object], sync: Callable[[], object] | None = None) -> float:
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


# Child processes ---------------------------------------------------------------------------------


@dataclass
class ProcessRun:
    seconds: float
    peak_mib: float  # ru_maxrss of this child alone
    returncode: int
    stderr: str
    stdout: str
    cpu_s: float = float("nan")  # the child's user + system time


#: Starts one command and reports its wall time, its own peak RSS and its exit status. It runs as
#: a small separate interpreter (-I -S: about 8 MiB) because Linux counts, in a child's ru_maxrss,
#: the memory of the process it was forked from: a child forked straight from a benchmark that
#: holds a model in memory would report that model's size. Forked from this launcher instead, a
#: command's figure is its own peak (or the launcher's ~8 MiB, whichever is larger).
_LAUNCHER = """
import os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
with open(out, "w") as f:
    f.write(f"{elapsed!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime!r}")
"""


def run_process(cmd: Sequence[str], cwd: Path = ROOT, capture_stdout: bool = False) -> ProcessRun:
    """Run ``cmd`` as a fresh process; its wall time and its own peak resident memory.

    The time is taken in the launcher around spawning and reaping the command, so the
    launcher's own start-up is not counted.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        with open(Path(tmp) / "stderr", "w+b") as err, open(Path(tmp) / "stdout", "w+b") as out:
            proc = subprocess.run([PYTHON, "-I", "-S", "-c", _LAUNCHER, str(report), *cmd], cwd=cwd,
                                  env=CHILD_ENV, stdin=subprocess.DEVNULL,
                                  stdout=out if capture_stdout else subprocess.DEVNULL, stderr=err)
            err.seek(0)
            out.seek(0)
            stderr = err.read().decode(errors="replace")
            stdout = out.read().decode(errors="replace")
        if proc.returncode != 0 or not report.exists():
            return ProcessRun(float("nan"), float("nan"), proc.returncode or 1, stderr, stdout)
        elapsed, maxrss, code, cpu = report.read_text().split()
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return ProcessRun(float(elapsed), int(maxrss) / scale, int(code), stderr, stdout, float(cpu))


def last_line(text: str, limit: int = 160) -> str:
    """The last non-empty line of an error output, shortened: what a table cell can hold."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# The machine -------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        # --no-optional-locks: read only, not even the index's stat cache is refreshed
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev} (with uncommitted changes)" if rev and dirty else rev or "unknown"


def machine() -> dict:
    mem = memory_gib()
    info = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": round(mem, 1) if mem else None,
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "versions": {name: version(name) for name in PACKAGES},
        "git": git_revision(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


# Formatting --------------------------------------------------------------------------------------


def fmt_seconds(s: float) -> str:
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.1:
        return f"{s:.3f} s"
    return f"{s * 1000:.1f} ms" if s >= 0.01 else f"{s * 1000:.2f} ms"


def fmt_stats(st: Stats) -> tuple[str, str]:
    """Median and "min-max" cells."""
    return fmt_seconds(st.median), f"{fmt_seconds(st.min)} - {fmt_seconds(st.max)}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def fmt_ratio_range(st: Stats) -> str:
    return f"{st.min:.2f}x - {st.max:.2f}x"


def fmt_ratio_iqr(st: Stats) -> str:
    return f"{st.q1:.2f}x - {st.q3:.2f}x"


def fmt_mib(m: float) -> str:
    return f"{m:.0f} MiB" if m >= 100 else f"{m:.1f} MiB"


_NUMERIC = re.compile(r"^[\d.,]+( ?(s|ms|MiB|x|GiB)\b|x|$)")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    def numeric(i: int) -> bool:  # right-align columns of numbers, times, sizes and ratios
        cells = [str(r[i]) for r in rows if i < len(r) and str(r[i])]
        return bool(cells) and sum(bool(_NUMERIC.match(v)) for v in cells) * 2 > len(cells)

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---:" if numeric(i) else "---" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(str(c))
              for i, c in enumerate(columns)]
    line = "  ".join(str(c).ljust(w) for c, w in zip(columns, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def section(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> dict:
    return {"title": title, "columns": list(columns), "rows": [list(map(str, r)) for r in rows], "notes": list(notes)}


def target(text: str, result: str, met: bool | None) -> dict:
    return {"target": text, "result": result, "met": met}


def finish(result: dict, args) -> None:
    """Print the result's tables and write its JSON."""
    print(f"\n== {result['title']} ==")
    for sec in result["sections"]:
        print(f"\n{sec['title']}")
        print(text_table(sec["columns"], sec["rows"]))
        for note in sec["notes"]:
            print(f"  note: {note}")
    for t in result.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"target: {t['target']}: {t['result']} [{verdict}]")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
