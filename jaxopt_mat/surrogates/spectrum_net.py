"""Neural spectrum surrogate: a deep ensemble of flax MLPs mapping a recipe to its whole spectrum.

Members differ only in their initialisation and are trained at once with
``vmap`` (Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017). Inputs are scaled to the unit
cube and spectra divided by one global scale, so that the network's outputs
are of order one while the spectrum's shape and absolute height are kept.
Each member keeps the parameters of its best validation loss (early stopping
without leaving the compiled training loop). Predictions evaluate the members
one after another instead: small per-member products batched by ``vmap`` run
several times slower on CPU than plain ones.
"""

from __future__ import annotations

import dataclasses
from functools import cache, partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_mat.errors import DataError


@cache
def _mlp_class():
    """The flax MLP class, made on first use: a command that never touches the network skips importing flax."""
    import flax.linen as nn

    class SpectrumMLP(nn.Module):
        """ReLU MLP from ``d`` scaled inputs to ``w`` spectrum values."""

        hidden: Sequence[int]
        n_out: int

        @nn.compact
        def __call__(self, u):
            h = u
            for width in self.hidden:
                h = nn.relu(nn.Dense(width)(h))
            return nn.Dense(self.n_out)(h)

    return SpectrumMLP


def spectrum_mlp(hidden, n_out):
    """The flax module of one ensemble member: ReLU layers of widths ``hidden``, then ``n_out`` outputs."""
    return _mlp_class()(hidden, n_out)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["params", "low", "high", "scale"],
    meta_fields=["hidden", "n_out"],
)
@dataclasses.dataclass(frozen=True)
class SpectrumEnsemble:
    """A trained ensemble: a pytree usable inside ``jit``/``vmap``/``grad``.

    Attributes:
        params: flax parameters with a leading member axis.
        low, high: input scaling to the unit cube.
        scale: spectra are predicted divided by this number.
    """

    params: dict
    low: jnp.ndarray
    high: jnp.ndarray
    scale: jnp.ndarray
    hidden: tuple
    n_out: int

    def _each_member(self, x):
        # One plain matrix product per member and layer: XLA on CPU runs the
        # batched product that ``vmap`` over members makes several times slower.
        u = (x - self.low) / (self.high - self.low)
        net = spectrum_mlp(self.hidden, self.n_out)
        members = [jax.tree.map(lambda a: a[m], self.params) for m in range(self.n_members)]  # noqa: B023
        return [net.apply(p, u) * self.scale for p in members]

    def member_spectra(self, x):
        """Spectra of every member, shape ``(members, n, w)``, for recipes ``x`` (n, d) in physical units."""
        return jnp.stack(self._each_member(x))

    def predict(self, x):
        """Ensemble mean and standard deviation per wavelength, each ``(n, w)``."""
        # Reduced member by member: a reduction over the stacked members' axis is
        # several times slower on CPU than the networks themselves.
        s = self._each_member(x)
        mean = sum(s) / len(s)
        return mean, jnp.sqrt(sum((v - mean) ** 2 for v in s) / len(s))

    @property
    def n_members(self) -> int:
        return jax.tree.leaves(self.params)[0].shape[0]


def ensemble_to_arrays(ensemble: SpectrumEnsemble) -> dict[str, np.ndarray]:
    """Flat ``name -> array`` form of an ensemble (what ``np.savez`` stores); inverse of :func:`ensemble_from_arrays`."""
    out = {"low": np.asarray(ensemble.low), "high": np.asarray(ensemble.high), "scale": np.asarray(ensemble.scale),
           "hidden": np.asarray(ensemble.hidden, dtype=np.int64), "n_out": np.asarray(ensemble.n_out, dtype=np.int64)}
    for path, leaf in jax.tree_util.tree_flatten_with_path(ensemble.params)[0]:
        out["params/" + "/".join(str(k.key) for k in path)] = np.asarray(leaf)
    return out


def ensemble_from_arrays(arrays: dict) -> SpectrumEnsemble:
    """Rebuild an ensemble from :func:`ensemble_to_arrays`' output.

    Raises:
        DataError: when the arrays do not describe an ensemble of this network.
    """
    try:
        hidden = tuple(int(h) for h in np.asarray(arrays["hidden"]).reshape(-1))
        n_out = int(arrays["n_out"])
        params: dict = {}
        for name, value in arrays.items():
            if name.startswith("params/"):
                *parents, leaf = name.split("/")[1:]
                node = params
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = jnp.asarray(value)
        ens = SpectrumEnsemble(params, jnp.asarray(arrays["low"]), jnp.asarray(arrays["high"]),
                               jnp.asarray(arrays["scale"]), hidden, n_out)
        members = ens.n_members
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise DataError(f"not a stored spectrum ensemble: {e}") from None
    expected = jax.eval_shape(lambda: jax.vmap(lambda k: spectrum_mlp(hidden, n_out).init(k, jnp.zeros((1, ens.low.shape[0]))))(
        jax.random.split(jax.random.key(0), members)))
    if jax.tree.structure(expected) != jax.tree.structure(params) or any(
            a.shape != b.shape for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(params))):
        raise DataError("not a stored spectrum ensemble: its parameters do not match its network")
    return ens


@partial(jax.jit, static_argnames=("hidden", "n_out", "n_members", "epochs"))
def _train(key, u_tr, s_tr, w_tr, u_va, s_va, w_va, learning_rate, weight_decay, *, hidden, n_out, n_members, epochs):
    net = spectrum_mlp(hidden, n_out)
    keys = jax.random.split(key, n_members)
    params = jax.vmap(lambda k: net.init(k, u_tr[:1]))(keys)
    opt = optax.adamw(learning_rate, weight_decay=weight_decay)
    state = jax.vmap(opt.init)(params)

    def mse(p, u, s, w):
        # Mean over the real rows (weight 1) only; padding rows have weight 0.
        return jnp.sum(w[:, None] * (net.apply(p, u) - s) ** 2) / (jnp.sum(w) * s.shape[1])

    def member_step(p, st):
        loss, g = jax.value_and_grad(mse)(p, u_tr, s_tr, w_tr)
        up, st = opt.update(g, st, p)
        return optax.apply_updates(p, up), st, loss

    def epoch(carry, _):
        p, st, best_p, best_v = carry
        p, st, _ = jax.vmap(member_step)(p, st)
        v = jax.vmap(lambda q: mse(q, u_va, s_va, w_va))(p)
        better = v < best_v
        best_p = jax.tree.map(lambda new, old: jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), p, best_p)
        return (p, st, best_p, jnp.where(better, v, best_v)), jnp.mean(v)

    init_v = jnp.full((n_members,), jnp.inf, dtype=u_tr.dtype)
    (_, _, best_p, best_v), curve = jax.lax.scan(epoch, (params, state, params, init_v), None, length=epochs)
    return best_p, best_v, curve


_ROW_BUCKET = 16


def _padded_rows(u, s):
    """Rows padded with zeros to a multiple of ``_ROW_BUCKET``, and their weights (1 real, 0 padding).

    Campaigns grow by a batch at a time; padding lets one compiled training
    program serve every size within a bucket (and the persistent compilation
    cache serve later rounds) instead of compiling anew for each row count.
    """
    n = u.shape[0]
    pad = -n % _ROW_BUCKET
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return (jnp.asarray(np.pad(u, ((0, pad), (0, 0)))), jnp.asarray(np.pad(s, ((0, pad), (0, 0)))), jnp.asarray(w))


def fit_spectrum_ensemble(
    x,
    spectra,
    *,
    key,
    low,
    high,
    n_members: int = 5,
    hidden: Sequence[int] = (64, 128, 256),
    epochs: int = 1500,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    validation_fraction: float = 0.2,
) -> SpectrumEnsemble:
    """Train a deep ensemble on recipes ``x`` (n, d) and their spectra (n, w).

    A random ``validation_fraction`` of the rows (at least one) is held out;
    each member keeps its parameters from the epoch with the lowest validation
    error. Full-batch AdamW; all members train in one compiled call.

    Example:
        >>> ens = fit_spectrum_ensemble(x, spectra, key=jax.random.key(0), low=lo, high=hi)
        >>> mean, std = ens.predict(x_new)
    """
    x = np.asarray(x, dtype=np.float32)
    spectra = np.asarray(spectra, dtype=np.float32)
    if x.ndim != 2 or spectra.ndim != 2 or x.shape[0] != spectra.shape[0]:
        raise DataError(f"expected x (n, d) and spectra (n, w), got {x.shape} and {spectra.shape}")
    n = x.shape[0]
    if n < 5:
        raise DataError(f"a spectrum network needs at least 5 measured spectra, got {n}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(spectra))):
        raise DataError("spectra or recipes contain NaN or infinite values")
    low = np.asarray(low, dtype=np.float32)
    high = np.asarray(high, dtype=np.float32)
    scale = np.float32(max(float(np.max(np.abs(spectra))), 1e-6))
    u = (x - low) / (high - low)
    s = spectra / scale
    k_split, k_init = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(k_split, n))
    n_val = max(1, int(round(validation_fraction * n)))
    va, tr = perm[:n_val], perm[n_val:]
    params, _, _ = _train(
        k_init, *_padded_rows(u[tr], s[tr]), *_padded_rows(u[va], s[va]),
        learning_rate, weight_decay, hidden=tuple(hidden), n_out=spectra.shape[1], n_members=n_members, epochs=epochs,
    )
    return SpectrumEnsemble(params, jnp.asarray(low), jnp.asarray(high), jnp.asarray(scale), tuple(hidden), spectra.shape[1])
