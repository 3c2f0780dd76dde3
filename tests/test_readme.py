"""The documentation's examples run as written: README's campaign (TOML and Python) and the functional core's."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.heavy
def test_the_functional_core_example_runs():
    code = blocks(ROOT / "docs" / "core.md", "python")[0]

    def my_simulator(x):
        u = (np.asarray(x) - np.array([4, 10, 0.5, 0.5, 200])) / np.array([41, 30, 29.5, 19.5, 800])
        return -np.sum((u - 0.4) ** 2, axis=1)

    scope = {"my_simulator": my_simulator}
    exec(compile(code, "docs/core.md", "exec"), scope)
    assert scope["batch"].x.shape == (15, 5)
    assert bool(np.all(np.asarray(scope["space"].is_feasible(scope["batch"].x, atol=0.0))))
    assert np.isfinite(float(scope["result"].value))
    assert np.all(np.isfinite(np.asarray(scope["grad"])))


def test_the_readme_campaign_runs_from_a_notebook(tmp_path, capsys):
    (tmp_path / "campaign.toml").write_text(blocks(ROOT / "README.md", "toml")[0])
    code = blocks(ROOT / "README.md", "python")[0]

    def measure(batch):
        return 1.0 - ((batch["q_agno3"] - 20.0) / 41.0) ** 2 - ((batch["q_tot"] - 500.0) / 800.0) ** 2

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope = {"measure": measure}
        exec(compile(code, "README.md", "exec"), scope)
        best = scope["camp"].status().best
    finally:
        os.chdir(here)
    batch = scope["batch"]
    assert batch.shape == (15, 7) and np.all(batch.iloc[:, 1:5].sum(axis=1) <= 90.0)
    assert best["value"] == pytest.approx(batch["yield"].max()) and "q_tot" in capsys.readouterr().out
