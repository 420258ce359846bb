"""The compiled loop of :mod:`preau.ingest.scan` (imported on its first use: numba's import
costs about 0.16 s, paid only by the processes that read an export).

The functions are defined at module level: numba's cache (``cache=True``) finds them again in the
next process. Defined inside a function, as they first were, numba wrote the cache but compiled
again in every process (0.64 s on each first call, 1.56 s with a cold disk; loaded from the cache:
0.34–0.38 s, measured with numba's cache statistics showing a hit).
"""

import numba


@numba.njit(nogil=True, cache=True, inline="always")
def ragged(a, begin, end, count, expected):
    """Whether the line ``a[begin:end]`` (its line end excluded) of ``count`` delimiters is
    ragged: another count, unless it is blank (empty, or only CR)."""
    if count == expected:
        return False
    if count == 0:
        for k in range(begin, end):
            if a[k] != 13:
                return True
        return False
    return True


@numba.njit(nogil=True, cache=True)
def scan_chunk(a, recode, lut, lengths, out, start, delim, expected, bad):
    """With ``recode``, re-encode ``a`` into ``out[start:]`` (else ``a`` is UTF-8 already and
    nothing is written); note in ``bad`` the 0-based index of each line whose delimiter count is
    not ``expected`` (lines of only CR skipped). Returns (end of output, bad lines noted (all of
    them: ``bad`` holds the first ones), -1 or the position of an undefined byte). One test per
    byte on the common path (the delimiter count is a sum; blank lines are looked at only when
    the count is off)."""
    j = start
    nbad = 0
    line = 0
    count = 0
    begin = 0
    for i in range(a.shape[0]):
        b = a[i]
        if b < 0x80:
            if recode:
                out[j] = b
                j += 1
            if b == 10:
                if ragged(a, begin, i, count, expected):
                    if nbad < bad.shape[0]:
                        bad[nbad] = line
                    nbad += 1
                line += 1
                count = 0
                begin = i + 1
            else:
                count += b == delim
        elif recode:
            n = lengths[b]
            if n == 0:
                return j, nbad, i
            for k in range(n):
                out[j + k] = lut[b, k]
            j += n
    if ragged(a, begin, a.shape[0], count, expected):  # the last line, without a line end
        if nbad < bad.shape[0]:
            bad[nbad] = line
        nbad += 1
    return j, nbad, -1
