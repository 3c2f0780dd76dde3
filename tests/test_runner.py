"""The loop on an executor: evaluations in flight, failures and timeouts, budgets, kill-and-resume, commands."""

import concurrent.futures
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import jaxopt_mat as jm
from jaxopt_mat.cli import app
from jaxopt_mat.command import CommandEvaluation, split_template
from jaxopt_mat.errors import CampaignError, DataError
from jaxopt_mat.runner import runner_lock

runner = CliRunner()

CONFIG = {
    "name": "run", "seed": 5, "initial_design": 6,
    "inputs": [{"name": "x1", "low": 0.0, "high": 1.0}, {"name": "x2", "low": 0.0, "high": 1.0}],
    "objective": {"name": "y", "direction": "maximize"},
}

SIM = textwrap.dedent("""
    import json, sys, time
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    x1, x2 = float(args["--x1"]), float(args["--x2"])
    time.sleep(float(args.get("--sleep", "0")))
    if x1 > 0.85:
        sys.stderr.write("clogged\\n")
        sys.exit(3)
    print("progress: done")
    print(json.dumps({"y": -(x1 - 0.3) ** 2 - (x2 - 0.6) ** 2}))
""")


def evaluate(condition):
    if condition["x1"] > 0.85:
        raise RuntimeError("the reactor clogged")
    if condition["x2"] > 0.9:
        return {"status": "failed"}
    if condition["x2"] < 0.1:
        time.sleep(2.0)  # longer than the timeout below
    return {"y": -(condition["x1"] - 0.3) ** 2}


def recorded(directory):
    with open(directory / "observations.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_keeps_evaluations_in_flight_and_records_exceptions_failures_and_timeouts(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    events = []
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        summary = jm.run(camp, evaluate, executor=pool, parallel=3, budget=16, method="random", timeout=1.0,
                         on_event=events.append)
    assert summary.total == 16 and summary.observed == 16 and "budget 16" in summary.reason
    rows = recorded(tmp_path / "c")
    assert len(rows) == 16 and len({r["suggestion"] for r in rows}) == 16  # each evaluation observed once
    for r in rows:
        x1, x2 = float(r["x1"]), float(r["x2"])
        should_fail = x1 > 0.85 or x2 > 0.9 or x2 < 0.1
        assert (r["status"] == "failed") == should_fail, r
    assert summary.failed == sum(r["status"] == "failed" for r in rows) > 0
    assert max(e.running for e in events) == 3  # three at once
    assert camp.snapshot().n_pending == 0
    # The same call again: the budget is spent, nothing more runs.
    again = jm.run(camp, evaluate, executor=concurrent.futures.ThreadPoolExecutor(2), parallel=2, budget=16,
                   method="random")
    assert again.observed == 0 and again.total == 16


def test_a_second_runner_is_refused_and_bad_arguments_are_one_line_errors(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    with runner_lock(camp.directory):
        with pytest.raises(CampaignError, match=f"is being run by pid {os.getpid()}; one runner per campaign"):
            jm.run(camp, evaluate, executor=concurrent.futures.ThreadPoolExecutor(1), budget=2)
    with pytest.raises(DataError, match="--parallel must be at least 1"):
        jm.run(camp, evaluate, parallel=0)
    res = runner.invoke(app, ["run", str(tmp_path / "c"), "--command", "python3 sim.py {x3}"])
    assert res.exit_code == DataError.exit_code and "unknown placeholder(s) {x3}" in res.stderr
    res = runner.invoke(app, ["run", str(tmp_path / "c"), "--command", "python3 'sim.py"])
    assert res.exit_code == DataError.exit_code and "No closing quotation" in res.stderr
    res = runner.invoke(app, ["run", str(tmp_path / "c"), "--command", "true", "--executor", "slurm"])
    assert res.exit_code == DataError.exit_code and "use local, dask, or dask://HOST:PORT" in res.stderr


@pytest.mark.parametrize("value", ["x; rm -rf ~", "C1=CC=C(C=C1)O", "ligand with spaces", "$(touch pwned)", "'\"`"])
def test_a_value_stays_one_argument_and_is_never_run_by_a_shell(tmp_path, value):
    args = split_template(f"{sys.executable} -c 'import json, sys; print(json.dumps({{\"y\": len(sys.argv)}}))' "
                          "--id {id} --pair a{id}b", ["id"])
    evaluation = CommandEvaluation(tuple(args), str(tmp_path / "runs"))
    built = evaluation.arguments({"id": value}, "b0001-01")
    assert built[3:] == ["--id", value, "--pair", f"a{value}b"]
    result = evaluation({"id": value}, "b0001-01")
    assert result == {"y": 5}  # the program name and four arguments: nothing was split or expanded
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    assert json.loads((tmp_path / "runs" / "b0001-01.json").read_text()) == {"y": 5}


def test_failed_commands_keep_their_reason_and_stderr(tmp_path):
    (tmp_path / "sim.py").write_text(SIM)
    base = (sys.executable, str(tmp_path / "sim.py"), "--x1", "{x1}", "--x2", "{x2}")
    runs = tmp_path / "runs"
    clogged = CommandEvaluation(base, str(runs))({"x1": 0.9, "x2": 0.5}, "b0001-01")
    assert clogged == {"status": "failed"}
    assert (runs / "b0001-01.log").read_text().startswith("exit status 3\nclogged")
    slow = CommandEvaluation(base + ("--sleep", "5"), str(runs), timeout=0.5)({"x1": 0.2, "x2": 0.5}, "b0001-02")
    assert slow == {"status": "failed"} and "timed out after 0.5 s" in (runs / "b0001-02.log").read_text()
    silent = CommandEvaluation((sys.executable, "-c", "print('hello')"), str(runs))({}, "b0001-03")
    assert silent == {"status": "failed"} and "not JSON" in (runs / "b0001-03.log").read_text()
    ok = CommandEvaluation(base, str(runs))({"x1": 0.3, "x2": 0.6}, "b0001-04")
    assert ok == {"y": 0.0} and not (runs / "b0001-04.log").exists()


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "jaxopt_mat", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.heavy
def test_a_killed_runner_resumes_without_losing_or_repeating_an_evaluation(tmp_path):
    (tmp_path / "sim.py").write_text(SIM)
    (tmp_path / "c.toml").write_text('name = "k"\nseed = 1\ninitial_design = 4\n[[inputs]]\nname = "x1"\nlow = 0.0\n'
                                     'high = 1.0\n[[inputs]]\nname = "x2"\nlow = 0.0\nhigh = 1.0\n[objective]\n'
                                     'name = "y"\n')
    camp_dir = tmp_path / "c"
    assert runner.invoke(app, ["init", str(camp_dir), "--config", str(tmp_path / "c.toml")]).exit_code == 0
    command = f"{sys.executable} {tmp_path / 'sim.py'} --x1 {{x1}} --x2 {{x2}} --sleep {{x2}}"  # staggered ends
    args = ("run", camp_dir, "--command", command, "--parallel", "3", "--budget", "12", "--method", "random")
    env = {**os.environ, "JAXOPT_MAT_CACHE": str(tmp_path / "cache")}
    first = _cli(*args, env=env)
    deadline = time.monotonic() + 120
    while len(recorded(camp_dir)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    partial = recorded(camp_dir)
    assert 4 <= len(partial) < 12
    # The lock died with the process: a new runner starts, picks up or re-runs what was in flight, and finishes.
    second = _cli(*args, env=env)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    rows = recorded(camp_dir)
    assert len(rows) == 12 and len({r["suggestion"] for r in rows}) == 12
    # Nothing recorded was lost or changed (a first failure adds the status column: earlier rows read "ok").
    assert [{k: r[k] for k in p} for r, p in zip(rows, partial)] == partial
    assert all(r.get("status", "ok") == p.get("status", "ok") for r, p in zip(rows, partial))
    assert "12 measurements in the campaign" in out
    assert "pending rows run again" in out or "results picked up" in out  # what was in flight when killed
    assert jm.Campaign.open(camp_dir).snapshot().n_pending == 0


def test_the_stop_rules_end_a_run(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", {**CONFIG, "initial_design": 4, "stopping": {"budget": 7}})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summary = jm.run(camp, lambda c: {"y": -(c["x1"] - 0.3) ** 2 - c["x2"]}, executor=pool, parallel=2)
    assert summary.reason == "the stop rules are met"
    assert 7 <= summary.total <= 9 and camp.snapshot().n_pending == 0
    assert np.all(np.isfinite(camp.snapshot().y))


def test_the_runner_asks_for_every_free_slot_and_judges_once_per_round(tmp_path, monkeypatch):
    camp = jm.Campaign.create(tmp_path / "c", {**CONFIG, "initial_design": 4})
    asks = []
    ask = jm.Campaign.ask

    passed = []

    def spy(self, batch, **options):
        snap = self.snapshot()
        asks.append((snap.n_rows + int(snap.failed_x.shape[0]), batch, options["judge"], options["round_size"]))
        assert options["refit_after"] == 3  # hyper-parameters optimized once per `parallel` runs
        given = options["snapshot"]  # the runner's own read, when it is the campaign as it is now
        if given is not None:
            passed.append(1)
            assert given.n_rows == snap.n_rows and given.pending.ids == snap.pending.ids
            assert given.n_suggested == snap.n_suggested
        return ask(self, batch, **options)

    monkeypatch.setattr(jm.Campaign, "ask", spy)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        summary = jm.run(camp, lambda c: {"y": -(c["x1"] - 0.3) ** 2 - c["x2"]}, executor=pool, parallel=3,
                         budget=16)
    assert summary.total == 16 and summary.loop_seconds > 0
    assert sum(b for _, b, _, _ in asks) == 16 and all(1 <= b <= 3 for _, b, _, _ in asks)
    judged = [n for n, _, judge, _ in asks if judge]
    assert judged[0] == 0 and np.all(np.diff(judged) >= 3) and len(judged) >= 3  # at most once per 3 runs
    assert {r for *_, r in asks} == {3} and len(passed) >= len(asks) // 2
    without = jm.Campaign.create(tmp_path / "d", {**CONFIG, "initial_design": 4})
    asks.clear()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        jm.run(without, lambda c: {"y": -c["x1"]}, executor=pool, parallel=3, budget=8, stop_when_done=False)
    assert not any(judge for _, _, judge, _ in asks)


@pytest.mark.heavy
def test_a_dask_local_cluster_runs_the_loop(tmp_path):
    """A real Dask cluster (two worker processes on loopback) through the CLI's --executor dask."""
    pytest.importorskip("distributed", reason="Dask's distributed package is a dev extra")
    (tmp_path / "sim.py").write_text(SIM)
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    command = f"{sys.executable} {tmp_path / 'sim.py'} --x1 {{x1}} --x2 {{x2}}"
    res = runner.invoke(app, ["run", str(tmp_path / "c"), "--command", command, "--parallel", "2", "--budget", "6",
                              "--executor", "dask", "--method", "random"])
    assert res.exit_code == 0, res.output
    assert "6 measurements in the campaign" in res.stdout
    rows = recorded(tmp_path / "c")
    assert len(rows) == 6 and len({r["suggestion"] for r in rows}) == 6
    assert camp.snapshot().n_pending == 0


def test_a_result_the_campaign_refuses_is_a_failed_run_with_its_reason_kept(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    results = iter([{"y": "not a number"}, {"z": 1.0}, {"y": 0.5}])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        summary = jm.run(camp, lambda c: next(results), executor=pool, parallel=1, budget=3, method="random")
    rows = recorded(tmp_path / "c")
    assert [r["status"] for r in rows] == ["failed", "failed", "ok"] and summary.failed == 2
    logs = sorted((tmp_path / "c" / "runs").glob("*.log"))
    assert len(logs) == 2 and all("result refused, recorded as a failed run" in p.read_text() for p in logs)
    assert "y = 'not a number' is not a number" in logs[0].read_text()


def test_pending_rows_beyond_the_budget_stay_pending(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    camp.suggest(5, method="random")  # suggested by hand, never measured: a runner evaluates them first
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        summary = jm.run(camp, lambda c: {"y": c["x1"]}, executor=pool, parallel=2, budget=3, method="random")
    assert summary.redispatched == 3 and summary.total == 3
    assert camp.snapshot().n_pending == 2


def plain_evaluate(condition):
    """A module-level evaluation: what the default process pool can import in its workers."""
    return {"y": -(condition["x1"] - 0.3) ** 2}


@pytest.mark.heavy
def test_the_default_executor_is_a_pool_of_spawned_processes(tmp_path):
    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    summary = jm.run(camp, plain_evaluate, parallel=2, budget=4, method="random")
    assert summary.total == 4 and summary.failed == 0
    assert len(recorded(tmp_path / "c")) == 4


def test_evaluations_that_finish_together_are_observed_together_and_a_refused_one_alone(tmp_path):
    from jaxopt_mat.runner import _observe_all, _row

    camp = jm.Campaign.create(tmp_path / "c", CONFIG)
    ids = camp.ask(6, method="random").suggestion_ids
    conds = [dict(zip(("x1", "x2"), map(float, x))) for x in camp.snapshot().pending.x]
    rows = [_row(ids[0], conds[0], {"y": 1.0}), _row(ids[1], conds[1], {"status": "failed"}),
            _row(ids[2], conds[2], {"y": 2.0})]
    assert _observe_all(camp, rows, camp.snapshot()) == [False, True, False]
    assert [r["batch"] for r in recorded(tmp_path / "c")] == ["1"] * 3  # one observation
    rows = [_row(ids[3], conds[3], {"y": 3.0}), _row(ids[4], conds[4], {"y": "n/a"}),
            _row(ids[5], conds[5], {"y": 4.0})]
    assert _observe_all(camp, rows, camp.snapshot()) == [False, True, False]
    table = recorded(tmp_path / "c")
    assert [(r["suggestion"], r["status"], r["batch"]) for r in table[3:]] == [
        (ids[3], "ok", "2"), (ids[4], "failed", "3"), (ids[5], "ok", "4")]  # each on its own
    assert "is not a number" in (tmp_path / "c" / "runs" / f"{ids[4]}.log").read_text()
    assert camp.snapshot().n_pending == 0


def test_a_result_is_written_as_a_measurement_file_exactly():
    import io

    from jaxopt_mat.runner import _csv_text

    value = 0.1 + 0.2
    text = _csv_text([{"suggestion": "b0001-01", "a": np.float64(value), "b": None, "label": "x, y", "n": np.int64(3)},
                      {"suggestion": "b0001-02", "a": 1, "c": float("nan"), "ok": True}])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["suggestion", "a", "b", "label", "n", "c", "ok"],
                    ["b0001-01", repr(value), "", "x, y", "3", "", ""],
                    ["b0001-02", "1", "", "", "", "", "True"]]
    assert float(rows[1][1]) == value  # the number recorded is the number measured
