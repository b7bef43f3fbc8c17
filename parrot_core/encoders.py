"""The image encoders: psi(s) that conditions the flow prior (paper Figure 6c), and the CNN
trunk each SAC network owns on raw images (Figure 7); both start with the same conv stack.

Architecture (implementation notes, first author's code): three 3x3 convs with 16
channels and ReLU, 2x2 max-pool after the first two (48 -> 24 -> 12), flatten, then an
MLP 1024 -> 512 -> 256. The output (256 by default) is the feature vector psi(s).

With ``keypoints = K > 0`` the encoder also returns K image keypoints: a 3x3 conv on the
24x24 map after the second conv, a spatial softmax over each of its K channels, and each
channel's expected (x, y) in [-1, 1] (Levine et al. 2016, "End-to-end training of deep
visuomotor policies"). psi(s) is then ``[mlp features (feature_dim), x_1, y_1, ..., x_K, y_K]``.
(Why: docs/RESULTS.md.)

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


def conv_stack(channels: int) -> nn.Sequential:
    """The paper's three 3x3 convs (padding 1) with ReLU, 2x2 max-pool after the first two:
    (B, 3, H, W) -> (B, channels, H // 4, W // 4). Shared by the prior's encoder and the SAC
    networks' per-network trunks (Figure 7)."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
    )


def to_float_nchw(image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]; inside the modules so ONNX graphs take uint8."""
    return image.permute(0, 3, 1, 2).to(dtype) / 255.0


class ConvTrunk(nn.Module):
    """uint8 (B, H, W, 3) -> flat conv features (B, channels * (H // 4) * (W // 4)): the CNN
    each SAC network owns when it observes raw images (paper Figure 7)."""

    def __init__(self, image_size: int, channels: int):
        super().__init__()
        self.image_size = int(image_size)
        if self.image_size < 4:
            raise ValueError(f"image size must be at least 4x4, got {image_size}")
        self.net = nn.Sequential(*conv_stack(channels), nn.Flatten())
        self.out_dim = channels * (self.image_size // 4) ** 2

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(to_float_nchw(image, torch.float32))


def spatial_softmax_xy(maps: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) scores -> (B, 2K) expected [x_1, y_1, ..., x_K, y_K] in [-1, 1]."""
    b, k, h, w = maps.shape
    weights = torch.softmax(maps.reshape(b, k, h * w), dim=2).reshape(b, k, h, w)
    xs = torch.linspace(-1.0, 1.0, w, dtype=maps.dtype, device=maps.device)
    ys = torch.linspace(-1.0, 1.0, h, dtype=maps.dtype, device=maps.device)
    x = (weights.sum(dim=2) * xs).sum(dim=2)  # (B, K): marginal over rows, then E[x]
    y = (weights.sum(dim=3) * ys).sum(dim=2)
    return torch.stack([x, y], dim=2).reshape(b, 2 * k)


class ConvEncoder(nn.Module):
    """psi(s): uint8 (B, H, W, 3) RGB -> float (B, feature_dim + 2 * keypoints).

    Works for any image size fixed at construction; convs use padding 1 so only the
    two max-pools shrink the image (H -> H // 4).
    """

    def __init__(
        self,
        image_size: int | Sequence[int] = 48,
        channels: int = 16,
        hidden: Sequence[int] = (1024, 512),
        feature_dim: int = 256,
        keypoints: int = 0,
    ):
        super().__init__()
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        h, w = self.image_size
        if h < 4 or w < 4:
            raise ValueError(f"image size must be at least 4x4, got {self.image_size}")
        self.feature_dim = int(feature_dim)
        if keypoints < 0:
            raise ValueError(f"keypoints must be >= 0, got {keypoints}")
        self.keypoints = int(keypoints)
        self.conv = conv_stack(channels)
        flat = channels * _pooled(h, 2) * _pooled(w, 2)
        layers: list[nn.Module] = []
        width = flat
        for hdim in hidden:
            layers += [nn.Linear(width, int(hdim)), nn.ReLU()]
            width = int(hdim)
        layers.append(nn.Linear(width, self.feature_dim))
        self.mlp = nn.Sequential(*layers)
        if self.keypoints:
            self.keypoint_conv = nn.Conv2d(channels, self.keypoints, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # float32 in exported graphs; the conv's dtype so a float64 copy works for checks
        x = to_float_nchw(image, self.conv[0].weight.dtype)
        if not self.keypoints:
            return self.mlp(torch.flatten(self.conv(x), 1))
        mid = self.conv[:5](x)  # after the second conv's ReLU, before its pool (H/2 x W/2)
        features = self.mlp(torch.flatten(self.conv[5:](mid), 1))
        return torch.cat([features, spatial_softmax_xy(self.keypoint_conv(mid))], dim=1)
