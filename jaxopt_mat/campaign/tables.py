"""The user's tables: measurement files, target spectra and suggestion files.

Everything here turns text into validated arrays (or arrays into text); nothing
touches the campaign folder. Every problem is a :class:`DataError` that names
the row. The folder's own ``observations.csv`` is read by
:mod:`jaxopt_mat.campaign.recorded`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from jaxopt_mat.campaign.config import STATUS_COLUMN, SUGGESTION_COLUMN, Config
from jaxopt_mat.campaign.input_cells import input_number, input_text, number_cell, numeric_cells
from jaxopt_mat.campaign.pending import parse_suggestion_id
from jaxopt_mat.errors import DataError, read_data_file, refuse_repeated_columns, separator_hint
from jaxopt_mat.space import SearchSpace


class Measurements(NamedTuple):
    """Validated rows of a measurement file.

    Attributes:
        values: ``(n, d + k)``: the inputs, then the measured columns (pool campaigns: ``(n, k)``).
        columns: names of the ``k`` measured columns (the objective(s), or the wavelengths as written),
            then the columns of the outcome constraints.
        ids: pool campaigns: the candidate id of each row; otherwise ``None``.
        failed: ``(n,)`` True for a run that gave no result (``status`` = ``failed``); its measured
            values are NaN. ``None`` when the file has no ``status`` column.
        suggestions: each row's suggestion id (``""`` for none); ``None`` without a ``suggestion`` column.
    """

    values: np.ndarray
    columns: list[str]
    ids: list[str] | None = None
    failed: np.ndarray | None = None
    suggestions: list[str] | None = None

    @property
    def any_failed(self) -> bool:
        return self.failed is not None and bool(np.any(self.failed))


def read_target(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a target spectrum: two columns, wavelength and absorbance (a header row is allowed).

    Raises:
        DataError: if the file is missing, malformed or has fewer than 3 points.
    """
    path = Path(path)
    text = read_data_file(path, "target spectrum file")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    values = []
    for line, row in enumerate(rows, 1):
        try:
            wl, a = float(row[0]), float(row[1])
        except (ValueError, IndexError):
            if line == 1:
                continue  # header
            raise DataError(f"{path.name} row {line}: expected two numbers (wavelength, absorbance)") from None
        if not (math.isfinite(wl) and math.isfinite(a)):
            raise DataError(f"{path.name} row {line}: values must be finite")
        values.append((wl, a))
    if len(values) < 3:
        raise DataError(f"{path.name}: a target spectrum needs at least 3 points, got {len(values)}")
    arr = np.array(sorted(values))
    if np.any(np.diff(arr[:, 0]) <= 0):
        raise DataError(f"{path.name}: wavelengths must be distinct")
    return arr[:, 0], arr[:, 1]


def target_on_grid(target_wl, target_abs, wavelengths, *, source: str = "target") -> np.ndarray:
    """Interpolate a target spectrum linearly onto measured ``wavelengths``; the target must cover them."""
    wavelengths = np.asarray(wavelengths, dtype=np.float64)
    tol = 0.5 * (np.min(np.diff(wavelengths)) if wavelengths.size > 1 else 1.0)
    if wavelengths.min() < target_wl.min() - tol or wavelengths.max() > target_wl.max() + tol:
        raise DataError(
            f"{source} covers {target_wl.min():g}-{target_wl.max():g} nm but the measured spectra span "
            f"{wavelengths.min():g}-{wavelengths.max():g} nm"
        )
    return np.interp(wavelengths, target_wl, target_abs)


def validate_measurements(text: str, source: str, *, config: Config, space: SearchSpace | None,
                          wavelengths: np.ndarray, target_on: Callable | None = None,
                          pool_index: Mapping[str, int] | None = None,
                          suggested_ids: Collection[str] | None = None) -> Measurements:
    """Parse a measurement CSV into rows ``(n, d + k)``: inputs, then the objective or the spectrum.

    Spectrum columns are those whose header is a number (the wavelength);
    they are returned in increasing wavelength and must match ``wavelengths``,
    the grid of earlier observations (empty before the first). ``target_on``
    interpolates the campaign's target onto a grid (it must cover the file's);
    ``pool_index`` maps a pool campaign's candidate ids to rows. An optional
    ``suggestion`` column names the suggested row each measurement answers
    (empty: none); with ``suggested_ids``, an id must be one of them.

    Raises:
        DataError: naming the row and the reason for the first problem found.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{source}: the file is empty") from None
    header = [h.strip() for h in header]
    if config.is_pool:
        return _validate_pool_rows(header, reader, source, config, pool_index, suggested_ids)
    names = config.input_names
    if config.objective.is_spectrum:
        spectral = sorted(((w, i) for i, h in enumerate(header) if (w := _as_wavelength(h)) is not None))
        twice = sorted({f"{w:g}" for (w, _), (w2, _) in zip(spectral, spectral[1:]) if w == w2})
        if twice:
            raise DataError(f"{source}: wavelength(s) {', '.join(twice)} nm appear in more than one column")
        if len(spectral) < 3:
            raise DataError(f"{source}: no spectrum columns (headers must be wavelengths, e.g. 380, 381, ...)")
        known = wavelengths
        if known.size and (len(known) != len(spectral) or not np.allclose(known, [w for w, _ in spectral])):
            raise DataError(
                f"{source}: its {len(spectral)} wavelengths ({spectral[0][0]:g}-{spectral[-1][0]:g} nm) differ from "
                f"the campaign's {len(known)} ({known[0]:g}-{known[-1]:g} nm)"
            )
        target_on(np.array([w for w, _ in spectral]))  # the target must cover the grid
        need = names + [header[i] for _, i in spectral] + config.outcome_names
    else:
        need = names + config.objective.measured_names + config.outcome_names
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(need[:len(names) + 1])}"
                        f"{', ...' if len(need) > len(names) + 1 else ''}){separator_hint(header)}")
    refuse_repeated_columns(header, need + [STATUS_COLUMN, SUGGESTION_COLUMN], source)
    pos = [header.index(c) for c in need]
    at_status = header.index(STATUS_COLUMN) if STATUS_COLUMN in header else None
    at_suggestion = header.index(SUGGESTION_COLUMN) if SUGGESTION_COLUMN in header else None
    values, failed, sids = [], [], []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{source} row {line}: {len(row)} fields, expected {len(header)}")
        failed.append(_failed(row, at_status, source, line))
        sids.append(_suggestion(row, at_suggestion, suggested_ids, source, line))
        vals = [input_number(inp, row[p], f"{source} row {line}") for inp, p in zip(config.inputs, pos)]
        if failed[-1]:  # no result: the measured cells are not read
            vals += [math.nan] * (len(need) - len(names))
        else:
            vals += _numbers(row, need[len(names):], pos[len(names):], source, line)
        for inp, v in zip(config.inputs, vals):
            tol = 1e-9 * (inp.high - inp.low)
            if v < inp.low - tol:
                raise DataError(f"{source} row {line}: {inp.name} = {v:g} is below its lower bound {inp.low:g}")
            if v > inp.high + tol:
                raise DataError(f"{source} row {line}: {inp.name} = {v:g} is above its upper bound {inp.high:g}")
        x = np.array(vals[: len(names)])
        if space.n_constraints:
            lhs = space.A @ x
            for expr, a, bnd in zip(config.constraints, lhs, space.b):
                if a > bnd + 1e-9 * max(1.0, abs(bnd)):
                    raise DataError(f"{source} row {line}: violates constraint '{expr}' ({a:g} > {bnd:g})")
        values.append(vals)
    if not values:
        raise DataError(f"{source}: no data rows")
    return Measurements(np.array(values), need[len(names):], None, np.array(failed) if at_status is not None else None,
                        sids if at_suggestion is not None else None)


def _validate_pool_rows(header: list[str], reader, source: str, config: Config, index: Mapping[str, int],
                        suggested_ids: Collection[str] | None):
    measured = config.objective.measured_names + config.outcome_names
    need = ["id"] + measured
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(need)})")
    refuse_repeated_columns(header, need + [STATUS_COLUMN, SUGGESTION_COLUMN], source)
    pos = [header.index(c) for c in need]
    at_status = header.index(STATUS_COLUMN) if STATUS_COLUMN in header else None
    at_suggestion = header.index(SUGGESTION_COLUMN) if SUGGESTION_COLUMN in header else None
    ids, values, failed, sids = [], [], [], []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{source} row {line}: {len(row)} fields, expected {len(header)}")
        cid = row[pos[0]].strip()
        if cid not in index:
            raise DataError(f"{source} row {line}: id {cid!r} is not in the candidate table {config.candidates}")
        failed.append(_failed(row, at_status, source, line))
        sids.append(_suggestion(row, at_suggestion, suggested_ids, source, line))
        vals = [math.nan] * len(measured) if failed[-1] else _numbers(row, measured, pos[1:], source, line)
        ids.append(cid)
        values.append(vals)
    if not values:
        raise DataError(f"{source}: no data rows")
    return Measurements(np.array(values), measured, ids, np.array(failed) if at_status is not None else None,
                        sids if at_suggestion is not None else None)


def _failed(row: list[str], at: int | None, source: str, line: int) -> bool:
    """Whether the row's ``status`` cell says the run failed: ``failed`` (any case); ``ok`` or empty is a result."""
    if at is None:
        return False
    cell = row[at].strip().lower()
    if cell not in ("", "ok", "failed"):
        raise DataError(f"{source} row {line}: {STATUS_COLUMN} = {row[at].strip()!r}; use 'failed' for a run that "
                        "gave no result, 'ok' or nothing otherwise")
    return cell == "failed"


def _suggestion(row: list[str], at: int | None, known: Collection[str] | None, source: str, line: int) -> str:
    """The row's suggestion id (``""`` for none), checked against the ``known`` ids when given."""
    if at is None:
        return ""
    cell = row[at].strip()
    if cell and parse_suggestion_id(cell) is None:
        raise DataError(f"{source} row {line}: {SUGGESTION_COLUMN} = {cell!r} is not a suggestion id (like b0004-07); "
                        "leave it empty for a measurement that answers no suggestion")
    if cell and known is not None and cell not in known:
        raise DataError(f"{source} row {line}: {SUGGESTION_COLUMN} {cell} was never suggested in this campaign")
    return cell


def suggestion_csv(input_names: list[str], x: np.ndarray, extra: dict[str, np.ndarray],
                   ids: list[str] | None = None, suggestion_ids: list[str] | None = None, *, inputs=None) -> str:
    """A batch as CSV: (``suggestion``,) (pool campaigns: ``id``,) the input columns by name, then the extra columns.

    With ``inputs`` (the config's), each input is written as its kind reads: labels, whole numbers.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    lead = ([SUGGESTION_COLUMN] if suggestion_ids is not None else []) + (["id"] if ids is not None else [])
    w.writerow(lead + list(input_names) + list(extra))
    for i, row in enumerate(x):
        cells = ([input_text(inp, v) for inp, v in zip(inputs, row)] if inputs is not None
                 else [repr(float(v)) for v in row])
        cells += [repr(float(col[i])) for col in extra.values()]
        first = ([suggestion_ids[i]] if suggestion_ids is not None else []) + ([ids[i]] if ids is not None else [])
        w.writerow(first + cells)
    return buf.getvalue()


def read_suggestion(path: Path, input_names: list[str], *, inputs=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A saved batch: its inputs ``(q, d)`` and its other numeric columns by name (``inputs``: labels to indices)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        return np.zeros((0, len(input_names))), {}
    header, body = rows[0], rows[1:]
    pos = [header.index(n) for n in input_names]
    cells = [[r[p] for p in pos] for r in body]
    if inputs is not None:
        cells = numeric_cells(cells, inputs, path.name)
    x = np.array([[float(c) for c in r] for r in cells]).reshape(len(body), len(input_names))
    extra = {}
    for j, name in enumerate(header):
        if name in input_names or name == "id":
            continue
        try:
            extra[name] = np.array([float(r[j]) for r in body])
        except ValueError:
            continue
    return x, extra


def csv_cell(text: str) -> str:
    """``text`` as one CSV field (quoted when it holds a comma, a quote or a line break)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def _numbers(row: list[str], columns: list[str], positions: list[int], source: str, line: int) -> list[float]:
    """The finite numbers of ``row`` at ``positions``; the first empty, non-numeric or infinite cell is a DataError."""
    return [number_cell(c, row[p], f"{source} row {line}") for c, p in zip(columns, positions)]


def _as_wavelength(cell: str):
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None
