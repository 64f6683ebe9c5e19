"""Augmentations for cell-body stained patches, applied to a batch on the training device.

Exact 90-degree rotations and flips (cortex has no preferred orientation in a section), a small
rotation and scale jitter, brightness and contrast jitter (staining and scanner variation). Every
draw comes from the generator passed in, so a batch is augmented the same way on a rerun and on
resume (`batch_generator`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    max_rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1  # added, in units of the full intensity range
    contrast: tuple[float, float] = (0.8, 1.2)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """x: (N, 1, H, W) float in model units, on g's device; returns the augmented batch."""
        n, dev = x.shape[0], x.device

        def u(lo, hi, size=(n,)):
            return lo + (hi - lo) * torch.rand(size, generator=g, device=dev)

        k = torch.randint(0, 4, (n,), generator=g, device=dev).tolist()
        flip = torch.rand(n, generator=g, device=dev) < 0.5
        x = torch.stack([torch.rot90(xi, ki, dims=(1, 2)) for xi, ki in zip(x, k)])
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        angle = u(-self.max_rotation_deg, self.max_rotation_deg) * math.pi / 180
        s = u(*self.scale)
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        zero = torch.zeros(n, device=dev)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = u(*self.contrast)[:, None, None, None]
        b = u(-self.brightness, self.brightness)[:, None, None, None] * 4.0  # model units: 1.0 = 0.25 of the range
        return (x - mean) * c + mean + b


def batch_generator(seed: int, epoch: int, rank: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The randomness of one batch's augmentation, fixed by where the batch is in the run."""
    return torch.Generator(device=device).manual_seed(hash((seed, epoch, rank, step)) & 0x7FFFFFFF)
