"""Strategies: a snapshot and a request in, a batch out; no file is read or written here.

:data:`REGISTRY` maps each kind of campaign to its methods; :func:`suggest`
decides, in this one place, whether a call is still in the initial design or
may use a model, runs the strategy and adds what every batch reports (bound
pressure). The stop rules (:mod:`jaxopt_mat.stopping`) read the strategy's
diagnostics; the shells (:mod:`jaxopt_mat.api`, the CLI) write its batch and state.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.errors import DataError
from jaxopt_mat.strategies import designs
from jaxopt_mat.strategies.base import (Context, Request, Suggestion, base_seed, check_batch_size,
                                        next_suggestion_seed, pending_note)
from jaxopt_mat.strategies.gp import suggest_gp
from jaxopt_mat.strategies.pareto import suggest_continuous
from jaxopt_mat.strategies.pool import check_free, suggest_pool_gp
from jaxopt_mat.strategies.spectrum import suggest_auto, suggest_cgp, suggest_dnn, suggest_mixed

Strategy = Callable[[Snapshot, Request, Context], Suggestion]

# Per kind of campaign: method name -> strategy. The first method is the kind's default.
REGISTRY: dict[str, dict[str, Strategy]] = {
    "scalar": {"gp": suggest_gp, "random": designs.random, "lhs": designs.lhs},
    "pareto": {"gp": suggest_continuous, "random": designs.random, "lhs": designs.lhs},
    "spectrum": {"auto": suggest_auto, "gp": suggest_gp, "cgp": suggest_cgp, "dnn": suggest_dnn,
                 "mixed": suggest_mixed, "random": designs.random, "lhs": designs.lhs},
    "pool": {"gp": suggest_pool_gp, "random": designs.pool_random, "spread": designs.pool_spread},
}
# Methods that fit a model, and so wait for the initial design; what that design is, per kind.
MODEL_BASED = {"gp", "cgp", "dnn", "mixed", "auto"}
INITIAL_DESIGN = {"scalar": "lhs", "pareto": "lhs", "spectrum": "lhs", "pool": "spread"}
# A suggestion within this fraction of an input's range from a bound "touches" it.
BOUND_TOL = 0.01
# Share of a batch touching the same bound, in this batch and the previous one, that counts as "pressing" against it.
PRESSURE_SHARE = 0.3


def campaign_kind(snap: Snapshot) -> str:
    """``pool``, or the objective's kind (``scalar``, ``spectrum``, ``pareto``)."""
    return "pool" if snap.config.is_pool else snap.config.objective.kind


def methods(snap: Snapshot) -> tuple[str, ...]:
    """The methods ``suggest`` accepts for this campaign, its default first."""
    return tuple(REGISTRY[campaign_kind(snap)])


def suggest(snap: Snapshot, batch: int, *, method: str | None = None, seed: int | None = None, kappa: float = 0.0,
            ignore_pending: bool = False, refit_after: int = 1, context: Context | None = None) -> Suggestion:
    """The next ``batch`` conditions for the campaign in ``snap``.

    The random stream depends on the seed (default: the campaign's) and on the
    number of batches suggested so far, so a repeated call on the same state
    gives the same batch, and successive batches differ. Rows suggested
    earlier and not yet observed (``snap.pending``) are runs still in the lab:
    the batch keeps away from them (pool rows are never suggested twice)
    unless ``ignore_pending``. GP hyper-parameters are optimized again once
    ``refit_after`` conditions were added since their last optimization (1: every call);
    in between, the GPs keep them and condition on all the data (what
    :func:`~jaxopt_mat.run` asks for: one optimization per ``parallel`` runs).

    Raises:
        DataError: an unknown method, a batch size out of range, or (pools) too few candidates left.
    """
    ctx = context or Context()
    check_batch_size(batch)
    if ignore_pending:
        snap = snap.without_pending()
    kind = campaign_kind(snap)
    allowed = REGISTRY[kind]
    method = method or next(iter(allowed))
    if method not in allowed:
        what = f"pool {snap.config.objective.kind}" if kind == "pool" else kind
        raise DataError(f"unknown method {method!r} for a {what} campaign (choose from {', '.join(allowed)})")
    if kind == "pool":
        check_free(snap, batch)
    req = Request(batch, method, base_seed(snap, seed), next_suggestion_seed(snap, seed), kappa,
                  refit_after=max(1, int(refit_after)))
    strategy, notes = allowed[method], []
    # Failed runs count towards the initial design (they inform the success model), but a GP needs results.
    n_failed = snap.failed_x.shape[0]
    initial = snap.config.initial_design
    if method in MODEL_BASED and (snap.n_conditions + n_failed < initial or snap.n_conditions < min(3, initial)):
        design = INITIAL_DESIGN[kind]
        what = "candidates" if kind == "pool" else "conditions"
        returning = ("a space-filling selection from the pool" if kind == "pool" else "a Latin-hypercube design")
        failed = f" ({n_failed} more failed)" if n_failed else ""
        notes.append(f"{snap.n_conditions} of {initial} initial {what} measured{failed}: returning {returning}")
        strategy = allowed[design]
    result = strategy(snap, req, ctx)
    result.notes = notes + result.notes + pending_note(snap)
    return result


def bound_pressure(snap: Snapshot, x_new: np.ndarray) -> list[tuple[str, str, float, float]]:
    """Extendable inputs whose suggestions press against a bound in this batch and the previous one.

    Returns ``(name, side, share in this batch, share in the previous batch)`` per pressed bound.
    """
    previous = snap.previous_batch
    if previous is None or snap.config.is_pool:
        return []
    out = []
    for j, inp in enumerate(snap.config.inputs):
        if not inp.extendable:
            continue
        width = inp.high - inp.low
        for side, bound in (("low", inp.low), ("high", inp.high)):
            now = float(np.mean(np.abs(x_new[:, j] - bound) <= BOUND_TOL * width))
            before = float(np.mean(np.abs(previous[:, j] - bound) <= BOUND_TOL * width)) if previous.size else 0.0
            if now >= PRESSURE_SHARE and before >= PRESSURE_SHARE:
                out.append((inp.name, side, now, before))
    return out


__all__ = ["Context", "INITIAL_DESIGN", "MODEL_BASED", "REGISTRY", "Request", "Suggestion", "bound_pressure",
           "campaign_kind", "methods", "suggest"]
