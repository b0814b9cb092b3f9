"""Ray Data: the same :class:`~preproc.Enhancer` inside a Ray actor pool, for jobs that outgrow one machine.

Needs the ``ray`` extra (``pip install 'preproc[ray]'``)::

    import ray
    from preproc.ray_data import EnhanceBatch, enhance_dataset

    ds = ray.data.read_images("s3://bucket/crops/", mode="RGB")        # an "image" column
    out = ds.map_batches(EnhanceBatch, fn_constructor_kwargs={"task": "ocr"},
                         batch_size=16, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)
    # or, the same in one call, from a dataset or a folder:
    out = enhance_dataset("crops/", task="ocr", workers=4, gpus_per_worker=1)
    out.write_parquet("enhanced/")   # ONE pass: each write of a lazy dataset runs the models again

Every output row has ``image`` (the enhanced ``uint8`` array, ``(H, W)`` for the OCR
preset's mode L, ``(H, W, 3)`` for RGB; a zero-size array of the same rank when the row
failed: a column that mixes arrays and None cannot become an Arrow tensor column), ``meta`` (the :class:`~preproc.EnhanceResult` meta as JSON, ``""`` on failure)
and ``error`` (``""``, or ``"ErrorType: message"``): a bad crop is a row with an
error, never a failed job. Other input columns (a ``path``, an id) pass through.

``preproc enhance --engine ray`` (:func:`run_enhance_job`) builds a dataset of paths,
lets each actor read its crops and write its PNGs (so a cluster needs the inputs and
the output folder on storage every node sees at the same path), and records each row
in ``meta.jsonl`` on the driver as results stream in.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    import ray.data

logger = logging.getLogger(__name__)

#: Environment of every actor: OpenMP threads that sleep instead of spinning when idle
#: (../shared/FACTS.md), one OpenMP thread per Tesseract (tesseract #898, #3109), offline hub.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pbm")


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        from .errors import ConfigError

        raise ConfigError("the Ray engine needs Ray: pip install 'preproc[ray]'") from e
    return ray


def decode_image_bytes(data: bytes, name: str = "<bytes>", *, max_pixels: int | None = None) -> Any:
    """Decode an encoded image file (``bytes``) into a PIL image, with the typed errors of :mod:`preproc.io`."""
    from PIL import Image

    from .errors import CorruptImageError, ImageTooLargeError, NotAnImageError
    from .io import DEFAULT_MAX_PIXELS

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name!r}: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise NotAnImageError(f"{name!r} is not an image PIL can decode ({len(data)} bytes); expected PNG, JPEG, "
                              "TIFF, BMP, WebP, GIF or another PIL format") from e
    except OSError as e:
        raise CorruptImageError(f"{name!r} could not be opened: {e}") from e
    w, h = img.size
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(f"{name!r} has {w}x{h} = {w * h:,} pixels, more than the limit of {limit:,}")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImageError(f"{name!r} is truncated or corrupt: {e}") from e
    return img


def _set_threads(num_threads: int | None) -> int:
    """torch threads = the CPUs Ray gave this actor (or ``num_threads``); returns the number set."""
    import torch

    n = num_threads
    if n is None:
        try:
            import ray

            n = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1) or 1)
        except Exception:  # noqa: BLE001 - outside a Ray worker
            n = torch.get_num_threads()
    n = max(1, int(n))
    torch.set_num_threads(n)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # for a Tesseract hook run in this actor
    return n


class EnhanceBatch:
    """A callable class for ``Dataset.map_batches``: one :class:`~preproc.Enhancer` per actor.

    Each batch (``batch_format="numpy"``) goes through :meth:`Enhancer.enhance_many`. The
    crops are taken from, first found: ``image_column`` (a ragged batch arrives as an
    ``(N,)`` object array of ``HWC`` arrays, a uniform one as an ``(N, H, W[, C])`` array),
    ``bytes`` (encoded files, e.g. from ``read_binary_files(include_paths=True)``; decoded
    here, so a corrupt file becomes a row with an error) or ``path`` (files this worker
    reads itself). ``out_dir``: write each result as a PNG at ``out_dir / row[output_column]``
    (atomically) and return its path in ``output`` instead of the pixels.
    Other keywords are :class:`~preproc.Enhancer` / preset options.
    """

    def __init__(
        self,
        task: str = "ocr",
        upscaler: str | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        image_column: str = "image",
        batch_size: int = 16,
        scale: float | None = None,
        seed: int | None = None,
        out_dir: str | None = None,
        output_column: str = "output",
        num_threads: int | None = None,
        **overrides: Any,
    ):
        self.threads = _set_threads(num_threads)
        from .enhance import Enhancer

        self.enhancer = Enhancer(task, upscaler, model=model, device=device, dtype=dtype, progress=False, **overrides)
        self.image_column = image_column
        self.batch_size = batch_size
        self.scale = scale
        self.seed = seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.output_column = output_column
        logger.info("EnhanceBatch actor pid %d: %s, %d torch threads", os.getpid(), task, self.threads)

    def _crops(self, batch: dict[str, np.ndarray]) -> tuple[list[Any], int]:
        """The crops of ``batch`` (a decoding error takes the crop's place) and the row count."""
        if self.image_column in batch:
            col = batch[self.image_column]
            return list(col), len(col)
        if "bytes" in batch:
            names = batch.get("path", [f"row {i}" for i in range(len(batch["bytes"]))])
            crops: list[Any] = []
            for data, name in zip(batch["bytes"], names, strict=True):
                try:
                    crops.append(decode_image_bytes(bytes(data), str(name), max_pixels=self.enhancer.max_pixels))
                except Exception as e:  # noqa: BLE001 - recorded in the row
                    crops.append(_as_preproc_error(e))
            return crops, len(crops)
        if "path" in batch:
            return [str(p) for p in batch["path"]], len(batch["path"])
        from .errors import ConfigError

        raise ConfigError(f"a batch needs a {self.image_column!r}, 'bytes' or 'path' column; got {sorted(batch)}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .commands.enhance import crash_point, describe_error, write_png
        from .errors import PreprocError

        crash_point("ray_batch")
        crops, n = self._crops(batch)
        todo = [i for i, c in enumerate(crops) if not isinstance(c, PreprocError)]
        slots: list[Any] = list(crops)
        results = self.enhancer.enhance_many([crops[i] for i in todo], batch_size=self.batch_size,
                                             scale=self.scale, seed=self.seed)
        for i, res in zip(todo, results, strict=True):
            slots[i] = res
        out = {k: v for k, v in batch.items() if k not in (self.image_column, "bytes")}
        metas = np.empty(n, dtype=object)
        errors = np.empty(n, dtype=object)
        images = np.empty(n, dtype=object)
        written = np.empty(n, dtype=object)
        empty = np.zeros((0, 0) if self.enhancer.preset.output_mode == "L" else (0, 0, 3), np.uint8)
        for i, res in enumerate(slots):
            images[i], written[i] = empty, None
            if isinstance(res, PreprocError):
                metas[i], errors[i] = "", describe_error(res)
                continue
            if self.out_dir is not None:
                try:
                    written[i] = str(write_png(res.image, self.out_dir / str(batch[self.output_column][i])))
                except OSError as e:  # a full or read-only disk: this row failed, not the job
                    metas[i], errors[i] = "", describe_error(e)
                    continue
            else:
                images[i] = np.asarray(res.image)
            metas[i], errors[i] = json.dumps(res.meta, default=str), ""
        out["meta"], out["error"] = metas, errors
        if self.out_dir is not None:
            out["written"] = written
        else:
            out["image"] = images
        return out


def _as_preproc_error(e: Exception) -> Any:
    from .errors import CorruptImageError, PreprocError

    if isinstance(e, PreprocError):
        return e
    return CorruptImageError(f"could not decode: {type(e).__name__}: {e}")


def enhance_dataset(
    source: ray.data.Dataset | str | os.PathLike,
    task: str = "ocr",
    upscaler: str | None = None,
    *,
    workers: int = 1,
    batch_size: int = 16,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    **kwargs: Any,
) -> ray.data.Dataset:
    """The enhanced dataset (lazy) of a Ray dataset or of an image folder (read as bytes, decoded per row).

    ``workers`` actors, each with ``cpus_per_worker`` CPUs (its torch threads) and
    ``gpus_per_worker`` GPUs, each holding one model; ``batch_size`` rows per call.
    ``kwargs`` go to :class:`EnhanceBatch`. Consume the result once (``write_parquet``,
    ``iter_batches``): every pass over a lazy dataset runs the models again.
    """
    ray = _require_ray()
    if isinstance(source, (str, os.PathLike)):
        source = ray.data.read_binary_files(str(source), include_paths=True,
                                            file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES])
    env = dict(WORKER_ENV)
    from .commands.enhance import CRASH_ENV

    if os.environ.get(CRASH_ENV):  # tests: the crash point reaches the actors
        env[CRASH_ENV] = os.environ[CRASH_ENV]
    return source.map_batches(
        EnhanceBatch,
        fn_constructor_kwargs={"task": task, "upscaler": upscaler, "batch_size": batch_size, **kwargs},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        runtime_env={"env_vars": env},
        # Ray Data's actor pools restart a dead actor (max_restarts=-1) and retry its batch
        # (max_task_retries=-1) by default; passing them here is deprecated in 2.60.
    )


def _unwrap_errors(batches):
    """Re-raise a PreprocError that failed a Ray task (a backend that cannot load) as that error.

    Ray Data hands the driver a ``UserCodeException`` carrying only the remote traceback's
    text, so the error's type and message are read back from it.
    """
    import re

    from . import errors

    try:
        yield from batches
    except Exception as e:
        m = re.search(r"preproc\.errors\.(\w+): (.*)", str(e))
        cls = getattr(errors, m.group(1), None) if m else None
        if isinstance(cls, type) and issubclass(cls, errors.PreprocError):
            raise cls(m.group(2)) from e
        raise


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``HOST:PORT`` (or ``ray://HOST:PORT``) Ray address.

    ``ray.init(address=...)`` waits minutes on an address where no cluster runs; a TCP connect
    with ``timeout`` seconds tells at once. ``"auto"`` and other forms are left to Ray.
    """
    import socket

    from .errors import ConfigError

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(
            f"no Ray cluster answers at --address {address!r} ({e}); start one there with "
            "`ray start --head --port PORT`, or leave --address out to run a local cluster"
        ) from None


class _RaySession:
    """Connect to ``address``, reuse a running session, or start (and later stop) a local cluster."""

    def __init__(self, address: str | None):
        self.address = address
        self.started = False

    def __enter__(self):
        ray = _require_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False}
            if self.address:
                check_address(self.address)
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self.started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        if logging.getLogger().getEffectiveLevel() > logging.INFO:  # Ray Data's INFO lines unless -v
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()


def run_enhance_job(job: Any, args: argparse.Namespace, overrides: dict[str, Any], progress: Any) -> None:
    """``preproc enhance --engine ray``: ``job.todo`` through an actor pool; PNGs written by the actors,
    ``meta.jsonl`` records written here as each batch's rows stream back (one pass over the dataset)."""
    from .commands.enhance import crash_point, error_record, ok_record

    srcs = {rel.as_posix(): (src, rel) for src, rel in job.todo}
    items = [{"path": str(src.resolve()), "output": key} for key, (src, _) in srcs.items()]
    with _RaySession(args.address) as ray:
        workers = max(1, args.workers)
        # one block per batch (up to 4,096 blocks): an actor returns its rows block by block, so
        # small blocks stream results (and journal lines) back as each batch finishes
        blocks = max(1, min(-(-len(items) // max(1, args.batch_size)), 4096))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        out = enhance_dataset(
            ds, args.task, args.upscaler, workers=workers, batch_size=args.batch_size,
            cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
            model=args.model, device=args.device, dtype=args.dtype, scale=args.scale, seed=args.seed,
            out_dir=str(job.out_dir.resolve()), **overrides,
        )
        for batch in _unwrap_errors(out.iter_batches(batch_size=None, batch_format="numpy")):
            recs = []
            for key, meta, error in zip(batch["output"], batch["meta"], batch["error"], strict=True):
                src, rel = srcs[str(key)]
                if error:
                    logger.error("%s: %s", src, error)
                    recs.append((rel.as_posix(), error_record(src, str(error))))
                else:
                    recs.append((rel.as_posix(), ok_record(src, job.out_dir / rel, json.loads(meta))))
            job.journal.record_many(recs)  # one fsync per batch
            crash_point("record")
            progress.update(len(recs))
