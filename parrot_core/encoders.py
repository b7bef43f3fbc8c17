"""The conv image encoder psi(s) that conditions the flow prior (paper Figure 6c).

Architecture (implementation notes, first author's code): three 3x3 convs with 16
channels and ReLU, 2x2 max-pool after the first two (48 -> 24 -> 12), flatten, then an
MLP 1024 -> 512 -> 256. The output (256 by default) is the feature vector psi(s).

Input is the raw observation: ``uint8 (B, H, W, 3)`` RGB. The float conversion
(/255) and the NHWC -> NCHW permute happen inside ``forward``, so an exported ONNX
graph takes the uint8 image exactly as a ROS node or the twin produces it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _pooled(size: int, pools: int) -> int:
    for _ in range(pools):
        size //= 2
    return size


class ConvEncoder(nn.Module):
    """psi(s): uint8 (B, H, W, 3) RGB -> float (B, feature_dim).

    Works for any image size fixed at construction; convs use padding 1 so only the
    two max-pools shrink the image (H -> H // 4).
    """

    def __init__(
        self,
        image_size: int | Sequence[int] = 48,
        channels: int = 16,
        hidden: Sequence[int] = (1024, 512),
        feature_dim: int = 256,
    ):
        super().__init__()
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        h, w = self.image_size
        if h < 4 or w < 4:
            raise ValueError(f"image size must be at least 4x4, got {self.image_size}")
        self.feature_dim = int(feature_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        flat = channels * _pooled(h, 2) * _pooled(w, 2)
        layers: list[nn.Module] = []
        width = flat
        for hdim in hidden:
            layers += [nn.Linear(width, int(hdim)), nn.ReLU()]
            width = int(hdim)
        layers.append(nn.Linear(width, self.feature_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # uint8 NHWC -> float NCHW in [0, 1]; done here so ONNX graphs take uint8 directly.
        # (float32 in exported graphs; the conv's dtype so a float64 copy works for checks)
        x = image.permute(0, 3, 1, 2).to(self.conv[0].weight.dtype) / 255.0
        x = self.conv(x)
        return self.mlp(torch.flatten(x, 1))
