"""One pass over a chunk of a CSV export: re-encoding to UTF-8 and the field count of every line.

A chunk of a one-byte export (cp1252, Latin-1) was re-encoded by iconv(3) (national export,
2.5 GB: 32 ms per 16 MB chunk), then scanned twice more by numpy for its line ends and delimiters
(the ragged-row check, 17 ms). Both are one loop compiled by numba, which runs without the GIL in
the ingest threads: 23 ms per chunk for the two together (the re-encoding alone would take 10 ms;
a version reading 8 bytes at a time took 17 ms, not worth its length).

The re-encoding table comes from Python's own codec (each of the 256 bytes decoded), so the
output is byte for byte ``body.decode(encoding).encode("utf-8")``; a byte the codec does not
define stops the loop, and the caller lets Python's codec raise its error (with its position).
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

_local = threading.local()
_NO_OUTPUT = np.empty(0, dtype=np.uint8)


def kernel():
    """The compiled loop (:mod:`preau.ingest._scan_kernel`, imported on first use; Python's import
    lock makes the ingest threads that ask at once wait for one import). Compiled on its first
    call once per machine (kept beside its module, or in numba's user cache directory when that is
    read-only), then loaded from there by later processes, under numba's own lock."""
    from preau.ingest._scan_kernel import scan_chunk

    return scan_chunk


@lru_cache(maxsize=None)
def utf8_table(encoding: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per byte of a one-byte ``encoding`` whose first 128 bytes are ASCII: its UTF-8 bytes (up to 3)
    and their count (0: undefined); ``None`` for any other encoding (UTF-16, Shift JIS…)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lengths = np.zeros(256, dtype=np.uint8)
    for b in range(256):
        try:
            text = bytes([b]).decode(encoding)
        except UnicodeDecodeError:
            if b < 0x80:
                return None
            continue
        except LookupError:
            return None
        u = text.encode("utf-8")
        if len(text) != 1 or len(u) > 3 or (b < 0x80 and u != bytes([b])):
            return None
        lengths[b] = len(u)
        lut[b, :len(u)] = np.frombuffer(u, dtype=np.uint8)
    return lut, lengths


def _bad_lines(nbad: int, bad: np.ndarray) -> list[int]:
    if nbad <= len(bad):
        return bad[:nbad].tolist()
    return bad.tolist() + [-1] * (nbad - len(bad))  # counted, not located (see MAX_LINES)


MAX_LINES = 1000  # ragged lines located per chunk (the report shows a few; the count is exact)


def transcode_checked(body: bytes, encoding: str, prefix: bytes, delimiter: str,
                      n_fields: int) -> tuple[bytes, list[int]] | None:
    """``(prefix + body re-encoded to UTF-8, 0-based indexes in ``body`` of its lines whose field
    count is not ``n_fields``)``; ``None`` when ``body`` holds a byte ``encoding`` does not define
    (the caller lets Python's codec raise its error) or is not a one-byte encoding of
    :func:`utf8_table`. Lines of only a CR are not counted; past :data:`MAX_LINES` ragged lines,
    the rest are listed as -1."""
    table = utf8_table(encoding)
    if table is None:
        return None
    lut, lengths = table
    size = len(prefix) + 3 * len(body)
    out = getattr(_local, "out", None)
    if out is None or len(out) < size:
        out = _local.out = np.empty(max(size, 1), dtype=np.uint8)
    out[:len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    bad = np.empty(MAX_LINES, dtype=np.int64)
    end, nbad, undefined = kernel()(np.frombuffer(body, dtype=np.uint8), True, lut, lengths, out, len(prefix),
                                     ord(delimiter), n_fields - 1, bad)
    if undefined >= 0:
        return None
    return out[:end].tobytes(), _bad_lines(nbad, bad)


def ragged_lines(body: bytes, delimiter: str, n_fields: int) -> list[int]:
    """The ragged-line check of :func:`transcode_checked` alone (``body`` already UTF-8)."""
    bad = np.empty(MAX_LINES, dtype=np.int64)
    lut, lengths = utf8_table("latin-1")  # not read: nothing is re-encoded
    nbad = kernel()(np.frombuffer(body, dtype=np.uint8), False, lut, lengths, _NO_OUTPUT, 0,
                     ord(delimiter), n_fields - 1, bad)[1]
    return _bad_lines(nbad, bad)
