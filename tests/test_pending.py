"""Experiments in flight: suggestion ids, pending rows, their resolution and cancellation, and batches that keep away."""

import csv
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import jaxopt_mat as jm
from jaxopt_mat.acquisition.batch import _local_penalization, local_penalization_batch
from jaxopt_mat.acquisition.ehvi import ehvi_batch
from jaxopt_mat.campaign.pending import SuggestedRows, parse_suggestion_id, resolve_pending, suggestion_id
from jaxopt_mat.cli import app
from jaxopt_mat.errors import DataError
from jaxopt_mat.optimize import pad_pending
from jaxopt_mat.pool import penalized_pool_batch
from jaxopt_mat.space import SearchSpace
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.independent import fit_objectives, predict_objectives_believer

runner = CliRunner()

CONFIG = {
    "name": "pend", "seed": 2, "initial_design": 8,
    "inputs": [{"name": "x1", "low": 0.0, "high": 1.0}, {"name": "x2", "low": 0.0, "high": 2.0}],
    "objective": {"name": "y", "direction": "maximize"},
}


def objective(b):
    return -((b["x1"] - 0.6) ** 2) - 0.3 * (b["x2"] - 1.1) ** 2


def unit_distance(a, b):
    """Smallest distance (unit box) from each row of ``a`` to the rows of ``b``."""
    scale = np.array([1.0, 2.0])
    a, b = np.asarray(a) / scale, np.asarray(b) / scale
    return np.min(np.linalg.norm(a[:, None] - b[None], axis=-1), axis=1)


def measured_campaign(path, n=8):
    camp = jm.Campaign.create(path, CONFIG)
    first = camp.suggest(n)
    first["y"] = objective(first)
    camp.observe(first)
    return camp


def test_ids_are_written_and_a_partial_observation_by_id_leaves_the_rest_pending(tmp_path):
    camp = measured_campaign(tmp_path / "c")
    batch = camp.suggest(5)
    assert list(batch["suggestion"]) == [f"b0002-0{k}" for k in range(1, 6)]
    saved = (tmp_path / "c" / "suggestions" / "batch_0002.csv").read_text().splitlines()
    assert saved[0].startswith("suggestion,x1,x2,") and saved[1].startswith("b0002-01,")
    part = batch.iloc[[0, 3]].copy()
    part["y"] = objective(part)
    done = camp.observe(part[["suggestion", "y", "x1", "x2"]])  # any column order
    assert (done.resolved, done.still_pending) == (2, 3)
    snap = camp.snapshot()
    assert snap.pending.ids == ("b0002-02", "b0002-03", "b0002-05")
    np.testing.assert_array_equal(snap.pending.x, batch[["x1", "x2"]].to_numpy()[[1, 2, 4]])
    assert camp.status(with_model=False).pending["count"] == 3


def test_observations_without_ids_resolve_by_value_within_the_tolerance_and_only_after_suggesting(tmp_path):
    camp = measured_campaign(tmp_path / "c")
    batch = camp.suggest(3)
    x = batch[["x1", "x2"]].to_numpy()
    # Row 1 measured as written, row 2 with a rounding far below 1e-6 of the range, row 3 off by 1e-3: unresolved.
    rows = pd.DataFrame({"x1": [x[0, 0], x[1, 0] + 1e-9, x[2, 0] + 1e-3], "x2": x[:, 1], "y": [0.1, 0.2, 0.3]})
    done = camp.observe(rows)
    assert (done.resolved, done.still_pending) == (2, 1)
    assert camp.snapshot().pending.ids == ("b0002-03",)
    # A replicate of a resolved row resolves nothing more.
    assert camp.observe(rows.iloc[[0]].assign(y=0.15)).resolved == 0


def test_a_row_observed_before_it_was_suggested_does_not_resolve_it():
    suggested = SuggestedRows(("b0002-01",), np.array([[0.5, 0.5]]), None, np.array([3]), np.array([0.0]))
    common = dict(observed_ids=["", ""], observed_x=np.array([[0.5, 0.5], [0.5, 0.5]]), observed_pool_ids=None,
                  cancelled=(), scale=np.ones(2))
    assert resolve_pending(suggested, observed_batches=np.array([2, 3]), **common).tolist() == [True]
    assert resolve_pending(suggested, observed_batches=np.array([2, 4]), **common).tolist() == [False]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=0, max_size=12), st.integers(1, 8))
def test_each_observation_resolves_at_most_one_suggested_row(observations, n_suggested):
    """Whatever is observed, resolution never frees more rows than were observed, and ids resolve exactly."""
    rng = np.random.default_rng(n_suggested)
    grid = rng.integers(0, 3, size=(n_suggested, 2)).astype(float)  # repeated rows on purpose
    suggested = SuggestedRows(tuple(suggestion_id(1, k + 1) for k in range(n_suggested)), grid, None,
                              np.zeros(n_suggested, int), np.zeros(n_suggested))
    ids, xs = [], []
    for row, by_id in observations:
        k = row % n_suggested
        ids.append(suggested.ids[k] if by_id else "")
        xs.append(grid[k])
    x = np.array(xs).reshape(-1, 2)
    pending = resolve_pending(suggested, observed_ids=ids, observed_x=x, observed_pool_ids=None,
                              observed_batches=np.ones(len(ids), int), cancelled=(), scale=np.ones(2))
    assert np.sum(~pending) <= len(observations)
    for sid in ids:
        if sid:
            assert not pending[suggested.ids.index(sid)]
    # Every observed value whose equal rows are all still pending was not matched: impossible.
    for row in x:
        equal = np.all(grid == row, axis=1)
        assert not np.all(pending[equal])


def test_suggestion_ids_round_trip():
    assert parse_suggestion_id(suggestion_id(4, 7)) == (4, 7) == parse_suggestion_id("b0004-07")
    assert parse_suggestion_id(suggestion_id(12345, 123)) == (12345, 123)
    for bad in ("b4-7", "0004-07", "b0004_07", "B0004-07", " b0004-07", "b0004-07x"):
        assert parse_suggestion_id(bad) is None


def test_two_suggests_in_a_row_keep_away_from_each_other(tmp_path):
    camp = measured_campaign(tmp_path / "c")
    first = camp.suggest(6)[["x1", "x2"]].to_numpy()
    second = camp.ask(6)
    assert any("kept away from 6 pending rows" in n for n in second.notes)
    gap = unit_distance(second.suggestion.x, first)
    # Within a batch, local penalization keeps members apart by some distance; the second batch keeps at least that
    # distance from the first (runs still in the lab penalize exactly as batch members do).
    within = min(np.linalg.norm((first[i] - first[j]) / [1.0, 2.0]) for i in range(6) for j in range(i))
    assert np.min(gap) >= 0.5 * within
    # Disregarding the pending rows, the model goes back to where it went first.
    ignored = camp.ask(6, ignore_pending=True).suggestion.x
    assert np.min(unit_distance(ignored, first)) < np.min(gap)


def test_pool_campaigns_never_suggest_a_pending_row_twice_and_resolve_by_id(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.uniform(size=(40, 2))
    table = "id,a,b\n" + "".join(f"m{i},{float(a)!r},{float(b)!r}\n" for i, (a, b) in enumerate(feats))
    (tmp_path / "pool.csv").write_text(table)
    camp = jm.Campaign.create(tmp_path / "c", {"name": "p", "seed": 0, "initial_design": 6, "candidates": "pool.csv",
                                               "objective": {"name": "y", "direction": "maximize"}},
                              source_dir=tmp_path)
    first = camp.suggest(6)
    first["y"] = first["a"] - first["b"]
    camp.observe(first[["id", "y"]])  # no suggestion column: resolved by candidate id
    assert camp.snapshot().n_pending == 0
    a = camp.suggest(10)
    b = camp.suggest(10)
    assert not set(a["id"]) & set(b["id"]) and not set(b["id"]) & set(first["id"])
    with pytest.raises(DataError, match="left unmeasured and not pending"):
        camp.suggest(15)
    assert len(camp.suggest(15, ignore_pending=True)) == 15


def test_cancel_drops_rows_and_refuses_unknown_ids_without_writing(tmp_path):
    camp = measured_campaign(tmp_path / "c")
    camp.suggest(3)
    camp.suggest(2)
    state = (tmp_path / "c" / "state.json").read_bytes()
    res = runner.invoke(app, ["cancel", str(tmp_path / "c"), "b0002-02", "b0009-01"])
    assert res.exit_code == DataError.exit_code and "error: b0009-01 is not pending (pending: b0002-01" in res.stderr
    assert (tmp_path / "c" / "state.json").read_bytes() == state
    res = runner.invoke(app, ["cancel", str(tmp_path / "c")])
    assert res.exit_code == DataError.exit_code and "or pass --all" in res.stderr
    res = runner.invoke(app, ["cancel", str(tmp_path / "c"), "b0002-02", "b0003"])
    assert res.exit_code == 0 and "cancelled 3 pending suggestions; 2 still pending" in res.stdout
    assert camp.snapshot().pending.ids == ("b0002-01", "b0002-03")
    res = runner.invoke(app, ["cancel", str(tmp_path / "c"), "--all"])
    assert res.exit_code == 0 and "cancelled 2 pending suggestions; 0 still pending" in res.stdout
    assert camp.snapshot().n_pending == 0


@pytest.mark.parametrize("cell, message", [
    ("b0009-01", "row 2: suggestion b0009-01 was never suggested in this campaign"),
    ("batch 2", "row 2: suggestion = 'batch 2' is not a suggestion id"),
])
def test_a_bad_suggestion_id_is_refused_naming_the_row(tmp_path, cell, message):
    camp = measured_campaign(tmp_path / "c")
    camp.suggest(2)
    before = (tmp_path / "c" / "observations.csv").read_bytes()
    (tmp_path / "m.csv").write_text(f"suggestion,x1,x2,y\n{cell},0.5,1.0,0.3\n")
    res = runner.invoke(app, ["observe", str(tmp_path / "c"), str(tmp_path / "m.csv")])
    assert res.exit_code == DataError.exit_code and message in res.stderr and "Traceback" not in res.output
    assert (tmp_path / "c" / "observations.csv").read_bytes() == before


def test_the_cli_reports_pending_rows_and_observe_says_what_it_answered(tmp_path):
    camp = measured_campaign(tmp_path / "c")
    res = runner.invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "3"])
    assert res.exit_code == 0 and res.stdout.startswith("suggestion,x1,x2")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    status = runner.invoke(app, ["status", str(tmp_path / "c")]).stdout
    assert "pending: 3 suggested rows not yet observed" in status and "b0002-02" in status
    info = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)
    assert [r["suggestion"] for r in info["pending"]["rows"]] == ["b0002-01", "b0002-02", "b0002-03"]
    assert all(0 <= r["age_hours"] < 1 for r in info["pending"]["rows"])
    m = tmp_path / "m.csv"
    m.write_text("x1,x2,y,suggestion\n" + "".join(f"{r['x1']},{r['x2']},0.5,{r['suggestion']}\n" for r in rows[:2]))
    res = runner.invoke(app, ["observe", str(tmp_path / "c"), str(m)])
    assert res.exit_code == 0 and "answered 2 pending suggestions, 1 still pending" in res.stdout
    header = (tmp_path / "c" / "observations.csv").read_text().splitlines()[0]
    assert header == "x1,x2,y,suggestion,batch"
    assert camp.snapshot().n_rows == 10


# -- the functional core ---------------------------------------------------------

def _model(key=0, n=12, d=2):
    rng = np.random.default_rng(key)
    x = rng.uniform(size=(n, d))
    y = np.sin(3 * x[:, 0]) + np.cos(2 * x[:, 1])
    return x, y, fit_gp(x, y, key=jax.random.key(key), low=np.zeros(d), high=np.ones(d))


def test_padding_of_pending_rows_changes_nothing():
    x, y, model = _model()
    space = SearchSpace([0.0, 0.0], [1.0, 1.0])
    pending = np.array([[0.2, 0.3], [0.8, 0.9], [0.5, 0.1]])
    padded, mask = pad_pending(pending, 2, jnp.float64)
    assert padded.shape == (8, 2) and mask.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert pad_pending(np.zeros((257, 2)), 2, jnp.float64)[0].shape == (512, 2)
    assert pad_pending(None, 2, jnp.float64)[0].shape == (0, 2)
    # The same three rows padded to 8 or to 32 slots (the padding rows elsewhere) give the same batch.
    wide = np.full((32, 2), 0.7)
    wide[:3] = pending
    args = (model, space, jax.random.key(1), jnp.asarray(y.max()), None, jnp.asarray(0.03), None, None)
    static = dict(q=3, maximize=True, n_starts=16, n_raw=512, n_steps=60)
    none = (jnp.zeros((0, 2)), jnp.zeros(0))  # nothing excluded
    active = jnp.asarray(3)
    a = _local_penalization(*args, padded, mask, *none, active, **static)
    b = _local_penalization(*args, jnp.asarray(wide), jnp.asarray(np.arange(32) < 3, float), *none, active, **static)
    np.testing.assert_allclose(a.x, b.x, atol=1e-12)
    np.testing.assert_allclose(a.log_acquisition, b.log_acquisition, atol=1e-12)


def test_core_batches_keep_away_from_pending_points():
    x, y, model = _model()
    space = SearchSpace([0.0, 0.0], [1.0, 1.0])
    key = jax.random.key(3)
    free = np.asarray(local_penalization_batch(model, space, 4, key=key, best=y.max()).x)
    held = np.asarray(local_penalization_batch(model, space, 4, key=key, best=y.max(), pending=free).x)
    # Pending points penalize exactly as earlier members of one batch do: new points keep at least the distance
    # that the members of a batch of eight keep from each other.
    eight = np.asarray(local_penalization_batch(model, space, 8, key=key, best=y.max()).x)
    apart = np.linalg.norm(eight[:, None] - eight[None], axis=-1) + np.diag(np.full(8, np.inf))
    assert np.min(np.linalg.norm(held[:, None] - free[None], axis=-1)) >= 0.95 * np.min(apart)
    # Continuous EHVI: pending points are believed observed, so the batch does not repeat them.
    ys = np.stack([y, -np.sin(2 * x[:, 0])], axis=1)
    models = fit_objectives(x, ys, key=jax.random.key(0), low=np.zeros(2), high=np.ones(2))
    args = (models, jnp.ones(2))
    first = np.asarray(ehvi_batch(predict_objectives_believer, args, space, ys, ys.min(0) - 0.1, 3, key=key)[0])
    again = np.asarray(ehvi_batch(predict_objectives_believer, args, space, ys, ys.min(0) - 0.1, 3, key=key,
                                  pending=first)[0])
    assert np.min(np.linalg.norm(again[:, None] - first[None], axis=-1)) > 0.02
    # Pools: pending rows are excluded by the caller and penalize like picked rows.
    feats = np.random.default_rng(5).uniform(size=(300, 2))
    pb = penalized_pool_batch(model, feats, 3, best=y.max())
    blocked = np.zeros(300, bool)
    blocked[np.asarray(pb.index)] = True
    again = penalized_pool_batch(model, feats, 3, best=y.max(), exclude=blocked, pending=np.asarray(pb.index))
    plain = penalized_pool_batch(model, feats, 3, best=y.max(), exclude=blocked)
    near = lambda idx: np.min(np.linalg.norm(feats[np.asarray(idx)][:, None] - feats[np.asarray(pb.index)][None], axis=-1))  # noqa: E731
    assert near(again.index) >= near(plain.index)


def test_predictions_of_pending_rows_equal_the_eager_ones_and_compile_once_per_64_rows():
    from jaxopt_mat.surrogates import independent

    rng = np.random.default_rng(4)
    x = rng.uniform(size=(20, 3))
    y = np.column_stack([np.sin(4 * x[:, 0]), x[:, 1] ** 2 - x[:, 2]])
    models = fit_objectives(x, y, key=jax.random.key(0), low=np.zeros(3), high=np.ones(3))
    signs = np.array([1.0, -1.0])
    before = None
    for n in (1, 3, 10):
        rows = rng.uniform(size=(n, 3))
        mean, std = independent.predict_objectives_rows(rows, models, signs)
        eager = independent.predict_objectives(rows, models, jnp.asarray(signs))
        np.testing.assert_allclose(mean, eager[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(std, eager[1], rtol=1e-10, atol=1e-12)
        before = before or independent._predict_objectives._cache_size()
    assert independent._predict_objectives._cache_size() == before
