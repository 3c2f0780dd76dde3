"""What the side-by-side suites (``bench_suite_*.py``) share: BoTorch's stored runs, the verdict, a table row."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np

from bench_core import have_botorch, machine


PEER_RUNS = Path(__file__).resolve().parent / "peer_runs"


def peer_file(suite: str) -> Path:
    """Where a suite keeps BoTorch's runs by default: ``benchmarks/peer_runs/<suite>.json``, in the repository, so
    the side-by-side tables can be printed again (ours rerun, BoTorch's read) without BoTorch's hours."""
    return PEER_RUNS / f"{suite}.json"


class PeerRuns:
    """BoTorch's runs by key, kept in a JSON file (when given) so that a later run adds only the keys it lacks.

    Each run is stored with the date and machine it ran on; a key names everything that decides the run
    (problem, seed, batch, budget), so a changed setting is a missing key, run anew, never a stale one.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.runs = json.loads(path.read_text()) if path and path.exists() else {}

    def get(self, key: str, run: Callable[[], dict]) -> dict | None:
        """The stored run of ``key``; ``run()`` (and stored) when missing and BoTorch is installed; else ``None``."""
        if key not in self.runs and have_botorch():
            self.runs[key] = {**run(), "date": date.today().isoformat(), "machine": machine()}
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.runs, indent=1, sort_keys=True) + "\n")
        return self.runs.get(key)

    def provenance(self, keys) -> str:
        """One line: the dates and machines of the stored runs of ``keys`` (those without a stamp: "unrecorded")."""
        stamps = sorted({(self.runs[k].get("date", "unrecorded"), self.runs[k].get("machine", "unrecorded"))
                         for k in keys if k in self.runs})
        return "; ".join(f"{d} on {m}" for d, m in stamps) or "none stored"


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
    counts = [(verdicts.count(v), v, plural) for v, plural in (("win", "wins"), ("tie", "ties"), ("loss", "losses"))]
    return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts) + " against BoTorch."
