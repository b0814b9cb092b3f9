"""Report writing: ``report.json``, ``report.md``, PNG plots (metric vs size per variant), contact sheet.

Every file is written through a temporary file and a rename.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from ..cache import atomic_target, write_text_atomic
from ..io import save_image_atomic

if TYPE_CHECKING:
    from ..datasets import Record
    from .cache import ResultCache
    from .task import CompareTask
    from .variants import Variant

logger = logging.getLogger(__name__)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _jpeg_label(q: int | None) -> str:
    return "lossless" if q is None else f"JPEG {q}"


@dataclass
class Report:
    """What :func:`preproc.compare` measured: ``rows`` (one per variant, size, jpeg) and the settings."""

    task: str
    rows: list[dict[str, Any]]
    metrics: list[str]
    higher_is_better: dict[str, bool]
    size_label: str
    variants: list[str]
    unavailable: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None

    def row(self, variant: str, size: int, jpeg: int | None = None) -> dict[str, Any]:
        """The row of ``variant`` at ``size`` and ``jpeg`` (KeyError when absent)."""
        for r in self.rows:
            if r["variant"] == variant and r["size"] == size and r["jpeg"] == jpeg:
                return r
        raise KeyError(f"no row for variant {variant!r}, size {size}, jpeg {jpeg}")

    def to_json(self) -> dict[str, Any]:
        """The JSON document written as ``report.json``."""
        return {
            "task": self.task,
            "metrics": self.metrics,
            "higher_is_better": self.higher_is_better,
            "variants": self.variants,
            "unavailable": self.unavailable,
            "settings": self.settings,
            "rows": self.rows,
        }

    def pivot_markdown(self, metric: str, jpeg: int | None) -> str:
        """A variants x sizes table of ``metric`` at one JPEG setting; the best value per size in bold."""
        sizes = sorted({r["size"] for r in self.rows if r["jpeg"] == jpeg})
        hib = self.higher_is_better.get(metric, True)
        best: dict[int, float] = {}
        for s in sizes:
            vals = [r[metric] for r in self.rows if r["size"] == s and r["jpeg"] == jpeg and r.get(metric) is not None]
            if vals:
                best[s] = max(vals) if hib else min(vals)
        lines = [
            f"{metric} ({'higher' if hib else 'lower'} is better), {_jpeg_label(jpeg)}; columns: {self.size_label}",
            "",
            "| variant | " + " | ".join(str(s) for s in sizes) + " |",
            "|---|" + "---:|" * len(sizes),
        ]
        for v in self.variants:
            cells = []
            for s in sizes:
                try:
                    val = self.row(v, s, jpeg).get(metric)
                except KeyError:
                    val = None
                cell = _fmt(val)
                if val is not None and s in best and val == best[s]:
                    cell = f"**{cell}**"
                cells.append(cell)
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def full_markdown(self) -> str:
        """Every row: variant, size, jpeg, n, metrics, seconds per item, failures."""
        head = ["variant", "size", "jpeg", "n", *self.metrics, "s/item", "failures"]
        lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for r in self.rows:
            cells = [r["variant"], r["size"], "–" if r["jpeg"] is None else r["jpeg"], r["n"],
                     *[_fmt(r.get(m)) for m in self.metrics], _fmt(r.get("seconds_per_item")), r["failures"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The ``report.md`` text: pivot tables per metric and JPEG setting, then every row."""
        jpegs = list(dict.fromkeys(r["jpeg"] for r in self.rows))
        s = self.settings
        parts = [
            f"# preproc compare: task {self.task}",
            "",
            f"Dataset `{s.get('dataset')}`, {s.get('samples')} samples (limit {s.get('limit')}), "
            f"sizes {s.get('sizes')}, {', '.join(_jpeg_label(q) for q in jpegs)}.",
        ]
        if s.get("resolved"):
            parts += ["", "Resolved here: " + "; ".join(f"`{k}` = {v}" for k, v in s["resolved"].items())]
        if self.unavailable:
            parts += ["", "Not run (unavailable here): " + "; ".join(f"{k}: {v}" for k, v in self.unavailable.items())]
        for m in self.metrics:
            for q in jpegs:
                parts += ["", self.pivot_markdown(m, q)]
        chosen = [r for r in self.rows if r.get("chosen")]
        if chosen:
            parts += ["", "What the multi-candidate variants chose (candidate: samples):", ""]
            for r in chosen:
                picks = ", ".join(f"{k} {v}" for k, v in r["chosen"].items())
                parts.append(f"- {r['variant']}, size {r['size']}, {_jpeg_label(r['jpeg'])}: {picks}")
        parts += ["", "All rows:", "", self.full_markdown(), ""]
        return "\n".join(parts)

    # --- files ---------------------------------------------------------------------
    def write(
        self,
        out_dir: Path,
        task: CompareTask,
        variants: Sequence[Variant],
        sheet_records: Sequence[Record],
        cache: ResultCache,
    ) -> None:
        """Write ``report.json``, ``report.md``, ``plot_<metric>[_q<jpeg>].png`` and ``contact_sheet.png``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "report.json", json.dumps(self.to_json(), indent=1, default=str) + "\n")
        write_text_atomic(out_dir / "report.md", self.to_markdown())
        try:
            self.write_plots(out_dir)
        except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the report
            logger.warning("plots not written: %s", e)
        if sheet_records:
            try:
                write_contact_sheet(out_dir, task, variants, sheet_records, cache)
            except Exception as e:  # noqa: BLE001
                logger.warning("contact sheet not written: %s", e)
        try:
            task.write_extras(self, out_dir)
        except Exception as e:  # noqa: BLE001 - an extra plot must not lose the report
            logger.warning("%s task's extra report files not written: %s", task.name, e)

    def write_plots(self, out_dir: Path) -> list[Path]:
        """One PNG per metric and JPEG setting: the metric against size, a line per variant."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        written = []
        for m in self.metrics:
            for q in dict.fromkeys(r["jpeg"] for r in self.rows):
                fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
                for v in self.variants:
                    pts = sorted((r["size"], r[m]) for r in self.rows
                                 if r["variant"] == v and r["jpeg"] == q and r.get(m) is not None)
                    if pts:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=v)
                ax.set_xlabel(self.size_label)
                ax.set_ylabel(m)
                ax.set_title(f"{self.task}: {m} vs size, {_jpeg_label(q)}")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
                fig.tight_layout()
                path = out_dir / (f"plot_{m}.png" if q is None else f"plot_{m}_q{q}.png")
                with atomic_target(path) as tmp:
                    fig.savefig(tmp, format="png")
                plt.close(fig)
                written.append(path)
        return written


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def write_contact_sheet(
    out_dir: Path,
    task: CompareTask,
    variants: Sequence[Variant],
    records: Sequence[Record],
    cache: ResultCache,
    *,
    cell_height: int = 40,
    max_width: int = 480,
) -> Path | None:
    """``contact_sheet.png``: per sample and size, each variant's chosen image and its recognition.

    Images are shown at ``cell_height`` px (upscaled results shrunk, crops enlarged),
    cropped at ``max_width``; the caption is the task's :meth:`~CompareTask.caption`.
    """
    from .runner import combine_sample, sample_image_path

    settings = sorted({(k[1], k[2]) for k in cache.entries if k[0] in {r.id for r in records}},
                      key=lambda t: (t[1] is not None, t[1] or 0, t[0]))
    font = _font(12)
    label_w, text_w = 190, 360
    rows: list[tuple[str, Image.Image | None, str]] = []
    for r in records:
        for size, q in settings:
            rows.append((f"{r.id} @ {size} {_jpeg_label(q)}", None, ""))
            for v in variants:
                res = combine_sample(task, v, r.id, size, q, cache)
                if isinstance(res, str):
                    rows.append((v.name, None, f"failed: {res[:60]}"))
                    continue
                idx, rec, _ = res
                cand = v.candidates[idx] if idx >= 0 else v.candidates[0]
                p = sample_image_path(out_dir, r.id, size, q, cand)
                img = Image.open(p).convert("RGB") if p.is_file() else None
                label = v.name if v.mode == "single" else f"{v.name} ({cand if idx >= 0 else v.mode})"
                rows.append((label, img, task.caption(rec)))
    if not rows:
        return None
    row_h = cell_height + 6
    sheet = Image.new("RGB", (label_w + max_width + text_w, row_h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img, caption) in enumerate(rows):
        y = i * row_h
        if img is None and not caption:  # a section header
            draw.rectangle([0, y, sheet.width, y + row_h - 1], fill=(225, 230, 240))
            draw.text((4, y + row_h // 2 - 7), label, fill="black", font=font)
            continue
        draw.text((4, y + row_h // 2 - 7), label, fill="black", font=font)
        if img is not None:
            w = max(1, round(img.width * cell_height / img.height))
            shown = img.resize((w, cell_height), Image.Resampling.LANCZOS if img.height > cell_height
                               else Image.Resampling.NEAREST)
            sheet.paste(shown.crop((0, 0, min(w, max_width), cell_height)), (label_w, y + 3))
        draw.text((label_w + max_width + 6, y + row_h // 2 - 7), caption[:64], fill=(20, 20, 120), font=font)
    return save_image_atomic(sheet, out_dir / "contact_sheet.png")
