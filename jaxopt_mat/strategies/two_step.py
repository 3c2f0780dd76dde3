"""The study's two-step workflow for spectrum campaigns: a GP first, the spectrum network once it is ready.

The network is ready when it is both

- **accurate**: trained without the newest batch, it predicts that batch's
  measured spectra well (median cosine similarity and relative mean squared
  error over thresholds), and
- **stable**: that network and one trained on all data agree on a fixed probe
  set of recipes (median cosine similarity of their predicted spectra).

``auto`` decides between the rounds what the study decided by hand: it
suggests with the composite spectrum GP (``suggest --method cgp``) until the
network is ready, and from then on splits each batch as ``suggest --method
mixed`` does (the first half, rounded up, minimises the network's predicted
loss, kept away from the rest, which comes from the composite GP), as the
study did in its last rounds. The switch is one-way: once the network step
has begun (remembered in the campaign's ``state.json``), later rounds stay in
it, so that noise in a single held-out batch cannot send the campaign back
and forth.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxopt_mat.campaign import Snapshot
from jaxopt_mat.design import latin_hypercube
from jaxopt_mat.ensemble_cache import EnsembleCache
from jaxopt_mat.objectives import cosine_similarity_rows
from jaxopt_mat.padded import predict_rows
from jaxopt_mat.surrogates.spectrum_net import SpectrumEnsemble, fit_spectrum_ensemble

MIN_CONDITIONS = 30  # below this, a network of this size cannot be trusted
COS_ACCURACY = 0.95
REL_MSE_ACCURACY = 0.05
COS_STABILITY = 0.97
N_PROBE = 64


@dataclasses.dataclass
class Readiness:
    """Why the campaign is in the GP step or the network step."""

    step: str  # "gp" or "dnn"
    reason: str
    accuracy_cos: float | None = None
    accuracy_rel_mse: float | None = None
    stability_cos: float | None = None
    ensemble: SpectrumEnsemble | None = None
    switched: int | None = None  # a first switch to the network step: the batch it begins with

    @property
    def assessed(self) -> bool:
        """Whether the accuracy and stability were measured (not only the step looked up)."""
        return self.accuracy_cos is not None

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "reason": self.reason,
            "accuracy_cosine": self.accuracy_cos,
            "accuracy_relative_mse": self.accuracy_rel_mse,
            "stability_cosine": self.stability_cos,
            "thresholds": {"accuracy_cosine": COS_ACCURACY, "accuracy_relative_mse": REL_MSE_ACCURACY,
                           "stability_cosine": COS_STABILITY, "min_conditions": MIN_CONDITIONS},
        }


def train_on(snap: Snapshot, keep: np.ndarray | None = None, *, seed: int,
             cache: EnsembleCache | None = None) -> SpectrumEnsemble:
    """Train the ensemble on the campaign's measured spectra (rows where ``keep`` is true).

    With a ``cache``, an ensemble trained earlier on the same rows with the
    same seed (and the same package code) is loaded instead of trained again.
    """
    x, spectra = snap.x, snap.measured
    if keep is not None:
        x, spectra = x[keep], spectra[keep]
    space = snap.space
    if cache is None:
        return fit_spectrum_ensemble(x, spectra, key=jax.random.key(seed), low=space.low, high=space.high)
    key = cache.key(x, spectra, seed=seed, low=space.low, high=space.high)
    stored = cache.get(key)
    if stored is not None:
        return stored
    return cache.put(key, fit_spectrum_ensemble(x, spectra, key=jax.random.key(seed), low=space.low, high=space.high))


def ensemble_seed(seed: int, last_batch: int) -> int:
    """Training seed of the ensemble fitted on the batches up to ``last_batch`` of a campaign with ``seed``.

    The seed follows the data, not the round: one round's all-data ensemble is
    the next round's held-out ensemble, so with a cache each round trains one
    new ensemble instead of two. The two ensembles of one round still differ in
    their initialisation, so stability is judged across initialisations too.
    """
    return int(np.random.SeedSequence([seed, last_batch]).generate_state(1)[0] % 2**31)


def network_seed(snap: Snapshot, seed: int) -> int:
    """Training seed of the all-data ensemble (the one ``suggest``, plots and attributions use)."""
    return ensemble_seed(seed, snap.last_batch)


def decide_step(accuracy_cos: float, accuracy_rel_mse: float, stability_cos: float) -> tuple[str, str]:
    """The rule: network step when accurate (both accuracy thresholds) and stable; returns (step, verdict)."""
    accurate = accuracy_cos >= COS_ACCURACY and accuracy_rel_mse <= REL_MSE_ACCURACY
    stable = stability_cos >= COS_STABILITY
    if accurate and stable:
        return "dnn", "network accurate and stable"
    missing = [w for w, ok in (("accurate", accurate), ("stable", stable)) if not ok]
    return "gp", "network not yet " + " or ".join(missing)


def network_readiness(snap: Snapshot, *, seed: int = 0, cache: EnsembleCache | None = None,
                      assess: bool = False) -> Readiness:
    """Decide the step by the accuracy and stability rule above; the all-data ensemble comes with it.

    ``seed``: the campaign's seed; each ensemble's training seed is
    :func:`ensemble_seed` of it and the newest batch it sees. A first switch
    to the network step sets ``switched``: the batch from which the network
    step begins, for the caller to remember (``state.json``) so that later
    rounds keep it. ``cache`` is passed to :func:`train_on`. Once the
    network step has begun, the accuracy and stability are measured only with
    ``assess`` (what ``status`` and the stop rules ask for; the step itself no
    longer depends on them).
    """
    x, batches = snap.x, snap.batches
    newest_batch = snap.last_batch
    since = snap.state.get("network_step_since_batch")
    if since is not None:
        switched = f"network step since batch {since} (the switch is one-way)"
        if assess and len(set(batches.tolist())) >= 2:
            cos, rel_mse, stab, full = _judge(snap, seed, cache)
            return Readiness("dnn", f"{switched}; {_facts(cos, rel_mse, stab)}", cos, rel_mse, stab, full)
        return Readiness("dnn", switched,
                         ensemble=train_on(snap, None, seed=ensemble_seed(seed, newest_batch), cache=cache))
    n_cond = len({tuple(np.round(r, 9)) for r in x})
    if n_cond < MIN_CONDITIONS:
        return Readiness("gp", f"{n_cond} conditions measured; the network needs at least {MIN_CONDITIONS}")
    if batches.size == 0 or len(set(batches.tolist())) < 2:
        return Readiness("gp", "the network's accuracy is judged on a newest batch held out; need two batches")
    cos, rel_mse, stab, full = _judge(snap, seed, cache)
    step, verdict = decide_step(cos, rel_mse, stab)
    return Readiness(step, f"{verdict}: {_facts(cos, rel_mse, stab)}", cos, rel_mse, stab, full,
                     switched=newest_batch + 1 if step == "dnn" else None)


def _judge(snap: Snapshot, seed, cache):
    """Accuracy on the newest batch (ensemble trained without it) and stability against the all-data ensemble."""
    x, measured, batches = snap.x, snap.measured, snap.batches
    newest_batch = snap.last_batch
    newest = batches == newest_batch
    before = train_on(snap, ~newest, seed=ensemble_seed(seed, int(batches[~newest].max())), cache=cache)
    full = train_on(snap, None, seed=ensemble_seed(seed, newest_batch), cache=cache)
    pred = predict_rows(before, x[newest])[0]
    cos = float(np.median(cosine_similarity_rows(pred, measured[newest])))
    rel_mse = float(np.mean((pred - measured[newest]) ** 2) / max(np.mean(measured[newest] ** 2), 1e-12))
    probe = latin_hypercube(snap.space, N_PROBE, seed=snap.config.seed + 7919)
    stab = float(np.median(cosine_similarity_rows(predict_rows(before, probe)[0], predict_rows(full, probe)[0])))
    return cos, rel_mse, stab, full


def _facts(cos: float, rel_mse: float, stab: float) -> str:
    return (f"newest batch predicted with median cosine {cos:.3f} (needs {COS_ACCURACY}) and relative MSE "
            f"{rel_mse:.3f} (needs <= {REL_MSE_ACCURACY}); successive fits agree with cosine {stab:.3f} "
            f"(needs {COS_STABILITY})")
