"""Prepared inputs kept between builds: the BAN references and the sector and commune layers, read
back by the next build given the same files (public data only: nothing personal is ever kept).

An entry is a folder named after its source files (absolute paths) and a key over those files
(size, modification time), the working folder (file names in warnings are relative to it), the
Préau version and the source of the code that prepares them: a changed file or a new Préau
prepares it again, and the new entry replaces the former one of the same files. Entries are
written in a temporary folder renamed at the end (never half an entry); an entry that cannot be
read (removed in part, damaged) is prepared again; a cache that cannot be written only costs time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

FORMAT = 1


def entry_for(kind: str, paths: Iterable[Path], cache_dir: Path, code: Iterable[str], how: str = "") -> tuple[Path, str]:
    """(entry folder, name prefix of every entry of these files) in ``cache_dir``; ``code``: the
    source files of the modules whose output is kept; ``how``: the options of that preparation
    (another ``how`` is another entry, kept beside)."""
    from preau import __version__

    paths = [Path(p) for p in paths]
    h = hashlib.sha256(f"preau-cache {kind} {FORMAT} {__version__} {os.getcwd()}".encode())
    for src in code:
        h.update(Path(src).read_bytes())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    prefix = f"{kind}-{hashlib.sha256(str([how] + [str(p.resolve()) for p in paths]).encode()).hexdigest()[:12]}-"
    return Path(cache_dir) / f"{prefix}{h.hexdigest()[:16]}", prefix


def write_entry(entry: Path, prefix: str, write: Callable[[Path], None]) -> None:
    """``write(folder)`` into a temporary folder, renamed ``entry``; the other entries of ``prefix`` go."""
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        for old in entry.parent.glob(prefix + "*"):
            if old.is_dir() and old != entry:
                shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, entry)
    except Exception:  # noqa: BLE001 — disk full, rights, a column a writer refuses: only time is lost
        shutil.rmtree(tmp, ignore_errors=True)
