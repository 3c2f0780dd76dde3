"""The README's Python example runs as written."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.heavy
def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    code = blocks[0]

    def my_simulator(x):
        u = (np.asarray(x) - np.array([4, 10, 0.5, 0.5, 200])) / np.array([41, 30, 29.5, 19.5, 800])
        return -np.sum((u - 0.4) ** 2, axis=1)

    scope = {"my_simulator": my_simulator}
    exec(compile(code, str(README), "exec"), scope)
    assert scope["batch"].x.shape == (15, 5)
    assert bool(np.all(np.asarray(scope["space"].is_feasible(scope["batch"].x, atol=0.0))))
    assert np.isfinite(float(scope["result"].value))
    assert np.all(np.isfinite(np.asarray(scope["grad"])))
