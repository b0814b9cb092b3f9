"""Before/after comparisons: does enhancement make recognition better, on your data?

``preproc.compare(dataset, task="ocr", variants=[...], sizes=[...], jpeg=75, out=DIR)``
and ``preproc compare --task ocr --dataset DIR --variants none,bicubic,...``.

How a run works
---------------
For every record of the dataset (:mod:`preproc.datasets`), size and JPEG setting:

1. the **task** degrades the record to that size (``task.degrade``; area downscale, then
   optional JPEG), giving the low-resolution *crop*;
2. every **candidate** the variants need (:mod:`preproc.compare.variants`: ``none``,
   any upscaler name, ``cleanup``...) turns the crop into an image, which the task
   recognises (``task.recognize`` -> a JSON-able dict with a ``"confidence"``). Each
   candidate runs once per crop, is timed, and its result is appended to
   ``OUT/cache.jsonl``, so an interrupted run resumes where it stopped; an exception
   is recorded there as a failure of that sample and the run goes on;
3. every **variant** (a report row) takes its candidates' recognitions: ``single`` uses
   its one candidate, ``guard`` (``NAME+guard``) and ``select`` keep the most confident
   (``task.combine``), a task may add modes (faces: ``fuse``);
4. per variant, size and JPEG setting the task aggregates its metrics over the samples
   that did not fail (``task.evaluate``), and the report (:mod:`.report`) writes
   ``report.json`` (``rows``: variant, size, jpeg, n, <metrics>, seconds_per_item,
   failures, ...), ``report.md``, ``plot_<metric>[_q<jpeg>].png``,
   ``contact_sheet.png`` (a small overview of the first ``sheet_samples`` records) and
   ``report.html`` (one offline page with a per-sample browser; its images are in
   ``report_files/``, see :mod:`.html_report`).

How to add a task
-----------------
Subclass :class:`CompareTask` (see :mod:`preproc.compare.ocr` for a complete one)::

    class FaceTask(CompareTask):
        name = "face"                 # --task face
        preset = "face"               # the enhance() preset used by upscaler candidates
        metrics = ("auc", "accuracy", "tar_at_far_1e-2")
        higher_is_better = {"auc": True, "accuracy": True, "tar_at_far_1e-2": True}
        size_label = "face side (px)"
        default_sizes = (16, 24, 32)
        default_candidates = ("bicubic",)      # what a bare `fuse`/`select` always includes
        modes = ("select", "fuse")             # multi-candidate modes it can combine

        def load(self, dataset, limit):        # records (use spread(); read_pairs for pairs)
        def degrade(self, record, size, jpeg): # PIL image at `size` (area_resize, jpeg_roundtrip)
        def recognize(self, image, record):    # {"confidence": det_prob, "embedding": [...]}
        def combine(self, mode, recs):         # "fuse": average embeddings -> (-1, fused)
        def evaluate(self, records, recs):     # {"auc":..., "accuracy":..., "n": n_pairs}

then register it: the name ``"face"`` is already registered to
``preproc.compare.face:FaceTask``; another task calls
``register_task("name", "module:Class")``. Task options (``--task-opt key=value``) are
constructor keywords. Extra candidates (e.g. a face-specific clean-up) are added with
:func:`register_candidate` (``tasks=("face",)`` limits them to the face task).
"""

import sys
import types

from .report import Report
from .runner import compare
from .task import (
    CompareTask,
    Recognition,
    area_resize,
    create_task,
    jpeg_roundtrip,
    most_confident,
    register_task,
    spread,
    task_names,
)
from .variants import CandidateContext, Variant, candidate_names, parse_variants, register_candidate

__all__ = [
    "CandidateContext",
    "CompareTask",
    "Recognition",
    "Report",
    "Variant",
    "area_resize",
    "candidate_names",
    "compare",
    "create_task",
    "jpeg_roundtrip",
    "most_confident",
    "parse_variants",
    "register_candidate",
    "register_task",
    "spread",
    "task_names",
]


class _CallableModule(types.ModuleType):
    """Lets ``preproc.compare(...)`` call :func:`compare` while ``preproc.compare.X`` stays this package."""

    def __call__(self, *args, **kwargs) -> Report:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
