"""An append-only JSON-lines journal of finished work items, so a killed job resumes.

One line per finished item: ``{"key": ..., "fingerprint": ..., **record}``. Every
:meth:`Journal.record` is flushed and ``fsync``-ed before it returns, so a crash loses
at most the item in flight. A torn last line (the process died in the middle of a
write) is detected when the journal is opened, logged, ignored and cut off, so the next
record starts on a fresh line. The fingerprint (:func:`settings_fingerprint`) ties a
record to the settings that produced it: an item is *done* only when a record with the
current fingerprint exists, so changing a setting redoes everything.

Used by ``preproc enhance`` (one record per crop, ``meta.jsonl``) and meant for any
other batch command (pages for ``preproc ocr``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def settings_fingerprint(settings: dict[str, Any]) -> str:
    """A short, stable hash (16 hex digits) of the JSON-able ``settings`` (key order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Journal:
    """Records of finished items in ``path``, keyed by a string, tagged with ``fingerprint``.

    Opening loads every whole line already there (records of other fingerprints are kept
    in the file and in :meth:`records`, but do not count as done). Thread-safe: several
    threads may call :meth:`record` at once; each line is written whole.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str, *, fsync: bool = True):
        self.path = Path(path)
        self.fingerprint = str(fingerprint)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self._current: dict[str, dict[str, Any]] = {}
        self._file = None
        self.torn_lines = 0  #: torn or unreadable lines found when opening
        if self.path.is_file():
            self._load()

    # --- reading -------------------------------------------------------------------
    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        if end < len(data):
            self.torn_lines += 1
            logger.warning("%s: ignoring a torn last line (%d bytes) left by an interrupted write",
                           self.path, len(data) - end)
            with open(self.path, "r+b") as f:  # cut it off, so the next record starts on a fresh line
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for n, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                obj = None
            if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
                self.torn_lines += 1
                logger.warning("%s:%d: ignoring a line that is not a journal record", self.path, n)
                continue
            self._remember(obj)
        if self._current:
            logger.info("%s: %d items already done with these settings", self.path, len(self._current))

    def _remember(self, obj: dict[str, Any]) -> None:
        key = obj["key"]
        self._latest.pop(key, None)  # re-insert, so records() keeps the order of the latest writes
        self._latest[key] = obj
        if obj.get("fingerprint") == self.fingerprint:
            self._current[key] = obj

    def is_done(self, key: str) -> bool:
        """Whether a record for ``key`` with this journal's fingerprint exists (ok or failed)."""
        with self._lock:
            return key in self._current

    def get(self, key: str) -> dict[str, Any] | None:
        """The latest record for ``key`` with this journal's fingerprint, or None."""
        with self._lock:
            rec = self._current.get(key)
            return dict(rec) if rec is not None else None

    def records(self, *, current_only: bool = False) -> list[dict[str, Any]]:
        """The latest record per key (of any fingerprint, or of this one with ``current_only``), oldest first."""
        with self._lock:
            src = self._current if current_only else self._latest
            return [dict(r) for r in src.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._current)

    # --- writing -------------------------------------------------------------------
    def record(self, key: str, rec: dict[str, Any]) -> None:
        """Append ``{"key": key, "fingerprint": ..., **rec}`` as one line; flushed and fsync-ed on return."""
        if not isinstance(key, str):
            raise TypeError(f"journal keys are strings; got {type(key).__name__} {key!r}")
        obj = {"key": key, "fingerprint": self.fingerprint, **rec}
        line = (json.dumps(obj, default=str) + "\n").encode()
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open until close()
            self._file.write(line)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self._remember(json.loads(line))

    def close(self) -> None:
        """Close the file (records stay readable; a later :meth:`record` reopens it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
