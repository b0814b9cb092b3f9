"""Training loss: L1 plus an edge term (L1 between image gradients).

The edge term rewards sharp, correctly placed stroke borders - what a binarising OCR
engine looks at - more than plain L1, which tolerates soft edges.
"""

from __future__ import annotations

import torch


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical forward differences of ``(B, C, H, W)``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def text_sr_loss(pred: torch.Tensor, target: torch.Tensor, edge_weight: float = 0.5) -> torch.Tensor:
    """``mean|pred - target| + edge_weight * (mean|dx p - dx t| + mean|dy p - dy t|)``."""
    loss = (pred - target).abs().mean()
    if edge_weight:
        (pdx, pdy), (tdx, tdy) = gradients(pred), gradients(target)
        loss = loss + edge_weight * ((pdx - tdx).abs().mean() + (pdy - tdy).abs().mean())
    return loss
