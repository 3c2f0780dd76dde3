"""Which GP hyper-parameters a ``suggest`` optimizes, and which it keeps: ``state.json``'s memory of earlier fits.

Each suggest-time GP (by name: the objective, a spectrum's peak, an outcome)
leaves its hyper-parameters under ``gp_hyperparameters[name][n]``, ``n`` the
number of conditions it was fitted on, and the digest of the data it saw
under ``gp_data[name]``. The next fit of that GP then:

- keeps the hyper-parameters of the fit on exactly its data (same digest),
  so a second ``suggest`` before new results (a batch measured in parts)
  conditions the same GP again instead of optimizing it: the same model as the
  first, in milliseconds;
- keeps those of its latest earlier fit while fewer than ``refit_after``
  conditions were added since (:func:`jaxopt_mat.run` asks for one
  optimization per ``parallel`` runs);
- otherwise starts the optimizer there (a warm start), never from a fit on
  as many conditions as it has, so repeating a ``suggest`` on the same state
  gives the same batch.
"""

from __future__ import annotations

import hashlib

import numpy as np

# state.json keeps each suggest-time GP's hyper-parameters for this many condition counts.
WARM_STARTS_KEPT = 4
HYPERPARAMETERS = "gp_hyperparameters"
DATA = "gp_data"


def valid_hyperparameters(v, d: int) -> bool:
    """Whether ``v``, read from ``state.json``, is ``d + 3`` finite numbers (anything else, a hand edit, is ignored)."""
    return isinstance(v, list) and len(v) == d + 3 and all(isinstance(t, (int, float)) and np.isfinite(t) for t in v)


def hyperparameters_of(model) -> list[float]:
    """A fitted GP's ``hyperparameters`` as the numbers ``state.json`` keeps (computed on the host: no program
    to compile, as ``model.hyperparameters`` would in a fresh process)."""
    logs = np.log(np.concatenate([np.ravel(model.lengthscale), np.ravel(model.variance), np.ravel(model.noise)]))
    return [float(v) for v in logs] + [float(np.ravel(model.mean_const)[0])]


def data_digest(*arrays) -> str:
    """A short digest of what a GP fit depends on (its data, the bounds it scales them by, known noise, ...):
    every array's shape and values, ``None`` counting as empty."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(() if a is None else a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def _saved(state, name: str) -> dict:
    fits = state.get(HYPERPARAMETERS)
    saved = fits.get(name, {}) if isinstance(fits, dict) else {}
    return saved if isinstance(saved, dict) else {}


def warm_start(state, name: str, n: int, d: int):
    """Hyper-parameters of the GP ``name`` fitted by an earlier ``suggest`` on fewer than ``n`` conditions.

    The latest such fit is returned (``None`` when there is none), so a fit
    on ``n`` conditions never starts from itself: repeating ``suggest`` on the
    same data gives the same model and batch.
    """
    return warm_start_entry(state, name, n, d)[0]


def warm_start_entry(state, name: str, n: int, d: int):
    """:func:`warm_start`'s hyper-parameters and the number of conditions they were optimized on (``None, 0``)."""
    saved = _saved(state, name)
    earlier = [int(k) for k, v in saved.items() if k.isdigit() and int(k) < n and valid_hyperparameters(v, d)]
    if not earlier:
        return None, 0
    return np.asarray(saved[str(max(earlier))], dtype=np.float64), max(earlier)


def fit_start(state, name: str, n: int, d: int, digest: str, refit_after: int = 1):
    """``(init, keep)`` for the next fit of the GP ``name`` on ``n`` conditions whose data have ``digest``.

    ``keep``: use ``init`` as it is (``fit_gp(..., max_iter=0)``), by the rules in the module's docstring.
    """
    same = _saved(state, name).get(str(n))
    data = state.get(DATA)
    if isinstance(data, dict) and data.get(name) == digest and valid_hyperparameters(same, d):
        return np.asarray(same, dtype=np.float64), True
    init, fitted_on = warm_start_entry(state, name, n, d)
    return init, init is not None and n - fitted_on < refit_after


def remembered_fits(state, n: int, models: dict, digests: dict | None = None) -> dict:
    """The state entries after recording GPs fitted on ``n`` conditions (``state`` is not changed).

    ``models`` maps names to fitted GPs; each name keeps its latest
    :data:`WARM_STARTS_KEPT` fits, by condition count. A GP that kept the
    hyper-parameters of an earlier fit on fewer conditions (``refit_after``)
    adds no entry, so the next optimization counts from the last real one.
    ``digests`` maps names to the digest of the data each was fitted on.
    """
    saved = state.get(HYPERPARAMETERS, {})
    saved = dict(saved) if isinstance(saved, dict) else {}
    data = state.get(DATA, {})
    data = dict(data) if isinstance(data, dict) else {}
    for name, model in models.items():
        old = {k: v for k, v in _saved(state, name).items() if k.isdigit()}
        theta = hyperparameters_of(model)
        start = warm_start(state, name, n, len(theta) - 3)
        if start is not None and start.tolist() == theta:
            data.pop(name, None)
            continue
        entries = {**old, str(n): theta}
        saved[name] = {k: entries[k] for k in sorted(entries, key=int)[-WARM_STARTS_KEPT:]}
        if digests and name in digests:
            data[name] = digests[name]
        else:
            data.pop(name, None)
    return {HYPERPARAMETERS: saved, DATA: data}
