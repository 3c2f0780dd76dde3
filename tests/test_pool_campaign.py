"""Pool and Pareto campaigns through the CLI: candidate tables, ids, EHVI batches, status, plots."""

import csv
import io
import json

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from jaxopt_mat import Campaign
from jaxopt_mat.campaign import CampaignFolder, config_to_toml, parse_config
from jaxopt_mat.cli import app
from jaxopt_mat.errors import ConfigError, DataError
from jaxopt_mat.pareto import hypervolume, non_dominated_mask
from jaxopt_mat.pool import farthest_point_design, parse_pool

runner = CliRunner()

PARETO_POOL = """
name = "screen"
seed = 2
candidates = "candidates.csv"
initial_design = 12
[objective]
kind = "pareto"
[[objective.objectives]]
name = "strength"
direction = "maximize"
[[objective.objectives]]
name = "cost"
direction = "minimize"
"""


def truth(f):
    """Two conflicting properties of three features."""
    strength = np.sin(3 * f[:, 0]) + f[:, 1]
    cost = (f[:, 0] - 0.3) ** 2 + 0.5 * f[:, 1] ** 2 + 0.1 * f[:, 2]
    return strength, cost


def write_pool(path, n=300, seed=0, extra_text_column=True):
    rng = np.random.default_rng(seed)
    f = rng.uniform(size=(n, 3))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "smiles", "a", "b", "c"] if extra_text_column else ["id", "a", "b", "c"])
        for i, row in enumerate(f):
            w.writerow([f"P{i}"] + (["C=C"] if extra_text_column else []) + [repr(float(v)) for v in row])
    return f


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def measure_pool(suggestion: str, feats: np.ndarray) -> str:
    rows = list(csv.DictReader(io.StringIO(suggestion)))
    out = ["id,strength,cost"]
    for r in rows:
        i = int(r["id"][1:])
        s, c = truth(feats[i : i + 1])
        out.append(f"{r['id']},{float(s[0])!r},{float(c[0])!r}")
    return "\n".join(out) + "\n"


@pytest.fixture
def pool_campaign(tmp_path):
    feats = write_pool(tmp_path / "candidates.csv")
    (tmp_path / "campaign.toml").write_text(PARETO_POOL)
    res = invoke("init", tmp_path / "camp", "--config", tmp_path / "campaign.toml")
    assert res.exit_code == 0, res.output
    assert "300 candidates with 3 features" in res.stdout
    return tmp_path / "camp", feats


@pytest.mark.heavy
def test_pool_pareto_loop_never_repeats_a_candidate_and_reports_the_front(pool_campaign, tmp_path):
    camp, feats = pool_campaign
    seen = []
    for r, q in enumerate((12, 8, 8)):
        res = invoke("suggest", camp, "--batch", q)
        assert res.exit_code == 0, res.output
        header = res.stdout.splitlines()[0].split(",")
        assert header[:5] == ["suggestion", "id", "a", "b", "c"]
        if r > 0:
            assert {"predicted_strength", "predicted_cost", "predicted_cost_std", "ehvi"} <= set(header)
        ids = [row["id"] for row in csv.DictReader(io.StringIO(res.stdout))]
        assert len(ids) == q and len(set(ids)) == q and not set(ids) & set(seen)
        seen += ids
        f = tmp_path / f"m{r}.csv"
        f.write_text(measure_pool(res.stdout, feats))
        assert invoke("observe", camp, f).exit_code == 0
    info = json.loads(invoke("status", camp, "--json").stdout)
    assert info["pool"] == {"candidates": 300, "unmeasured": 300 - 28}
    # Hypervolume and front recomputed by hand from the recorded values.
    idx = np.array([int(i[1:]) for i in seen])
    s, c = truth(feats[idx])
    values = np.stack([s, -c], -1)
    span = values.max(0) - values.min(0)
    ref = values.min(0) - 0.1 * span
    assert info["pareto"]["reference"] == pytest.approx([ref[0], -ref[1]])
    assert info["pareto"]["hypervolume"] == pytest.approx(float(hypervolume(jnp.asarray(values), jnp.asarray(ref))))
    front_ids = {f"P{i}" for i in idx[np.asarray(non_dominated_mask(jnp.asarray(values)))]}
    assert {row["id"] for row in info["pareto"]["front"]} == front_ids
    assert len(info["pareto"]["hypervolume_by_batch"]) == 3
    assert np.all(np.diff(info["pareto"]["hypervolume_by_batch"]) >= 0)
    assert set(info["model"]) == {"strength", "cost"}
    text = invoke("status", camp).stdout
    assert "Pareto set" in text and "hypervolume" in text
    res = invoke("plot", camp, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    from tests.test_stopping_and_plots import _not_blank

    for name in ("pareto_front.png", "hypervolume.png", "parity_strength.png", "parity_cost.png"):
        assert _not_blank(tmp_path / "p" / name), name
    res = invoke("explain", camp, "--objective", "cost", "--json", "--out", tmp_path / "e")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["target"] == "predicted cost" and set(info["importance"]) == {"a", "b", "c"}
    assert info["ranking"][-1] == "c"  # cost depends on c only through a small linear term
    res = invoke("explain", camp, "--objective", "nope")
    assert res.exit_code == 3 and "not one of strength, cost" in res.stderr


def test_pool_observe_rejects_unknown_ids_without_touching_the_record(pool_campaign, tmp_path):
    camp, feats = pool_campaign
    good = tmp_path / "good.csv"
    good.write_text("id,strength,cost\nP1,0.5,0.2\nP1,0.7,0.3\n")  # replicates of one candidate
    assert invoke("observe", camp, good).exit_code == 0
    before = (camp / "observations.csv").read_bytes()
    for text, what in (("id,strength,cost\nP1,0.5,0.2\nP999,1,1\n", "P999"),
                       ("id,strength\nP2,0.5\n", "missing column"),
                       ("id,strength,cost,cost\nP2,0.5,1,2\n", "cost appear more than once"),
                       ("id,strength,cost\nP2,abc,1\n", "not a number")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        res = invoke("observe", camp, bad)
        assert res.exit_code != 0 and res.stderr.startswith("error: ") and what in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = invoke("observe", camp, good)  # the same file again: refused, ids included in the comparison
    assert res.exit_code == 3 and "repeat batch 1 exactly" in res.stderr, res.output
    assert (camp / "observations.csv").read_bytes() == before
    info = json.loads(invoke("status", camp, "--json").stdout)
    assert info["n_observations"] == 2 and info["n_conditions"] == 1
    assert info["pareto"]["front"][0]["strength"] == pytest.approx(0.6)  # median of the replicates
    assert info["pareto"]["front"][0]["replicates"] == 2


def test_suggest_refuses_more_than_the_unmeasured_pool(tmp_path):
    write_pool(tmp_path / "candidates.csv", n=5)
    (tmp_path / "campaign.toml").write_text(PARETO_POOL.replace("initial_design = 12", "initial_design = 2"))
    assert invoke("init", tmp_path / "c", "--config", tmp_path / "campaign.toml").exit_code == 0
    res = invoke("suggest", tmp_path / "c", "--batch", 6)
    assert res.exit_code != 0 and "5 candidates" in res.stderr and "Traceback" not in res.output


SCALAR_POOL = """
candidates = "candidates.csv"
features = ["a", "b"]
initial_design = 8
[objective]
name = "strength"
direction = "maximize"
"""


def test_scalar_pool_campaign_uses_penalized_log_ei_over_unmeasured_rows(tmp_path):
    feats = write_pool(tmp_path / "candidates.csv", n=200)
    (tmp_path / "campaign.toml").write_text(SCALAR_POOL)
    assert invoke("init", tmp_path / "c", "--config", tmp_path / "campaign.toml").exit_code == 0
    seen = set()
    for r, q in enumerate((8, 6, 6)):
        res = invoke("suggest", tmp_path / "c", "--batch", q)
        assert res.exit_code == 0, res.output
        rows = list(csv.DictReader(io.StringIO(res.stdout)))
        assert list(rows[0])[:4] == ["suggestion", "id", "a", "b"]
        ids = {row["id"] for row in rows}
        assert len(ids) == q and not ids & seen
        seen |= ids
        if r > 0:
            assert "log_ei" in rows[0]
        lines = ["id,strength"] + [f"{i},{float(truth(feats[int(i[1:]):int(i[1:]) + 1])[0][0])!r}" for i in ids]
        (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
        assert invoke("observe", tmp_path / "c", tmp_path / "m.csv").exit_code == 0
    info = json.loads(invoke("status", tmp_path / "c", "--json").stdout)
    assert info["best"]["id"] in seen and set(info["model"]["lengthscales"]) == {"a", "b"}


PARETO_CONTINUOUS = """
name = "zdt"
initial_design = 8
[[inputs]]
name = "x1"
low = 0.0
high = 1.0
[[inputs]]
name = "x2"
low = 0.0
high = 1.0
[[constraints]]
expr = "x1 + x2 <= 1.5"
[objective]
kind = "pareto"
reference = [1.2, 6.0]
[[objective.objectives]]
name = "f1"
direction = "minimize"
[[objective.objectives]]
name = "f2"
direction = "minimize"
"""


def zdt2(x):
    f1 = x[:, 0]
    g = 1 + 9 * x[:, 1]
    return f1, g * (1 - (f1 / g) ** 2)


@pytest.mark.heavy
def test_continuous_pareto_campaign_suggests_feasible_ehvi_batches(tmp_path):
    (tmp_path / "campaign.toml").write_text(PARETO_CONTINUOUS)
    camp = tmp_path / "c"
    assert invoke("init", camp, "--config", tmp_path / "campaign.toml").exit_code == 0
    for r, q in enumerate((8, 4)):
        res = invoke("suggest", camp, "--batch", q)
        assert res.exit_code == 0, res.output
        rows = list(csv.DictReader(io.StringIO(res.stdout)))
        x = np.array([[float(row["x1"]), float(row["x2"])] for row in rows])
        assert np.all(x.sum(1) <= 1.5) and np.all((x >= 0) & (x <= 1))
        if r > 0:
            assert {"log_ehvi", "predicted_f1", "predicted_f2_std"} <= set(rows[0])
            assert len({tuple(np.round(v, 6)) for v in x}) == q
        f1, f2 = zdt2(x)
        lines = ["x1,x2,f1,f2"] + [f"{a!r},{b!r},{c!r},{d!r}" for (a, b), c, d in zip(x.tolist(), f1.tolist(), f2.tolist())]
        (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
        assert invoke("observe", camp, tmp_path / "m.csv").exit_code == 0
    info = json.loads(invoke("status", camp, "--json").stdout)
    assert info["pareto"]["reference"] == [1.2, 6.0] and info["pareto"]["reference_source"] == "campaign.toml"
    assert info["pareto"]["hypervolume"] > 0
    assert set(info["stop_rules"]) == {"threshold", "budget", "plateau", "stability", "accuracy", "acquisition"}


def test_pareto_config_round_trips_and_rejects_bad_tables():
    cfg = parse_config({"candidates": "c.csv", "features": ["a", "b"], "objective": {
        "kind": "pareto", "reference": [0.0, 1.0],
        "objectives": [{"name": "u", "direction": "maximize"}, {"name": "v", "direction": "minimize"}]}})
    import tomllib

    assert parse_config(tomllib.loads(config_to_toml(cfg))) == cfg
    assert cfg.is_pool and cfg.key_columns == ["id"] and list(cfg.objective.signs) == [1.0, -1.0]
    bad = [
        ({"candidates": "c.csv", "inputs": [{"name": "a", "low": 0, "high": 1}], "objective": {"name": "y"}},
         "remove the [[inputs]]"),
        ({"inputs": [{"name": "a", "low": 0, "high": 1}],
          "objective": {"kind": "pareto", "objectives": [{"name": "u"}]}}, "at least two"),
        ({"inputs": [{"name": "a", "low": 0, "high": 1}], "objective": {
            "kind": "pareto", "reference": [1.0], "objectives": [{"name": "u"}, {"name": "v"}]}}, "one number per"),
        ({"inputs": [{"name": "a", "low": 0, "high": 1}], "objective": {
            "kind": "pareto", "objectives": [{"name": "u"}, {"name": "u"}]}}, "unique"),
        ({"candidates": "c.csv", "features": ["id"], "objective": {"name": "y"}}, "'id'"),
        ({"inputs": [{"name": "a", "low": 0, "high": 1}], "features": ["a"], "objective": {"name": "y"}},
         "candidate table"),
    ]
    for table, message in bad:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_config(table)


@pytest.mark.parametrize("text, message", [
    ("name,a\nx,1\n", "'id' column"),
    ("id,a\nx,1\nx,2\n", "repeats row 2"),
    ("id,a,a\nx,1,2\ny,2,3\n", "a appear more than once"),
    ("id,a,b\nx,1,1\ny,2,1\n", "b are constant"),
    ("id,a,b\nx,1,\ny,2,3\n", "b is missing"),
    ("id,a\n", "no rows"),
    ("id,s\nx,abc\ny,def\n", "no numeric feature"),
])
def test_candidate_tables_with_problems_get_clear_errors(text, message):
    with pytest.raises(DataError, match=message):
        parse_pool(text, "c.csv")


def test_trailing_empty_columns_of_a_spreadsheet_export_are_not_repeated_names():
    assert parse_pool("id,a,b,,\nx,1,2,,\ny,2,3,,\n", "c.csv").names == ["a", "b"]


def test_listed_features_must_exist_and_be_numeric():
    text = "id,a,s\nx,1,abc\ny,2,def\n"
    assert parse_pool(text, "c.csv").names == ["a"]
    with pytest.raises(DataError, match="zz not in the table"):
        parse_pool(text, "c.csv", ["a", "zz"])
    assert parse_pool(text, "c.csv", ["a", "s"]).names == ["a", "s=abc", "s=def"]  # a listed text column: one-hot
    with pytest.raises(DataError, match="row 3: feature a = 'two' is not a finite number"):
        parse_pool("id,a\nx,1\ny,two\n", "c.csv", ["a"])


def test_init_leaves_objective_columns_out_of_automatic_features(tmp_path):
    (tmp_path / "candidates.csv").write_text("id,a,b,strength\nx,1,2,3\ny,2,1,5\nz,3,3,4\n")
    camp = Campaign.create(tmp_path / "c", parse_config(__import__("tomllib").loads(SCALAR_POOL.replace(
        'features = ["a", "b"]\n', ""))), source_dir=tmp_path)
    assert camp.config.features == ("a", "b")


def test_farthest_point_design_is_spread_and_skips_excluded_rows():
    rng = np.random.default_rng(0)
    f = rng.uniform(size=(400, 2))
    exclude = np.zeros(400, bool)
    exclude[:50] = True
    idx = farthest_point_design(f, 10, seed=1, exclude=exclude)
    assert len(set(idx.tolist())) == 10 and not exclude[idx].any()
    d = np.sqrt(((f[idx][:, None] - f[idx][None]) ** 2).sum(-1)) + np.eye(10)
    rand = rng.choice(np.arange(50, 400), 10, replace=False)
    dr = np.sqrt(((f[rand][:, None] - f[rand][None]) ** 2).sum(-1)) + np.eye(10)
    assert d.min() > dr.min()  # max-min selection beats a random draw on the minimum distance


def test_penalized_pool_batch_starts_at_the_best_log_ei_and_spreads_out():
    import jax

    from jaxopt_mat import fit_gp, log_expected_improvement
    from jaxopt_mat.pool import penalized_pool_batch

    rng = np.random.default_rng(3)
    pool = rng.uniform(size=(500, 2))
    x = pool[:15]
    y = np.sin(4 * x[:, 0]) + x[:, 1]
    model = fit_gp(x, y, key=jax.random.key(0), low=np.zeros(2), high=np.ones(2))
    exclude = np.zeros(500, bool)
    exclude[:15] = True
    pb = penalized_pool_batch(model, pool, 6, best=y.max(), exclude=exclude)
    idx = np.asarray(pb.index)
    post = model.predict(jnp.asarray(pool))
    log_ei = np.array(log_expected_improvement(post.mean, post.std, y.max()))
    log_ei[:15] = -np.inf
    assert idx[0] == np.argmax(log_ei)
    assert len(set(idx.tolist())) == 6 and not exclude[idx].any()
    np.testing.assert_allclose(pb.log_acquisition, log_ei[idx], rtol=1e-10)


def test_pareto_plateau_rule_watches_the_hypervolume(tmp_path):
    from jaxopt_mat.stopping import evaluate

    write_pool(tmp_path / "candidates.csv", n=30)
    (tmp_path / "campaign.toml").write_text(PARETO_POOL)
    camp = Campaign.create(tmp_path / "c", parse_config(__import__("tomllib").loads(PARETO_POOL)), source_dir=tmp_path)
    batches = [[("P0", 1.0, 1.0), ("P1", 0.0, 0.0)], [("P2", 0.5, 0.2)], [("P3", 0.2, 0.9)], [("P4", 0.6, 0.3)]]
    for rows in batches:
        text = "id,strength,cost\n" + "".join(f"{i},{s},{c}\n" for i, s, c in rows)
        camp.observe_text(text, "m.csv")
    rules = evaluate(camp.snapshot(), {"plateau_rounds": 2}, lazy=True)["stop_rules"]
    values = np.array([[1.0, -1.0], [0.0, 0.0], [0.5, -0.2], [0.2, -0.9], [0.6, -0.3]])
    ref = values.min(0) - 0.1 * (values.max(0) - values.min(0))
    hv = [float(hypervolume(jnp.asarray(values[:k]), jnp.asarray(ref))) for k in (2, 3, 4, 5)]
    assert rules["plateau"]["value"] == pytest.approx((hv[3] - hv[1]) / hv[3])
    assert rules["threshold"]["value"] == pytest.approx(hv[3])


def test_parsed_candidate_table_is_kept_and_rebuilt_when_the_table_changes(tmp_path, monkeypatch):
    import os

    import jaxopt_mat.campaign.folder as folder_module
    import jaxopt_mat.pool as pool_module

    write_pool(tmp_path / "candidates.csv", n=40)
    (tmp_path / "campaign.toml").write_text(PARETO_POOL)
    created = Campaign.create(tmp_path / "c", parse_config(__import__("tomllib").loads(PARETO_POOL)),
                              source_dir=tmp_path)
    assert (tmp_path / "c" / ".candidates.npz").is_file()  # stored by init from its own parse

    def no_parse(*args, **kwargs):
        raise AssertionError("the table was parsed again although it did not change")

    real = folder_module.read_pool
    monkeypatch.setattr(folder_module, "read_pool", no_parse)
    first = created.folder.pool()
    parsed = pool_module.parse_pool((tmp_path / "candidates.csv").read_text(), "candidates.csv",
                                    list(created.config.features))
    assert first.ids == parsed.ids and first.names == parsed.names
    np.testing.assert_array_equal(first.features, parsed.features)
    again = CampaignFolder(tmp_path / "c").pool()
    assert again.ids == first.ids and again.names == first.names
    np.testing.assert_array_equal(again.features, first.features)

    # A changed table (a row's value edited) is parsed again, not served stale.
    monkeypatch.setattr(folder_module, "read_pool", real)
    table = tmp_path / "c" / "candidates.csv"
    lines = table.read_text().splitlines()
    head, row = lines[0].split(","), lines[1].split(",")
    row[head.index(first.names[0])] = "0.123456789"
    table.write_text("\n".join([lines[0], ",".join(row)] + lines[2:]) + "\n")
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 10**9))
    assert CampaignFolder(tmp_path / "c").pool().features[0, 0] == 0.123456789

    # A torn cache file is ignored.
    (tmp_path / "c" / ".candidates.npz").write_bytes(b"torn")
    np.testing.assert_array_equal(CampaignFolder(tmp_path / "c").pool().features[1:], first.features[1:])
