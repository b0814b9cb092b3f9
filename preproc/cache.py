"""The user cache directory and atomic file writes into it.

Location, first match wins: ``$PREPROC_CACHE_DIR``, ``$XDG_CACHE_HOME/preproc``,
``~/.cache/preproc``. Nothing is written at import time; folders are made on first use.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_digest(*paths: str | os.PathLike) -> str:
    """SHA-256 (hex) of the bytes of ``paths``, one after the other, read in 1 MiB chunks."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a sub-folder of it, ``parts``); created if missing."""
    root = os.environ.get("PREPROC_CACHE_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "preproc"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    A crash or an exception leaves ``path`` untouched (old content or absent) and no
    temporary file behind.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    # The temporary is per process; threads of one process writing the same file take turns
    # (sharing it, one thread's rename would publish the other's half-written data).
    with _path_lock(p):
        try:
            yield tmp
            os.replace(tmp, p)
        finally:
            if tmp.exists():
                tmp.unlink()


#: Lock stripes by path (a fixed number, so millions of written files hold no memory); re-entrant,
#: so one thread may nest writes whose paths share a stripe.
_PATH_LOCKS = [threading.RLock() for _ in range(256)]


def _path_lock(p: Path) -> threading.RLock:
    return _PATH_LOCKS[hash(os.path.abspath(p)) % len(_PATH_LOCKS)]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
