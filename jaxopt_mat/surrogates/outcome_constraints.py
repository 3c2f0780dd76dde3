"""Constraints on measured outcomes: one GP per constrained column, and the probability that every bound holds.

Gardner, Kusner, Xu, Weinberger & Cunningham, "Bayesian Optimization with
Inequality Constraints", ICML 2014: with independent GPs of the constrained
outcomes ``c_j``, the probability that a condition satisfies them all is
``prod_j P(c_j(x) <= b_j)`` (or ``>=``), and the constrained acquisition is
the acquisition times that probability (in log space: plus its log). The
spectrum campaigns' intensity window (the peak must stay below the window's
top) is one such constraint, on the log of the peak absorbance.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from jaxopt_mat.surrogates.feasibility import PENALTY
from jaxopt_mat.surrogates.gp import MAX_ITER, fit_gp


class OutcomeConstraints(NamedTuple):
    """GPs of constrained outcomes with their bounds (a pytree: pass it through ``jit``).

    Attributes:
        models: one fitted GP per constraint.
        bounds: ``(c,)`` each constraint's bound, in its outcome's units.
        signs: ``(c,)`` +1 for an upper bound (``<=``), -1 for a lower bound (``>=``).
    """

    models: tuple
    bounds: jnp.ndarray
    signs: jnp.ndarray

    def log_probability(self, x) -> jnp.ndarray:
        """``(n,)`` log of the probability that every constraint holds at ``x`` ``(n, d)`` (physical units)."""
        total = jnp.zeros(jnp.shape(x)[0], jnp.asarray(self.bounds).dtype)
        for j, model in enumerate(self.models):
            post = model.predict(x)
            total = total + log_ndtr(self.signs[j] * (self.bounds[j] - post.mean) / post.std)
        return total

    def probability(self, x) -> jnp.ndarray:
        return jnp.exp(self.log_probability(x))

    def log_constraint(self, x) -> jnp.ndarray:
        """``P(all hold) >= 1/2`` as a soft penalty, for scores that are not log acquisitions (as
        :meth:`~jaxopt_mat.surrogates.feasibility.FeasibilityModel.log_constraint`)."""
        return PENALTY * jnp.minimum(self.log_probability(x) + jnp.log(2.0), 0.0)

    def __add__(self, other: "OutcomeConstraints") -> "OutcomeConstraints":  # type: ignore[override]
        """Both sets of constraints (e.g. the intensity window and the user's)."""
        return OutcomeConstraints(self.models + other.models, jnp.concatenate([self.bounds, other.bounds]),
                                  jnp.concatenate([self.signs, other.signs]))


def outcome_constraints(models, bounds, upper) -> OutcomeConstraints:
    """:class:`OutcomeConstraints` from fitted GPs, their bounds and whether each bound is an upper one."""
    bounds = jnp.asarray(np.asarray(bounds, dtype=np.float64))
    signs = jnp.asarray(np.where(np.asarray(upper, bool), 1.0, -1.0))
    return OutcomeConstraints(tuple(models), bounds, signs)


def fit_outcome_constraints(x, outcomes, constraints, *, key, low, high, inits=None, noise_variance=None, features=None,
                            program_cache=None, max_iter=MAX_ITER) -> OutcomeConstraints:
    """One GP per constraint of ``constraints`` on its column of ``outcomes``.

    Args:
        x: ``(n, d)`` conditions.
        outcomes: ``(n, k)`` the constrained columns (e.g. replicate medians), one per distinct
            column name of ``constraints``, in order of first mention.
        constraints: :class:`~jaxopt_mat.campaign.objective.OutcomeConstraint` values (name, op, bound).
        inits: optional warm start per column (``fit_gp``'s ``init``).
        noise_variance: optional ``(n, k)`` known noise variance of each value (``fit_gp``'s).
        max_iter: ``fit_gp``'s (0 with ``inits``: the GPs of those hyper-parameters, not fitted), or one per column.
    """
    names = list(dict.fromkeys(c.name for c in constraints))
    keys = jax.random.split(key, len(names))
    inits = inits or (None,) * len(names)
    known = (None,) * len(names) if noise_variance is None else tuple(np.asarray(noise_variance).T)
    iters = (max_iter,) * len(names) if isinstance(max_iter, int) else tuple(max_iter)
    fitted = {n: fit_gp(x, np.asarray(outcomes)[:, j], key=keys[j], low=low, high=high, init=inits[j], features=features,
                        noise_variance=known[j], program_cache=program_cache, max_iter=iters[j])
              for j, n in enumerate(names)}
    return outcome_constraints([fitted[c.name] for c in constraints], [c.bound for c in constraints],
                               [c.upper for c in constraints])
