"""Fixed-length features for variable-size sets: kernel mean embedding.

A candidate described by a set of vectors (e.g. one row of force-field
parameters per atom of a polymer's repeat unit) is mapped to the mean of a
kernel's feature map over its elements (Muandet, Fukumizu, Sriperumbudur &
Schölkopf, "Kernel Mean Embedding of Distributions: A Review and Beyond",
Foundations and Trends in ML 2017), evaluated at ``L`` landmark points:

    phi(S)_l = (1 / |S|) * sum_{e in S} exp(-||e - z_l||^2 / (2 lengthscale^2))

Sets are padded to a common size and masked, so a whole pool is embedded by
one jitted, vectorized call. Landmarks are chosen from the data by greedy
farthest-point selection and the length-scale by the median heuristic (the
median distance between elements and landmarks), both on standardized
element features.
"""

from __future__ import annotations

import csv
import io

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_mat.errors import DataError, separator_hint
from jaxopt_mat.pool import ID_COLUMN, parse_pool


@jax.jit
def kernel_mean_embedding(elements, mask, landmarks, lengthscale):
    """Kernel mean embedding of padded sets at landmark points.

    Args:
        elements: ``(n, s, f)``: ``n`` sets of at most ``s`` elements with ``f`` features.
        mask: ``(n, s)``: 1 for real elements, 0 for padding (every set needs one element).
        landmarks: ``(L, f)``.
        lengthscale: scalar or ``(f,)`` Gaussian-kernel length-scale(s).

    Returns:
        ``(n, L)``: the mean kernel value of each set's elements at each landmark.
        jit/vmap/grad-safe; padding never contributes.

    Example:
        >>> phi = kernel_mean_embedding(elems, mask, landmarks, 1.0)
    """
    elements = jnp.asarray(elements)
    mask = jnp.asarray(mask, elements.dtype)
    scaled_e = elements / lengthscale
    scaled_z = jnp.asarray(landmarks, elements.dtype) / lengthscale
    sq = jnp.sum((scaled_e[:, :, None, :] - scaled_z[None, None, :, :]) ** 2, axis=-1)  # (n, s, L)
    k = jnp.exp(-0.5 * sq) * mask[:, :, None]
    return jnp.sum(k, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)[:, None]


def pad_sets(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-size sets ``(s_i, f)`` into ``(n, max s, f)`` with a ``(n, max s)`` mask."""
    if not sets:
        raise ValueError("no sets to pad")
    f = sets[0].shape[1]
    s = max(len(x) for x in sets)
    out = np.zeros((len(sets), s, f))
    mask = np.zeros((len(sets), s))
    for i, x in enumerate(sets):
        out[i, : len(x)] = x
        mask[i, : len(x)] = 1.0
    return out, mask


def choose_landmarks(elements: np.ndarray, n_landmarks: int, *, seed: int) -> np.ndarray:
    """``n_landmarks`` rows of ``elements`` ``(N, f)`` spread by farthest-point selection (distinct rows only)."""
    unique = np.unique(np.asarray(elements, dtype=np.float64), axis=0)
    k = min(n_landmarks, unique.shape[0])
    spread = unique.std(0)
    scale = np.where(spread > 0, spread, 1.0)
    return unique[_farthest(unique / scale, k, seed)]


def _farthest(z: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(z.shape[0]))]
    dist = np.sum((z - z[chosen[0]]) ** 2, axis=1)
    for _ in range(k - 1):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.sum((z - z[i]) ** 2, axis=1))
    return np.array(chosen)


def median_lengthscale(elements: np.ndarray, landmarks: np.ndarray) -> float:
    """Median heuristic: the median distance between elements and landmarks (1.0 if all coincide)."""
    if elements.shape[0] > 4096:  # a fixed subsample keeps memory bounded for large pools
        elements = elements[np.random.default_rng(0).choice(elements.shape[0], 4096, replace=False)]
    d = np.sqrt(np.sum((elements[:, None, :] - landmarks[None, :, :]) ** 2, axis=-1))
    med = float(np.median(d[d > 0])) if np.any(d > 0) else 1.0
    return med


def embed_long_table(text: str, source: str, *, features: list[str] | None = None, n_landmarks: int = 16,
                     lengthscale: float | None = None, seed: int = 0) -> str:
    """Turn a long table (``id`` plus one row per set element) into a candidate table.

    Element features are standardized over all rows; landmarks and (unless
    given, in standardized units) the length-scale are chosen from the data.
    Returns CSV text with ``id`` and the columns ``kme_0 ... kme_{L-1}``, one row
    per id in order of first appearance.

    Raises:
        DataError: for the same problems :func:`jaxopt_mat.pool.parse_pool` reports,
            except repeated ids, which are what a long table is made of.
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows or ID_COLUMN not in [h.strip() for h in rows[0]]:
        hint = separator_hint(rows[0]) if rows else ""
        raise DataError(f"{source}: a long candidate table needs an '{ID_COLUMN}' column{hint}")
    header = [h.strip() for h in rows[0]]
    j = header.index(ID_COLUMN)
    # Give every element row a unique id so the table validates as a plain table, then group.
    numbered = [header] + [r[:j] + [f"{r[j].strip()}\x1f{k}"] + r[j + 1:] for k, r in enumerate(rows[1:])]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(numbered)
    table = parse_pool(buf.getvalue(), source, features)
    owners = [i.split("\x1f")[0] for i in table.ids]
    if any(not o for o in owners):
        raise DataError(f"{source}: empty id in the long table")
    z = (table.features - table.features.mean(0)) / table.features.std(0)
    order = list(dict.fromkeys(owners))
    where = {o: [] for o in order}
    for k, o in enumerate(owners):
        where[o].append(k)
    elements, mask = pad_sets([z[where[o]] for o in order])
    landmarks = choose_landmarks(z, n_landmarks, seed=seed)
    ls = median_lengthscale(z, landmarks) if lengthscale is None else float(lengthscale)
    phi = np.asarray(kernel_mean_embedding(jnp.asarray(elements), jnp.asarray(mask), jnp.asarray(landmarks), ls))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([ID_COLUMN] + [f"kme_{k}" for k in range(phi.shape[1])])
    for o, row in zip(order, phi):
        w.writerow([o] + [repr(float(v)) for v in row])
    return out.getvalue()
