"""Atomic file writes: the whole file or nothing, with the permissions ``open()`` would give."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def file_mode() -> int:
    """0666 less the process's umask: what ``open(path, "w")`` would have given."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO, Path], None]) -> None:
    """Write ``data`` (text, bytes, or a function writing to the open file) to ``path`` atomically.

    A temporary file in the same folder is written, flushed and renamed over
    ``path``; on any error it is removed and ``path`` is left as it was.
    Raises FileNotFoundError when the folder does not exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"no such directory '{folder}'")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh, path)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
