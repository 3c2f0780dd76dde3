"""Kernel mean embedding of variable-size sets, and pools given as long tables."""

import csv
import io

import jax
import jax.numpy as jnp
import numpy as np
from typer.testing import CliRunner

from jaxopt_mat.embedding import embed_long_table, kernel_mean_embedding, pad_sets


def brute_force_embedding(sets, landmarks, lengthscale):
    out = np.zeros((len(sets), len(landmarks)))
    for i, s in enumerate(sets):
        for l, z in enumerate(landmarks):
            out[i, l] = np.mean([np.exp(-0.5 * np.sum((e - z) ** 2) / lengthscale**2) for e in s])
    return out


def test_embedding_matches_brute_force_and_ignores_padding_and_order():
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(k, 3)) for k in (1, 4, 7, 2)]
    landmarks = rng.normal(size=(5, 3))
    elements, mask = pad_sets(sets)
    phi = np.asarray(kernel_mean_embedding(jnp.asarray(elements), jnp.asarray(mask), jnp.asarray(landmarks), 0.8))
    np.testing.assert_allclose(phi, brute_force_embedding(sets, landmarks, 0.8), rtol=1e-12)
    # More padding, and shuffled elements, change nothing.
    wide = np.concatenate([elements, np.full((4, 3, 3), 99.0)], axis=1)
    wide_mask = np.concatenate([mask, np.zeros((4, 3))], axis=1)
    perm = [s[rng.permutation(len(s))] for s in sets]
    e2, m2 = pad_sets(perm)
    for e, m in ((wide, wide_mask), (e2, m2)):
        np.testing.assert_allclose(kernel_mean_embedding(e, m, landmarks, 0.8), phi, rtol=1e-12)
    g = jax.grad(lambda ls: jnp.sum(kernel_mean_embedding(elements, mask, landmarks, ls)))(0.8)
    assert np.isfinite(float(g))
    out = jax.vmap(lambda e, m: kernel_mean_embedding(e[None], m[None], landmarks, 0.8)[0])(elements, mask)
    np.testing.assert_allclose(out, phi, rtol=1e-12)


def long_table(rng, n=40):
    lines = ["id,charge,sigma,epsilon"]
    for i in range(n):
        for _ in range(rng.integers(3, 12)):
            lines.append(f"M{i},{rng.normal():.6f},{rng.uniform(2, 4):.6f},{rng.uniform(0.01, 0.2):.6f}")
    return "\n".join(lines) + "\n"


def test_long_table_becomes_one_row_per_candidate():
    rng = np.random.default_rng(1)
    text = embed_long_table(long_table(rng), "atoms.csv", n_landmarks=6, seed=0)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id"] + [f"kme_{k}" for k in range(6)]
    assert [r[0] for r in rows[1:]] == [f"M{i}" for i in range(40)]
    vals = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.all((vals > 0) & (vals <= 1)) and np.all(vals.std(0) > 0)


def test_init_embeds_a_long_table_into_candidate_features(tmp_path):
    from jaxopt_mat.cli import app

    rng = np.random.default_rng(2)
    (tmp_path / "atoms.csv").write_text(long_table(rng, 30))
    (tmp_path / "campaign.toml").write_text(
        'candidates = "atoms.csv"\ninitial_design = 4\n[embedding]\nlandmarks = 8\n'
        '[objective]\nname = "tg"\ndirection = "maximize"\n')
    res = CliRunner().invoke(app, ["init", str(tmp_path / "c"), "--config", str(tmp_path / "campaign.toml")])
    assert res.exit_code == 0, res.output
    assert "30 candidates with 8 features (kernel mean embedding of atoms.csv)" in res.stdout
    saved = (tmp_path / "c" / "campaign.toml").read_text()
    assert 'candidates = "atoms_embedded.csv"' in saved and 'source = "atoms.csv"' in saved
    res = CliRunner().invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "4"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("suggestion,id,kme_0,")
