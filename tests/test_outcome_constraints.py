"""Outcome constraints: parsing, the constrained columns' records, the probability every bound holds, and batches."""

import json

import jax
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

import jaxopt_mat as jm
from jaxopt_mat.campaign import parse_config
from jaxopt_mat.cli import app
from jaxopt_mat.errors import ConfigError, DataError
from jaxopt_mat.surrogates.gp import fit_gp
from jaxopt_mat.surrogates.outcome_constraints import fit_outcome_constraints, outcome_constraints

runner = CliRunner()

CONFIG = {
    "name": "oc", "seed": 4, "initial_design": 12,
    "inputs": [{"name": "x1", "low": 0.0, "high": 1.0}, {"name": "x2", "low": 0.0, "high": 1.0}],
    "objective": {"name": "yield_", "direction": "maximize"},
    "outcome_constraints": [{"expr": "purity >= 0.95"}],
}


def yield_(b):
    """Best at (1, 1); the constraint excludes that corner."""
    return b["x1"] + 0.8 * b["x2"]


def purity(b):
    """At least 0.95 where x1 + x2 <= 1.2."""
    return 1.0 - 0.1 * (b["x1"] + b["x2"]) + 0.07


def measure(batch):
    out = batch[["suggestion", "x1", "x2"]].copy()
    out["yield_"] = yield_(out)
    out["purity"] = purity(out)
    return out


@pytest.mark.parametrize("expr, message", [
    ("yield_ >= 0.5", "'yield_' is the objective"),
    ("x1 <= 0.5", "'x1' is an input, not a measured column"),
    ("purity 0.95", "is not 'column >= number' or 'column <= number'"),
    ("purity > 0.95", "is not 'column >= number'"),
    ("purity >= high", "the bound of 'purity >= high' must be a number"),
    ("status <= 1", "'status' is a reserved column"),
])
def test_bad_outcome_constraints_are_refused_naming_the_table(expr, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**CONFIG, "outcome_constraints": [{"expr": expr}]})
    with pytest.raises(ConfigError, match="outcome_constraints #2: .*unknown key"):
        parse_config({**CONFIG, "outcome_constraints": [{"expr": "purity >= 0.9"}, {"expr": "a <= 1", "x": 1}]})


def test_a_measurement_file_must_carry_the_constrained_column_and_failures_may_leave_it_empty(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    assert (tmp_path / "c" / "observations.csv").read_text() == "x1,x2,yield_,purity,batch\n"
    before = (tmp_path / "c" / "observations.csv").read_bytes()
    with pytest.raises(DataError, match=r"missing column\(s\) purity"):
        camp.observe(pd.DataFrame({"x1": [0.5], "x2": [0.5], "yield_": [1.0]}))
    with pytest.raises(DataError, match="row 2: purity is empty"):
        camp.observe(pd.DataFrame({"x1": [0.5], "x2": [0.5], "yield_": [1.0], "purity": [None]}))
    assert (tmp_path / "c" / "observations.csv").read_bytes() == before
    camp.observe(pd.DataFrame({"x1": [0.5, 0.9], "x2": [0.5, 0.9], "yield_": [0.9, None], "purity": [0.97, None],
                               "status": ["ok", "failed"]}))
    snap = camp.snapshot()
    np.testing.assert_array_equal(snap.outcomes, [[0.97]])
    np.testing.assert_array_equal(snap.measured, [[0.9]])
    assert list(camp.observations().columns) == ["x1", "x2", "yield_", "purity", "batch"]


def test_the_best_condition_is_the_best_that_keeps_the_constraints(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    rows = pd.DataFrame({"x1": [0.2, 0.5, 0.9, 0.9], "x2": [0.2, 0.5, 0.9, 0.9],
                         "yield_": [0.4, 0.9, 1.7, 1.6], "purity": [0.99, 0.96, 0.90, 0.97]})
    camp.observe(rows)
    status = camp.status(with_model=False)
    # (0.9, 0.9) has the highest yield, but the median purity of its replicates is 0.935 < 0.95.
    assert status.best["x1"] == 0.5 and status.best["value"] == 0.9
    assert status.outcome_constraints == {"constraints": ["purity >= 0.95"], "satisfied": 2, "conditions": 3}
    text = runner.invoke(app, ["status", str(tmp_path / "c")]).stdout
    assert "outcome constraints (purity >= 0.95): 2 of 3 conditions keep them" in text


def test_the_probability_that_every_bound_holds_matches_the_gps_by_hand():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(15, 2))
    a, b = np.sin(3 * x[:, 0]), x[:, 0] * x[:, 1]
    ma = fit_gp(x, a, key=jax.random.key(0), low=np.zeros(2), high=np.ones(2))
    mb = fit_gp(x, b, key=jax.random.key(1), low=np.zeros(2), high=np.ones(2))
    oc = outcome_constraints([ma, mb], [0.3, 0.2], [True, False])  # a <= 0.3 and b >= 0.2
    xs = rng.uniform(size=(40, 2))
    pa, pb = ma.predict(xs), mb.predict(xs)
    by_hand = norm.logcdf((0.3 - np.asarray(pa.mean)) / np.asarray(pa.std)) + \
        norm.logcdf((np.asarray(pb.mean) - 0.2) / np.asarray(pb.std))
    np.testing.assert_allclose(oc.log_probability(xs), by_hand, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(np.asarray(jax.jit(oc.log_probability)(xs))))
    # Fitting from the config's constraints gives the same GPs, per distinct column.
    cons = parse_config({**CONFIG, "outcome_constraints": [{"expr": "a <= 0.3"}, {"expr": "b >= 0.2"},
                                                           {"expr": "a >= -0.5"}]}).outcome_constraints
    fitted = fit_outcome_constraints(x, np.stack([a, b], 1), cons, key=jax.random.key(0), low=np.zeros(2),
                                     high=np.ones(2))
    assert len(fitted.models) == 3 and fitted.models[0] is fitted.models[2]
    np.testing.assert_array_equal(fitted.signs, [1.0, -1.0, -1.0])
    np.testing.assert_array_equal(fitted.bounds, [0.3, 0.2, -0.5])


@pytest.mark.heavy
def test_gp_batches_stay_where_the_constraint_probably_holds(tmp_path):
    """The unconstrained optimum (1, 1) breaks purity >= 0.95; the model's batches keep x1 + x2 <= 1.2."""
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    camp.observe(measure(camp.suggest(12)))
    inside = []
    for _ in range(3):
        batch = camp.suggest(4)
        assert batch.attrs["method"] == "gp"
        assert any("conditions keep the outcome constraints (purity >= 0.95)" in n for n in batch.attrs["notes"])
        inside += list(batch["x1"] + batch["x2"] <= 1.25)
        camp.observe(measure(batch))
    assert np.mean(inside) >= 0.9
    best = camp.status(with_model=False).best
    assert best["x1"] + best["x2"] <= 1.2 + 1e-9 and best["value"] > 1.0
    # Without the constraint the same loop goes to the corner.
    free = jm.Campaign.create(tmp_path / "f", {**CONFIG, "outcome_constraints": []})
    free.observe(measure(free.suggest(12)).drop(columns="purity"))
    assert np.mean(free.suggest(4)[["x1", "x2"]].sum(axis=1) > 1.25) >= 0.5


def test_pool_pareto_fronts_count_only_conditions_that_keep_the_constraints(tmp_path):
    rng = np.random.default_rng(1)
    feats = rng.uniform(size=(60, 2))
    (tmp_path / "pool.csv").write_text("id,a,b\n" + "".join(f"m{i},{float(a)!r},{float(b)!r}\n"
                                                          for i, (a, b) in enumerate(feats)))
    config = {"name": "pp", "seed": 0, "initial_design": 10, "candidates": "pool.csv",
              "objective": {"kind": "pareto", "objectives": [{"name": "s"}, {"name": "t"}]},
              "outcome_constraints": [{"expr": "cost <= 1.0"}]}
    camp = jm.Campaign.create(tmp_path / "c", config, source_dir=tmp_path)

    def measure_pool(batch):
        f = feats[[int(i[1:]) for i in batch["id"]]]
        return pd.DataFrame({"id": batch["id"], "s": f[:, 0], "t": f[:, 1], "cost": f.sum(axis=1)})

    camp.observe(measure_pool(camp.suggest(10)))
    batch = camp.suggest(5)
    assert "ehvi" in batch.columns
    camp.observe(measure_pool(batch))
    status = camp.status(with_model=False)
    front = status.pareto["front"]
    assert front and all(r["s"] + r["t"] <= 1.0 for r in front)
    info = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)
    assert info["outcome_constraints"]["satisfied"] < info["n_conditions"]
