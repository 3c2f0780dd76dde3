import multiprocessing as mp
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_mat import Campaign, CampaignError, ConfigError, DataError, InfeasibleError, RepeatedBatchError
from jaxopt_mat.campaign import RESERVED_COLUMNS, CampaignFolder, Measurements, config_to_toml, parse_config

BASE = {
    "name": "agnp",
    "seed": 0,
    "inputs": [
        {"name": "q_agno3", "low": 4.0, "high": 45.0},
        {"name": "q_pva", "low": 10.0, "high": 40.0},
        {"name": "q_tot", "low": 200.0, "high": 1000.0, "extendable": True},
    ],
    "constraints": [{"expr": "q_agno3 + q_pva <= 60"}],
    "objective": {"kind": "scalar", "name": "yield", "direction": "maximize"},
}


def with_(**changes):
    cfg = {k: v for k, v in BASE.items()}
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("data, error, message", [
    (with_(colour="red"), ConfigError, "unknown key"),
    (with_(inputs=[{"name": "a", "low": 2.0, "high": 1.0}]), ConfigError, "must be below"),
    (with_(inputs=[{"name": "a", "low": 0.0}]), ConfigError, "missing 'high'"),
    (with_(inputs=[{"name": "a", "low": 0.0, "high": 1.0, "step": 2}]), ConfigError, "unknown key"),
    (with_(inputs=[{"name": "a b", "low": 0.0, "high": 1.0}]), ConfigError, "identifier"),
    (with_(inputs=[{"name": "a", "low": "x", "high": 1.0}]), ConfigError, "finite number"),
    (with_(constraints=[{"expr": "q_agno3 + q_pva <= 5"}]), InfeasibleError, "no feasible region"),
    (with_(constraints=[{"expr": "q_agno3 + q_x <= 50"}]), ConfigError, "unknown input"),
    (with_(objective={"name": "yield", "direction": "up"}), ConfigError, "direction"),
    (with_(objective={"kind": "magic", "name": "yield"}), ConfigError, "not supported"),
    (with_(objective={"kind": "spectrum"}), ConfigError, "needs target"),
    (with_(objective={"kind": "spectrum", "target": "t.csv", "window": [1.2, 0.7]}), ConfigError, "window"),
    (with_(objective={"kind": "spectrum", "target": "t.csv", "direction": "maximize"}), ConfigError, "unknown key"),
    (with_(objective={"name": "q_pva"}), ConfigError, "clashes"),
    (with_(objective={"name": "id"}), ConfigError, "clashes"),
    (with_(inputs=[{"name": "batch", "low": 0.0, "high": 1.0}]), ConfigError, "reserved"),
    (with_(inputs=[{"name": "id", "low": 0.0, "high": 1.0}]), ConfigError, "reserved"),
    (with_(seed=-1), ConfigError, "seed"),
    (with_(initial_design=1), ConfigError, "initial_design"),
])
def test_bad_configs_are_refused_with_the_reason(data, error, message):
    with pytest.raises(error, match=message):
        parse_config(data)


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
column_names = names.filter(lambda s: s not in RESERVED_COLUMNS)


@st.composite
def configs(draw):
    n = draw(st.integers(1, 4))
    input_names = draw(st.lists(column_names, min_size=n, max_size=n, unique=True))
    inputs = []
    for nm in input_names:
        lo = draw(st.floats(-1e4, 1e4))
        width = draw(st.floats(1e-3, 1e4))
        item = {"name": nm, "low": lo, "high": lo + width}
        if draw(st.booleans()):
            item["extendable"] = True
            item["extend_factor"] = draw(st.floats(1.01, 5.0))
        inputs.append(item)
    obj = draw(column_names.filter(lambda s: s not in input_names))
    return {
        "name": draw(names), "seed": draw(st.integers(0, 2**31)), "inputs": inputs,
        "initial_design": draw(st.integers(2, 50)),
        "objective": {"kind": "scalar", "name": obj, "direction": draw(st.sampled_from(["maximize", "minimize"]))},
    }


@settings(max_examples=40, deadline=None)
@given(configs())
def test_config_round_trips_through_toml(data):
    cfg = parse_config(data)
    again = parse_config(tomllib.loads(config_to_toml(cfg)))
    assert again == cfg


@pytest.fixture
def camp(tmp_path):
    return Campaign.create(tmp_path / "c", parse_config(BASE))


def table(rows, header="q_agno3,q_pva,q_tot,yield"):
    return header + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("rows, header, message", [
    (["10,20,500,1.0"], "q_agno3,q_pva,yield", "missing column"),
    (["10,20,500,1.0,2.0"], "q_agno3,q_pva,q_tot,yield,yield", "yield appear more than once"),
    (["10,20,20,500,1.0"], "q_agno3,q_pva,q_pva,q_tot,yield", "q_pva appear more than once"),
    (["10,abc,500,1.0"], None, "row 2: q_pva = 'abc' is not a number"),
    (["10,20,500,1.0", "10,20,500,nan"], None, "row 3: yield = nan is not finite"),
    (["10,20,500,inf"], None, "not finite"),
    (["10,20,500,"], None, "row 2: yield is empty"),
    (["10,50,500,1.0"], None, "q_pva = 50 is above its upper bound 40"),
    (["1,20,500,1.0"], None, "q_agno3 = 1 is below its lower bound 4"),
    (["40,30,500,1.0"], None, "violates constraint 'q_agno3 + q_pva <= 60'"),
    (["10,20,500"], None, "fields"),
    ([], None, "no data rows"),
])
def test_bad_measurements_are_refused_naming_the_row(camp, rows, header, message):
    with pytest.raises(DataError, match=re.escape(message)):
        camp.validate_text(table(rows, header or "q_agno3,q_pva,q_tot,yield"), "m.csv")


def test_observations_append_and_number_batches(camp):
    camp.folder.append_observations(camp.validate_text(table(["10,20,500,1.0", "11,21,600,2.0"]), "a"))
    camp.folder.append_observations(camp.validate_text(table(["12,22,700,3.0"]), "b"))
    snap = camp.snapshot()
    x, y, batch = snap.x, snap.y, snap.batches
    np.testing.assert_allclose(y, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(batch, [1, 1, 2])
    np.testing.assert_allclose(x[2], [12, 22, 700])


def test_a_repeated_batch_is_refused_only_when_asked(camp):
    first = camp.validate_text(table(["10,20,500,1.0", "11,21,600,2.0"]), "a")
    camp.folder.append_observations(first)
    before = (camp.directory / "observations.csv").read_bytes()
    again = camp.validate_text(table(["11,21,600,2.0", "10,20,500,1.0"]), "a")  # the same rows, reordered
    with pytest.raises(RepeatedBatchError, match="repeat batch 1 exactly"):
        camp.folder.append_observations(again, refuse_repeat=True)
    assert (camp.directory / "observations.csv").read_bytes() == before
    assert camp.folder.append_observations(again) == (2, 4)  # the folder's default records it (replicates on purpose)


def test_a_batch_with_the_same_inputs_but_other_results_is_not_a_repeat(camp):
    camp.folder.append_observations(camp.validate_text(table(["10,20,500,1.0", "11,21,600,2.0"]), "a"))
    replicates = camp.validate_text(table(["11,21,600,2.5", "10,20,500,1.0"]), "b")
    assert camp.folder.append_observations(replicates, refuse_repeat=True) == (2, 4)


def _same_recorded(a, b):
    assert a.header == b.header and a.ids == b.ids and a.suggestions == b.suggestions
    for name in ("x", "failed", "batches", "numbers"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(4, 20), st.booleans()), min_size=1, max_size=3), min_size=1, max_size=4))
def test_rows_parsed_as_they_are_appended_equal_the_whole_file_parsed_at_once(tmp_path_factory, batches):
    # A folder read again parses only the rows appended since (failed runs and the `status` column that the first
    # failure adds included); the arrays equal a fresh folder's reading of the whole file.
    camp = Campaign.create(tmp_path_factory.mktemp("c") / "c", parse_config(BASE))
    camp.folder.recorded()
    for batch in batches:
        rows = [f"{a:.6g},20,500,{'' if failed else a / 10},{'failed' if failed else 'ok'}" for a, failed in batch]
        first_row = camp.folder.read_records().body[:1]
        camp.folder.append_observations(camp.validate_text(table(rows, "q_agno3,q_pva,q_tot,yield,status"), "m.csv"))
        warm = camp.folder.recorded()
        _same_recorded(warm, CampaignFolder(camp.directory).recorded())
        assert camp.folder.recorded() is warm and not warm.numbers.flags.writeable  # unchanged file: nothing redone
        if first_row and camp.folder.read_records().header == camp.folder._records[1].header:
            assert camp.folder.read_records().body[0] is camp.folder._records[1].body[0]
    snap = camp.snapshot()
    assert snap.x.shape[0] + snap.failed_x.shape[0] == sum(map(len, batches))


def test_a_hand_edit_of_an_earlier_row_is_seen_by_a_folder_that_read_the_file_before(camp):
    camp.folder.append_observations(camp.validate_text(table(["10,20,500,1.0", "11,21,600,2.0"]), "a"))
    camp.snapshot()
    path = camp.directory / "observations.csv"
    path.write_text(path.read_text().replace("2.0,", "abc,"))
    with pytest.raises(CampaignError, match="'11.0,21.0,600.0,abc,...' holds a value"):
        camp.snapshot()
    path.write_text(path.read_text().replace("abc,", "2.0,") + "12,22,700,3.0\n")  # a row appended by hand
    with pytest.raises(CampaignError, match="row 4: 4 fields, the header has 5"):
        camp.snapshot()


def test_the_spaces_centre_is_kept_for_the_next_command_and_found_again_when_the_config_changes(camp, monkeypatch):
    import jaxopt_mat.space as space_mod

    first = camp.folder.space()
    kept = camp.directory / ".space.json"
    assert kept.is_file()
    # The next command (a new folder object) takes the kept centre: no linear program.
    lp = space_mod._chebyshev_center
    monkeypatch.setattr(space_mod, "_chebyshev_center", lambda *a, **k: pytest.fail("the LP ran again"))
    again = CampaignFolder(camp.directory).space()
    np.testing.assert_array_equal(again.center, first.center)
    # A hand edit of the config (or of the kept file) makes it find the centre again.
    calls = []
    monkeypatch.setattr(space_mod, "_chebyshev_center", lambda *a, **k: calls.append(1) or lp(*a, **k))
    kept.write_text('{"config": "something else", "center": [0.5, 0.5, 0.5]}')
    np.testing.assert_array_equal(CampaignFolder(camp.directory).space().center, first.center)
    kept.write_text("not json")
    np.testing.assert_array_equal(CampaignFolder(camp.directory).space().center, first.center)
    assert len(calls) == 2
    path = camp.directory / "campaign.toml"
    path.write_text(path.read_text().replace("q_agno3 + q_pva <= 60", "q_agno3 + q_pva <= 20"))
    changed = CampaignFolder(camp.directory).space()
    assert len(calls) == 3 and not np.array_equal(changed.center, first.center)
    path.write_text(path.read_text().replace("q_agno3 + q_pva <= 20", "q_agno3 + q_pva <= 5"))  # now infeasible
    with pytest.raises(InfeasibleError, match="no feasible region"):
        CampaignFolder(camp.directory).space()


def test_a_kept_centre_outside_the_space_is_not_used():
    from jaxopt_mat import SearchSpace

    fresh = SearchSpace([0.0, 0.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[1.0])
    for wrong in ([0.9, 0.9], [1.5, 0.1], [0.2]):
        np.testing.assert_array_equal(SearchSpace([0.0, 0.0], [1.0, 1.0], A=[[1.0, 1.0]], b=[1.0], center=wrong).center,
                                      fresh.center)


def test_extra_columns_such_as_predictions_are_accepted(camp):
    rows = camp.validate_text("q_tot,q_pva,predicted_mean,q_agno3,yield\n500,20,0.3,10,1.5\n", "s.csv")
    np.testing.assert_allclose(rows.values, [[10, 20, 500, 1.5]])
    assert rows.columns == ["yield"]


def _append_many(directory, k):
    c = CampaignFolder(Path(directory))
    for i in range(5):
        c.append_observations(Measurements(np.array([[10.0 + k, 20.0, 500.0 + i, float(i)]]), ["yield"]))


def test_concurrent_appends_lose_no_row(camp):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(camp.directory), k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    snap = camp.snapshot()
    x, batch = snap.x, snap.batches
    assert x.shape[0] == 20
    assert sorted(batch) == sorted(set(batch))  # every append got its own batch number


def test_an_existing_campaign_is_not_overwritten(camp):
    from jaxopt_mat import CampaignError

    with pytest.raises(CampaignError, match="already holds a campaign"):
        Campaign.create(camp.directory, parse_config(BASE))


def test_a_target_saved_with_a_byte_order_mark_keeps_its_first_point(tmp_path):
    from jaxopt_mat.campaign import read_target

    path = tmp_path / "target.csv"
    path.write_bytes("\ufeff380,0.1\r\n381,0.2\r\n382,0.4\r\n".encode())  # no header: the first row is data
    wl, absorbance = read_target(path)
    np.testing.assert_allclose(wl, [380, 381, 382])
    np.testing.assert_allclose(absorbance, [0.1, 0.2, 0.4])
