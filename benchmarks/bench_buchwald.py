"""A categorical closed loop on real data: Buchwald-Hartwig couplings (Olympus ``buchwald_b``), against BayBE.

    .venv/bin/python benchmarks/bench_buchwald.py [--seeds 20] [--baybe-python /path/to/env/bin/python]

The data: 792 couplings, a full factorial of four categorical inputs (aryl
halide 3, additive 22, base 3, ligand 4; the labels are SMILES) with the
measured yield of each, so any suggestion can be answered from the table.
The task: find a top-1 % yield (one of the 8 best combinations). Each seed
draws 10 distinct combinations at random as the initial design, the same for
every method, then batches of 5 until a top-1 % combination is measured (at
most ``--budget`` experiments; a seed that does not find one counts as the
budget).

- random: the remaining combinations in random order;
- jaxopt_mat one-hot: a campaign with four categorical inputs (one-hot, one
  length-scale per input), driven through ``Campaign.suggest``/``observe``:
  batch log-EI with local penalization, every combination scored;
- jaxopt_mat rdkit: the same with ``encoding = "rdkit"`` (RDKit 2-D
  descriptors of each SMILES, 4 principal components per input);
- BayBE 0.15 with its defaults (categorical parameters, one-hot; its default
  recommender after the shared initial design), run by ``--baybe-python`` in
  its own environment (this script's ``--peer`` mode), in the same run.

Reported: the number of experiments until a top-1 % yield was measured, median
[25th, 75th percentile] over seeds, and the median time of one suggestion.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "olympus_sets" / "buchwald_b"
N0, Q = 10, 5


def load(data_dir: Path):
    """The inputs (name, labels), every combination's labels ``(792, 4)`` and yields ``(792,)``."""
    cfg = json.loads((data_dir / "config.json").read_text())
    inputs = [(p["name"], list(p["options"])) for p in cfg["parameters"]]
    rows = [line.split(",") for line in (data_dir / "data.csv").read_text().splitlines() if line.strip()]
    labels = np.array([r[: len(inputs)] for r in rows], dtype=object)
    yields = np.array([float(r[len(inputs)]) for r in rows])
    return inputs, labels, yields


def initial(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n, N0, replace=False)


def experiments_until(found_rows: list[int], top: set[int], budget: int) -> int:
    """Experiments run when the first top row appeared (a batch counts whole), or ``budget``."""
    for k in range(N0, len(found_rows) + Q, Q):
        if top & set(found_rows[:k]):
            return min(k, len(found_rows))
    return budget


def run_random(seed, labels, yields, top, budget):
    rng = np.random.default_rng(seed + 10_000)
    first = list(initial(seed, len(yields)))
    rest = [i for i in rng.permutation(len(yields)) if i not in set(first)]
    return experiments_until(first + rest[: budget - N0], top, budget), []


def closed_loop(seed, inputs, labels, yields, top, budget, suggest, observe):
    """The loop both tools run: the shared initial design, then ``suggest()`` batches of ``Q`` (DataFrames of
    labels) measured from the table and given to ``observe(frame)``, until a top row is measured."""
    import pandas as pd

    names = [n for n, _ in inputs]
    index = {tuple(r): i for i, r in enumerate(labels)}

    def table(rows):
        frame = pd.DataFrame({n: [labels[i][j] for i in rows] for j, n in enumerate(names)})
        frame["yield"] = yields[rows]
        return frame

    measured = list(initial(seed, len(yields)))
    observe(table(measured))
    times = []
    while len(measured) < budget and not (top & set(measured)):
        t = time.perf_counter()
        batch = suggest()
        times.append(time.perf_counter() - t)
        rows = [index[tuple(r)] for r in batch[names].itertuples(index=False)]
        measured += rows
        observe(table(rows))
    return experiments_until(measured, top, budget), times


def run_ours(seed, inputs, labels, yields, top, budget, encoding, workdir):
    import jaxopt_mat as jm
    from jaxopt_mat.campaign import parse_config

    config = parse_config({
        "name": "buchwald", "seed": seed, "initial_design": N0,
        "inputs": [{"name": n, "kind": "categorical", "values": v, "encoding": encoding} for n, v in inputs],
        "objective": {"kind": "scalar", "name": "yield", "direction": "maximize"}})
    camp = jm.Campaign.create(Path(workdir) / f"{encoding}-{seed}", config)
    return closed_loop(seed, inputs, labels, yields, top, budget, lambda: camp.suggest(Q, method="gp"), camp.observe)


def run_baybe(seed, inputs, labels, yields, top, budget):
    """BayBE 0.15 with its defaults, after the shared initial design (``--peer`` mode, BayBE's environment)."""
    from baybe import Campaign
    from baybe.parameters import CategoricalParameter
    from baybe.searchspace import SearchSpace
    from baybe.targets import NumericalTarget

    space = SearchSpace.from_product([CategoricalParameter(name=n, values=v) for n, v in inputs])
    camp = Campaign(searchspace=space, objective=NumericalTarget(name="yield").to_objective())
    return closed_loop(seed, inputs, labels, yields, top, budget, lambda: camp.recommend(batch_size=Q),
                       camp.add_measurements)


def summary(counts, times):
    c = np.asarray(counts, float)
    q = np.percentile(c, [25, 50, 75])
    return {"experiments": counts, "median": float(q[1]), "q25": float(q[0]), "q75": float(q[2]),
            "suggest_s": float(np.median(times)) if times else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--baybe-python", default=None, help="python of an environment with BayBE 0.15")
    ap.add_argument("--peer", action="store_true", help="run BayBE only and print its results as JSON")
    ap.add_argument("--methods", default="random,onehot,rdkit")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    inputs, labels, yields = load(args.data)
    top = set(np.argsort(-yields)[: int(np.ceil(0.01 * len(yields)))].tolist())
    if args.peer:
        counts, times = [], []
        for s in range(args.first_seed, args.first_seed + args.seeds):
            n, t = run_baybe(s, inputs, labels, yields, top, args.budget)
            counts.append(n)
            times += t
            print(f"baybe seed {s}: {n} experiments", file=sys.stderr, flush=True)
        print(json.dumps(summary(counts, times)))
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for method in args.methods.split(","):
            counts, times = [], []
            for s in range(args.first_seed, args.first_seed + args.seeds):
                if method == "random":
                    n, t = run_random(s, labels, yields, top, args.budget)
                else:
                    n, t = run_ours(s, inputs, labels, yields, top, args.budget, method, workdir)
                    t = t[1:]  # the first suggestion compiles
                counts.append(n)
                times += t
                print(f"{method} seed {s}: {n} experiments", file=sys.stderr, flush=True)
            results[method] = summary(counts, times)
    if args.baybe_python:
        out = subprocess.run([args.baybe_python, __file__, "--peer", "--seeds", str(args.seeds), "--first-seed",
                              str(args.first_seed), "--budget",
                              str(args.budget), "--data", str(args.data)], capture_output=True, text=True, check=True)
        results["baybe"] = json.loads(out.stdout.strip().splitlines()[-1])
    for name, r in results.items():
        t = f"{r['suggest_s']:.3f} s" if r["suggest_s"] is not None else "-"
        print(f"{name:8s} {r['median']:6.1f} [{r['q25']:.1f}, {r['q75']:.1f}] experiments; suggestion {t}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
