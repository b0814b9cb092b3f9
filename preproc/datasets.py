"""Read manifest datasets: ``manifest.jsonl`` (one record per sample) and ``pairs.jsonl``.

The format (``../shared/DESIGN.md``): a dataset is a folder holding ``manifest.jsonl``,
one JSON object per line with at least ``id`` (unique string) and ``image`` (a path
relative to the folder), plus task fields (``text`` and ``case_sensitive`` for OCR,
``identity`` for faces, an optional ``box`` ``[x0, y0, x1, y1]``). Face sets add
``pairs.jsonl``: ``{"a": id, "b": id, "same": bool, "set": str}``.

Shared by every comparison task (:mod:`preproc.compare`). Nothing here decodes images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError

MANIFEST = "manifest.jsonl"
PAIRS = "pairs.jsonl"


@dataclass(frozen=True)
class Record:
    """One manifest record: ``id``, the absolute ``image`` path and every field as read."""

    id: str
    image: Path
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def get(self, key: str, default: Any = None) -> Any:
        """A manifest field of this record (``text``, ``identity``, ``case_sensitive``...)."""
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Pair:
    """A same/different pair of record ids (faces)."""

    a: str
    b: str
    same: bool
    set: str = ""


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DatasetError(f"{str(path)!r} not found; expected a JSON-lines file in the dataset folder")
    rows: list[tuple[int, dict[str, Any]]] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:  # line by line, so the error names the line; a UTF-8 BOM (Windows editors) is allowed
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
            except UnicodeDecodeError as e:
                raise DatasetError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start}); "
                                   "expected JSON lines encoded as UTF-8") from e
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{lineno}: not valid JSON ({e.msg}); expected one JSON object per line") from e
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{lineno}: got a JSON {type(obj).__name__}; expected an object")
            rows.append((lineno, obj))
    return rows


def dataset_dir(path: str | os.PathLike) -> Path:
    """``path`` as a dataset folder (one holding ``manifest.jsonl``), or a :class:`DatasetError`."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not p.is_dir():
        raise DatasetError(f"dataset {str(p)!r} is not a folder; expected a folder holding {MANIFEST}")
    if not (p / MANIFEST).is_file():
        raise DatasetError(f"dataset folder {str(p)!r} has no {MANIFEST}")
    return p


def read_manifest(path: str | os.PathLike, *, require: tuple[str, ...] = ()) -> list[Record]:
    """The records of the dataset at ``path`` in manifest order.

    ``require``: fields every record must have (e.g. ``("text",)``). Ids must be unique.
    Image paths are resolved against the folder; their existence is checked when read.
    """
    root = dataset_dir(path)
    out: list[Record] = []
    seen: set[str] = set()
    for lineno, obj in _read_jsonl(root / MANIFEST):
        where = f"{root / MANIFEST}:{lineno}"
        for key in ("id", "image", *require):
            if key not in obj:
                raise DatasetError(f"{where}: record has no {key!r} field; has {sorted(obj)}")
        rid = str(obj["id"])
        if rid in seen:
            raise DatasetError(f"{where}: duplicate id {rid!r}; ids must be unique")
        seen.add(rid)
        out.append(Record(rid, (root / str(obj["image"])).resolve(), obj))
    return out


def read_pairs(path: str | os.PathLike, records: list[Record] | None = None) -> list[Pair]:
    """The pairs of ``pairs.jsonl`` in the dataset at ``path``.

    With ``records``, every pair must name ids present in them.
    """
    root = dataset_dir(path)
    known = {r.id for r in records} if records is not None else None
    out: list[Pair] = []
    for lineno, obj in _read_jsonl(root / PAIRS):
        where = f"{root / PAIRS}:{lineno}"
        for key in ("a", "b", "same"):
            if key not in obj:
                raise DatasetError(f"{where}: pair has no {key!r} field; expected a, b, same (and set)")
        same = obj["same"]
        if same not in (True, False):  # true/false or 1/0; bool("false") would be True
            raise DatasetError(f"{where}: pair field 'same' is {same!r}; expected true or false")
        pair = Pair(str(obj["a"]), str(obj["b"]), bool(same), str(obj.get("set", "")))
        if known is not None:
            missing = [x for x in (pair.a, pair.b) if x not in known]
            if missing:
                raise DatasetError(f"{where}: pair names id(s) {missing} not in the manifest")
        out.append(pair)
    return out
