"""Worker processes shared by the stages (geocoding, attacker LPs, layers, synth).

Always *spawned*, never forked: polars', GEOS' and HiGHS' thread pools do not survive a fork.
A spawned worker re-imports the main module: scripts that call Préau need
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import importlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def spawn_pool(workers: int, preload: str | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes. ``preload``: a module every worker imports as it
    starts, and the processes are started at once (not at the first task), so that their start-up
    overlaps the caller's own preparation."""
    if preload is None:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=importlib.import_module, initargs=(preload,))
    pool.submit(int)  # the processes start with the first task
    return pool
