"""Worker processes shared by the stages (geocoding, attacker LPs, layers, synth).

Always *spawned*, never forked: polars', GEOS' and HiGHS' thread pools do not survive a fork.
A spawned worker re-imports the main module: scripts that call Préau need
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

# polars' allocator (jemalloc) gives freed memory back to the system after 0.5 s (polars' default):
# a worker that runs one polars task after another (a département's geocoding) then takes page
# faults on fresh memory for most of its allocations. Kept 10 s in such workers, the memory is reused
# instead. National geo stage, same inputs, two workers, two back-to-back pairs: 70.4 → 66.4 s and
# 74.8 → 67.2 s, system time 24.5 → 15.4 s. The main process keeps polars' default (set for the
# whole process, the build's peak went over 6 GB).
POLARS_REUSE_MEMORY = "dirty_decay_ms:10000,muzzy_decay_ms:10000"
_JEMALLOC_ENV = "_RJEM_MALLOC_CONF"  # read by polars as a process imports it; later options win
# polars' thread pool per worker: as many threads as the worker's share of the cores. Two geocoding
# workers on two cores with two polars threads each spent 10 % more CPU than with one (national
# warm geo stage, two alternating pairs: 33.1 / 33.4 s → 31.9 / 32.5 s, workers 54.0 / 55.2 → 51.8 /
# 52.7 CPU-s)
_THREADS_ENV = "POLARS_MAX_THREADS"


def threads_per_worker(workers: int) -> int:
    """Cores per worker process (at least one) for a pool of ``workers`` processes: the machine's
    cores, or the ``POLARS_MAX_THREADS`` the caller set, shared among them."""
    try:
        cores = int(os.environ.get(_THREADS_ENV) or 0) or os.cpu_count() or 1
    except ValueError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


@contextmanager
def _spawn_env(reuse_memory: bool, threads: int | None):
    """While the pool's processes are spawned: :data:`POLARS_REUSE_MEMORY` added to their
    environment, and ``POLARS_MAX_THREADS`` set to ``threads`` (the caller's own are given back after)."""
    saved = {k: os.environ.get(k) for k in (_JEMALLOC_ENV, _THREADS_ENV)}
    if reuse_memory:
        os.environ[_JEMALLOC_ENV] = ",".join(filter(None, (saved[_JEMALLOC_ENV], POLARS_REUSE_MEMORY)))
    if threads:
        os.environ[_THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spawn_pool(workers: int, preload: str | None = None, reuse_memory: bool = False,
               polars_threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes. ``preload``: a module every worker imports as it
    starts, and the processes are started at once (not at the first task), so that their start-up
    overlaps the caller's own preparation. ``reuse_memory``: the workers' polars keeps freed memory
    for 10 s (:data:`POLARS_REUSE_MEMORY`; implies starting the processes at once).
    ``polars_threads``: the size of each worker's polars thread pool (see :func:`threads_per_worker`;
    implies starting the processes at once)."""
    ctx = multiprocessing.get_context("spawn")
    if preload is None and not reuse_memory and not polars_threads:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    init = dict(initializer=importlib.import_module, initargs=(preload,)) if preload else {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **init)
    with _spawn_env(reuse_memory, polars_threads):
        # One process is spawned per task submitted while none is idle: ``workers`` trivial tasks
        # start them all now (a spawned process takes far longer to start than these submissions).
        for _ in range(workers):
            pool.submit(int)
    return pool
