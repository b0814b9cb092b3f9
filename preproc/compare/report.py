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
        if s.get("weights"):
            parts += ["", "Weights (sha256, first 16 hex digits): "
                      + "; ".join(f"`{k}` {v}" for k, v in s["weights"].items())]
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
        records: Sequence[Record] | None = None,
        image_ids: set[str] | None = None,
    ) -> None:
        """Write ``report.json``, ``report.md``, ``plot_<metric>[_q<jpeg>].png``, ``contact_sheet.png``
        and, given the run's ``records``, ``report.html`` (``image_ids``: the records whose images
        the runner kept in ``report_files/``)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "report.json", json.dumps(self.to_json(), indent=1, default=str) + "\n")
        write_text_atomic(out_dir / "report.md", self.to_markdown())
        try:
            self.write_plots(out_dir)
        except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the report
            logger.warning("plots not written: %s", e)
        if sheet_records:
            try:
                write_contact_sheet(out_dir, task, variants, sheet_records, cache, setting=self.overview_setting())
            except Exception as e:  # noqa: BLE001
                logger.warning("contact sheet not written: %s", e)
        try:
            task.write_extras(self, out_dir)
        except Exception as e:  # noqa: BLE001 - an extra plot must not lose the report
            logger.warning("%s task's extra report files not written: %s", task.name, e)
        if records is not None:
            from .html_report import write_html_report

            try:
                write_html_report(self, out_dir, task, variants, records, cache, image_ids)
            except Exception as e:  # noqa: BLE001 - the page must not lose the other files
                logger.warning("report.html not written: %s: %s", type(e).__name__, e)

    def overview_setting(self) -> tuple[int, int | None] | None:
        """The (size, jpeg) where the variants differ most on the first metric (the contact sheet's setting)."""
        if not self.metrics:
            return None
        m = self.metrics[0]
        best: tuple[float, int, int | None] | None = None
        for size, q in dict.fromkeys((r["size"], r["jpeg"]) for r in self.rows):
            vals = [r[m] for r in self.rows if r["size"] == size and r["jpeg"] == q and r.get(m) is not None]
            if not vals:
                continue
            spread_ = max(vals) - min(vals)
            if best is None or spread_ > best[0]:
                best = (spread_, size, q)
        return None if best is None else (best[1], best[2])

    def plot_figure(self, metric: str, jpeg: int | None, figsize: tuple[float, float] = (6, 4)):
        """A matplotlib figure of ``metric`` against size at one JPEG setting, a line per variant (None when empty)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        series = []
        for v in self.variants:
            pts = sorted((r["size"], r[metric]) for r in self.rows
                         if r["variant"] == v and r["jpeg"] == jpeg and r.get(metric) is not None)
            if pts:
                series.append((v, pts))
        if not series:
            return None
        fig, ax = plt.subplots(figsize=figsize, dpi=100)
        for v, pts in series:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=v)
        ax.set_xticks(sorted({p[0] for _, pts in series for p in pts}))
        ax.set_xlabel(self.size_label)
        ax.set_ylabel(metric)
        ax.set_title(f"{self.task}: {metric} vs size, {_jpeg_label(jpeg)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, framealpha=0.85)
        fig.tight_layout()
        return fig

    def write_plots(self, out_dir: Path) -> list[Path]:
        """One PNG per metric and JPEG setting: the metric against size, a line per variant."""
        import matplotlib.pyplot as plt

        written = []
        for m in self.metrics:
            for q in dict.fromkeys(r["jpeg"] for r in self.rows):
                fig = self.plot_figure(m, q)
                if fig is None:
                    continue
                path = out_dir / (f"plot_{m}.png" if q is None else f"plot_{m}_q{q}.png")
                with atomic_target(path) as tmp:
                    fig.savefig(tmp, format="png")
                plt.close(fig)
                written.append(path)
        return written


def draw_len(text: str, font: ImageFont.ImageFont) -> float:
    """The width of ``text`` in ``font``, in pixels."""
    try:
        return float(font.getlength(text))
    except AttributeError:  # a bitmap font of old Pillow
        return 7.0 * len(text)


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
    setting: tuple[int, int | None] | None = None,
    max_samples: int = 2,
    cell_height: int | None = None,
    max_width: int = 420,
) -> Path | None:
    """``contact_sheet.png``: a small overview, readable at 100 %.

    One setting (``setting``, default: the first the cache holds for these records; the
    report passes the one where the variants differ most), the first ``max_samples``
    ``records`` side by side, and per variant one row: its chosen image (shown
    ``cell_height`` px high, small crops enlarged with nearest neighbour, cut at
    ``max_width``) over the task's :meth:`~CompareTask.caption` (green when it equals the
    record's ``text``). The whole set is in ``report.html``.
    """
    from .html_report import report_image_path
    from .runner import combine_sample, sample_image_path

    recs = list(records)[: max(1, max_samples)]
    ids = {r.id for r in recs}
    if setting is None:
        found = sorted({(k[1], k[2]) for k in cache.entries if k[0] in ids},
                       key=lambda t: (t[1] is not None, t[1] or 0, t[0]))
        if not found:
            return None
        setting = found[0]
    size, q = setting
    ch = cell_height or (96 if task.name == "face" else 36)
    font, small = _font(13), _font(12)
    label_w, gap, cap_h, pad = 170, 14, 17, 5
    col_w = max_width
    row_h = ch + cap_h + 2 * pad

    def load(path: Path) -> Image.Image | None:
        return Image.open(path).convert("RGB") if path.is_file() else None

    def shown(img: Image.Image) -> Image.Image:
        w = max(1, round(img.width * ch / img.height))
        res = Image.Resampling.LANCZOS if img.height > ch else Image.Resampling.NEAREST
        return img.resize((w, ch), res).crop((0, 0, min(w, col_w), ch))

    grid: list[tuple[str, list[tuple[Image.Image | None, str, bool | None]]]] = []
    crops = []
    for r in recs:
        crop = load(report_image_path(out_dir, r.id, size, q, "none")) or load(
            sample_image_path(out_dir, r.id, size, q, "none"))
        crops.append((crop, f"{crop.width} x {crop.height} px" if crop else "", None))
    grid.append(("crop (enlarged)", crops))
    for v in variants:
        cells = []
        for r in recs:
            res = combine_sample(task, v, r.id, size, q, cache)
            if isinstance(res, str):
                cells.append((None, f"failed: {res[:50]}", False))
                continue
            idx, rec, _ = res
            cand = v.candidates[idx] if idx >= 0 else v.candidates[-1]
            img = load(sample_image_path(out_dir, r.id, size, q, cand)) or load(
                report_image_path(out_dir, r.id, size, q, cand))
            truth = r.get("text")
            ok = None if truth is None or "text" not in rec else rec.get("text") == truth
            cells.append((img, task.caption(rec), ok))
        label = v.name if v.mode == "single" or v.name.startswith(v.mode) else f"{v.name} ({v.mode})"
        grid.append((label, cells))
    # columns as wide as the widest image shown (at most max_width), at least wide enough for a caption
    widths = [min(max_width, round(img.width * ch / img.height)) for _, cells in grid for img, _, _ in cells
              if img is not None]
    col_w = max([*widths, 160])
    title_h, head_h = 26, 22
    title = f"preproc compare ({task.name}): {size} px, {_jpeg_label(q)}; every sample and setting: report.html"
    width = max(label_w + len(recs) * (col_w + gap), int(draw_len(title, font)) + 16)
    sheet = Image.new("RGB", (width, title_h + head_h + row_h * len(grid)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.rectangle([0, 0, width, title_h - 1], fill=(31, 42, 68))
    draw.text((8, 6), title, fill="white", font=font)
    for j, r in enumerate(recs):
        x = label_w + j * (col_w + gap)
        truth = r.get("text")
        head = r.id if truth is None else f"{r.id}: {str(truth)[:52]}"
        draw.text((x, title_h + 4), head, fill=(40, 40, 40), font=font)
    for i, (label, cells) in enumerate(grid):
        y = title_h + head_h + i * row_h
        if i % 2:
            draw.rectangle([0, y, width, y + row_h - 1], fill=(246, 247, 249))
        draw.text((8, y + pad + ch // 2 - 7), label, fill="black", font=font)
        for j, (img, caption, ok) in enumerate(cells):
            x = label_w + j * (col_w + gap)
            if img is not None:
                sheet.paste(shown(img), (x, y + pad))
            color = (110, 110, 110) if ok is None else ((17, 100, 42) if ok else (168, 34, 27))
            draw.text((x, y + pad + ch + 2), caption[:60], fill=color, font=small)
    return save_image_atomic(sheet, out_dir / "contact_sheet.png")
