"""Per-sample result cache: an append-only JSON-lines journal, so an interrupted run resumes.

One line per (sample id, size, jpeg, candidate): the recognition or the error, and the
seconds it took. Lines carry a fingerprint of the run's settings; lines of another
fingerprint, and a torn last line left by a crash, are ignored when read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CacheKey = tuple[str, int, int | None, str]

#: The keys of a run's settings that its cache fingerprint covers (``preproc.compare`` hashes
#: exactly these; ``resolved`` and ``weights`` only when the run had them).
FINGERPRINT_KEYS = ("task", "task_options", "dataset", "overrides", "dtype", "resolved", "weights")


def fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of JSON-able ``settings``."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _last_line_torn(path: Path) -> bool:
    """Whether ``path`` exists and does not end with a newline (a write was interrupted)."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


class ResultCache:
    """Entries ``key -> {"rec": dict | None, "error": str | None, "seconds": float}`` backed by ``path``."""

    def __init__(self, path: str | os.PathLike | None, fp: str):
        self.path = Path(path) if path is not None else None
        self.fp = fp
        self.entries: dict[CacheKey, dict[str, Any]] = {}
        self._file = None
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by an interrupted write
                if obj.get("fp") != self.fp:
                    continue
                sid, size, jpeg, cand = obj["key"]
                self.entries[(sid, int(size), jpeg, cand)] = {k: obj.get(k) for k in ("rec", "error", "seconds")}
        if self.entries:
            logger.info("resuming: %d cached results in %s", len(self.entries), self.path)

    @classmethod
    def of_run(cls, out_dir: str | os.PathLike) -> tuple[ResultCache, dict[str, Any]]:
        """The cache of a finished ``preproc compare --out out_dir`` run, read-only use, and the
        run's settings (``report.json``): only the lines of that run's fingerprint count."""
        from ..errors import DatasetError

        out = Path(out_dir)
        report = out / "report.json"
        if not report.is_file():
            raise DatasetError(f"{str(report)!r} not found; expected the folder of a finished `preproc compare` run")
        settings = json.loads(report.read_text(encoding="utf-8"))["settings"]
        fp = fingerprint({k: settings[k] for k in FINGERPRINT_KEYS if k in settings})
        return cls(out / "cache.jsonl", fp), settings

    def __contains__(self, key: CacheKey) -> bool:
        return key in self.entries

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: CacheKey, rec: dict[str, Any] | None, error: str | None, seconds: float) -> None:
        """Store one result and append it to the journal (flushed, so a crash loses at most this line)."""
        entry = {"rec": rec, "error": error, "seconds": seconds}
        self.entries[key] = entry
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = _last_line_torn(self.path)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run, closed in close()
            if torn:  # end a line torn by an interrupted write, so the next one stays whole
                self._file.write("\n")
        self._file.write(json.dumps({"fp": self.fp, "key": list(key), **entry}, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
