"""Batches from a pool of candidates by greedy expected hypervolume improvement.

A pool screen picks rows, not points: every unmeasured row's posterior and
EHVI come from one chunked (and, over several devices, sharded) pass
(:func:`~jaxopt_mat.chunked.map_rows`), then the batch is built greedily, each
pick's believed outcome joining the front before the next. The greedy is lazy
(Minoux 1978): EHVI can only shrink as the front grows, so a row's last
computed EHVI bounds it for every later pick, and each pick evaluates rows
only until no bound left can beat the best fresh value. On a million-row pool
that is a few thousand evaluations per pick instead of a million.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.acquisition.ehvi import ehvi_of_moments, ehvi_from_boxes
from jaxopt_mat.chunked import map_rows
from jaxopt_mat.optimize import pad_pending
from jaxopt_mat.padded import on_device
from jaxopt_mat.pareto import non_dominated_boxes


class _MomentsAndEhvi(NamedTuple):
    """Row function of :func:`pool_ehvi_batch`: each row's posterior and its EHVI, in one pass."""

    predict: Callable

    def __call__(self, rows, model_args, boxes):
        mean, std = self.predict(rows, *model_args)
        return mean, std, ehvi_of_moments((mean, std), boxes)


def pool_ehvi_batch(predict, model_args, features, front, ref, q: int, *, exclude=None, weights=None,
                    shortlist: int | None = None, chunk: int = 8192, devices=None):
    """``q`` rows of a candidate pool by greedy EHVI, each row's posterior computed once.

    One chunked (and, with several devices, sharded) pass over ``features``
    gives every row's posterior and EHVI (:func:`~jaxopt_mat.chunked.map_rows`,
    as :func:`score_pool` scores); the greedy of :func:`greedy_pool_batch`
    then runs over the rows of largest EHVI.

    Args:
        predict, model_args: as for :func:`score_pool`.
        features: ``(N, d)``; front: ``(p, m)`` observed values and ``ref`` ``(m,)``, maximisation form.
        exclude: ``(N,)`` rows never chosen (already measured).
        weights: ``(N,)`` factors in [0, 1] on each row's EHVI, e.g. the probability that its run
            succeeds; the lazy greedy stays exact (a weighted EHVI also only shrinks as the front grows).

    Returns:
        ``(indices (q,), ehvi at pick time (q,), mean (q, m), std (q, m))``.
    """
    front, valid = _padded_front(front)
    ref = on_device(ref, front.dtype)
    mean, std, first = map_rows(_MomentsAndEhvi(predict), (tuple(model_args), _boxes(front, ref, valid)),
                                on_device(features), chunk=chunk, devices=devices)
    mean, std = np.asarray(mean), np.asarray(std)
    weights = np.ones(mean.shape[0]) if weights is None else np.asarray(weights, np.float64)
    idx, vals = _lazy_greedy(mean, std, np.asarray(first) * weights, front, valid, ref,
                             _blocked(exclude, mean.shape[0], q), q, _first_block(shortlist, mean.shape[0]), weights)
    return idx, vals, mean[idx], std[idx]


def greedy_pool_batch(mean, std, front, ref, q: int, *, exclude=None, shortlist: int | None = None):
    """``q`` pool rows by sequential greedy EHVI with Kriging-believer fantasies.

    After each pick its predicted mean joins the front (the "believed"
    outcome), and the next pick maximises EHVI over the rest; rows in
    ``exclude`` (already measured) and picked rows are never chosen.

    Lazy evaluation (Minoux's accelerated greedy): a row's EHVI can only
    shrink as the front grows, so every EHVI computed so far bounds the row's
    EHVI from above for every later pick. Each pick evaluates rows in order of
    their bounds, ``shortlist`` rows first and blocks four times longer after,
    and stops once the best fresh value is at least every bound left: the
    result is the full greedy's, at a fraction of its cost on a big pool.
    By default (``shortlist=None``) pools of up to 50,000 rows run the full
    greedy, one compiled scan (faster there), and bigger ones the lazy greedy
    from blocks of 1,024 rows; a ``shortlist`` at least the pool's size also
    runs the full greedy.

    Returns:
        ``(indices (q,), ehvi at pick time (q,))``.
    """
    mean, std = np.asarray(mean), np.asarray(std)
    front, valid = _padded_front(np.asarray(front, mean.dtype))
    ref = jnp.asarray(ref, mean.dtype)
    blocked = _blocked(exclude, mean.shape[0], q)
    shortlist = _first_block(shortlist, mean.shape[0])
    first = None
    if q < shortlist < mean.shape[0]:
        # in chunks: a million rows times the front's boxes would not fit in memory at once
        first = np.asarray(map_rows(ehvi_of_moments, (_boxes(front, ref, valid),), (mean, std)))
    return _lazy_greedy(mean, std, first, front, valid, ref, blocked, q, shortlist, np.ones(mean.shape[0]))


def _padded_front(front) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The front padded to the next of a few sizes, and its mask: a front that grows reuses the compiled programs."""
    front = np.asarray(front)
    padded, _ = pad_pending(front, front.shape[1], front.dtype)
    return padded, on_device(np.arange(padded.shape[0]) < front.shape[0])


# Below this many rows one compiled scan of the full greedy beats the lazy greedy's host loop.
LAZY_FROM = 50_000


def _first_block(shortlist: int | None, n: int) -> int:
    """The lazy greedy's first block; the pool's size (the full greedy) for small pools by default."""
    if shortlist is not None:
        return shortlist
    return 1024 if n > LAZY_FROM else n


def _blocked(exclude, n: int, q: int) -> np.ndarray:
    blocked = np.zeros(n, bool) if exclude is None else np.asarray(exclude, bool)
    if int(np.sum(~blocked)) < q:
        raise ValueError(f"{int(np.sum(~blocked))} rows are free, fewer than the {q} asked for")
    return blocked


def _lazy_greedy(mean, std, first, front, front_valid, ref, blocked, q, shortlist, weights):
    """The greedy of ``weights * EHVI`` with upper bounds (``first``: each row's under the valid rows of
    ``front``); the full greedy without them."""
    n, p = mean.shape[0], front.shape[0]
    if first is None or not q < shortlist < n:
        idx, vals = _greedy(mean, std, front, front_valid, ref, blocked, weights, q=q)
        return np.asarray(idx), np.asarray(vals)
    bound = np.where(blocked, -np.inf, first)
    fr = np.concatenate([np.asarray(front), np.zeros((q, mean.shape[1]), mean.dtype)])
    valid = np.concatenate([np.asarray(front_valid, bool), np.zeros(q, bool)])
    picks, values = [], []
    for k in range(q):
        if k == 0:  # the bounds are exact under the observed front
            i = int(np.argmax(bound))
            best = bound[i]
        else:
            boxes = _boxes(fr, ref, valid)
            i, best = _best_by_bounds(mean, std, weights, bound, boxes, shortlist)
        picks.append(i)
        values.append(best)
        bound[i] = -np.inf
        fr[p + k] = mean[i]
        valid[p + k] = True
    return np.asarray(picks), np.asarray(values)


def _best_by_bounds(mean, std, weights, bound, boxes, block):
    """The row of largest EHVI under ``boxes``, evaluating rows in order of ``bound`` (tightened in place)."""
    best, best_i = -np.inf, -1
    fresh = np.zeros(bound.shape[0], bool)
    while True:
        open_rows = np.flatnonzero(~fresh & (bound >= best) & np.isfinite(bound))
        if open_rows.size == 0:
            return best_i, best
        if open_rows.size > block:
            open_rows = open_rows[np.argpartition(-bound[open_rows], block - 1)[:block]]
        values = _ehvi_rows(mean[open_rows], std[open_rows], boxes) * weights[open_rows]
        bound[open_rows] = values
        fresh[open_rows] = True
        j = int(np.argmax(values))
        if values[j] > best or (values[j] == best and open_rows[j] < best_i):  # ties: the lowest row, as argmax
            best, best_i = float(values[j]), int(open_rows[j])
        block *= 4


_BLOCKS = (16384,)  # one compiled size (the lazy greedy runs on pools of 50,000 rows or more)


def _ehvi_rows(mean, std, boxes) -> np.ndarray:
    """EHVI of the rows ``(mean, std)`` under ``boxes``: padded to a few fixed sizes (few compiled programs)."""
    n = mean.shape[0]
    size = next((b for b in _BLOCKS if b >= n), None)
    if size is None:
        return np.asarray(map_rows(ehvi_of_moments, (boxes,), (mean, std)))
    pad = size - n
    out = _ehvi_block(np.pad(mean, ((0, pad), (0, 0)), mode="edge"), np.pad(std, ((0, pad), (0, 0)), mode="edge"),
                      boxes)
    return np.asarray(out)[:n]


@jax.jit
def _ehvi_block(mean, std, boxes):
    return ehvi_of_moments((mean, std), boxes)


@jax.jit
def _boxes(front, ref, valid):
    return non_dominated_boxes(front, ref, valid)


@partial(jax.jit, static_argnames=("q",))
def _greedy(mean, std, front, front_valid, ref, blocked, weights, *, q):
    m, p = mean.shape[1], front.shape[0]
    fr = jnp.concatenate([front, jnp.zeros((q, m), mean.dtype)])
    valid = jnp.concatenate([front_valid, jnp.zeros(q, bool)])

    def body(carry, k):
        fr, valid, blocked = carry
        boxes = non_dominated_boxes(fr, ref, valid)
        e = jax.vmap(lambda a, b: ehvi_from_boxes(a, b, boxes))(mean, std) * weights
        e = jnp.where(blocked, -jnp.inf, e)
        i = jnp.argmax(e)
        fr = fr.at[p + k].set(mean[i])
        valid = valid.at[p + k].set(True)
        return (fr, valid, blocked.at[i].set(True)), (i, e[i])

    _, (idx, vals) = jax.lax.scan(body, (fr, valid, blocked), jnp.arange(q))
    return idx, vals
