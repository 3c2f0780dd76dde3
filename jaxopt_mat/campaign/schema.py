"""Names every part of ``campaign.toml`` shares: reserved columns, and the small checks its tables go through."""

from __future__ import annotations

import math

from jaxopt_mat.errors import ConfigError

CONFIG_FILE = "campaign.toml"
BATCH_COLUMN = "batch"
STATUS_COLUMN = "status"  # a run's outcome: "failed" (no result, measured cells may be empty), "ok" or empty
SUGGESTION_COLUMN = "suggestion"  # the id of the suggested row a measurement answers (b0004-07)
# Columns of observations.csv that no input or objective may be named after.
RESERVED_COLUMNS = (BATCH_COLUMN, "id", STATUS_COLUMN, SUGGESTION_COLUMN)


def check_keys(table: dict, allowed: set, where: str):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def named_tables(items: list, label: str, allowed: set, required: tuple):
    """Yield ``(where, table)`` for each entry of an array of tables, checking keys and the ``name``."""
    for k, item in enumerate(items, 1):
        where = f"{label} #{k}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table")
        check_keys(item, allowed, where)
        for key in required:
            if key not in item:
                raise ConfigError(f"{where}: missing '{key}'")
        nm = item["name"]
        if not isinstance(nm, str) or not nm.isidentifier():
            raise ConfigError(f"{where}: name must be an identifier (letters, digits, _), got {nm!r}")
        yield where, item


def number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)
