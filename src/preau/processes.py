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

# polars' allocator (jemalloc) gives freed memory back to the system after 0.5 s (polars' default):
# a worker that runs one polars task after another (a département's geocoding) then takes page
# faults on fresh memory for most of its allocations. Kept 10 s in such workers, the memory is reused
# instead. National geo stage, same inputs: system time 22 → 13 s, wall 64 → 59 s (2 workers); the
# main process keeps polars' default (its own peak is the build's peak memory).
POLARS_REUSE_MEMORY = "dirty_decay_ms:10000,muzzy_decay_ms:10000"


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
    saved = os.environ.get("_RJEM_MALLOC_CONF")
    if reuse_memory:  # read by polars as the worker imports it; later options win in jemalloc
        os.environ["_RJEM_MALLOC_CONF"] = ",".join(filter(None, (saved, POLARS_REUSE_MEMORY)))
    try:
        # One process is spawned per task submitted while none is idle: ``workers`` trivial tasks
        # start them all now (a spawned process takes far longer to start than these submissions).
        for _ in range(workers):
            pool.submit(int)
    finally:
        if reuse_memory:
            if saved is None:
                os.environ.pop("_RJEM_MALLOC_CONF", None)
            else:
                os.environ["_RJEM_MALLOC_CONF"] = saved
    return pool
