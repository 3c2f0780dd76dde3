"""A mixed problem against BoTorch's mixed GP: one categorical input choosing between shifted Hartmann-6 functions.

    /tmp/peer/bin/python benchmarks/bench_mixed.py [--seeds 10] [--batches 6] [--section loop|maximizer|all]

(any environment with jaxopt_mat and BoTorch 0.18; BoTorch is not a dependency of the package).

``--section loop``. The problem: ``f(x, c) = -hartmann6((x + s_c) mod 1) + o_c``
for ``x`` in ``[0, 1]^6`` and a label ``c`` among 5, each with its own shift
``s_c`` (the optimum moves) and offset ``o_c`` in ``[0, 0.4]`` (one label is
best, the others are traps). Both loops start from the same 10 points (a
Latin hypercube, labels drawn at random), then ``--batches`` batches of 5.

- jaxopt_mat: a campaign with six continuous inputs and a categorical one,
  through ``Campaign.suggest``/``observe``: one-hot kernel block, batch log-EI
  with local penalization, every label combination optimised in one call.
- BoTorch 0.18: ``MixedSingleTaskGP`` (its categorical kernel) with
  ``qLogNoisyExpectedImprovement``, ``optimize_acqf_mixed`` over the five
  labels (10 restarts, 512 raw samples each).

Reported: simple regret (the best value minus the best found), median
[25th, 75th percentile] over seeds, and the median time per batch.

``--section enumerate``: a batch of 5 over a finite space of 1,000,000 label
combinations (four categorical inputs of 20, 20, 50 and 50 labels), every
combination scored at every pick, from a GP on 100 points.

``--section maximizer``: the vmapped mixed maximiser (all five labels at once)
against the same maximiser run label by label, on a fitted GP's log EI:
equal best value, and the speed ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.design import latin_hypercube  # noqa: E402
from jaxopt_mat.test_functions import hartmann6  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import have_botorch, machine, peer_table  # noqa: E402

LABELS = ("A", "B", "C", "D", "E")
SHIFTS = np.random.default_rng(2026).uniform(size=(5, 6))
OFFSETS = np.array([0.0, 0.1, 0.4, 0.2, 0.3])
NAMES = [f"x{i}" for i in range(1, 7)]
N0, Q = 10, 5
BEST = 3.32237 + OFFSETS.max()


def f(x, c):
    x, c = np.asarray(x, float), np.asarray(c, int)
    return -np.asarray(hartmann6(jnp.asarray((x + SHIFTS[c]) % 1.0))) + OFFSETS[c]


def start(seed: int):
    x = np.asarray(latin_hypercube(jm.SearchSpace(np.zeros(6), np.ones(6)), N0, seed=seed))
    return x, np.random.default_rng(seed).integers(0, 5, N0)


def ours(seed: int, batches: int, workdir: Path):
    camp = jm.Campaign.create(workdir / f"s{seed}", {
        "name": "mixed", "seed": seed, "initial_design": N0,
        "inputs": [{"name": n, "low": 0.0, "high": 1.0} for n in NAMES]
                  + [{"name": "label", "kind": "categorical", "values": list(LABELS)}],
        "objective": {"name": "y", "direction": "maximize"}})

    def table(x, c):
        frame = pd.DataFrame(x, columns=NAMES)
        frame["label"] = [LABELS[i] for i in c]
        frame["y"] = f(x, c)
        return frame

    camp.observe(table(*start(seed)))
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        batch = camp.suggest(Q, method="gp")
        times.append(time.perf_counter() - t)
        c = np.array([LABELS.index(v) for v in batch["label"]])
        camp.observe(table(batch[NAMES].to_numpy(), c), again=True)
    return float(camp.snapshot().y.max()), times


def theirs(seed: int, batches: int):
    import torch
    from botorch.acquisition import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf_mixed
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    x0, c0 = start(seed)
    X = torch.tensor(np.column_stack([x0, c0]).astype(float))
    bounds = torch.stack([torch.zeros(7), torch.tensor([1.0] * 6 + [4.0])]).double()
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        Y = torch.tensor(f(X[:, :6].numpy(), X[:, 6].numpy().round().astype(int)))[:, None]
        model = MixedSingleTaskGP(X, Y, cat_dims=[6], outcome_transform=Standardize(1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedImprovement(model, X_baseline=X)
        cand, _ = optimize_acqf_mixed(acq, bounds=bounds, q=Q, num_restarts=10, raw_samples=512,
                                      fixed_features_list=[{6: float(i)} for i in range(5)])
        times.append(time.perf_counter() - t)
        X = torch.cat([X, cand.detach()])
    Y = f(X[:, :6].numpy(), X[:, 6].numpy().round().astype(int))
    return float(Y.max()), times


def loop(args) -> None:
    rows = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, fn in [("jaxopt_mat", lambda s: ours(s, args.batches, Path(workdir)))] + (
                [("BoTorch", lambda s: theirs(s, args.batches))] if have_botorch() else []):
            regrets, times = [], []
            for s in range(args.seeds):
                best, t = fn(s)
                regrets.append(BEST - best)
                times += t[1:] if name == "jaxopt_mat" else t  # our first batch compiles
                print(f"{name} seed {s}: regret {BEST - best:.4f}", file=sys.stderr, flush=True)
            rows[name] = (np.array(regrets), float(np.median(times)))
    print(f"\n{machine()}; {args.seeds} seeds, {N0} + {args.batches} x {Q}")
    peer_table(rows, "regret", higher_is_better=False)


def maximizer(args) -> None:
    from jaxopt_mat.input_kinds import InputKind
    from jaxopt_mat.optimize import maximize_unit

    kinds = (jm.InputKind(),) * 6 + (InputKind("categorical", labels=LABELS),)
    space = jm.SearchSpace(np.zeros(7), np.array([1.0] * 6 + [4.0]), kinds=kinds)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(size=(40, 6)), rng.integers(0, 5, 40)]).astype(float)
    y = f(x[:, :6], x[:, 6].astype(int))
    model = jm.fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high, features=space.features)
    best = y.max()

    def log_ei(m, u, s):
        post = m.predict(s.from_unit(u))
        return jm.log_expected_improvement(post.mean, post.std, best)

    opts = dict(n_starts=40, n_raw=2560, n_steps=args.steps, learning_rate=0.03)
    at_once = jax.jit(lambda m, s, k: maximize_unit(lambda u: log_ei(m, u, s), s, k, **opts)[1])
    per_opts = dict(n_starts=8, n_raw=512, n_steps=args.steps, learning_rate=0.03)
    one = jax.jit(lambda m, s, k: maximize_unit(lambda u: log_ei(m, u, s), s, k, **per_opts)[1])
    fixed = [space.with_kinds(kinds[:6] + (InputKind("categorical", labels=LABELS, fixed=float(i)),))
             for i in range(5)]

    def each(k):
        return max(float(one(model, s, k)) for s in fixed)

    key = jax.random.key(1)
    v_all, v_each = float(at_once(model, space, key)), each(key)  # warm-up (compiles)
    t_all, t_each = [], []
    for r in range(args.repeats):
        k = jax.random.key(10 + r)
        t = time.perf_counter()
        jax.block_until_ready(at_once(model, space, k))
        t_all.append(time.perf_counter() - t)
        t = time.perf_counter()
        each(k)
        t_each.append(time.perf_counter() - t)
    print(f"\n{machine()}; log EI of a GP on 40 points, 6 continuous inputs + 5 labels, 8 starts per label, {args.steps} steps")
    print("| maximiser | best log EI | median time |\n| --- | --- | --- |")
    print(f"| all labels at once (one compiled call) | {v_all:.6f} | {np.median(t_all) * 1e3:.1f} ms |")
    print(f"| label by label (5 calls) | {v_each:.6f} | {np.median(t_each) * 1e3:.1f} ms |")
    print(f"ratio {np.median(t_each) / np.median(t_all):.2f}x; value difference {v_all - v_each:.2e}")


def enumerate_section(args) -> None:
    from jaxopt_mat.input_kinds import InputKind

    sizes = (20, 20, 50, 50)
    kinds = [InputKind("categorical", labels=tuple(f"l{i}" for i in range(k))) for k in sizes]
    space = jm.SearchSpace([0] * 4, [k - 1 for k in sizes], kinds=kinds)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, k, 100) for k in sizes]).astype(float)
    y = rng.normal(size=100)
    model = jm.fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high, features=space.features)
    times = []
    for r in range(args.repeats // 2 + 1):  # the first call compiles
        t = time.perf_counter()
        jax.block_until_ready(jm.local_penalization_batch(model, space, 5, key=jax.random.key(r), best=y.max()).x)
        times.append(time.perf_counter() - t)
    print(f"\n{machine()}; batch of 5 over {int(np.prod(sizes)):,} combinations, GP on 100 points: "
          f"median {np.median(times[1:]):.2f} s of {len(times) - 1} (first call, compiling: {times[0]:.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200, help="maximiser: gradient steps per start")
    ap.add_argument("--section", choices=["loop", "maximizer", "enumerate", "all"], default="all")
    args = ap.parse_args()
    if args.section in ("maximizer", "all"):
        maximizer(args)
    if args.section in ("enumerate", "all"):
        enumerate_section(args)
    if args.section in ("loop", "all"):
        loop(args)


if __name__ == "__main__":
    main()
