"""A monotone warp of a scalar objective before its GP: a long tail of bad values compressed.

Objectives such as a yield that collapses outside a narrow window, a reaction
time, a cost, or the Rosenbrock valley spread their bad values over decades
while the good ones differ by little. A GP of such values spends its variance
on the bad tail, fits a short length-scale to it and sees the good region as
flat. Fitting the GP to a Yeo-Johnson transform (Yeo & Johnson, Biometrika
2000) of the objective compresses that tail; HEBO (Cowen-Rivers et al., JAIR
2022) does the same to every objective.

Unlike a plain normalising transform, this one is one-sided: the power
``lam`` is the Yeo-Johnson maximum-likelihood power of the objective oriented
so that bad values are large, capped at 1. A long tail of bad values
(``lam < 1``) is compressed; a long tail of good values (a narrow optimum, as
in Hartmann-6) is left alone (``lam = 1``, the identity up to scale), because
expanding the bad side would hide the very differences the search needs.
The warp is strictly increasing in the oriented objective, so the best
condition, the incumbent and the ranking are unchanged.

Plain numpy: it runs once per fit on a few hundred numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDA_RANGE = (0.0, 1.0)


def _yeo_johnson(v, lam):
    v = np.asarray(v, dtype=np.float64)
    pos = np.maximum(v, 0.0)
    neg = np.maximum(-v, 0.0)
    up = np.log1p(pos) if lam == 0.0 else ((pos + 1.0) ** lam - 1.0) / lam
    down = -((neg + 1.0) ** (2.0 - lam) - 1.0) / (2.0 - lam)  # lam <= 1: never the log branch
    return np.where(v >= 0.0, up, down)


def _yeo_johnson_inverse(w, lam):
    w = np.asarray(w, dtype=np.float64)
    pos = np.maximum(w, 0.0)
    neg = np.maximum(-w, 0.0)
    up = np.expm1(pos) if lam == 0.0 else (lam * pos + 1.0) ** (1.0 / lam) - 1.0
    down = -((1.0 + (2.0 - lam) * neg) ** (1.0 / (2.0 - lam)) - 1.0)
    return np.where(w >= 0.0, up, down)


@dataclass(frozen=True)
class OutputWarp:
    """``w = yeo_johnson(sign * (y - loc) / scale, lam)``: increasing in ``sign * y``, so in badness.

    ``sign`` is 1 for an objective to minimise and -1 for one to maximise. The
    model's target is ``sign * w``, which keeps the objective's direction.
    """

    sign: float
    loc: float
    scale: float
    lam: float

    @property
    def is_identity(self) -> bool:
        """Whether the warp is affine (``lam = 1``): a GP of its values is a GP of the objective."""
        return self.lam == 1.0

    def forward(self, y) -> np.ndarray:
        """The GP's target for objective values ``y`` (same direction as ``y``)."""
        v = self.sign * (np.asarray(y, dtype=np.float64) - self.loc) / self.scale
        return self.sign * _yeo_johnson(v, self.lam)

    def inverse(self, t) -> np.ndarray:
        """Objective values of GP targets ``t``: ``inverse(forward(y)) == y``."""
        v = _yeo_johnson_inverse(self.sign * np.asarray(t, dtype=np.float64), self.lam)
        return self.loc + self.sign * self.scale * v

    def derivative(self, y) -> np.ndarray:
        """``d forward / d y`` (positive): how a small spread in ``y`` maps to the GP's scale."""
        v = self.sign * (np.asarray(y, dtype=np.float64) - self.loc) / self.scale
        return np.where(v >= 0.0, (1.0 + np.abs(v)) ** (self.lam - 1.0),
                        (1.0 + np.abs(v)) ** (1.0 - self.lam)) / self.scale

    def posterior(self, mean, std) -> tuple[np.ndarray, np.ndarray]:
        """A GP's predictive ``(mean, std)`` in warped units back in objective units.

        The mean maps to the predictive median (the warp is monotone); the
        spread to first order (the delta method), ``std / forward'(median)``.
        """
        median = self.inverse(mean)
        return median, np.asarray(std, dtype=np.float64) / self.derivative(median)

    def noise_variance(self, y, variance) -> np.ndarray | None:
        """Known noise variances of objective values ``y`` in the warped units (delta method); None stays None."""
        if variance is None:
            return None
        return np.asarray(variance, dtype=np.float64) * self.derivative(y) ** 2


def _log_likelihood(z: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """The Yeo-Johnson profile log-likelihood of ``z`` at each power ``lams`` (in [0, 2)), as scipy's ``yeojohnson_llf``."""
    pos, neg = np.log1p(np.maximum(z, 0.0)), np.log1p(np.maximum(-z, 0.0))
    lams = np.asarray(lams, dtype=np.float64)[:, None]
    safe = np.where(lams == 0.0, 1.0, lams)
    up = np.where(lams == 0.0, pos, np.expm1(lams * pos) / safe)
    down = -np.expm1((2.0 - lams) * neg) / (2.0 - lams)
    t = np.where(z >= 0.0, up, down)
    return -0.5 * z.size * np.log(np.var(t, axis=1)) + (lams[:, 0] - 1.0) * np.sum(np.sign(z) * np.log1p(np.abs(z)))


def yeo_johnson_power(z) -> float:
    """The power in :data:`LAMBDA_RANGE` of largest Yeo-Johnson likelihood for ``z``: scipy's ``yeojohnson_normmax``
    clipped to the range (a grid, then golden sections to 1e-12; numpy, so a command need not import scipy.stats)."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = LAMBDA_RANGE
    grid = np.linspace(lo, hi, 41)
    k = int(np.argmax(_log_likelihood(z, grid)))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    while b - a > 1e-12:
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        fc, fd = _log_likelihood(z, [c, d])
        a, b = (a, d) if fc >= fd else (c, b)
    lam = 0.5 * (a + b)
    near = [end for end in (lo, hi) if abs(lam - end) < 1e-9]  # the likelihood is too flat there to tell them apart
    if near:  # a maximum at (or beyond) an end is that end exactly: lam = 1 is the identity
        return float(near[0])
    candidates = np.array([lo, hi, lam])
    return float(candidates[int(np.argmax(_log_likelihood(z, candidates)))])


def fit_output_warp(y, *, maximize: bool) -> OutputWarp:
    """The warp for objective values ``y`` (one per condition): see the module's docstring.

    The power is the Yeo-Johnson maximum-likelihood estimate for the
    standardised values oriented so that bad is large, within
    :data:`LAMBDA_RANGE` (:func:`yeo_johnson_power`); fewer than 5 distinct values, or none spread,
    give the identity.
    """
    y = np.asarray(y, dtype=np.float64)
    sign = -1.0 if maximize else 1.0
    loc = float(np.mean(y)) if y.size else 0.0
    scale = float(np.std(y)) if y.size else 0.0
    if np.unique(y).size < 5 or not scale > 0.0 or not np.all(np.isfinite(y)):
        return OutputWarp(sign, loc, scale if scale > 0.0 else 1.0, 1.0)
    lam = yeo_johnson_power(sign * (y - loc) / scale)
    lam = lam if np.isfinite(lam) else 1.0
    return OutputWarp(sign, loc, scale, lam)
