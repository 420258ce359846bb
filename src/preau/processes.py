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


@contextmanager
def _reused_memory(on: bool):
    """While the pool's processes are spawned: :data:`POLARS_REUSE_MEMORY` added to their
    environment (the caller's own is given back after)."""
    saved = os.environ.get(_JEMALLOC_ENV)
    if on:
        os.environ[_JEMALLOC_ENV] = ",".join(filter(None, (saved, POLARS_REUSE_MEMORY)))
    try:
        yield
    finally:
        if on and saved is None:
            os.environ.pop(_JEMALLOC_ENV, None)
        elif on:
            os.environ[_JEMALLOC_ENV] = saved


def spawn_pool(workers: int, preload: str | None = None, reuse_memory: bool = False) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes. ``preload``: a module every worker imports as it
    starts, and the processes are started at once (not at the first task), so that their start-up
    overlaps the caller's own preparation. ``reuse_memory``: the workers' polars keeps freed memory
    for 10 s (:data:`POLARS_REUSE_MEMORY`; implies starting the processes at once)."""
    ctx = multiprocessing.get_context("spawn")
    if preload is None and not reuse_memory:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    init = dict(initializer=importlib.import_module, initargs=(preload,)) if preload else {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **init)
    with _reused_memory(reuse_memory):
        # One process is spawned per task submitted while none is idle: ``workers`` trivial tasks
        # start them all now (a spawned process takes far longer to start than these submissions).
        for _ in range(workers):
            pool.submit(int)
    return pool
