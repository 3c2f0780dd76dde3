"""Benchmarks of the core loop: GP fit, batch suggestion, gradient vs grid, closed-loop regret, CLI.

Run from the project root with the project's virtual environment:

    .venv/bin/python benchmarks/bench_core.py --section all --seeds 10

BoTorch is measured in the same process when it is installed
(``pip install torch==2.13.0 botorch``; it is not a dependency of the package).
Every timing is warmed up first (JIT), repeated, and reported as a median; the
output is Markdown for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat import simulate  # noqa: E402
from jaxopt_mat import Campaign  # noqa: E402
from jaxopt_mat.campaign import parse_config  # noqa: E402
from jaxopt_mat.test_functions import BRANIN, HARTMANN6  # noqa: E402
from jaxopt_mat.optimize import grid_points_unit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats=5, warmup=1):
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def have_botorch():
    try:
        import botorch  # noqa: F401  (only checks that it is installed)
        import torch

        torch.set_num_threads(os.cpu_count() or 2)
        return True
    except ImportError:
        return False


def peer_table(rows: dict, figure: str, *, higher_is_better: bool) -> None:
    """Print ``rows`` (name -> (per-seed figures, median seconds per batch)) as a Markdown table, and how
    often jaxopt_mat beat BoTorch seed by seed and the time ratio when both ran."""
    print(f"| method | {figure} median [25 %, 75 %] | per seed | time per batch |\n| --- | --- | --- | --- |")
    for name, (r, t) in rows.items():
        q = np.percentile(r, [25, 50, 75])
        print(f"| {name} | {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}] | {', '.join(f'{v:.3f}' for v in r)} | {t:.3f} s |")
    if "jaxopt_mat" in rows and "BoTorch" in rows:
        a, b = rows["jaxopt_mat"][0], rows["BoTorch"][0]
        wins = int(np.sum(a > b) if higher_is_better else np.sum(a < b))
        print(f"{'higher' if higher_is_better else 'lower'} {figure} in {wins} of {len(a)} seeds; time ratio "
              f"{rows['BoTorch'][1] / rows['jaxopt_mat'][1]:.0f}x")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {jax.devices()[0].platform}, JAX {jax.__version__}, Python {platform.python_version()}"


def objective_5d(x):
    """-Hartmann-6 restricted to its first five inputs (sixth at 0.5), a smooth 5-D test surface."""
    x6 = jnp.concatenate([x, jnp.full(x.shape[:-1] + (1,), 0.5)], axis=-1)
    return -HARTMANN6.fn(x6)


# ---------------------------------------------------------------------------


def bench_gp_fit(out):
    out.append("## GP fit (Matérn-5/2 ARD, d = 5)\n")
    out.append("| n | jaxopt_mat fit (warm, median of 5) | BoTorch SingleTaskGP + fit_gpytorch_mll (median of 3) | BoTorch time / ours |")
    out.append("| --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for n in (100, 500):
        x = rng.uniform(size=(n, 5))
        y = np.asarray(objective_5d(jnp.asarray(x))) + 0.01 * rng.normal(size=n)
        ours, _ = timed(lambda: jm.fit_gp(x, y, key=jax.random.key(0)).alpha, repeats=5)
        theirs = None
        if have_botorch():
            theirs = _botorch_fit_time(x, y)
        ratio = f"{theirs / ours:.2f}" if theirs else "n/a"
        out.append(f"| {n} | {ours:.3f} s | {theirs and f'{theirs:.3f} s' or 'not installed'} | {ratio} |")
    out.append("")
    _bench_kernel_computation(out)


def _bench_kernel_computation(out, rounds=8, calls=100):
    """Marginal-likelihood value and gradient: gpjax's default pairwise kernel computation against the fit's."""
    import gpjax

    from jaxopt_mat.surrogates import gp

    out.append("### Likelihood gradient: gpjax pairwise kernel computation vs the fit's (n = 128, d = 10)\n")
    rng = np.random.default_rng(1)
    n, d = 128, 10
    u = jnp.asarray(rng.uniform(size=(n, d)))
    y = jnp.asarray(rng.normal(size=n))

    def objective(kernel):
        def f(theta):
            ls, var, noise, m = gp._unpack(theta, d)
            K = kernel(ls, var).cross_covariance(u, u) + jnp.diag(jnp.full(n, noise + gp._JITTER * var))
            return 0.5 * gp._quad_logdet(K, y - m)
        return jax.jit(jax.value_and_grad(f))

    variants = {"gpjax Matern52, default (pairwise) computation":
                objective(lambda ls, var: gpjax.kernels.Matern52(lengthscale=ls, variance=var)),
                "gpjax Matern52, the fit's matrix-product computation (`gp.matern52`)": objective(gp.matern52)}
    theta = gp._default_theta(d, jnp.float64) + 0.1
    times = {k: [] for k in variants}
    for _ in range(rounds):  # interleaved, so both see the same machine
        for k, f in variants.items():
            jax.block_until_ready(f(theta))
            t = time.perf_counter()
            for _ in range(calls):
                r = f(theta)
            jax.block_until_ready(r)
            times[k].append((time.perf_counter() - t) / calls)
    (v0, g0), (v1, g1) = (f(theta) for f in variants.values())
    out.append(f"| kernel computation | value and gradient (median of {rounds} interleaved rounds of {calls} calls) |")
    out.append("| --- | --- |")
    for k, ts in times.items():
        out.append(f"| {k} | {statistics.median(ts) * 1e3:.3f} ms |")
    base, ours = (statistics.median(ts) for ts in times.values())
    out.append(f"\nRatio {ours / base:.2f}; largest gradient difference {float(jnp.max(jnp.abs(g0 - g1))):.1e} "
               f"(value {float(v0):.6f} vs {float(v1):.6f}).\n")


def _botorch_model(x, y):
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    X = torch.tensor(x, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64).unsqueeze(-1)
    model = SingleTaskGP(X, Y, input_transform=Normalize(X.shape[-1]), outcome_transform=Standardize(1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def _botorch_fit_time(x, y, repeats=3):
    _botorch_model(x, y)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _botorch_model(x, y)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_batch(out):
    out.append("## Batch suggestion with a fitted GP (n = 100, d = 5, warm)\n")
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(100, 5))
    y = np.asarray(objective_5d(jnp.asarray(x)))
    space = jm.SearchSpace(np.zeros(5), np.ones(5))
    model = jm.fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    best = float(y.max())
    init = x[np.argsort(-y)[:5]]
    q15, _ = timed(lambda: jm.local_penalization_batch(model, space, 15, key=jax.random.key(1), best=best, init=init).x)

    def log_ei(xx, model, best):
        p = model.predict(xx)
        return jm.log_expected_improvement(p.mean, p.std, best)

    q1, _ = timed(lambda: jm.maximize(log_ei, space, key=jax.random.key(2), args=(model, best), init=init).x)
    lp = jm.local_penalization_batch(model, space, 15, key=jax.random.key(1), best=best, init=init)
    true_vals = np.asarray(objective_5d(lp.x))
    out.append("| task | jaxopt_mat | BoTorch | ratio |")
    out.append("| --- | --- | --- | --- |")
    if have_botorch():
        bq15, bq1 = _botorch_acq_times(x, y)
        out.append(f"| batch of 15 (local penalization vs joint qLogEI, 10 restarts, 512 raw) | {q15:.3f} s | {bq15:.2f} s | {bq15 / q15:.0f}x faster |")
        out.append(f"| q = 1 log-EI | {q1:.3f} s | {bq1:.3f} s | {bq1 / q1:.1f}x |")
    else:
        out.append(f"| batch of 15 | {q15:.3f} s | not installed | |")
        out.append(f"| q = 1 log-EI | {q1:.3f} s | not installed | |")
    out.append(f"\nTrue objective of the 15 points (the slice's maximum is {slice_maximum():.4f}): "
               f"best {true_vals.max():.3f}, median {np.median(true_vals):.3f}; best observed before: {best:.3f}.\n")


def slice_maximum() -> float:
    """Maximum of :func:`objective_5d` over the unit cube: 64 gradient starts from 65,536 samples, 500 steps each.

    (Hartmann-6's own maximum, 3.322, lies off this slice.) Checked against the 20^5 grid, which stays below it.
    """
    space = jm.SearchSpace(np.zeros(5), np.ones(5))
    best = jm.maximize(objective_5d, space, key=jax.random.key(0), n_starts=64, n_raw=65536, n_steps=500)
    grid = jm.maximize_grid(objective_5d, space, resolution=20)
    assert float(grid.value) <= float(best.value) + 1e-9
    return float(best.value)


def _botorch_acq_times(x, y):
    import torch
    from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
    from botorch.optim import optimize_acqf

    model = _botorch_model(x, y)
    bounds = torch.stack([torch.zeros(5), torch.ones(5)]).double()
    best = float(y.max())

    def q15():
        acq = qLogExpectedImprovement(model, best_f=best)
        return optimize_acqf(acq, bounds=bounds, q=15, num_restarts=10, raw_samples=512)

    def q1():
        acq = LogExpectedImprovement(model, best_f=best)
        return optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)

    res = []
    for fn, reps in ((q15, 2), (q1, 5)):
        fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        res.append(statistics.median(ts))
    return res


def bench_grid(out):
    out.append("## Gradient maximizer vs dense grid, same log-EI (n = 100, d = 5, warm)\n")
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(100, 5))
    y = np.asarray(objective_5d(jnp.asarray(x)))
    space = jm.SearchSpace(np.zeros(5), np.ones(5), A=[[1.0, 1.0, 1.0, 1.0, 0.0]], b=[2.5])
    model = jm.fit_gp(x, y, key=jax.random.key(0), low=space.low, high=space.high)
    best = float(y.max())

    def log_ei(xx, model, best):
        p = model.predict(xx)
        return jm.log_expected_improvement(p.mean, p.std, best)

    out.append("| method | evaluations | best log-EI | time (median) | time vs grid |")
    out.append("| --- | --- | --- | --- | --- |")
    grid_t, _ = timed(lambda: jm.maximize_grid(log_ei, space, resolution=20, args=(model, best)).value, repeats=3)
    g = jm.maximize_grid(log_ei, space, resolution=20, args=(model, best))
    u = jnp.asarray(grid_points_unit(20, 5))
    feasible = int(np.sum(np.asarray(space.is_feasible(space.from_unit(u)))))
    out.append(f"| grid 20^5: 3,200,000 points, the {feasible:,} feasible ones evaluated | {feasible:,} | "
               f"{float(g.value):.4f} | {grid_t:.2f} s | 1 |")
    for n_starts, n_steps in ((32, 100), (16, 60)):
        t, _ = timed(lambda: jm.maximize(log_ei, space, key=jax.random.key(3), args=(model, best),
                                         n_starts=n_starts, n_steps=n_steps).value)
        r = jm.maximize(log_ei, space, key=jax.random.key(3), args=(model, best), n_starts=n_starts, n_steps=n_steps)
        evals = 1024 + n_starts * n_steps
        out.append(f"| gradient, {n_starts} starts x {n_steps} Adam steps | {evals:,} (+ gradients) | {float(r.value):.4f} | {t:.3f} s | 1/{grid_t / t:.0f} |")
    out.append("")


def _closed_loop(problem, batch, budget, method, seed, workdir, start=None):
    """Run a campaign through its files until ``budget`` evaluations; return the simple regret.

    ``start``: an initial design ``(n0, d)`` measured and observed as the first batch (instead of
    the campaign's own Latin hypercube), so that a peer's loop can begin from the same points.
    """
    d = problem.low.size
    cfg = parse_config({
        "name": problem.name, "seed": seed, "initial_design": max(batch, 2 * d),
        "inputs": [{"name": f"x{i}", "low": float(lo), "high": float(hi)} for i, (lo, hi) in enumerate(zip(problem.low, problem.high))],
        "objective": {"name": "y", "direction": "minimize"},
    })
    camp = Campaign.create(Path(workdir) / f"{problem.name}-{batch}-{method}-{seed}", cfg)
    lab = simulate.FunctionLab(problem.fn)
    n = 0
    r = 0
    if start is not None:
        camp.observe_text(simulate.measurements_csv(camp.config.input_names, ["y"], start,
                                                    lab.measure(start, rng=np.random.default_rng(seed))), "start")
        n, r = start.shape[0], 1
    while n < budget:
        q = min(batch, budget - n)
        if n == 0 and method == "gp":
            q = min(max(batch, 2 * d), budget)
        simulate.run(camp, lab, rounds=1, batch=q, method=method, seed=seed * 1000 + r)
        n += q
        r += 1
    return float(camp.snapshot().y.min() - problem.minimum)


def _lhs_regret(problem, budget, seed):
    space = jm.SearchSpace(problem.low, problem.high)
    x = jm.latin_hypercube(space, budget, seed=seed)
    return float(np.min(np.asarray(problem.fn(jnp.asarray(x)))) - problem.minimum)


def bench_regret(out, seeds):
    out.append(f"## Closed-loop simple regret, budget 20·d, {seeds} seeds (median [25th, 75th percentile])\n")
    out.append("Each run goes through the campaign files (suggest → measure → observe). GP: Latin hypercube of "
               "max(batch, 2·d), then batches by log-EI with local penalization. LHS: one Latin hypercube of the "
               "whole budget. Random: uniform batches.\n")
    out.append("| problem | batch | GP (jaxopt_mat) | random | LHS | GP / random |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for problem in (BRANIN, HARTMANN6):
            budget = 20 * problem.low.size
            for batch in (5, 15):
                t0 = time.perf_counter()
                gp = [_closed_loop(problem, batch, budget, "gp", s, tmp) for s in range(seeds)]
                rnd = [_closed_loop(problem, batch, budget, "random", s, tmp) for s in range(seeds)]
                lhs = [_lhs_regret(problem, budget, s) for s in range(seeds)]
                fmt = lambda v: f"{np.median(v):.4f} [{np.percentile(v, 25):.4f}, {np.percentile(v, 75):.4f}]"  # noqa: E731
                out.append(f"| {problem.name} (d = {problem.low.size}, budget {budget}) | {batch} | {fmt(gp)} | {fmt(rnd)} | {fmt(lhs)} | "
                           f"{np.median(gp) / np.median(rnd):.3f} |")
                print(f"  {problem.name} batch {batch}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out.append("")


def _botorch_closed_loop(problem, batch, budget, seed):
    """BoTorch's joint qLogEI (10 restarts, 512 raw samples) in the same loop: :func:`shared_start`, then batches."""
    import torch
    from botorch.acquisition import qLogExpectedImprovement
    from botorch.optim import optimize_acqf

    d = problem.low.size
    lo, hi = torch.tensor(problem.low), torch.tensor(problem.high)
    X = torch.tensor(shared_start(problem, batch, seed))
    f = lambda X: torch.tensor(np.asarray(problem.fn(jnp.asarray(X.numpy()))))  # noqa: E731
    Y = f(X)
    torch.manual_seed(seed)
    while X.shape[0] < budget:
        q = min(batch, budget - X.shape[0])
        model = _botorch_model(((X - lo) / (hi - lo)).numpy(), (-Y).numpy())  # maximise -f
        acq = qLogExpectedImprovement(model, best_f=float((-Y).max()))
        cand, _ = optimize_acqf(acq, bounds=torch.stack([torch.zeros(d), torch.ones(d)]).double(), q=q,
                                num_restarts=10, raw_samples=512)
        Xn = lo + cand * (hi - lo)
        X, Y = torch.cat([X, Xn]), torch.cat([Y, f(Xn)])
    return float(Y.min() - problem.minimum)


def shared_start(problem, batch, seed) -> np.ndarray:
    """The initial design both loops of :func:`bench_botorch_regret` begin from: a Latin hypercube of max(batch, 2·d)."""
    n0 = max(batch, 2 * problem.low.size)
    return np.asarray(jm.latin_hypercube(jm.SearchSpace(problem.low, problem.high), n0, seed=seed))


def bench_botorch_regret(out, seeds):
    out.append(f"## Closed loop against BoTorch's joint qLogEI, Hartmann-6, batch 15, budget 120, {seeds} seeds\n")
    if not have_botorch():
        out.append("BoTorch not installed.\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs, t_ours, t_theirs = [], [], [], []
        for s in range(seeds):
            t = time.perf_counter()
            ours.append(_closed_loop(HARTMANN6, 15, 120, "gp", s, tmp, start=shared_start(HARTMANN6, 15, s)))
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs.append(_botorch_closed_loop(HARTMANN6, 15, 120, s))
            t_theirs.append(time.perf_counter() - t)
            print(f"  seed {s}: jaxopt_mat {ours[-1]:.4f} ({t_ours[-1]:.0f} s), BoTorch {theirs[-1]:.4f} "
                  f"({t_theirs[-1]:.0f} s)", file=sys.stderr, flush=True)
    fmt = lambda v: f"{np.median(v):.4f} [{np.percentile(v, 25):.4f}, {np.percentile(v, 75):.4f}]"  # noqa: E731
    out.append("| method | simple regret, median [25th, 75th] | wall time per run (median) |")
    out.append("| --- | --- | --- |")
    out.append(f"| jaxopt_mat: GP + local penalization, through campaign files | {fmt(ours)} | {np.median(t_ours):.1f} s |")
    out.append(f"| BoTorch 0.18: SingleTaskGP + joint qLogEI (optimize_acqf) | {fmt(theirs)} | {np.median(t_theirs):.1f} s |")
    out.append("")


def bench_cli(out):
    out.append("## CLI `suggest --batch 15` wall time (d = 5, one constraint)\n")
    exe = str(Path(sys.executable).parent / "jaxopt-mat")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, JAXOPT_MAT_CACHE=str(tmp / "cache"))
        (tmp / "c.toml").write_text(
            'name = "bench"\n' + "".join(f'[[inputs]]\nname = "x{i}"\nlow = 0.0\nhigh = 1.0\n' for i in range(5))
            + '[[constraints]]\nexpr = "x0 + x1 + x2 + x3 <= 3"\n[objective]\nname = "y"\ndirection = "maximize"\n')
        subprocess.run([exe, "init", str(tmp / "c"), "--config", str(tmp / "c.toml")], check=True, env=env, capture_output=True)
        rng = np.random.default_rng(0)
        x = jm.latin_hypercube(jm.SearchSpace(np.zeros(5), np.ones(5), A=[[1, 1, 1, 1, 0]], b=[3]), 100, seed=0)
        y = np.asarray(objective_5d(jnp.asarray(x))) + 0.01 * rng.normal(size=100)
        lines = ["x0,x1,x2,x3,x4,y"] + [",".join(repr(float(v)) for v in row) + f",{float(yy)!r}" for row, yy in zip(x, y)]

        def observe(rows, name):
            (tmp / name).write_text("\n".join(lines[:1] + rows) + "\n")
            r = subprocess.run([exe, "observe", str(tmp / "c"), str(tmp / name)], env=env, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(r.stderr)

        def call():
            # the batch before was measured (here: cancelled, untimed), so no suggestion is pending
            subprocess.run([exe, "cancel", str(tmp / "c"), "--all"], env=env, capture_output=True)
            t = time.perf_counter()
            subprocess.run([exe, "suggest", str(tmp / "c"), "--batch", "15"], check=True, env=env, capture_output=True)
            return time.perf_counter() - t

        # A campaign's rhythm: 85 conditions, suggest, 15 new measurements, suggest again.
        observe(lines[1:86], "m1.csv")
        cold = call()
        observe(lines[86:], "m2.csv")
        next_round = call()
        warm = [call() for _ in range(3)]
        t = time.perf_counter()
        subprocess.run([exe, "--version"], check=True, env=env, capture_output=True)
        start = time.perf_counter() - t
    out.append("| call | wall time |")
    out.append("| --- | --- |")
    out.append(f"| cold (85 conditions, empty caches: trace, lower, compile) | {cold:.2f} s |")
    out.append(f"| next round (100 conditions; first fit warm-started from the previous round's hyper-parameters) | "
               f"{next_round:.2f} s |")
    out.append(f"| warm (the same call again, median of 3) | {statistics.median(warm):.2f} s |")
    out.append(f"| of which: interpreter and imports (`jaxopt-mat --version`) | {start:.2f} s |")
    out.append("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default="all", choices=["all", "gp_fit", "batch", "grid", "regret", "botorch_regret", "cli"])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    out = [f"Machine: {machine()}; BoTorch {'installed' if have_botorch() else 'not installed'}.\n"]
    sections = {
        "gp_fit": lambda: bench_gp_fit(out),
        "batch": lambda: bench_batch(out),
        "grid": lambda: bench_grid(out),
        "regret": lambda: bench_regret(out, args.seeds),
        "botorch_regret": lambda: bench_botorch_regret(out, args.seeds),
        "cli": lambda: bench_cli(out),
    }
    for name, fn in sections.items():
        if args.section in ("all", name):
            t = time.perf_counter()
            fn()
            print(f"[{name}: {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    print("\n".join(out))


if __name__ == "__main__":
    main()
