"""Experiments in flight: how far a new batch keeps from pending rows, and what pending rows cost a suggest.

    .venv/bin/python benchmarks/bench_pending.py [--seeds 5] [--repeats 5]

Spacing: a 5-D campaign (the first five inputs of Hartmann-6, the sixth at
0.5, maximised) with 60 measured conditions. ``suggest --batch 15`` is called
twice without an ``observe`` in between: the second batch should keep every
row at least as far from the first (pending) batch as local penalization
keeps the members of one batch apart. Reported per seed: the smallest
distance (unit cube) from a second-batch row to a pending row, against the
smallest distance between two members of one batch of 30 chosen in one call
(the same penalizers, all in one batch) and between that batch's last 15
and first 15 members (the same situation inside one call).

Latency: the same kind of campaign with 200 measured conditions (suggest a
batch of 5) and with 300 (batches of 1 and of 8: ``run`` asks for as many
as slots are free, one as an evaluation finishes); the time of one in-process command (read the folder
into a snapshot, suggest) with 64 pending rows, against the same campaign
with none. Warm (compiled programs reused), median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat import strategies  # noqa: E402
from jaxopt_mat.campaign import read_snapshot  # noqa: E402
from jaxopt_mat.design import latin_hypercube  # noqa: E402
from jaxopt_mat.test_functions import hartmann6  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

NAMES = [f"x{i}" for i in range(1, 6)]


def config(seed: int, initial: int) -> dict:
    return {"name": "pending", "seed": seed, "initial_design": initial,
            "inputs": [{"name": n, "low": 0.0, "high": 1.0} for n in NAMES],
            "objective": {"name": "y", "direction": "maximize"}}


def value(frame) -> np.ndarray:
    x = np.concatenate([frame[NAMES].to_numpy(), np.full((len(frame), 1), 0.5)], axis=1)
    return -np.asarray(hartmann6(x))  # hartmann6 is minimised; this campaign maximises its negative


def measured(path: Path, seed: int, n: int) -> jm.Campaign:
    """A campaign with ``n`` measured conditions of a Latin hypercube (recorded as one batch)."""
    camp = jm.Campaign.create(path, config(seed, n))
    first = pd.DataFrame(latin_hypercube(camp.space, n, seed=seed), columns=NAMES)
    first["y"] = value(first)
    camp.observe(first)
    return camp


def min_distance(a, b=None) -> float:
    a = np.asarray(a)
    if b is None:
        d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.diag(np.full(len(a), np.inf))
    else:
        d = np.linalg.norm(a[:, None] - np.asarray(b)[None], axis=-1)
    return float(d.min())


def spacing(seed: int, workdir: Path) -> tuple[float, float, float]:
    """Nearest (second batch, pending first batch); nearest pair in one batch of 30; nearest (its last 15, first 15)."""
    camp = measured(workdir / f"space{seed}", seed, 60)
    snap = camp.snapshot()
    one = strategies.suggest(snap, 30, method="gp", context=camp.context).x  # one batch of 30, not kept
    first = camp.ask(15).suggestion.x
    second = camp.ask(15).suggestion.x
    return min_distance(second, first), min_distance(one), min_distance(one[15:], one[:15])


def command(path: Path, ctx, batch: int) -> float:
    t0 = time.perf_counter()
    strategies.suggest(read_snapshot(jm.Campaign.open(path).folder), batch, method="gp", context=ctx)
    return time.perf_counter() - t0


def latency(workdir: Path, repeats: int, conditions: int, batch: int) -> tuple[float, float]:
    workdir = workdir / f"latency{conditions}-{batch}"
    camp = measured(workdir / "none", 0, conditions)
    held = workdir / "held"
    shutil.copytree(workdir / "none", held)
    other = jm.Campaign.open(held)
    for _ in range(8):
        other.ask(8, method="random")
    assert other.snapshot().n_pending == 64
    ctx = camp.context
    times = {}
    for path in (workdir / "none", held):
        command(path, ctx, batch)  # warm up: compile
        times[path.name] = float(np.median([command(path, ctx, batch) for _ in range(repeats)]))
    return times["none"], times["held"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [spacing(s, Path(tmp)) for s in range(args.seeds)]
        latencies = [(n, q, *latency(Path(tmp), args.repeats, n, q)) for n, q in ((200, 5), (300, 1), (300, 8))]
    print(f"Machine: {machine()}.\n")
    print("| seed | second batch of 15 to the pending first | one batch of 30: nearest pair | its last 15 to its "
          "first 15 | ratio to the nearest pair |")
    print("| --- | --- | --- | --- | --- |")
    for s, (gap, within, halves) in enumerate(rows):
        print(f"| {s} | {gap:.4f} | {within:.4f} | {halves:.4f} | {gap / within:.2f} |")
    ratios = [g / w for g, w, _ in rows]
    print(f"\nRatio, median [min, max]: {np.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}] "
          f"over {len(rows)} seeds.")
    print(f"\nLatency of one command (read the folder, suggest), d = 5, warm, median of {args.repeats}:\n")
    print("| conditions | batch | no pending rows | 64 pending rows | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for n, q, none, held in latencies:
        print(f"| {n} | {q} | {none:.3f} s | {held:.3f} s | {held / none:.2f} |")


if __name__ == "__main__":
    main()
