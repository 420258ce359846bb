"""File helpers shared by packaging and catalogs: sha256, atomic and idempotent writes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

CHUNK = 1 << 20
FILE_MODE = 0o644  # published files are served as they are


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


HASH_THREADS = 2  # hashlib releases the GIL on large blocks: two files hashed at once


def sha256_many(paths: Iterable[str | Path]) -> dict[Path, str]:
    """:func:`sha256_file` of several files, ``HASH_THREADS`` at a time (national packages: 1.1 GB
    of tables and layers hashed before the copies). Files that cannot be read are left out (the
    caller hashes them itself and gets the error there)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = list(dict.fromkeys(Path(p) for p in paths))

    def one(p: Path) -> str | None:
        try:
            return sha256_file(p)
        except OSError:
            return None

    if len(paths) < 2:
        found = [one(p) for p in paths]
    else:
        with ThreadPoolExecutor(HASH_THREADS) as pool:
            found = list(pool.map(one, paths))
    return {p: d for p, d in zip(paths, found) if d is not None}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps_json(data: Any) -> bytes:
    """Stable JSON bytes (UTF-8, indented, trailing newline) so that equal content gives equal files."""
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds the same bytes (sha256). True if written."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and sha256_file(path) == sha256_bytes(data):
        return False
    _atomic_write(path, data)
    return True


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths are the same file (one inode: a hard link made by :func:`copy_if_changed`)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def copy_if_changed(src: str | Path, dst: str | Path, src_sha256: str | None = None, link: bool = False) -> bool:
    """Copy ``src`` to ``dst`` atomically unless ``dst`` already has the same sha256. True if copied.

    ``link``: make the copy a hard link when both are on one file system (else a real copy), for a
    ``src`` nothing rewrites in place: a package's files, written by :func:`_atomic_write` or by this
    function (a new file renamed over the old one), for the local catalog. The link then keeps the
    bytes it was made with, and costs no copy (national local catalog: 950 MB copied in about 2 s).
    Never for a build's ``data/`` files, which a publisher may edit before packaging them. A ``dst``
    already linked to ``src`` is the same file: unchanged, without hashing it."""
    src, dst = Path(src), Path(dst)
    if link and dst.is_file() and same_file(src, dst):
        return False
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and sha256_file(dst) == (src_sha256 or sha256_file(src)):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        linked = False
        if link:
            os.unlink(tmp)  # its unique name is kept for the link
            try:
                os.link(src, tmp)
                linked = True
            except OSError:  # another file system, or one without hard links
                pass
        if not linked:
            shutil.copyfile(src, tmp)
        if os.stat(tmp).st_mode & 0o777 != FILE_MODE:
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
