"""When to stop a campaign: explicit rules, each with its value, threshold and verdict.

Rules (thresholds in ``[stopping]`` of ``campaign.toml``; defaults below):

- ``threshold``: the best median-of-replicates value reached ``threshold``
  (<= for minimised objectives and spectrum losses, >= for maximised ones).
  Off unless ``threshold`` is set.
- ``stability``: GPs fitted on the data up to each of the last
  ``stability_rounds`` batches and up to the batch before agree on a fixed probe
  set of 64 recipes: the cosine similarity of their mean-centred prediction
  vectors (their correlation) is at least ``stability`` (0.95) every time.
- ``accuracy``: the GP fitted before the newest batch predicts that batch's
  medians with relative MSE (MSE over the variance of the measurements) at most
  ``accuracy`` (0.1).
- ``plateau``: over the last ``plateau_rounds`` batches (3) the best value
  improved by less than ``plateau_fraction`` (0.01) of the range of all
  measured values.
- ``acquisition``: the largest expected improvement in the newest GP batch
  (from its ``log_ei`` column) is below ``min_improvement`` (0.001) of that range.
- ``budget``: at least ``budget`` measurements recorded. Off unless set.

``should_stop`` is true when the threshold or the budget is met, or when the
model is stable and accurate and either the plateau or the acquisition rule
holds (nothing left to learn, nothing left to gain).
"""

from __future__ import annotations

import csv
import math

import jax
import numpy as np

from jaxopt_mat.campaign import Campaign
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.design import latin_hypercube
from jaxopt_mat.surrogates.gp import fit_gp

DEFAULTS = {
    "threshold": None,
    "stability": 0.95,
    "stability_rounds": 2,
    "accuracy": 0.1,
    "plateau_fraction": 0.01,
    "plateau_rounds": 3,
    "min_improvement": 1e-3,
    "budget": None,
}


def _rule(value, threshold, met) -> dict:
    clean = lambda v: None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v  # noqa: E731
    return {"value": clean(value), "threshold": threshold, "met": bool(met)}


def centred_cosine(a, b) -> float:
    a = np.asarray(a) - np.mean(a)
    b = np.asarray(b) - np.mean(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else 1.0


def _fit(x, y, space, seed, program_cache):
    cond = combine_replicates(x, y)
    model = fit_gp(cond.x, cond.y, key=jax.random.key(seed), low=space.low, high=space.high, program_cache=program_cache)
    return model, cond


def evaluate(campaign: Campaign, settings: dict | None = None, *, lazy: bool = False, program_cache=None) -> dict:
    """Every stop rule for the campaign's current data: ``{"stop_rules": {...}, "should_stop": bool}``.

    With ``lazy`` (what ``suggest`` uses), the stability and accuracy rules,
    which need GP fits, are evaluated only when the plateau or acquisition rule
    holds, i.e. only when they can change ``should_stop``; otherwise they are
    reported as not met with value ``None``.
    """
    s = {**DEFAULTS, **(settings or {})}
    cfg = campaign.config
    minimize = not cfg.objective.maximize
    x, y, batches = campaign.read_observations()
    space = campaign.space
    rules: dict = {}
    order = sorted(set(batches.tolist()))
    cond = combine_replicates(x, y)
    best = (np.min(cond.y) if minimize else np.max(cond.y)) if cond.y.size else None
    thr = s["threshold"]
    rules["threshold"] = _rule(best, thr, thr is not None and best is not None and (best <= thr if minimize else best >= thr))
    budget = s["budget"]
    rules["budget"] = _rule(int(x.shape[0]), budget, budget is not None and x.shape[0] >= budget)
    spread = float(np.ptp(y)) if y.size else 0.0

    # Plateau: improvement of the best value over the last k batches.
    k = s["plateau_rounds"]
    if len(order) > k:
        cut = order[-k - 1]
        before = y[batches <= cut]
        past = np.min(before) if minimize else np.max(before)
        now = np.min(y) if minimize else np.max(y)
        gain = (past - now if minimize else now - past) / spread if spread > 0 else 0.0
        rules["plateau"] = _rule(gain, s["plateau_fraction"], gain < s["plateau_fraction"])
    else:
        rules["plateau"] = _rule(None, s["plateau_fraction"], False)

    ei = _last_max_ei(campaign)
    rel = ei / spread if (ei is not None and spread > 0) else None
    rules["acquisition"] = _rule(rel, s["min_improvement"], rel is not None and rel < s["min_improvement"])
    if lazy and not (rules["plateau"]["met"] or rules["acquisition"]["met"]):
        rules["stability"] = _rule(None, s["stability"], False)
        rules["accuracy"] = _rule(None, s["accuracy"], False)
        return {"stop_rules": rules, "should_stop": bool(rules["threshold"]["met"] or rules["budget"]["met"])}

    # Stability and accuracy need fits on nested data sets.
    probe = latin_hypercube(space, 64, seed=cfg.seed + 104729)
    fits = {}

    def fit_upto(b):
        if b not in fits:
            keep = batches <= b
            enough = combine_replicates(x[keep], y[keep]).x.shape[0] >= 3
            fits[b] = _fit(x[keep], y[keep], space, cfg.seed, program_cache) if enough else None
        return fits[b]

    m = s["stability_rounds"]
    sims = []
    if len(order) > m:
        for i in range(len(order) - m, len(order)):
            a, b = fit_upto(order[i - 1]), fit_upto(order[i])
            if a is None or b is None:
                sims = []
                break
            sims.append(centred_cosine(a[0].predict(probe).mean, b[0].predict(probe).mean))
    rules["stability"] = _rule(min(sims) if sims else None, s["stability"], bool(sims) and min(sims) >= s["stability"])

    acc = None
    if len(order) >= 2 and fit_upto(order[-2]) is not None:
        model = fit_upto(order[-2])[0]
        newest = combine_replicates(x[batches == order[-1]], y[batches == order[-1]])
        pred = np.asarray(model.predict(newest.x).mean)
        var = float(np.var(y)) if y.size > 1 else 0.0
        acc = float(np.mean((pred - newest.y) ** 2) / var) if var > 0 else 0.0
    rules["accuracy"] = _rule(acc, s["accuracy"], acc is not None and acc <= s["accuracy"])

    learned = rules["stability"]["met"] and rules["accuracy"]["met"]
    should = (rules["threshold"]["met"] or rules["budget"]["met"]
              or (learned and (rules["plateau"]["met"] or rules["acquisition"]["met"])))
    return {"stop_rules": rules, "should_stop": bool(should)}


def _last_max_ei(campaign: Campaign):
    """Largest expected improvement in the newest suggestion batch that recorded ``log_ei``."""
    for path in reversed(campaign.suggestion_files()):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if rows and "log_ei" in rows[0]:
            j = rows[0].index("log_ei")
            vals = [float(r[j]) for r in rows[1:] if r]
            return float(np.exp(max(vals))) if vals else None
    return None
