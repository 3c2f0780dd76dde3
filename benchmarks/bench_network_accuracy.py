"""Accuracy of the spectrum network on held-out recipes of the built-in lab.

    .venv/bin/python benchmarks/bench_network_accuracy.py [--seeds 5]

Trains the default deep ensemble on 60 and on 120 noisy spectra (Latin
hypercube recipes) and reports the median cosine similarity and the relative
MSE of its predictions against the noise-free spectra of 500 random feasible
recipes, with a single network of the same size for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxopt_mat as jm  # noqa: E402
from jaxopt_mat.objectives import cosine_similarity  # noqa: E402
from jaxopt_mat.surrogates.spectrum_net import fit_spectrum_ensemble  # noqa: E402
from jaxopt_mat.virtual_lab import CONSTRAINT_A, CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, SilverLab  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import machine  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    space = jm.SearchSpace(LOW, HIGH, names=INPUT_NAMES, A=CONSTRAINT_A, b=CONSTRAINT_B)
    lab = SilverLab()
    x_test = jm.random_design(space, 500, seed=999)
    truth = np.asarray(lab.spectra(x_test))
    out = [f"Machine: {machine()}.\n", f"## Spectrum network accuracy on 500 held-out recipes of the built-in lab ({args.seeds} seeds)\n",
           "| training spectra | members | median cosine similarity | relative MSE |", "| --- | --- | --- | --- |"]
    for n in (60, 120):
        for members in (1, 5):
            cos, rel = [], []
            for s in range(args.seeds):
                x = jm.latin_hypercube(space, n, seed=s)
                spectra = lab.measure(x, rng=np.random.default_rng(s))
                ens = fit_spectrum_ensemble(x, spectra, key=jax.random.key(s), low=LOW, high=HIGH, n_members=members)
                pred = np.asarray(ens.predict(x_test)[0])
                cos.append(float(np.median(np.asarray(cosine_similarity(pred, truth)))))
                rel.append(float(np.mean((pred - truth) ** 2) / np.mean(truth**2)))
            out.append(f"| {n} | {members} | {np.median(cos):.4f} [{min(cos):.4f}, {max(cos):.4f}] | "
                       f"{np.median(rel):.4f} [{min(rel):.4f}, {max(rel):.4f}] |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
