"""Asynchronous against synchronous batches: wall time to a given loss on the built-in virtual lab.

    .venv/bin/python benchmarks/bench_async.py [--seeds 10] [--budget 120] [--workers 8] [--median 1.0]

The built-in silver-nanoparticle lab's spectrum campaign (the demo's target),
each evaluation taking a log-normal time (median ``--median`` s, sigma 0.8,
drawn per evaluation), ``--workers`` evaluations at once, ``--budget``
evaluations after a 16-point Latin hypercube, the same model (``gp``: one GP
of the log loss, batch log-EI with local penalization) both ways:

- asynchronous: :func:`jaxopt_mat.run` keeps ``--workers`` evaluations
  running and, as evaluations finish, suggests for every free slot at once (the others pending);
- synchronous: batches of ``--workers``, each waiting for its slowest member.

Reported per loop, median [25th, 75th] over seeds: the best noise-free loss
of the evaluated recipes at equal evaluations, the wall time of all of them,
and the wall time until the best loss falls below a threshold (the 75th
percentile of all final bests), with the number of seeds that reach it; and
the asynchronous loop's own work per evaluation (``RunSummary.loop_seconds``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.objectives import spectrum_loss  # noqa: E402
from jaxopt_mat.simulate import DEMO_TARGET_RECIPE, builtin_lab_campaign  # noqa: E402
from jaxopt_mat.virtual_lab import INPUT_NAMES, SilverLab  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

N0 = 16


class TimedLab:
    """Measures a recipe's spectrum after a log-normal delay; records each result's noise-free loss and time."""

    def __init__(self, seed: int, median: float, start: float):
        self.lab, self.seed, self.median, self.start = SilverLab(), seed, median, start
        self.target = np.asarray(self.lab.spectra(np.array([DEMO_TARGET_RECIPE])))[0]
        self.trace: list[tuple[float, float]] = []  # (seconds since start, noise-free loss)
        self.lock = threading.Lock()

    def delay(self, key: str) -> float:
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return float(self.median * np.exp(0.8 * rng.standard_normal()))

    def measure(self, x: np.ndarray, key: str) -> np.ndarray:
        time.sleep(self.delay(key))
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode()), 1])
        spectrum = np.asarray(self.lab.measure(x[None], rng=rng))[0]
        loss = float(spectrum_loss(self.lab.spectra(x[None]), self.target, window=(0.7, 1.2))[0])
        with self.lock:
            self.trace.append((time.perf_counter() - self.start, loss))
        return spectrum

    def __call__(self, condition: dict, suggestion: str = "") -> dict:
        x = np.array([condition[n] for n in INPUT_NAMES])
        spectrum = self.measure(x, suggestion)
        return {f"{w:g}": float(a) for w, a in zip(self.lab.wavelengths, spectrum)}

    takes_suggestion_id = True


def campaign(path: Path, seed: int) -> jm.Campaign:
    return builtin_lab_campaign(path, name="async", seed=seed, initial_design=N0)


def start_design(camp: jm.Campaign, lab: TimedLab) -> None:
    """The initial Latin hypercube, measured without delay (the same for both loops)."""
    import pandas as pd

    batch = camp.suggest(N0, method="lhs")
    rows = []
    for _, r in batch.iterrows():
        x = np.array([r[n] for n in INPUT_NAMES])
        rng = np.random.default_rng([lab.seed, zlib.crc32(r["suggestion"].encode()), 1])
        spectrum = np.asarray(lab.lab.measure(x[None], rng=rng))[0]
        rows.append({"suggestion": r["suggestion"], **{n: r[n] for n in INPUT_NAMES},
                     **{f"{w:g}": float(a) for w, a in zip(lab.lab.wavelengths, spectrum)}})
    camp.observe(pd.DataFrame(rows))


def asynchronous(seed, budget, workers, median, workdir) -> tuple[TimedLab, float, float]:
    camp = campaign(workdir / f"async{seed}", seed)
    start_design(camp, TimedLab(seed, 0.0, 0.0))
    lab = TimedLab(seed, median, time.perf_counter())
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        summary = jm.run(camp, lab, executor=pool, parallel=workers, budget=N0 + budget, method="gp",
                         stop_when_done=False)
    return lab, time.perf_counter() - lab.start, summary.loop_seconds / max(summary.observed, 1)


def synchronous(seed, budget, workers, median, workdir) -> tuple[TimedLab, float]:
    import pandas as pd

    camp = campaign(workdir / f"sync{seed}", seed)
    start_design(camp, TimedLab(seed, 0.0, 0.0))
    lab = TimedLab(seed, median, time.perf_counter())
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in range(budget // workers):
            batch = camp.suggest(workers, method="gp")
            conditions = [dict(r) for _, r in batch.iterrows()]
            results = list(pool.map(lambda c: lab(c, c["suggestion"]), conditions))
            camp.observe(pd.DataFrame([{"suggestion": c["suggestion"], **{n: c[n] for n in INPUT_NAMES}, **res}
                                       for c, res in zip(conditions, results)]))
    return lab, time.perf_counter() - lab.start


def time_to(trace, threshold: float) -> float:
    best = np.inf
    for t, loss in sorted(trace):
        best = min(best, loss)
        if best <= threshold:
            return t
    return np.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=120)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--median", type=float, default=1.0)
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(args.seeds):
            a_lab, a_wall, a_loop = asynchronous(s, args.budget, args.workers, args.median, Path(tmp))
            s_lab, s_wall = synchronous(s, args.budget, args.workers, args.median, Path(tmp))
            runs.append((a_lab.trace, a_wall, s_lab.trace, s_wall, a_loop))
            print(f"seed {s}: async {a_wall:.0f} s best {min(l for _, l in a_lab.trace):.4f}; "
                  f"sync {s_wall:.0f} s best {min(l for _, l in s_lab.trace):.4f}", file=sys.stderr, flush=True)
    a_best = [min(loss for _, loss in r[0]) for r in runs]
    s_best = [min(loss for _, loss in r[2]) for r in runs]
    threshold = float(np.percentile(a_best + s_best, 75))  # reached by both loops in most seeds
    fmt = lambda v: f"{np.median(v):.3g} [{np.percentile(v, 25):.3g}, {np.percentile(v, 75):.3g}]"  # noqa: E731
    a_t = [time_to(r[0], threshold) for r in runs]
    s_t = [time_to(r[2], threshold) for r in runs]

    def reached(times):
        hit = [t for t in times if np.isfinite(t)]
        return f"{np.median(hit):.0f} s (reached in {len(hit)} of {len(times)})" if hit else f"never (0 of {len(times)})"

    print(f"Machine: {machine()}.\n")
    print(f"{args.seeds} seeds; {N0} + {args.budget} evaluations, {args.workers} at once, log-normal times (median "
          f"{args.median:g} s, sigma 0.8); loss threshold {threshold:.4f} (75th percentile of the final bests).\n")
    print("| loop | final best loss, median [25th, 75th] | wall time, all evaluations, s | time to the threshold |")
    print("| --- | --- | --- | --- |")
    print(f"| asynchronous (`run`) | {fmt(a_best)} | {fmt([r[1] for r in runs])} | {reached(a_t)} |")
    print(f"| synchronous batches of {args.workers} | {fmt(s_best)} | {fmt([r[3] for r in runs])} | {reached(s_t)} |")
    loop = [r[4] for r in runs]
    print(f"\nThe asynchronous loop's own work (suggest, observe, read the campaign) per evaluation: "
          f"{fmt(loop)} s, {args.median / np.median(loop):.1f}x below the median evaluation time.")
    wins = sum(a <= b for a, b in zip(a_best, s_best))
    print(f"\nAsynchronous final best at or below synchronous in {wins} of {len(runs)} seeds; wall time ratio "
          f"{np.median([r[1] / r[3] for r in runs]):.2f}.")


if __name__ == "__main__":
    main()
