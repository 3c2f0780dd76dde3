"""Trained spectrum ensembles kept on disk between commands.

``status``, ``suggest``, ``plot`` and ``explain`` of a spectrum campaign each
need ensembles trained on the campaign's measurements, and training takes tens
of seconds on a CPU. Training is deterministic given the rows, the seed, the
bounds and the code, so an ensemble is stored under a digest of those and the
next command that asks for the same one loads it instead (e.g. ``status``
after ``observe`` trains what the next ``suggest`` uses). Entries are
content-addressed: a changed table, seed or package version simply misses.

Only the command-line layer opts in, by passing an :class:`EnsembleCache`;
library code trains every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from jaxopt_mat.program_cache import source_fingerprint
from jaxopt_mat.surrogates.spectrum_net import SpectrumEnsemble, ensemble_from_arrays, ensemble_to_arrays


class EnsembleCache:
    """A folder of trained ensembles, the ``keep`` most recently stored kept.

    Example:
        >>> cache = EnsembleCache(Path("~/.cache/jaxopt_mat/ensembles").expanduser())
        >>> key = cache.key(x, spectra, seed=3, low=space.low, high=space.high)
        >>> ens = cache.get(key) or cache.put(key, fit_spectrum_ensemble(...))
    """

    def __init__(self, directory: Path, *, keep: int = 16):
        self.dir = Path(directory)
        self.keep = keep

    @staticmethod
    def key(x, spectra, *, seed: int, low, high) -> str:
        """Digest of everything a training run depends on."""
        h = hashlib.sha256(source_fingerprint().encode())
        for a in (x, spectra, low, high):
            a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
        h.update(str(int(seed)).encode())
        return h.hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.dir / f"ensemble-{key}.npz"

    def get(self, key: str) -> SpectrumEnsemble | None:
        """The stored ensemble, or ``None`` when absent or unreadable (then it is trained again)."""
        path = self._path(key)
        try:
            with np.load(path) as data:
                ens = ensemble_from_arrays({k: data[k] for k in data.files})
        except Exception:  # a missing, truncated or foreign file is a miss, never an error
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: pruned last
        return ens

    def put(self, key: str, ensemble: SpectrumEnsemble) -> SpectrumEnsemble:
        """Store ``ensemble`` (atomically; a failure to write only costs the reuse) and return it."""
        with contextlib.suppress(OSError):
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ensemble-", suffix=".npz.tmp", dir=self.dir)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **ensemble_to_arrays(ensemble))
                os.replace(tmp, self._path(key))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            self._prune()
        return ensemble

    def _prune(self) -> None:
        entries = sorted(self.dir.glob("ensemble-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.keep:]:
            with contextlib.suppress(OSError):
                old.unlink()
