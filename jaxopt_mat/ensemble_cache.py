"""Trained spectrum ensembles kept on disk between commands.

``status``, ``suggest``, ``plot`` and ``explain`` of a spectrum campaign each
need ensembles trained on the campaign's measurements, and training takes tens
of seconds on a CPU. Training is deterministic given the rows, the seed, the
bounds and the code, so an ensemble is stored under a digest of those and the
next command that asks for the same one loads it instead (e.g. ``status``
after ``observe`` trains what the next ``suggest`` uses). Entries are
content-addressed: a changed table, seed or package version simply misses.

Only the command-line layer opts in, by passing an :class:`EnsembleCache`.
Within one call, ``suggest`` also keeps what it trains or loads in an
:class:`EnsembleMemo` (its batch and its stop rules may ask for the same
ensemble), so a library call without a cache trains each ensemble once, and
again in the next call.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from jaxopt_mat.program_cache import source_fingerprint, store_atomically
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
        buf = io.BytesIO()
        np.savez(buf, **ensemble_to_arrays(ensemble))
        if store_atomically(self._path(key), buf.getvalue()):
            self._prune()
        return ensemble

    def _prune(self) -> None:
        with contextlib.suppress(OSError):  # another process may prune at the same time
            entries = sorted(self.dir.glob("ensemble-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in entries[self.keep:]:
                with contextlib.suppress(OSError):
                    old.unlink()


class EnsembleMemo:
    """Ensembles kept in memory for one call that may ask for one twice, in front of an optional ``backing`` cache.

    Keys are :meth:`EnsembleCache.key`; a miss falls through to ``backing``
    (e.g. an :class:`EnsembleCache`), and what is trained is stored in both.
    """

    key = staticmethod(EnsembleCache.key)

    def __init__(self, backing: EnsembleCache | None = None):
        self._backing = backing
        self._stored: dict[str, SpectrumEnsemble] = {}

    def get(self, key: str) -> SpectrumEnsemble | None:
        if key not in self._stored and self._backing is not None:
            found = self._backing.get(key)
            if found is not None:
                self._stored[key] = found
        return self._stored.get(key)

    def put(self, key: str, ensemble: SpectrumEnsemble) -> SpectrumEnsemble:
        self._stored[key] = ensemble
        if self._backing is not None:
            self._backing.put(key, ensemble)
        return ensemble
