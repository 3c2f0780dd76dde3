"""Test configuration: float64 for GP work, as the CLI sets it; shared data location."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SHARED_DATA = Path(os.environ.get("JAXOPT_MAT_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def pytest_collection_modifyitems(config, items):
    """Run the tests marked ``heavy`` first (stable order otherwise).

    The suite runs on parallel workers (scripts/test); starting the few longest
    tests early keeps one worker from running them alone at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def shared_file(*parts) -> Path:
    """Path of a file in ../shared/data; skip the test, saying why, when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing on CI, where the shared data must be present")
        pytest.skip(f"shared data file {path} not present (set JAXOPT_MAT_DATA to its folder)")
    return path


AGNP_BOUNDS = dict(
    names=["q_agno3", "q_pva", "q_tsc", "q_seed", "q_tot"],
    low=[4.0, 10.0, 0.5, 0.5, 200.0],
    high=[45.0, 40.0, 30.0, 20.0, 1000.0],
)


@pytest.fixture(scope="session")
def agnp_space():
    from jaxopt_mat import SearchSpace

    return SearchSpace(
        AGNP_BOUNDS["low"], AGNP_BOUNDS["high"], names=AGNP_BOUNDS["names"],
        A=[[1.0, 1.0, 1.0, 1.0, 0.0]], b=[90.0],
    )


def rows_of(camp):
    """``(x, y, batch)`` of every recorded row of a :class:`jaxopt_mat.Campaign` (``y``: the objective per row)."""
    snap = camp.snapshot()
    return snap.x, snap.y, snap.batches


def append_rows(camp, values):
    """Record rows ``(n, d + k)`` (inputs, then the measured columns) as one batch, as ``observe`` would."""
    import numpy as np

    from jaxopt_mat.campaign import Measurements

    return camp.folder.append_observations(Measurements(np.asarray(values), camp.config.objective.measured_names))[0]


def cli_campaign(tmp_path, config_text: str, name: str = "camp"):
    """A campaign folder made by ``jaxopt-mat init`` from ``config_text`` (written as tmp_path/campaign.toml)."""
    from typer.testing import CliRunner

    from jaxopt_mat.cli import app

    cfg = tmp_path / "campaign.toml"
    cfg.write_text(config_text)
    res = CliRunner().invoke(app, ["init", str(tmp_path / name), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    return tmp_path / name
