"""PNG figures of a campaign (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    """Lay out, write and close a figure; return its path."""
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return Path(path)


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
    return _save(fig, path)


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
    return _save(fig, path)


def shap_bar(names, importance, path: Path, *, title: str) -> Path:
    """Horizontal bar chart of mean |SHAP| per input, most important on top."""
    plt = _pyplot()
    order = np.argsort(importance)
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5), dpi=120)
    ax.barh([names[i] for i in order], np.asarray(importance)[order], color="tab:blue")
    ax.set_xlabel("mean |SHAP value| (units of the prediction)")
    ax.set_title(title)
    return _save(fig, path)


def shap_beeswarm(names, values, x, path: Path, *, title: str) -> Path:
    """SHAP value of every explained point per input, coloured by the input's value (low blue, high red)."""
    plt = _pyplot()
    values, x = np.asarray(values), np.asarray(x)
    order = np.argsort(np.mean(np.abs(values), axis=0))
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.5), dpi=120)
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        span = np.ptp(x[:, j]) or 1.0
        colour = (x[:, j] - x[:, j].min()) / span
        ax.scatter(values[:, j], row + 0.15 * rng.standard_normal(len(values)), c=colour, cmap="coolwarm", s=12)
    ax.set_yticks(range(len(order)), [names[j] for j in order])
    ax.axvline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("SHAP value (colour: input value, blue low, red high)")
    ax.set_title(title)
    return _save(fig, path)


def attribution_heatmap(names, wavelengths, attributions, path: Path) -> Path:
    """Input x wavelength map of how strongly each input moves each part of the spectrum."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 2), dpi=120)
    wl = np.asarray(wavelengths)
    im = ax.imshow(np.asarray(attributions), aspect="auto", cmap="viridis",
                   extent=[wl[0], wl[-1], len(names) - 0.5, -0.5])
    ax.set_yticks(range(len(names)), list(names))
    ax.set_xlabel("wavelength (nm)")
    ax.set_title("Mean |integrated gradient| of the predicted spectrum")
    fig.colorbar(im, ax=ax, label="absorbance attributed")
    return _save(fig, path)


def landscape_map(gi, gj, values, path: Path, *, xlabel: str, ylabel: str, zlabel: str, points=None,
                  optimum=None, cmap: str = "viridis", labels_i=None, labels_j=None) -> Path:
    """Colour map over two inputs with measured points and the predicted optimum marked.

    A categorical input (its ``labels_i`` or ``labels_j``; its grid holds the
    label indices) with a continuous one gives one curve per label instead;
    two categorical inputs give a map with the labels as ticks.
    """
    plt = _pyplot()
    values = np.asarray(values)
    if (labels_i is None) != (labels_j is None):
        if labels_i is not None:  # the curves run along the other input
            gi, gj, values, xlabel, ylabel, labels_j = gj, gi, values.T, ylabel, xlabel, labels_i
            optimum = None if optimum is None else optimum[::-1]
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
        for b, label in enumerate(labels_j):
            ax.plot(gi, values[:, b], lw=1.5, label=f"{ylabel} = {label}")
        if optimum is not None:
            b = int(np.argmin(np.abs(np.asarray(gj) - optimum[1])))
            a = int(np.argmin(np.abs(np.asarray(gi) - optimum[0])))
            ax.scatter([gi[a]], [values[a, b]], marker="*", s=200, c="red", edgecolors="black", zorder=3,
                       label="predicted optimum")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(zlabel)
        ax.legend(fontsize=7)
        return _save(fig, path)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    im = ax.pcolormesh(gi, gj, values.T, cmap=cmap, shading="auto")
    if labels_i is not None:
        ax.set_xticks(gi, labels_i, rotation=30, fontsize=7)
        ax.set_yticks(gj, labels_j, fontsize=7)
    fig.colorbar(im, ax=ax, label=zlabel)
    if points is not None and len(points):
        ax.scatter(points[:, 0], points[:, 1], s=10, c="white", edgecolors="black", linewidths=0.5, label="measured")
    if optimum is not None:
        ax.scatter([optimum[0]], [optimum[1]], marker="*", s=200, c="red", edgecolors="black", label="predicted optimum")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if points is not None or optimum is not None:
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def parity(measured, predicted, path: Path, *, label: str) -> Path:
    """Predictions for the newest batch (made before it was added) against its measurements."""
    plt = _pyplot()
    measured, predicted = np.asarray(measured), np.asarray(predicted)
    lo = float(min(measured.min(), predicted.min()))
    hi = float(max(measured.max(), predicted.max()))
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.scatter(measured, predicted, c="tab:blue", s=20, label="newest batch")
    ax.set_xlabel(f"measured {label}")
    ax.set_ylabel(f"predicted {label} (model before this batch)")
    ax.set_title("Parity on the held-out newest batch")
    ax.legend()
    return _save(fig, path)


def front_staircase(front, signs, reference=None) -> np.ndarray:
    """Vertices of the boundary of the region a two-objective Pareto set dominates, in its own units.

    ``front``: ``(p, 2)`` non-dominated points; ``signs``: ``(2,)``, +1 for an
    objective maximised and -1 for one minimised. Between neighbouring points
    the boundary turns at the inner corner, so the path alternates horizontal
    and vertical segments. With ``reference`` the path starts and ends on its
    lines, closing the region whose area is the hypervolume.
    """
    signs = np.asarray(signs, float)
    p = np.asarray(front, float) * signs  # maximisation form: sorted by the first, the second falls
    p = p[np.argsort(p[:, 0])]
    if len(p) == 0:
        return np.empty((0, 2))
    path = np.empty((2 * len(p) - 1, 2))
    path[0::2] = p
    path[1::2] = np.column_stack([p[:-1, 0], p[1:, 1]])
    if reference is not None:
        r = np.asarray(reference, float) * signs
        path = np.concatenate([[[r[0], p[0, 1]]], path, [[p[-1, 0], r[1]]]])
    return path * signs


def pareto_front(values, front_mask, path: Path, *, names, signs=(1, 1), batches=None, reference=None) -> Path:
    """All evaluated points of two objectives (own units), the Pareto set joined by its staircase.

    ``values``: ``(n, 2)``; ``front_mask``: ``(n,)``; ``signs``: +1 for an
    objective maximised, -1 for one minimised (the staircase's corners depend
    on it); ``batches`` colours points by round.
    """
    plt = _pyplot()
    values = np.asarray(values)
    front_mask = np.asarray(front_mask, bool)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    if batches is None:
        ax.scatter(values[:, 0], values[:, 1], c="tab:gray", s=18, label="evaluated")
    else:
        from matplotlib.colors import BoundaryNorm
        from matplotlib.ticker import MaxNLocator

        batches = np.asarray(batches)
        edges = np.arange(batches.min() - 0.5, batches.max() + 1.0)  # one colour per round
        sc = ax.scatter(values[:, 0], values[:, 1], c=batches, cmap="viridis", s=18, label="evaluated",
                        norm=BoundaryNorm(edges, 256))
        fig.colorbar(sc, ax=ax, label="round (batch)", ticks=MaxNLocator(integer=True))
    f = values[front_mask]
    stairs = front_staircase(f, signs, reference)
    ax.plot(stairs[:, 0], stairs[:, 1], "-", color="tab:red", lw=1.0)
    ax.scatter(f[:, 0], f[:, 1], s=45, facecolors="none", edgecolors="tab:red", linewidths=1.5, label="Pareto set")
    if reference is not None:
        ax.scatter([reference[0]], [reference[1]], marker="x", c="black", s=50, label="reference point")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("Evaluated candidates and the Pareto front")
    ax.legend(fontsize=8)
    return _save(fig, path)


def hypervolume_curve(evaluations, hypervolumes, path: Path) -> Path:
    """Hypervolume of the measured set against the number of evaluations, one point per round."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(evaluations, hypervolumes, "o-", color="tab:red")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume")
    ax.set_title("Hypervolume against evaluations")
    ax.grid(alpha=0.3)
    return _save(fig, path)
