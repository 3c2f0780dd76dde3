"""Mixed inputs through campaign files, the CLI and the Python Campaign: labels in, labels out, refusals."""

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

import jaxopt_mat as jm
from jaxopt_mat import Campaign
from jaxopt_mat.campaign import config_to_toml, parse_config
from jaxopt_mat.campaign.config import Input
from jaxopt_mat.campaign.input_cells import input_number, input_text
from jaxopt_mat.errors import ConfigError, DataError
from jaxopt_mat.explain import shap_values
from jaxopt_mat.surrogates.gp import fit_gp
from tests.conftest import cli_campaign
from tests.test_cli import invoke

CONFIG = """
name = "coupling"
seed = 2
initial_design = 8
[[inputs]]
name = "ligand"
kind = "categorical"
values = ["XPhos", "SPhos", "t-BuXPhos"]
[[inputs]]
name = "cycles"
kind = "integer"
low = 1
high = 12
[[inputs]]
name = "temperature"
kind = "discrete"
values = [25.0, 40.0, 60.0, 80.0]
[[inputs]]
name = "flow"
low = 0.0
high = 10.0
[[constraints]]
expr = "flow + cycles <= 15"
[objective]
kind = "scalar"
name = "yield"
direction = "maximize"
"""
SHIFT = {"XPhos": 0.0, "SPhos": 1.5, "t-BuXPhos": -1.0}


def measure(suggestion: str) -> str:
    rows = list(csv.DictReader(io.StringIO(suggestion)))
    out = ["suggestion,ligand,cycles,temperature,flow,yield"]
    for r in rows:
        c, t, f = int(r["cycles"]), float(r["temperature"]), float(r["flow"])
        y = SHIFT[r["ligand"]] - 0.05 * (c - 7) ** 2 - ((t - 60) / 20) ** 2 - 0.1 * (f - 6) ** 2
        out.append(f"{r['suggestion']},{r['ligand']},{r['cycles']},{r['temperature']},{r['flow']},{y!r}")
    return "\n".join(out) + "\n"


def check_rows(text: str):
    """Every suggested row: a known label, a whole number, a level, and the constraint exactly."""
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    for r in rows:
        assert r["ligand"] in SHIFT
        assert r["cycles"].isdigit() and 1 <= int(r["cycles"]) <= 12
        assert float(r["temperature"]) in (25.0, 40.0, 60.0, 80.0)
        assert 0.0 <= float(r["flow"]) and float(r["flow"]) + int(r["cycles"]) <= 15
    return rows


@pytest.fixture
def campaign(tmp_path):
    return cli_campaign(tmp_path, CONFIG)


def test_a_mixed_campaign_round_trip_through_the_cli(campaign, tmp_path):
    res = invoke("suggest", campaign, "-n", "8", "-o", tmp_path / "b1.csv")
    assert res.exit_code == 0, res.output
    rows = check_rows((tmp_path / "b1.csv").read_text())
    assert len({r["ligand"] for r in rows}) == 3  # the design covers every label
    (tmp_path / "m1.csv").write_text(measure((tmp_path / "b1.csv").read_text()))
    assert invoke("observe", campaign, tmp_path / "m1.csv").exit_code == 0
    recorded = (campaign / "observations.csv").read_text()
    assert "SPhos" in recorded and ",7.0," not in recorded.split("\n")[1]  # labels and whole numbers as written
    for k in (2, 3):
        res = invoke("suggest", campaign, "-n", "4", "-o", tmp_path / f"b{k}.csv")
        assert res.exit_code == 0, res.output
        check_rows((tmp_path / f"b{k}.csv").read_text())
        (tmp_path / f"m{k}.csv").write_text(measure((tmp_path / f"b{k}.csv").read_text()))
        assert invoke("observe", campaign, tmp_path / f"m{k}.csv").exit_code == 0
    res = invoke("status", campaign)
    assert res.exit_code == 0, res.output
    best = next(line for line in res.output.splitlines() if "best:" in line)
    assert "ligand = " in best and any(f"ligand = {label}," in best for label in SHIFT)
    frame = Campaign.open(campaign).observations()
    assert set(frame["ligand"]) <= set(SHIFT) and frame["cycles"].dtype.kind == "i"
    # SHAP: one value per input (a label is one player, not its encoding's columns), summing to the prediction.
    res = invoke("explain", campaign)
    assert res.exit_code == 0, res.output
    shap = list(csv.DictReader(open(campaign / "explain" / "shap_values.csv")))
    assert {r["ligand"] for r in shap} <= set(SHIFT) and all(r["cycles"].isdigit() for r in shap)
    info = json.loads((campaign / "explain" / "importance.json").read_text())
    assert set(info["importance"]) == {"ligand", "cycles", "temperature", "flow"}
    camp = Campaign.open(campaign)
    snap = camp.snapshot()
    model = fit_gp(snap.conditions.x, snap.conditions.y, key=jax.random.key(0), low=snap.space.low,
                   high=snap.space.high, features=snap.space.features)
    mean = lambda z: model.predict(z).mean  # noqa: E731
    exp = shap_values(mean, snap.conditions.x[:5], snap.conditions.x, names=snap.config.input_names)
    total = np.asarray(mean(jnp.asarray(snap.conditions.x[:5]))) - exp.base_value
    np.testing.assert_allclose(exp.values.sum(axis=1), total, atol=1e-9)


@pytest.mark.parametrize("cell, column, message", [
    ("xphos", "ligand", "did you mean 'XPhos'"),
    ("XPhos ", "ligand", "not one of its labels"),
    ("7.5", "cycles", "not a whole number"),
    ("50", "temperature", "not one of its levels 25, 40, 60, 80"),
])
def test_a_value_its_input_does_not_allow_is_refused_and_nothing_is_recorded(campaign, tmp_path, cell, column,
                                                                              message):
    good = {"ligand": "XPhos", "cycles": "3", "temperature": "40", "flow": "2.0"}
    lines = ["ligand,cycles,temperature,flow,yield", ",".join(good.values()) + ",0.5"]
    bad = dict(good, **{column: cell})
    lines.append(",".join(bad.values()) + ",0.7")
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    before = (campaign / "observations.csv").read_text()
    res = invoke("observe", campaign, tmp_path / "bad.csv")
    assert res.exit_code != 0
    assert "row 3" in res.output and column in res.output and message in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert (campaign / "observations.csv").read_text() == before


def test_suggest_fix_holds_inputs_for_the_batch_and_refuses_bad_values(campaign, tmp_path):
    res = invoke("suggest", campaign, "-n", "5", "--fix", "ligand=SPhos", "--fix", "temperature=60", "--fix",
                 "cycles=4", "-o", tmp_path / "b.csv")
    assert res.exit_code == 0, res.output
    rows = check_rows((tmp_path / "b.csv").read_text())
    assert {(r["ligand"], r["temperature"], r["cycles"]) for r in rows} == {("SPhos", "60.0", "4")}
    for fix, message in [("ligand=sphos", "did you mean 'SPhos'"), ("cycles=2.5", "not a whole number"),
                         ("flow=11", "outside its bounds"), ("colour=red", "no such input"),
                         ("ligand", "expected NAME=VALUE")]:
        res = invoke("suggest", campaign, "-n", "2", "--fix", fix)
        assert res.exit_code != 0 and message in res.output, (fix, res.output)
    res = invoke("suggest", campaign, "-n", "2", "--fix", "cycles=12", "--fix", "flow=9")
    assert res.exit_code != 0 and "constraint" in res.output


def test_the_python_campaign_speaks_in_labels(campaign):
    camp = Campaign.open(campaign)
    frame = camp.suggest(6, fix={"ligand": "t-BuXPhos"})
    assert set(frame["ligand"]) == {"t-BuXPhos"}
    assert frame["cycles"].dtype.kind == "i"
    frame["yield"] = 1.0
    observed = camp.observe(frame.drop(columns=[c for c in frame.columns if c.startswith("predicted")]))
    assert observed.batch == 1 and observed.resolved == 6


def test_config_refusals_and_round_trip(tmp_path):
    base = parse_config({"inputs": [{"name": "a", "low": 0.0, "high": 1.0}],
                         "objective": {"kind": "scalar", "name": "y"}})
    assert base.inputs[0].kind == "continuous"
    bad = [
        ({"name": "s", "kind": "categorical", "values": ["x"]}, "at least two"),
        ({"name": "s", "kind": "categorical", "values": ["x", "x"]}, "distinct"),
        ({"name": "s", "kind": "categorical", "values": ["x", "y"], "low": 0}, "do(es) not apply"),
        ({"name": "s", "kind": "integer", "low": 0.5, "high": 4}, "whole numbers"),
        ({"name": "s", "kind": "discrete", "values": [1, "a"]}, "finite number"),
        ({"name": "s", "kind": "colour", "values": [1, 2]}, "kind must be one of"),
        ({"name": "s", "kind": "categorical", "values": ["x", "y"], "encoding": "descriptors"}, "descriptors ="),
    ]
    for item, message in bad:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_config({"inputs": [item], "objective": {"kind": "scalar", "name": "y"}})
    with pytest.raises(ConfigError, match="categorical: linear constraints may not use it"):
        parse_config({"inputs": [{"name": "s", "kind": "categorical", "values": ["x", "y"]},
                                 {"name": "a", "low": 0.0, "high": 1.0}],
                      "constraints": [{"expr": "s + a <= 1"}], "objective": {"kind": "scalar", "name": "y"}})
    (tmp_path / "lig.csv").write_text("lig,mass,cone\nx,1.5,120\ny,2.5,145\nz,2.0,160\n")
    data = {"inputs": [{"name": "lig", "kind": "categorical", "values": ["x", "y", "z"], "encoding": "descriptors",
                        "descriptors": "lig.csv"}, {"name": "n", "kind": "integer", "low": 1, "high": 5},
                       {"name": "t", "kind": "discrete", "values": [60, 25.5]}],
            "objective": {"kind": "scalar", "name": "y"}}
    config = parse_config(data, base_dir=tmp_path)
    assert config.inputs[0].descriptor_rows == ((1.5, 120.0), (2.5, 145.0), (2.0, 160.0))
    assert config.inputs[2].values == (25.5, 60.0)
    import tomllib

    again = parse_config(tomllib.loads(config_to_toml(config)), base_dir=tmp_path)
    assert again == config and again.inputs[0].descriptor_rows == config.inputs[0].descriptor_rows
    assert config.space().features.n_groups == 4  # two descriptors, the integer, the level


def test_rdkit_encoding_without_rdkit_says_how_to_get_it_or_encodes_smiles():
    data = {"inputs": [{"name": "base", "kind": "categorical", "values": ["CCN(CC)CC", "C1CCNCC1", "c1ccncc1"],
                        "encoding": "rdkit"}], "objective": {"kind": "scalar", "name": "y"}}
    try:
        import rdkit  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r'pip install "jaxopt-mat\[chem\]"'):
            parse_config(data)
        return
    config = parse_config(data)
    rows = np.array(config.inputs[0].descriptor_rows)
    assert rows.shape == (3, 2) and np.all(np.isfinite(rows))
    named = {"inputs": [{"name": "base", "kind": "categorical", "values": ["TEA", "piperidine", "pyridine"],
                         "encoding": "rdkit", "smiles": {"TEA": "CCN(CC)CC", "piperidine": "C1CCNCC1",
                                                         "pyridine": "c1ccncc1"}}],
             "objective": {"kind": "scalar", "name": "y"}}
    by_name = parse_config(named)
    np.testing.assert_allclose(np.array(by_name.inputs[0].descriptor_rows), rows)  # the same molecules
    import tomllib

    assert parse_config(tomllib.loads(config_to_toml(by_name))) == by_name
    data["inputs"][0]["values"] = ["CCN(CC)CC", "not a molecule", "c1ccncc1"]
    with pytest.raises(ConfigError, match="not a SMILES"):
        parse_config(data)
    del named["inputs"][0]["smiles"]["TEA"]
    with pytest.raises(ConfigError, match="every label once; check TEA"):
        parse_config(named)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and "\n" not in s and "\r" not in s),
                min_size=2, max_size=6, unique=True), st.integers(-50, 50), st.data())
def test_values_written_read_back_to_the_same_number(labels, integer, data):
    cat = Input("c", 0.0, len(labels) - 1.0, kind="categorical", values=tuple(labels))
    i = data.draw(st.integers(0, len(labels) - 1))
    assert input_number(cat, input_text(cat, float(i)), "t") == float(i)
    whole = Input("n", -50.0, 50.0, kind="integer")
    assert input_text(whole, float(integer)) == str(integer)
    assert input_number(whole, input_text(whole, float(integer)), "t") == integer
    levels = tuple(sorted(data.draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=5,
                                             unique=True))))
    disc = Input("t", levels[0], levels[-1], kind="discrete", values=levels)
    level = data.draw(st.sampled_from(levels))
    assert input_number(disc, input_text(disc, level), "t") == level
    with pytest.raises(DataError):
        input_number(cat, "".join(labels) + "?", "t")


def test_a_pool_text_feature_becomes_one_hot_columns(tmp_path):
    from jaxopt_mat.pool_table import read_pool

    (tmp_path / "pool.csv").write_text('id,solvent,temp\na,DMF,1.0\nb,"THF, dry",2.0\nc,DMF,3.5\nd,water,0.5\n')
    pool = read_pool(tmp_path / "pool.csv", ["solvent", "temp"])
    assert pool.names == ["solvent=DMF", "solvent=THF, dry", "solvent=water", "temp"]
    np.testing.assert_array_equal(pool.features[:, :3], [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert read_pool(tmp_path / "pool.csv", list(pool.names)).names == pool.names  # the names it was saved with


def test_a_finite_space_is_suggested_without_repeats_until_it_runs_out(tmp_path):
    config = parse_config({"name": "small", "seed": 0, "initial_design": 3,
                           "inputs": [{"name": "base", "kind": "categorical", "values": ["a", "b", "c"]},
                                      {"name": "t", "kind": "discrete", "values": [1.0, 2.0]}],
                           "objective": {"kind": "scalar", "name": "y", "direction": "maximize"}})
    camp = Campaign.create(tmp_path / "small", config)
    first = camp.suggest(2)
    first["y"] = [1.0, 2.0]
    camp.observe(first[["base", "t", "y"]])
    design = camp.suggest(1)  # the design's last point: not one already run
    assert (design["base"][0], design["t"][0]) not in set(zip(first["base"], first["t"]))
    design["y"] = [3.0]
    camp.observe(design[["base", "t", "y"]])
    first = pd.concat([first, design], ignore_index=True)
    second = camp.suggest(3, method="gp")
    combos = {(b, t) for b, t in zip(first["base"], first["t"])} | {(b, t) for b, t in zip(second["base"], second["t"])}
    assert len(combos) == 6  # every combination once
    with pytest.raises(DataError, match="only 0 of the 6 combinations"):
        camp.suggest(1, method="gp")


def test_the_loop_on_an_executor_hands_evaluations_labels_and_whole_numbers(tmp_path):
    import concurrent.futures

    cfg = tmp_path / "campaign.toml"
    cfg.write_text(CONFIG)
    camp = Campaign.create(tmp_path / "run", config=cfg)
    seen = []

    def evaluate(c):
        seen.append(c)
        return {"yield": SHIFT[c["ligand"]] - 0.05 * (c["cycles"] - 7) ** 2 + 0.01 * c["flow"]}

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summary = jm.run(camp, evaluate, executor=pool, parallel=2, budget=6, method="random")
    assert summary.observed == 6 and summary.failed == 0
    assert all(c["ligand"] in SHIFT and isinstance(c["cycles"], int) and c["temperature"] in (25.0, 40.0, 60.0, 80.0)
               for c in seen)


def test_a_descriptor_table_travels_with_the_campaign(tmp_path):
    src = tmp_path / "setup"
    src.mkdir()
    (src / "ligands.csv").write_text("ligand,cone,mass\nXPhos,256,476\nSPhos,240,410\nt-BuXPhos,270,424\n")
    (src / "campaign.toml").write_text(CONFIG.replace('values = ["XPhos", "SPhos", "t-BuXPhos"]',
                                                      'values = ["XPhos", "SPhos", "t-BuXPhos"]\n'
                                                      'encoding = "descriptors"\ndescriptors = "ligands.csv"'))
    res = invoke("init", tmp_path / "camp", "--config", src / "campaign.toml")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "camp" / "ligands.csv").exists()
    camp = Campaign.open(tmp_path / "camp")
    assert camp.config.inputs[0].descriptor_rows[1] == (240.0, 410.0)
    assert camp.snapshot().space.features.n_groups == 5  # two descriptors, cycles, temperature, flow
    frame = camp.suggest(8)
    frame["yield"] = 1.0 + frame["cycles"]
    camp.observe(frame[["ligand", "cycles", "temperature", "flow", "yield"]])
    check_rows(camp.ask(3, method="gp").csv)
