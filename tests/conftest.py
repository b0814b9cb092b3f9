"""Test-wide settings: offline hub, passive OpenMP threads (see ../shared/FACTS.md)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATASETS = SHARED / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets``; skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def tiny_sd_x4_dir(tmp_path_factory) -> Path:
    """A tiny random-weight SD x4 upscaler pipeline saved with ``save_pretrained`` (a folder).

    Same architecture family as ``stabilityai/stable-diffusion-x4-upscaler`` (7-channel
    UNet with the noise level as class label, v-prediction DDIM, x4 VAE, CLIP text
    encoder and the real CLIP tokenizer); ~4 M parameters, built in about a second.
    """
    from preproc.upscalers.sd_x4_random import save_random_pipeline

    return save_random_pipeline(tmp_path_factory.mktemp("sd_x4_tiny") / "pipe", "tiny", seed=0)
