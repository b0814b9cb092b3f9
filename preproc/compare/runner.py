"""The comparison loop: dataset -> degrade -> candidates -> recognise -> combine -> metrics -> report."""

from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..datasets import MANIFEST, Record, dataset_dir
from ..errors import ConfigError, DatasetError, ModelUnavailableError, RecognizerUnavailableError
from ..io import save_image_atomic
from .cache import ResultCache, fingerprint
from .html_report import DEFAULT_REPORT_IMAGES, report_image_path, save_report_image
from .report import Report
from .task import CompareTask, Recognition, create_task
from .variants import (
    CandidateContext,
    Variant,
    candidate_fn,
    candidate_unavailable,
    describe_candidates,
    parse_variants,
    weights_identity,
)

logger = logging.getLogger(__name__)

#: Errors that mean the set-up is broken (no recognizer): they stop the run instead of
#: being recorded once per sample.
FATAL = (RecognizerUnavailableError, KeyboardInterrupt)


def _whole(v: Any) -> bool:
    """An integer value (``10`` or ``10.0``; not ``True``, ``10.5``, ``nan`` or ``"10"``)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and float(v) == int(v)


def _parse_sizes(sizes: Sequence[int] | None, task: CompareTask) -> list[int]:
    items = sizes if sizes is not None else task.default_sizes
    if isinstance(items, Iterable) and not isinstance(items, (str, bytes)):
        items = list(items)  # a generator is read once
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable) or not all(_whole(s) for s in items):
        raise ConfigError(f"sizes have to be a list of positive integers; got {items!r}")
    out = [int(s) for s in items]
    if not out or any(s < 1 for s in out):
        raise ConfigError(f"sizes have to be positive integers; got {list(sizes or [])}")
    return sorted(set(out))


def _parse_jpeg(jpeg: int | None | Sequence[int | None]) -> list[int | None]:
    items = list(jpeg) if isinstance(jpeg, (list, tuple)) else [jpeg]
    out: list[int | None] = []
    for q in items:
        if q is not None and not _whole(q):
            raise ConfigError(f"JPEG quality has to be an integer in [1, 100] (0 or None: lossless) but is {q!r}")
        q = None if q in (None, 0) else int(q)
        if q is not None and not 1 <= q <= 100:
            raise ConfigError(f"JPEG quality has to be in [1, 100] (0 or None: lossless) but is {q}")
        if q not in out:
            out.append(q)
    return out


def compare(
    dataset: str | os.PathLike,
    task: str | CompareTask = "ocr",
    variants: Sequence[str] = ("none", "bicubic"),
    *,
    sizes: Sequence[int] | None = None,
    jpeg: int | None | Sequence[int | None] = None,
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
    overrides: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
    sheet_samples: int = 4,
    report_images: int | None = DEFAULT_REPORT_IMAGES,
    resume: bool = True,
    progress: bool | None = None,
) -> Report:
    """Measure recognition before and after enhancement on a manifest dataset.

    ``dataset``: a folder with ``manifest.jsonl``. ``task``: a registered task name
    (``"ocr"``, ``"face"``) or a :class:`CompareTask`. ``variants``: see
    :mod:`preproc.compare.variants` (``none``, ``bicubic``, ``realesrgan``,
    ``realesrgan+guard``, ``cleanup``, ``select``...). ``sizes``: target sizes in task
    units (OCR: line height in px). ``jpeg``: a quality, a list of qualities, None or 0
    for lossless. ``limit``: about this many samples, spread evenly over the dataset.
    ``out``: folder for ``report.json``, ``report.md``, plots, the contact sheet and the
    result cache (a re-run with the same settings resumes from it). ``overrides``:
    :class:`~preproc.Preset` fields for the enhancing variants. ``resume=False`` discards
    the cache of an earlier run in ``out`` (after a code or model change the cache cannot see).
    ``report_images``: how many records keep their images (the crop and every candidate's
    output, small) in ``out/report_files/`` for ``report.html``'s browser (None: all, 0: none);
    every record's readings are on the page either way.

    A sample whose degradation, enhancement or recognition raises is recorded in the
    row's ``failures`` and skipped. Variants whose backend has no weights here are
    dropped and listed in ``report.unavailable``.
    """
    t_start = time.perf_counter()
    if isinstance(variants, Iterable) and not isinstance(variants, (str, bytes)):
        variants = list(variants)  # a generator is read once
    _check_arguments(dataset, variants, limit, out, overrides, task_options, sheet_samples)
    root = dataset_dir(dataset)
    tk = create_task(task, **(task_options or {}))
    size_list = _parse_sizes(sizes, tk)
    jpegs = _parse_jpeg(jpeg)
    parsed = parse_variants(list(variants), tk.name, tk.modes, tk.default_candidates, tk.mode_candidates)
    parsed, unavailable = _drop_unavailable(parsed)
    if not parsed:
        raise ConfigError(f"none of the variants can run here: {unavailable}")
    candidates = list(dict.fromkeys(c for v in parsed for c in v.candidates))
    fns = {c: candidate_fn(c, tk.name) for c in candidates}
    records = tk.load(root, limit)
    if not records:
        raise DatasetError(f"dataset {str(root)!r} has no records to compare (an empty {MANIFEST}?)")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out {str(out_dir)!r} exists and is not a folder; expected a folder for the report")
    settings = {
        "task": tk.name,
        "task_options": tk.options(),
        "dataset": str(root.resolve()),
        "overrides": overrides or {},
        "dtype": str(dtype),
    }
    resolved = describe_candidates(candidates, tk.preset, device)
    if resolved:  # part of the fingerprint: a new default backend must not reuse old results
        settings["resolved"] = resolved
    weights = weights_identity(candidates, tk.preset, device, overrides)
    if weights:  # ... nor new weights of the same backend
        settings["weights"] = weights
    if out_dir is not None and not resume:
        for stale in (out_dir / "cache.jsonl", out_dir / "samples", out_dir / "report_files"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    cache = ResultCache(out_dir / "cache.jsonl" if out_dir else None, fingerprint(settings))
    combine = tk.combine_options()
    if combine:  # recorded, not fingerprinted: recognitions do not depend on how they are combined
        settings["combine_options"] = combine
    ctx = CandidateContext(tk.preset, device=device, dtype=dtype, overrides=dict(overrides or {}))
    sheet_ids = {r.id for r in records[: max(0, sheet_samples)]}
    image_ids = {r.id for r in (records if report_images is None else records[: max(0, report_images)])}
    if out_dir is None:
        image_ids = set()
    work = [(r, s, q) for r in records for s in size_list for q in jpegs]
    logger.info("compare %s: %d samples x %d sizes x %d jpeg settings, candidates %s",
                tk.name, len(records), len(size_list), len(jpegs), candidates)
    disable = None if progress is None else not progress
    try:
        for rec, size, q in tqdm(work, desc=f"compare {tk.name}", unit="crop", disable=disable):
            sheet_dir = out_dir if rec.id in sheet_ids else None
            files_dir = out_dir if rec.id in image_ids else None
            todo = [c for c in candidates if _needs_run(cache, (rec.id, size, q, c), sheet_dir, files_dir)]
            if not todo and (files_dir is None or report_image_path(files_dir, rec.id, size, q, "none").is_file()):
                continue
            _run_one(tk, rec, size, q, todo, fns, ctx, cache, sheet_dir, files_dir)
    finally:
        cache.close()
        tk.close()
    rows = [_row(tk, v, size, q, records, cache) for q in jpegs for size in size_list for v in parsed]
    report = Report(
        task=tk.name,
        rows=rows,
        metrics=list(tk.metrics),
        higher_is_better=dict(tk.higher_is_better),
        size_label=tk.size_label,
        variants=[v.name for v in parsed],
        unavailable=unavailable,
        settings={**settings, "variants": list(variants), "sizes": size_list, "jpeg": jpegs, "limit": limit,
                  "samples": len(records), "seconds_total": round(time.perf_counter() - t_start, 1)},
        out_dir=out_dir,
    )
    if out_dir is not None:
        report.write(out_dir, tk, parsed, [r for r in records if r.id in sheet_ids], cache,
                     records=records, image_ids=image_ids)
    return report


def _check_arguments(dataset, variants, limit, out, overrides, task_options, sheet_samples) -> None:
    """Argument types, checked before anything runs (each a ConfigError naming the value)."""
    if not isinstance(dataset, (str, os.PathLike)):
        raise ConfigError(f"dataset has to be a folder path but is {dataset!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise ConfigError(f"out has to be a folder path or None but is {out!r}")
    if isinstance(variants, (str, bytes)) or not isinstance(variants, Iterable) or not all(
        isinstance(v, str) for v in variants
    ):
        raise ConfigError(f"variants has to be a list of names such as ['none', 'bicubic'] but is {variants!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral)):
        raise ConfigError(f"limit has to be an integer >= 1 or None but is {limit!r}")
    for name, v in (("overrides", overrides), ("task_options", task_options)):
        if v is not None and not isinstance(v, Mapping):
            raise ConfigError(f"{name} has to be a dict or None but is {v!r}")
    if isinstance(sheet_samples, bool) or not isinstance(sheet_samples, numbers.Integral):
        raise ConfigError(f"sheet_samples has to be an integer but is {sheet_samples!r}")


def _needs_run(cache: ResultCache, key: tuple, sheet_dir: Path | None, files_dir: Path | None = None) -> bool:
    """Not cached yet, or a successful sample whose contact-sheet or report image file is missing."""
    entry = cache.get(key)
    if entry is None:
        return True
    if entry["error"] is not None:
        return False
    if sheet_dir is not None and not sample_image_path(sheet_dir, *key).is_file():
        return True
    return files_dir is not None and key[3] != "none" and not report_image_path(files_dir, *key).is_file()


def _drop_unavailable(variants: list[Variant]) -> tuple[list[Variant], dict[str, str]]:
    """Variants minus the candidates that cannot run here; multi-candidate ones keep the rest."""
    why: dict[str, str] = {}
    for v in variants:
        for c in v.candidates:
            if c not in why:
                reason = candidate_unavailable(c)
                if reason:
                    why[c] = reason
    if not why:
        return variants, {}
    kept: list[Variant] = []
    for v in variants:
        if v.mode in ("single", "guard"):
            if why.keys() & set(v.candidates):
                logger.warning("variant %s skipped: %s", v.name, "; ".join(why[c] for c in v.candidates if c in why))
                continue
            kept.append(v)
        else:
            left = tuple(c for c in v.candidates if c not in why)
            if len(left) < 2:
                logger.warning("variant %s skipped: fewer than two candidates can run", v.name)
                continue
            kept.append(Variant(v.name, v.mode, left))
    return kept, why


def _describe_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _run_one(
    tk: CompareTask,
    rec: Record,
    size: int,
    q: int | None,
    todo: list[str],
    fns: dict[str, Any],
    ctx: CandidateContext,
    cache: ResultCache,
    sheet_dir: Path | None,
    files_dir: Path | None = None,
) -> None:
    """Compute and recognise the missing candidates of one (sample, size, jpeg); failures go into the cache.

    With ``files_dir`` the crop and each candidate's image are also kept for ``report.html``.
    """
    try:
        crop = tk.degrade(rec, size, q)
    except FATAL:
        raise
    except Exception as e:  # noqa: BLE001 - a bad sample must not stop the run
        logger.warning("%s at %s: degrading failed: %s", rec.id, size, _describe_error(e))
        for c in todo:
            cache.put((rec.id, size, q, c), None, f"degrade: {_describe_error(e)}", 0.0)
        return
    if files_dir is not None:
        save_report_image(files_dir, tk.name, rec.id, size, q, "none", crop)
    for c in todo:
        t0 = time.perf_counter()
        try:
            img = fns[c](crop, ctx)
            result = tk.recognize(img, rec)
        except FATAL:
            raise
        except ModelUnavailableError:
            raise
        except Exception as e:  # noqa: BLE001
            logger.warning("%s at %s, %s: %s", rec.id, size, c, _describe_error(e))
            cache.put((rec.id, size, q, c), None, _describe_error(e), time.perf_counter() - t0)
            continue
        if sheet_dir is not None:  # before the cache line, so a kill between the two redoes this one
            save_image_atomic(img, sample_image_path(sheet_dir, rec.id, size, q, c))
        if files_dir is not None and c != "none":
            save_report_image(files_dir, tk.name, rec.id, size, q, c, img)
        cache.put((rec.id, size, q, c), result, None, time.perf_counter() - t0)


def sample_image_path(out_dir: Path, sid: str, size: int, q: int | None, cand: str) -> Path:
    """Where the contact-sheet image of one candidate is kept."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sid)
    return out_dir / "samples" / safe / f"{size}_{'png' if q is None else f'q{q}'}_{cand}.png"


def combine_sample(
    tk: CompareTask, v: Variant, sid: str, size: int, q: int | None, cache: ResultCache
) -> tuple[int, Recognition, float] | str:
    """``(chosen candidate index, recognition, seconds)`` of variant ``v`` on one sample, or the error text."""
    recs: list[Recognition] = []
    seconds: list[float] = []
    for c in v.candidates:
        entry = cache.get((sid, size, q, c))
        if entry is None:
            return f"{c}: not computed"
        if entry["error"] is not None or entry["rec"] is None:
            return f"{c}: {entry['error']}"
        recs.append(entry["rec"])
        seconds.append(float(entry["seconds"] or 0.0))
    if v.mode == "single":
        return 0, recs[0], seconds[0]
    idx, combined = tk.combine_variant(v, recs)
    used = combined.get("candidates_used") if isinstance(combined, dict) else None
    # a combination that stopped early (OCR's vote) costs only the candidates it read
    return idx, combined, sum(seconds[i] for i in used) if used is not None else sum(seconds)


def _row(tk: CompareTask, v: Variant, size: int, q: int | None, records: list[Record], cache: ResultCache) -> dict[str, Any]:
    ok_records: list[Record] = []
    ok_recs: list[Recognition] = []
    seconds: list[float] = []
    errors: Counter[str] = Counter()
    chosen: Counter[str] = Counter()
    for r in records:
        res = combine_sample(tk, v, r.id, size, q, cache)
        if isinstance(res, str):
            errors[res.split("\n")[0][:200]] += 1
            continue
        idx, combined, secs = res
        ok_records.append(r)
        ok_recs.append(combined)
        seconds.append(secs)
        if v.mode != "single":
            early = isinstance(combined, dict) and combined.get("candidates_used") is not None
            chosen[v.candidates[idx] if idx >= 0 else f"{v.mode}, early" if early else v.mode] += 1
    metrics: dict[str, Any] = dict.fromkeys(tk.metrics)
    n = len(ok_records)
    if ok_records:
        metrics.update(tk.evaluate(ok_records, ok_recs))
        n = int(metrics.pop("n", n))
    row: dict[str, Any] = {
        "variant": v.name,
        "mode": v.mode,
        "candidates": list(v.candidates),
        "size": size,
        "jpeg": q,
        "n": n,
        **{m: metrics.get(m) for m in tk.metrics},
        **{k: val for k, val in metrics.items() if k not in tk.metrics},
        "seconds_per_item": (sum(seconds) / len(seconds)) if seconds else None,
        "failures": sum(errors.values()),
    }
    if errors:
        row["errors"] = dict(errors.most_common(5))
    if chosen:
        row["chosen"] = dict(chosen.most_common())
    return row
