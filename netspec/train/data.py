"""Training data: reading arrays, checking them against the spec, and cutting them into batches.

Sources (``--data`` may be given several times; arrays are merged by name):

- ``file.npz``: one array per spec input and target, named after it.
- ``name.npy``: one array, named after the file's stem, opened as a read-only memory map
  (so data larger than memory is read batch by batch); ``NAME=path.npy`` names it explicitly.
- a folder: every ``*.npy`` in it, each named after its stem, memory-mapped.
- ``file.csv``: tabular data with a header row (see :func:`read_csv` for the column mapping).

Nothing is unpickled: ``allow_pickle=False`` everywhere. :func:`check_data` validates every array
against the spec's input and target types before training starts and raises :class:`DataError`
naming the array and what is wrong.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover

    from .. import ir

#: Rows checked at a time for NaN and range: bounded memory for memory-mapped arrays.
CHUNK_BYTES = 64 << 20


class DataError(ValueError):
    """Training data that does not fit the spec (a missing array, a wrong shape or dtype, NaN ...)."""


@dataclass
class Dataset:
    """Named arrays with a common first (sample) axis; ``source`` says where they came from."""

    arrays: dict[str, Any]
    source: str = "<arrays>"
    ignored: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def take(self, indices, names, dtypes: dict[str, str]) -> dict[str, Any]:
        """The rows ``indices`` of the arrays ``names`` as contiguous arrays of the spec's dtypes.

        Memory-mapped rows are read in increasing order (one pass over the file) and put back in
        the requested order.
        """
        import numpy as np

        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out = {}
        for name in names:
            rows = np.asarray(self.arrays[name][indices[order]])[inverse]
            out[name] = np.ascontiguousarray(rows, dtype=dtypes[name])
        return out

    def fingerprint(self) -> str:
        """Shapes and dtypes (not contents): resuming checks the data still looks the same."""
        text = ";".join(f"{k}:{tuple(a.shape)}:{a.dtype}" for k, a in sorted(self.arrays.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _magic(path: Path, magic: bytes, kind: str) -> None:
    """np.load reads anything unknown as a pickle: check the format's magic bytes first."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except OSError as exc:
        raise DataError(f"cannot read '{path}': {exc}") from None
    if head != magic:
        raise DataError(f"cannot read '{path}': not a readable {kind} file (it does not start like one)")


def _npz(path: Path) -> dict[str, Any]:
    import numpy as np

    _magic(path, b"PK", ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"cannot read '{path}': {exc} (object arrays are not supported)") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError
        raise DataError(f"cannot read '{path}': not a readable .npz file ({exc})") from None


def _npy(path: Path):
    import numpy as np

    _magic(path, b"\x93NUMPY", ".npy")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"cannot read '{path}': {exc} (object arrays are not supported)") from None
    except Exception as exc:
        raise DataError(f"cannot read '{path}': not a readable .npy file ({exc})") from None


def read_csv(path: str | Path, network: ir.Network) -> dict[str, Any]:
    """Arrays for a tabular spec from a CSV file with a header row.

    Column mapping, per input and target of the spec (each scalar ``[]`` or a vector ``[k]``):

    1. a scalar value takes the column named exactly after it (``label``);
    2. a vector ``x: [k]`` takes the columns ``x.0 ... x.{k-1}`` (or ``x_0 ... x_{k-1}``) when present;
    3. otherwise, when exactly one vector input is left and exactly ``k`` columns are left unclaimed,
       it takes them in file order (the usual "features, then a label column" file).

    Every cell must be a number; integer values (class ids) must be whole numbers. An empty cell is
    refused like NaN.
    """
    import numpy as np

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read '{path}': {exc}") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"'{path}' is empty; a CSV file needs a header row naming its columns")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"'{path}' has a header but no rows")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"'{path}': duplicate column(s) {', '.join(dup)}")
    col = {h: i for i, h in enumerate(header)}
    values = [*network.inputs, *network.targets]
    claimed: dict[str, list[int]] = {}
    for v in values:
        shape = v.type.shape
        if len(shape) > 1 or (shape and not isinstance(shape[0], int)):
            raise DataError(f"'{path}': CSV holds scalar or fixed-length vector values only; "
                            f"'{v.name}' is {v.type}; use .npz or .npy files")
        if not shape:
            if v.name in col:
                claimed[v.name] = [col[v.name]]
            continue
        for sep in (".", "_"):
            names = [f"{v.name}{sep}{i}" for i in range(shape[0])]
            if all(n in col for n in names):
                claimed[v.name] = [col[n] for n in names]
                break
    left = [v for v in values if v.name not in claimed]
    scalars = [v for v in left if not v.type.shape]
    if scalars:  # a scalar is always found by name; say so before guessing vector columns
        left = scalars
    taken = {i for cols in claimed.values() for i in cols}
    free = [i for i in range(len(header)) if i not in taken]
    vectors = [v for v in left if v.type.shape]
    if not scalars and len(vectors) == 1 and vectors[0] in network.inputs and len(free) == vectors[0].type.shape[0]:
        claimed[vectors[0].name] = free
        left.remove(vectors[0])
    if left:
        want = "; ".join(f"'{v.name}' ({v.type}): a column '{v.name}'" if not v.type.shape else
                         f"'{v.name}' ({v.type}): columns {v.name}.0 ... {v.name}.{v.type.shape[0] - 1}"
                         for v in left)
        raise DataError(f"'{path}': no columns for {want}; the header has {', '.join(header)}"
                        f" ({len(free)} unclaimed)")
    width = len(header)
    table = np.empty((len(body), width), dtype=np.float64)
    for r, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"'{path}' line {r + 2}: {len(row)} cells, the header has {width}")
        for c, cell in enumerate(row):
            text = cell.strip()
            try:
                table[r, c] = float(text) if text else float("nan")
            except ValueError:
                raise DataError(f"'{path}' line {r + 2}, column '{header[c]}': not a number: {cell!r}") from None
    out: dict[str, Any] = {}
    for v in values:
        cols = claimed[v.name]
        arr = table[:, cols] if v.type.shape else table[:, cols[0]]
        if v.type.is_integer:
            finite = np.isfinite(arr)
            if not finite.all():
                r = int(np.argwhere(~finite)[0][0])
                raise DataError(f"'{path}' line {r + 2}: '{v.name}' is empty or NaN")
            if not np.all(arr == np.round(arr)):
                r = int(np.argwhere(arr != np.round(arr))[0][0])
                raise DataError(f"'{path}' line {r + 2}: '{v.name}' must be whole numbers ({v.type}); "
                                f"received {arr.reshape(len(arr), -1)[r].tolist()}")
            out[v.name] = arr.astype(v.type.dtype)
        else:
            out[v.name] = arr.astype(np.float32)
    return out


def load_data(paths, network: ir.Network | None = None) -> Dataset:
    """Read one or several sources (see the module docstring) into a :class:`Dataset`.

    ``paths`` is a path, a list of paths, or a dict of arrays (used as is). ``network`` is needed
    for CSV files (the column mapping). Raises :class:`DataError` for unreadable files, unknown
    extensions and arrays named twice.
    """
    if isinstance(paths, Dataset):
        return paths
    if isinstance(paths, dict):
        return Dataset(dict(paths))
    if isinstance(paths, (str, Path)):
        paths = [paths]
    arrays: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def add(name: str, array, where: str) -> None:
        if name in arrays:
            raise DataError(f"array '{name}' is given twice: in {origin[name]} and in {where}")
        arrays[name] = array
        origin[name] = where

    for item in paths:
        text = str(item)
        name = None
        if "=" in text and not Path(text).exists():
            name, text = text.split("=", 1)
        path = Path(text)
        if not path.exists():
            raise DataError(f"no such file or folder '{path}'")
        if name is not None and (path.is_dir() or path.suffix != ".npy"):
            raise DataError(f"'{name}={path}': NAME=PATH names one .npy file")
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise DataError(f"folder '{path}' holds no .npy files")
            for f in files:
                add(f.stem, _npy(f), str(f))
        elif path.suffix == ".npz":
            for k, a in _npz(path).items():
                add(k, a, str(path))
        elif path.suffix == ".npy":
            add(name or path.stem, _npy(path), str(path))
        elif path.suffix == ".csv":
            if network is None:
                raise DataError(f"'{path}': reading CSV needs the spec (the column mapping)")
            for k, a in read_csv(path, network).items():
                add(k, a, str(path))
        else:
            raise DataError(f"'{path}': unsupported data file; use .npz, .npy, a folder of .npy files, or .csv")
    return Dataset(arrays, ", ".join(str(p) for p in paths))


def _type_text(v: ir.Value) -> str:
    return f"{v.name}: {v.type}"


def class_counts(network: ir.Network) -> dict[str, int]:
    """Target name -> number of classes, for the targets of ``sparse_categorical_crossentropy``."""
    out = {}
    for term in network.loss:
        if term.fn == "sparse_categorical_crossentropy":
            pred = network.type_of(term.args[0])
            classes = pred.shape[term.attrs.get("axis", -1)]
            if isinstance(classes, int):
                out[term.args[1]] = classes
    return out


def vocab_sizes(network: ir.Network) -> dict[str, int]:
    """Integer input -> the smallest vocabulary of the embeddings that read it."""
    out: dict[str, int] = {}
    for n in network.nodes:
        if n.op == "embedding":
            for v in n.inputs:
                out[v] = min(out.get(v, n.attrs["vocab"]), n.attrs["vocab"])
    return out


def check_data(data: Dataset, network: ir.Network, role: str = "data", targets: bool = True,
               scan: bool = True) -> Dataset:
    """Validate ``data`` against the spec's inputs (and targets); raise :class:`DataError` on the first problem.

    Checks, per array: present; per-sample shape equal to the spec's (run-time dimensions: any size,
    the same across the arrays that share the name); dtype kind (floats for float values, integers for
    integer values; floats are cast to the spec's precision); every array the same length; no NaN or
    infinity; class ids within ``[0, classes)``; embedding ids within ``[0, vocab)``. Arrays the spec
    does not name are ignored (listed in ``data.ignored``). Memory maps are scanned in chunks;
    ``scan=False`` skips that scan (NaN and id ranges) for data too large to read twice.
    """
    import numpy as np

    values = [*network.inputs, *(network.targets if targets else ())]
    missing = [v for v in values if v.name not in data.arrays]
    if missing:
        have = ", ".join(sorted(data.arrays)) or "no arrays"
        raise DataError(f"{role}: missing array(s) " + ", ".join(f"'{v.name}' ({v.type})" for v in missing)
                        + f"; {data.source} has {have}")
    data.ignored = sorted(set(data.arrays) - {v.name for v in values})
    lengths = {}
    runtime: dict[str, tuple[int, str]] = {}
    classes = class_counts(network)
    vocabs = vocab_sizes(network)
    for v in values:
        a = data.arrays[v.name]
        where = f"{role}: array '{v.name}' ({_type_text(v)})"
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise DataError(f"{where}: expected an array, received {type(a).__name__}")
        want_rank = 1 + v.type.rank
        shape = tuple(a.shape)
        if len(shape) != want_rank:
            raise DataError(f"{where}: expected {want_rank} dimensions [N, {', '.join(map(str, v.type.shape))}]"
                            .replace("[N, ]", "[N]")
                            + f", received {len(shape)}: shape {list(shape)}")
        for axis, (want, got) in enumerate(zip(v.type.shape, shape[1:]), start=1):
            if isinstance(want, int):
                if want != got:
                    raise DataError(f"{where}: per-sample shape {list(shape[1:])} does not match the spec's "
                                    f"{list(v.type.shape)} (axis {axis}: expected {want}, received {got})")
            elif want in runtime and runtime[want][0] != got:
                raise DataError(f"{where}: run-time size '{want}' is {got} on axis {axis}, but "
                                f"{runtime[want][0]} in '{runtime[want][1]}'")
            else:
                runtime[want] = (got, v.name)
        kind = a.dtype.kind
        if v.type.is_integer:
            if kind not in "iu":
                raise DataError(f"{where}: expected integers ({v.type.dtype}), received {a.dtype}"
                                + ("; convert with .astype(np.int64)" if kind == "f" else ""))
        elif kind != "f":
            hint = "; convert (and scale) with .astype(np.float32)" if kind in "iub" else ""
            raise DataError(f"{where}: expected floating-point values ({v.type.dtype}), received {a.dtype}{hint}")
        lengths[v.name] = shape[0]
    if len(set(lengths.values())) > 1:
        raise DataError(f"{role}: arrays differ in length (samples): "
                        + ", ".join(f"{k} {n}" for k, n in lengths.items()))
    n = next(iter(lengths.values()), 0)
    if n == 0:
        raise DataError(f"{role}: no samples (arrays of length 0)")
    if not scan:
        return data
    for v in values:
        a = data.arrays[v.name]
        where = f"{role}: array '{v.name}' ({_type_text(v)})"
        row_bytes = max(1, a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)))
        step = max(1, CHUNK_BYTES // row_bytes)
        high = classes.get(v.name) if v.type.is_integer else None
        high = vocabs.get(v.name, high) if v.type.is_integer and v.name in vocabs else high
        for start in range(0, n, step):
            chunk = np.asarray(a[start:start + step])
            if chunk.dtype.kind == "f":
                bad = ~np.isfinite(chunk)
                if bad.any():
                    idx = np.argwhere(bad)[0]
                    what = "NaN" if np.isnan(chunk[tuple(idx)]) else "an infinity"
                    raise DataError(f"{where}: contains {what} (sample {start + int(idx[0])}, "
                                    f"index {idx[1:].tolist()}); NaN and infinities are refused")
            elif high is not None or v.type.is_integer:
                lo, hi = int(chunk.min()), int(chunk.max())
                if lo < 0 or (high is not None and hi >= high):
                    i = int(np.argwhere((chunk < 0) | (chunk >= (high if high is not None else np.inf)))[0][0])
                    bound = f"[0, {high})" if high is not None else "non-negative"
                    what = "class ids" if v.name in classes else "ids"
                    raise DataError(f"{where}: {what} must be in {bound}; sample {start + i} holds "
                                    f"{chunk[i].tolist()}")
    return data


def split_rows(indices, world: int):
    """Split one global batch's indices into ``world`` contiguous parts, as evenly as possible."""
    import numpy as np

    return np.array_split(np.asarray(indices), world)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True):
    """The sample order of one epoch: a permutation drawn from ``(seed, epoch)`` alone.

    It does not depend on the number of processes, so a run split over several processes sees
    exactly the global batches a single process would.
    """
    import numpy as np

    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch, 0x6E6574]).permutation(n)


def global_batches(n: int, batch: int, seed: int, epoch: int, shuffle: bool = True):
    """The global batches of one epoch (index arrays, the last one possibly short)."""
    order = epoch_order(n, seed, epoch, shuffle)
    return [order[i:i + batch] for i in range(0, n, batch)]


def dtypes_of(network: ir.Network, targets: bool = True) -> dict[str, str]:
    return {v.name: v.type.dtype for v in (*network.inputs, *(network.targets if targets else ()))}

