"""Suggested rows, and which of them are still pending: suggested, neither observed nor cancelled.

Every row ``suggest`` returns gets an id, ``b<file>-<row>`` (``b0004-07``: row 7
of ``suggestions/batch_0004.csv``), written in the suggestion file's
``suggestion`` column. A suggested row stays pending until an observation
resolves it:

- by its id, when the measurement file carries the ``suggestion`` column;
- otherwise by equal inputs (within :data:`VALUE_TOLERANCE` of each input's
  range; pool campaigns: by candidate id), matched to the oldest pending row
  suggested before that observation's batch;

or until ``cancel`` drops it. Nothing here touches the folder: the snapshot
reads the files and calls :func:`resolve_pending`.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from jaxopt_mat.campaign.input_cells import numeric_cells

# Observed inputs within this fraction of each input's range of a suggested row resolve it.
VALUE_TOLERANCE = 1e-6
_ID = re.compile(r"b(\d{4,})-(\d{2,})")


def suggestion_id(number: int, row: int) -> str:
    """The id of row ``row`` (counted from 1) of suggestion file ``number``: ``b0004-07``."""
    return f"b{number:04d}-{row:02d}"


def suggestion_ids(number: int, q: int) -> list[str]:
    """The ids of the ``q`` rows of suggestion file ``number``."""
    return [suggestion_id(number, k) for k in range(1, q + 1)]


def parse_suggestion_id(text: str) -> tuple[int, int] | None:
    """``(file number, row)`` of a suggestion id, or ``None`` when ``text`` is not one."""
    m = _ID.fullmatch(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def file_number(path: Path) -> int:
    """The number of a suggestion file ``batch_0004.csv``."""
    return int(Path(path).stem.split("_")[-1])


@dataclasses.dataclass(frozen=True)
class SuggestedRows:
    """Rows returned by ``suggest``, in the order suggested.

    Attributes:
        ids: each row's suggestion id.
        x: ``(s, d)`` inputs (pool campaigns: the candidates' features).
        pool_ids: pool campaigns: each row's candidate id; otherwise ``None``.
        after_batch: ``(s,)`` the newest observed batch when the row was suggested (0 if unknown).
        at: ``(s,)`` when it was suggested (seconds since the epoch).
    """

    ids: tuple[str, ...]
    x: np.ndarray
    pool_ids: tuple[str, ...] | None
    after_batch: np.ndarray
    at: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask) -> "SuggestedRows":
        keep = np.flatnonzero(np.asarray(mask, bool))
        return SuggestedRows(tuple(self.ids[i] for i in keep), self.x[keep],
                             None if self.pool_ids is None else tuple(self.pool_ids[i] for i in keep),
                             self.after_batch[keep], self.at[keep])

    @classmethod
    def empty(cls, d: int, pool: bool = False) -> "SuggestedRows":
        return cls((), np.zeros((0, d)), () if pool else None, np.zeros(0, int), np.zeros(0))


def read_suggested(files: list[Path], input_names: list[str], *, inputs=(), pool_features=None, pool_index=None,
                   log: dict | None = None) -> SuggestedRows:
    """Every row of the suggestion ``files`` (pool campaigns: located by candidate id in the pool).

    ``log`` maps a file number (as text) to ``{"after_batch": int, "at": float}``,
    written when the file was saved; a file without an entry (saved by an
    older version) counts as suggested before any observation, at its
    modification time.
    """
    ids, xs, pool_ids, after, at = [], [], [], [], []
    d = len(input_names)
    for path in files:
        n = file_number(path)
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
        if not rows:
            continue
        header, body = rows[0], rows[1:]
        entry = (log or {}).get(str(n), {})
        when = entry.get("at") if isinstance(entry, dict) else None
        when = float(when) if isinstance(when, (int, float)) else path.stat().st_mtime
        first = entry.get("after_batch") if isinstance(entry, dict) else None
        first = int(first) if isinstance(first, int) else 0
        if pool_index is not None:
            col = header.index("id")
            pids = [r[col] for r in body]
            xs.append(pool_features[[pool_index[i] for i in pids]].reshape(len(body), d))
            pool_ids += pids
        else:
            pos = [header.index(c) for c in input_names]
            cells = numeric_cells([[r[p] for p in pos] for r in body], inputs, path.name)
            xs.append(np.array([[float(c) for c in r] for r in cells]).reshape(len(body), d))
        ids += [suggestion_id(n, k) for k in range(1, len(body) + 1)]
        after += [first] * len(body)
        at += [when] * len(body)
    x = np.concatenate(xs) if xs else np.zeros((0, d))
    return SuggestedRows(tuple(ids), x, tuple(pool_ids) if pool_index is not None else None,
                         np.array(after, int), np.array(at, float))


def resolve_pending(suggested: SuggestedRows, *, observed_ids, observed_x, observed_pool_ids, observed_batches,
                    cancelled, scale) -> np.ndarray:
    """``(s,)`` True for each suggested row still pending.

    Args:
        suggested: every suggested row.
        observed_ids: per recorded row (results and failures, in recorded order), its suggestion id or ``""``.
        observed_x: ``(n, d)`` their inputs; ``observed_pool_ids``: pool campaigns' candidate ids, else ``None``.
        observed_batches: ``(n,)`` the batch that recorded each.
        cancelled: suggestion ids dropped by ``cancel``.
        scale: ``(d,)`` each input's range (values within ``VALUE_TOLERANCE * scale`` are equal).
    """
    pending = np.ones(len(suggested), bool)
    if not len(suggested):
        return pending
    where = {sid: k for k, sid in enumerate(suggested.ids)}
    for sid in list(observed_ids) + list(cancelled):
        if sid in where:
            pending[where[sid]] = False
    # Rows observed without an id: the oldest pending row with equal inputs, suggested before their batch.
    unlabeled = [k for k, sid in enumerate(observed_ids) if not sid]
    if suggested.pool_ids is not None:
        by_key: dict = {}
        for k, pid in enumerate(suggested.pool_ids):
            by_key.setdefault(pid, []).append(k)
        for k in unlabeled:
            _take(by_key.get(observed_pool_ids[k], ()), pending, suggested.after_batch, observed_batches[k])
        return pending
    tol = VALUE_TOLERANCE * np.asarray(scale, float)
    exact: dict = {}
    for k, row in enumerate(suggested.x):
        exact.setdefault(row.tobytes(), []).append(k)
    for k in unlabeled:
        row = np.asarray(observed_x[k], float)
        if _take(exact.get(row.tobytes(), ()), pending, suggested.after_batch, observed_batches[k]):
            continue
        open_rows = np.flatnonzero(pending)
        close = open_rows[np.all(np.abs(suggested.x[open_rows] - row) <= tol, axis=1)]
        _take(close.tolist(), pending, suggested.after_batch, observed_batches[k])
    return pending


def _take(candidates, pending: np.ndarray, after_batch: np.ndarray, batch: int) -> bool:
    """Resolve the first pending row of ``candidates`` suggested before ``batch``; whether one was."""
    for k in candidates:
        if pending[k] and after_batch[k] < batch:
            pending[k] = False
            return True
    return False
