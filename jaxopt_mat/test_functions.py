"""Standard test functions for closed-loop checks, demos and benchmarks.

Each is written for a batch ``(n, d)`` in its own domain and returns ``(n,)``;
all are to be *minimised* and carry their domain and known global minimum.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np


class ToyProblem(NamedTuple):
    name: str
    fn: Callable
    low: np.ndarray
    high: np.ndarray
    minimum: float


def branin(x):
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at three points."""
    x1, x2 = x[..., 0], x[..., 1]
    b = 5.1 / (4 * jnp.pi**2)
    c = 5.0 / jnp.pi
    t = 1.0 / (8 * jnp.pi)
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * jnp.cos(x1) + 10.0


_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x):
    """Hartmann-6 on [0, 1]^6; minimum -3.32237."""
    inner = jnp.sum(_H6_A * (x[..., None, :] - _H6_P) ** 2, axis=-1)
    return -jnp.sum(_H6_ALPHA * jnp.exp(-inner), axis=-1)


BRANIN = ToyProblem("branin", branin, np.array([-5.0, 0.0]), np.array([10.0, 15.0]), 0.397887)
HARTMANN6 = ToyProblem("hartmann6", hartmann6, np.zeros(6), np.ones(6), -3.32237)
