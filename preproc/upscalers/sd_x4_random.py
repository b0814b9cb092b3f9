"""Random-weight SD x4 upscaler pipelines, for tests and benchmarks without the weights.

The real ``stabilityai/stable-diffusion-x4-upscaler`` weights cannot always be had
(offline machines), but everything about the model except its quality can be tested
with random weights of the same architecture family: ``"full"`` builds the real
architecture (UNet 473 M, VAE 55 M, text encoder 340 M parameters), ``"tiny"`` a
~1 M-parameter model with the same structure (7-channel UNet input, noise level as
class label, v-prediction DDIM, x4 VAE, CLIP text encoder) that runs in about a second.

The tokenizer is the real CLIP BPE tokenizer, rebuilt offline from the vocabulary that
ships inside the ``open-clip-torch`` wheel (a dev dependency).
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from ..errors import ConfigError, ModelUnavailableError

Size = Literal["tiny", "full"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@lru_cache(maxsize=1)
def _bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            "building the CLIP tokenizer offline needs the open-clip-torch package "
            "(`pip install open-clip-torch`, a dev dependency)"
        )
    path = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    base = list(_bytes_to_unicode().values())
    words = base + [b + "</w>" for b in base] + ["".join(m) for m in merges]
    words += ["<|startoftext|>", "<|endoftext|>"]
    return {w: i for i, w in enumerate(words)}, merges


def clip_tokenizer():
    """The 49408-token CLIP BPE tokenizer of SD 2 / SD x4 (pad token ``"!"``, 77 tokens)."""
    from transformers import CLIPTokenizer

    vocab, merges = _bpe()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token="!", model_max_length=77)


def _configs(size: Size) -> dict:
    if size == "full":
        return dict(
            unet=dict(block_out_channels=(256, 512, 512, 1024), attention_head_dim=8, cross_attention_dim=1024,
                      norm_num_groups=32, sample_size=128,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                        "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                      "UpBlock2D"),
                      only_cross_attention=(True, True, True, False)),
            vae=dict(block_out_channels=(128, 256, 512), norm_num_groups=32, sample_size=256),
            text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                      projection_dim=512),
        )
    if size == "tiny":
        return dict(
            unet=dict(block_out_channels=(32, 32, 64), attention_head_dim=8, cross_attention_dim=32,
                      norm_num_groups=8, sample_size=32,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                      only_cross_attention=(True, True, False)),
            vae=dict(block_out_channels=(32, 32, 64), norm_num_groups=8, sample_size=64),
            text=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                      projection_dim=32),
        )
    raise ConfigError(f"size must be 'tiny' or 'full', got {size!r}")


def random_pipeline(size: Size = "tiny", seed: int = 0, device: str | torch.device = "cpu"):
    """A ``StableDiffusionUpscalePipeline`` of the SD x4 family with random weights (fp32).

    ``size="full"`` is the real architecture (about 3.5 GB of fp32 weights); ``"tiny"``
    the same structure with a few channels. Weights are drawn from ``torch.manual_seed(seed)``
    and initialised directly on ``device`` (on CUDA that takes seconds instead of ~40 s).
    """
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = _configs(size)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            in_channels=7, out_channels=4, layers_per_block=2, num_class_embeds=1000,
            use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0, act_fn="silu", **cfg["unet"],
        )
        nb = len(cfg["vae"]["block_out_channels"])
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, scaling_factor=0.08333,
            down_block_types=("DownEncoderBlock2D",) * nb, up_block_types=("UpDecoderBlock2D",) * nb, **cfg["vae"],
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", bos_token_id=0, eos_token_id=2,
            pad_token_id=1, **cfg["text"],
        ))
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction",
    )
    low_res_scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
    )
    pipe = StableDiffusionUpscalePipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=clip_tokenizer(), unet=unet.eval(),
        low_res_scheduler=low_res_scheduler, scheduler=scheduler, max_noise_level=350,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_random_pipeline(folder: str | Path, size: Size = "tiny", seed: int = 0) -> Path:
    """Build :func:`random_pipeline` and ``save_pretrained`` it to ``folder``; returns the folder."""
    folder = Path(folder)
    random_pipeline(size, seed).save_pretrained(folder)
    return folder
