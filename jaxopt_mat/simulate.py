"""Drive a campaign folder against a simulated laboratory, through the same files a user's lab uses.

Each round: ``suggest`` writes a batch into ``suggestions/``, the lab "measures"
each condition (optionally several replicates), the measurements are written to
a CSV file exactly as a lab would write them, and that file goes through
``observe``'s validation and atomic append. Benchmarks and the demo therefore
exercise the real path, not a shortcut.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from pathlib import Path
from typing import Callable, Protocol

import jax.numpy as jnp
import numpy as np

from jaxopt_mat.api import Campaign
from jaxopt_mat.campaign import parse_config
from jaxopt_mat.virtual_lab import CONSTRAINT_B, HIGH, INPUT_NAMES, LOW, SilverLab

# The hidden recipe whose spectrum the built-in lab's campaigns (the demo's) aim for.
DEMO_TARGET_RECIPE = (18.0, 22.0, 12.0, 3.0, 450.0)


class Lab(Protocol):
    """Anything that measures a batch of conditions ``(n, d)`` into values ``(n,)``."""

    def measure(self, x: np.ndarray, *, rng: np.random.Generator) -> np.ndarray: ...


@dataclasses.dataclass
class FunctionLab:
    """A lab whose measurement is ``fn(x)`` plus Gaussian noise of ``noise_std``."""

    fn: Callable
    noise_std: float = 0.0

    def measure(self, x, *, rng):
        y = np.asarray(self.fn(jnp.asarray(x)), dtype=np.float64)
        return y + self.noise_std * rng.standard_normal(y.shape)


@dataclasses.dataclass
class Round:
    index: int
    method: str
    n_measured: int
    best: float
    batch_values: np.ndarray
    seconds: float
    notes: list


def builtin_lab_campaign(folder, *, name: str, seed: int, initial_design: int, context=None) -> Campaign:
    """The demo's spectrum campaign on the built-in lab, in ``folder/campaign``.

    The target is the noise-free spectrum of :data:`DEMO_TARGET_RECIPE`,
    written to ``folder/source/target.csv``; the five flows keep the lab's
    bounds and its 90 % constraint.
    """
    lab = SilverLab()
    target = np.asarray(lab.spectra(np.array([DEMO_TARGET_RECIPE])))[0]
    source = Path(folder) / "source"
    source.mkdir(parents=True)
    (source / "target.csv").write_text("wavelength,absorbance\n" + "".join(
        f"{w:g},{a!r}\n" for w, a in zip(lab.wavelengths, target.tolist())))
    cfg = parse_config({
        "name": name, "seed": seed, "initial_design": initial_design,
        "inputs": [{"name": n, "low": float(lo), "high": float(hi)} for n, lo, hi in zip(INPUT_NAMES, LOW, HIGH)],
        "constraints": [{"expr": f"q_agno3 + q_pva + q_tsc + q_seed <= {CONSTRAINT_B[0]:g}"}],
        "objective": {"kind": "spectrum", "target": "target.csv", "window": [0.7, 1.2]},
    })
    return Campaign.create(Path(folder) / "campaign", cfg, source_dir=source, context=context)


def measurements_csv(names: list[str], measured: list[str], x: np.ndarray, y: np.ndarray) -> str:
    """A measurement file as a lab writes it: input columns, then the measured column(s)."""
    y = np.asarray(y).reshape(len(x), -1)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(names) + list(measured))
    for row, v in zip(x, y):
        w.writerow([repr(float(a)) for a in row] + [repr(float(b)) for b in v])
    return buf.getvalue()


def _measured_columns(campaign: Campaign, lab) -> list[str]:
    if campaign.config.objective.is_spectrum:
        return [f"{w:g}" for w in np.asarray(lab.wavelengths)]
    return [campaign.config.objective.name]


def run(
    campaign: Campaign,
    lab: Lab,
    *,
    rounds: int,
    batch: int,
    replicates: int = 1,
    method: str | None = None,
    seed: int = 0,
    on_round: Callable[[Round], None] = lambda r: None,
) -> list[Round]:
    """Run ``rounds`` of suggest -> measure -> observe; return a summary per round.

    ``batch_values`` of each round are the measured objective of the batch (the
    exact loss, for spectrum campaigns). The campaign's context (caches,
    progress) serves every ``suggest``.
    """
    rng = np.random.default_rng(seed)
    config = campaign.config
    history = []
    for r in range(rounds):
        t0 = time.perf_counter()
        kept = campaign.ask(batch, method=method)
        x = np.repeat(kept.suggestion.x, replicates, axis=0)
        y = lab.measure(x, rng=rng)
        text = measurements_csv(config.input_names, _measured_columns(campaign, lab), x, y)
        # freshly measured, so a batch equal to an earlier one (a converged loop on a noise-free lab) is recorded
        done = campaign.observe_text(text, f"round {r + 1} measurements", again=True)
        snap = campaign.snapshot()
        cond = snap.conditions
        best = float(np.max(cond.y) if config.objective.maximize else np.min(cond.y))
        history.append(Round(done.batch, kept.method, snap.n_rows, best, snap.y[snap.batches == done.batch],
                             time.perf_counter() - t0, kept.notes))
        on_round(history[-1])
    return history
