"""Failed runs: how often the loop suggests a run that fails, with and without the success classifier.

    .venv/bin/python benchmarks/bench_failures.py [--seeds 10] [--rounds 6]

A 2-D problem, ``sin(5 x1) cos(4 x2) + 0.5 (x1 - 0.3)^2`` minimised over the
unit square, where runs with ``x1 + x2 / 2 > 0.9`` fail (35 % of the square,
a region not aligned with the axes; the best result lies outside it). Each
seed: a 20-point Latin hypercube, then ``--rounds`` GP batches of 5 through
the campaign files, failures recorded with ``status = failed``. The same
loop runs without the classifier (its weight left out of the acquisition).
Reported per variant: failing suggestions after the initial design, and the
regret of the best result (against the best of a dense grid of the feasible
square), median [min, max] over seeds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
import jaxopt_mat.strategies.gp as gp_strategy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

CONFIG = {"name": "failures", "initial_design": 20,
          "inputs": [{"name": "x1", "low": 0.0, "high": 1.0}, {"name": "x2", "low": 0.0, "high": 1.0}],
          "objective": {"name": "y", "direction": "minimize"}}


def objective(x1, x2):
    return np.sin(5 * x1) * np.cos(4 * x2) + 0.5 * (x1 - 0.3) ** 2


def fails(x1, x2):
    return (x1 + 0.5 * x2) > 0.9


def best_feasible() -> float:
    g = np.linspace(0.0, 1.0, 2001)
    x1, x2 = np.meshgrid(g, g, indexing="ij")
    return float(np.min(np.where(fails(x1, x2), np.inf, objective(x1, x2))))


def measure(camp, batch) -> int:
    x1, x2 = batch["x1"].to_numpy(), batch["x2"].to_numpy()
    bad = fails(x1, x2)
    batch = batch[["x1", "x2"]].copy()
    batch["y"] = np.where(bad, np.nan, objective(x1, x2))
    batch["status"] = np.where(bad, "failed", "ok")
    camp.observe(batch, again=True)  # a converged loop may run the same conditions again: new measurements
    return int(bad.sum())


def loop(seed: int, rounds: int, workdir: Path, use_classifier: bool) -> tuple[int, float]:
    real = gp_strategy.feasibility
    if not use_classifier:
        gp_strategy.feasibility = lambda *a, **k: None
    try:
        camp = jm.Campaign.create(workdir / f"s{seed}-{use_classifier}", {**CONFIG, "seed": seed})
        measure(camp, camp.suggest(20))
        failed = sum(measure(camp, camp.suggest(5, method="gp")) for _ in range(rounds))
        return failed, float(camp.snapshot().conditions.y.min())
    finally:
        gp_strategy.feasibility = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    best = best_feasible()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for use in (True, False):
            runs = [loop(s, args.rounds, Path(tmp), use) for s in range(args.seeds)]
            rows[use] = runs
            print(f"classifier {use}: " + ", ".join(f"{f} failed, regret {b - best:.2e}" for f, b in runs),
                  file=sys.stderr, flush=True)
    n = 5 * args.rounds
    print(f"Machine: {machine()}.\n")
    print(f"{args.seeds} seeds; {n} suggestions after the 20-point initial design; best feasible value {best:.5f}.\n")
    print("| loop | failing suggestions, median [min, max] | regret of the best result, median [min, max] |")
    print("| --- | --- | --- |")
    for use, label in ((True, "with the success classifier"), (False, "without it")):
        f = [r[0] for r in rows[use]]
        g = [r[1] - best for r in rows[use]]
        print(f"| {label} | {np.median(f):.0f} of {n} [{min(f)}, {max(f)}] | "
              f"{np.median(g):.2e} [{min(g):.2e}, {max(g):.2e}] |")


if __name__ == "__main__":
    main()
