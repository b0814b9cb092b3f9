"""``report.html``: a comparison as one offline page, with a per-sample browser.

What the page holds (written by :func:`write_html_report`, called from
:meth:`preproc.compare.Report.write`):

* the summary, as static HTML: the task's metrics per JPEG setting (variants x sizes,
  the best of each column marked), seconds per item, what each multi-candidate variant
  chose, the plots (inline SVG), the run's settings and the command that reproduces it;
* a per-sample browser (the script of ``report_template.html``, no dependencies): the
  crop as the recognizer got it (enlarged, nearest neighbour), each variant's output and
  reading with its character differences against the ground truth (OCR), or both
  images of each pair with score, threshold and right/wrong (faces); filters by size,
  JPEG setting and variant, "samples where variant A is worse than variant B" sorted
  worst first, text search, paging. Its data (readings, confidences, per-sample scores)
  is inline JSON, built by the task's :meth:`~preproc.compare.CompareTask.html_samples`.

Images are not inlined: the runner saves every candidate's image, as it computes it,
into the sibling folder ``report_files/`` (:func:`save_report_image`), for the first
``report_images`` records of the run (default :data:`DEFAULT_REPORT_IMAGES`); the page
loads them lazily (``loading="lazy"``, only the current page's cards are in the DOM).
The crop itself is a lossless PNG; outputs are fitted into the task's box
(:data:`THUMB_BOX`, e.g. 720 x 64 px for text lines) and stored as WebP quality 90,
about 2-3 KB per text-line image, so disk use is about
``records x sizes x JPEG settings x (candidates + 1) x 3 KB``.
"""

from __future__ import annotations

import html
import inspect
import io
import json
import logging
import math
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..cache import write_text_atomic
from ..io import save_image_atomic

if TYPE_CHECKING:
    from ..datasets import Record
    from .cache import ResultCache
    from .report import Report
    from .task import CompareTask
    from .variants import Variant

logger = logging.getLogger(__name__)

#: The folder next to ``report.html`` that holds the browser's images.
REPORT_FILES = "report_files"
#: Records whose images are kept for the browser when the caller does not say.
DEFAULT_REPORT_IMAGES = 500
#: Per task: the box (width, height) a candidate's output is shrunk into for the page.
THUMB_BOX: dict[str, tuple[int, int]] = {"ocr": (720, 64), "face": (160, 160)}
_DEFAULT_BOX = (256, 256)
#: WebP quality of the outputs shown on the page (the crop is a lossless PNG).
WEBP_QUALITY = 90
_TEMPLATE = "report_template.html"


def _safe(sid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sid)


def _setting_stem(size: int, q: int | None) -> str:
    return f"{size}_{'png' if q is None else f'q{q}'}"


def report_image_path(out_dir: Path, sid: str, size: int, q: int | None, cand: str) -> Path:
    """Where the page's image of one candidate is kept: ``report_files/<id>/<size>_<png|qNN>_<cand>.webp``;
    the crop (candidate ``none``) is ``..._none.png``."""
    ext = "png" if cand == "none" else "webp"
    return Path(out_dir) / REPORT_FILES / _safe(sid) / f"{_setting_stem(size, q)}_{cand}.{ext}"


def save_report_image(out_dir: Path, task_name: str, sid: str, size: int, q: int | None, cand: str,
                      image: Image.Image) -> Path:
    """Save ``image`` (candidate ``cand`` of sample ``sid`` at ``size``/``q``) for the page, atomically.

    ``none`` (the crop) is kept as it is, lossless; other candidates are shrunk into the
    task's :data:`THUMB_BOX` (never enlarged) and saved as WebP.
    """
    path = report_image_path(out_dir, sid, size, q, cand)
    img = image.convert("L") if image.mode in ("1", "L", "LA", "I", "I;16", "F") else image.convert("RGB")
    if cand == "none":
        return save_image_atomic(img, path, format="PNG")
    bw, bh = THUMB_BOX.get(task_name, _DEFAULT_BOX)
    f = min(1.0, bw / img.width, bh / img.height)
    if f < 1.0:
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS)
    return save_image_atomic(img, path, format="WEBP", quality=WEBP_QUALITY, method=2)


# --- what a task hands the page ---------------------------------------------------------
@dataclass
class HtmlContext:
    """Everything a task's :meth:`~preproc.compare.CompareTask.html_samples` may use.

    ``settings``: the run's ``(size, jpeg)`` pairs in page order; ``results[(vi, si)][record id]``:
    what :func:`preproc.compare.runner.combine_sample` gives for variant ``vi`` at setting ``si``
    (``(chosen candidate index, recognition, seconds)`` or an error text); ``rows[(vi, si)]``:
    the report row; ``rec_index``: record id -> index into ``records``.
    """

    records: list[Record]
    variants: list[Variant]
    settings: list[tuple[int, int | None]]
    results: dict[tuple[int, int], dict[str, Any]]
    rows: dict[tuple[int, int], dict[str, Any]]
    rec_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rec_index:
            self.rec_index = {r.id: i for i, r in enumerate(self.records)}


def _num(x: Any, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for None, NaN and infinities)."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _entry_error(res: Any) -> str | None:
    if res is None:
        return "not computed"
    return res if isinstance(res, str) else None


def _record_items(ctx: HtmlContext, entry: Any) -> list[Any]:
    """One item per setting and record: per variant ``entry(record, idx, recognition)``, or the
    variant's error entry when it failed on that sample."""
    items = []
    for si in range(len(ctx.settings)):
        for r in ctx.records:
            ents: list[Any] = []
            for vi in range(len(ctx.variants)):
                res = ctx.results[(vi, si)].get(r.id)
                err = _entry_error(res)
                if err is not None:
                    ents.append(err)
                    continue
                idx, rec, _ = res
                ents.append(entry(r, idx, rec))
            items.append([si, [ctx.rec_index[r.id]], None, ents])
    return items


def generic_samples(task: CompareTask, ctx: HtmlContext) -> dict[str, Any]:
    """One item per record and setting; each variant's caption and confidence (higher is better)."""

    def entry(r: Any, idx: int, rec: dict[str, Any]) -> list[Any]:
        conf = _num(rec.get("confidence"))
        return [[idx], task.caption(rec), conf, conf, None]

    items = _record_items(ctx, entry)
    return {"kind": "generic", "metric": {"name": "confidence", "hib": True, "worse_by": "metric"}, "items": items}


def ocr_samples(task: CompareTask, ctx: HtmlContext) -> dict[str, Any]:
    """OCR: per record and setting, each variant's reading (None when it equals the truth),
    confidence and the line's CER (the per-item metric, lower is better)."""
    from ..metrics import cer

    def entry(r: Any, idx: int, rec: dict[str, Any]) -> list[Any]:
        truth = str(r.get("text", ""))
        text = str(rec.get("text", ""))
        line_cer = cer(truth, text, bool(r.get("case_sensitive", True)))
        return [[idx], None if text == truth else text, _num(rec.get("confidence"), 1),
                _num(min(line_cer, 99.0)), None]

    items = _record_items(ctx, entry)
    return {"kind": "ocr", "metric": {"name": "CER", "hib": False, "worse_by": "metric"}, "items": items}


def _pair_threshold(row: dict[str, Any] | None, pair_set: str | None) -> float | None:
    if not row:
        return None
    by_set = row.get("by_set") or {}
    if pair_set in by_set and by_set[pair_set].get("threshold") is not None:
        return float(by_set[pair_set]["threshold"])
    t = row.get("threshold")
    return None if t is None else float(t)


def face_samples(task: CompareTask, ctx: HtmlContext) -> dict[str, Any]:
    """Faces: one item per pair and setting; per variant the chosen candidate of each image,
    the pair's cosine score, the row's threshold (its pair set's when the report has one per
    set), the margin on the right side of the threshold (the per-item metric, higher is
    better) and whether the variant got the pair right. A pair with an image without a
    face is wrong (as the metrics count it)."""
    pairs = list(getattr(task, "_pairs", []) or getattr(task, "pairs", []) or [])
    items = []
    for si in range(len(ctx.settings)):
        for p in pairs:
            if p.a not in ctx.rec_index or p.b not in ctx.rec_index:
                continue
            ents: list[Any] = []
            for vi in range(len(ctx.variants)):
                ra, rb = ctx.results[(vi, si)].get(p.a), ctx.results[(vi, si)].get(p.b)
                err = _entry_error(ra) or _entry_error(rb)
                if err is not None:
                    ents.append(err)
                    continue
                ea, eb = ra[1].get("embedding"), rb[1].get("embedding")
                t = _pair_threshold(ctx.rows.get((vi, si)), getattr(p, "set", None))
                score = None
                if ea is not None and eb is not None:
                    score = float(np.dot(np.asarray(ea, np.float64), np.asarray(eb, np.float64)))
                if score is None or t is None:
                    ok, margin = False, -9.0
                else:
                    ok = (score >= t) == bool(p.same)
                    margin = (score - t) if p.same else (t - score)
                label = None if score is not None else ("no face in the " + " and the ".join(
                    n for n, e in (("first", ea), ("second", eb)) if e is None) + " image")
                ents.append([[ra[0], rb[0]], label, _num(score), _num(margin), int(ok), _num(t)])
            items.append([si, [ctx.rec_index[p.a], ctx.rec_index[p.b]], [int(bool(p.same)), getattr(p, "set", None)],
                          ents])
    return {"kind": "face", "metric": {"name": "margin", "hib": True, "worse_by": "ok"}, "items": items}


#: The page's per-sample data by task name (a task may instead override ``html_samples``).
SAMPLERS: dict[str, Callable[[CompareTask, HtmlContext], dict[str, Any]]] = {
    "ocr": ocr_samples,
    "face": face_samples,
}


def default_html_samples(task: CompareTask, ctx: HtmlContext) -> dict[str, Any]:
    """The browser data of ``task``: its entry in :data:`SAMPLERS`, else :func:`generic_samples`."""
    return SAMPLERS.get(task.name, generic_samples)(task, ctx)


# --- the static parts -------------------------------------------------------------------
def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _jpeg_label(q: int | None) -> str:
    return "lossless" if q is None else f"JPEG {q}"


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pivot_html(report: Report, metric: str, jpeg: int | None, hib: bool | None, digits: int = 3,
                caption: str | None = None) -> str:
    """A variants x sizes table of ``metric`` at one JPEG setting, the best of each column marked."""
    rows = [r for r in report.rows if r["jpeg"] == jpeg]
    sizes = sorted({r["size"] for r in rows})
    best: dict[int, float] = {}
    if hib is not None:
        for s in sizes:
            vals = [r[metric] for r in rows if r["size"] == s and r.get(metric) is not None]
            if len({round(v, 9) for v in vals}) > 1:
                best[s] = max(vals) if hib else min(vals)
    base_by_size = {r["size"]: r.get(metric) for r in rows if r["variant"] == "none"}
    head = "".join(f"<th>{s}</th>" for s in sizes)
    direction = "" if hib is None else (" (higher is better)" if hib else " (lower is better)")
    cap = caption or f"{metric}{direction}, {_jpeg_label(jpeg)}"
    out = [f'<table class="pivot" data-metric="{_esc(metric)}" data-jpeg="{"" if jpeg is None else jpeg}">',
           f"<caption>{_esc(cap)}</caption>",
           f'<thead><tr><th class="l">variant \\ {_esc(report.size_label)}</th>{head}</tr></thead><tbody>']
    for v in report.variants:
        cells = []
        for s in sizes:
            try:
                r = report.row(v, s, jpeg)
            except KeyError:
                cells.append("<td>–</td>")
                continue
            val = r.get(metric)
            is_best = val is not None and s in best and val == best[s]
            title = f"n={r.get('n')}, failures {r.get('failures')}"
            style = ""
            base = base_by_size.get(s)
            if hib is not None and v != "none" and not is_best:
                # tint by the change against the plain crop
                style = _tint(val, base, hib)
                if style:
                    title += f", {(val - base) / max(abs(base), 1e-9):+.0%} against none"
            attrs = (f'data-variant="{_esc(v)}" data-size="{s}" title="{_esc(title)}"'
                     + (' class="best"' if is_best else "") + style)
            cells.append(f"<td {attrs}>{_fmt(val, digits)}{' ★' if is_best else ''}</td>")
        out.append(f'<tr><th class="l">{_esc(v)}</th>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _metrics_table_html(report: Report, size: int, jpeg: int | None) -> str:
    """A variants x metrics table at one size and JPEG setting (used when a run has one size)."""
    cols = [*report.metrics, "seconds_per_item"]
    hib = {**report.higher_is_better, "seconds_per_item": False}
    rows = {r["variant"]: r for r in report.rows if r["size"] == size and r["jpeg"] == jpeg}
    best: dict[str, float] = {}
    for m in cols:
        vals = [r[m] for r in rows.values() if r.get(m) is not None]
        if len({round(v, 9) for v in vals}) > 1:
            best[m] = max(vals) if hib.get(m, True) else min(vals)
    head = "".join(f'<th title="{"higher" if hib.get(m, True) else "lower"} is better">'
                   f'{_esc(m).replace(":", ":<wbr>").replace("_", "_<wbr>")} {"↑" if hib.get(m, True) else "↓"}</th>'
                   for m in cols)
    out = ['<div class="scroll">',
           f'<table class="pivot wide" data-size="{size}" data-jpeg="{"" if jpeg is None else jpeg}">',
           f"<caption>{_esc(report.size_label)} {size}, {_esc(_jpeg_label(jpeg))} "
           "(↑ higher is better, ↓ lower is better)</caption>",
           f'<thead><tr><th class="l">variant</th>{head}</tr></thead><tbody>']
    base = rows.get("none", {})
    for v in report.variants:
        r = rows.get(v)
        cells = []
        for m in cols:
            val = None if r is None else r.get(m)
            digits = 0 if isinstance(val, int) else 3
            is_best = val is not None and m in best and val == best[m]
            style = _tint(val, base.get(m), hib.get(m, True)) if v != "none" and not is_best else ""
            cells.append(f'<td data-variant="{_esc(v)}" data-metric="{_esc(m)}"'
                         f'{" class=best" if is_best else ""}{style}>{_fmt(val, digits)}{" ★" if is_best else ""}</td>')
        out.append(f'<tr><th class="l">{_esc(v)}</th>{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _tint(val: Any, base: Any, hib: bool) -> str:
    """A style attribute tinting a cell by its change against ``base``: green better, red worse (full at 50 %)."""
    if val is None or base is None or isinstance(val, bool):
        return ""
    rel = (float(val) - float(base)) / max(abs(float(base)), 1e-9) * (1 if hib else -1)
    if abs(rel) < 0.02:
        return ""
    a = min(1.0, abs(rel) / 0.5) * 0.45
    return f' style="background:rgba({"40,167,69" if rel > 0 else "220,53,69"},{a:.2f})"'


def _winners_html(report: Report) -> str:
    """One line per JPEG setting: the best variant at each size on the first metric, against ``none``."""
    if not report.metrics:
        return ""
    m = report.metrics[0]
    hib = report.higher_is_better.get(m, True)
    parts = []
    for q in dict.fromkeys(r["jpeg"] for r in report.rows):
        cells = []
        for s in sorted({r["size"] for r in report.rows if r["jpeg"] == q}):
            rs = [r for r in report.rows if r["size"] == s and r["jpeg"] == q and r.get(m) is not None]
            if not rs:
                continue
            b = (max if hib else min)(rs, key=lambda r: r[m])
            base = next((r for r in rs if r["variant"] == "none"), None)
            vs = "" if base is None or base is b else f' <span class="muted">(none {_fmt(base[m])})</span>'
            cells.append(f"<li><b>{s} px</b>: {_esc(b['variant'])} {_fmt(b[m])}{vs}</li>")
        parts.append(f"<div class=win><span class=wq>{_esc(_jpeg_label(q))}</span><ul>{''.join(cells)}</ul></div>")
    return (f'<div class="winners"><h3>Best {_esc(m)} ({"higher" if hib else "lower"} is better) at each size</h3>'
            + "".join(parts) + "</div>")


def _chosen_html(report: Report) -> str:
    multi = [r for r in report.rows if r.get("chosen")]
    if not multi:
        return ""
    out = ['<h2 id="chosen">What the multi-candidate variants chose</h2>',
           '<p class="muted">Per sample such a variant keeps one candidate\'s result (by its rule: the most '
           'confident reading or detection, or the guard\'s test); the bars show how often each candidate was '
           'kept. A variant that combines its candidates (<code>fuse</code>, <code>vote</code>) is counted under '
           'its mode.</p>']
    for v in dict.fromkeys(r["variant"] for r in multi):
        vr = [r for r in multi if r["variant"] == v]
        cands = list(dict.fromkeys(c for r in vr for c in [*r.get("candidates", []), *r["chosen"]]))
        cands = [c for c in cands if any(c in r["chosen"] for r in vr)]
        head = "".join(f"<th>{_esc(c)}</th>" for c in cands)
        out.append(f'<table class="chosen"><caption>{_esc(v)} ({_esc(vr[0].get("mode", ""))} over '
                   f'{_esc(", ".join(vr[0].get("candidates", [])))})</caption>'
                   f'<thead><tr><th class="l">setting</th>{head}</tr></thead><tbody>')
        for r in vr:
            total = sum(r["chosen"].values()) or 1
            cells = []
            for c in cands:
                k = r["chosen"].get(c, 0)
                pct = 100.0 * k / total
                cells.append(f'<td><div class="cb"><span class="bar" style="width:{pct:.0f}%"></span>'
                             f'<span class="cv">{k} <span class="muted">({pct:.0f}%)</span></span></div></td>')
            out.append(f'<tr><th class="l">{r["size"]} px, {_esc(_jpeg_label(r["jpeg"]))}</th>{"".join(cells)}</tr>')
        out.append("</tbody></table>")
    return "\n".join(out)


def reproduce_command(report: Report, task: CompareTask | None = None, out_dir: Path | None = None) -> str:
    """The ``preproc compare`` command line that reproduces this run (options that differ from the task's defaults)."""
    s = report.settings
    args = ["preproc", "compare", "--task", report.task, "--dataset", str(s.get("dataset", "DATASET")),
            "--variants", ",".join(s.get("variants") or report.variants)]
    if s.get("sizes"):
        args += ["--sizes", ",".join(str(x) for x in s["sizes"])]
    jp = s.get("jpeg") or [None]
    if jp != [None]:
        args += ["--jpeg", ",".join("none" if q is None else str(q) for q in jp)]
    if s.get("limit") is not None:
        args += ["--limit", str(s["limit"])]
    defaults: dict[str, Any] = {}
    if task is not None:
        try:
            defaults = {k: p.default for k, p in inspect.signature(type(task).__init__).parameters.items()
                        if p.default is not inspect.Parameter.empty}
        except (TypeError, ValueError):
            defaults = {}
    for k, v in (s.get("task_options") or {}).items():
        if k in defaults and defaults[k] != v:
            args += ["--task-opt", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    for k, v in (s.get("overrides") or {}).items():
        args += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    if s.get("dtype") not in (None, "None"):
        args += ["--dtype", str(s["dtype"])]
    args += ["--out", str(out_dir if out_dir is not None else report.out_dir or "OUT")]
    return shlex.join(args)


def _settings_html(report: Report, command: str) -> str:
    s = dict(report.settings)
    items = [
        ("task", report.task),
        ("dataset", s.get("dataset")),
        ("samples", s.get("samples")),
        ("sizes", ", ".join(str(x) for x in s.get("sizes") or [])),
        ("JPEG", ", ".join(_jpeg_label(q) for q in s.get("jpeg") or [None])),
        ("variants", ", ".join(report.variants)),
        ("task options", json.dumps(s.get("task_options") or {})),
        ("preset overrides", json.dumps(s.get("overrides") or {})),
        ("seconds (whole run)", s.get("seconds_total")),
    ]
    if report.unavailable:
        items.append(("not run here", "; ".join(f"{k}: {v}" for k, v in report.unavailable.items())))
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)
    return (f'<h2 id="settings">Settings and the command that reproduces this run</h2>'
            f'<pre class="cmd" id="command">{_esc(command)}</pre><dl class="settings">{dl}</dl>')


def _plots_html(report: Report) -> str:
    """The report's metric-vs-size plots as inline SVG (text kept as text)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return ""
    figs = []
    if len({r["size"] for r in report.rows}) < 2:
        return ""  # a line per variant needs two sizes
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        for m in report.metrics:
            for q in dict.fromkeys(r["jpeg"] for r in report.rows):
                fig = report.plot_figure(m, q, figsize=(4.6, 3.1))
                if fig is None:
                    continue
                buf = io.StringIO()
                fig.savefig(buf, format="svg")
                plt.close(fig)
                svg = buf.getvalue()
                svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.find("<svg"):], flags=re.S)
                figs.append(f'<figure class="plot">{svg}</figure>')
    if not figs:
        return ""
    return '<h2 id="plots">Plots</h2><div class="plots">' + "".join(figs) + "</div>"


def _summary_html(report: Report) -> str:
    out = ['<h2 id="summary">Summary</h2>', _winners_html(report)]
    jpegs = list(dict.fromkeys(r["jpeg"] for r in report.rows))
    out.append('<div class="pivots">')
    sizes = sorted({r["size"] for r in report.rows})
    if len(sizes) == 1:  # one size: one table of every metric per JPEG setting
        out += [_metrics_table_html(report, sizes[0], q) for q in jpegs]
        jpegs = []
    for m in report.metrics:
        for q in jpegs:
            digits = 0 if all(isinstance(r.get(m), int) for r in report.rows if r.get(m) is not None) else 3
            out.append(_pivot_html(report, m, q, report.higher_is_better.get(m, True), digits))
    for q in jpegs:
        out.append(_pivot_html(report, "seconds_per_item", q, False, 3,
                               caption=f"seconds per item (lower is better), {_jpeg_label(q)}"))
    out.append("</div>")
    n = sorted({r.get("n") for r in report.rows})
    fails = sum(int(r.get("failures") or 0) for r in report.rows)
    out.append(f'<p class="muted">Each cell: one variant at one size over n = {_esc(", ".join(map(str, n)))} '
               f"items ({fails} failures in all; hover a cell for its own). ★ marks the best of each column; "
               "the other cells are tinted by their change against <code>none</code> (the crop as it is): "
               "green better, red worse.</p>")
    return "\n".join(out)


def _records_json(records: Sequence[Record], with_images: set[str], task: CompareTask) -> list[list[Any]]:
    out = []
    for r in records:
        truth = r.get("text")
        if task.name == "face":
            truth = r.get("identity")
        out.append([r.id, _safe(r.id), None if truth is None else str(truth),
                    int(bool(r.get("case_sensitive", True))), int(r.id in with_images)])
    return out


def _json_for_script(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def load_template() -> str:
    """The page's HTML/CSS/JS template (package data ``preproc/compare/report_template.html``)."""
    return resources.files(__package__).joinpath(_TEMPLATE).read_text(encoding="utf-8")


def build_page_data(report: Report, task: CompareTask, variants: Sequence[Variant], records: Sequence[Record],
                    cache: ResultCache, image_ids: set[str] | None = None,
                    out_dir: Path | None = None) -> dict[str, Any]:
    """The browser's data: variants, settings, records and the task's items (see :class:`HtmlContext`).

    With ``out_dir``, each item gets a last element: per record of the item, 1 when its crop
    image is in ``report_files/`` (the page shows no image for the others).
    """
    from .runner import combine_sample

    settings = [(r["size"], r["jpeg"]) for r in report.rows]
    settings = list(dict.fromkeys(settings))
    settings.sort(key=lambda t: (t[1] is not None, t[1] or 0, t[0]))
    vlist = list(variants)
    results: dict[tuple[int, int], dict[str, Any]] = {}
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    by_key = {(r["variant"], r["size"], r["jpeg"]): r for r in report.rows}
    for vi, v in enumerate(vlist):
        for si, (size, q) in enumerate(settings):
            results[(vi, si)] = {r.id: combine_sample(task, v, r.id, size, q, cache) for r in records}
            if (v.name, size, q) in by_key:
                rows[(vi, si)] = by_key[(v.name, size, q)]
    ctx = HtmlContext(list(records), vlist, settings, results, rows)
    samples = task.html_samples(ctx)
    if image_ids is None:
        image_ids = {r.id for r in records}
    # per item and record: is the crop on disk (not when degrading failed, or images were not kept)
    if out_dir is not None:
        recs = ctx.records
        for it in samples["items"]:
            size, q = settings[it[0]]
            it.append([int(recs[i].id in image_ids and report_image_path(out_dir, recs[i].id, size, q, "none").is_file())
                       for i in it[1]])
    return {
        "task": report.task,
        "files": REPORT_FILES,
        "size_label": report.size_label,
        "variants": [v.name for v in vlist],
        "modes": [v.mode for v in vlist],
        "cands": [list(v.candidates) for v in vlist],
        "settings": [[s, q] for s, q in settings],
        "recs": _records_json(records, image_ids, task),
        **samples,
    }


def render_html(report: Report, data: dict[str, Any], command: str, title: str | None = None) -> str:
    """The whole page: the template with the static summary and the browser's data filled in."""
    s = report.settings
    ds = Path(str(s.get("dataset", ""))).name or "dataset"
    title = title or f"preproc compare: {report.task} on {ds}"
    files = [("report.json", "report.json"), ("report.md", "report.md"), ("contact_sheet.png", "contact sheet")]
    links = " · ".join(f'<a href="{_esc(f)}">{_esc(t)}</a>' for f, t in files)
    intro = (f'<p class="lead">{_esc(s.get("samples"))} samples of <code>{_esc(ds)}</code>, degraded to '
             f'{_esc(report.size_label)} {_esc(", ".join(str(x) for x in s.get("sizes") or []))} '
             f'({_esc(", ".join(_jpeg_label(q) for q in s.get("jpeg") or [None]))}), read through '
             f'{len(report.variants)} variants. Files: {links}.</p>')
    static = "\n".join([intro, _summary_html(report), _plots_html(report), _chosen_html(report),
                        _settings_html(report, command)])
    page = load_template()
    # one pass over the template, so a value can never be taken for a later placeholder
    values = {"TITLE": _esc(title), "STATIC": static,
              "GENERATED": _esc(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), "DATA": _json_for_script(data)}
    return re.sub(r"__PREPROC_([A-Z]+)__", lambda m: values.get(m.group(1), m.group(0)), page)


def write_html_report(report: Report, out_dir: Path, task: CompareTask, variants: Sequence[Variant],
                      records: Sequence[Record], cache: ResultCache, image_ids: set[str] | None = None) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path.

    ``records``: the run's records; ``image_ids``: those whose images the runner kept in
    ``report_files/`` (default: all).
    """
    data = build_page_data(report, task, variants, records, cache, image_ids, Path(out_dir))
    page = render_html(report, data, reproduce_command(report, task, out_dir))
    return write_text_atomic(Path(out_dir) / "report.html", page)
