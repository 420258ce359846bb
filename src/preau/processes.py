"""Worker processes shared by the stages (geocoding, attacker LPs, layers, synth).

Always *spawned*, never forked: polars', GEOS' and HiGHS' thread pools do not survive a fork.
A spawned worker re-imports the main module: scripts that call Préau need
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
