"""Pool suite, side by side with BoTorch: PI1070 polymers, six property pairs of spread predictability.

    /tmp/peer/bin/python benchmarks/bench_suite_pool.py [--data ../shared/data] [--seeds 5] [--peer-results FILE]

(any environment with jaxopt_mat and BoTorch 0.18; BoTorch is not a dependency of the package; without
it only jaxopt_mat's and random's figures are printed).

Each pair is a two-objective screen of the RadonPy PI1070 table: the pool is
every polymer with both properties and all 17 monomer descriptors (the
features; standardised), the "simulation" reads the table. Each seed: the same
20 random polymers for every loop, then 10 batches of 10.

- jaxopt_mat: a pool :class:`jaxopt_mat.Campaign` (``candidates`` table,
  ``kind = "pareto"``) with the package's defaults, in process.
- BoTorch 0.18, its standard discrete loop: ``SingleTaskGP`` per objective
  (features scaled to the unit cube over the pool, outcomes standardised),
  ``qLogNoisyExpectedHypervolumeImprovement`` with the reference point
  ``infer_reference_point`` gives from the measured outcomes, and
  ``optimize_acqf_discrete`` over the polymers not yet measured.
- random: 100 more polymers drawn uniformly.

Figure of merit: the fraction of the whole table's front hypervolume the
measured polymers reach (reference point: the table's nadir minus 10 % of
each range), median [25th, 75th percentile] over seeds; win/loss when the
medians differ by more than a quarter of the mean interquartile range. The
cross-validated R² of each property (GP, 120 random polymers, mean of 3
splits) says how predictable it is.
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
from jaxopt_mat.pareto import default_reference, hypervolume  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402
from suite_common import PeerRuns, peer_file, summary_line, table_row  # noqa: E402

# The 17 monomer descriptors of the table.
FEATURES = ["mol_weight_monomer", "atomic_weight_mean", "vdw_volume_monomer", "qm_total_energy_monomer",
            "qm_homo_monomer", "qm_lumo_monomer", "qm_dipole_monomer", "qm_dipole_x_monomer", "qm_dipole_y_monomer",
            "qm_dipole_z_monomer", "qm_polarizability_monomer", "qm_polarizability_xx_monomer",
            "qm_polarizability_yy_monomer", "qm_polarizability_zz_monomer", "qm_polarizability_xy_monomer",
            "qm_polarizability_xz_monomer", "qm_polarizability_yz_monomer"]

# (property, direction) pairs; the R² of each property with 120 polymers is printed with the table.
PAIRS = [
    (("refractive_index", "maximize"), ("density", "minimize")),
    (("thermal_conductivity", "maximize"), ("density", "minimize")),
    (("Cp", "maximize"), ("compressibility", "minimize")),
    (("static_dielectric_const", "maximize"), ("thermal_conductivity", "maximize")),
    (("bulk_modulus", "maximize"), ("density", "minimize")),
    (("self-diffusion", "maximize"), ("Cp", "maximize")),
]
N0, ROUNDS, Q = 20, 10, 10


def load_pair(data: Path, pair) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features ``(n, 17)`` and the two properties signed for maximisation ``(n, 2)``."""
    table = pd.read_csv(data / "radonpy" / "PI1070.csv")
    cols = [name for name, _ in pair]
    table = table.dropna(subset=FEATURES + cols)
    x = table[FEATURES].to_numpy(float)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    y = np.stack([table[n].to_numpy(float) * (1 if d == "maximize" else -1) for n, d in pair], -1)
    return x, y


def cv_r2(x, y, splits: int = 3) -> float:
    """Cross-validated R² of a GP fitted to 120 random rows, predicting the rest (mean over splits)."""
    r2 = []
    for s in range(splits):
        idx = np.random.default_rng(100 + s).permutation(len(y))
        fit, rest = idx[:120], idx[120:]
        model = jm.fit_gp(x[fit], y[fit], key=jax.random.key(s), low=x.min(0), high=x.max(0))
        mean = np.asarray(model.predict(jnp.asarray(x[rest])).mean)
        r2.append(1 - np.mean((mean - y[rest]) ** 2) / np.var(y[rest]))
    return float(np.mean(r2))


def start(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n, N0, replace=False)


def ours(x, y, pair, seed: int, workdir: Path) -> tuple[np.ndarray, float]:
    """The pool campaign's picks (row indices) and its wall time."""
    names = [n.replace("-", "_") for n, _ in pair]  # campaign column names are identifiers
    folder = workdir / f"{seed}-{'-'.join(names)}"
    folder.mkdir()
    ids = np.array([f"p{i}" for i in range(len(y))])
    pool = pd.DataFrame(x, columns=FEATURES)
    pool.insert(0, "id", ids)
    pool.to_csv(folder / "candidates.csv", index=False)
    spec = {"name": "pool suite", "seed": seed, "initial_design": N0, "candidates": "candidates.csv",
            "objective": {"kind": "pareto", "objectives": [{"name": n, "direction": d}
                                                           for n, (_, d) in zip(names, pair)]}}
    t = time.perf_counter()
    camp = jm.Campaign.create(folder / "camp", spec, source_dir=folder)
    picked = list(start(len(y), seed))
    new = picked
    for _ in range(ROUNDS + 1):
        frame = pd.DataFrame({"id": ids[new]})
        for j, (n, (_, d)) in enumerate(zip(names, pair)):
            frame[n] = y[new, j] * (1 if d == "maximize" else -1)
        camp.observe(frame)
        if len(picked) >= N0 + ROUNDS * Q:
            break
        new = [int(i[1:]) for i in camp.suggest(Q)["id"]]
        picked += new
    return np.array(picked), time.perf_counter() - t


def theirs(x, y, seed: int) -> tuple[np.ndarray, float]:
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf_discrete
    from botorch.utils.multi_objective.hypervolume import infer_reference_point
    from gpytorch.mlls import SumMarginalLogLikelihood

    torch.manual_seed(seed)
    u = torch.tensor((x - x.min(0)) / np.where(np.ptp(x, 0) > 0, np.ptp(x, 0), 1.0))
    t = time.perf_counter()
    picked = list(start(len(y), seed))
    for _ in range(ROUNDS):
        X, Y = u[picked], torch.tensor(y[picked])
        model = ModelListGP(*[SingleTaskGP(X, Y[:, j:j + 1], outcome_transform=Standardize(1)) for j in range(2)])
        fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedHypervolumeImprovement(model, ref_point=infer_reference_point(Y).tolist(),
                                                      X_baseline=X, prune_baseline=True)
        left = np.setdiff1d(np.arange(len(y)), picked)
        cand, _ = optimize_acqf_discrete(acq, q=Q, choices=u[left], unique=True)
        rows = {tuple(r) for r in cand.numpy().round(12)}
        new = [int(i) for i in left if tuple(u[i].numpy().round(12)) in rows]
        assert len(new) == Q, "every polymer's features are distinct, so each pick maps to one row"
        picked += new
    return np.array(picked), time.perf_counter() - t


def fraction(y, picked, ref, true_hv) -> float:
    return float(hypervolume(jnp.asarray(y[picked]), ref)) / true_hv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--pairs", default="", help="comma-separated pair numbers, 1-6 (default: all)")
    ap.add_argument("--peer-results", type=Path, default=peer_file("pool"),
                    help="JSON file of BoTorch's runs: read the runs it holds, add the ones it lacks "
                         "(default: the runs kept in benchmarks/peer_runs/)")
    args = ap.parse_args()
    peer = PeerRuns(args.peer_results)
    chosen = [PAIRS[int(k) - 1] for k in args.pairs.split(",")] if args.pairs else PAIRS
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    summary, keys = [], []
    print(f"Machine: {machine()}.\n")
    print(f"{N0} random polymers, then {ROUNDS} x {Q}; seeds {seeds.start}-{seeds.stop - 1}. Fraction of the true "
          "front's hypervolume, median [25th, 75th]; wall time per loop.\n")
    print("| pair (R² of each) | polymers | jaxopt_mat | BoTorch qLogNEHVI | random | time: ours | time: BoTorch | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for pair in chosen:
            x, y = load_pair(args.data, pair)
            ref = jnp.asarray(default_reference(y))
            true_hv = float(hypervolume(jnp.asarray(y), ref))
            r2 = [cv_r2(x, y[:, j]) for j in range(2)]
            f_o, t_o, f_t, t_t, f_r = [], [], [], [], []
            for s in seeds:
                picked, t = ours(x, y, pair, s, Path(tmp))
                assert len(set(picked.tolist())) == N0 + ROUNDS * Q
                f_o.append(fraction(y, picked, ref, true_hv))
                t_o.append(t)
                rest = np.setdiff1d(np.arange(len(y)), start(len(y), s))
                rnd = np.concatenate([start(len(y), s), np.random.default_rng(10_000 + s).choice(rest, ROUNDS * Q,
                                                                                                 replace=False)])
                f_r.append(fraction(y, rnd, ref, true_hv))
                key = f"{pair[0][0]}/{pair[1][0]}/{s}/{N0}+{ROUNDS}x{Q}"
                keys.append(key)

                def run_theirs():
                    pt, tt = theirs(x, y, s)
                    return {"fraction": fraction(y, pt, ref, true_hv), "time": tt}

                got = peer.get(key, run_theirs)
                if got:
                    f_t.append(got["fraction"])
                    t_t.append(got["time"])
                print(f"  {key}: ours {f_o[-1]:.3f} ({t:.1f} s)"
                      + (f", BoTorch {f_t[-1]:.3f} ({t_t[-1]:.1f} s)" if got else "")
                      + f", random {f_r[-1]:.3f}", file=sys.stderr, flush=True)
            label = " vs ".join(f"{'max' if d == 'maximize' else 'min'} {n} ({r:.2f})" for (n, d), r in zip(pair, r2))
            row, v = table_row(f"{label} | {len(y)}", f_o, f_t, f_r, t_o, t_t, digits=".3f", higher_is_better=True)
            summary.append(v)
            print(row, flush=True)
    if summary_line(summary):
        print("\n" + summary_line(summary))
    print(f"BoTorch's runs: {peer.provenance(keys)}.")


if __name__ == "__main__":
    main()
