"""The lab notebook on disk: a campaign folder.

    DIR/campaign.toml      the space and the objective (validated copy of the user's config)
    DIR/observations.csv   every measurement, one row each, append-only
    DIR/suggestions/       every batch ``suggest`` returned, numbered
    DIR/.lock              serialises writers
    DIR/.candidates.npz    a pool campaign's parsed candidate table (a cache, rebuilt when the table changes)

Writes are atomic (a temporary file in the same folder, flushed and fsynced,
then ``os.replace``), and every writer holds an exclusive lock while it reads,
appends and replaces, so two concurrent ``observe`` calls cannot lose a row.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import math
import os
import tempfile
import tomllib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxopt_mat.errors import (CampaignError, ConfigError, DataError, RepeatedBatchError, read_data_file,
                               refuse_repeated_columns, separator_hint)
from jaxopt_mat.space import SearchSpace, constraints_from_strings

CONFIG_FILE = "campaign.toml"
OBSERVATIONS_FILE = "observations.csv"
SUGGESTIONS_DIR = "suggestions"
POOL_CACHE_FILE = ".candidates.npz"
STATE_FILE = "state.json"
BATCH_COLUMN = "batch"
# Columns of observations.csv that no input or objective may be named after.
RESERVED_COLUMNS = (BATCH_COLUMN, "id")

_TOP_KEYS = {"name", "seed", "inputs", "constraints", "objective", "initial_design", "stopping", "candidates",
             "features", "embedding"}
_EMBEDDING_KEYS = {"landmarks", "lengthscale", "source"}
_STOPPING_KEYS = {"threshold", "stability", "stability_rounds", "accuracy", "plateau_fraction", "plateau_rounds",
                  "min_improvement", "budget"}
_STOPPING_INTS = {"stability_rounds", "plateau_rounds", "budget"}
_INPUT_KEYS = {"name", "low", "high", "extendable", "extend_factor", "unit"}
_CONSTRAINT_KEYS = {"expr"}
_OBJECTIVE_KEYS = {"kind", "name", "direction"}
_SPECTRUM_KEYS = {"kind", "name", "target", "window", "smoothness"}
_PARETO_KEYS = {"kind", "objectives", "reference"}
_PARETO_OBJECTIVE_KEYS = {"name", "direction"}
DEFAULT_WINDOW = (0.7, 1.2)


@dataclasses.dataclass(frozen=True)
class Input:
    name: str
    low: float
    high: float
    extendable: bool = False
    extend_factor: float = 1.5
    unit: str = ""


@dataclasses.dataclass(frozen=True)
class Objective:
    """What is optimised.

    ``kind = "scalar"``: the measured column ``name`` in ``direction``.
    ``kind = "spectrum"``: measured spectra (one column per wavelength) scored
    by the study's loss against the ``target`` file with the intensity
    ``window``; the loss (column ``name``, default ``loss``) is minimised.
    ``kind = "pareto"``: several measured columns, ``objectives`` as
    ``(name, direction)`` pairs; the campaign grows the hypervolume above
    ``reference`` (in the objectives' own units; default: derived from the
    data, see :func:`jaxopt_mat.pareto.default_reference`).
    """

    kind: str
    name: str
    direction: str
    target: str = ""
    window: tuple[float, float] = DEFAULT_WINDOW
    smoothness: float = 0.02
    objectives: tuple[tuple[str, str], ...] = ()
    reference: tuple[float, ...] | None = None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def is_spectrum(self) -> bool:
        return self.kind == "spectrum"

    @property
    def is_pareto(self) -> bool:
        return self.kind == "pareto"

    @property
    def measured_names(self) -> list[str]:
        """The measured columns of a scalar or Pareto objective (spectra: the wavelengths, not known here)."""
        return [n for n, _ in self.objectives] if self.is_pareto else [self.name]

    @property
    def signs(self) -> np.ndarray:
        """+1 for each maximised objective, -1 for each minimised one (Pareto objectives)."""
        return np.array([1.0 if d == "maximize" else -1.0 for _, d in self.objectives])


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    seed: int
    inputs: tuple[Input, ...]
    constraints: tuple[str, ...]
    objective: Objective
    initial_design: int
    stopping: dict = dataclasses.field(default_factory=dict)
    candidates: str = ""
    features: tuple[str, ...] = ()
    embedding: dict = dataclasses.field(default_factory=dict)

    @property
    def is_pool(self) -> bool:
        return bool(self.candidates)

    @property
    def input_names(self) -> list[str]:
        """The model's inputs: the inputs' names, or a pool's feature columns."""
        return list(self.features) if self.is_pool else [i.name for i in self.inputs]

    @property
    def key_columns(self) -> list[str]:
        """What identifies a measured condition in observations.csv: the inputs, or a pool's ``id``."""
        return ["id"] if self.is_pool else self.input_names

    def space(self) -> SearchSpace:
        if self.is_pool:
            raise ConfigError("a pool campaign's space comes from its candidate table (use Campaign.space)")
        names = self.input_names
        A, b = constraints_from_strings(self.constraints, names)
        return SearchSpace([i.low for i in self.inputs], [i.high for i in self.inputs], names=names, A=A, b=b)


def _check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _named_tables(items: list, label: str, allowed: set, required: tuple):
    """Yield ``(where, table)`` for each entry of an array of tables, checking keys and the ``name``."""
    for k, item in enumerate(items, 1):
        where = f"{label} #{k}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(item, allowed, where)
        for key in required:
            if key not in item:
                raise ConfigError(f"{where}: missing '{key}'")
        nm = item["name"]
        if not isinstance(nm, str) or not nm.isidentifier():
            raise ConfigError(f"{where}: name must be an identifier (letters, digits, _), got {nm!r}")
        yield where, item


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_config(data: dict, *, source: str = CONFIG_FILE) -> Config:
    """Validate a config table (as read from TOML) and return a :class:`Config`.

    Raises:
        ConfigError: naming the offending key or value.
        InfeasibleError: if the constraints leave no feasible point.
    """
    _check_keys(data, _TOP_KEYS, source)
    name = data.get("name", "campaign")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name must be a non-empty string")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a non-negative integer, got {seed!r}")
    candidates = data.get("candidates", "")
    if not isinstance(candidates, str):
        raise ConfigError(f"{source}: candidates must be a file name, e.g. \"candidates.csv\"")
    raw_inputs = data.get("inputs", [] if candidates else None)
    if candidates and raw_inputs:
        raise ConfigError(f"{source}: a pool campaign (candidates = ...) takes its inputs from the candidate table; "
                          "remove the [[inputs]] tables")
    if not candidates and (not isinstance(raw_inputs, list) or not raw_inputs):
        raise ConfigError(f"{source}: at least one [[inputs]] table is required (or candidates = \"file.csv\")")
    inputs = []
    for where, item in _named_tables(raw_inputs, f"{source}: inputs", _INPUT_KEYS, ("name", "low", "high")):
        nm = item["name"]
        where = f"{source}: input {nm}"
        if nm in RESERVED_COLUMNS:
            raise ConfigError(f"{where}: the name {nm!r} is reserved for a column of observations.csv")
        low = _number(item["low"], f"{where}: low")
        high = _number(item["high"], f"{where}: high")
        if not low < high:
            raise ConfigError(f"{where}: low = {low:g} must be below high = {high:g}")
        extendable = item.get("extendable", False)
        if not isinstance(extendable, bool):
            raise ConfigError(f"{where}: extendable must be true or false")
        factor = _number(item.get("extend_factor", 1.5), f"{where}: extend_factor")
        if factor <= 1.0:
            raise ConfigError(f"{where}: extend_factor must be above 1, got {factor:g}")
        unit = item.get("unit", "")
        if not isinstance(unit, str):
            raise ConfigError(f"{where}: unit must be a string")
        inputs.append(Input(nm, low, high, extendable, factor, unit))
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: input names must be unique, got {names}")
    raw_cons = data.get("constraints", [])
    if candidates and raw_cons:
        raise ConfigError(f"{source}: constraints apply to continuous inputs, not to a pool of candidates")
    if not isinstance(raw_cons, list):
        raise ConfigError(f"{source}: constraints must be a list of [[constraints]] tables")
    constraints = []
    for k, item in enumerate(raw_cons, 1):
        if not isinstance(item, dict) or "expr" not in item or not isinstance(item["expr"], str):
            raise ConfigError(f"{source}: constraints #{k} needs expr = \"... <= number\"")
        _check_keys(item, _CONSTRAINT_KEYS, f"{source}: constraints #{k}")
        constraints.append(item["expr"])
    raw_obj = data.get("objective")
    if not isinstance(raw_obj, dict):
        raise ConfigError(f"{source}: an [objective] table is required")
    features = data.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise ConfigError(f"{source}: features must be a list of column names")
    if features and not candidates:
        raise ConfigError(f"{source}: features name columns of a candidate table; set candidates = \"file.csv\"")
    if len(set(features)) != len(features):
        raise ConfigError(f"{source}: features must be unique, got {features}")
    if "id" in features:
        raise ConfigError(f"{source}: 'id' names the candidates and cannot be a feature")
    embedding = data.get("embedding", {})
    if not isinstance(embedding, dict):
        raise ConfigError(f"{source}: [embedding] must be a table")
    _check_keys(embedding, _EMBEDDING_KEYS, f"{source}: embedding")
    if embedding and not candidates:
        raise ConfigError(f"{source}: [embedding] turns a long candidate table into features; set candidates too")
    if "landmarks" in embedding:
        lm = embedding["landmarks"]
        if isinstance(lm, bool) or not isinstance(lm, int) or lm < 1:
            raise ConfigError(f"{source}: embedding.landmarks must be a positive integer, got {lm!r}")
    if "lengthscale" in embedding and _number(embedding["lengthscale"], f"{source}: embedding.lengthscale") <= 0:
        raise ConfigError(f"{source}: embedding.lengthscale must be positive")
    objective = _parse_objective(raw_obj, names + list(features), source)
    if candidates and objective.is_spectrum:
        raise ConfigError(f"{source}: spectrum objectives need continuous [[inputs]], not a candidate pool")
    initial = data.get("initial_design", max(5, 2 * max(len(inputs), 1)) if not candidates else 10)
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 2:
        raise ConfigError(f"{source}: initial_design must be an integer of at least 2, got {initial!r}")
    stopping = _parse_stopping(data.get("stopping", {}), source)
    config = Config(name, seed, tuple(inputs), tuple(constraints), objective, initial, stopping, candidates,
                    tuple(features), dict(embedding))
    if not candidates:
        config.space()  # parses constraints and checks feasibility
    return config


def _parse_stopping(raw, source: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [stopping] must be a table")
    _check_keys(raw, _STOPPING_KEYS, f"{source}: stopping")
    out = {}
    for key, value in raw.items():
        if key in _STOPPING_INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: stopping.{key} must be a positive integer, got {value!r}")
            out[key] = value
        else:
            out[key] = _number(value, f"{source}: stopping.{key}")
    return out


def _parse_pareto(raw: dict, names: list[str], source: str) -> Objective:
    _check_keys(raw, _PARETO_KEYS, f"{source}: objective")
    items = raw.get("objectives")
    if not isinstance(items, list) or len(items) < 2:
        raise ConfigError(f"{source}: a pareto objective needs at least two [[objective.objectives]] tables")
    objectives = []
    for where, item in _named_tables(items, f"{source}: objective.objectives", _PARETO_OBJECTIVE_KEYS, ("name",)):
        nm = item["name"]
        if nm in names or nm in RESERVED_COLUMNS:
            raise ConfigError(f"{where}: name {nm!r} clashes with an input, a feature or a reserved column")
        direction = item.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"{where}: direction must be 'maximize' or 'minimize', got {direction!r}")
        objectives.append((nm, direction))
    if len({n for n, _ in objectives}) != len(objectives):
        raise ConfigError(f"{source}: objective names must be unique")
    ref = raw.get("reference")
    if ref is not None:
        if not isinstance(ref, list) or len(ref) != len(objectives):
            raise ConfigError(f"{source}: objective reference must list one number per objective ({len(objectives)})")
        ref = tuple(_number(v, f"{source}: objective reference") for v in ref)
    return Objective("pareto", "hypervolume", "maximize", objectives=tuple(objectives), reference=ref)


def _parse_objective(raw: dict, names: list[str], source: str) -> Objective:
    kind = raw.get("kind", "scalar")
    if kind not in ("scalar", "spectrum", "pareto"):
        raise ConfigError(f"{source}: objective kind {kind!r} is not supported (supported: 'scalar', 'spectrum', "
                          "'pareto')")
    if kind == "pareto":
        return _parse_pareto(raw, names, source)
    _check_keys(raw, _OBJECTIVE_KEYS if kind == "scalar" else _SPECTRUM_KEYS, f"{source}: objective")
    obj_name = raw.get("name", "loss" if kind == "spectrum" else None)
    if not isinstance(obj_name, str) or not obj_name.isidentifier():
        raise ConfigError(f"{source}: objective name must be an identifier, got {obj_name!r}")
    if obj_name in names or obj_name in RESERVED_COLUMNS:
        raise ConfigError(f"{source}: objective name {obj_name!r} clashes with an input or reserved column")
    if kind == "scalar":
        direction = raw.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"{source}: objective direction must be 'maximize' or 'minimize', got {direction!r}")
        return Objective(kind, obj_name, direction)
    target = raw.get("target")
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{source}: a spectrum objective needs target = \"file.csv\" (wavelength, absorbance)")
    window = raw.get("window", list(DEFAULT_WINDOW))
    if (not isinstance(window, list) or len(window) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
            or not 0 < window[0] < window[1]):
        raise ConfigError(f"{source}: objective window must be [low, high] with 0 < low < high, got {window!r}")
    smooth = _number(raw.get("smoothness", 0.02), f"{source}: objective smoothness")
    if smooth <= 0:
        raise ConfigError(f"{source}: objective smoothness must be positive")
    return Objective(kind, obj_name, "minimize", target, (float(window[0]), float(window[1])), smooth)


def load_config(path: Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML ({e})") from None
    return parse_config(data, source=path.name)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_to_toml(config: Config) -> str:
    """Render a config as TOML that :func:`parse_config` reads back to an equal config."""
    out = [f"name = {_toml_value(config.name)}", f"seed = {config.seed}",
           f"initial_design = {config.initial_design}"]
    if config.is_pool:
        out.append(f"candidates = {_toml_value(config.candidates)}")
        out.append("features = [" + ", ".join(_toml_value(f) for f in config.features) + "]")
    out.append("")
    for i in config.inputs:
        out += ["[[inputs]]", f"name = {_toml_value(i.name)}", f"low = {_toml_value(i.low)}",
                f"high = {_toml_value(i.high)}"]
        if i.extendable:
            out += ["extendable = true", f"extend_factor = {_toml_value(i.extend_factor)}"]
        if i.unit:
            out.append(f"unit = {_toml_value(i.unit)}")
        out.append("")
    for c in config.constraints:
        out += ["[[constraints]]", f"expr = {_toml_value(c)}", ""]
    o = config.objective
    out += ["[objective]", f"kind = {_toml_value(o.kind)}", f"name = {_toml_value(o.name)}"]
    if o.is_pareto:
        out = out[:-1]
        if o.reference is not None:
            out.append("reference = [" + ", ".join(repr(v) for v in o.reference) + "]")
        out.append("")
        for nm, direction in o.objectives:
            out += ["[[objective.objectives]]", f"name = {_toml_value(nm)}", f"direction = {_toml_value(direction)}", ""]
    elif o.is_spectrum:
        out += [f"target = {_toml_value(o.target)}", f"window = [{o.window[0]!r}, {o.window[1]!r}]",
                f"smoothness = {o.smoothness!r}", ""]
    else:
        out += [f"direction = {_toml_value(o.direction)}", ""]
    if config.embedding:
        out.append("[embedding]")
        out += [f"{k} = {_toml_value(v)}" for k, v in sorted(config.embedding.items())]
        out.append("")
    if config.stopping:
        out.append("[stopping]")
        out += [f"{k} = {_toml_value(v)}" for k, v in sorted(config.stopping.items())]
        out.append("")
    return "\n".join(out)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that readers see the old or the new file, never a torn one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the caller asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _repeated_batch(body: list[list[str]], rows: np.ndarray, ids: list[str] | None) -> int | None:
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


class Measurements(NamedTuple):
    """Validated rows of a measurement file.

    Attributes:
        values: ``(n, d + k)``: the inputs, then the measured columns (pool campaigns: ``(n, k)``).
        columns: names of the ``k`` measured columns (the objective(s), or the wavelengths as written).
        ids: pool campaigns: the candidate id of each row; otherwise ``None``.
    """

    values: np.ndarray
    columns: list[str]
    ids: list[str] | None = None


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


def _numbers(row: list[str], columns: list[str], positions: list[int], source: str, line: int) -> list[float]:
    """The finite numbers of ``row`` at ``positions``; the first empty, non-numeric or infinite cell is a DataError."""
    out = []
    for c, p in zip(columns, positions):
        cell = row[p].strip()
        if cell == "":
            raise DataError(f"{source} row {line}: {c} is empty")
        try:
            v = float(cell)
        except ValueError:
            raise DataError(f"{source} row {line}: {c} = {cell!r} is not a number") from None
        if not math.isfinite(v):
            raise DataError(f"{source} row {line}: {c} = {cell} is not finite")
        out.append(v)
    return out


def _csv_cell(text: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def _prepare_pool(config: Config, source_dir: Path):
    """Validate a pool campaign's candidate table (embedding a long table first) and fix its feature list.

    Returns the config as it is saved (explicit ``features``), the files to copy
    into the folder and the parsed :class:`~jaxopt_mat.pool.Pool`.
    """
    from jaxopt_mat.pool import parse_pool

    src = source_dir / config.candidates
    text = read_data_file(src, "candidate table")
    files = {src.name: text.encode()}
    if config.embedding and "source" not in config.embedding:
        from jaxopt_mat.embedding import embed_long_table

        embedded = embed_long_table(text, src.name, features=list(config.features) or None,
                                    n_landmarks=config.embedding.get("landmarks", 16),
                                    lengthscale=config.embedding.get("lengthscale"), seed=config.seed)
        name = src.stem + "_embedded.csv"
        files[name] = embedded.encode()
        pool = parse_pool(embedded, name)
        embedding = {**config.embedding, "source": src.name}
        config = dataclasses.replace(config, candidates=name, features=tuple(pool.names), embedding=embedding)
        return config, files, pool
    pool = parse_pool(text, src.name, list(config.features) or None,
                      exclude=config.objective.measured_names)
    clash = [n for n in config.objective.measured_names if n in pool.names]
    if clash:
        raise ConfigError(f"objective {clash[0]!r} is also a feature column of {src.name}; leave it out of features")
    return dataclasses.replace(config, candidates=src.name, features=tuple(pool.names)), files, pool


def _all_finite(cells: list[str]) -> bool:
    try:
        return all(math.isfinite(float(c)) for c in cells)
    except ValueError:
        return False


def _as_wavelength(cell: str):
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


class Campaign:
    """A campaign folder: config, observations, suggestions.

    ``observations.csv`` holds the input columns, then the objective column
    (scalar campaigns) or one column per wavelength (spectrum campaigns; the
    first ``observe`` fixes the grid), then ``batch``.

    Example:
        >>> camp = Campaign.create("runs/agnp", config)
        >>> camp.append_observations(camp.validate_table(text, "round1.csv"))
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        cfg = self.dir / CONFIG_FILE
        if not cfg.is_file():
            raise CampaignError(f"{self.dir} is not a campaign folder (no {CONFIG_FILE}); run 'jaxopt-mat init' first")
        self.config = load_config(cfg)
        self._target = None
        self._pool = None
        self._pool_index = None

    @classmethod
    def create(cls, directory: Path, config: Config, *, source_dir: Path | None = None) -> "Campaign":
        """Create the folder; files the config names are read relative to ``source_dir`` and copied in."""
        directory = Path(directory)
        if (directory / CONFIG_FILE).exists():
            raise CampaignError(f"{directory} already holds a campaign; choose another folder")
        if directory.exists() and not directory.is_dir():
            raise CampaignError(f"{directory} exists and is not a folder")
        copies, pool = {}, None
        if config.objective.is_spectrum:
            src = Path(source_dir or ".") / config.objective.target
            read_target(src)  # validate before creating anything
            copies[src.name] = src.read_bytes()
            config = dataclasses.replace(config, objective=dataclasses.replace(config.objective, target=src.name))
        if config.is_pool:
            config, pool_files, pool = _prepare_pool(config, Path(source_dir or "."))
            copies.update(pool_files)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUGGESTIONS_DIR).mkdir(exist_ok=True)
        for name, content in copies.items():
            (directory / name).write_bytes(content)
        if pool is not None:  # parsed once here; the first command loads it instead of parsing the copy again
            from jaxopt_mat.pool import store_pool_cache

            store_pool_cache(directory / POOL_CACHE_FILE, directory / config.candidates, list(config.features), pool)
        header = config.key_columns + ([] if config.objective.is_spectrum else config.objective.measured_names) + [BATCH_COLUMN]
        atomic_write_text(directory / OBSERVATIONS_FILE, ",".join(header) + "\n")
        atomic_write_text(directory / CONFIG_FILE, config_to_toml(config))
        return cls(directory)

    @property
    def space(self) -> SearchSpace:
        """The search space; for a pool, the box spanned by the candidates' features."""
        if self.config.is_pool:
            pool = self.pool
            return SearchSpace(pool.low, pool.high, names=pool.names)
        return self.config.space()

    @property
    def pool(self):
        """The candidate table of a pool campaign (:class:`jaxopt_mat.pool.Pool`)."""
        if not self.config.is_pool:
            raise CampaignError(f"{self.dir} is not a pool campaign (no candidates in {CONFIG_FILE})")
        if self._pool is None:
            from jaxopt_mat.pool import load_pool_cache, read_pool, store_pool_cache

            source, features = self.dir / self.config.candidates, list(self.config.features)
            self._pool = load_pool_cache(self.dir / POOL_CACHE_FILE, source, features)
            if self._pool is None:
                self._pool = read_pool(source, features)
                store_pool_cache(self.dir / POOL_CACHE_FILE, source, features, self._pool)
        return self._pool

    def pool_index(self) -> dict[str, int]:
        """Row of each candidate id in :attr:`pool` (built once per campaign object)."""
        if self._pool_index is None:
            self._pool_index = self.pool.index_of()
        return self._pool_index

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock over the campaign's files for the duration of a write."""
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- observations -------------------------------------------------------
    def _read_rows(self) -> tuple[list[str], list[list[str]]]:
        path = self.dir / OBSERVATIONS_FILE
        if not path.is_file():
            raise CampaignError(f"{path} is missing; the campaign folder is incomplete")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise CampaignError(f"{path} has no header")
        header = rows[0]
        names = self.config.key_columns
        if header[: len(names)] != names or header[-1] != BATCH_COLUMN:
            raise CampaignError(f"{path}: header does not start with {names} and end with '{BATCH_COLUMN}'")
        body = []
        for line, r in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in r):
                continue
            if len(r) != len(header) or not r[-1].strip().isdigit():
                problem = (f"{len(r)} fields, the header has {len(header)}" if len(r) != len(header)
                           else f"batch {r[-1]!r} is not a whole number")
                raise CampaignError(f"{path} row {line}: {problem} (edited by hand? fix the row or restore the file)")
            body.append(r)
        return header, body

    def measured_columns(self) -> list[str]:
        """The objective column, or the wavelength columns of a spectrum campaign (empty before any data)."""
        header, _ = self._read_rows()
        return header[len(self.config.key_columns):-1]

    def wavelengths(self) -> np.ndarray:
        return np.array([float(c) for c in self.measured_columns()]) if self.config.objective.is_spectrum else np.zeros(0)

    def target(self, wavelengths) -> np.ndarray:
        """The target spectrum on the given wavelength grid."""
        if self._target is None:
            self._target = read_target(self.dir / self.config.objective.target)
        return target_on_grid(*self._target, wavelengths, source=self.config.objective.target)

    def read_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows as ``(x (n, d), measured (n, k), batch (n,))`` (k = 1, or the number of wavelengths)."""
        header, body = self._read_rows()
        d = len(self.config.input_names)
        if self.config.is_pool:
            k = len(header) - 2
            if not body:
                return np.zeros((0, d)), np.zeros((0, k)), np.zeros(0, dtype=int)
            index = self.pool_index()
            try:
                rows = [index[r[0]] for r in body]
            except KeyError as e:
                raise CampaignError(f"{OBSERVATIONS_FILE}: id {e.args[0]!r} is not in {self.config.candidates}") from None
            arr = self._numbers([r[1:] for r in body])
            return self.pool.features[rows], arr[:, :-1], arr[:, -1].astype(int)
        k = len(header) - d - 1
        if not body:
            return np.zeros((0, d)), np.zeros((0, k)), np.zeros(0, dtype=int)
        arr = self._numbers(body)
        return arr[:, :d], arr[:, d:-1], arr[:, -1].astype(int)

    def _numbers(self, cells: list[list[str]]) -> np.ndarray:
        """The recorded cells as floats; a cell that is not a finite number names its row."""
        try:
            arr = np.array([[float(v) for v in r] for r in cells])
        except ValueError:
            arr = None
        if arr is None or not np.all(np.isfinite(arr)):
            bad = next(r for r in cells if not _all_finite(r))
            start = ",".join(bad[:4]) + (",..." if len(bad) > 4 else "")
            raise CampaignError(f"{self.dir / OBSERVATIONS_FILE}: the row {start!r} holds a value that is not a finite "
                                "number (edited by hand? fix the row or restore the file)")
        return arr

    def read_ids(self) -> list[str]:
        """Pool campaigns: the candidate id of every recorded row, in file order."""
        _, body = self._read_rows()
        return [r[0] for r in body]

    def measured_mask(self) -> np.ndarray:
        """Pool campaigns: ``(N,)`` True for candidates with at least one measurement."""
        index = self.pool_index()
        mask = np.zeros(len(self.pool.ids), bool)
        mask[[index[i] for i in self.read_ids() if i in index]] = True
        return mask

    def read_objectives(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pareto campaigns: ``(x (n, d), values (n, m) in maximisation form, batch (n,))``.

        Minimised objectives are negated, so larger is better in every column.
        """
        x, measured, batch = self.read_table()
        return x, measured * self.config.objective.signs, batch

    def reference_point(self, values_max: np.ndarray) -> np.ndarray:
        """The hypervolume reference in maximisation form: the configured one, or one derived from ``values_max``."""
        from jaxopt_mat.pareto import default_reference

        obj = self.config.objective
        if obj.reference is not None:
            return np.asarray(obj.reference) * obj.signs
        return default_reference(values_max)

    def read_observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows as ``(x (n, d), y (n,), batch (n,))``; ``y`` is the exact spectrum loss for spectra.

        Pareto campaigns: ``y`` is ``(n, m)``, the objectives as measured (see :meth:`read_objectives`).
        Pool campaigns: ``x`` holds the candidates' features.
        """
        x, measured, batch = self.read_table()
        if self.config.objective.is_pareto:
            return x, measured, batch
        if not self.config.objective.is_spectrum:
            return x, measured[:, 0], batch
        if x.shape[0] == 0:
            return x, np.zeros(0), batch
        from jaxopt_mat.objectives import spectrum_loss

        target = self.target(self.wavelengths())
        loss = np.asarray(spectrum_loss(measured, target, window=self.config.objective.window))
        return x, loss, batch

    def validate_table(self, text: str, source: str) -> Measurements:
        """Parse a measurement CSV into rows ``(n, d + k)``: inputs, then the objective or the spectrum.

        Spectrum columns are those whose header is a number (the wavelength);
        they are returned in increasing wavelength and must match the grid of
        earlier observations.

        Raises:
            DataError: naming the row and the reason for the first problem found.
        """
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{source}: the file is empty") from None
        header = [h.strip() for h in header]
        if self.config.is_pool:
            return self._validate_pool_rows(header, reader, source)
        names = self.config.input_names
        if self.config.objective.is_spectrum:
            spectral = sorted(((w, i) for i, h in enumerate(header) if (w := _as_wavelength(h)) is not None))
            twice = sorted({f"{w:g}" for (w, _), (w2, _) in zip(spectral, spectral[1:]) if w == w2})
            if twice:
                raise DataError(f"{source}: wavelength(s) {', '.join(twice)} nm appear in more than one column")
            if len(spectral) < 3:
                raise DataError(f"{source}: no spectrum columns (headers must be wavelengths, e.g. 380, 381, ...)")
            known = self.wavelengths()
            if known.size and (len(known) != len(spectral) or not np.allclose(known, [w for w, _ in spectral])):
                raise DataError(
                    f"{source}: its {len(spectral)} wavelengths ({spectral[0][0]:g}-{spectral[-1][0]:g} nm) differ from "
                    f"the campaign's {len(known)} ({known[0]:g}-{known[-1]:g} nm)"
                )
            self.target(np.array([w for w, _ in spectral]))  # the target must cover the grid
            need = names + [header[i] for _, i in spectral]
        else:
            need = names + self.config.objective.measured_names
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(need[:len(names) + 1])}"
                            f"{', ...' if len(need) > len(names) + 1 else ''}){separator_hint(header)}")
        refuse_repeated_columns(header, need, source)
        pos = [header.index(c) for c in need]
        space = self.space
        values = []
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{source} row {line}: {len(row)} fields, expected {len(header)}")
            vals = _numbers(row, need, pos, source, line)
            for inp, v in zip(self.config.inputs, vals):
                tol = 1e-9 * (inp.high - inp.low)
                if v < inp.low - tol:
                    raise DataError(f"{source} row {line}: {inp.name} = {v:g} is below its lower bound {inp.low:g}")
                if v > inp.high + tol:
                    raise DataError(f"{source} row {line}: {inp.name} = {v:g} is above its upper bound {inp.high:g}")
            x = np.array(vals[: len(names)])
            if space.n_constraints:
                lhs = space.A @ x
                for expr, a, bnd in zip(self.config.constraints, lhs, space.b):
                    if a > bnd + 1e-9 * max(1.0, abs(bnd)):
                        raise DataError(f"{source} row {line}: violates constraint '{expr}' ({a:g} > {bnd:g})")
            values.append(vals)
        if not values:
            raise DataError(f"{source}: no data rows")
        return Measurements(np.array(values), need[len(names):])

    def _validate_pool_rows(self, header: list[str], reader, source: str) -> Measurements:
        measured = self.config.objective.measured_names
        need = ["id"] + measured
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(need)})")
        refuse_repeated_columns(header, need, source)
        pos = [header.index(c) for c in need]
        index = self.pool_index()
        ids, values = [], []
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{source} row {line}: {len(row)} fields, expected {len(header)}")
            cid = row[pos[0]].strip()
            if cid not in index:
                raise DataError(f"{source} row {line}: id {cid!r} is not in the candidate table {self.config.candidates}")
            vals = _numbers(row, measured, pos[1:], source, line)
            ids.append(cid)
            values.append(vals)
        if not values:
            raise DataError(f"{source}: no data rows")
        return Measurements(np.array(values), measured, ids)

    def append_observations(self, measurements: Measurements | np.ndarray, *, refuse_repeat: bool = False) -> int:
        """Append validated rows atomically under the lock; return the batch number given to them.

        A spectrum campaign's first rows fix its wavelength grid (the header of
        ``observations.csv``); a bare array is taken to be in the current column order.

        With ``refuse_repeat``, rows that repeat an earlier batch exactly (the
        same rows, in any order, every value equal) raise
        :class:`~jaxopt_mat.errors.RepeatedBatchError` (a :class:`DataError`)
        and nothing is written: the same file observed twice would otherwise
        count each measurement as its own replicate.
        """
        path = self.dir / OBSERVATIONS_FILE
        rows = measurements.values if isinstance(measurements, Measurements) else np.asarray(measurements)
        ids = measurements.ids if isinstance(measurements, Measurements) else None
        if self.config.is_pool:
            if ids is None or len(ids) != rows.shape[0]:
                raise CampaignError("rows of a pool campaign need their candidate ids (use validate_table)")
            index = self.pool_index()
            unknown = [i for i in ids if i not in index]
            if unknown:
                raise CampaignError(f"id {unknown[0]!r} is not in the candidate table {self.config.candidates}")
        with self.lock():
            header, body = self._read_rows()
            old = path.read_text(encoding="utf-8")
            if self.config.objective.is_spectrum and len(header) == len(self.config.key_columns) + 1:  # no data yet: the grid comes with these rows
                if not isinstance(measurements, Measurements):
                    raise CampaignError("the first spectra of a campaign need their wavelength columns (use validate_table)")
                header = self.config.input_names + list(measurements.columns) + [BATCH_COLUMN]
                old = ",".join(header) + "\n" + old.split("\n", 1)[1]
            elif rows.shape[1] != len(header) - 1 - (1 if ids is not None else 0):
                raise CampaignError(f"rows have {rows.shape[1]} values, the campaign expects {len(header) - 1}")
            if refuse_repeat:
                earlier = _repeated_batch(body, rows, ids)
                if earlier is not None:
                    raise RepeatedBatchError(f"its {rows.shape[0]} rows repeat batch {earlier} exactly "
                                             "(observed twice?); nothing recorded")
            batch = max((int(r[-1]) for r in body), default=0) + 1
            lines = [",".join(repr(float(v)) for v in r) + f",{batch}" for r in rows]
            if ids is not None:
                lines = [f"{_csv_cell(i)},{line}" for i, line in zip(ids, lines)]
            if old and not old.endswith("\n"):
                old += "\n"
            atomic_write_text(path, old + "\n".join(lines) + "\n")
        return batch

    # -- suggestions --------------------------------------------------------
    def suggestion_files(self) -> list[Path]:
        folder = self.dir / SUGGESTIONS_DIR
        return sorted(folder.glob("batch_*.csv")) if folder.is_dir() else []

    def save_suggestion(self, text: str) -> Path:
        folder = self.dir / SUGGESTIONS_DIR
        folder.mkdir(exist_ok=True)
        with self.lock():
            n = len(self.suggestion_files()) + 1
            path = folder / f"batch_{n:04d}.csv"
            atomic_write_text(path, text)
        return path

    def read_suggestion(self, path: Path) -> np.ndarray:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        pos = [header.index(n) for n in self.config.input_names]
        return np.array([[float(r[p]) for p in pos] for r in rows[1:] if r])

    def read_state(self) -> dict:
        """Small decisions the loop must remember (e.g. the round the network step began)."""
        import json

        path = self.dir / STATE_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise CampaignError(f"{path} is not valid JSON; restore it or delete it to reset the loop's state") from None

    def update_state(self, **changes) -> None:
        import json

        with self.lock():
            state = self.read_state()
            state.update(changes)
            atomic_write_text(self.dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def save_config(self, config: Config) -> None:
        with self.lock():
            atomic_write_text(self.dir / CONFIG_FILE, config_to_toml(config))
        self.config = config
