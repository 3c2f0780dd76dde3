"""Scalar suite, side by side with BoTorch: six standard test functions and one with a linear constraint, noisy.

    /tmp/peer/bin/python benchmarks/bench_suite_scalar.py [--seeds 5] [--batch 1|8] [--peer-results FILE]

(any environment with jaxopt_mat and BoTorch 0.18; BoTorch is not a dependency of the package; without
it only jaxopt_mat's and random's figures are printed).

Each problem is minimised over its usual box, every measurement carrying
Gaussian noise of 1 % of the gap between a good random point (the 5th
percentile of 4,096 uniform points) and the optimum: the scale the search
works at once it has left the starting points. Both loops start from the same Latin
hypercube of 2·d points per seed and get the same budget: 40 more
evaluations one at a time (``--batch 1``) or 5 batches of 8 (``--batch 8``).

- jaxopt_mat: a :class:`jaxopt_mat.Campaign` with the package's defaults
  (``suggest`` → measure → ``observe``, in process).
- BoTorch 0.18: ``SingleTaskGP`` (inputs scaled to the unit cube, outcome
  standardised, noise learned), ``qLogNoisyExpectedImprovement`` over the
  evaluated points, ``optimize_acqf`` with 10 restarts and 512 raw samples
  (the linear constraint passed as ``inequality_constraints``), refitted every
  batch.
- random: uniform points in the box (the constrained problem: rejection).

The figure of merit is the simple regret of the noise-free function at the
best point evaluated (``min f(x_i) - f*``), median [25th, 75th percentile]
over seeds; a problem is a win or a loss when the medians differ by more than
a quarter of the two interquartile ranges' mean, else a tie. Wall time: a
whole loop (fits and suggestions; the measurements are instant).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pandas as pd

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.design import latin_hypercube  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402
from suite_common import PeerRuns, peer_file, summary_line, table_row  # noqa: E402

_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                  [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def ackley(x):
    d = x.shape[-1]
    return (-20.0 * np.exp(-0.2 * np.sqrt(np.sum(x ** 2, -1) / d)) - np.exp(np.sum(np.cos(2 * np.pi * x), -1) / d)
            + 20.0 + math.e)


def hartmann6(x):
    inner = np.sum(_H6_A * (x[..., None, :] - _H6_P) ** 2, -1)
    return -np.sum(_H6_ALPHA * np.exp(-inner), -1)


def levy(x):
    w = 1.0 + (x - 1.0) / 4.0
    head = np.sin(np.pi * w[..., 0]) ** 2
    mid = np.sum((w[..., :-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[..., :-1] + 1) ** 2), -1)
    tail = (w[..., -1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[..., -1]) ** 2)
    return head + mid + tail


def michalewicz(x):
    i = np.arange(1, x.shape[-1] + 1)
    return -np.sum(np.sin(x) * np.sin(i * x ** 2 / np.pi) ** 20, -1)


def rosenbrock(x):
    return np.sum(100.0 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (x[..., :-1] - 1) ** 2, -1)


def styblinski_tang(x):
    return 0.5 * np.sum(x ** 4 - 16 * x ** 2 + 5 * x, -1)


@dataclass(frozen=True)
class Problem:
    name: str
    fn: object
    low: np.ndarray
    high: np.ndarray
    minimum: float | None  # None: found numerically (the constrained problem)
    constraint: tuple[np.ndarray, float] | None = None  # a . x <= b

    @property
    def d(self) -> int:
        return self.low.size

    def feasible(self, x) -> np.ndarray:
        if self.constraint is None:
            return np.ones(x.shape[0], bool)
        a, b = self.constraint
        return x @ a <= b + 1e-9


def _box(d, lo, hi):
    return np.full(d, float(lo)), np.full(d, float(hi))


PROBLEMS = [
    Problem("Ackley-5", ackley, *_box(5, -32.768, 32.768), 0.0),
    Problem("Hartmann-6", hartmann6, *_box(6, 0, 1), -3.32237),
    Problem("Levy-4", levy, *_box(4, -10, 10), 0.0),
    Problem("Michalewicz-5", michalewicz, *_box(5, 0, math.pi), -4.687658),
    Problem("Rosenbrock-4", rosenbrock, *_box(4, -5, 10), 0.0),
    Problem("Styblinski-Tang-5", styblinski_tang, *_box(5, -5, 5), -39.16616570377142 * 5),
    Problem("Hartmann-6, x1 + ... + x6 <= 1.5", hartmann6, *_box(6, 0, 1), None, (np.ones(6), 1.5)),
]


def constrained_minimum(p: Problem, seed: int = 0) -> float:
    """The constrained problem's minimum: SLSQP from the 40 best feasible points of a large uniform sample."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    x = p.low + (p.high - p.low) * rng.uniform(size=(200_000, p.d))
    x = x[p.feasible(x)]
    best = float(np.min(p.fn(x)))
    a, b = p.constraint
    for s in x[np.argsort(p.fn(x))[:40]]:
        r = minimize(lambda z: p.fn(z), s, method="SLSQP", bounds=list(zip(p.low, p.high)),
                     constraints=[{"type": "ineq", "fun": lambda z: b - a @ z}])
        if r.success and a @ r.x <= b + 1e-9:
            best = min(best, float(r.fun))
    return best


def noise_std(p: Problem, best: float) -> float:
    """1 % of the gap between a good random point (5th percentile of 4,096 uniform points) and the optimum."""
    x = p.low + (p.high - p.low) * np.random.default_rng(12345).uniform(size=(4096, p.d))
    return 0.01 * float(np.percentile(p.fn(x), 5) - best)


def names(p: Problem) -> list[str]:
    return [f"x{i + 1}" for i in range(p.d)]


def start(p: Problem, seed: int) -> np.ndarray:
    A, b = (None, None) if p.constraint is None else (p.constraint[0][None], np.array([p.constraint[1]]))
    space = jm.SearchSpace(p.low, p.high, A=A, b=b)
    return np.asarray(latin_hypercube(space, 2 * p.d, seed=seed))


def measure(p: Problem, x, rng, sd: float) -> np.ndarray:
    return p.fn(x) + sd * rng.standard_normal(x.shape[0])


def ours(p: Problem, sd: float, seed: int, batch: int, rounds: int, workdir: Path) -> tuple[np.ndarray, float]:
    cols = names(p)
    spec = {"name": "suite", "seed": seed, "initial_design": 2 * p.d,
            "inputs": [{"name": n, "low": float(lo), "high": float(hi)} for n, lo, hi in zip(cols, p.low, p.high)],
            "objective": {"name": "y", "direction": "minimize"}}
    if p.constraint is not None:
        a, b = p.constraint
        spec["constraints"] = [{"expr": " + ".join(f"{v:g} * {n}" for v, n in zip(a, cols)) + f" <= {b:g}"}]
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    camp = jm.Campaign.create(workdir / f"{PROBLEMS.index(p)}-{batch}-{seed}", spec)
    x = start(p, seed)
    for _ in range(rounds + 1):
        frame = pd.DataFrame(x, columns=cols)
        frame["y"] = measure(p, x, rng, sd)
        camp.observe(frame, again=True)
        if len(camp.snapshot().x) >= 2 * p.d + rounds * batch:
            break
        x = camp.suggest(batch)[cols].to_numpy()
    return camp.snapshot().x, time.perf_counter() - t


def theirs(p: Problem, sd: float, seed: int, batch: int, rounds: int) -> tuple[np.ndarray, float]:
    import torch
    from botorch.acquisition import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lo, span = p.low, p.high - p.low
    ineq = None
    if p.constraint is not None:  # a . x <= b in the unit cube: sum(-a_i s_i u_i) >= -(b - a . lo)
        a, b = p.constraint
        ineq = [(torch.arange(p.d), torch.tensor(-a * span), float(-(b - a @ lo)))]
    t = time.perf_counter()
    x = start(p, seed)
    y = measure(p, x, rng, sd)
    for _ in range(rounds):
        U = torch.tensor((x - lo) / span)
        Y = torch.tensor(-y[:, None])  # BoTorch maximises
        model = SingleTaskGP(U, Y, outcome_transform=Standardize(1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedImprovement(model, X_baseline=U, prune_baseline=True)
        cand, _ = optimize_acqf(acq, bounds=torch.stack([torch.zeros(p.d), torch.ones(p.d)]).double(), q=batch,
                                num_restarts=10, raw_samples=512, inequality_constraints=ineq)
        xn = lo + cand.detach().numpy() * span
        x, y = np.vstack([x, xn]), np.concatenate([y, measure(p, xn, rng, sd)])
    return x, time.perf_counter() - t


def random_run(p: Problem, seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(10_000 + seed)
    x = np.empty((0, p.d))
    while len(x) < n:
        z = p.low + (p.high - p.low) * rng.uniform(size=(4 * n, p.d))
        x = np.vstack([x, z[p.feasible(z)]])
    return np.vstack([start(p, seed), x[: n - 2 * p.d]])


def regret(p: Problem, x, best: float) -> float:
    return float(np.min(p.fn(x[p.feasible(x)])) - best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1, choices=(1, 8))
    ap.add_argument("--problems", default="", help="comma-separated name prefixes (default: all)")
    ap.add_argument("--peer-results", type=Path, default=peer_file("scalar"),
                    help="JSON file of BoTorch's runs: read the runs it holds, add the ones it lacks "
                         "(default: the runs kept in benchmarks/peer_runs/)")
    args = ap.parse_args()
    rounds = 40 if args.batch == 1 else 5
    peer = PeerRuns(args.peer_results)
    chosen = [p for p in PROBLEMS if not args.problems or any(p.name.startswith(s) for s in args.problems.split(","))]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    summary, keys = [], []
    print(f"Machine: {machine()}.\n")
    print(f"Batch {args.batch}: 2·d Latin-hypercube points, then {rounds} x {args.batch}; seeds {seeds.start}-"
          f"{seeds.stop - 1}. Simple regret of the noise-free function, median [25th, 75th]; wall time per loop.\n")
    print("| problem | jaxopt_mat | BoTorch qLogNEI | random | time: ours | time: BoTorch | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for p in chosen:
            best = p.minimum if p.minimum is not None else constrained_minimum(p)
            sd = noise_std(p, best)
            r_o, t_o, r_t, t_t, r_r = [], [], [], [], []
            for s in seeds:
                x, t = ours(p, sd, s, args.batch, rounds, Path(tmp))
                r_o.append(regret(p, x, best))
                t_o.append(t)
                r_r.append(regret(p, random_run(p, s, 2 * p.d + rounds * args.batch), best))
                def run_theirs():
                    xt, tt = theirs(p, sd, s, args.batch, rounds)
                    return {"regret": regret(p, xt, best), "time": tt}

                key = f"{p.name}/{args.batch}x{rounds}/{s}"
                keys.append(key)
                got = peer.get(key, run_theirs)
                if got:
                    r_t.append(got["regret"])
                    t_t.append(got["time"])
                print(f"  {p.name} seed {s}: ours {r_o[-1]:.4g} ({t:.1f} s)"
                      + (f", BoTorch {r_t[-1]:.4g} ({t_t[-1]:.1f} s)" if got else "")
                      + f", random {r_r[-1]:.4g}", file=sys.stderr, flush=True)
            row, v = table_row(p.name, r_o, r_t, r_r, t_o, t_t, digits=".3g", higher_is_better=False)
            summary.append(v)
            print(row, flush=True)
    if summary_line(summary):
        print(f"\nBatch {args.batch}: {summary_line(summary)}")
    print(f"BoTorch's runs: {peer.provenance(keys)}.")


if __name__ == "__main__":
    main()
