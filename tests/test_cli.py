import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from jaxopt_mat import __version__
from jaxopt_mat import Campaign
from jaxopt_mat.cli import app
from jaxopt_mat.test_functions import branin
from tests.conftest import cli_campaign, rows_of

runner = CliRunner()

CONFIG = """
name = "branin"
seed = 3
initial_design = 6
[[inputs]]
name = "x1"
low = -5.0
high = 10.0
[[inputs]]
name = "x2"
low = 0.0
high = 15.0
extendable = true
[[constraints]]
expr = "x1 + x2 <= 20"
[objective]
kind = "scalar"
name = "cost"
direction = "minimize"
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def measure(suggestion_csv: str) -> str:
    rows = list(csv.DictReader(io.StringIO(suggestion_csv)))
    out = ["x1,x2,cost"]
    for r in rows:
        x = np.array([[float(r["x1"]), float(r["x2"])]])
        out.append(f"{r['x1']},{r['x2']},{float(branin(x)[0])!r}")
    return "\n".join(out) + "\n"


@pytest.fixture
def campaign(tmp_path):
    return cli_campaign(tmp_path, CONFIG)


def one_line_error(res, code):
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


def test_version_is_printed():
    res = invoke("--version")
    assert res.exit_code == 0 and __version__ in res.stdout


@pytest.mark.heavy
def test_closed_loop_round_trip_improves_and_respects_the_constraint(campaign, tmp_path):
    best, costs = [], []
    for r in range(4):
        res = invoke("suggest", campaign, "--batch", 6 if r == 0 else 4)
        assert res.exit_code == 0, res.output
        header = res.stdout.splitlines()[0].split(",")
        assert header[:3] == ["suggestion", "x1", "x2"]
        x = np.array([[float(v) for v in ln.split(",")[1:3]] for ln in res.stdout.splitlines()[1:]])
        assert np.all(x.sum(axis=1) <= 20.0) and np.all(x[:, 0] >= -5) and np.all(x[:, 1] <= 15)
        if r > 0:
            assert "predicted_mean" in header
        f = tmp_path / f"m{r}.csv"
        f.write_text(measure(res.stdout))
        costs.append([float(ln.split(",")[2]) for ln in f.read_text().splitlines()[1:]])
        res = invoke("observe", campaign, f)
        assert res.exit_code == 0, res.output
        info = json.loads(invoke("status", campaign, "--json").stdout)
        best.append(info["best"]["value"])
    assert info["n_observations"] == 18 and info["n_conditions"] == 18
    assert set(info["best"]) >= {"x1", "x2", "value"}
    assert best == sorted(best, reverse=True) and best[-1] == min(sum(costs, []))
    # The model's batches beat the space-filling start (a lucky start can hold the best for a few rounds).
    assert np.median(sum(costs[1:], [])) < 0.5 * np.median(costs[0])
    assert len(list((campaign / "suggestions").glob("batch_*.csv"))) == 4


def test_fewer_observations_than_the_initial_design_give_a_latin_hypercube(campaign):
    res = invoke("suggest", campaign, "--batch", 5)
    assert res.exit_code == 0
    assert "Latin-hypercube" in res.stderr
    assert res.stdout.splitlines()[0] == "suggestion,x1,x2"


def test_suggestions_are_reproducible_from_the_seed(campaign, tmp_path):
    a = invoke("suggest", campaign, "--batch", 4, "--method", "random", "--seed", 7, "--out", tmp_path / "a.csv")
    assert a.exit_code == 0
    text_a = (tmp_path / "a.csv").read_text()
    # Same seed, same campaign state (one fewer saved batch): copy the campaign back.
    (campaign / "suggestions" / "batch_0001.csv").unlink()
    invoke("suggest", campaign, "--batch", 4, "--method", "random", "--seed", 7, "--out", tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text() == text_a


def test_status_before_any_measurement(campaign):
    info = json.loads(invoke("status", campaign, "--json").stdout)
    assert info["n_observations"] == 0 and info["best"] is None


@pytest.mark.parametrize("content, message", [
    ("x1,x2,cost\n1.0,2.0,oops\n", "row 2: cost = 'oops' is not a number"),
    ("x1,x2,cost\n1.0,2.0,3.0\n9.0,14.0,1.0\n", "row 3: violates constraint"),
    ("x1,cost\n1.0,2.0\n", "missing column(s) x2"),
    ("x1,x2,cost\n1.0,16.0,1.0\n", "x2 = 16 is above its upper bound 15"),
    ("x1,x2,cost\n1.0,2.0,nan\n", "not finite"),
])
def test_observe_refuses_bad_files_and_writes_nothing(campaign, tmp_path, content, message):
    good = tmp_path / "good.csv"
    good.write_text("x1,x2,cost\n1.0,2.0,3.0\n")
    assert invoke("observe", campaign, good).exit_code == 0
    before = (campaign / "observations.csv").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    line = one_line_error(invoke("observe", campaign, bad), 3)
    assert message in line
    assert (campaign / "observations.csv").read_bytes() == before


def test_observing_the_same_file_twice_is_refused_unless_asked(campaign, tmp_path):
    first = tmp_path / "m.csv"
    first.write_text("x1,x2,cost\n1.0,2.0,3.0\n4.0,5.0,6.0\n")
    assert invoke("observe", campaign, first).exit_code == 0
    before = (campaign / "observations.csv").read_bytes()
    shuffled = tmp_path / "again.csv"  # the same rows, columns and rows in another order
    shuffled.write_text("cost,x2,x1\n6.0,5.0,4.0\n3.0,2.0,1.0\n")
    line = one_line_error(invoke("observe", campaign, shuffled), 3)
    assert "repeat batch 1 exactly" in line and "--again" in line
    assert (campaign / "observations.csv").read_bytes() == before
    # A true replicate differs in its measured value, and a subset is a new batch: both are recorded.
    for text in ("x1,x2,cost\n1.0,2.0,3.1\n4.0,5.0,6.0\n", "x1,x2,cost\n1.0,2.0,3.0\n"):
        first.write_text(text)
        assert invoke("observe", campaign, first).exit_code == 0
    assert invoke("observe", campaign, shuffled, "--again").exit_code == 0
    _, _, batch = rows_of(Campaign.open(campaign))
    assert batch.tolist() == [1, 1, 2, 2, 3, 4, 4]


@pytest.mark.parametrize("args, code, message", [
    (["suggest", "{camp}", "--batch", "0"], 3, "between 1 and 96"),
    (["suggest", "{camp}", "--batch", "97"], 3, "between 1 and 96"),
    (["suggest", "{camp}", "--batch", "2", "--method", "magic"], 3, "unknown method"),
    (["suggest", "{tmp}/nowhere", "--batch", "2"], 5, "not a campaign folder"),
    (["observe", "{camp}", "{tmp}/missing.csv"], 3, "measurement file not found"),
    (["status", "{tmp}/nowhere"], 5, "not a campaign folder"),
    (["init", "{camp}", "--config", "{tmp}/campaign.toml"], 5, "already holds a campaign"),
    (["init", "{tmp}/new", "--config", "{tmp}/nope.toml"], 2, "config file not found"),
    (["suggest", "{camp}", "--batch", "2", "--out", "{tmp}/no/such/folder/s.csv"], 3, "folder {tmp}/no/such/folder does not exist"),
    (["demo", "--out", "{tmp}/d", "--rounds", "0"], 3, "--rounds and --replicates must be at least 1"),
    (["demo", "--out", "{tmp}/d", "--batch", "100"], 3, "--batch must be between 1 and 96, got 100"),
])
def test_refusals_are_one_line_with_an_exit_code(campaign, tmp_path, args, code, message):
    args = [a.format(camp=campaign, tmp=tmp_path) for a in args]
    assert message.format(tmp=tmp_path) in one_line_error(invoke(*args), code)
    assert not (tmp_path / "d").exists()  # a refused demo creates (or replaces) nothing


def test_spreadsheet_exports_are_read_or_refused_in_one_line(campaign, tmp_path):
    data = tmp_path / "m.csv"
    # "CSV UTF-8" from a spreadsheet: a byte-order mark before the first column's name, CRLF line ends.
    data.write_bytes(b"\xef\xbb\xbfx1,x2,cost\r\n1.0,2.0,3.0\r\n")
    assert invoke("observe", campaign, data).exit_code == 0
    x, y, _ = rows_of(Campaign.open(campaign))
    np.testing.assert_allclose(np.c_[x, y], [[1.0, 2.0, 3.0]])
    before = (campaign / "observations.csv").read_bytes()
    for content, message in (
        (b"x1;x2;cost\r\n4,0;5,0;6,0\r\n", "separated by ';': save the file with commas as separators"),
        (b"x1\tx2\tcost\n4.0\t5.0\t6.0\n", "separated by tabs"),
        (b"x1,x2,cost\n4.0,5.0,6.0 \xb5g\n", "m.csv line 2: not UTF-8 text (byte 0xb5); save it as UTF-8"),
    ):
        data.write_bytes(content)
        assert message in one_line_error(invoke("observe", campaign, data), 3)
    assert (campaign / "observations.csv").read_bytes() == before


@pytest.mark.parametrize("row, message", [
    ("1.0,oops,3.0,1", "the row '1.0,oops,3.0,1' holds a value that is not a finite number"),
    ("1.0,2.0,inf,1", "the row '1.0,2.0,inf,1' holds a value that is not a finite number"),
    ("1.0,2.0", "row 3: 2 fields, the header has 4"),
    ("1.0,2.0,3.0,first", "row 3: batch 'first' is not a whole number"),
])
def test_a_hand_edited_record_is_named_not_a_traceback(campaign, tmp_path, row, message):
    data = tmp_path / "m.csv"
    data.write_text("x1,x2,cost\n1.0,2.0,3.0\n")
    assert invoke("observe", campaign, data).exit_code == 0
    record = campaign / "observations.csv"
    record.write_text(record.read_text() + row + "\n\n")
    for command in (("status", campaign), ("suggest", campaign, "--batch", "2")):
        line = one_line_error(invoke(*command), 5)
        assert message in line and "restore the file" in line


def test_blank_lines_in_the_record_are_skipped(campaign, tmp_path):
    data = tmp_path / "m.csv"
    data.write_text("x1,x2,cost\n1.0,2.0,3.0\n")
    assert invoke("observe", campaign, data).exit_code == 0
    record = campaign / "observations.csv"
    record.write_text(record.read_text() + "\n\n")
    data.write_text("x1,x2,cost\n4.0,5.0,6.0\n")
    res = invoke("observe", campaign, data)
    assert res.exit_code == 0 and "as batch 2; 2 in total" in res.stdout, res.output


def test_a_folder_the_system_refuses_is_a_one_line_error(campaign, tmp_path):
    data = tmp_path / "m.csv"
    data.write_text("x1,x2,cost\n1.0,2.0,3.0\n")
    assert invoke("observe", campaign, data).exit_code == 0
    line = one_line_error(invoke("plot", campaign, "--out", tmp_path / "m.csv" / "plots"), 1)
    assert line == f"error: {tmp_path / 'm.csv' / 'plots'}: Not a directory"


@pytest.mark.parametrize("text, message", [
    ("name = 'x'\nbogus = 1\n", "unknown key(s) bogus"),
    ("[[inputs]]\nname='a'\nlow=1.0\nhigh=0.0\n[objective]\nname='y'\n", "must be below"),
    ("[[inputs]]\nname='a'\nlow=0.0\nhigh=1.0\n[[constraints]]\nexpr='a >= 2'\n[objective]\nname='y'\n", "no feasible region"),
    ("this is not toml", "not valid TOML"),
])
def test_init_refuses_bad_configs(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert message in one_line_error(invoke("init", tmp_path / "c", "--config", cfg), 2)
    assert not (tmp_path / "c").exists()


def test_bound_pressure_is_reported_and_can_widen_the_bound(campaign, tmp_path):
    # Measurements that improve towards x2 = 15 make the GP push against that bound.
    rows = ["x1,x2,cost"] + [f"{x1},{x2},{-x2 + 0.01 * x1 * x1!r}" for x1, x2 in
                             [(-4, 1), (0, 3), (3, 5), (-2, 7), (1, 9), (4, 11), (-1, 13), (2, 14.5), (0, 15)]]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    assert invoke("observe", campaign, tmp_path / "m.csv").exit_code == 0
    first = invoke("suggest", campaign, "--batch", 6)
    second = invoke("suggest", campaign, "--batch", 6)
    assert "keep pressing against its upper bound 15" in second.stderr, second.stderr
    third = invoke("suggest", campaign, "--batch", 6, "--extend-bounds")
    assert third.exit_code == 0
    assert "widened it" in third.stderr
    cfg = (campaign / "campaign.toml").read_text()
    assert "high = 22.5" in cfg  # range 15 grows by the default factor 1.5
    assert first.exit_code == 0


def test_suggest_warm_starts_the_gp_and_a_repeated_call_gives_the_same_batch(campaign, tmp_path):
    for r in range(2):  # initial design, then one GP batch
        res = invoke("suggest", campaign, "--batch", 6 if r == 0 else 4)
        (tmp_path / f"m{r}.csv").write_text(measure(res.stdout))
        assert invoke("observe", campaign, tmp_path / f"m{r}.csv").exit_code == 0
    state = json.loads((campaign / "state.json").read_text())
    assert list(state["gp_hyperparameters"]["cost"]) == ["6"] and len(state["gp_hyperparameters"]["cost"]["6"]) == 5
    first = invoke("suggest", campaign, "--batch", 4, "--out", tmp_path / "a.csv")
    assert first.exit_code == 0, first.output
    state = json.loads((campaign / "state.json").read_text())
    assert sorted(state["gp_hyperparameters"]["cost"], key=int) == ["6", "10"]
    # The same data again (the batch file removed so the seed stream repeats): the fit on 10
    # conditions starts from the one on 6, not from its own earlier result.
    sorted(campaign.glob("suggestions/batch_*.csv"))[-1].unlink()
    invoke("suggest", campaign, "--batch", 4, "--out", tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text() == (tmp_path / "a.csv").read_text()
    # A hand-edited, malformed entry is ignored rather than fatal.
    state = json.loads((campaign / "state.json").read_text())
    state["gp_hyperparameters"]["cost"].update({"8": "garbage", "x": [0.0], "9": [1.0, float("nan")]})
    (campaign / "state.json").write_text(json.dumps(state))
    res = invoke("suggest", campaign, "--batch", 4)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args", [("status",), ("suggest", "--batch", "3", "--method", "random")])
def test_a_reader_that_stops_early_is_not_reported_as_an_error(campaign, args):
    # `jaxopt-mat status DIR | head -1`: the pipe's reader has gone before the command writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run([sys.executable, "-m", "jaxopt_mat", args[0], str(campaign), *args[1:]], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr
    assert "error" not in res.stderr.lower() and "Traceback" not in res.stderr, res.stderr  # notes may remain
    if args[0] == "suggest":  # the batch is kept in the campaign although nobody read it
        assert len((campaign / "suggestions" / "batch_0001.csv").read_text().splitlines()) == 4
