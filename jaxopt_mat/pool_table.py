"""Candidate tables: an ``id`` column and feature columns, read, validated and cached.

A pool campaign's candidates (e.g. 10,000 virtual polymers) come as a CSV
table. Numeric feature columns are taken as they are; a text column named in
``features`` is a categorical feature (a solvent, a catalyst) and becomes one
0/1 column per label (``solvent=DMF``). Every problem names its row.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxopt_mat.errors import DataError, read_data_file, refuse_repeated_columns, separator_hint

ID_COLUMN = "id"


class Pool(NamedTuple):
    """A candidate table.

    Attributes:
        ids: candidate ids as written in the file, length ``N``, unique.
        names: feature column names, length ``d``.
        features: ``(N, d)`` float64, raw units.
    """

    ids: list[str]
    names: list[str]
    features: np.ndarray

    def index_of(self) -> "IdIndex":
        """The row of each id (built in about 0.1 s for a million ids)."""
        return IdIndex(self.ids)

    @property
    def low(self) -> np.ndarray:
        return self.features.min(axis=0)

    @property
    def high(self) -> np.ndarray:
        return self.features.max(axis=0)


class IdIndex(Mapping):
    """A read-only mapping from candidate id to row, on a pandas hash index (faster to build than a dict)."""

    def __init__(self, ids):
        import pandas as pd

        self._index = pd.Index(ids)

    def __getitem__(self, key) -> int:
        if not isinstance(key, str):
            raise KeyError(key)
        return int(self._index.get_loc(key))

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and key in self._index

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _parse_float(cell: str):
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _finite_column(cells: list[str]):
    """The column as float64 when every cell is a finite number, else ``None`` (numpy's parser: fast for big pools)."""
    try:
        values = np.asarray(cells, dtype=np.float64)
    except ValueError:
        return None
    return values if np.all(np.isfinite(values)) else None


def _numeric_or_empty(cells: list[str]) -> bool:
    filled = [v for v in cells if v]
    return _finite_column(filled) is not None or all(_parse_float(v) is not None for v in filled)


def _is_feature_column(cells: list[str]) -> bool:
    """Whether the automatic feature list takes this column: some cell filled, every filled cell a number."""
    return any(v for v in cells) and _numeric_or_empty(cells)


def parse_pool(text: str, source: str, features: list[str] | None = None, *, exclude=()) -> Pool:
    """Parse a candidate table.

    Features are the columns named in ``features``, or else every column but
    ``id`` (and those in ``exclude``, e.g. the objectives) whose non-empty
    cells are all numbers.

    A well-formed table is read column by column by pandas' C parser (a
    million rows in about a second); anything it cannot take as it is (a
    ragged row, an empty or non-numeric cell, padded ids) is read again row by
    row, which finds the first bad cell and names it.

    Raises:
        DataError: no ``id`` column, a column name used twice, duplicate or
            empty ids, a listed feature column that is missing or not numeric,
            a missing value, a constant column, or no feature at all.
    """
    pool = _parse_columnar(text, features, exclude)
    if pool is not None:
        return pool
    return _parse_rows(text, source, features, exclude=exclude)


def _parse_columnar(text: str, features, exclude) -> Pool | None:
    """The table by pandas' C parser when it is well formed (else ``None``: :func:`_parse_rows` says why)."""
    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(text), dtype={ID_COLUMN: str}, keep_default_na=False, na_filter=False,
                         skip_blank_lines=True, engine="c")
    except Exception:  # ragged rows, a missing id column, bad quoting: the row reader names the problem
        return None
    header = [str(h) for h in df.columns]
    if header != _first_row(text):  # pandas renames repeated names and names empty ones
        return None
    # pandas fills a short row's missing cells; without quotes every row has exactly len(header) - 1 commas
    if '"' in text or text.count(",") != (len(header) - 1) * (df.shape[0] + 1):
        return None
    if (ID_COLUMN not in header or len(set(header)) != len(header)
            or any(h != h.strip() or not h for h in header) or df.shape[0] == 0):
        return None
    numeric = [h for h in header if h != ID_COLUMN and df[h].dtype.kind in "iuf"]
    if features is None:
        others = [h for h in header if h != ID_COLUMN and h not in exclude and h not in numeric]
        if any(_is_feature_column(df[h].astype(str).tolist()) for h in others):
            return None  # a numeric column with empty cells: refused by the row reader, which names the cell
        names = [h for h in numeric if h not in exclude]
    else:
        names = list(features)
        if any(f not in numeric for f in names):
            return None
    if not names:
        return None
    ids = df[ID_COLUMN].astype(str)
    if (ids == "").any() or (ids != ids.str.strip()).any() or ids.duplicated().any():
        return None
    arr = df[names].to_numpy(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr.min(0) == arr.max(0)):
        return None
    return Pool(ids.tolist(), names, arr)


def _first_row(text: str) -> list[str]:
    """The first non-blank line's fields (the header), without splitting the whole text."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            return next(csv.reader([text[start:end]]), [])
        start = end + 1
    return []


def _parse_rows(text: str, source: str, features, *, exclude) -> Pool:
    """The row-by-row reader: slow, and exact about the first bad cell."""
    rows = [r for r in csv.reader(io.StringIO(text)) if "".join(r).strip()]  # skip blank lines
    if not rows:
        raise DataError(f"{source}: the candidate table is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if ID_COLUMN not in header:
        raise DataError(f"{source}: the candidate table needs an '{ID_COLUMN}' column{separator_hint(header)}")
    refuse_repeated_columns(header, [h for h in header if h], source)
    if not body:
        raise DataError(f"{source}: the candidate table has no rows")
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise DataError(f"{source} row {line}: {len(r)} fields, expected {len(header)}")
    cols = {h: list(map(str.strip, col)) for h, col in zip(header, zip(*body))}
    ids = cols[ID_COLUMN]
    seen: dict[str, int] = {}
    for line, c in enumerate(ids, start=2):
        if not c:
            raise DataError(f"{source} row {line}: empty id")
        if c in seen:
            raise DataError(f"{source} row {line}: id {c!r} repeats row {seen[c]} (ids must be unique)")
        seen[c] = line
    if features is None:
        names = [h for h in header if h != ID_COLUMN and h not in exclude and _is_feature_column(cols[h])]
        if not names:
            raise DataError(f"{source}: no numeric feature columns besides '{ID_COLUMN}'")
    else:
        # A text column's one-hot columns (``solvent=DMF``) name the column itself.
        names = list(dict.fromkeys(f.partition("=")[0] if f not in header and f.partition("=")[0] in header else f
                                   for f in features))
        missing = [f for f in names if f not in header]
        if missing:
            raise DataError(f"{source}: feature column(s) {', '.join(missing)} not in the table")
        if ID_COLUMN in names:
            raise DataError(f"{source}: '{ID_COLUMN}' cannot be a feature")
        text = [n for n in names if _is_text_column(cols[n])]
        if text:
            return _with_one_hot(ids, names, cols, text, source, exclude)
    arr = np.empty((len(body), len(names)))
    for j, name in enumerate(names):
        fast = _finite_column(cols[name])
        if fast is not None:
            arr[:, j] = fast
            continue
        for line, cell in enumerate(cols[name], start=2):  # find the first bad cell for the message
            if cell == "":
                raise DataError(f"{source} row {line}: feature {name} is missing (fill it or leave the column out)")
            v = _parse_float(cell)
            if v is None:
                raise DataError(f"{source} row {line}: feature {name} = {cell!r} is not a finite number")
            arr[line - 2, j] = v
    constant = [n for n, lo, hi in zip(names, arr.min(0), arr.max(0)) if not hi > lo]
    if constant:
        raise DataError(f"{source}: feature column(s) {', '.join(constant)} are constant; leave them out of features")
    return Pool(ids, names, arr)


MAX_LABELS = 64  # a text feature column with more distinct labels is refused (an id or a name, not a category)


def _is_text_column(cells: list[str]) -> bool:
    """Every cell filled and none a number: a categorical feature (labels). A column of numbers with a
    stray word is a typo, refused with its row, not a category."""
    return all(cells) and all(_parse_float(v) is None for v in cells)


def _with_one_hot(ids, names, cols, text, source, exclude) -> Pool:
    """The pool with each text feature column replaced by one 0/1 column per label (``name=label``, labels sorted)."""
    expanded: dict[str, list[str]] = {}
    for name in names:
        if name not in text:
            expanded[name] = cols[name]
            continue
        labels = sorted(set(cols[name]))
        if len(labels) > MAX_LABELS:
            raise DataError(f"{source}: feature {name} holds {len(labels)} different labels (at most {MAX_LABELS}); "
                            "a column of names or ids is not a category: leave it out of features")
        for label in labels:
            expanded[f"{name}={label}"] = ["1" if c == label else "0" for c in cols[name]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([ID_COLUMN] + list(expanded))
    w.writerows(zip(ids, *expanded.values()))
    return _parse_rows(buf.getvalue(), source, list(expanded), exclude=exclude)


# Parsing a candidate table is slow in Python (about 15 s for a million rows); a campaign keeps the
# parsed table beside it, stamped with the table's size, modification time and feature list.
_POOL_CACHE_FORMAT = "1"


def _pool_stamp(source: Path, features: list[str]) -> str:
    st = Path(source).stat()
    return f"{_POOL_CACHE_FORMAT}:{st.st_size}:{st.st_mtime_ns}:{','.join(features)}"


def load_pool_cache(path: Path, source: Path, features: list[str]) -> Pool | None:
    """The pool stored by :func:`store_pool_cache` if it was made from ``source`` as it is now, else ``None``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["stamp"]) != _pool_stamp(source, features):
                return None
            return Pool(z["ids"].tolist(), z["names"].tolist(), np.array(z["features"], np.float64))
    except Exception:  # missing, torn or foreign file: parse the table again
        return None


def store_pool_cache(path: Path, source: Path, features: list[str], pool: Pool) -> None:
    """Keep ``pool``, parsed from ``source``, for :func:`load_pool_cache` (best effort, atomic)."""
    from jaxopt_mat.program_cache import store_atomically

    buf = io.BytesIO()
    np.savez(buf, stamp=np.asarray(_pool_stamp(source, features)), ids=np.asarray(pool.ids),
             names=np.asarray(pool.names), features=pool.features)
    store_atomically(Path(path), buf.getvalue())


def read_pool(path: Path, features: list[str] | None = None) -> Pool:
    """Read and validate a candidate table from ``path`` (see :func:`parse_pool`)."""
    path = Path(path)
    return parse_pool(read_data_file(path, "candidate table"), path.name, features)
