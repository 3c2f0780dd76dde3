import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from jaxopt_mat import Campaign, strategies
from jaxopt_mat.campaign import parse_config
from jaxopt_mat.cli import app
from jaxopt_mat.strategies import spectrum as spectrum_strategies
from jaxopt_mat.strategies import two_step
from jaxopt_mat.strategies.gp import peak_smoothed_losses
from jaxopt_mat.data import combine_replicates
from jaxopt_mat.errors import DataError, RepeatedBatchError
from jaxopt_mat.objectives import spectrum_loss
from jaxopt_mat.simulate import measurements_csv
from jaxopt_mat.virtual_lab import CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, SilverLab
from tests.conftest import rows_of

runner = CliRunner()


@pytest.mark.parametrize("cos, mse, stab, step", [
    (0.99, 0.01, 0.99, "dnn"),
    (0.94, 0.01, 0.99, "gp"),   # not accurate: cosine
    (0.99, 0.06, 0.99, "gp"),   # not accurate: error
    (0.99, 0.01, 0.96, "gp"),   # not stable
])
def test_auto_switch_follows_its_stated_rule(cos, mse, stab, step):
    assert two_step.decide_step(cos, mse, stab)[0] == step


def cli_context():
    """The context the command line runs with (its caches)."""
    from jaxopt_mat.cli.common import context

    return context()


def spectrum_config(tmp_path, lab):
    target = np.asarray(lab.spectra(np.array([[18.0, 22.0, 12.0, 3.0, 450.0]])))[0]
    (tmp_path / "target.csv").write_text("wavelength,absorbance\n" + "".join(
        f"{w:g},{a!r}\n" for w, a in zip(lab.wavelengths[::4], target[::4].tolist())))
    return parse_config({
        "name": "t", "seed": 1, "initial_design": 8,
        "inputs": [{"name": n, "low": float(lo), "high": float(hi)} for n, lo, hi in zip(INPUT_NAMES, LOW, HIGH)],
        "constraints": [{"expr": f"q_agno3 + q_pva + q_tsc + q_seed <= {CONSTRAINT_B[0]:g}"}],
        "objective": {"kind": "spectrum", "target": "target.csv", "window": [0.7, 1.2]},
    })


def test_spectrum_campaign_records_spectra_and_scores_them(tmp_path):
    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    assert (tmp_path / "c" / "target.csv").exists()  # copied: the folder is self-contained
    x = np.array([[18.0, 22.0, 12.0, 3.0, 450.0], [40.0, 20.0, 20.0, 5.0, 300.0]])
    wl = [f"{w:g}" for w in lab.wavelengths]
    text = measurements_csv(list(INPUT_NAMES), wl, x, np.asarray(lab.spectra(x)))
    camp.observe_text(text, "m.csv")
    _, loss, _ = rows_of(camp)
    assert loss[0] < 1e-4 < loss[1]  # the target recipe itself (target interpolated from a coarser grid)
    with pytest.raises(RepeatedBatchError, match="repeat batch 1 exactly"):  # the same spectra file observed twice
        camp.observe_text(text, "m.csv")
    np.testing.assert_allclose(camp.snapshot().wavelengths, lab.wavelengths)
    # A later file must use the same grid.
    other = measurements_csv(list(INPUT_NAMES), wl[:-1], x, np.asarray(lab.spectra(x))[:, :-1])
    with pytest.raises(DataError, match="differ from the campaign"):
        camp.validate_text(other, "m2.csv")
    # Two columns for one wavelength ("400" and "400.0"): which one is the measurement is unknown.
    twice = measurements_csv(list(INPUT_NAMES), wl[:-1] + ["400.0"], x, np.asarray(lab.spectra(x)))
    with pytest.raises(DataError, match="wavelength.s. 400 nm appear in more than one column"):
        camp.validate_text(twice, "m3.csv")


def test_target_must_cover_the_measured_wavelengths(tmp_path):
    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    x = np.array([[18.0, 22.0, 12.0, 3.0, 450.0]])
    text = measurements_csv(list(INPUT_NAMES), ["300", "301", "302"], x, np.ones((1, 3)))
    with pytest.raises(DataError, match="covers 380-800 nm"):
        camp.validate_text(text, "m.csv")


@pytest.mark.heavy
def test_simulate_runs_the_loop_through_the_files(tmp_path):
    lab = SilverLab()
    Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    res = runner.invoke(app, ["simulate", str(tmp_path / "c"), "--rounds", "2", "--batch", "8", "--replicates", "2"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("round") == 2
    info = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)
    assert info["n_observations"] == 32 and info["n_conditions"] == 16
    assert info["step"]["step"] == "gp" and "at least" in info["step"]["reason"]
    batches = sorted((tmp_path / "c" / "suggestions").glob("batch_*.csv"))
    assert len(batches) == 2
    # Round 2 is auto's GP step: the composite spectrum GP, with its predicted loss and log-EI per recipe.
    assert "auto:cgp" in res.stdout.splitlines()[1]
    header = batches[1].read_text().splitlines()[0].split(",")
    assert header[:6] == ["suggestion"] + list(INPUT_NAMES) and {"predicted_loss", "predicted_loss_std", "log_ei"} <= set(header)


@pytest.mark.heavy
def test_dnn_and_mixed_suggestions_come_from_the_network(tmp_path, monkeypatch):
    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    from jaxopt_mat.design import latin_hypercube

    x = latin_hypercube(camp.space, 24, seed=0)
    text = measurements_csv(list(INPUT_NAMES), [f"{w:g}" for w in lab.wavelengths], x, lab.measure(x, rng=np.random.default_rng(0)))
    camp.observe_text(text, "m.csv")
    for method, n in (("dnn", 3), ("mixed", 5)):
        res = runner.invoke(app, ["suggest", str(tmp_path / "c"), "--batch", str(n), "--method", method])
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert lines[0].split(",")[:6] == ["suggestion"] + list(INPUT_NAMES) and "predicted_loss" in lines[0]
        rows = np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines[1:]])
        assert rows.shape == (n, 7 if method == "dnn" else 8)
        assert np.all(rows[:, :4].sum(axis=1) <= 90.0)
    # mixed: the composite GP's recipes keep their log-EI, the network's have none; the stop rule reads the former.
    assert lines[0].split(",")[-1] == "log_ei"
    assert np.all(np.isnan(rows[:3, 7])) and np.all(np.isfinite(rows[3:, 7]))
    acquisition = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)["stop_rules"]["acquisition"]
    assert acquisition["value"] is not None and np.isfinite(acquisition["value"])
    assert "mixed: 3 recipes from the spectrum network, then 2 from the composite spectrum GP" in res.stderr
    # Once the network step has begun, auto suggests as mixed does, the network's recipes kept away from cgp's.
    camp.folder.update_state(network_step_since_batch=1)
    pending = []
    batch_fn = spectrum_strategies.spectrum_batch
    monkeypatch.setattr(spectrum_strategies, "spectrum_batch",
                        lambda *a, **k: pending.append(k["pending"]) or batch_fn(*a, **k))
    snap = camp.snapshot()
    assert snap.n_pending == 8  # the dnn and mixed batches above were never observed
    sug = strategies.suggest(snap, 5, method="auto", context=cli_context())
    np.testing.assert_array_equal(pending[0], np.concatenate([snap.pending.x, sug.x[3:]]))
    assert sug.method == "auto:mixed" and sug.x.shape == (5, 5)
    assert any(n.startswith("auto: dnn step (network step since batch 1") for n in sug.notes), sug.notes
    assert any(n.startswith("mixed: 3 recipes from the spectrum network, then 2") for n in sug.notes), sug.notes
    assert np.all(np.asarray(camp.space.is_feasible(sug.x, atol=0.0)))
    assert np.all((sug.extra["predicted_loss"] >= 0) & (sug.extra["predicted_loss"] <= 1))


def test_spectrum_campaigns_stop_when_either_model_has_learned(tmp_path):
    from jaxopt_mat.design import latin_hypercube
    from jaxopt_mat.stopping import evaluate

    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    rng = np.random.default_rng(3)
    for b in range(4):
        measure_batch(camp, lab, latin_hypercube(camp.space, 3, seed=b), rng)
    settings = {"plateau_fraction": 1.1, "plateau_rounds": 1}  # a plateau however the best moved
    snap = camp.snapshot()
    unmeasured = evaluate(snap, settings)  # 12 conditions: too few for the network, its rules have no value
    assert [unmeasured["stop_rules"][r]["value"] for r in ("spectrum_accuracy", "spectrum_mse", "spectrum_stability")
            ] == [None, None, None]
    assert unmeasured["stop_rules"]["plateau"]["met"]
    gp_learned = unmeasured["stop_rules"]["stability"]["met"] and unmeasured["stop_rules"]["accuracy"]["met"]
    assert unmeasured["should_stop"] == gp_learned
    good = evaluate(snap, settings, diagnostics={"readiness": two_step.Readiness("dnn", "", 0.99, 0.01, 0.99)})
    assert all(good["stop_rules"][r]["met"] for r in ("spectrum_accuracy", "spectrum_mse", "spectrum_stability"))
    assert good["should_stop"]
    for cos, mse, stab in ((0.94, 0.01, 0.99), (0.99, 0.06, 0.99), (0.99, 0.01, 0.96)):  # one rule short
        res = evaluate(snap, settings, diagnostics={"readiness": two_step.Readiness("dnn", "", cos, mse, stab)})
        assert res["should_stop"] == gp_learned
    # With the GP's rules pinned off (a stability above any cosine), the network's rules alone decide:
    # all three met stops, any one short does not.
    no_gp = {**settings, "stability": 1.01}
    ready = evaluate(snap, no_gp, diagnostics={"readiness": two_step.Readiness("dnn", "", 0.99, 0.01, 0.99)})
    assert not ready["stop_rules"]["stability"]["met"] and ready["should_stop"]
    for cos, mse, stab in ((0.94, 0.01, 0.99), (0.99, 0.06, 0.99), (0.99, 0.01, 0.96)):
        res = evaluate(snap, no_gp, diagnostics={"readiness": two_step.Readiness("dnn", "", cos, mse, stab)})
        assert not res["should_stop"], (cos, mse, stab)
    lazy = evaluate(snap, settings, lazy=True, diagnostics={"readiness": two_step.Readiness("dnn", "", 0.99, 0.01, 0.99)})
    assert lazy["should_stop"]  # the plateau holds, so the lazy evaluation measures everything


def measure_batch(camp, lab, x, rng):
    """Measure recipes ``x`` on the lab and observe them as the campaign's next batch."""
    wl = [f"{w:g}" for w in lab.wavelengths]
    camp.observe_text(measurements_csv(list(INPUT_NAMES), wl, x, lab.measure(x, rng=rng)), "m.csv")


def two_batch_campaign(tmp_path, cfg, lab, rng):
    """A spectrum campaign with two measured batches, 24 and 12 Latin-hypercube recipes: enough for the network."""
    from jaxopt_mat.design import latin_hypercube

    camp = Campaign.create(tmp_path / "c", cfg, source_dir=tmp_path)
    for n, seed in ((24, 0), (12, 1)):
        measure_batch(camp, lab, latin_hypercube(camp.space, n, seed=seed), rng)
    return camp


@pytest.mark.heavy
def test_suggest_trains_each_ensemble_once_per_call_without_a_cache(tmp_path, monkeypatch):
    import dataclasses

    from jaxopt_mat import stopping
    from jaxopt_mat.api import Campaign as ApiCampaign

    lab = SilverLab()
    cfg = dataclasses.replace(spectrum_config(tmp_path, lab), stopping={"plateau_fraction": 1.1, "plateau_rounds": 1})
    camp = two_batch_campaign(tmp_path, cfg, lab, np.random.default_rng(0))
    trained, measured = [], []
    fit = two_step.fit_spectrum_ensemble
    monkeypatch.setattr(two_step, "fit_spectrum_ensemble", lambda *a, **k: trained.append(1) or fit(*a, **k))
    rules_fn = stopping.spectrum_rules
    monkeypatch.setattr(stopping, "spectrum_rules",
                        lambda c, rules, **k: [rules_fn(c, rules, **k), measured.append(dict(rules))][0])
    kept = ApiCampaign.open(camp.directory).ask(3, method="auto")  # no ensemble cache: nothing may be trained twice
    assert kept.suggestion.x.shape == (3, 5) and len(trained) == 2  # held-out batch left out, and all data
    rules = measured[-1]  # the plateau holds, so the stop note measured the network's rules
    assert rules["spectrum_accuracy"]["value"] is not None and rules["spectrum_stability"]["value"] is not None
    # In the network step, `auto` trains only the all-data ensemble; the stop note adds the held-out one.
    camp.folder.update_state(network_step_since_batch=3)
    kept = ApiCampaign.open(camp.directory).ask(3, method="auto")
    assert kept.method == "auto:mixed" and len(trained) == 4
    assert measured[-1]["spectrum_stability"]["value"] == pytest.approx(rules["spectrum_stability"]["value"])
    # With a seed override, the stop note judges the ensembles of that seed, the ones `auto` trains.
    kept = ApiCampaign.open(camp.directory).ask(3, method="auto", seed=5)
    assert kept.method == "auto:mixed" and len(trained) == 6


def test_spectrum_plateau_is_judged_in_the_log_loss(tmp_path, monkeypatch):
    from jaxopt_mat.design import latin_hypercube
    import dataclasses

    from jaxopt_mat.objectives import LOSS_FLOOR
    from jaxopt_mat.stopping import evaluate

    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, SilverLab()), source_dir=tmp_path)
    y = np.array([1.0, 0.5, 0.2, 1.0, 0.006, 0.3, 0.9, 0.005, 0.4, 1.0, 0.004, 0.6, 0.8, 0.003, 0.7])
    b = np.repeat(np.arange(1, 6), 3)
    x = latin_hypercube(camp.space, 15, seed=0)
    empty = camp.snapshot()

    def recorded(losses):  # the snapshot of a campaign whose rows scored these losses
        snap = dataclasses.replace(empty, x=x, measured=np.zeros((15, 3)), batches=b)
        snap.__dict__["y"] = losses
        return snap

    rule = evaluate(recorded(y), {"plateau_rounds": 3}, lazy=True)["stop_rules"]["plateau"]
    scale = np.log(np.median(y) + LOSS_FLOOR) - np.log(0.003 + LOSS_FLOOR)
    assert rule["value"] == pytest.approx(np.log((0.006 + LOSS_FLOOR) / (0.003 + LOSS_FLOOR)) / scale)
    assert not rule["met"]  # the best loss halved: progress, though only 0.3 % of the range of the losses
    flat = np.where(b >= 3, np.maximum(y, 0.006), y)
    rule = evaluate(recorded(flat), {"plateau_rounds": 3}, lazy=True)["stop_rules"]["plateau"]
    assert rule["value"] == 0.0 and rule["met"]


def test_unknown_method_for_a_scalar_campaign_is_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[inputs]]\nname="a"\nlow=0.0\nhigh=1.0\n[objective]\nname="y"\n')
    runner.invoke(app, ["init", str(tmp_path / "c"), "--config", str(cfg)])
    res = runner.invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "2", "--method", "dnn"])
    assert res.exit_code == 3 and "for a scalar campaign" in res.stderr


@pytest.mark.heavy
def test_status_reports_the_networks_spectrum_rules_and_plot_draws_its_band(tmp_path, monkeypatch):
    # status trains what the next suggest will use; plot, explain and suggest then load it from the cache.
    from jaxopt_mat.cli import common as cli_common
    from jaxopt_mat.design import latin_hypercube
    from jaxopt_mat.ensemble_cache import EnsembleCache
    from jaxopt_mat.strategies import Context

    # A fresh ensemble cache, so that the training counted below happens here. Only that cache:
    # the compilation cache stays where the suite keeps it (the first CLI call of a process fixes it).
    monkeypatch.setattr(cli_common, "context", lambda: Context(ensemble_cache=EnsembleCache(tmp_path / "ensembles")))
    trained = []
    fit = two_step.fit_spectrum_ensemble
    monkeypatch.setattr(two_step, "fit_spectrum_ensemble", lambda *a, **k: trained.append(1) or fit(*a, **k))

    lab = SilverLab()
    rng = np.random.default_rng(0)
    camp = two_batch_campaign(tmp_path, spectrum_config(tmp_path, lab), lab, rng)
    info = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)
    rules, step = info["stop_rules"], info["step"]
    assert rules["spectrum_accuracy"]["value"] == step["accuracy_cosine"] is not None
    assert rules["spectrum_stability"]["value"] == step["stability_cosine"] is not None
    assert rules["spectrum_accuracy"]["met"] == (step["accuracy_cosine"] >= two_step.COS_ACCURACY)
    assert rules["spectrum_mse"]["value"] == step["accuracy_relative_mse"] is not None
    assert len(trained) == 2  # held-out batch left out, and all data
    # The recommendation: a measured condition, its median measured loss, and the lowest expected loss.
    rec = info["recommended"]
    recipe = np.array([rec[n] for n in INPUT_NAMES])
    cond = combine_replicates(*rows_of(camp)[:2])
    i = int(np.flatnonzero(np.all(cond.x == recipe, axis=1))[0])
    assert rec["measured"] == cond.y[i] and rec["replicates"] == cond.counts[i]
    expected = spectrum_strategies.spectrum_gp_view(camp.snapshot(), key=jax.random.key(0),
                                                    draws=spectrum_strategies.RECOMMENDATION_DRAWS)[2]
    np.testing.assert_allclose(rec["expected_loss"], expected.min(), rtol=1e-6)
    assert 0.0 <= rec["expected_loss"] <= 1.0
    true = np.array([float(spectrum_loss(s, camp.snapshot().target_on(lab.wavelengths))) for s in lab.spectra(cond.x)])
    assert true[i] <= np.sort(true)[2], (true[i], np.sort(true)[:5])  # among the three truly best conditions
    res = runner.invoke(app, ["status", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert f"recommended: expected loss = {rec['expected_loss']:.6g} under the composite spectrum GP" in res.stdout
    res = runner.invoke(app, ["plot", str(tmp_path / "c"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "no prediction band" not in res.stderr
    assert (tmp_path / "p" / "best_spectrum.png").stat().st_size > 1000
    res = runner.invoke(app, ["explain", str(tmp_path / "c"), "--json", "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "e" / "wavelength_attributions.png").stat().st_size > 1000
    res = runner.invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "3"])
    assert res.exit_code == 0, res.output
    assert f"auto: {step['step']} step ({step['reason']})" in res.stderr  # the decision status announced
    assert len(trained) == 2
    # A round later one ensemble is trained, not two: the held-out one is this round's all-data ensemble.
    measure_batch(camp, lab, latin_hypercube(camp.space, 12, seed=2), rng)
    camp.folder.update_state(network_step_since_batch=None)  # judge readiness again even if suggest switched
    cache = EnsembleCache(tmp_path / "ensembles")
    ready = two_step.network_readiness(camp.snapshot(), seed=camp.config.seed, cache=cache)
    assert ready.stability_cos is not None and len(trained) == 3
    # In the network step the step no longer depends on the numbers, but status and the stop rules still
    # measure them, from the same (cached) ensembles.
    camp.folder.update_state(network_step_since_batch=3)
    quick = two_step.network_readiness(camp.snapshot(), seed=camp.config.seed, cache=cache)
    assert quick.step == "dnn" and quick.accuracy_cos is None and quick.reason.endswith("(the switch is one-way)")
    assessed = two_step.network_readiness(camp.snapshot(), seed=camp.config.seed, cache=cache, assess=True)
    assert assessed.step == "dnn" and assessed.reason.startswith("network step since batch 3 (the switch is one-way); ")
    assert (assessed.accuracy_cos, assessed.accuracy_rel_mse, assessed.stability_cos) == (
        ready.accuracy_cos, ready.accuracy_rel_mse, ready.stability_cos)
    info = json.loads(runner.invoke(app, ["status", str(tmp_path / "c"), "--json"]).stdout)
    assert info["stop_rules"]["spectrum_accuracy"]["value"] == ready.accuracy_cos
    assert info["stop_rules"]["spectrum_mse"]["value"] == ready.accuracy_rel_mse
    assert info["stop_rules"]["spectrum_stability"]["value"] == ready.stability_cos
    assert len(trained) == 3


def test_gp_step_models_a_capped_log_loss_that_keeps_the_order_of_good_recipes():
    from jaxopt_mat.objectives import LOSS_FLOOR, capped_log_loss

    y = np.array([0.002, 1.0, 0.03, 0.5, 0.0, 1.0, 0.01])
    z = capped_log_loss(y)
    cap = np.median(y)
    np.testing.assert_allclose(z, np.log(np.minimum(y, cap) + LOSS_FLOOR))
    good = y <= cap
    assert np.all(np.argsort(z[good]) == np.argsort(y[good]))  # order kept below the cap
    assert np.all(z[~good] == z[good].max())  # the jump to 1 is flattened


def test_peak_smoothed_losses_replace_the_measured_peak_by_the_model_and_nothing_else(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import jaxopt_mat.strategies.gp as gp_strategy

    monkeypatch.setattr(gp_strategy, "predict_rows", lambda model, xs: model.predict(xs))  # the stand-in below

    lab = SilverLab()
    camp = Campaign.create(tmp_path / "c", spectrum_config(tmp_path, lab), source_dir=tmp_path)
    x = np.array([[18.0, 22.0, 12.0, 3.0, 450.0], [40.0, 20.0, 20.0, 5.0, 300.0], [18.0, 22.0, 12.0, 3.0, 450.0]])
    spectra = np.asarray(lab.measure(x, rng=np.random.default_rng(0)))
    wl = [f"{w:g}" for w in lab.wavelengths]
    camp.observe_text(measurements_csv(list(INPUT_NAMES), wl, x, spectra), "m.csv")
    snap = camp.snapshot()
    x_obs, loss = snap.x, snap.y
    cond = combine_replicates(x_obs, loss)

    def peak_model(log_peak):
        return SimpleNamespace(predict=lambda xs: SimpleNamespace(mean=np.broadcast_to(log_peak, (len(xs),))))

    # A model that returns each condition's own (single) measured peak gives back the measured loss.
    single = combine_replicates(x_obs[1:2], loss[1:2])
    peak1 = np.log(spectra[1].max())
    np.testing.assert_allclose(peak_smoothed_losses(snap, peak_model(peak1))[cond.x[:, 0] == 40.0],
                               single.y, rtol=1e-5)
    # Inside the window only the shape counts; above it the loss is 1; below it is scaled down.
    inside = peak_smoothed_losses(snap, peak_model(np.log(1.0)))
    above = peak_smoothed_losses(snap, peak_model(np.log(1.3)))
    below = peak_smoothed_losses(snap, peak_model(np.log(0.35)))
    np.testing.assert_allclose(above, 1.0)
    np.testing.assert_allclose(1.0 - below, 0.5 * (1.0 - inside), rtol=1e-6)
    assert np.all(inside < 0.5) and inside.min() < 0.01  # the target recipe's shape matches
