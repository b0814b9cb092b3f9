"""``preproc enhance IN... -o OUTDIR``: enhance files and folders of crops, resumably.

Every finished item (written or failed) is appended to ``OUTDIR/meta.jsonl`` as it
finishes (:class:`preproc.journal.Journal`: flushed and fsync-ed, a torn last line is
cut on the next run). A re-run of the same command skips every item already recorded
with the same settings fingerprint, whose input file is unchanged and whose output is
still there; ``--force`` redoes everything. Output PNGs are written to a temporary
name and renamed, so no partial PNG is ever visible under its final name.

``--engine ray`` runs the same job on a Ray cluster (:mod:`preproc.ray_data`) and
writes the same files and journal.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import add_model_args, parse_overrides

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pbm"}
JOURNAL_NAME = "meta.jsonl"
#: Testing only: ``POINT:N[:ONCE_FILE]`` kills this process with SIGKILL at the N-th
#: passage of POINT (``start``: before the first item; ``record``: right after the N-th
#: journal record; ``write``: half-way through writing the N-th PNG; ``ray_batch``: at the
#: N-th batch of a Ray actor). With ONCE_FILE, only the process that creates that file
#: dies (a restarted actor does not die again). See tests/test_enhance_resume.py.
CRASH_ENV = "PREPROC_TEST_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here if ``$PREPROC_TEST_CRASH_AT`` names this point and count (tests only)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, rest = spec.partition(":")
    if point != name:
        return
    n, _, once = rest.partition(":")
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] != int(n or 1):
        return
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("enhance", help="enhance image files or folders of crops",
                       description="Enhance crops; one output PNG per input, written atomically, and a "
                                   "meta.jsonl journal appended as items finish (a re-run resumes).")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    add_model_args(p)
    p.add_argument("--scale", type=float, default=None, help="force a scale (default: the gate decides)")
    p.add_argument("--tile", type=int, default=None, help="input tile side in pixels (default: from memory budget)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in input pixels")
    p.add_argument("--seed", type=int, default=None, help="seed for stochastic backends (sd-x4)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per model call (default: 16)")
    p.add_argument("--force", action="store_true", help="redo items already done with these settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("Ray engine")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray Data actor pool (pip install 'preproc[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. auto, or ray://head:10001); default: a local cluster")
    g.add_argument("--workers", type=int, default=1, help="Ray actors, each with its own model (default: 1)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per actor = its torch threads (default: 1)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per actor (default: 0)")
    return p


def collect_inputs(items: list[str]) -> list[tuple[Path, Path]]:
    """``(path, relative output path)`` for every image file named or found in a named folder.

    The output path is the input's path relative to the folder named (or its file name),
    with the suffix ``.png``. Where two inputs would get the same output name
    (``a.jpg`` and ``a.png``), each of them keeps its own suffix: ``a.jpg.png``, ``a.png.png``.
    """
    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((f, f.relative_to(p)))
        else:
            found.append((p, Path(p.name)))
    counts: dict[Path, int] = {}
    for _, rel in found:
        counts[rel.with_suffix(".png")] = counts.get(rel.with_suffix(".png"), 0) + 1
    out = []
    for src, rel in found:
        plain = rel.with_suffix(".png")
        out.append((src, plain if counts[plain] == 1 else rel.with_name(rel.name + ".png")))
    return out


def input_stat(path: Path) -> list[int] | None:
    """``[size in bytes, mtime in ns]`` of an input file, or None when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def write_png(img: Any, path: Path) -> Path:
    """Write a PIL image as PNG to ``path`` atomically (temporary file, fsync, rename)."""
    from ..cache import atomic_target

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        crash_point("write")
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    return path


def ok_record(src: Path, dst: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The journal record of a written item."""
    return {"input": str(src), "output": str(dst), "ok": True, "input_stat": input_stat(src), **meta}


def error_record(src: Path, error: str) -> dict[str, Any]:
    """The journal record of an item that failed with ``error`` (``"TypeName: message"``)."""
    return {"input": str(src), "ok": False, "input_stat": input_stat(src), "error": error}


def describe_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


_TMP_RE = re.compile(r"^\..+\.tmp(\d+)$")


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temporary files left by killed writers (their process is gone); returns how many."""
    n = 0
    for p in out_dir.rglob(".*.tmp*"):
        m = _TMP_RE.match(p.name)
        if not m or not p.is_file():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its writer is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        p.unlink(missing_ok=True)
        n += 1
    if n:
        logger.info("removed %d temporary files left by an interrupted run in %s", n, out_dir)
    return n


@dataclass
class Job:
    """What one ``preproc enhance`` invocation has to do."""

    out_dir: Path
    items: list[tuple[Path, Path]]  #: (input, output path relative to out_dir), all of them
    todo: list[tuple[Path, Path]]  #: those not done yet
    settings: dict[str, Any]
    journal: Any  #: preproc.journal.Journal


def settings_of(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide an output: what the fingerprint covers (not device, engine or batch size)."""
    from .. import __version__

    return {
        "task": args.task,
        "upscaler": args.upscaler,
        "model": args.model,
        "scale": args.scale,
        "overrides": overrides,
        "dtype": args.dtype,
        "seed": args.seed,
        "preproc": __version__,
    }


def is_done(rec: dict[str, Any] | None, src: Path, dst: Path) -> bool:
    """A journal record counts when the input is unchanged and, for a written item, its output ``dst`` exists."""
    if rec is None or rec.get("input_stat") != input_stat(src):
        return False
    return not rec.get("ok") or dst.is_file()


def plan(args: argparse.Namespace, overrides: dict[str, Any]) -> Job:
    """Collect inputs, open the journal and decide what is left to do."""
    from ..errors import ConfigError
    from ..journal import Journal, settings_fingerprint

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {str(out_dir)!r} exists and is not a folder; expected an output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    # an output folder inside an input folder: its PNGs are outputs, not inputs (or every re-run nests deeper)
    out_abs = out_dir.resolve()
    items = [(src, rel) for src, rel in collect_inputs(args.inputs) if out_abs not in src.resolve().parents]
    settings = settings_of(args, overrides)
    journal = Journal(out_dir / JOURNAL_NAME, settings_fingerprint(settings), keep=("ok", "input_stat"))
    remove_stale_temps(out_dir)
    if args.force:
        todo = list(items)
    else:
        todo = [(src, rel) for src, rel in items if not is_done(journal.get(rel.as_posix()), src, out_dir / rel)]
    return Job(out_dir, items, todo, settings, journal)


def compact_journal(job: Job) -> None:
    """Rewrite the journal as one line per key (the latest), atomically, when it holds superseded lines."""
    from ..cache import write_text_atomic

    job.journal.close()
    path = job.out_dir / JOURNAL_NAME
    if not path.is_file():
        return
    import json

    recs = job.journal.records()
    n_lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if n_lines > len(recs):
        write_text_atomic(path, "".join(json.dumps(r, default=str) + "\n" for r in recs))


def run_local(job: Job, enh: Any, args: argparse.Namespace, progress: Any) -> None:
    """Enhance ``job.todo`` in this process with ``Enhancer.iter_enhance``, recording each item as it comes out.

    ``iter_enhance`` hands results back a window (8 batches) at a time, so a crash loses at
    most the window in flight.
    """
    paths = [str(src) for src, _ in job.todo]
    results = enh.iter_enhance(paths, batch_size=args.batch_size, scale=args.scale, seed=args.seed, progress=False)
    for (src, rel), res in zip(job.todo, results, strict=True):
        record_result(job, src, rel, res)
        progress.update(1)


def record_result(job: Job, src: Path, rel: Path, res: Any) -> None:
    """Write one item's PNG (when it succeeded) and its journal record."""
    from ..errors import PreprocError

    key = rel.as_posix()
    if isinstance(res, PreprocError):
        logger.error("%s: %s", src, res)
        job.journal.record(key, error_record(src, describe_error(res)))
    else:
        dst = write_png(res.image, job.out_dir / rel)
        job.journal.record(key, ok_record(src, dst, res.meta))
    crash_point("record")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    overrides = parse_overrides(args.overrides)
    for key in ("tile", "overlap"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.batch_size < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--batch-size has to be at least 1 but is {args.batch_size}")
    from ..enhance import Enhancer

    # built first (models load lazily), so a bad option fails before any file is touched or actor started
    enh = Enhancer(args.task, args.upscaler, model=args.model, device=args.device, dtype=args.dtype,
                   progress=False, **overrides)
    job = plan(args, overrides)
    if not job.items:
        print(f"preproc enhance: no image files found in {', '.join(args.inputs)}", file=sys.stderr)
        return 1
    skipped = len(job.items) - len(job.todo)
    if skipped:
        logger.warning("resuming: %d of %d items already done in %s (--force redoes them)",
                       skipped, len(job.items), job.out_dir / JOURNAL_NAME)
    crash_point("start")
    disable = True if args.no_progress else None
    try:
        with tqdm(total=len(job.todo), desc="enhance", unit="img", disable=disable) as bar:
            if not job.todo:
                pass
            elif args.engine == "ray":
                from ..ray_data import run_enhance_job

                run_enhance_job(job, args, overrides, progress=bar)
            else:
                run_local(job, enh, args, bar)
    finally:
        job.journal.close()
    compact_journal(job)
    keys = {rel.as_posix() for _, rel in job.items}
    recs = [r for r in job.journal.records(current_only=True) if r["key"] in keys]
    failures = sum(1 for r in recs if not r.get("ok"))
    written = sum(1 for r in recs if r.get("ok"))
    tail = f", {skipped} were already done" if skipped else ""
    print(f"preproc enhance: {written} written to {job.out_dir}, {failures} failed{tail}", file=sys.stderr)
    return 1 if failures or len(recs) < len(keys) else 0
