"""Multi-objective pool screening: EHVI throughput, pool batches, memory, and a closed loop on RadonPy polymers.

    .venv/bin/python benchmarks/bench_pareto.py [--data ../shared/data] [--seeds 10] [--section ...]
    (--section big_pool, a batch from a million candidates with its peak memory, runs only when named)

Two objectives, independent GPs (the package's ``fit_gp``, one per objective),
analytic EHVI over the box decomposition, greedy Kriging-believer batches.
BoTorch's analytic ``ExpectedHypervolumeImprovement`` is timed in the same run
when BoTorch is installed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import resource
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxopt_mat import fit_gp, map_rows  # noqa: E402
from jaxopt_mat.chunked import default_threads  # noqa: E402
from jaxopt_mat.acquisition.ehvi import score_pool  # noqa: E402
from jaxopt_mat.acquisition.pool_ehvi import greedy_pool_batch  # noqa: E402
from jaxopt_mat.surrogates.independent import predict_objectives  # noqa: E402
from jaxopt_mat.pareto import default_reference, hypervolume, non_dominated_mask  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import have_botorch, machine, timed  # noqa: E402

FEATURES = ["mol_weight_monomer", "atomic_weight_mean", "vdw_volume_monomer", "qm_total_energy_monomer",
            "qm_homo_monomer", "qm_lumo_monomer", "qm_dipole_monomer", "qm_dipole_x_monomer", "qm_dipole_y_monomer",
            "qm_dipole_z_monomer", "qm_polarizability_monomer", "qm_polarizability_xx_monomer",
            "qm_polarizability_yy_monomer", "qm_polarizability_zz_monomer", "qm_polarizability_xy_monomer",
            "qm_polarizability_xz_monomer", "qm_polarizability_yz_monomer"]


def predict_two(features, model_a, model_b):
    """Means and standard deviations of two independent GPs, ``(c, 2)`` each."""
    pa, pb = model_a.predict(features), model_b.predict(features)
    return jnp.stack([pa.mean, pb.mean], -1), jnp.stack([pa.std, pb.std], -1)


def fit_two(x, y, low, high, seed):
    return (fit_gp(x, y[:, 0], key=jax.random.key(seed), low=low, high=high),
            fit_gp(x, y[:, 1], key=jax.random.key(seed + 1), low=low, high=high))


def bench_throughput(out):
    rng = np.random.default_rng(0)
    d = 10
    x = rng.uniform(size=(100, d))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    models = fit_two(x, y, np.zeros(d), np.ones(d), 0)
    front_pts = np.stack([np.linspace(0.0, 1.5, 50), 1.0 - np.linspace(0.0, 1.5, 50) ** 2], -1)
    ref = np.array([-1.0, -2.0])
    out.append("## EHVI throughput (2 objectives, 50-point front, GP posterior of n = 100, d = 10 included)\n")
    out.append("| implementation | candidates | time (median of 3, warm, variants interleaved) | candidates per second |")
    out.append("| --- | --- | --- | --- |")
    trimmed = tuple(m.without_padding() for m in models)
    variants = [("float64", models, None, None),
                ("float64, padding removed (`model.without_padding()`)", trimmed, None, None),
                ("float32 scoring (`dtype=jnp.float32`), padding removed, one program (`threads=1`)", trimmed,
                 jnp.float32, 1),
                (f"float32 scoring (`dtype=jnp.float32`), padding removed, default threads ({default_threads()})", trimmed,
                 jnp.float32, None)]
    errors, speedups = {}, {}
    for n in (100_000, 1_000_000):
        feats = jnp.asarray(rng.uniform(size=(n, d)))
        scorers = [partial(score_pool, predict_two, ms, feats, jnp.asarray(front_pts), jnp.asarray(ref), dtype=dtype,
                           threads=th) for _, ms, dtype, th in variants]
        # interleaved, so that a change of the machine's speed during the run hits every variant alike
        times = [[] for _ in variants]
        for rep in range(4):
            for fn, ts in zip(scorers, times):
                t = time.perf_counter()
                jax.block_until_ready(fn())
                if rep:  # the first round compiles and warms up
                    ts.append(time.perf_counter() - t)
        meds = [statistics.median(ts) for ts in times]
        for (label, *_), med in zip(variants, meds):
            out.append(f"| jaxopt_mat `score_pool` (chunks of 8192), {label} | {n:,} | {med:.2f} s | {n / med:,.0f} |")
        speedups[n] = meds[2] / meds[3]
        meds_1m = meds
        if n == 100_000:
            exact = np.asarray(scorers[0](), np.float64)
            errors = {label: float(np.max(np.abs(np.asarray(fn(), np.float64) - exact)) / exact.max())
                      for (label, *_), fn in zip(variants, scorers)}
    out.append("\nfloat32, default threads against one program (same runs): "
               + "; ".join(f"{speedup:.2f}x at {n:,}" for n, speedup in speedups.items()) + ".\n")
    out.append("Largest difference from the float64 scores over the 100,000 candidates, relative to the largest EHVI: "
               + "; ".join(f"{label}: {err:.1e}" for label, err in errors.items()) + ".\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    out.append(f"Peak resident memory of the whole benchmark process after scoring 1,000,000 candidates: {peak:.2f} GiB.\n")
    if have_botorch():
        rates = _botorch_ehvi_rates(x, y, front_pts, ref, rng)
        ours = {"float64": 1_000_000 / meds_1m[0], "float32": 1_000_000 / meds_1m[3]}
        out.append("BoTorch 0.18 analytic `ExpectedHypervolumeImprovement` (ModelListGP of two fitted SingleTaskGPs, "
                   "FastNondominatedPartitioning), 20,000 candidates in batches of 1,000, median of 3 passes: "
                   + "; ".join(f"{label} {rate:,.0f} candidates per second (jaxopt_mat's {label} default at 1,000,000: "
                               f"{ours[label] / rate:.1f}x)" for label, rate in rates.items()) + ".\n")


def bench_breakdown(out, chunks=48, chunk=8192):
    """Where float32 pool scoring spends its time: the posterior of both GPs, their means alone, the EHVI alone."""
    from jaxopt_mat.acquisition.ehvi import ehvi_from_boxes
    from jaxopt_mat.pareto import non_dominated_boxes

    rng = np.random.default_rng(0)
    d, n = 10, chunks * chunk
    x = rng.uniform(size=(100, d))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    f32 = lambda a: a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a  # noqa: E731
    models = jax.tree.map(f32, tuple(m.without_padding() for m in fit_two(x, y, np.zeros(d), np.ones(d), 0)))
    front = jnp.asarray(np.stack([np.linspace(0.0, 1.5, 50), 1.0 - np.linspace(0.0, 1.5, 50) ** 2], -1), jnp.float32)
    boxes = non_dominated_boxes(front, jnp.asarray([-1.0, -2.0], jnp.float32))
    feats = jnp.asarray(rng.uniform(size=(chunks, chunk, d)), jnp.float32)
    mu = jnp.asarray(rng.normal(size=(chunks, chunk, 2)), jnp.float32)
    sd = jnp.asarray(rng.uniform(0.1, 1.0, size=(chunks, chunk, 2)), jnp.float32)

    def over_chunks(fn):
        return jax.jit(lambda *a: jax.lax.scan(lambda c, xs: (c + fn(*xs), None), jnp.float32(0), a)[0])

    parts = {
        "posterior of both GPs (means and variances)":
            (over_chunks(lambda f: sum(jnp.sum(p.mean) + jnp.sum(p.var) for p in (m.predict(f) for m in models))), (feats,)),
        "posterior means only": (over_chunks(lambda f: sum(jnp.sum(m.predict(f).mean) for m in models)), (feats,)),
        "EHVI given the posterior": (over_chunks(lambda m, s: jnp.sum(jax.vmap(
            lambda a, b: ehvi_from_boxes(a, b, boxes))(m, s))), (mu, sd)),
    }
    out.append(f"## Float32 pool scoring, part by part ({n:,} candidates, chunks of {chunk:,}, n = 100, d = 10)\n")
    out.append("| part | candidates per second (median of 5, warm) |")
    out.append("| --- | --- |")
    for label, (fn, args) in parts.items():
        med, _ = timed(lambda: fn(*args), repeats=5)
        out.append(f"| {label} | {n / med:,.0f} |")
    out.append("")


def _botorch_ehvi_rates(x, y, front_pts, ref, rng, passes=3) -> dict[str, float]:
    """BoTorch's analytic EHVI over 20,000 candidates (batches of 1,000) with fitted GPs: candidates per second.

    One ``SingleTaskGP`` per objective, fitted by ``fit_gpytorch_mll`` (as users run it), in a
    ``ModelListGP``; median of ``passes`` timed passes after a warm-up pass, in float64 and in float32
    (the models, partitioning and candidates cast), to compare each with the same precision of ours.
    """
    import torch
    from botorch.acquisition.multi_objective import ExpectedHypervolumeImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.utils.multi_objective.box_decompositions import FastNondominatedPartitioning
    from gpytorch.mlls import ExactMarginalLogLikelihood

    X = torch.tensor(x)
    models = []
    for i in range(2):
        m = SingleTaskGP(X, torch.tensor(y[:, i : i + 1]))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(m.likelihood, m))
        models.append(m)
    cands64 = torch.tensor(rng.uniform(size=(20_000, 1, x.shape[1])))
    rates = {}
    for label, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        # a fresh copy of the fitted models per precision: prediction caches made in one precision stay in it
        model = ModelListGP(*copy.deepcopy(models)).to(dtype)
        model.eval()
        part = FastNondominatedPartitioning(ref_point=torch.tensor(ref, dtype=dtype), Y=torch.tensor(front_pts, dtype=dtype))
        acq = ExpectedHypervolumeImprovement(model, ref_point=ref.tolist(), partitioning=part)
        cands = cands64.to(dtype)
        times = []
        with torch.no_grad():
            for rep in range(passes + 1):
                t = time.perf_counter()
                for i in range(0, 20_000, 1000):
                    acq(cands[i : i + 1000])
                if rep:  # the first pass warms up
                    times.append(time.perf_counter() - t)
        rates[label] = 20_000 / statistics.median(times)
    return rates


def pool_posterior(models, pool):
    """What ``suggest`` computes over a pool: both posteriors, in chunks (``map_rows``)."""
    return map_rows(predict_objectives, (tuple(models), jnp.ones(len(models))), pool)


def bench_big_pool(out, n=1_000_000, d=10):
    """A batch of 10 from a million candidates as ``suggest`` selects it, and the process's peak memory.

    Run as its own section (its own process) so the peak belongs to this task alone.
    """
    rng = np.random.default_rng(2)
    pool = jnp.asarray(rng.uniform(size=(n, d)))
    x = np.asarray(pool[:120])
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    models = fit_two(x, y, np.zeros(d), np.ones(d), 0)
    ref = jnp.asarray(default_reference(y))
    measured = np.arange(n) < 120

    def select():
        mean, std = pool_posterior(models, pool)
        return greedy_pool_batch(mean, std, jnp.asarray(y), ref, 10, exclude=measured)[0]

    med, times = timed(select, repeats=3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    out.append(f"## Pool batch of 10 from {n:,} candidates (n = 120, d = 10, fitted GPs, warm)\n")
    out.append(f"Posterior of both objectives in chunks (`map_rows`) and greedy EHVI, as `suggest` selects: "
               f"median {med:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)} s); peak resident memory of the "
               f"process {peak:.2f} GiB.\n")


def bench_pool_batch(out):
    rng = np.random.default_rng(1)
    d = 10
    x = rng.uniform(size=(100, d))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    pool = jnp.asarray(rng.uniform(size=(10_000, d)))
    ref = jnp.asarray(default_reference(y))

    def run():
        models = fit_two(x, y, np.zeros(d), np.ones(d), 0)
        mean, std = pool_posterior(models, pool)
        return greedy_pool_batch(mean, std, jnp.asarray(y), ref, 10)[0]

    med, _ = timed(run, repeats=3)
    models = fit_two(x, y, np.zeros(d), np.ones(d), 0)

    def select():
        mean, std = pool_posterior(models, pool)
        return greedy_pool_batch(mean, std, jnp.asarray(y), ref, 10)[0]

    med_select, _ = timed(select, repeats=3)
    med_fit, _ = timed(lambda: fit_two(x, y, np.zeros(d), np.ones(d), 0)[1].alpha, repeats=3)
    # A campaign's next cycle: the fits start from the previous cycle's hyper-parameters (90 points).
    before = fit_two(x[:90], y[:90], np.zeros(d), np.ones(d), 1)

    def run_warm():
        models = tuple(fit_gp(x, y[:, j], key=jax.random.key(j), low=np.zeros(d), high=np.ones(d),
                              init=before[j].hyperparameters) for j in range(2))
        mean, std = pool_posterior(models, pool)
        return greedy_pool_batch(mean, std, jnp.asarray(y), ref, 10)[0]

    med_warm, _ = timed(run_warm, repeats=3)
    out.append("## Pool batch of 10 from 10,000 candidates (n = 100, d = 10, warm)\n")
    out.append("| step | median of 3 |")
    out.append("| --- | --- |")
    out.append(f"| whole batch: both GP fits, posterior over the pool, greedy EHVI | {med:.3f} s |")
    out.append(f"| the two GP fits alone | {med_fit:.3f} s |")
    out.append(f"| whole batch, fits warm-started from the previous cycle's hyper-parameters (as `suggest` does) | "
               f"{med_warm:.3f} s |")
    out.append(f"| selection with fitted GPs: posterior over the pool, greedy EHVI | {med_select:.3f} s |")
    out.append("")


def load_polymers(data: Path):
    with open(data / "radonpy" / "PI1070.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    feats, objs = [], []
    for r in rows:
        try:
            fv = [float(r[c]) for c in FEATURES]
            ov = [float(r["refractive_index"]), -float(r["density"])]  # maximise both
        except (ValueError, KeyError):
            continue
        if np.all(np.isfinite(fv)) and np.all(np.isfinite(ov)):
            feats.append(fv)
            objs.append(ov)
    feats = np.array(feats)
    feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)
    return feats, np.array(objs)


def bench_polymers(out, data, seeds):
    feats, objs = load_polymers(data)
    n = len(objs)
    ref = jnp.asarray(default_reference(objs))
    true_hv = float(hypervolume(jnp.asarray(objs), ref))
    low, high = feats.min(0), feats.max(0)
    ehvi_frac, rand_frac, times = [], [], []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        start = rng.choice(n, 20, replace=False)
        measured = np.zeros(n, bool)
        measured[start] = True
        t0 = time.perf_counter()
        for c in range(10):
            models = fit_two(feats[measured], objs[measured], low, high, 1000 * s + c)
            mean, std = predict_two(jnp.asarray(feats), *models)
            idx, _ = greedy_pool_batch(mean, std, jnp.asarray(objs[measured]), ref, 10, exclude=measured)
            idx = np.asarray(idx)
            assert not measured[idx].any()
            measured[idx] = True
        times.append(time.perf_counter() - t0)
        ehvi_frac.append(float(hypervolume(jnp.asarray(objs[measured]), ref)) / true_hv)
        rnd = np.zeros(n, bool)
        rnd[start] = True
        rnd[rng.choice(np.flatnonzero(~rnd), 100, replace=False)] = True
        rand_frac.append(float(hypervolume(jnp.asarray(objs[rnd]), ref)) / true_hv)
    front = int(np.sum(np.asarray(non_dominated_mask(jnp.asarray(objs)))))
    fmt = lambda v: f"{np.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]"  # noqa: E731
    out.append(f"## Closed loop on RadonPy PI1070: maximise refractive index, minimise density ({n} polymers with both "
               f"properties, {len(FEATURES)} standardized monomer descriptors, true front of {front} polymers)\n")
    out.append(f"20 random starts, then 10 batches of 10 (120 evaluations), {seeds} seeds. Fraction of the true front's "
               "hypervolume reached, median [min, max]; reference point: the table's nadir minus 10 % of each range.\n")
    out.append("| method | fraction of true hypervolume | wall time per run (median) |")
    out.append("| --- | --- | --- |")
    out.append(f"| EHVI, greedy Kriging believer | {fmt(ehvi_frac)} | {np.median(times):.1f} s |")
    out.append(f"| random selection | {fmt(rand_frac)} | |")
    out.append("")


def zdt2(x):
    """ZDT2 (Zitzler, Deb & Thiele 2000), both minimised; returned negated (maximisation)."""
    f1 = x[:, 0]
    g = 1 + 9 * np.mean(x[:, 1:], axis=1)
    return -np.stack([f1, g * (1 - (f1 / g) ** 2)], -1)


def dtlz2(x):
    """DTLZ2 with two objectives (Deb et al. 2002), both minimised; returned negated."""
    g = np.sum((x[:, 1:] - 0.5) ** 2, axis=1)
    a = 0.5 * np.pi * x[:, 0]
    return -np.stack([(1 + g) * np.cos(a), (1 + g) * np.sin(a)], -1)


def _true_front(fn, d):
    """The analytic Pareto set: x_0 over [0, 1] with the other inputs at their optimal values."""
    t = np.linspace(0, 1, 20001)
    x = np.zeros((t.size, d))
    x[:, 0] = t
    x[:, 1:] = 0.0 if fn is zdt2 else 0.5
    return fn(x)


def bench_continuous(out, seeds):
    from jaxopt_mat import SearchSpace, ehvi_batch, latin_hypercube
    from jaxopt_mat.surrogates.independent import predict_objectives_believer

    d, n0, rounds, q = 6, 14, 8, 5
    budget = n0 + rounds * q
    space = SearchSpace(np.zeros(d), np.ones(d))
    out.append(f"## Continuous two-objective problems (d = {d}): {n0} LHS points, then {rounds} batches of {q} "
               f"({budget} evaluations), {seeds} seeds\n")
    out.append("Fraction of the true front's hypervolume reached, median [min, max]; reference point (11, 11) for "
               "ZDT2 and (1.1, 1.1) in the minimised objectives for DTLZ2.\n")
    out.append("| problem | EHVI (gradient, Kriging believer) | LHS of the whole budget | random | EHVI wall time per run |")
    out.append("| --- | --- | --- | --- | --- |")
    for fn, ref in ((zdt2, np.array([-11.0, -11.0])), (dtlz2, np.array([-1.1, -1.1]))):
        true_hv = float(hypervolume(jnp.asarray(_true_front(fn, d)), jnp.asarray(ref)))
        fr = {"ehvi": [], "lhs": [], "random": []}
        times = []
        for s in range(seeds):
            x = np.asarray(latin_hypercube(space, n0, seed=s))
            y = fn(x)
            t0 = time.perf_counter()
            for c in range(rounds):
                models = fit_two(x, y, space.low, space.high, 100 * s + c)
                xb, _, _, _ = ehvi_batch(predict_objectives_believer, (models, jnp.ones(2)), space, y, ref, q,
                                         key=jax.random.key(100 * s + c))
                xb = np.asarray(xb)
                x, y = np.concatenate([x, xb]), np.concatenate([y, fn(xb)])
            times.append(time.perf_counter() - t0)
            hv = lambda v: float(hypervolume(jnp.asarray(v), jnp.asarray(ref))) / true_hv  # noqa: E731
            fr["ehvi"].append(hv(y))
            fr["lhs"].append(hv(fn(np.asarray(latin_hypercube(space, budget, seed=1000 + s)))))
            fr["random"].append(hv(fn(np.random.default_rng(s).uniform(size=(budget, d)))))
        fmt = lambda v: f"{np.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]"  # noqa: E731
        out.append(f"| {fn.__name__.upper()} | {fmt(fr['ehvi'])} | {fmt(fr['lhs'])} | {fmt(fr['random'])} | "
                   f"{np.median(times):.1f} s |")
        print(out[-1], file=sys.stderr, flush=True)
    out.append("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("JAXOPT_MAT_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data")))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--section", default="all", choices=["all", "polymers", "timing", "breakdown", "continuous", "big_pool"])
    args = ap.parse_args()
    out = [f"Machine: {machine()}; BoTorch {'installed' if have_botorch() else 'not installed'}.\n"]
    if args.section in ("all", "polymers"):
        bench_polymers(out, Path(args.data), args.seeds)
    if args.section in ("all", "continuous"):
        bench_continuous(out, args.seeds)
    if args.section in ("all", "timing"):
        bench_pool_batch(out)
        bench_throughput(out)
    if args.section in ("all", "breakdown"):
        bench_breakdown(out)
    if args.section == "big_pool":  # not in "all": its peak memory must be its own process's
        bench_big_pool(out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
