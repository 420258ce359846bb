"""Worker pools (preau.processes): spawned processes, started at once, allocator options."""

import os

from preau.processes import POLARS_REUSE_MEMORY, spawn_pool

KEY = "_RJEM_MALLOC_CONF"


def test_reuse_memory_reaches_the_workers_not_the_caller():
    before = os.environ.get(KEY)
    pool = spawn_pool(2, preload="polars", reuse_memory=True)
    try:
        assert os.environ.get(KEY) == before  # the caller's environment is given back
        assert len(pool._processes) == 2  # both started at once, while the option was set
        seen = {pool.submit(os.getenv, KEY).result() for _ in range(8)}
    finally:
        pool.shutdown()
    # polars prepends its defaults as the worker imports it; the last options win in jemalloc
    assert seen and all(v and v.endswith(POLARS_REUSE_MEMORY) for v in seen)


def test_plain_pool_keeps_polars_defaults():
    pool = spawn_pool(1, preload="polars")
    try:
        value = pool.submit(os.getenv, KEY).result()
    finally:
        pool.shutdown()
    assert POLARS_REUSE_MEMORY not in (value or "")


def _polars_threads() -> int:
    import polars as pl

    return pl.thread_pool_size()


def test_polars_threads_reach_the_workers_not_the_caller():
    import polars as pl

    from preau.processes import threads_per_worker

    before, own = os.environ.get("POLARS_MAX_THREADS"), pl.thread_pool_size()
    pool = spawn_pool(2, preload="polars", polars_threads=1)
    try:
        assert os.environ.get("POLARS_MAX_THREADS") == before and len(pool._processes) == 2
        seen = {pool.submit(_polars_threads).result() for _ in range(8)}
    finally:
        pool.shutdown()
    assert seen == {1} and pl.thread_pool_size() == own
    if before is None:
        assert threads_per_worker(1) == (os.cpu_count() or 1)
    assert threads_per_worker(10 ** 6) == 1


def test_threads_per_worker_shares_the_callers_polars_threads(monkeypatch):
    from preau.processes import threads_per_worker

    monkeypatch.setenv("POLARS_MAX_THREADS", "8")
    assert threads_per_worker(2) == 4 and threads_per_worker(3) == 2 and threads_per_worker(16) == 1
    monkeypatch.setenv("POLARS_MAX_THREADS", "not a number")
    assert threads_per_worker(1) == (os.cpu_count() or 1)
