"""Projected gradient ascent from many starts at once: the step every maximiser in the package takes.

Adam with each coordinate's step scale floored at a fraction of its row's
largest (:func:`scale_by_row_adam`), every iterate projected back into the
bounds and linear constraints, and the best feasible point of each start kept.
Coordinates a space holds (categorical inputs, fixed values) never move.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_mat.space import SearchSpace


def sample_feasible_unit(space: SearchSpace, key, n: int):
    """``n`` feasible points in unit-cube coordinates (uniform draws, repaired if needed).

    Repair pulls infeasible draws towards the Chebyshev centre, so the sample is
    feasible but denser near the constraint boundary than uniform.
    """
    u = jax.random.uniform(key, (n, space.dim), dtype=jnp.asarray(space.low).dtype)
    return space.repair_unit(u) if space.n_constraints else u


class _RowAdamState(NamedTuple):
    count: jnp.ndarray
    mu: jnp.ndarray
    nu: jnp.ndarray


def scale_by_row_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-12,
                      relative_floor: float = 0.1) -> optax.GradientTransformation:
    """Adam's scaling with each coordinate's denominator floored at a fraction of its row's largest.

    For a batch of starts ``(n, d)``: plain Adam divides every coordinate by its
    own gradient scale, so a coordinate the function barely depends on (a GP
    length-scale far longer than the box) takes full-size steps in the
    direction of its tiny gradient and ends on a bound. Here a coordinate's
    denominator is at least ``relative_floor`` times the largest of its row:
    coordinates whose gradients are within that factor of the steepest move as
    in Adam, the others in proportion to their gradient, so they stay near
    their starting values. ``relative_floor = 0`` is Adam.
    """

    def init(params):
        zeros = jnp.zeros_like(params)
        return _RowAdamState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(updates, state, params=None):
        del params
        mu = b1 * state.mu + (1 - b1) * updates
        nu = b2 * state.nu + (1 - b2) * updates**2
        count = state.count + 1
        t = count.astype(updates.dtype)
        mu_hat = mu / (1 - b1**t)
        scale = jnp.sqrt(nu / (1 - b2**t))
        scale = jnp.maximum(scale, relative_floor * jnp.max(scale, axis=-1, keepdims=True))
        return mu_hat / (scale + eps), _RowAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def safe_values(fn_unit, u):
    """``fn_unit(u)`` with every value that is not finite replaced by ``-inf``."""
    v = fn_unit(u)
    return jnp.where(jnp.isfinite(v), v, -jnp.inf)


def ascend_unit(fn_unit, space: SearchSpace, starts, *, n_steps, learning_rate):
    """Projected gradient ascent from feasible ``starts`` ``(n, d)``: the best point and value each start visited.

    Coordinates the space holds (categorical, fixed) are not moved.
    """
    opt = optax.chain(scale_by_row_adam(), optax.scale(-learning_rate))
    held = jnp.asarray(space.held)

    def total(u):  # rows are independent: the gradient of the sum is each row's own; the values come along
        v = fn_unit(u)
        return -jnp.sum(v), v

    grad_fn = jax.value_and_grad(total, has_aux=True)

    def keep_best(u, v, best_u, best_v):
        v = jnp.where(jnp.isfinite(v), v, -jnp.inf)
        better = v > best_v
        return jnp.where(better[:, None], u, best_u), jnp.where(better, v, best_v)

    def step(carry, _):  # the value of each iterate comes from the pass that takes its gradient
        u, state, best_u, best_v = carry
        (_, v), g = grad_fn(u)
        best_u, best_v = keep_best(u, v, best_u, best_v)
        g = jnp.where(jnp.isfinite(g) & ~held, g, 0.0)
        updates, state = opt.update(g, state, u)
        u = space.project_unit(optax.apply_updates(u, updates))
        return (u, state, best_u, best_v), None

    carry = (starts, opt.init(starts), starts, jnp.full(starts.shape[0], -jnp.inf, starts.dtype))
    (u, _, best_u, best_v), _ = jax.lax.scan(step, carry, None, length=n_steps)
    best_u, best_v = keep_best(u, fn_unit(u), best_u, best_v)  # the last iterate
    return best_u, best_v
