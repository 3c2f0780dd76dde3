"""Hypervolume and EHVI for three and four objectives against references that share no code with the package.

- Integer fronts: the hypervolume is a count of dominated unit cells (exact).
- Real fronts: inclusion–exclusion over subsets of the front (exact to rounding).
- EHVI: the same inclusion–exclusion, taken in expectation: for independent
  Gaussian outcomes each subset's term factorises into 1-D expectations
  ``E[(min(Y, c) - r)^+]`` computed with scipy; a different decomposition
  from the package's grid boxes, exact to rounding.
"""

from itertools import combinations, product

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from jaxopt_mat import expected_hypervolume_improvement, hypervolume


def counted_hypervolume(points: np.ndarray, top: int) -> int:
    """Unit cells ``[c, c + 1]`` of ``[0, top]^m`` dominated by an integer point (reference 0)."""
    m = points.shape[1]
    return sum(bool(np.any(np.all(points >= np.array(c) + 1, axis=1))) for c in product(range(top), repeat=m))


def inclusion_exclusion_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """``sum over non-empty subsets T of (-1)^(|T|+1) vol([ref, min T])``."""
    pts = [p for p in points if np.all(p > ref)]
    total = 0.0
    for r in range(1, len(pts) + 1):
        for subset in combinations(pts, r):
            total += (-1) ** (r + 1) * float(np.prod(np.min(subset, axis=0) - ref))
    return total


def _expected_clipped_box(mean, std, corner, ref) -> float:
    """``E[prod_d (min(Y_d, c_d) - r_d)^+]`` for independent ``Y_d ~ N(mean_d, std_d^2)``."""
    def tail(a):  # E[(Y - a)^+], scipy's normal; 0 at a = +inf
        z = (mean - np.where(np.isinf(a), mean, a)) / std
        return np.where(np.isinf(a), 0.0, std * (norm.pdf(z) + z * norm.cdf(z)))

    factors = np.where(corner > ref, tail(ref) - tail(corner), 0.0)
    return float(np.prod(factors))


def inclusion_exclusion_ehvi(mean, std, front, ref) -> float:
    """``E[HVI(Y)] = sum over subsets T of the front of (-1)^|T| E[vol([ref, min(Y, min T)])]``."""
    pts = [p for p in front if np.all(p > ref)]
    total = 0.0
    for r in range(0, len(pts) + 1):
        for subset in combinations(pts, r):
            corner = np.min(subset, axis=0) if subset else np.full_like(ref, np.inf)
            total += (-1) ** r * _expected_clipped_box(mean, std, corner, ref)
    return total


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 4), st.lists(st.integers(1, 5), min_size=3, max_size=28))
def test_hypervolume_of_integer_fronts_equals_the_count_of_dominated_cells(m, cells):
    points = np.array(cells[: len(cells) // m * m], dtype=float).reshape(-1, m)
    exact = counted_hypervolume(points, 5)
    assert float(hypervolume(jnp.asarray(points), jnp.zeros(m))) == exact
    assert inclusion_exclusion_hypervolume(points, np.zeros(m)) == exact  # the two references agree


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.integers(3, 4), st.integers(1, 7))
def test_hypervolume_of_real_fronts_equals_inclusion_exclusion(seed, m, n):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, m))
    ref = rng.normal(size=m) - 1.0
    ours = float(hypervolume(jnp.asarray(points), jnp.asarray(ref)))
    exact = inclusion_exclusion_hypervolume(points, ref)
    assert abs(ours - exact) <= 1e-12 * max(1.0, abs(exact))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.integers(3, 4), st.integers(1, 6), st.floats(0.05, 2.0))
def test_ehvi_equals_inclusion_exclusion_in_expectation(seed, m, n, spread):
    rng = np.random.default_rng(seed)
    front = rng.normal(size=(n, m))
    ref = np.min(front, axis=0) - rng.uniform(0.1, 1.0, size=m)
    mean = rng.normal(size=(4, m)) + rng.uniform(-0.5, 1.0)
    std = spread * rng.uniform(0.2, 1.0, size=(4, m))
    ours = np.asarray(expected_hypervolume_improvement(jnp.asarray(mean), jnp.asarray(std), jnp.asarray(front),
                                                       jnp.asarray(ref)))
    exact = np.array([inclusion_exclusion_ehvi(mu, sd, front, ref) for mu, sd in zip(mean, std)])
    np.testing.assert_allclose(ours, exact, rtol=1e-9, atol=1e-12)
