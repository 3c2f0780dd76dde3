"""PNG figures of a campaign (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def convergence(values: np.ndarray, batches: np.ndarray, path: Path, *, ylabel: str, minimize: bool = True) -> Path:
    """Box plot of each batch's measured values with the best-so-far line (the study's Fig. 2)."""
    plt = _pyplot()
    order = sorted(set(int(b) for b in batches))
    groups = [values[batches == b] for b in order]
    best = [(np.min if minimize else np.max)(np.concatenate(groups[: i + 1])) for i in range(len(groups))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.boxplot(groups, positions=order, widths=0.6)
    ax.plot(order, best, "o-", color="tab:red", label="best so far")
    ax.set_xlabel("round (batch)")
    ax.set_ylabel(ylabel)
    ax.set_title("Measured values per round")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def best_spectrum(wavelengths, measured, target, path: Path, *, loss: float, band=None) -> Path:
    """The best measured spectrum against the target (optionally with a prediction band ``(low, high)``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(wavelengths, target, "k--", label="target")
    ax.plot(wavelengths, measured, color="tab:blue", label=f"best measured (loss {loss:.3f})")
    if band is not None:
        ax.fill_between(wavelengths, band[0], band[1], color="tab:blue", alpha=0.2, label="prediction band")
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("absorbance")
    ax.set_title("Best spectrum against the target")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
