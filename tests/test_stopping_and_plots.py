import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from jaxopt_mat import fit_gp
from jaxopt_mat import Campaign
from jaxopt_mat.campaign import parse_config
from jaxopt_mat.cli import app
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.stopping import centred_cosine, evaluate
from tests.conftest import append_rows, rows_of

runner = CliRunner()


@pytest.fixture
def small(tmp_path):
    cfg = parse_config({
        "name": "s", "seed": 0,
        "inputs": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
        "objective": {"name": "y", "direction": "minimize"},
        "stopping": {"threshold": 0.05, "budget": 12, "plateau_rounds": 2},
    })
    camp = Campaign.create(tmp_path / "c", cfg)
    rng = np.random.default_rng(0)
    for values in ([0.9, 0.5, 0.7, 0.6], [0.3, 0.4, 0.35, 0.8], [0.31, 0.33, 0.5, 0.2]):
        x = rng.uniform(size=(4, 2))
        append_rows(camp, np.column_stack([x, values]))
    return camp


def test_stop_rule_values_equal_hand_computed_values(small):
    res = evaluate(small.snapshot(), small.config.stopping)
    r = res["stop_rules"]
    assert r["threshold"]["value"] == pytest.approx(0.2) and not r["threshold"]["met"]
    assert r["budget"]["value"] == 12 and r["budget"]["met"]
    # Best after batch 1 was 0.5; now 0.2; the range of all values is 0.9 - 0.2.
    assert r["plateau"]["value"] == pytest.approx((0.5 - 0.2) / 0.7) and not r["plateau"]["met"]
    # Accuracy: a GP on batches 1-2 predicts batch 3; relative MSE over the variance of all values.
    x, y, b = rows_of(small)
    past = combine_replicates(x[b <= 2], y[b <= 2])
    model = fit_gp(past.x, past.y, key=jax.random.key(0), low=[0, 0], high=[1, 1])
    pred = np.asarray(model.predict(x[b == 3]).mean)
    assert r["accuracy"]["value"] == pytest.approx(np.mean((pred - y[b == 3]) ** 2) / np.var(y), rel=1e-6)
    assert r["acquisition"]["value"] is None  # no GP suggestion recorded yet
    assert res["should_stop"]  # the budget is spent
    lazy = evaluate(small.snapshot(), small.config.stopping, lazy=True)
    assert lazy["should_stop"] == res["should_stop"]
    assert lazy["stop_rules"]["plateau"] == r["plateau"] and lazy["stop_rules"]["stability"]["value"] is None


def test_runs_recorded_one_at_a_time_are_judged_in_rounds(small, tmp_path):
    """What a runner records (each run its own batch) is judged over rounds of runs in the order recorded."""
    import pandas as pd

    camp = Campaign.create(tmp_path / "one", small.config)
    rng = np.random.default_rng(1)
    values = [0.9, 0.5, 0.7, None, 0.6, 0.3, 0.4, 0.35, 0.8, 0.2, 0.33, 0.5, 0.25]  # None: a failed run
    for v in values:
        a, b = rng.uniform(size=2)
        camp.observe(pd.DataFrame([{"a": a, "b": b, "y": v, "status": "failed" if v is None else "ok"}]))
    snap = camp.snapshot()
    assert snap.batches.tolist() == [b for b in range(1, 14) if b != 4] and snap.failed_batches.tolist() == [4]
    rounds = snap.in_rounds(4)
    assert rounds.batches.tolist() == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]  # the failed run fills a place
    assert rounds.failed_batches.tolist() == [1]
    np.testing.assert_array_equal(rounds.y, snap.y)
    one_by_one = evaluate(snap, small.config.stopping, lazy=True)["stop_rules"]["plateau"]
    assert one_by_one["met"]  # no better value in the last two runs
    in_rounds = evaluate(rounds, small.config.stopping, lazy=True)["stop_rules"]["plateau"]
    # Best after round 2 (runs 1-8) was 0.3, after round 4 0.2; the range of all values is 0.9 - 0.2.
    assert in_rounds["value"] == pytest.approx((0.3 - 0.2) / 0.7) and not in_rounds["met"]


def test_the_stop_rules_remember_their_fits_and_give_the_same_verdict(small, monkeypatch):
    """The fits on earlier batches come back in every later suggest: the second time they are only conditioned."""
    import jaxopt_mat.surrogates.independent as independent
    from jaxopt_mat.stopping import FITS_KEY

    first = evaluate(small.snapshot(), small.config.stopping)
    assert len(first["state"][FITS_KEY]) == 3  # the fits on batches 1, 1-2 and 1-3
    small.folder.update_state(**first["state"])
    fitted = []
    fit = independent.fit_gp
    monkeypatch.setattr(independent, "fit_gp", lambda *a, **k: fitted.append(k["max_iter"]) or fit(*a, **k))
    again = evaluate(small.snapshot(), small.config.stopping)
    assert fitted and set(fitted) == {0} and "state" not in again  # nothing fitted, nothing new to keep
    for name in ("stability", "accuracy"):
        assert again["stop_rules"][name]["value"] == pytest.approx(first["stop_rules"][name]["value"], rel=1e-9)
    # a strategy's GP of all the data is kept under the digest the stop rules' own fit on all the data gets
    cond = small.snapshot().conditions
    lent = fit_gp(cond.x, cond.y, key=jax.random.key(1), low=[0, 0], high=[1, 1])
    kept = evaluate(small.snapshot(), small.config.stopping, diagnostics={"objective_models": (lent,)})["state"][FITS_KEY]
    assert set(kept) == set(first["state"][FITS_KEY])  # no new digest: the lent GP took the all-data fit's place
    np.testing.assert_allclose(next(iter(kept.values()))[0], lent.hyperparameters)
    # a widened bound changes what a fit means: it is fitted anew
    from jaxopt_mat.campaign.config import widen_bound

    wider = small.snapshot().with_config(widen_bound(small.config, "a", "high"))
    fitted.clear()
    evaluate(wider, small.config.stopping)
    assert 200 in fitted


def test_a_gp_of_given_hyperparameters_is_the_fitted_gp():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(12, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    fitted = fit_gp(x, y, key=jax.random.key(0), low=[0, 0], high=[1, 1])
    again = fit_gp(x, y, key=jax.random.key(5), low=[0, 0], high=[1, 1], init=fitted.hyperparameters, max_iter=0)
    np.testing.assert_allclose(again.hyperparameters, fitted.hyperparameters, rtol=1e-12)
    probe = rng.uniform(size=(20, 2))
    np.testing.assert_allclose(again.predict(probe).mean, fitted.predict(probe).mean, rtol=1e-10)


def test_centred_cosine_is_the_correlation():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([2.0, 3.0, 9.0])
    assert centred_cosine(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])


def test_status_json_reports_the_stop_rules(small):
    info = json.loads(runner.invoke(app, ["status", str(small.directory), "--json"]).stdout)
    assert set(info["stop_rules"]) == {"threshold", "budget", "plateau", "stability", "accuracy", "acquisition"}
    assert all(set(v) == {"value", "threshold", "met"} for v in info["stop_rules"].values())
    assert info["should_stop"] is True
    assert "state" not in info and "stop_rule_fits" not in json.dumps(info)  # the kept fits are suggest's business


def _not_blank(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return path.stat().st_size > 1000 and float(np.std(img[..., :3])) > 0.01


def test_plot_writes_readable_pngs(small, tmp_path):
    res = runner.invoke(app, ["plot", str(small.directory), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    for name in ("convergence.png", "parity.png"):
        assert _not_blank(tmp_path / "p" / name)


def test_plot_and_explain_refuse_a_campaign_without_data(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[inputs]]\nname="a"\nlow=0.0\nhigh=1.0\n[objective]\nname="y"\n')
    runner.invoke(app, ["init", str(tmp_path / "c"), "--config", str(cfg)])
    for cmd in ("plot", "explain"):
        res = runner.invoke(app, [cmd, str(tmp_path / "c")])
        assert res.exit_code == 5
        assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1


def test_explain_json_gives_the_importance_of_every_input(small, tmp_path):
    res = runner.invoke(app, ["explain", str(small.directory), "--json", "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert set(info["importance"]) == {"a", "b"} and all(v >= 0 for v in info["importance"].values())
    for name in ("shap_bar.png", "shap_beeswarm.png", "landscape.png"):
        assert _not_blank(tmp_path / "e" / name)


@pytest.mark.parametrize("signs", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_front_staircase_bounds_the_hypervolume_region(signs):
    # Closed at the reference corner, the staircase encloses exactly the dominated region the hypervolume
    # measures (shoelace area against jaxopt_mat.hypervolume), in any pair of directions.
    from jaxopt_mat import hypervolume
    from jaxopt_mat.pareto import non_dominated_mask
    from jaxopt_mat.plots import front_staircase

    signs = np.asarray(signs, float)
    rng = np.random.default_rng(int(signs[0] * 3 + signs[1] + 5))
    for _ in range(5):
        pts = rng.uniform(1.0, 2.0, size=(int(rng.integers(1, 12)), 2))
        front = pts[np.asarray(non_dominated_mask(pts * signs))]
        ref = np.min(pts * signs, axis=0) * signs - 0.3 * signs  # worse than every point, own units
        path = front_staircase(front, signs, ref)
        steps = np.diff(path, axis=0)
        assert np.all((steps[:, 0] == 0) | (steps[:, 1] == 0)), "every segment is horizontal or vertical"
        poly = np.concatenate([path, [ref]])
        area = 0.5 * abs(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1]))
        assert area == pytest.approx(float(hypervolume(front * signs, ref * signs)), rel=1e-9)
    assert front_staircase(np.empty((0, 2)), signs, [0.0, 0.0]).shape == (0, 2)


def test_pareto_plot_of_a_single_round(tmp_path):
    from jaxopt_mat.plots import pareto_front

    values = np.array([[1.0, 2.0], [2.0, 1.0], [0.5, 0.5]])
    path = pareto_front(values, [True, True, False], tmp_path / "f.png", names=["a", "b"], batches=np.ones(3, int),
                        reference=[0.0, 0.0])
    assert _not_blank(path)
