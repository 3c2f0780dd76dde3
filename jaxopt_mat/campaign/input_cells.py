"""Input values as the user's tables hold them: labels for categorical inputs, whole numbers for integers.

Inside the library an input is one number per row (a categorical input's is the
index of its label). Here those numbers meet text: a measurement file's cells
are checked against each input's kind (an unknown label, with "did you mean"
for a near miss, a fraction for an integer, a value that is not a level), and
values are written back as a chemist reads them.
"""

from __future__ import annotations

import difflib
import math

import numpy as np

from jaxopt_mat.errors import CampaignError, DataError

_LEVEL_TOLERANCE = 1e-9  # relative to the input's range: a discrete value this close to a level is that level


def input_number(inp, cell: str, where: str) -> float:
    """The number a user's ``cell`` stands for (a label's index), or a :class:`DataError` that says why not.

    ``where`` names the row, e.g. ``"meas.csv row 3"``.
    """
    text = cell.strip() if inp.kind != "categorical" else cell
    if text.strip() == "":
        raise DataError(f"{where}: {inp.name} is empty")
    if inp.kind == "categorical":
        if text in inp.values:
            return float(inp.values.index(text))
        near = ([v for v in inp.values if v.strip().casefold() == text.strip().casefold()]
                or difflib.get_close_matches(text, inp.values, n=1))
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise DataError(f"{where}: {inp.name} = {text!r} is not one of its labels {', '.join(inp.values)}{hint}")
    v = number_cell(inp.name, text, where)
    if inp.kind == "integer" and v != round(v):
        raise DataError(f"{where}: {inp.name} = {text} is not a whole number (an integer input)")
    if inp.kind == "discrete":
        levels = np.asarray(inp.values, dtype=np.float64)
        i = int(np.argmin(np.abs(levels - v)))
        if abs(levels[i] - v) > _LEVEL_TOLERANCE * (levels.max() - levels.min()):
            raise DataError(f"{where}: {inp.name} = {text} is not one of its levels "
                            f"{', '.join(f'{x:g}' for x in levels)}")
        return float(levels[i])
    return v


def number_cell(name: str, cell: str, where: str) -> float:
    """The finite number in ``cell`` (column ``name``), or a :class:`DataError`: empty, not a number, not finite."""
    text = cell.strip()
    if text == "":
        raise DataError(f"{where}: {name} is empty")
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{where}: {name} = {text!r} is not a number") from None
    if not math.isfinite(v):
        raise DataError(f"{where}: {name} = {text} is not finite")
    return v


def input_text(inp, value: float) -> str:
    """How ``value`` is written in a table: the label, a whole number, or the float's ``repr``."""
    if inp.kind == "categorical":
        return inp.values[int(round(float(value)))]
    if inp.kind == "integer":
        return str(int(round(float(value))))
    return repr(float(value))


def input_values(inputs, x: np.ndarray) -> dict[str, list]:
    """Per input, its column of ``x`` ``(n, d)`` as a user reads it: labels, ints or floats."""
    out = {}
    for j, inp in enumerate(inputs):
        col = np.asarray(x)[:, j]
        if inp.kind == "categorical":
            out[inp.name] = [inp.values[int(round(v))] for v in col]
        elif inp.kind == "integer":
            out[inp.name] = [int(round(v)) for v in col]
        else:
            out[inp.name] = [float(v) for v in col]
    return out


def numeric_cells(rows: list[list[str]], inputs, source, *, start: int = 0) -> list[list[str]]:
    """Recorded rows with each categorical input's label (at ``start + j``) replaced by its index, as text.

    The campaign's own files are read this way; a label no input has is a
    :class:`CampaignError` (a hand edit).
    """
    cats = [(start + j, inp) for j, inp in enumerate(inputs) if inp.kind == "categorical"]
    if not cats:
        return rows
    index = {j: {label: str(k) for k, label in enumerate(inp.values)} for j, inp in cats}
    out = []
    for r in rows:
        r = list(r)
        for j, inp in cats:
            if j < len(r):
                if r[j] not in index[j]:
                    raise CampaignError(f"{source}: {inp.name} = {r[j]!r} is not one of its labels "
                                        f"(edited by hand? fix the row or restore the file)")
                r[j] = index[j][r[j]]
        out.append(r)
    return out


def fixed_values(config, fix) -> dict[str, float]:
    """``--fix`` values (input name to a label, level or number, as text or a number) as the library's numbers.

    Raises:
        DataError: an unknown input, or a value its kind does not allow (the same checks as a measurement file's).
    """
    if fix and config.is_pool:
        raise DataError("--fix applies to a campaign's inputs; a pool campaign picks whole candidates")
    inputs = {i.name: i for i in config.inputs}
    out = {}
    for name, value in fix.items():
        if name not in inputs:
            raise DataError(f"--fix {name}: no such input (inputs: {', '.join(inputs)})")
        inp = inputs[name]
        v = input_number(inp, value if isinstance(value, str) else repr(value), f"--fix {name}")
        if inp.kind in ("continuous", "integer") and not inp.low - 1e-9 * (inp.high - inp.low) <= v <= inp.high + 1e-9 * (inp.high - inp.low):
            raise DataError(f"--fix {name} = {v:g} is outside its bounds [{inp.low:g}, {inp.high:g}]")
        out[name] = v
    return out


def parse_fix_options(items: list[str]) -> dict[str, str]:
    """``["ligand=L2", "temperature=60"]`` as a dict; an item without ``=`` or named twice is a :class:`DataError`."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise DataError(f"--fix {item!r}: expected NAME=VALUE, e.g. --fix ligand=L2")
        if name.strip() in out:
            raise DataError(f"--fix {name.strip()} given twice")
        out[name.strip()] = value
    return out
