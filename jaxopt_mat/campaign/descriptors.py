"""Numbers that describe a categorical input's labels: a user's descriptor table, or RDKit descriptors of SMILES.

Either way the result is one row of numbers per label, in the order of the
labels; the GP treats them as continuous coordinates (one length-scale each),
so labels that are chemically alike are modelled as alike.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from jaxopt_mat.errors import ConfigError

RDKIT_DIMENSIONS = 4  # principal components kept of the RDKit 2-D descriptors


def read_descriptors(path: Path, name: str, labels: tuple[str, ...]) -> tuple[tuple[float, ...], ...]:
    """Rows of ``path`` (CSV: a column ``name`` holding the labels, then numeric columns), in the order of ``labels``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise ConfigError(f"input {name}: descriptor file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"input {name}: cannot read {path}: {e}") from None
    if not rows or name not in rows[0]:
        raise ConfigError(f"input {name}: {path.name} needs a column {name!r} of labels and numeric descriptor columns")
    header, body = rows[0], rows[1:]
    at = header.index(name)
    numeric = [j for j in range(len(header)) if j != at]
    if not numeric:
        raise ConfigError(f"input {name}: {path.name} has no descriptor columns besides {name!r}")
    table = {}
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ConfigError(f"input {name}: {path.name} row {line} has {len(r)} fields, the header {len(header)}")
        try:
            values = tuple(float(r[j]) for j in numeric)
        except ValueError:
            raise ConfigError(f"input {name}: {path.name} row {line}: a descriptor is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"input {name}: {path.name} row {line}: a descriptor is not finite")
        if r[at] in table:
            raise ConfigError(f"input {name}: {path.name} lists the label {r[at]!r} twice")
        table[r[at]] = values
    missing = [label for label in labels if label not in table]
    if missing:
        raise ConfigError(f"input {name}: {path.name} has no row for the label(s) {', '.join(missing)}")
    out = tuple(table[label] for label in labels)
    if np.ptp(np.array(out), axis=0).max() == 0:
        raise ConfigError(f"input {name}: every label has the same descriptors in {path.name}")
    return out


def rdkit_descriptors(smiles: tuple[str, ...], where: str) -> tuple[tuple[float, ...], ...]:
    """RDKit's 2-D descriptors of each SMILES, standardised and reduced to a few principal components.

    Raises:
        ConfigError: without RDKit (naming the extra that brings it), or for a label that is not SMILES.
    """
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Descriptors
    except ImportError:
        raise ConfigError(f'{where}: encoding = "rdkit" needs RDKit: pip install "jaxopt-mat[chem]"') from None
    RDLogger.DisableLog("rdApp.*")
    rows = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise ConfigError(f"{where}: the label {s!r} is not a SMILES string RDKit can read")
        values = Descriptors.CalcMolDescriptors(mol)
        rows.append([float(values[k]) for k in sorted(values)])
    table = np.array(rows)
    keep = np.all(np.isfinite(table), axis=0) & (np.ptp(np.where(np.isfinite(table), table, 0.0), axis=0) > 0)
    table = table[:, keep]
    if table.shape[1] == 0:
        raise ConfigError(f"{where}: RDKit gives the same descriptors for every label")
    z = (table - table.mean(axis=0)) / table.std(axis=0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    k = min(RDKIT_DIMENSIONS, len(smiles) - 1, int(np.sum(s > 1e-9 * s[0])))
    scores = u[:, :k] * s[:k]
    return tuple(tuple(float(v) for v in r) for r in scores)
