"""Row-wise functions over big tables, in fixed-size chunks: bounded memory, every core busy.

A candidate pool of a million rows times a GP's ``n`` training points does not
fit in memory as one ``(N, n)`` kernel matrix, and need not: a row's posterior
or acquisition depends on that row alone. :func:`map_rows` runs such a
function over ``chunk`` rows at a time in one compiled ``lax.scan`` (the last
chunk overlaps the one before it instead of padding, so the table is never
copied) and, on a CPU, over contiguous parts of the table from one host thread
per core: XLA runs one program's element-wise passes on one core.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def default_threads() -> int:
    """Host threads for a CPU device: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 8)


def _leading(rows) -> int:
    return jax.tree.leaves(rows)[0].shape[0]


def scan_rows(fn, args, rows, chunk, dtype=None, start=0, length=None):
    """Traceable core of :func:`map_rows`: ``fn`` over rows ``start .. start + length`` (default: all).

    ``length >= chunk``. Chunk ``i`` starts at ``start + min(i * chunk, length - chunk)``;
    floating-point rows are cast to ``dtype`` chunk by chunk.
    """
    n = _leading(rows) if length is None else length
    n_chunks = -(-n // chunk)

    def body(_, i):
        at = start + jnp.minimum(i * chunk, n - chunk)
        part = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, at, chunk), rows)
        if dtype is not None:
            part = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, part)
        return None, fn(part, *args)

    _, out = jax.lax.scan(body, None, jnp.arange(n_chunks))
    last = n - (n_chunks - 1) * chunk  # rows of the last chunk not already in the one before
    return jax.tree.map(lambda o: jnp.concatenate([o[:-1].reshape(-1, *o.shape[2:]), o[-1, chunk - last:]]), out)


@partial(jax.jit, static_argnames=("fn", "length", "chunk", "dtype"))
def _map_range(fn, args, rows, start, *, length, chunk, dtype):
    return scan_rows(fn, args, rows, chunk, dtype, start, length)


def map_rows(fn, args, rows, *, chunk: int = 8192, dtype=None, threads: int | None = None, devices=None):
    """``fn(rows, *args)`` computed ``chunk`` rows at a time, for tables of any length.

    Args:
        fn: maps a chunk of rows (an array ``(c, ...)`` or a pytree of them) and
            ``*args`` to a pytree of arrays whose leading axis is the chunk's
            rows; each output row may depend only on its own input row. Pass a
            module-level function (or another hashable callable) so the
            compiled program is reused between calls.
        args: pytree of arrays passed to every call (a model, a front).
        rows: ``(N, ...)`` array or a pytree of arrays with the same leading ``N``.
        chunk: rows per step; memory grows with it, not with ``N``.
        dtype: cast floating-point rows to this dtype chunk by chunk (cast ``args``
            yourself), e.g. ``jnp.float32`` for screening.
        threads: on one CPU device, the table is cut into this many contiguous
            parts computed by one host thread each (XLA runs one program's
            element-wise passes on one core); each part holds at least one
            chunk, so small tables use fewer. Default: :func:`default_threads`
            when the rows sit on a CPU, else 1.
        devices: with several devices (default: all of ``jax.devices()``) the
            table is split into equal shards along its rows with
            ``jax.sharding`` and each device runs the chunked scan over its
            shard (``args`` replicated); the result equals the one-device
            result, and each device's memory holds its shard and one chunk's
            working set.

    Under ``jit``, ``vmap`` or ``grad`` (traced rows or ``args``) it is always
    one program on the caller's device.

    Returns:
        The outputs of ``fn`` for all ``N`` rows, in order.

    Example:
        >>> mean, std = map_rows(predict_objectives, (models, signs), pool_features)
    """
    rows = jax.tree.map(jnp.asarray, rows)  # once: the threads share the table on the device
    n = _leading(rows)
    if n == 0:
        raise ValueError("map_rows needs at least one row")
    dtype = None if dtype is None else jnp.dtype(dtype)  # hashable, for the compiled scan's static arguments
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((rows, args))):
        return scan_rows(fn, args, rows, min(chunk, n), dtype)  # inside a trace: part of the caller's program
    devs = list(jax.devices() if devices is None else devices)
    if len(devs) > 1:
        return _map_sharded_rows(fn, args, rows, devs, chunk=chunk, dtype=dtype)
    chunk = min(chunk, n)
    if threads is None:
        threads = default_threads() if all(d.platform == "cpu" for d in jax.tree.leaves(rows)[0].devices()) else 1
    parts = max(1, min(int(threads), n // chunk))
    length = -(-n // parts)
    while parts > 1 and (parts - 1) * length >= n:  # every part must hold rows of its own
        parts -= 1
        length = -(-n // parts)
    if parts == 1:
        return _map_range(fn, args, rows, 0, length=n, chunk=chunk, dtype=dtype)

    def part(i):
        start = min(i * length, n - length)
        return jax.block_until_ready(_map_range(fn, args, rows, start, length=length, chunk=chunk, dtype=dtype))

    with ThreadPoolExecutor(parts) as pool:
        outs = list(pool.map(part, range(parts)))
    last = n - (parts - 1) * length  # rows of the last part not already in the one before
    return jax.tree.map(lambda *o: jnp.concatenate(list(o[:-1]) + [o[-1][length - last:]]), *outs)


def _map_sharded_rows(fn, args, rows, devs, *, chunk, dtype):
    """:func:`map_rows` over equal row shards on ``devs`` (the last row repeated to even them out, then cut off)."""
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    n = _leading(rows)
    pad = -n % len(devs)
    if pad:
        rows = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), rows)
    chunk = min(chunk, (n + pad) // len(devs))
    mesh = Mesh(np.array(devs), ("rows",))
    rows = jax.device_put(rows, NamedSharding(mesh, P("rows")))
    out = _scan_sharded(fn, args, rows, chunk=chunk, mesh=mesh, dtype=dtype)
    return jax.tree.map(lambda o: o[:n], out) if pad else out


@partial(jax.jit, static_argnames=("fn", "chunk", "mesh", "dtype"))
def _scan_sharded(fn, args, rows, *, chunk, mesh, dtype):
    from jax.sharding import PartitionSpec as P

    body = jax.shard_map(lambda r, a: scan_rows(fn, a, r, chunk, dtype), mesh=mesh, in_specs=(P("rows"), P()),
                         out_specs=P("rows"))
    return body(rows, args)
