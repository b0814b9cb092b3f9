"""Variants: how a comparison turns one degraded crop into the image(s) a recognizer reads.

A **candidate** is a named function ``fn(crop, ctx) -> PIL.Image``: ``none`` (the crop
as it is), ``default`` (exactly what ``preproc.enhance(crop, task=...)`` returns when no
upscaler is named: the preset's ``"auto"`` backend rule and the gate, which may skip),
every registered upscaler name (through :class:`preproc.Enhancer` with the task's preset,
i.e. at the gate's scale; ``NAME@S`` at the forced scale ``S``, e.g. ``text-sr@2``), and the registered extras (``cleanup``, ``cleanup-bin`` for
OCR; add more with :func:`register_candidate`). ``NAME~VIEW`` is candidate ``NAME`` redrawn
before it is read (:data:`VIEWS`: ``thick`` strokes, ``xF`` resized by ``F``), e.g.
``default~thick``; the image of ``NAME`` is computed once per crop and shared by its views.
:func:`describe_candidates` says what ``default`` resolves to here (the report shows it
under ``settings["resolved"]``).

A **variant** is what a report row is about: a mode and a tuple of candidates.

* ``NAME`` (a candidate name): mode ``single``;
* ``NAME+guard``: mode ``guard``, candidates ``(NAME, "none")``: the enhanced image is
  kept unless the original crop is recognised more confidently (``keep_if_better``; the
  OCR task uses :func:`preproc.hooks.guard_choice` with the rule fitted for ``NAME``);
* ``select`` (or any mode in the task's ``modes``, e.g. ``fuse`` for faces): the task's
  ``default_candidates`` plus every other candidate the run computes, in that order -
  except a mode with its own fixed set (the task's ``mode_candidates``: OCR's bare ``vote``
  is :data:`preproc.vote.DEFAULT_CANDIDATES`, what :func:`preproc.read_voted` reads);
* ``select:a/b/c``: the same mode over exactly the candidates ``a``, ``b``, ``c``
  (OCR also has ``vote`` / ``vote:a/b/c``: :mod:`preproc.vote`).

Each candidate is computed and recognised once per crop, and shared by every variant
that uses it; a multi-candidate variant costs the sum of its candidates' seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..errors import ConfigError
from ..upscalers import upscaler_class, upscaler_names

logger = logging.getLogger(__name__)

GUARD_SUFFIX = "+guard"
#: The candidate that is ``enhance(crop, task=...)`` with no upscaler named.
DEFAULT_CANDIDATE = "default"
DEFAULT_UPSCALER = "auto"
#: ``NAME@S``: candidate ``NAME`` at the forced scale ``S``.
SCALE_SEP = "@"
#: ``NAME~VIEW``: candidate ``NAME`` redrawn by view ``VIEW`` (:data:`VIEWS`).
VIEW_SEP = "~"
#: Images kept per :class:`CandidateContext` for views to reuse (a few crops' candidates).
MEMO_SIZE = 16


@dataclass
class CandidateContext:
    """What a candidate function may use: the task's preset and loaded enhancers (one per backend)."""

    preset: str
    device: Any = None
    dtype: Any = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _enhancers: dict[str, Any] = field(default_factory=dict, repr=False)
    _memo: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def computed(self, name: str, crop: Image.Image, fn: CandidateFn) -> Image.Image:
        """``fn(crop, self)``, kept for the candidate's views: a candidate and its ``~VIEW``
        variants cost one enhancement per crop (the last :data:`MEMO_SIZE` images are kept)."""
        key = (name, crop.mode, crop.size, hashlib.blake2b(crop.tobytes(), digest_size=16).digest())
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        img = fn(crop, self)
        with self._lock:
            self._memo[key] = img
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return img

    def upscale(self, image: Image.Image, upscaler: str, scale: float | None = None) -> Image.Image:
        """``image`` through ``preproc.Enhancer(preset, upscaler)``: the gate picks the scale unless ``scale``."""
        enh = self._enhancers.get(upscaler)
        if enh is None:
            from ..enhance import Enhancer

            enh = Enhancer(self.preset, upscaler, device=self.device, dtype=self.dtype, progress=False, **self.overrides)
            self._enhancers[upscaler] = enh
        return enh.enhance(image, scale=scale).image


CandidateFn = Callable[[Image.Image, CandidateContext], Image.Image]

_CANDIDATES: dict[str, tuple[CandidateFn, tuple[str, ...] | None]] = {}


def register_candidate(name: str, fn: CandidateFn, tasks: Sequence[str] | None = None) -> None:
    """Register candidate ``name``: ``fn(crop, ctx) -> PIL.Image``, for ``tasks`` (None: every task).

    A registered name shadows an upscaler of the same name.
    """
    if not name or GUARD_SUFFIX in name or any(ch in name for ch in ",:/@~"):
        raise ConfigError(f"candidate name {name!r} must be non-empty without ',', ':', '/', '@', '~' or '+guard'")
    _CANDIDATES[name] = (fn, tuple(tasks) if tasks is not None else None)


def _none(crop: Image.Image, ctx: CandidateContext) -> Image.Image:
    return crop


def _default(crop: Image.Image, ctx: CandidateContext) -> Image.Image:
    # upscaler "auto" is what Enhancer(task) / enhance(crop, task=...) use when none is named
    return ctx.upscale(crop, DEFAULT_UPSCALER)


def _cleanup(crop: Image.Image, ctx: CandidateContext) -> Image.Image:
    from ..cleanup import clean_text

    return clean_text(ctx.upscale(crop, "bicubic"))


def _cleanup_bin(crop: Image.Image, ctx: CandidateContext) -> Image.Image:
    from ..cleanup import clean_text

    return clean_text(ctx.upscale(crop, "bicubic"), binarize=True)


register_candidate("none", _none)
register_candidate(DEFAULT_CANDIDATE, _default)
register_candidate("cleanup", _cleanup, tasks=("ocr",))
register_candidate("cleanup-bin", _cleanup_bin, tasks=("ocr",))


def candidate_names(task: str) -> list[str]:
    """Every candidate usable for ``task``: the registered ones and the upscaler names."""
    own = [n for n, (_, tasks) in _CANDIDATES.items() if tasks is None or task in tasks]
    return sorted(set(own) | set(upscaler_names()))


def _at_scale(name: str) -> tuple[str, float] | None:
    """``("text-sr", 2.0)`` for ``"text-sr@2"``: an upscaler (or ``default``) at a forced scale."""
    base, sep, tail = name.rpartition(SCALE_SEP)
    if not sep:
        return None
    try:
        scale = float(tail)
    except ValueError:
        raise ConfigError(f"{name!r}: the scale after {SCALE_SEP!r} has to be a number, e.g. {base}@2") from None
    if not 1.0 <= scale <= 16.0:
        raise ConfigError(f"{name!r}: the scale has to be in [1, 16] but is {scale}")
    if base != DEFAULT_CANDIDATE and base not in upscaler_names():
        raise ConfigError(f"{name!r}: {SCALE_SEP}SCALE applies to an upscaler or 'default', not {base!r}; "
                          f"upscalers: {', '.join(upscaler_names())}")
    return base, scale


# --- views: a candidate's image redrawn before it is read ---------------------------------------
def _thick(img: Image.Image) -> Image.Image:
    """Strokes one pixel bolder on each side: the darkest value of each 3x3 window, or the
    lightest where the background is dark (light text: its median is below mid-grey)."""
    from PIL import ImageFilter, ImageStat

    dark_background = ImageStat.Stat(img.convert("L")).median[0] < 128
    return img.filter(ImageFilter.MaxFilter(3) if dark_background else ImageFilter.MinFilter(3))


def _resized(factor: float) -> Callable[[Image.Image], Image.Image]:
    def resize(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.LANCZOS)

    return resize


#: The views ``NAME~VIEW`` takes: ``thick`` (:func:`_thick`); ``xF`` (``x1.4``): Lanczos
#: resize by ``F`` in [0.25, 4]. Several views of one enhancement give a vote readings that
#: differ where the recognizer is unsure (Lund et al. 2013 voted over binarisations).
VIEWS = ("thick", "xF")


def view_fn(view: str) -> Callable[[Image.Image], Image.Image]:
    """The image function of view ``view`` (:data:`VIEWS`)."""
    if view == "thick":
        return _thick
    if view.startswith("x"):
        try:
            factor = float(view[1:])
        except ValueError:
            factor = 0.0
        if 0.25 <= factor <= 4.0:
            return _resized(factor)
    raise ConfigError(f"unknown view {view!r}; expected one of: thick, xF with F in [0.25, 4] (e.g. x1.4)")


def base_candidate(name: str) -> str:
    """The candidate under any view and forced scale: ``text-sr@2~thick`` -> ``text-sr``."""
    return name.split(VIEW_SEP, 1)[0].split(SCALE_SEP, 1)[0]


def candidate_fn(name: str, task: str) -> CandidateFn:
    """The function producing candidate ``name`` for ``task``.

    ``NAME@S`` (``text-sr@2``, ``default@3``): upscaler ``NAME`` at the forced scale ``S``
    instead of the gate's (``enhance(crop, scale=S)``). ``NAME~VIEW``: candidate ``NAME``
    redrawn by :func:`view_fn` (``NAME``'s image is shared through
    :meth:`CandidateContext.computed`).
    """
    if VIEW_SEP in name:
        base, _, view = name.rpartition(VIEW_SEP)
        if not base:
            raise ConfigError(f"{name!r}: {VIEW_SEP}VIEW follows a candidate, e.g. default{VIEW_SEP}thick")
        inner, draw = _memoised(base, task), view_fn(view)
        return lambda crop, ctx: draw(inner(crop, ctx))
    return _memoised(name, task)


def _memoised(name: str, task: str) -> CandidateFn:
    fn = _plain_candidate_fn(name, task)
    return lambda crop, ctx: ctx.computed(name, crop, fn) if isinstance(ctx, CandidateContext) else fn(crop, ctx)


def _plain_candidate_fn(name: str, task: str) -> CandidateFn:
    at = _at_scale(name)
    if at is not None:
        base, scale = at
        up = DEFAULT_UPSCALER if base == DEFAULT_CANDIDATE else base
        return lambda crop, ctx: ctx.upscale(crop, up, scale=scale)
    if name in _CANDIDATES:
        fn, tasks = _CANDIDATES[name]
        if tasks is not None and task not in tasks:
            raise ConfigError(f"candidate {name!r} is for task(s) {', '.join(tasks)}, not {task!r}")
        return fn
    if name in upscaler_names():
        return lambda crop, ctx: ctx.upscale(crop, name)
    raise ConfigError(f"unknown variant {name!r} for task {task!r}; known: {', '.join(candidate_names(task))}")


def candidate_unavailable(name: str) -> str | None:
    """Why candidate ``name`` cannot run here (an upscaler without weights), or None."""
    name = name.split(VIEW_SEP, 1)[0]
    at = _at_scale(name) if SCALE_SEP in name else None
    if at is not None:
        name = at[0] if at[0] != DEFAULT_CANDIDATE else name
    if name in _CANDIDATES or name not in upscaler_names():
        return None
    try:
        ok = upscaler_class(name).is_available()
    except ImportError as e:
        return f"backend {name!r} cannot be imported: {e}"
    return None if ok else f"backend {name!r} has no weights available here"


def describe_candidates(names: Sequence[str], preset: str, device: Any = None) -> dict[str, str]:
    """What the candidates in ``names`` resolve to here: ``{"default": "text-sr (auto for task ...)"}``.

    Only candidates whose meaning depends on the machine (``default``: the preset's auto
    rule) are described; the gate still decides per crop whether to enhance at all.
    """
    out: dict[str, str] = {}
    if DEFAULT_CANDIDATE in names:
        from ..enhance import Enhancer
        from ..upscalers.auto import SMALL_CROPS, auto_backends

        enh = Enhancer(preset, device=device, progress=False)
        backend, why = enh.backend_name()
        text = f"{backend} ({why}); the {preset} gate skips crops it need not enlarge"
        small = SMALL_CROPS.get(preset)
        if small is not None and small[1] in auto_backends(preset, device):
            text += f"; crops at most {small[0]} px tall get {small[1]}"
        out[DEFAULT_CANDIDATE] = text
    return out


def weights_identity(names: Sequence[str], preset: str, device: Any = None,
                     overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{candidate: sha256 prefix}`` of the weights file each candidate's backend loads here.

    Part of the compare cache's fingerprint, so results of replaced weights (a new shipped
    ``text-sr``, another ``model=`` file) are never mixed with those of the old ones.
    Without ``model=``, only our shipped-weights backends (text-sr, face-sr...) are hashed;
    candidates without a weights *file* (bicubic, cleanup, a hub id or folder) are left out.
    """
    from pathlib import Path

    from ..cache import file_digest
    from ..upscalers.auto import auto_backends
    from ..upscalers.shipped import ShippedWeightsUpscaler

    model = (overrides or {}).get("model")
    out: dict[str, str] = {}
    for name in names:
        bases = [base_candidate(name)]
        if bases[0] == DEFAULT_CANDIDATE:
            bases = auto_backends(preset, device)  # small crops get a model of their own
        digests: list[str] = []
        for base in bases:
            if base not in upscaler_names():
                continue
            cls = upscaler_class(base)
            shipped = isinstance(cls, type) and issubclass(cls, ShippedWeightsUpscaler)
            path = model if model is not None else (cls.default_weights() if shipped else None)
            if path is None or not Path(str(path)).is_file():
                continue
            digest = file_digest(path)[:16]
            if digest not in digests:  # model= gives every backend the same file
                digests.append(digest)
        if digests:
            out[name] = "+".join(digests)
    return out


@dataclass(frozen=True)
class Variant:
    """One report row's method: ``mode`` (single, guard, select, fuse...) over ``candidates``."""

    name: str
    mode: str
    candidates: tuple[str, ...]


def parse_variants(
    names: Sequence[str],
    task: str,
    modes: Sequence[str],
    default_candidates: Sequence[str],
    mode_candidates: Mapping[str, Sequence[str]] | None = None,
) -> list[Variant]:
    """Parse variant names (see the module docstring) for a task with multi-candidate ``modes``;
    ``mode_candidates``: the fixed candidates of a bare mode that has its own (e.g. OCR's ``vote``)."""
    fixed = dict(mode_candidates or {})
    if not names:
        raise ConfigError("no variants given; expected e.g. none,bicubic")
    if len(set(names)) != len(names):
        raise ConfigError(f"variants are repeated: {list(names)}")
    parsed: list[Variant | tuple[str, str]] = []
    for raw in names:
        name = raw.strip()
        if name.endswith(GUARD_SUFFIX):
            base = name[: -len(GUARD_SUFFIX)]
            if base in modes or ":" in base or base == "none":
                raise ConfigError(f"{name!r}: +guard applies to one enhancing variant (e.g. realesrgan+guard)")
            candidate_fn(base, task)
            parsed.append(Variant(name, "guard", (base, "none")))
            continue
        mode, sep, listed = name.partition(":")
        if mode in modes:
            if sep:
                cands = tuple(c for c in listed.split("/") if c)
                if len(cands) < 2:
                    raise ConfigError(f"{name!r}: {mode} needs at least two candidates, e.g. {mode}:none/bicubic")
                for c in cands:
                    candidate_fn(c, task)
                parsed.append(Variant(name, mode, cands))
            elif mode in fixed:
                for c in fixed[mode]:
                    candidate_fn(c, task)
                parsed.append(Variant(name, mode, tuple(fixed[mode])))
            else:
                parsed.append((name, mode))  # candidates filled in below
            continue
        if sep:
            raise ConfigError(f"{name!r}: only the modes {', '.join(modes)} take a ':' list")
        candidate_fn(name, task)
        parsed.append(Variant(name, "single", (name,)))
    # A bare mode combines the task's defaults and everything else the run computes.
    computed: list[str] = []
    for v in parsed:
        if isinstance(v, Variant):
            computed += [c for c in v.candidates if c not in computed]
    pool = list(dict.fromkeys([*default_candidates, *computed]))
    for c in pool:
        candidate_fn(c, task)
    return [Variant(v[0], v[1], tuple(pool)) if isinstance(v, tuple) else v for v in parsed]
