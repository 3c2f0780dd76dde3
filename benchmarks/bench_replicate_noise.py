"""Replicate-aware noise on real replicated data: cross-validated log predictive density, olympus_agnp.

    .venv/bin/python benchmarks/bench_replicate_noise.py [--folds 5] [--repeats 3]

Data: ``../shared/data/olympus_agnp/raw_data.csv``, 3,295 droplet
measurements of 164 conditions (4 to 48 replicates each, with spreads that
differ by a factor 70). Each condition is its median (the loop's rule). Folds
split the conditions (``--repeats`` random splits into ``--folds``); on each
training part two GPs are fitted:

- one noise level: every median equally noisy (the model before this change);
- replicate-aware: each median's noise variance is the common level times
  :func:`jaxopt_mat.data.replicate_noise_variance` (its replicate count and its
  spread, shrunk towards the pooled spread); the common level is still learned.

The second table keeps 1, 2, 3, 5 or 10 replicates of each condition (drawn
at random), as a campaign that measured some conditions once and others ten
times would hold them.

Reported: the mean log predictive density of the held-out medians (each
under its model's predictive distribution, observation noise included: for
the replicate-aware model, with the held-out condition's own replicate
noise), and the RMSE
of the predictive means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from scipy.stats import norm

jax.config.update("jax_enable_x64", True)

from jaxopt_mat.data import combine_replicates, replicate_noise_variance  # noqa: E402
from jaxopt_mat.surrogates.gp import fit_gp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "olympus_agnp" / "raw_data.csv"


def load(subsample: int | None = None):
    """The conditions and their replicate noise; ``subsample``: a seed to keep 1, 2, 3, 5 or 10 replicates each."""
    raw = pd.read_csv(DATA)
    x, y = raw.iloc[:, :5].to_numpy(float), raw.iloc[:, 5].to_numpy(float)
    if subsample is not None:
        rng = np.random.default_rng(subsample)
        index = combine_replicates(x, y).index
        keep = np.concatenate([rng.permutation(np.flatnonzero(index == g))[:rng.choice([1, 2, 3, 5, 10])]
                               for g in range(index.max() + 1)])
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    cond = combine_replicates(x, y)
    return cond, replicate_noise_variance(cond, y)


def fold_scores(cond, known, train, test, key, aware: bool):
    low, high = cond.x.min(axis=0), cond.x.max(axis=0)
    model = fit_gp(cond.x[train], cond.y[train], key=key, low=low, high=high,
                   noise_variance=known[train] if aware else None)
    post = model.predict(cond.x[test])
    noise = float(model.noise_std) ** 2 + (known[test] if aware else 0.0)
    sd = np.sqrt(np.asarray(post.var) + noise)
    mean = np.asarray(post.mean)
    return norm.logpdf(cond.y[test], mean, sd), (cond.y[test] - mean) ** 2


def cross_validate(cond, known, folds: int, repeats: int):
    """Per model (False: one noise level, True: replicate-aware): held-out log densities, squared errors, per-split means."""
    k = cond.x.shape[0]
    results = {False: ([], [], []), True: ([], [], [])}
    for r in range(repeats):
        for f, test in enumerate(np.array_split(np.random.default_rng(r).permutation(k), folds)):
            train = np.setdiff1d(np.arange(k), test)
            for aware in (False, True):
                lpd, se = fold_scores(cond, known, train, test, jax.random.key(100 * r + f), aware)
                results[aware][0].extend(lpd)
                results[aware][1].extend(se)
                results[aware][2].append(float(np.mean(lpd)))
    return results


def report(title: str, cond, results) -> None:
    print(f"### {title}\n")
    print(f"{cond.x.shape[0]} conditions, {int(cond.counts.min())}-{int(cond.counts.max())} replicates (median "
          f"{int(np.median(cond.counts))}).\n")
    print("| model | mean log predictive density of held-out medians | splits better | RMSE |")
    print("| --- | --- | --- | --- |")
    wins = sum(a > b for a, b in zip(results[True][2], results[False][2]))
    for aware, label in ((False, "one noise level"), (True, "replicate-aware noise")):
        lpd, se, splits = results[aware]
        better = f"{wins} of {len(splits)}" if aware else "-"
        print(f"| {label} | {np.mean(lpd):.3f} | {better} | {np.sqrt(np.mean(se)):.4f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"Machine: {machine()}; {args.repeats} x {args.folds}-fold cross-validation by condition.\n")
    cond, known = load()
    report("All replicates", cond, cross_validate(cond, known, args.folds, args.repeats))
    cond, known = load(subsample=0)
    report("1, 2, 3, 5 or 10 replicates per condition (drawn at random)", cond,
           cross_validate(cond, known, args.folds, args.repeats))


if __name__ == "__main__":
    main()
