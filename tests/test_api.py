"""The Python Campaign: pandas in and out, the same batches as the CLI, one read of the folder per command."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import jaxopt_mat as jm
from jaxopt_mat.campaign import CampaignFolder
from jaxopt_mat.cli import app
from jaxopt_mat.errors import DataError

runner = CliRunner()

CONFIG = {
    "name": "api", "seed": 3, "initial_design": 6,
    "inputs": [{"name": "x1", "low": 0.0, "high": 1.0}, {"name": "x2", "low": 0.0, "high": 2.0}],
    "constraints": [{"expr": "x1 + x2 <= 2.5"}],
    "objective": {"name": "y", "direction": "minimize"},
    "stopping": {"plateau_fraction": 1.1, "plateau_rounds": 1},  # a plateau at once: the stop rules fit their GPs
}


def measure(frame: pd.DataFrame) -> np.ndarray:
    return (frame["x1"] - 0.3) ** 2 + (frame["x2"] - 1.2) ** 2


def campaign_with_three_batches(directory) -> jm.Campaign:
    camp = jm.Campaign.create(directory, CONFIG)
    for n in (6, 4, 4):
        batch = camp.suggest(n, method="lhs")
        batch["y"] = measure(batch)
        camp.observe(batch)
    return camp


def test_a_notebook_campaign_round_trips_dataframes(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    first = camp.suggest(6)
    assert list(first.columns) == ["suggestion", "x1", "x2"] and first.attrs["method"] == "lhs"
    assert list(first["suggestion"]) == [f"b0001-0{k}" for k in range(1, 7)]
    assert "initial conditions measured" in first.attrs["notes"][0]
    first["y"] = measure(first)
    done = camp.observe(first)
    assert (done.batch, done.n_rows, done.total) == (1, 6, 6)
    batch = camp.suggest(4)
    assert list(batch.columns) == ["suggestion", "x1", "x2", "predicted_mean", "predicted_std", "log_ei"]
    assert np.all(batch["x1"] + batch["x2"] <= 2.5) and batch.attrs["method"] == "gp"
    table = camp.observations()
    assert list(table.columns) == ["x1", "x2", "y", "batch"] and len(table) == 6
    np.testing.assert_array_equal(table[["x1", "x2"]].to_numpy(), first[["x1", "x2"]].to_numpy())
    status = jm.Campaign.open(tmp_path / "c").status()
    assert status.n_observations == 6 and status.best["value"] == pytest.approx(measure(first).min())
    assert status.to_dict()["best"] == status.best


def test_a_campaign_opened_by_a_relative_path_stays_put_when_the_notebook_changes_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    camp = jm.Campaign.create("runs/c", CONFIG)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    batch = camp.suggest(6)
    batch["y"] = measure(batch)
    assert camp.observe(batch).total == 6
    assert len(pd.read_csv(tmp_path / "runs" / "c" / "observations.csv")) == 6
    assert not (tmp_path / "elsewhere" / "runs").exists()


def test_observe_refuses_a_bad_table_naming_the_row_and_records_nothing(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    bad = pd.DataFrame({"x1": [0.1, 0.9], "x2": [0.5, 1.9], "y": [1.0, 2.0]})  # row 3 violates x1 + x2 <= 2.5
    before = (tmp_path / "c" / "observations.csv").read_bytes()
    with pytest.raises(DataError, match=r"the table row 3: violates constraint 'x1 \+ x2 <= 2.5'"):
        camp.observe(bad)
    with pytest.raises(DataError, match="DataFrame or a CSV path"):
        camp.observe([[0.1, 0.5, 1.0]])
    assert (tmp_path / "c" / "observations.csv").read_bytes() == before


def test_the_cli_and_the_python_campaign_suggest_the_same_batch(tmp_path):
    a = campaign_with_three_batches(tmp_path / "a")
    b = campaign_with_three_batches(tmp_path / "b")
    np.testing.assert_array_equal(a.observations().to_numpy(), b.observations().to_numpy())
    res = runner.invoke(app, ["suggest", str(tmp_path / "a"), "--batch", "3"])
    assert res.exit_code == 0, res.output
    from_api = b.ask(3)
    assert res.stdout == from_api.csv
    states = [json.loads((tmp_path / c / "state.json").read_text()) for c in "ab"]
    for state in states:  # the same batches, suggested at different moments
        assert len(state.pop("suggested")) == 4
    assert states[0] == states[1]


@pytest.mark.parametrize("narrow", [False, True])
def test_one_suggest_reads_the_observations_once_and_fits_the_all_data_gp_once(tmp_path, monkeypatch, narrow):
    from jaxopt_mat.strategies import gp as gp_strategy
    from jaxopt_mat.surrogates import independent
    from jaxopt_mat.surrogates.output_warp import fit_output_warp

    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    for n in (6, 4, 4):
        batch = camp.suggest(n, method="lhs")
        # a bowl spreads its bad values (its GP fits a warp of them); a narrow optimum leaves them be
        batch["y"] = -np.exp(-20.0 * measure(batch)) if narrow else measure(batch)
        camp.observe(batch)
    assert fit_output_warp(camp.observations()["y"], maximize=False).is_identity == narrow
    reads, fits = [], []
    read = CampaignFolder.read_records
    monkeypatch.setattr(CampaignFolder, "read_records", lambda self: reads.append(1) or read(self))
    for module in (gp_strategy, independent):
        fit = module.fit_gp
        monkeypatch.setattr(module, "fit_gp", lambda x, *a, _fit=fit, **k: fits.append(len(x)) or _fit(x, *a, **k))
    res = runner.invoke(app, ["suggest", str(tmp_path / "c"), "--batch", "3", "--method", "gp"])
    assert res.exit_code == 0, res.output
    assert len(reads) == 1
    # The batch's GP on all 14 conditions, then the stop rules' GPs before the newest batches (10 and 6);
    # they reuse the batch's GP unless it models a warp of the objective (they judge GPs of the objective).
    assert sorted(fits) == ([6, 10, 14] if narrow else [6, 10, 14, 14]), fits


@pytest.mark.parametrize("command", [["status", "--json"], ["plot", "--out", "{tmp}/p"]])
def test_status_and_plot_read_the_observations_once(tmp_path, monkeypatch, command):
    campaign_with_three_batches(tmp_path / "c")
    reads = []
    read = CampaignFolder.read_records
    monkeypatch.setattr(CampaignFolder, "read_records", lambda self: reads.append(1) or read(self))
    res = runner.invoke(app, [command[0], str(tmp_path / "c")] + [a.format(tmp=tmp_path) for a in command[1:]])
    assert res.exit_code == 0, res.output
    assert len(reads) == 1


def test_simulate_records_a_batch_that_repeats_an_earlier_one(tmp_path, monkeypatch):
    # A converged loop on a noise-free lab may suggest the same points again: they are new
    # measurements, not a file observed twice, and the simulation records them.
    from jaxopt_mat import simulate

    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    first = camp.ask(6, method="lhs")
    monkeypatch.setattr(camp, "ask", lambda batch, method=None: first)
    lab = simulate.FunctionLab(lambda x: (x[:, 0] - 0.3) ** 2 + (x[:, 1] - 1.2) ** 2)
    rounds = simulate.run(camp, lab, rounds=2, batch=6)
    assert [r.index for r in rounds] == [1, 2] and [r.n_measured for r in rounds] == [6, 12]


def test_refit_after_keeps_the_hyperparameters_until_enough_conditions_were_added(tmp_path, monkeypatch):
    # What `run` asks for: hyper-parameters optimized once per `parallel` new runs; between, the GP keeps them
    # (no optimization at all) and conditions on every new result.
    from jaxopt_mat.surrogates import gp as gpmod

    camp = jm.Campaign.create(tmp_path / "c", {**CONFIG, "stopping": {}})
    first = camp.suggest(6)
    first["y"] = measure(first)
    camp.observe(first)
    optimized = []
    fit = gpmod._fit_hyperparameters
    monkeypatch.setattr(gpmod, "_fit_hyperparameters", lambda *a, **k: optimized.append(1) or fit(*a, **k))

    def saved():
        return sorted(json.loads((tmp_path / "c" / "state.json").read_text())["gp_hyperparameters"]["y"], key=int)

    def one_more(refit_after):
        optimized.clear()
        batch = camp.suggest(1, refit_after=refit_after, judge=False)
        batch["y"] = measure(batch)
        camp.observe(batch[["x1", "x2", "y"]])
        return bool(optimized)

    assert one_more(3) and saved() == ["6"]  # nothing to keep: optimized on 6 conditions
    assert not one_more(3) and not one_more(3) and saved() == ["6"]  # 7 and 8 conditions keep those of 6
    assert one_more(3) and saved() == ["6", "9"]  # 9 - 6 = 3: optimized again
    assert one_more(1) and saved() == ["6", "9", "10"]  # the default: at every suggest


def test_a_second_suggest_on_the_same_data_keeps_the_gp_of_the_first(tmp_path, monkeypatch):
    # A batch measured in parts: the next batch asked for before new results conditions the same GP again
    # (no optimization); a replicate that changes a condition's median, at the same condition count, refits.
    from jaxopt_mat.strategies import gp as gp_strategy
    from jaxopt_mat.surrogates import gp as gpmod

    camp = jm.Campaign.create(tmp_path / "c", {**CONFIG, "stopping": {}})
    first = camp.suggest(6)
    first["y"] = measure(first)
    camp.observe(first)
    optimized, models = [], []
    fit, fit_gp = gpmod._fit_hyperparameters, gp_strategy.fit_gp
    monkeypatch.setattr(gpmod, "_fit_hyperparameters", lambda *a, **k: optimized.append(1) or fit(*a, **k))
    monkeypatch.setattr(gp_strategy, "fit_gp", lambda *a, **k: models.append(fit_gp(*a, **k)) or models[-1])

    a = camp.suggest(3, judge=False)
    assert len(optimized) == 1
    b = camp.suggest(3, judge=False)
    assert len(optimized) == 1  # the same data: kept
    np.testing.assert_array_equal(models[1].hyperparameters, models[0].hyperparameters)
    np.testing.assert_array_equal(models[1].alpha, models[0].alpha)
    assert np.min(np.hypot(*(a[["x1", "x2"]].to_numpy()[:, None] - b[["x1", "x2"]].to_numpy()[None]).T)) > 1e-3
    again = first.iloc[:1][["x1", "x2"]].assign(y=measure(first.iloc[:1]) + 0.5)  # a replicate: 6 conditions still
    camp.observe(again, again=True)
    camp.suggest(3, judge=False)
    assert camp.snapshot().n_conditions == 6 and len(optimized) == 2  # other data: optimized again


def test_the_outcome_constraints_gps_are_kept_on_the_same_data_too(tmp_path, monkeypatch):
    from jaxopt_mat.surrogates import gp as gpmod

    config = {**CONFIG, "stopping": {}, "outcome_constraints": [{"expr": "c >= 0.2"}]}
    camp = jm.Campaign.create(tmp_path / "c", config)
    first = camp.suggest(6)
    first["y"], first["c"] = measure(first), first["x1"]
    camp.observe(first)
    optimized = []
    fit = gpmod._fit_hyperparameters
    monkeypatch.setattr(gpmod, "_fit_hyperparameters", lambda *a, **k: optimized.append(1) or fit(*a, **k))
    camp.suggest(2, judge=False)
    assert len(optimized) == 2  # the objective's GP and the outcome's
    camp.suggest(2, judge=False)
    assert len(optimized) == 2  # the same data: both kept
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert set(state["gp_data"]) == {"y", "c"}
