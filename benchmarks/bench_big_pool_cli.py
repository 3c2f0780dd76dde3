"""A million-candidate pool campaign driven through the CLI: wall time and peak memory of each command.

    .venv/bin/python benchmarks/bench_big_pool_cli.py [--rows 1000000] [--features 20] [--measured 50] [--repeats 3]

A candidate table of ``--rows`` rows (``id`` and ``--features`` uniform
features), two objectives (maximise one, minimise the other), ``--measured``
rows observed; then ``init``, ``observe``, and two ``suggest --batch 10`` run
as separate processes, each timed by wall clock with its peak resident
memory (the child's ``ru_maxrss``). The first ``suggest`` starts from empty
compilation caches (its own cache folder, made fresh for the run); the second
(10 rows pending) still compiles the few programs pending rows add. Then a second campaign of the
same shape is created and its first ``suggest`` timed: the caches are the
user's, kept between campaigns, and its second ``suggest`` (10 rows pending)
is the warm command of a user's day. Goals: ``init`` at most 5 s, the first
``suggest`` at most 10 s, the second at most 5 s (a warm one on 1,000 rows: 2 s),
every command under 2 GiB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

CONFIG = """name = "big pool"
candidates = "candidates.csv"
initial_design = 10

[objective]
kind = "pareto"
[[objective.objectives]]
name = "strength"
direction = "maximize"
[[objective.objectives]]
name = "cost"
direction = "minimize"
"""


def write_pool(path: Path, rows: int, features: int, seed: int = 0) -> np.ndarray:
    """The candidate table; returns its features. Written with numpy in blocks (the generator is not timed)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(rows, features))
    with open(path, "w") as f:
        f.write("id," + ",".join(f"f{j:02d}" for j in range(features)) + "\n")
        for start in range(0, rows, 100_000):
            block = x[start:start + 100_000]
            ids = np.char.add("p", np.arange(start, start + block.shape[0]).astype(str))
            lines = [i + "," + ",".join(r) for i, r in zip(ids, np.char.mod("%.6f", block))]
            f.write("\n".join(lines) + "\n")
    return np.round(x, 6)


def objectives(x: np.ndarray) -> np.ndarray:
    """Two smooth objectives of the first four features that trade off."""
    strength = np.sin(3 * x[:, 0]) + x[:, 1]
    cost = x[:, 0] ** 2 + 0.5 * x[:, 2] + 0.2 * np.cos(4 * x[:, 3])
    return np.stack([strength, cost], -1)


def timed_command(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """``(wall seconds, peak resident GiB)`` of one command (its own ``ru_maxrss``); exits with its stderr on failure."""
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{log.read_text()[-2000:]}")
    return wall, usage.ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--measured", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="whole scenarios, each from empty caches")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {}
    for r in range(args.repeats):
        for label, wall, peak in scenario(args):
            runs.setdefault(label, []).append((wall, peak))
            print(f"run {r + 1}: {label}: {wall:.2f} s, peak {peak:.2f} GiB", flush=True)
    print(f"\n{args.rows:,} candidates, {args.features} features, 2 objectives, {args.measured} measured rows; "
          f"{args.repeats} runs of the whole scenario; {machine()}\n")
    print("| command | wall time, median [min, max] | peak resident memory (largest) |")
    print("| --- | --- | --- |")
    for label, values in runs.items():
        walls = [w for w, _ in values]
        print(f"| `{label}` | {statistics.median(walls):.2f} s [{min(walls):.2f}, {max(walls):.2f}] | "
              f"{max(p for _, p in values):.2f} GiB |")


def scenario(args) -> list[tuple[str, float, float]]:
    """One run of every command from a fresh folder and empty caches: ``(label, wall s, peak GiB)`` each."""
    cli = [sys.executable, "-m", "jaxopt_mat"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, JAXOPT_MAT_CACHE=str(tmp / "cache"))
        x = write_pool(tmp / "candidates.csv", args.rows, args.features)
        (tmp / "campaign.toml").write_text(CONFIG)
        rng = np.random.default_rng(1)
        picked = rng.choice(args.rows, args.measured, replace=False)
        y = objectives(x[picked])
        lines = ["id,strength,cost"] + [f"p{i},{a:.6f},{b:.6f}" for i, (a, b) in zip(picked, y)]
        (tmp / "measured.csv").write_text("\n".join(lines) + "\n")
        camp = str(tmp / "camp")
        rows = []
        for label, cmd in [
            ("init", ["init", camp, "--config", str(tmp / "campaign.toml")]),
            (f"observe ({args.measured} rows)", ["observe", camp, str(tmp / "measured.csv")]),
            ("first suggest --batch 10 (empty caches)", ["suggest", camp, "--batch", "10", "--out",
                                                        str(tmp / "b1.csv")]),
            ("second suggest --batch 10", ["suggest", camp, "--batch", "10", "--out", str(tmp / "b2.csv")]),
            # a second campaign of the same shape: what a user's next screen meets (compilation caches kept)
            ("init (a second campaign)", ["init", camp + "2", "--config", str(tmp / "campaign.toml")]),
            ("observe (a second campaign)", ["observe", camp + "2", str(tmp / "measured.csv")]),
            ("first suggest --batch 10 of a second campaign", ["suggest", camp + "2", "--batch", "10", "--out",
                                                              str(tmp / "c1.csv")]),
            # every program it needs already compiled once: the warm suggest a user meets from then on
            ("second suggest --batch 10 of a second campaign", ["suggest", camp + "2", "--batch", "10", "--out",
                                                               str(tmp / "c2.csv")]),
        ]:
            wall, peak = timed_command(cli + cmd, env, tmp / "stderr.txt")
            rows.append((label, wall, peak))
        return rows

if __name__ == "__main__":
    main()
