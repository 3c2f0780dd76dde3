"""``observations.csv`` as the folder wrote it: its rows parsed and checked, then turned into arrays.

The file is append-only, so a reader that parsed it before parses only the
rows added since (:func:`parse_records` with ``after``, :func:`joined`); a
file that changed in any other way is parsed again from its start. Every
problem is a :class:`CampaignError` naming the row: the folder could not have
written it (a hand edit).
"""

from __future__ import annotations

import csv
import io
import math
from typing import NamedTuple

import numpy as np

from jaxopt_mat.campaign.config import BATCH_COLUMN, STATUS_COLUMN, SUGGESTION_COLUMN, Config
from jaxopt_mat.campaign.input_cells import numeric_cells
from jaxopt_mat.campaign.pending import parse_suggestion_id
from jaxopt_mat.errors import CampaignError

OBSERVATIONS_FILE = "observations.csv"


class Records(NamedTuple):
    """``observations.csv`` as recorded: the header and every row's cells (blank lines dropped).

    ``text`` is the text parsed and ``n_lines`` the CSV records it held (header
    and blank lines included), so that rows appended later can be parsed on their own.
    """

    header: list[str]
    body: list[list[str]]
    text: str = ""
    n_lines: int = 0


def parse_records(text: str, config: Config, source, *, after: Records | None = None) -> Records:
    """Split ``observations.csv``'s text into header and rows, checking the shape the folder wrote.

    With ``after`` (this file parsed earlier), only the text appended since is
    parsed when ``text`` extends ``after.text`` at a row boundary; otherwise all of it.

    Raises:
        CampaignError: a header or row that the folder could not have written (a hand edit).
    """
    if after is not None and text == after.text:
        return after
    if after is not None and _extends(text, after.text):
        rows = list(csv.reader(io.StringIO(text[len(after.text):])))
        body = _checked_rows(rows, after.header, len(config.key_columns), source, first_line=after.n_lines + 1)
        return Records(after.header, after.body + body, text, after.n_lines + len(rows))
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise CampaignError(f"{source} has no header")
    header = rows[0]
    names = config.key_columns
    if header[: len(names)] != names or header[-1] != BATCH_COLUMN:
        raise CampaignError(f"{source}: header does not start with {names} and end with '{BATCH_COLUMN}'")
    return Records(header, _checked_rows(rows[1:], header, len(names), source, first_line=2), text, len(rows))


def _extends(text: str, earlier: str) -> bool:
    """Whether ``text`` is ``earlier`` with rows appended (``earlier`` ends a row outside any quotes)."""
    return bool(earlier) and earlier.endswith("\n") and earlier.count('"') % 2 == 0 and text.startswith(earlier)


def _checked_rows(rows: list[list[str]], header: list[str], n_keys: int, source, *, first_line: int) -> list[list[str]]:
    body = []
    at_status, at_suggestion = _reserved_positions(header, n_keys)
    for line, r in enumerate(rows, start=first_line):
        if not any(c.strip() for c in r):
            continue
        if len(r) != len(header) or not r[-1].strip().isdigit():
            problem = (f"{len(r)} fields, the header has {len(header)}" if len(r) != len(header)
                       else f"batch {r[-1]!r} is not a whole number")
            raise CampaignError(f"{source} row {line}: {problem} (edited by hand? fix the row or restore the file)")
        if at_status is not None and r[at_status] not in ("ok", "failed"):
            raise CampaignError(f"{source} row {line}: status {r[at_status]!r} is neither 'ok' nor 'failed' (edited "
                                "by hand? fix the row or restore the file)")
        if at_suggestion is not None and r[at_suggestion] and parse_suggestion_id(r[at_suggestion]) is None:
            raise CampaignError(f"{source} row {line}: suggestion {r[at_suggestion]!r} is not a suggestion id (edited "
                                "by hand? fix the row or restore the file)")
        body.append(r)
    return body


def _reserved_positions(header: list[str], n_keys: int) -> tuple[int | None, int | None]:
    """Positions of ``status`` and ``suggestion`` in ``observations.csv``'s header (``None`` when absent).

    The header is ``keys, measured..., [suggestion], [status], batch``.
    """
    at_status = len(header) - 2 if len(header) >= n_keys + 2 and header[-2] == STATUS_COLUMN else None
    k = len(header) - 2 - (at_status is not None)
    at_suggestion = k if k >= n_keys and header[k] == SUGGESTION_COLUMN else None
    return at_status, at_suggestion


def recorded_numbers(cells: list[list[str]], source) -> np.ndarray:
    """The recorded cells as floats; a cell that is not a finite number names its row."""
    try:
        arr = np.array([[float(v) for v in r] for r in cells])
    except ValueError:
        arr = None
    if arr is None or not np.all(np.isfinite(arr)):
        bad = next(r for r in cells if not _all_finite(r))
        start = ",".join(bad[:4]) + (",..." if len(bad) > 4 else "")
        raise CampaignError(f"{source}: the row {start!r} holds a value that is not a finite "
                            "number (edited by hand? fix the row or restore the file)")
    return arr


def _all_finite(cells: list[str]) -> bool:
    try:
        return all(math.isfinite(float(c)) for c in cells)
    except ValueError:
        return False


def split_reserved(body: list[list[str]], header: list[str], n_keys: int):
    """Recorded rows without their ``suggestion`` and ``status`` cells, which of them failed, and their suggestion ids.

    Returns ``(rows, failed (n,), suggestion ids)`` (all False and ``""`` when the columns are absent).
    """
    at_status, at_suggestion = _reserved_positions(header, n_keys)
    drop = {at_status, at_suggestion} - {None}
    failed = np.array([r[at_status] == "failed" for r in body], bool) if at_status is not None else np.zeros(len(body), bool)
    sids = [r[at_suggestion] for r in body] if at_suggestion is not None else [""] * len(body)
    if drop:
        body = [[c for j, c in enumerate(r) if j not in drop] for r in body]
    return body, failed, sids


class Recorded(NamedTuple):
    """The recorded rows as arrays (``n`` rows, ``k`` ok ones).

    Attributes:
        header: the header without ``suggestion`` and ``status``.
        x: every row's inputs ``(n, d)``: numbers, a categorical input's label as its index; pool
            campaigns: the candidate's features.
        ids: pool campaigns: every row's candidate id; otherwise ``None``.
        failed: ``(n,)`` True for a failed run.
        suggestions: every row's suggestion id (``""`` for none).
        batches: ``(n,)`` every row's batch.
        numbers: ``(k, columns + 1)`` the ok rows' measured cells, then their batch.
    """

    header: tuple[str, ...]
    x: np.ndarray
    ids: tuple[str, ...] | None
    failed: np.ndarray
    suggestions: tuple[str, ...]
    batches: np.ndarray
    numbers: np.ndarray


def recorded_arrays(records: Records, config: Config, source, *, pool=None, pool_index=None,
                    earlier: tuple[Records, Recorded] | None = None) -> Recorded:
    """``records`` as read-only arrays (pool campaigns pass the pool and its id index).

    ``earlier``: an earlier read of the same file and its arrays; when ``records`` only added rows to it
    (:func:`parse_records` with ``after``), only those rows are converted.

    Raises:
        CampaignError: a cell that is not what the folder writes (a hand edit), or an unknown candidate id.
    """
    if earlier is not None:
        before, arrays = earlier
        if before is records:
            return arrays
        n = len(before.body)
        # The rows read before are the very objects parsed then only when just the appended rows were parsed.
        if records.header is before.header and n <= len(records.body) and (n == 0 or records.body[n - 1] is before.body[-1]):
            return joined(arrays, recorded_arrays(Records(records.header, records.body[n:]), config, source, pool=pool,
                                                  pool_index=pool_index))
    return _read_only(_arrays(records, config, source, pool, pool_index))


def _read_only(rec: Recorded) -> Recorded:
    for a in (rec.x, rec.failed, rec.batches, rec.numbers):
        a.flags.writeable = False  # shared by every snapshot read from the same folder
    return rec


def _arrays(records: Records, config: Config, source, pool, pool_index) -> Recorded:
    n_keys = len(config.key_columns)
    body, failed, sids = split_reserved(records.body, records.header, n_keys)
    header = tuple(h for h in records.header if h not in (STATUS_COLUMN, SUGGESTION_COLUMN))
    n_measured = len(header) - n_keys - 1
    d = len(config.input_names)
    if pool is not None:
        try:
            rows = np.array([pool_index[r[0]] for r in body], int)
        except KeyError as e:
            raise CampaignError(f"{source}: id {e.args[0]!r} is not in {config.candidates}") from None
        x = pool.features[rows].reshape(len(rows), d)
        ok = [r[1:] for r, f in zip(body, failed) if not f]
        numbers = recorded_numbers(ok, source) if ok else np.zeros((0, n_measured + 1))
        ids = tuple(r[0] for r in body)
    else:
        body = numeric_cells(body, config.inputs, source)
        ok = [r for r, f in zip(body, failed) if not f]
        arr = recorded_numbers(ok, source) if ok else np.zeros((0, d + n_measured + 1))
        x = np.zeros((len(body), d))
        x[~failed] = arr[:, :d]
        if failed.any():  # a failed run's measured cells are empty: only its inputs are numbers
            x[failed] = recorded_numbers([r[:d] for r, f in zip(body, failed) if f], source)
        numbers, ids = arr[:, d:], None
    batches = np.array([int(r[-1]) for r in body], int)
    return Recorded(header, x, ids, failed, tuple(sids), batches, numbers)


def joined(first: Recorded, then: Recorded) -> Recorded:
    """The rows of ``first`` followed by those of ``then`` (the same header), read-only."""
    return _read_only(Recorded(first.header, np.concatenate([first.x, then.x]),
                               None if first.ids is None else first.ids + then.ids,
                               np.concatenate([first.failed, then.failed]), first.suggestions + then.suggestions,
                               np.concatenate([first.batches, then.batches]),
                               np.concatenate([first.numbers, then.numbers])))


def repeated_batch(records: Records, recorded: Recorded, rows: np.ndarray, ids: list[str] | None,
                   config: Config) -> int | None:
    """The earlier batch whose recorded rows equal ``rows`` (pool campaigns: with ``ids``) as a multiset, if any.

    Only batches of as many rows with the same inputs (or ids) have their cells compared.
    """
    n_keys = len(config.key_columns)
    new = sorted(ids) if ids is not None else sorted(map(tuple, rows[:, :n_keys].tolist()))
    batches, counts = np.unique(recorded.batches, return_counts=True)
    same = set()
    for b in batches[counts == len(rows)]:
        at = np.flatnonzero(recorded.batches == b)
        old = sorted(recorded.ids[i] for i in at) if ids is not None else sorted(map(tuple, recorded.x[at].tolist()))
        if old == new:
            same.add(int(b))
    if not same:
        return None
    body, _, _ = split_reserved([r for r in records.body if int(r[-1]) in same], records.header, n_keys)
    return _repeated_cells(numeric_cells(body, config.inputs, OBSERVATIONS_FILE) if ids is None else body, rows, ids)


def _repeated_cells(body: list[list[str]], rows: np.ndarray, ids: list[str] | None) -> int | None:
    """The earlier batch whose recorded rows (``body``, as read) equal ``rows`` as a multiset, if any.

    Values are written with ``repr``, so they read back exactly; a cell that
    is not a number (a hand-edited record) simply matches nothing.
    """
    start = 0 if ids is None else 1

    def number(cell):
        try:
            return float(cell)
        except ValueError:
            return None

    new = sorted((i, tuple(map(float, r))) for i, r in zip(ids or [""] * len(rows), rows))
    batches: dict[str, list] = {}
    for cells in body:
        label = cells[0] if ids is not None else ""
        batches.setdefault(cells[-1], []).append((label, tuple(number(c) for c in cells[start:-1])))
    for batch, old in batches.items():
        if len(old) == len(new) and all(None not in v for _, v in old) and sorted(old) == new:
            return int(batch)
    return None
