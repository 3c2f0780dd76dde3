"""Multi-objective pool screening: EHVI throughput, pool batches and memory (closed loops: the bench_suite_* scripts).

    .venv/bin/python benchmarks/bench_pareto.py [--section ...]
    (--section big_pool, a batch from a million candidates with its peak memory, runs only when named)

Two objectives, independent GPs (the package's ``fit_gp``, one per objective),
analytic EHVI over the box decomposition, greedy Kriging-believer batches.
BoTorch's analytic ``ExpectedHypervolumeImprovement`` is timed in the same run
when BoTorch is installed.
"""

from __future__ import annotations

import argparse
import copy
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
from jaxopt_mat.pareto import default_reference  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import have_botorch, machine, timed  # noqa: E402



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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="all", choices=["all", "timing", "breakdown", "big_pool"])
    args = ap.parse_args()
    out = [f"Machine: {machine()}; BoTorch {'installed' if have_botorch() else 'not installed'}.\n"]
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
