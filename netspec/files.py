"""Writing files: the whole file or nothing, keeping what the target was.

Every file netspec writes (``fmt -o``/``-i``, ``compile -o``, ``export -o``,
``save_weights``, ONNX external data) goes through :func:`write_atomic`:

- A temporary file in the target's folder is written, flushed, synced and renamed
  over the target; on any error it is removed and the target is left as it was.
- An existing target keeps its permission bits (a 0600 spec stays 0600) and, where
  the process may, its owner and group; a new file gets what ``open()`` would give.
- A target nobody may write (no write bit in its mode, as after ``chmod a-w``) is
  refused, also for root, who the kernel would let write anyway; so is a folder
  nobody may write.
- A symlink is written through: the file it points at is replaced, the link stays.
  Except where the kernel's ``protected_symlinks`` rule would refuse to follow it:
  a link in a sticky, world-writable folder (``/tmp``) owned by neither this user
  nor the folder's owner, the classic planted link, is refused.
- A target that exists and is not a regular file (``/dev/null``, ``/dev/stdout``,
  a FIFO) is written in place: renaming over it would replace the device.
- A hard-linked target is replaced under the name given; its other names keep the
  old content (as with any atomic save).

Failures raise :class:`WriteError`, an ``OSError`` whose ``str()`` is one line
("cannot write 'out/model.py': no such directory 'out'"); the CLI reports it as a
usage error (exit 2).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class WriteError(OSError):
    """A file could not be written. ``str()`` is one line saying which file and why."""

    def __init__(self, path: str | os.PathLike, reason: str, code: int | None = None):
        super().__init__(code, reason, os.fspath(path))
        self.path = os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot write {quote(self.path)}: {self.reason}"


def quote(path: str | os.PathLike) -> str:
    """``'path'`` with control characters escaped, so a message stays one line and inert."""
    text = os.fspath(path)
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # undecodable bytes (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def reason(exc: OSError) -> str:
    """The lower-case strerror of an OSError ("no space left on device")."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def file_mode() -> int:
    """0666 less the process's umask: what ``open(path, "w")`` would have given."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _follow(path: Path) -> Path:
    """Where a write to ``path`` lands: the final target of a chain of symlinks."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return path  # a device or FIFO (maybe behind /proc magic links): open() finds it
    seen = 0
    while True:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        except NotADirectoryError:
            raise WriteError(path, f"{quote(_folder(path))} is not a directory", errno.ENOTDIR) from None
        except OSError as exc:
            raise WriteError(path, reason(exc), exc.errno) from None
        if not stat.S_ISLNK(st.st_mode):
            return path
        seen += 1
        if seen > 40:
            raise WriteError(path, "too many levels of symbolic links", errno.ELOOP)
        folder = _folder(path)
        try:
            fst = os.stat(folder)
        except OSError as exc:
            raise WriteError(path, reason(exc), exc.errno) from None
        sticky_shared = fst.st_mode & stat.S_ISVTX and fst.st_mode & stat.S_IWOTH
        if sticky_shared and st.st_uid not in (os.geteuid(), fst.st_uid):
            raise WriteError(path, "a symbolic link another user owns in a shared folder; "
                                   "not following it", errno.EACCES)
        target = Path(os.readlink(path))
        path = target if target.is_absolute() else folder / target


def check_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` would replace (symlinks followed), or :class:`WriteError`.

    Checks what can be known before writing: the folder exists and may be written,
    the target is not a folder and is not read-only. Commands call it before long
    work so that a bad ``-o`` fails at once; :func:`write_atomic` calls it again.
    """
    real = _follow(Path(path))
    folder = _folder(real)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise WriteError(path, f"{quote(folder)} is not a directory", errno.ENOTDIR) from None
    except OSError as exc:
        raise WriteError(path, reason(exc), exc.errno) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise WriteError(path, "is a directory", errno.EISDIR)
        if not st.st_mode & 0o222:
            raise WriteError(path, f"the file is read-only (mode {stat.S_IMODE(st.st_mode):04o})", errno.EACCES)
        if stat.S_ISREG(st.st_mode) and not os.access(real, os.W_OK):
            raise WriteError(path, "permission denied", errno.EACCES)
        if not stat.S_ISREG(st.st_mode):
            return real  # a device or FIFO: written in place
    try:
        fst = os.stat(folder)
    except FileNotFoundError:
        raise WriteError(path, f"no such directory {quote(folder)}", errno.ENOENT) from None
    except NotADirectoryError:
        raise WriteError(path, f"{quote(folder)} is not a directory", errno.ENOTDIR) from None
    except OSError as exc:
        raise WriteError(path, reason(exc), exc.errno) from None
    if not stat.S_ISDIR(fst.st_mode):
        raise WriteError(path, f"{quote(folder)} is not a directory", errno.ENOTDIR)
    if not fst.st_mode & 0o222 or not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(path, f"the folder {quote(folder)} is read-only", errno.EACCES)
    return real


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO, Path], None]) -> None:
    """Write ``data`` (text, bytes, or a function writing to the open file) to ``path`` atomically.

    ``data(file, target)`` receives the binary file and the path being replaced
    (symlinks followed). On any error the target is left as it was and
    :class:`WriteError` is raised; see the module docstring for modes, read-only
    targets, symlinks and devices.
    """
    real = check_target(path)
    try:
        st = os.stat(real)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_special(path, real, data)
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=_folder(real), prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(path, reason(exc), exc.errno) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            _fill(fh, real, data)
            fh.flush()
            os.fsync(fh.fileno())
        if st is None:
            os.chmod(tmp, file_mode())
        else:
            _keep_owner(tmp, st)
            os.chmod(tmp, stat.S_IMODE(st.st_mode) & 0o777)
        os.replace(tmp, real)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, reason(exc), exc.errno) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _fill(fh: BinaryIO, target: Path, data) -> None:
    if callable(data):
        data(fh, target)
    else:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def _keep_owner(tmp: str, st: os.stat_result) -> None:
    """Give the new file the old one's owner and group where this process may (root; one's own groups)."""
    if (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return
    for uid in (st.st_uid, -1):
        try:
            os.chown(tmp, uid, st.st_gid)
            return
        except OSError:
            continue


def _write_special(path, real: Path, data) -> None:
    """A device or FIFO the user named: written in place (it cannot be replaced atomically)."""
    try:
        with open(real, "wb") as fh:
            _fill(fh, real, data)
            fh.flush()
    except OSError as exc:
        raise WriteError(path, reason(exc), exc.errno) from None
