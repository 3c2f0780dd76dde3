"""What a campaign optimises: its objective, and the constraints on other measured outcomes."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from jaxopt_mat.campaign.schema import RESERVED_COLUMNS, check_keys, named_tables, number
from jaxopt_mat.errors import ConfigError

_OBJECTIVE_KEYS = {"kind", "name", "direction"}
_SPECTRUM_KEYS = {"kind", "name", "target", "window", "smoothness"}
_PARETO_KEYS = {"kind", "objectives", "reference"}
_PARETO_OBJECTIVE_KEYS = {"name", "direction"}
DEFAULT_WINDOW = (0.7, 1.2)


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


def _parse_pareto(raw: dict, names: list[str], source: str) -> Objective:
    check_keys(raw, _PARETO_KEYS, f"{source}: objective")
    items = raw.get("objectives")
    if not isinstance(items, list) or len(items) < 2:
        raise ConfigError(f"{source}: a pareto objective needs at least two [[objective.objectives]] tables")
    objectives = []
    for where, item in named_tables(items, f"{source}: objective.objectives", _PARETO_OBJECTIVE_KEYS, ("name",)):
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
        ref = tuple(number(v, f"{source}: objective reference") for v in ref)
    return Objective("pareto", "hypervolume", "maximize", objectives=tuple(objectives), reference=ref)


def parse_objective(raw: dict, names: list[str], source: str) -> Objective:
    kind = raw.get("kind", "scalar")
    if kind not in ("scalar", "spectrum", "pareto"):
        raise ConfigError(f"{source}: objective kind {kind!r} is not supported (supported: 'scalar', 'spectrum', "
                          "'pareto')")
    if kind == "pareto":
        return _parse_pareto(raw, names, source)
    check_keys(raw, _OBJECTIVE_KEYS if kind == "scalar" else _SPECTRUM_KEYS, f"{source}: objective")
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
    smooth = number(raw.get("smoothness", 0.02), f"{source}: objective smoothness")
    if smooth <= 0:
        raise ConfigError(f"{source}: objective smoothness must be positive")
    return Objective(kind, obj_name, "minimize", target, (float(window[0]), float(window[1])), smooth)


@dataclasses.dataclass(frozen=True)
class OutcomeConstraint:
    """A measured column other than the objective that must stay on one side of a bound: ``purity >= 0.95``.

    A condition counts (as the best, or on the Pareto set) only when the
    median of its replicates satisfies every constraint; suggestions weigh the
    acquisition by the modelled probability that they will.
    """

    name: str
    op: str
    bound: float

    @property
    def expr(self) -> str:
        return f"{self.name} {self.op} {self.bound!r}"

    @property
    def upper(self) -> bool:
        """True for ``<=`` (the bound is an upper bound)."""
        return self.op == "<="

    def holds(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values <= self.bound if self.upper else values >= self.bound


_OUTCOME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*(\S+)\s*")


def parse_outcome_constraints(raw, objective: Objective, inputs: list[str], source: str) -> tuple:
    """``[[outcome_constraints]]`` tables (``expr = "purity >= 0.95"``) as :class:`OutcomeConstraint` values."""
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: outcome_constraints must be a list of [[outcome_constraints]] tables")
    objectives = objective.measured_names if not objective.is_spectrum else [objective.name]
    out = []
    for k, item in enumerate(raw, 1):
        where = f"{source}: outcome_constraints #{k}"
        if not isinstance(item, dict) or not isinstance(item.get("expr"), str):
            raise ConfigError(f"{where} needs expr = \"column >= number\" (or <=)")
        check_keys(item, {"expr"}, where)
        expr = item["expr"]
        m = _OUTCOME.fullmatch(expr)
        if m is None:
            raise ConfigError(f"{where}: {expr!r} is not 'column >= number' or 'column <= number' (one measured "
                              "column, the operator <= or >=, a number)")
        name, op, bound = m.groups()
        try:
            value = number(float(bound), f"{where}: the bound of {expr!r}")
        except ValueError:
            raise ConfigError(f"{where}: the bound of {expr!r} must be a number, got {bound!r}") from None
        if name in objectives:
            raise ConfigError(f"{where}: {name!r} is the objective; constrain another measured column")
        if name in inputs:
            raise ConfigError(f"{where}: {name!r} is an input, not a measured column (bound inputs with low/high, "
                              "or use [[constraints]])")
        if name in RESERVED_COLUMNS:
            raise ConfigError(f"{where}: {name!r} is a reserved column of observations.csv")
        out.append(OutcomeConstraint(name, op, value))
    return tuple(out)


def outcome_constraints_toml(constraints) -> list[str]:
    """The ``[[outcome_constraints]]`` tables of ``constraints``, as TOML lines."""
    out = []
    for c in constraints:
        out += ["[[outcome_constraints]]", f'expr = "{c.expr}"', ""]
    return out
