"""Latent-space tiled sampling and tiled VAE decoding for the SD x4 upscaler.

The x4 upscaler's latent has the input's own height and width, so one tile plan
(:func:`preproc.tiling.plan_tiles`, in input pixels) serves the latent, the noised
low-res image, and (scaled by 4) the decoded output. At every denoising step the UNet
sees batches of latent tiles with their low-res tiles; the noise predictions are blended
into one full-size prediction with smooth weights (MultiDiffusion / Mixture of
Diffusers), and the scheduler steps the *whole* latent. Random numbers are drawn once,
for the whole image, from the caller's generator, in the order diffusers'
``StableDiffusionUpscalePipeline`` draws them: with one tile covering the image the
result equals the pipeline's.

Latents, the scheduler and the blend run in float32 whatever the UNet's dtype (the
pipeline keeps latents in the text encoder's dtype; in half precision we are *more*
accurate than it, not bit-equal). The VAE decodes in float32 (fp16 overflows).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..devices import is_out_of_memory
from ..tiling import BlendAccumulator, TileBox, plan_tiles, tile_weights

logger = logging.getLogger(__name__)

#: Tile sides and starts are multiples of this (the UNet downsamples 3 times: tiles on a
#: grid of 8 see the same strided-conv phase as the whole image would).
LATENT_MULTIPLE = 8


@dataclass
class SamplingStats:
    """What the sampler did: tile sides used, tiles per step, OOM retries, UNet calls."""

    tile: int = 0
    tiles: int = 1
    grid: tuple[int, int] = (1, 1)
    decode_tile: int = 0
    decode_tiles: int = 1
    batch_size: int = 1
    oom_retries: int = 0
    unet_calls: int = 0
    #: (step index, tile side) of every step, in order (shows where a retry shrank the tile).
    step_tiles: list[tuple[int, int]] = field(default_factory=list)
    #: ``time.perf_counter()`` at the end of every step (CUDA synchronised); for it/s.
    step_times: list[float] = field(default_factory=list)
    denoise_seconds: float = 0.0
    decode_seconds: float = 0.0


def unet_dtype(pipe: Any) -> torch.dtype:
    """The dtype of the pipeline's UNet weights."""
    return next(pipe.unet.parameters()).dtype


def _plan(height: int, width: int, tile: int, overlap: int, blend: str, device: torch.device):
    """Boxes and their ``(h, w)`` float32 weights (on ``device``) for a latent of that size."""
    boxes = plan_tiles(height, width, tile, overlap, LATENT_MULTIPLE, LATENT_MULTIPLE)
    kind = "cosine" if blend == "none" else blend
    weights = [torch.from_numpy(tile_weights(b, kind)).to(device, torch.float32) for b in boxes]
    return boxes, weights


def prepare_noise(
    pipe: Any,
    image: torch.Tensor,
    noise_level: int,
    generator: torch.Generator | list[torch.Generator] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise the low-res image and draw the initial latent, once for the whole image.

    ``image`` is ``(1, 3, H, W)`` float32 in [-1, 1]. Returns the noised image
    ``(1, 3, H, W)`` and the initial latent ``(1, C, H, W)`` (already scaled by the
    scheduler's ``init_noise_sigma``), both float32, drawn in the pipeline's order.
    """
    from diffusers.utils.torch_utils import randn_tensor

    device = image.device
    level = torch.tensor([noise_level], dtype=torch.long, device=device)
    noise = randn_tensor(image.shape, generator=generator, device=device, dtype=torch.float32)
    noised = pipe.low_res_scheduler.add_noise(image, noise, level)
    c = pipe.vae.config.latent_channels
    shape = (image.shape[0], c, image.shape[2], image.shape[3])
    latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
    return noised, latents * pipe.scheduler.init_noise_sigma


def predict_noise(
    pipe: Any,
    latent_input: torch.Tensor,
    low_res: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    noise_level: int,
    guidance_scale: float,
    boxes: list[TileBox],
    weights: list[torch.Tensor],
    batch_size: int,
    blend: str = "cosine",
    stats: SamplingStats | None = None,
) -> torch.Tensor:
    """One step's guided model output ``(1, C, H, W)`` float32, blended over ``boxes``.

    ``latent_input`` is the scheduler-scaled latent ``(1, C, H, W)``; ``low_res`` the
    noised image ``(1, 3, H, W)``; ``embeds`` ``(2, L, D)`` (negative, positive) with
    classifier-free guidance or ``(1, L, D)`` without. Tiles go through the UNet
    ``batch_size`` at a time (twice that many images with guidance).
    """
    cfg = embeds.shape[0] == 2
    dt = unet_dtype(pipe)
    # float32, not the accumulator's default float64: fast on GPUs, available on MPS, and
    # exact for one tile (weights 1).
    acc = BlendAccumulator(tuple(latent_input.shape[1:]), like=latent_input, dtype=torch.float32,
                           paste=blend == "none")
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        n = len(chunk)
        lat = torch.cat([latent_input[:, :, b.y0 : b.y1, b.x0 : b.x1] for b in chunk])
        img = torch.cat([low_res[:, :, b.y0 : b.y1, b.x0 : b.x1] for b in chunk])
        if cfg:
            lat, img = torch.cat([lat, lat]), torch.cat([img, img])
            emb = torch.cat([embeds[:1].expand(n, -1, -1), embeds[1:].expand(n, -1, -1)])
        else:
            emb = embeds.expand(n, -1, -1)
        x = torch.cat([lat, img], dim=1).to(dt)
        labels = torch.full((x.shape[0],), noise_level, dtype=torch.long, device=x.device)
        if stats is not None:
            stats.unet_calls += 1
        out = pipe.unet(x, t, encoder_hidden_states=emb.to(dt), class_labels=labels, return_dict=False)[0].float()
        if cfg:
            uncond, text = out.chunk(2)
            out = uncond + guidance_scale * (text - uncond)
        for j, b in enumerate(chunk):
            acc.add(out[j], b, weights[i + j])
    return acc.result(torch.float32)[None]


def denoise(
    pipe: Any,
    latents: torch.Tensor,
    low_res: torch.Tensor,
    embeds: torch.Tensor,
    *,
    num_inference_steps: int,
    guidance_scale: float,
    noise_level: int,
    tile: int,
    overlap: int,
    batch_size: int,
    blend: str = "cosine",
    generator: torch.Generator | list[torch.Generator] | None = None,
    eta: float = 0.0,
    min_tile: int = 16,
    progress: bool | None = None,
    stats: SamplingStats | None = None,
) -> torch.Tensor:
    """Run the sampler on the whole latent ``(1, C, H, W)`` float32; return the final latent.

    On out-of-memory inside a step, the tile side halves (down to ``min_tile``) and that
    step is retried; steps already taken are kept.
    """
    stats = stats if stats is not None else SamplingStats()
    h, w = latents.shape[-2:]
    pipe.scheduler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = pipe.scheduler.timesteps
    extra = pipe.prepare_extra_step_kwargs(generator, eta)
    boxes, weights = _plan(h, w, tile, overlap, blend, latents.device)
    stats.tiles, stats.batch_size = len(boxes), batch_size
    t_start = _now(latents.device)
    bar = tqdm(total=len(timesteps), desc="sd-x4 steps", unit="step", disable=_disable(progress), leave=False)
    try:
        i = 0
        while i < len(timesteps):
            t = timesteps[i]
            try:
                scaled = pipe.scheduler.scale_model_input(latents, t)
                pred = predict_noise(pipe, scaled, low_res, t, embeds, noise_level, guidance_scale,
                                     boxes, weights, batch_size, blend, stats)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                tile = _smaller_tile(exc, tile, boxes, min_tile, latents.device, "UNet")
                boxes, weights = _plan(h, w, tile, overlap, blend, latents.device)
                stats.oom_retries += 1
                stats.tiles = len(boxes)
                continue
            latents = pipe.scheduler.step(pred, t, latents, **extra, return_dict=False)[0]
            stats.step_tiles.append((i, max(boxes[0].height, boxes[0].width)))
            stats.step_times.append(_now(latents.device))
            i += 1
            bar.update(1)
    finally:
        bar.close()
    stats.denoise_seconds = _now(latents.device) - t_start
    stats.tile = max(boxes[0].height, boxes[0].width)
    stats.grid = (len({b.y for b in boxes}), len({b.x for b in boxes}))
    return latents


def decode(
    vae: Any,
    latents: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    min_tile: int = 16,
    stats: SamplingStats | None = None,
) -> torch.Tensor:
    """Decode ``(1, C, H, W)`` latents to ``(1, 3, 4H, 4W)`` float32 in about [-1, 1], in tiles.

    Tiles overlap by ``overlap`` latent pixels and are blended in pixel space with cosine
    weights. The VAE runs in its own dtype (keep it float32). On out-of-memory the tile
    halves and decoding restarts (the decode has no state worth keeping).
    """
    stats = stats if stats is not None else SamplingStats()
    h, w = latents.shape[-2:]
    z = latents / vae.config.scaling_factor
    vdt = next(vae.parameters()).dtype
    t_start = _now(latents.device)
    while True:
        boxes = plan_tiles(h, w, tile, overlap, LATENT_MULTIPLE, LATENT_MULTIPLE)
        try:
            if len(boxes) == 1:
                out = vae.decode(z.to(vdt), return_dict=False)[0].float()
            else:
                out = _decode_tiles(vae, z.to(vdt), boxes, batch_size)
            break
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
            tile = _smaller_tile(exc, tile, boxes, min_tile, latents.device, "VAE decoder")
            stats.oom_retries += 1
    stats.decode_tile = max(boxes[0].height, boxes[0].width)
    stats.decode_tiles = len(boxes)
    stats.decode_seconds = _now(latents.device) - t_start
    return out


def _decode_tiles(vae: Any, z: torch.Tensor, boxes: list[TileBox], batch_size: int) -> torch.Tensor:
    s = None
    acc = None
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        res = vae.decode(torch.cat([z[:, :, b.y0 : b.y1, b.x0 : b.x1] for b in chunk]), return_dict=False)[0]
        if acc is None:
            s = res.shape[-1] // chunk[0].width
            acc = BlendAccumulator((res.shape[1], z.shape[2] * s, z.shape[3] * s), like=z, dtype=torch.float32)
        for r, b in zip(res.float(), chunk):
            acc.add(r, b.scaled(s), tile_weights(b, "cosine", s))
    return acc.result(torch.float32)[None]


def _smaller_tile(exc: BaseException, tile: int, boxes: list[TileBox], min_tile: int,
                  device: torch.device, what: str) -> int:
    """The halved tile after an out-of-memory error; re-raises anything else, or below ``min_tile``."""
    if not is_out_of_memory(exc):
        raise exc
    current = max(boxes[0].height, boxes[0].width)
    new = max(min_tile, (current // 2) // LATENT_MULTIPLE * LATENT_MULTIPLE)
    if new >= current:
        logger.error("out of memory in the %s even at tile %d px (minimum %d px)", what, current, min_tile)
        raise exc
    if device.type == "cuda":
        torch.cuda.empty_cache()
    logger.warning("out of memory in the %s at tile %d px: retrying with tile %d px", what, current, new)
    return new


def _now(device: torch.device) -> float:
    """``time.perf_counter()`` after the device finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm turn itself off when stderr is not a TTY."""
    return None if progress is None else not progress
