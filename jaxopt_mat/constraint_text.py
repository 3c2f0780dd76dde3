"""Linear constraints written as text: ``"q_a + 2*q_b - q_c <= 90"`` into rows of ``A x <= b``."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from jaxopt_mat.errors import ConfigError


def parse_constraint(expr: str, names: Sequence[str]) -> tuple[np.ndarray, float]:
    """Parse ``"q_a + 2*q_b - q_c <= 90"`` (also ``>=``) into ``(a, b)`` with ``a·x <= b``.

    Raises:
        ConfigError: naming the unknown input or the malformed term.
    """
    text = expr.strip()
    if "<=" in text:
        lhs, rhs, sign = *text.split("<=", 1), 1.0
    elif ">=" in text:
        lhs, rhs, sign = *text.split(">=", 1), -1.0
    else:
        raise ConfigError(f"constraint '{expr}': expected '<=' or '>='")
    try:
        bound = float(rhs)
    except ValueError:
        raise ConfigError(f"constraint '{expr}': right-hand side must be a number") from None
    coef = np.zeros(len(names))
    index = {n: i for i, n in enumerate(names)}
    lhs = lhs.replace(" ", "")
    if not lhs:
        raise ConfigError(f"constraint '{expr}': empty left-hand side")
    terms = re.findall(r"[+-]?[^+-]+", lhs)
    if "".join(terms) != lhs:
        raise ConfigError(f"constraint '{expr}': cannot read the left-hand side")
    for term in terms:
        m = re.fullmatch(r"([+-]?)(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\*)?([A-Za-z_][A-Za-z0-9_]*)", term)
        if m is None:
            raise ConfigError(f"constraint '{expr}': cannot read the term '{term}' (use e.g. 2*q_a)")
        s, c, name = m.groups()
        if name not in index:
            raise ConfigError(f"constraint '{expr}': unknown input '{name}' (inputs: {', '.join(names)})")
        value = float(c) if c else 1.0
        coef[index[name]] += -value if s == "-" else value
    return sign * coef, sign * bound


def constraints_from_strings(exprs: Sequence[str], names: Sequence[str]):
    """Stack parsed constraint strings into ``(A, b)``; ``(None, None)`` when there are none."""
    if not exprs:
        return None, None
    rows, rhs = zip(*(parse_constraint(e, names) for e in exprs))
    return np.stack(rows), np.array(rhs)
