"""The loops compiled by numba are found again in numba's cache by the next process (kernels
defined inside a function were compiled again in every process: 0.6 s each, see CHANGELOG)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBES = {
    "ingest": """
from preau.ingest import scan
k = scan.kernel()
assert scan.transcode_checked(b"a;b\\n\\xe9;c\\n", "cp1252", b"", ";", 2) is not None
print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
""",
    "disclosure": """
import numpy as np
from preau.disclosure import local
i32 = lambda *v: np.array(v, np.int32)
local.local_pass(i32(0, 2), i32(0, 1), np.array([True, False]), i32(0, 1, 2), i32(0, 0),
                 np.array([False, True]), np.array([5.0, 2.0]), np.array([5.0, 5.0]), np.array([True, True]),
                 np.array([1]), np.array([0]), np.array([2.0]), np.array([5.0]), 64, 50.0, 4.0, 6.0)
k = local.local_pass
print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
""",
}


@pytest.mark.parametrize("stage", sorted(PROBES))
def test_second_process_loads_the_compiled_loop_from_the_cache(stage):
    runs = [subprocess.run([sys.executable, "-c", PROBES[stage]], capture_output=True, text=True, check=True)
            for _ in range(2)]
    hits, misses = map(int, runs[1].stdout.split())
    assert (hits, misses) == (1, 0), f"second process: {hits} cache hits, {misses} misses"
