"""SHAP ranking of the five flows on the study's own experimental data.

    .venv/bin/python benchmarks/bench_explain_olympus.py [--data ../shared/data]

Fits the package's GP to the 164 unique conditions of
``olympus_agnp/data.csv`` (``spectrum_score``, higher is better) and reports
the exact SHAP importance of each flow for the GP's predicted score, plus the
GP's leave-one-out R².
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxopt_mat import fit_gp  # noqa: E402
from jaxopt_mat.explain import shap_values  # noqa: E402
from jaxopt_mat.surrogates.gp_quality import fit_quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402

NAMES = ["q_agno3", "q_pva", "q_tsc", "q_seed", "q_tot"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("JAXOPT_MAT_DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data")))
    args = ap.parse_args()
    data = np.loadtxt(Path(args.data) / "olympus_agnp" / "data.csv", delimiter=",")
    x, y = data[:, :5], data[:, 5]
    low, high = np.array([4.0, 10.0, 0.5, 0.5, 200.0]), np.array([45.0, 40.0, 30.0, 20.0, 1000.0])
    model = fit_gp(x, y, key=jax.random.key(0), low=low, high=high)
    q = fit_quality(model, y)
    exp = shap_values(jax.jit(lambda z: model.predict(z).mean), x, x, names=NAMES)
    out = [f"Machine: {machine()}.\n",
           f"## SHAP ranking of the flows on the study's data (olympus_agnp/data.csv, {len(y)} conditions)\n",
           f"GP leave-one-out R² = {q['loo_r2']:.3f}, noise std = {q['noise_std']:.4f}.\n",
           "| rank | input | mean abs SHAP of the predicted spectrum score |", "| --- | --- | --- |"]
    for r, name in enumerate(exp.ranking(), 1):
        out.append(f"| {r} | {name} | {exp.importance[NAMES.index(name)]:.4f} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
