"""Continuous two-objective suite, side by side with BoTorch: ZDT1-3, DTLZ2 (d = 6) and Branin-Currin.

    /tmp/peer/bin/python benchmarks/bench_suite_pareto.py [--seeds 5] [--problems ZDT1,...] [--peer-results FILE]

(any environment with jaxopt_mat and BoTorch 0.18; BoTorch is not a dependency of the package; without
it only jaxopt_mat's and random's figures are printed).

Both objectives are minimised, without noise. Each seed: the same Latin
hypercube of 2·(d + 1) points for both loops, then 8 batches of 5.

- jaxopt_mat: a :class:`jaxopt_mat.Campaign` with ``kind = "pareto"``, the
  problem's reference point (``reference``, as BoTorch gets it) and otherwise
  the package's defaults, in process.
- BoTorch 0.18: ``SingleTaskGP`` per objective (inputs in the unit cube,
  outcomes standardised), ``qLogNoisyExpectedHypervolumeImprovement`` with the
  problem's reference point, ``optimize_acqf`` with 10 restarts and 512 raw
  samples, the batch built one point at a time (``sequential=True``, as in
  BoTorch's own multi-objective tutorial).
- random: uniform points.

Figure of merit: the fraction of the true front's hypervolume (reference
points as in BoTorch's test problems) the evaluated points reach, median
[25th, 75th percentile]; win/loss as in ``bench_suite_scalar.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.design import latin_hypercube  # noqa: E402
from jaxopt_mat.pareto import hypervolume  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402
from suite_common import PeerRuns, peer_file, summary_line, table_row  # noqa: E402

ROUNDS, Q = 8, 5


def _zdt(x, h):
    f1 = x[:, 0]
    g = 1 + 9 * np.mean(x[:, 1:], axis=1)
    return np.stack([f1, g * h(f1 / g, f1)], -1)


def zdt1(x):
    return _zdt(x, lambda r, f1: 1 - np.sqrt(r))


def zdt2(x):
    return _zdt(x, lambda r, f1: 1 - r ** 2)


def zdt3(x):
    """Zitzler, Deb & Thiele's ZDT3 (BoTorch's drops the factor g from the second objective: the same front)."""
    return _zdt(x, lambda r, f1: 1 - np.sqrt(r) - r * np.sin(10 * np.pi * f1))


def dtlz2(x):
    g = np.sum((x[:, 1:] - 0.5) ** 2, axis=1)
    a = 0.5 * np.pi * x[:, 0]
    return np.stack([(1 + g) * np.cos(a), (1 + g) * np.sin(a)], -1)


def branin_currin(x):
    u, v = 15 * x[:, 0] - 5, 15 * x[:, 1]
    branin = (v - 5.1 / (4 * np.pi ** 2) * u ** 2 + 5 / np.pi * u - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(u) + 10
    a, b = x[:, 0], x[:, 1]
    currin = ((1 - np.exp(-1 / (2 * np.where(b > 0, b, 1e-12))))
              * (2300 * a ** 3 + 1900 * a ** 2 + 2092 * a + 60) / (100 * a ** 3 + 500 * a ** 2 + 4 * a + 20))
    return np.stack([branin, currin], -1)


@dataclass(frozen=True)
class Problem:
    name: str
    fn: object
    d: int
    ref: np.ndarray  # in the minimised objectives

    def front(self) -> np.ndarray:
        """Points on (or, for Branin-Currin, densely around) the true front, minimised objectives."""
        if self.fn is branin_currin:
            g = np.linspace(0, 1, 3001)
            x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        else:
            x = np.full((20001, self.d), 0.0 if self.fn is not dtlz2 else 0.5)
            x[:, 0] = np.linspace(0, 1, 20001)
        y = self.fn(x)
        y = y[np.lexsort((y[:, 1], y[:, 0]))]  # two minimised objectives: sorted by the first, a point is
        keep = y[:, 1] < np.minimum.accumulate(np.concatenate([[np.inf], y[:-1, 1]]))  # kept if it beats all before
        return y[keep]


PROBLEMS = [Problem("ZDT1", zdt1, 6, np.array([11.0, 11.0])), Problem("ZDT2", zdt2, 6, np.array([11.0, 11.0])),
            Problem("ZDT3", zdt3, 6, np.array([11.0, 11.0])), Problem("DTLZ2", dtlz2, 6, np.array([1.1, 1.1])),
            Problem("Branin-Currin", branin_currin, 2, np.array([18.0, 6.0]))]


def hv(p: Problem, y) -> float:
    return float(hypervolume(jnp.asarray(-np.asarray(y)), jnp.asarray(-p.ref)))


def start(p: Problem, seed: int) -> np.ndarray:
    return np.asarray(latin_hypercube(jm.SearchSpace(np.zeros(p.d), np.ones(p.d)), 2 * (p.d + 1), seed=seed))


def ours(p: Problem, seed: int, workdir: Path) -> tuple[np.ndarray, float]:
    cols = [f"x{i + 1}" for i in range(p.d)]
    spec = {"name": "pareto suite", "seed": seed, "initial_design": 2 * (p.d + 1),
            "inputs": [{"name": n, "low": 0.0, "high": 1.0} for n in cols],
            "objective": {"kind": "pareto", "reference": p.ref.tolist(),  # the reference BoTorch is given too
                          "objectives": [{"name": "f1", "direction": "minimize"}, {"name": "f2", "direction": "minimize"}]}}
    t = time.perf_counter()
    camp = jm.Campaign.create(workdir / f"{p.name}-{seed}", spec)
    x = start(p, seed)
    for r in range(ROUNDS + 1):
        frame = pd.DataFrame(x, columns=cols)
        frame["f1"], frame["f2"] = p.fn(x).T
        camp.observe(frame, again=True)
        if r == ROUNDS:
            break
        x = camp.suggest(Q)[cols].to_numpy()
    return camp.snapshot().x, time.perf_counter() - t


def theirs(p: Problem, seed: int) -> tuple[np.ndarray, float]:
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import SumMarginalLogLikelihood

    torch.manual_seed(seed)
    t = time.perf_counter()
    x = start(p, seed)
    for _ in range(ROUNDS):
        X, Y = torch.tensor(x), torch.tensor(-p.fn(x))  # BoTorch maximises
        model = ModelListGP(*[SingleTaskGP(X, Y[:, j:j + 1], outcome_transform=Standardize(1)) for j in range(2)])
        fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedHypervolumeImprovement(model, ref_point=(-p.ref).tolist(), X_baseline=X,
                                                      prune_baseline=True)
        cand, _ = optimize_acqf(acq, bounds=torch.stack([torch.zeros(p.d), torch.ones(p.d)]).double(), q=Q,
                                num_restarts=10, raw_samples=512, sequential=True)
        x = np.vstack([x, cand.detach().numpy()])
    return x, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--problems", default="", help="comma-separated names (default: all)")
    ap.add_argument("--peer-results", type=Path, default=peer_file("pareto"),
                    help="JSON file of BoTorch's runs: read the runs it holds, add the ones it lacks "
                         "(default: the runs kept in benchmarks/peer_runs/)")
    args = ap.parse_args()
    peer = PeerRuns(args.peer_results)
    chosen = [p for p in PROBLEMS if not args.problems or p.name in args.problems.split(",")]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    summary, keys = [], []
    print(f"Machine: {machine()}.\n")
    print(f"2·(d + 1) Latin-hypercube points, then {ROUNDS} x {Q}; seeds {seeds.start}-{seeds.stop - 1}. Fraction "
          "of the true front's hypervolume, median [25th, 75th]; wall time per loop.\n")
    print("| problem | jaxopt_mat | BoTorch qLogNEHVI | random | time: ours | time: BoTorch | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for p in chosen:
            true_hv = hv(p, p.front())
            f_o, t_o, f_t, t_t, f_r = [], [], [], [], []
            for s in seeds:
                x, t = ours(p, s, Path(tmp))
                f_o.append(hv(p, p.fn(x)) / true_hv)
                t_o.append(t)
                rnd = np.vstack([start(p, s), np.random.default_rng(10_000 + s).uniform(size=(ROUNDS * Q, p.d))])
                f_r.append(hv(p, p.fn(rnd)) / true_hv)
                key = f"{p.name}/{s}/{ROUNDS}x{Q}"
                keys.append(key)

                def run_theirs():
                    xt, tt = theirs(p, s)
                    return {"fraction": hv(p, p.fn(xt)) / true_hv, "time": tt}

                got = peer.get(key, run_theirs)
                if got:
                    f_t.append(got["fraction"])
                    t_t.append(got["time"])
                print(f"  {key}: ours {f_o[-1]:.3f} ({t:.1f} s)"
                      + (f", BoTorch {f_t[-1]:.3f} ({t_t[-1]:.1f} s)" if got else "")
                      + f", random {f_r[-1]:.3f}", file=sys.stderr, flush=True)
            row, v = table_row(f"{p.name} (d = {p.d})", f_o, f_t, f_r, t_o, t_t, digits=".3f", higher_is_better=True)
            summary.append(v)
            print(row, flush=True)
    if summary_line(summary):
        print("\n" + summary_line(summary))
    print(f"BoTorch's runs: {peer.provenance(keys)}.")


if __name__ == "__main__":
    main()
