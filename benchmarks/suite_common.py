"""What the side-by-side suites (``bench_suite_*.py``) share: BoTorch's stored runs, the verdict, a table row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from bench_core import have_botorch


class PeerRuns:
    """BoTorch's runs by key, kept in a JSON file (when given) so that a later run adds only the keys it lacks."""

    def __init__(self, path: Path | None):
        self.path = path
        self.runs = json.loads(path.read_text()) if path and path.exists() else {}

    def get(self, key: str, run: Callable[[], dict]) -> dict | None:
        """The stored run of ``key``; ``run()`` (and stored) when missing and BoTorch is installed; else ``None``."""
        if key not in self.runs and have_botorch():
            self.runs[key] = run()
            if self.path:
                self.path.write_text(json.dumps(self.runs, indent=1))
        return self.runs.get(key)


def verdict(a, b) -> str:
    """``win``/``loss``/``tie`` of figures ``a`` (ours) against ``b``, lower is better: the medians apart by more
    than a quarter of the mean interquartile range."""
    iqr = 0.5 * (np.subtract(*np.percentile(a, [75, 25])) + np.subtract(*np.percentile(b, [75, 25])))
    gap = np.median(b) - np.median(a)
    return "tie" if abs(gap) <= 0.25 * iqr else ("win" if gap > 0 else "loss")


def table_row(label: str, ours, theirs, rnd, t_ours, t_theirs, *, digits: str, higher_is_better: bool):
    """A Markdown row (label, ours, BoTorch, random, times, verdict) and the verdict (``-`` when BoTorch's seeds
    are missing)."""
    def fmt(v):
        return f"{np.median(v):{digits}} [{np.percentile(v, 25):{digits}}, {np.percentile(v, 75):{digits}}]"

    both = len(theirs) == len(ours)
    sign = -1 if higher_is_better else 1
    v = verdict([sign * x for x in ours], [sign * x for x in theirs]) if both else "-"
    row = (f"| {label} | {fmt(ours)} | {fmt(theirs) if both else '-'} | {fmt(rnd)} | {np.median(t_ours):.1f} s | "
           f"{f'{np.median(t_theirs):.1f} s' if both else '-'} | {v} |")
    return row, v


def summary_line(verdicts: list[str]) -> str | None:
    """``n wins, n ties, n losses against BoTorch.``, or ``None`` while some problem lacks BoTorch's runs."""
    if "-" in verdicts:
        return None
    return f"{verdicts.count('win')} wins, {verdicts.count('tie')} ties, {verdicts.count('loss')} losses against BoTorch."
