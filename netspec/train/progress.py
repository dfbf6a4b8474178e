"""Progress: a live rich bar on a terminal; one line per epoch elsewhere (CI, pipes, files)."""

from __future__ import annotations

import os
import sys
import time


def interactive() -> bool:
    """Whether a live bar suits the output: standard error is a terminal and no CI variable is set."""
    if os.environ.get("CI") or os.environ.get("NETSPEC_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def _fmt(metrics: dict) -> str:
    parts = []
    for k, v in metrics.items():
        if k == "samples_per_second":
            parts.append(f"{v:,.0f} samples/s")
        elif isinstance(v, float):
            parts.append(f"{k} {v:.4f}" if "accuracy" in k else f"{k} {v:.4g}")
        else:
            parts.append(f"{k} {v}")
    return "  ".join(parts)


class Progress:
    """Reports training to standard error.

    ``mode``: ``"bar"`` (rich live bar per epoch: loss, samples/s, ETA), ``"lines"`` (one line per
    epoch), ``"quiet"`` (nothing). ``"auto"`` picks the bar on a terminal when rich is installed,
    else lines.
    """

    def __init__(self, mode: str = "auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if interactive() else "lines"
        if mode == "bar":
            try:
                import rich.progress  # noqa: F401
            except ImportError:  # rich is in the `train` extra; fall back to plain lines
                mode = "lines"
        self.mode = mode
        self._bar = None
        self._task = None
        self._start = 0.0

    def message(self, text: str) -> None:
        if self.mode != "quiet":
            print(text, file=self.stream, flush=True)

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        self._start = time.perf_counter()
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), console=Console(file=self.stream, force_terminal=True),
                             transient=True)
        self._bar.start()
        self._task = self._bar.add_task("train", total=batches, info="")

    def step(self, loss: float, samples: int) -> None:
        if self._bar is not None:
            rate = samples / max(time.perf_counter() - self._start, 1e-9)
            self._bar.update(self._task, advance=1, info=f"loss {loss:.4g}  {rate:,.0f} samples/s")

    def end_epoch(self, epoch: int, epochs: int, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.message(f"epoch {epoch}/{epochs}  {_fmt(metrics)}")
