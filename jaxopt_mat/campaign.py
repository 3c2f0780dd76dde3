"""The lab notebook on disk: a campaign folder.

    DIR/campaign.toml      the space and the objective (validated copy of the user's config)
    DIR/observations.csv   every measurement, one row each, append-only
    DIR/suggestions/       every batch ``suggest`` returned, numbered
    DIR/.lock              serialises writers

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

import numpy as np

from jaxopt_mat.errors import CampaignError, ConfigError, DataError
from jaxopt_mat.space import SearchSpace, constraints_from_strings

CONFIG_FILE = "campaign.toml"
OBSERVATIONS_FILE = "observations.csv"
SUGGESTIONS_DIR = "suggestions"
BATCH_COLUMN = "batch"

_TOP_KEYS = {"name", "seed", "inputs", "constraints", "objective", "initial_design"}
_INPUT_KEYS = {"name", "low", "high", "extendable", "extend_factor", "unit"}
_CONSTRAINT_KEYS = {"expr"}
_OBJECTIVE_KEYS = {"kind", "name", "direction"}


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
    kind: str
    name: str
    direction: str

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    seed: int
    inputs: tuple[Input, ...]
    constraints: tuple[str, ...]
    objective: Objective
    initial_design: int

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def space(self) -> SearchSpace:
        names = self.input_names
        A, b = constraints_from_strings(self.constraints, names)
        return SearchSpace([i.low for i in self.inputs], [i.high for i in self.inputs], names=names, A=A, b=b)


def _check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


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
    raw_inputs = data.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ConfigError(f"{source}: at least one [[inputs]] table is required")
    inputs = []
    for k, item in enumerate(raw_inputs, 1):
        where = f"{source}: inputs #{k}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(item, _INPUT_KEYS, where)
        for key in ("name", "low", "high"):
            if key not in item:
                raise ConfigError(f"{where}: missing '{key}'")
        nm = item["name"]
        if not isinstance(nm, str) or not nm.isidentifier():
            raise ConfigError(f"{where}: name must be an identifier (letters, digits, _), got {nm!r}")
        where = f"{source}: input {nm}"
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
    _check_keys(raw_obj, _OBJECTIVE_KEYS, f"{source}: objective")
    kind = raw_obj.get("kind", "scalar")
    if kind != "scalar":
        raise ConfigError(f"{source}: objective kind {kind!r} is not supported (supported: 'scalar')")
    obj_name = raw_obj.get("name")
    if not isinstance(obj_name, str) or not obj_name.isidentifier():
        raise ConfigError(f"{source}: objective name must be an identifier, got {obj_name!r}")
    if obj_name in names or obj_name == BATCH_COLUMN:
        raise ConfigError(f"{source}: objective name {obj_name!r} clashes with an input or reserved column")
    direction = raw_obj.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"{source}: objective direction must be 'maximize' or 'minimize', got {direction!r}")
    initial = data.get("initial_design", max(5, 2 * len(inputs)))
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 2:
        raise ConfigError(f"{source}: initial_design must be an integer of at least 2, got {initial!r}")
    config = Config(name, seed, tuple(inputs), tuple(constraints), Objective(kind, obj_name, direction), initial)
    config.space()  # parses constraints and checks feasibility
    return config


def load_config(path: Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
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
           f"initial_design = {config.initial_design}", ""]
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
    out += ["[objective]", f"kind = {_toml_value(o.kind)}", f"name = {_toml_value(o.name)}",
            f"direction = {_toml_value(o.direction)}", ""]
    return "\n".join(out)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that readers see the old or the new file, never a torn one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
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


class Campaign:
    """A campaign folder: config, observations, suggestions.

    Example:
        >>> camp = Campaign.create("runs/agnp", config)
        >>> camp.append_observations(table)
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        cfg = self.dir / CONFIG_FILE
        if not cfg.is_file():
            raise CampaignError(f"{self.dir} is not a campaign folder (no {CONFIG_FILE}); run 'jaxopt-mat init' first")
        self.config = load_config(cfg)

    @classmethod
    def create(cls, directory: Path, config: Config) -> "Campaign":
        directory = Path(directory)
        if (directory / CONFIG_FILE).exists():
            raise CampaignError(f"{directory} already holds a campaign; choose another folder")
        if directory.exists() and not directory.is_dir():
            raise CampaignError(f"{directory} exists and is not a folder")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUGGESTIONS_DIR).mkdir(exist_ok=True)
        atomic_write_text(directory / OBSERVATIONS_FILE, ",".join(cls.columns_for(config)) + "\n")
        atomic_write_text(directory / CONFIG_FILE, config_to_toml(config))
        return cls(directory)

    @staticmethod
    def columns_for(config: Config) -> list[str]:
        return config.input_names + [config.objective.name, BATCH_COLUMN]

    @property
    def columns(self) -> list[str]:
        return self.columns_for(self.config)

    @property
    def space(self) -> SearchSpace:
        return self.config.space()

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
    def read_observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All recorded rows as ``(x (n, d), y (n,), batch (n,))``."""
        path = self.dir / OBSERVATIONS_FILE
        if not path.is_file():
            raise CampaignError(f"{path} is missing; the campaign folder is incomplete")
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0] != self.columns:
            raise CampaignError(f"{path}: header does not match the campaign's columns {self.columns}")
        body = rows[1:]
        d = len(self.config.inputs)
        if not body:
            return np.zeros((0, d)), np.zeros(0), np.zeros(0, dtype=int)
        arr = np.array([[float(v) for v in r] for r in body])
        return arr[:, :d], arr[:, d], arr[:, d + 1].astype(int)

    def validate_table(self, text: str, source: str) -> np.ndarray:
        """Parse a measurement CSV; return its rows as ``(n, d + 1)`` (inputs, objective).

        Raises:
            DataError: naming the row and the reason for the first problem found.
        """
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{source}: the file is empty") from None
        header = [h.strip() for h in header]
        need = self.config.input_names + [self.config.objective.name]
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(need)})")
        pos = [header.index(c) for c in need]
        space = self.space
        values = []
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{source} row {line}: {len(row)} fields, expected {len(header)}")
            vals = []
            for c, p in zip(need, pos):
                cell = row[p].strip()
                if cell == "":
                    raise DataError(f"{source} row {line}: {c} is empty")
                try:
                    v = float(cell)
                except ValueError:
                    raise DataError(f"{source} row {line}: {c} = {cell!r} is not a number") from None
                if not math.isfinite(v):
                    raise DataError(f"{source} row {line}: {c} = {cell} is not finite")
                vals.append(v)
            for inp, v in zip(self.config.inputs, vals):
                tol = 1e-9 * (inp.high - inp.low)
                if v < inp.low - tol:
                    raise DataError(f"{source} row {line}: {inp.name} = {v:g} is below its lower bound {inp.low:g}")
                if v > inp.high + tol:
                    raise DataError(f"{source} row {line}: {inp.name} = {v:g} is above its upper bound {inp.high:g}")
            x = np.array(vals[:-1])
            if space.n_constraints:
                lhs = space.A @ x
                for expr, a, bnd in zip(self.config.constraints, lhs, space.b):
                    if a > bnd + 1e-9 * max(1.0, abs(bnd)):
                        raise DataError(f"{source} row {line}: violates constraint '{expr}' ({a:g} > {bnd:g})")
            values.append(vals)
        if not values:
            raise DataError(f"{source}: no data rows")
        return np.array(values)

    def append_observations(self, rows: np.ndarray) -> int:
        """Append validated rows atomically under the lock; return the batch number given to them."""
        path = self.dir / OBSERVATIONS_FILE
        with self.lock():
            old = path.read_text()
            _, _, batches = self.read_observations()
            batch = int(batches.max()) + 1 if batches.size else 1
            lines = [",".join(repr(float(v)) for v in r) + f",{batch}" for r in rows]
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
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        pos = [header.index(n) for n in self.config.input_names]
        return np.array([[float(r[p]) for p in pos] for r in rows[1:] if r])

    def save_config(self, config: Config) -> None:
        with self.lock():
            atomic_write_text(self.dir / CONFIG_FILE, config_to_toml(config))
        self.config = config

