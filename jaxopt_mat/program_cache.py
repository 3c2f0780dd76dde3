"""Compiled programs kept on disk between processes.

JAX's persistent compilation cache skips XLA compilation in a new process, but
tracing and lowering still cost about a second per large program (an L-BFGS fit,
a batch optimisation). A command-line tool pays that on every call. This cache
stores the lowered program (``jax.export``) under a key made of the function,
its static arguments, the structure, shapes and dtypes of its inputs, and the
versions of JAX and of this package's source, so a later process loads it in
milliseconds and only the (cached) compilation remains.

Only the CLI layer opts in, by passing a :class:`ProgramCache` to the functions
that accept one; library code keeps plain ``jax.jit``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

import jax
from jax import export


@lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A digest of the JAX version and of this package's source: what a stored result depends on."""
    h = hashlib.sha256(jax.__version__.encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def store_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file and a rename, so that
    readers see the old file or the new one, never a torn one.

    Best effort, for caches: on an unwritable folder nothing is stored and
    ``False`` is returned (a cache that cannot be written only costs speed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


class ProgramCache:
    """A folder of exported programs.

    Example:
        >>> cache = ProgramCache(Path("~/.cache/jaxopt_mat/programs").expanduser())
        >>> out = cache.call("fit", fit_impl, (u, y, mask, key), dict(max_iter=200))
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self._loaded: dict[str, export.Exported] = {}

    def call(self, name: str, fn: Callable, args: tuple, static: dict):
        """``fn(*args, **static)``, from a stored program when one matches.

        ``fn`` must return an array or a tuple of arrays. ``args`` may hold
        registered pytrees and typed PRNG keys.
        """
        leaves, treedef = jax.tree.flatten(args)
        is_key = [_is_key(leaf) for leaf in leaves]
        flat = [jax.random.key_data(leaf) if k else leaf for leaf, k in zip(leaves, is_key)]
        signature = repr((
            name, sorted(static.items()), str(treedef), is_key,
            [(tuple(jax.numpy.shape(x)), str(jax.numpy.result_type(x))) for x in flat],
            source_fingerprint(),
        ))
        digest = hashlib.sha256(signature.encode()).hexdigest()[:32]
        exp = self._loaded.get(digest)
        if exp is None:
            path = self.dir / f"{name}-{digest}.jaxexport"
            exp = self._load(path)
            if exp is None:
                def flat_fn(*xs):
                    xs = [jax.random.wrap_key_data(x) if k else x for x, k in zip(xs, is_key)]
                    return fn(*jax.tree.unflatten(treedef, xs), **static)

                specs = [jax.ShapeDtypeStruct(jax.numpy.shape(x), jax.numpy.result_type(x)) for x in flat]
                exp = export.export(jax.jit(flat_fn))(*specs)
                self._store(path, exp)
            self._loaded[digest] = exp
        return exp.call(*flat)

    @staticmethod
    def _load(path: Path):
        try:
            return export.deserialize(bytearray(path.read_bytes()))
        except FileNotFoundError:
            return None
        except Exception:  # a stale or torn file: rebuild it
            return None

    def _store(self, path: Path, exp) -> None:
        store_atomically(path, exp.serialize())
