"""Model-free batches: Latin hypercube and random points in a space, random or space-filling rows of a pool."""

from __future__ import annotations

import numpy as np

from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.design import latin_hypercube, random_design
from jaxopt_mat.pool import farthest_point_design
from jaxopt_mat.strategies.base import Context, Request, Suggestion, measured_x, pending_x


def lhs(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """A Latin hypercube that respects the linear constraints (spread away from pending rows, if any; in a
    space of finitely many combinations, also away from those already run, which it never repeats)."""
    measured = measured_x(snap, req.batch)
    avoid = pending_x(snap)
    if measured is not None and len(measured):
        avoid = measured if avoid is None else np.concatenate([avoid, measured])
    return Suggestion(latin_hypercube(snap.space, req.batch, seed=req.rng_seed, avoid=avoid), "lhs", {}, [])


def random(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Uniform random feasible points."""
    return Suggestion(random_design(snap.space, req.batch, seed=req.rng_seed), "random", {}, [])


def pool_rows(snap: Snapshot, idx, method: str, extra=None, notes=None) -> Suggestion:
    """The batch of pool rows ``idx``, after checking none is measured, pending or repeated."""
    idx = np.asarray(idx)
    if snap.unavailable_mask[idx].any() or len(set(idx.tolist())) != len(idx):  # the selection rules guarantee this
        raise AssertionError("internal error: a measured or repeated candidate was selected")
    return Suggestion(snap.pool.features[idx], method, extra or {}, notes or [],
                      ids=[snap.pool.ids[i] for i in idx])


def pool_random(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Unmeasured candidates (not pending) drawn uniformly."""
    free = np.flatnonzero(~snap.unavailable_mask)
    return pool_rows(snap, np.random.default_rng(req.rng_seed).choice(free, req.batch, replace=False), "random")


def pool_spread(snap: Snapshot, req: Request, ctx: Context) -> Suggestion:
    """Unmeasured candidates far from each other and from the measured and pending ones (greedy max-min distance)."""
    idx = farthest_point_design(snap.pool.features, req.batch, seed=req.rng_seed,
                                exclude=np.array(snap.unavailable_mask))
    return pool_rows(snap, idx, "spread")
