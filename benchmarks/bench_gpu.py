"""The GPU-relevant figures in one run, written as one JSON file (run by ``benchmarks/gpu.sh``).

    python benchmarks/bench_gpu.py --data DIR_WITH_agbonn_dnn.npz --out gpu.json [--quick]

- EHVI over 1,000,000 and 10,000,000 pool candidates (two GPs, n = 100,
  d = 10, a 50-point front), float64 and float32, median of 3 warm passes;
- the study's network: the 20^5 grid (3.2 million recipes, the feasible
  ones evaluated) against the gradient method, two targets, median of 3;
- a pool campaign through the CLI: ``bench_big_pool_cli.py`` with one run
  of its scenario (a million candidates).

Every figure names the device it ran on. It runs on a CPU too (``--quick``
shrinks the sizes), which is how it is tested before a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.acquisition.ehvi import score_pool  # noqa: E402
from jaxopt_mat.surrogates.independent import fit_objectives, predict_objectives  # noqa: E402
from jaxopt_mat.virtual_lab import CONSTRAINT_A, CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, load_spectrum_network, mlp_spectra  # noqa: E402,E501

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_core import timed  # noqa: E402  (median after a warm-up)


def ehvi_rates(sizes: list[int]) -> list[dict]:
    rng = np.random.default_rng(0)
    d = 10
    x = rng.uniform(size=(100, d))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1], np.cos(2 * x[:, 2]) - x[:, 3] ** 2], -1)
    models = fit_objectives(x, y, key=jax.random.key(0), low=np.zeros(d), high=np.ones(d))
    front = jnp.asarray(np.stack([np.linspace(0.0, 1.5, 50), 1.0 - np.linspace(0.0, 1.5, 50) ** 2], -1))
    ref = jnp.asarray([-1.0, -2.0])
    out = []
    for n in sizes:
        feats = jax.random.uniform(jax.random.key(1), (n, d), dtype=jnp.float64)
        for label, dtype in (("float64", None), ("float32", jnp.float32)):
            med, times = timed(lambda: score_pool(predict_objectives, (models, jnp.ones(2)), feats, front, ref,
                                                  dtype=dtype), repeats=3)
            out.append({"candidates": n, "precision": label, "seconds": med, "runs": times,
                        "candidates_per_second": n / med})
            print(f"EHVI {n:,} {label}: {med:.3f} s ({n / med:,.0f}/s)", flush=True)
    return out


def neg_loss(x, params, target):
    return -jm.spectrum_loss(mlp_spectra(params, x.astype(jnp.float32)), target)


def neg_smooth_loss(x, params, target):
    return -jm.spectrum_loss(mlp_spectra(params, x.astype(jnp.float32)), target, smoothness=0.02)


def grid_against_gradient(data: Path, resolution: int) -> list[dict]:
    raw = load_spectrum_network(data / "agbonn_dnn.npz")
    params = {k: jnp.asarray(v, jnp.float32) for k, v in raw.items() if k != "wavelength_nm"}
    wl = np.asarray(raw["wavelength_nm"], dtype=float)
    space = jm.SearchSpace(LOW, HIGH, names=INPUT_NAMES, A=CONSTRAINT_A, b=CONSTRAINT_B)
    targets = {"recipe (18, 22, 12, 3, 450)": mlp_spectra(params, jnp.asarray([[18.0, 22.0, 12.0, 3.0, 450.0]],
                                                                            jnp.float32))[0],
               "Gaussian band 520 nm": jnp.asarray(np.exp(-0.5 * ((wl - 520.0) / 40.0) ** 2), jnp.float32)}
    out = []
    for label, target in targets.items():
        grid_s, _ = timed(lambda: jm.maximize_grid(neg_loss, space, resolution=resolution,
                                                   args=(params, target)).value, repeats=3)
        grid = jm.maximize_grid(neg_loss, space, resolution=resolution, args=(params, target))
        grad_s, _ = timed(lambda: jm.maximize(neg_smooth_loss, space, key=jax.random.key(0),
                                              args=(params, target)).x, repeats=3)
        res = jm.maximize(neg_smooth_loss, space, key=jax.random.key(0), args=(params, target))
        grad_loss = float(-neg_loss(res.x[None], params, target)[0])
        out.append({"target": label, "grid_points": resolution ** 5, "grid_seconds": grid_s,
                    "grid_loss": float(-grid.value), "gradient_seconds": grad_s, "gradient_loss": grad_loss})
        print(f"{label}: grid {grid_s:.3f} s loss {-float(grid.value):.5f}; gradient {grad_s:.3f} s "
              f"loss {grad_loss:.5f}", flush=True)
    return out


def cli_pool(rows: int) -> str:
    res = subprocess.run([sys.executable, str(HERE / "bench_big_pool_cli.py"), "--rows", str(rows), "--repeats", "1"],
                         capture_output=True, text=True, timeout=420)
    if res.returncode != 0:
        return f"failed: {res.stderr[-1500:]}"
    return res.stdout[res.stdout.index("\n|") + 1:] if "\n|" in res.stdout else res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder holding agbonn_dnn.npz")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="small sizes: a check of the script itself")
    args = ap.parse_args()
    dev = jax.devices()[0]
    figures = {"device": f"{dev.platform}: {getattr(dev, 'device_kind', '')}", "jax": jax.__version__,
               "devices": len(jax.devices()), "date": time.strftime("%Y-%m-%d")}
    t0 = time.perf_counter()
    figures["ehvi"] = ehvi_rates([20_000, 50_000] if args.quick else [1_000_000, 10_000_000])
    figures["grid_vs_gradient"] = grid_against_gradient(args.data, 8 if args.quick else 20)
    figures["cli_pool_campaign"] = cli_pool(20_000 if args.quick else 1_000_000)
    figures["seconds"] = time.perf_counter() - t0
    args.out.write_text(json.dumps(figures, indent=1))
    print(f"wrote {args.out} ({figures['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
