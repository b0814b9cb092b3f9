"""The ``sd-x4`` backend: Stable Diffusion x4 upscaler with latent-space tiled denoising.

Components come from diffusers' ``StableDiffusionUpscalePipeline.from_pretrained`` (a
hub id, by default ``stabilityai/stable-diffusion-x4-upscaler``, or a local folder), or
from a pipeline object the caller already loaded. Nothing is downloaded unless the
caller asks for it (``local_files_only=False``); without the weights the constructor
raises :class:`~preproc.errors.ModelUnavailableError` saying how to get them.

Sampling (see :mod:`preproc.upscalers.sd_x4_sampling`) denoises the whole latent in
overlapping tiles at every step and decodes it in overlapping tiles, so memory follows
the tile, not the crop. Precision: UNet and text encoder in bf16 on CPU and fp16 on
CUDA by default; latents and scheduler in fp32; VAE always fp32.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..devices import memory_budget
from ..errors import ConfigError, ModelUnavailableError, WeightsError
from ..tiling import padded_length
from .base import RunInfo, SizeRequirements, Upscaler
from .sd_x4_sampling import LATENT_MULTIPLE, SamplingStats, decode, denoise, prepare_noise
from .tiled import pad_reflect

if TYPE_CHECKING:
    from ..presets import Preset

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stabilityai/stable-diffusion-x4-upscaler"
_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "low_res_scheduler")
_OFFLINE_BACKENDS = "realesrgan, bicubic, lanczos"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _how_to_get(model: str, offline: bool) -> str:
    why = "offline (local_files_only=True or HF_HUB_OFFLINE=1)" if offline else "and could not be downloaded"
    return (
        f"SD x4 weights {model!r} are not in the local Hugging Face cache {why}. Get them with "
        f"`hf download {DEFAULT_MODEL} --local-dir path/to/sd-x4` on a machine with internet and pass "
        f"model='path/to/sd-x4', or allow a download with backend_options={{'local_files_only': False}} "
        f"(and HF_HUB_OFFLINE unset). Backends that work offline: {_OFFLINE_BACKENDS}."
    )


def load_pipeline(
    model: Any = None,
    *,
    local_files_only: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """A ``StableDiffusionUpscalePipeline`` from a hub id, a local folder, or an object.

    ``model``: ``None`` (the default hub id), a hub id ``"org/name"``, a folder written
    by ``save_pretrained`` (or a hub snapshot), or a pipeline-like object with ``unet``,
    ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler`` and ``low_res_scheduler``
    (returned as it is). ``local_files_only`` (default True) never touches the network;
    ``HF_HUB_OFFLINE=1`` forces it.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        missing = [c for c in _COMPONENTS if getattr(model, c, None) is None]
        if missing:
            raise ConfigError(
                f"model must be a hub id, a folder or a StableDiffusionUpscalePipeline; got "
                f"{type(model).__name__} without {', '.join(missing)}"
            )
        return model
    from diffusers import StableDiffusionUpscalePipeline

    name = str(model) if model is not None else DEFAULT_MODEL
    path = Path(name).expanduser()
    offline = local_files_only or _env_true("HF_HUB_OFFLINE")
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelUnavailableError(
                f"{str(path)!r} has no model_index.json; expected a folder written by save_pretrained or a "
                f"snapshot of {DEFAULT_MODEL}"
            )
        source = str(path)
    elif name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelUnavailableError(f"no folder at {name!r} and it is not a hub id 'org/name'. "
                                    + _how_to_get(name, offline))
    else:
        source = name
    local = path.exists()
    try:
        pipe = StableDiffusionUpscalePipeline.from_pretrained(
            source, local_files_only=offline, cache_dir=cache_dir
        )
    except OSError as e:  # diffusers/huggingface_hub report missing files as OSError subclasses
        if local:  # a folder that is there but incomplete: the cache advice does not apply
            raise WeightsError(f"SD x4 folder {name!r} is incomplete or damaged: {type(e).__name__}: {e}. "
                               + _how_to_repair(name)) from e
        raise ModelUnavailableError(_how_to_get(name, offline) + f" ({type(e).__name__}: {e})") from e
    except Exception as e:  # noqa: BLE001 - safetensors, JSON, shape and config errors: all mean "damaged"
        raise WeightsError(f"could not load an SD x4 pipeline from {name!r}: {type(e).__name__}: {e}. "
                           + _how_to_repair(name)) from e
    max_len = getattr(pipe.tokenizer, "model_max_length", None)
    if not isinstance(max_len, int) or not 0 < max_len <= 1_000_000:  # a tokenizer rebuilt without its config
        raise WeightsError(f"the tokenizer of SD x4 pipeline {name!r} is missing or incomplete (model_max_length "
                           f"{max_len}; expected 77): check its tokenizer/ folder. " + _how_to_repair(name))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _how_to_repair(model: str) -> str:
    return (f"Copy or download the folder again (`hf download {DEFAULT_MODEL} --local-dir {model}`), "
            "or write it again with save_pretrained.")


class SDx4Upscaler(Upscaler):
    """Stable Diffusion x4 upscaler, tiled in latent space. ``scale`` is 4.

    ``model``: hub id, folder or loaded pipeline (see :func:`load_pipeline`); a loaded
    pipeline's UNet and text encoder are moved to ``device``/``dtype`` and its VAE to
    float32, in place.
    ``dtype``: UNet/text-encoder dtype (default bf16 on CPU, fp16 on CUDA; with a loaded
    pipeline, its UNet's dtype). ``memory_budget``: bytes (or ``"4G"``) one UNet/VAE call
    may use when ``tile=None`` (CUDA default: 60 % of free memory; CPU:
    ``$PREPROC_CPU_MEMORY_BUDGET`` or 4 GiB). ``decode_tile``: VAE tile side in input
    pixels (None: from the budget). ``eta``: DDIM eta.
    """

    name = "sd-x4"
    scale = 4
    #: Tiles and padded sizes on a grid of 8 input pixels (the UNet downsamples 3 times).
    size_requirements = SizeRequirements(minimum=LATENT_MULTIPLE, multiple_of=LATENT_MULTIPLE)
    needs_color_fix = True
    offline = False

    def __init__(
        self,
        model: Any = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        local_files_only: bool = True,
        cache_dir: str | os.PathLike | None = None,
        memory_budget: int | str | None = None,
        decode_tile: int | None = None,
        eta: float = 0.0,
    ):
        pipe = load_pipeline(model, local_files_only=local_files_only, cache_dir=cache_dir)
        if dtype is None and not isinstance(model, (str, os.PathLike, type(None))):
            dtype = next(pipe.unet.parameters()).dtype
        super().__init__(device=device, dtype=dtype)
        self.pipe = pipe
        self.model_id = model if isinstance(model, (str, os.PathLike)) else (
            DEFAULT_MODEL if model is None else type(model).__name__)
        self.memory_budget = memory_budget
        self.decode_tile = decode_tile
        self.eta = eta
        self._embeds: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._moved()

    def default_dtype(self, device: torch.device) -> torch.dtype:
        """fp16 on CUDA, bf16 elsewhere (AMX/AVX-512 CPUs run bf16 2-3x faster than fp32)."""
        return torch.float16 if device.type == "cuda" else torch.bfloat16

    def _moved(self) -> None:
        p = self.pipe
        # fp16 VAE overflows (NaN/black images): it stays fp32 whatever the UNet's dtype.
        for module, dtype in ((p.unet, self.dtype), (p.text_encoder, self.dtype), (p.vae, torch.float32)):
            w = next(module.parameters())
            if w.device != self.device or w.dtype != dtype:
                module.to(self.device, dtype)
        self._embeds.clear()

    @classmethod
    def is_available(cls) -> bool:
        """Whether the default weights are in the local Hugging Face cache (no network)."""
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - a diffusers dependency
            return False
        found = try_to_load_from_cache(DEFAULT_MODEL, "model_index.json")
        return isinstance(found, str)

    # --- memory ------------------------------------------------------------------
    def unet_bytes(self, side: int, images: int) -> int:
        """Rough peak activation bytes of one UNet call on ``images`` latents of ``side``^2.

        About ``16 * block_out_channels[0]`` values per latent pixel and image are alive
        at the peak (skip connections of every level plus the transformer feed-forward
        of the first level), plus the self-attention scores of the deepest level.
        """
        c0 = self.pipe.unet.config.block_out_channels[0]
        elt = torch.finfo(self.dtype).bits // 8
        conv = images * side * side * 16 * c0 * elt
        tokens = (side // 8) ** 2
        heads = max(1, self.pipe.unet.config.block_out_channels[-1] // 64)
        return int(conv + images * heads * tokens * tokens * elt)

    def vae_bytes(self, side: int) -> int:
        """Rough peak activation bytes of decoding one ``side``^2 latent tile (fp32)."""
        c_last = self.pipe.vae.config.block_out_channels[0]
        s = self.scale
        return int((side * s) ** 2 * 6 * c_last * 4 + (side * side) ** 2 * 4)

    def _tile_for(self, cost, height: int, width: int, budget: int, floor: int) -> int:
        """Largest tile (multiple of 8, >= ``floor``) whose ``cost(side)`` fits ``budget``.

        A tile of side ``s`` covers ``min(s, H) x min(s, W)`` pixels; its cost is taken at
        the side of the square of that area. The whole image's side when it fits;
        ``floor`` (with a warning) when nothing does.
        """

        def need(s: int) -> int:
            return cost(math.isqrt(min(s, height) * min(s, width)))

        full = max(height, width)
        if need(full) <= budget:
            return full
        side = floor
        if need(side) > budget:
            logger.warning("memory budget %d bytes is below the estimate for the smallest tile %d px (%d bytes)",
                           budget, floor, need(floor))
        while side + LATENT_MULTIPLE < full and need(side + LATENT_MULTIPLE) <= budget:
            side += LATENT_MULTIPLE
        return side

    # --- sampling ----------------------------------------------------------------
    def encode_prompt(self, prompt: str, negative_prompt: str | None, guidance: bool) -> torch.Tensor:
        """``(2, 77, D)`` (negative, positive) with guidance, else ``(1, 77, D)``; cached."""
        key = (prompt, negative_prompt, guidance)
        if key in self._embeds:
            self._embeds.move_to_end(key)
            return self._embeds[key]
        with torch.inference_mode():
            pos, neg = self.pipe.encode_prompt(prompt, self.device, 1, guidance, negative_prompt or None)
        emb = torch.cat([neg, pos]) if guidance else pos
        self._embeds[key] = emb
        while len(self._embeds) > 8:
            self._embeds.popitem(last=False)
        return emb

    def sample(
        self,
        image: np.ndarray,
        *,
        prompt: str = "",
        negative_prompt: str | None = None,
        num_inference_steps: int = 75,
        guidance_scale: float = 9.0,
        noise_level: int = 20,
        generator: torch.Generator | list[torch.Generator] | None = None,
        tile: int | None = None,
        overlap: int = 16,
        batch_size: int = 4,
        blend: str = "cosine",
        progress: bool | None = None,
    ) -> tuple[np.ndarray, SamplingStats]:
        """Upscale ``(H, W, 3)`` float in [0, 1] to ``(4H, 4W, 3)`` float32 in [0, 1].

        Keywords follow diffusers (defaults are the pipeline's real ones); ``tile`` and
        ``overlap`` are in input pixels (``tile=None``: from the memory budget),
        ``batch_size`` tiles go through the UNet together. ``H`` and ``W`` are padded by
        reflection to multiples of 8 and the output cropped back.
        """
        max_level = self.pipe.config.max_noise_level
        if not 0 <= noise_level <= max_level:
            raise ConfigError(f"`noise_level` has to be in [0, {max_level}] but is {noise_level}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ConfigError(f"image must be (H, W, 3) float in [0, 1]; got shape {image.shape}")
        if batch_size < 1:
            raise ConfigError(f"`batch_size` has to be >= 1 but is {batch_size}")
        h, w = image.shape[:2]
        ph, pw = padded_length(h, LATENT_MULTIPLE, LATENT_MULTIPLE), padded_length(w, LATENT_MULTIPLE, LATENT_MULTIPLE)
        x = torch.from_numpy(np.ascontiguousarray(pad_reflect(image.astype(np.float32), ph, pw).transpose(2, 0, 1)))
        x = x[None].to(self.device) * 2.0 - 1.0
        guidance = guidance_scale > 1.0
        budget = memory_budget(self.device, self.memory_budget)
        images = 2 if guidance else 1
        min_tile = max(2 * LATENT_MULTIPLE, padded_length(2 * overlap + LATENT_MULTIPLE, LATENT_MULTIPLE))
        if tile is None:
            tile = self._tile_for(lambda s: self.unet_bytes(s, images), ph, pw, budget, min_tile)
            per_tile = self.unet_bytes(math.isqrt(min(tile, ph) * min(tile, pw)), images)
            batch_size = max(1, min(batch_size, budget // max(1, per_tile)))
        dtile = self.decode_tile or self._tile_for(self.vae_bytes, ph, pw, budget, min_tile)
        stats = SamplingStats()
        with torch.inference_mode():
            embeds = self.encode_prompt(prompt, negative_prompt, guidance)
            low_res, latents = prepare_noise(self.pipe, x, noise_level, generator)
            latents = denoise(
                self.pipe, latents, low_res, embeds, num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale, noise_level=noise_level, tile=tile, overlap=overlap,
                batch_size=batch_size, blend=blend, generator=generator, eta=self.eta, min_tile=min_tile,
                progress=progress, stats=stats,
            )
            out = decode(self.pipe.vae, latents, tile=dtile, overlap=overlap, min_tile=min_tile, stats=stats)
        out = (out[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(out[: h * self.scale, : w * self.scale]), stats

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        """Upscale ``(B, 3, h, w)`` in [0, 1] with the pipeline's defaults and global RNG."""
        outs = [torch.from_numpy(self.sample(b.float().permute(1, 2, 0).cpu().numpy())[0]) for b in batch]
        return torch.stack(outs).permute(0, 3, 1, 2)

    def run(
        self,
        image: np.ndarray,
        preset: Preset,
        *,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
    ) -> tuple[np.ndarray, RunInfo]:
        """Upscale ``(H, W, 3)`` float by 4 with the preset's prompt, steps, guidance, tiling."""
        out, st = self.sample(
            image, prompt=preset.prompt, negative_prompt=preset.negative_prompt,
            num_inference_steps=preset.num_inference_steps, guidance_scale=preset.guidance_scale,
            noise_level=preset.noise_level, generator=generator, tile=preset.tile, overlap=preset.overlap,
            batch_size=preset.batch_size, blend=preset.blend, progress=progress,
        )
        h, w = image.shape[:2]
        ph, pw = self.size_requirements.padded_size(h, w)
        overlap = -(-preset.overlap // LATENT_MULTIPLE) * LATENT_MULTIPLE  # as the plan rounds it
        info = RunInfo(
            tiles=st.tiles, grid=st.grid, tile=st.tile, overlap=overlap if st.tiles > 1 else 0,
            batch_size=st.batch_size, padded_to=(ph, pw) if (ph, pw) != (h, w) else None,
            extra={"decode_tile": st.decode_tile, "decode_tiles": st.decode_tiles, "oom_retries": st.oom_retries,
                   "unet_calls": st.unet_calls, "steps": preset.num_inference_steps,
                   "noise_level": preset.noise_level, "guidance_scale": preset.guidance_scale,
                   "denoise_seconds": st.denoise_seconds, "decode_seconds": st.decode_seconds},
        )
        return out, info
