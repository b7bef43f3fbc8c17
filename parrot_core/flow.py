"""The behavioral prior: a conditional real NVP ``a = f(z; s)`` over the 7D action.

Paper section 3.1 / Appendix D, Figure 6; implementation notes "Flow prior".

Structure, from z (base N(0, I), 7D) to the action a::

    y0 = z  --coupling 1..4-->  y  --tanh-->  a in (-1, 1)

* Four affine coupling layers with alternating halves. Each layer keeps the dims where
  its binary ``mask`` is 1 and transforms the others:
  ``y = m*x + (1-m) * (x * exp(s) + t)``, with ``(s_raw, t) = MLP([psi(s), m*x])``
  (256 -> 256 hidden, ReLU) and ``s = tanh(s_raw)`` so every scale stays in [1/e, e]
  (stable in both directions, no exp blow-up). The same image features psi(s) condition
  every layer (one encoder pass per call); with ``state_dim > 0`` the normalized arm state
  (parrot_core.arm_state) is appended to them.
* Halves by mask instead of padding to 8D (what the original did): z stays 7D, the same
  size as the action, which is what the SAC policy outputs and the export/ONNX contract
  says (``z (B, 7)``); no dummy dimension whose noise the policy would have to learn to
  ignore. Mask A keeps dims 0..3 ``[dx, dy, dz, droll]`` and transforms 4..6
  ``[dpitch, dyaw, gripper]``; mask B is its complement; layers alternate A, B, A, B,
  so each dim is transformed twice, conditioned on the other half.
* Bounded actions: a final ``a = tanh(y)`` with its log-det ``sum log(1 - a^2)`` makes
  every sample lie in (-1, 1), as ``validate_action`` expects. The inverse needs
  ``atanh(a)``, which is infinite at |a| = 1 (gripper commands in the data are often
  exactly +-1), so targets are clamped to ``+-ACTION_CLAMP`` (0.999, atanh = 3.80) first.
  Consequence: log_prob of |a| >= 0.999 is that of the clamped action, and the round
  trip ``inverse(forward(z))`` is exact only where |forward(z)| < 0.999 (|y| < 3.8).

``inverse`` returns ``log_det = log |det d z / d a|``, so
``log p(a|s) = log N(z; 0, I) + log_det`` (paper eq. 2).

The last layer of each coupling MLP starts at zero, so a fresh flow is the identity
before the tanh (stable start of maximum-likelihood training; a = tanh(z)).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from parrot_core.action_space import ACTION_DIM
from parrot_core.encoders import ConvEncoder

# Targets are clamped to +-ACTION_CLAMP before atanh (see module docstring).
ACTION_CLAMP = 0.999
LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class PriorConfig:
    """Everything needed to rebuild a ConditionalRealNVP (saved with every checkpoint)."""

    image_size: int | tuple[int, int] = 48  # square side, or (H, W)
    action_dim: int = ACTION_DIM
    num_layers: int = 4
    coupling_hidden: tuple[int, ...] = (256, 256)
    conv_channels: int = 16
    encoder_hidden: tuple[int, ...] = (1024, 512)
    feature_dim: int = 256
    action_clamp: float = ACTION_CLAMP
    # > 0: also conditioned on the arm state (parrot_core.arm_state), normalized with the
    # training data's mean/std (buffers saved with the weights) and appended to psi(s).
    state_dim: int = 0
    # > 0: the encoder also returns this many spatial-softmax keypoints (x, y each) after
    # its features (parrot_core.encoders); 0 keeps priors trained without them loading as is.
    keypoints: int = 0

    @property
    def condition_dim(self) -> int:
        """Width of what the couplings are conditioned on: [features, keypoints, state]."""
        return self.feature_dim + 2 * self.keypoints + self.state_dim

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["coupling_hidden"] = list(self.coupling_hidden)
        d["encoder_hidden"] = list(self.encoder_hidden)
        if not isinstance(self.image_size, int):
            d["image_size"] = [int(v) for v in self.image_size]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PriorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PriorConfig fields: {sorted(unknown)}")
        d = dict(d)
        for k in ("coupling_hidden", "encoder_hidden"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        if isinstance(d.get("image_size"), (list, tuple)):
            h, w = (int(v) for v in d["image_size"])
            d["image_size"] = h if h == w else (h, w)
        return cls(**d)


def base_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row: the base distribution of the flow (and of PARROT's policy)."""
    return -0.5 * (z * z).sum(dim=1) - 0.5 * z.shape[1] * LOG_2PI


def coupling_masks(dim: int, num_layers: int) -> torch.Tensor:
    """(num_layers, dim) float masks: 1 = kept (conditions), 0 = transformed; alternating."""
    half = (dim + 1) // 2
    a = torch.zeros(dim)
    a[:half] = 1.0
    return torch.stack([a if i % 2 == 0 else 1.0 - a for i in range(num_layers)])


class AffineCoupling(nn.Module):
    """One conditional affine coupling layer (paper Figure 6a/b)."""

    def __init__(self, mask: torch.Tensor, cond_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.clone())
        layers: list[nn.Module] = []
        width = cond_dim + dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, 2 * dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def _scale_shift(self, x_kept: torch.Tensor, cond: torch.Tensor):
        out = self.net(torch.cat([cond, x_kept], dim=1))
        dim = self.mask.numel()
        free = 1.0 - self.mask
        log_scale = torch.tanh(out[:, :dim]) * free  # bounded: scale in [1/e, e]
        shift = out[:, dim:] * free
        return log_scale, shift

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        """z-side -> action-side; returns (y, log|det dy/dx|)."""
        x_kept = x * self.mask
        log_scale, shift = self._scale_shift(x_kept, cond)
        y = x_kept + (1.0 - self.mask) * (x * torch.exp(log_scale) + shift)
        return y, log_scale.sum(dim=1)

    def inverse(self, y: torch.Tensor, cond: torch.Tensor):
        """action-side -> z-side; returns (x, log|det dx/dy|)."""
        y_kept = y * self.mask
        log_scale, shift = self._scale_shift(y_kept, cond)
        x = y_kept + (1.0 - self.mask) * ((y - shift) * torch.exp(-log_scale))
        return x, -log_scale.sum(dim=1)


class ConditionalRealNVP(nn.Module):
    """a = f(z; s): image-conditioned real NVP with a final tanh (see module docstring).

    ``image`` is always a uint8 ``(B, H, W, 3)`` RGB tensor (converted inside).
    """

    def __init__(self, config: PriorConfig | None = None):
        super().__init__()
        self.config = config = config or PriorConfig()
        if config.num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        self.action_dim = config.action_dim
        self.action_clamp = float(config.action_clamp)
        self.encoder = ConvEncoder(
            config.image_size, config.conv_channels, config.encoder_hidden, config.feature_dim,
            config.keypoints,
        )
        self.state_dim = int(config.state_dim)
        if self.state_dim:  # only then: image-only checkpoints keep loading as they are
            self.register_buffer("state_mean", torch.zeros(self.state_dim))
            self.register_buffer("state_std", torch.ones(self.state_dim))
        masks = coupling_masks(config.action_dim, config.num_layers)
        self.couplings = nn.ModuleList(
            AffineCoupling(m, config.condition_dim, tuple(config.coupling_hidden)) for m in masks
        )

    @property
    def image_size(self) -> tuple[int, int]:
        return self.encoder.image_size

    def set_state_normalization(self, mean, std) -> None:
        """Fix the arm-state normalization (from the training data; saved with the weights)."""
        self.state_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.state_std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-3))

    def condition(self, image: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """What every coupling layer is conditioned on: psi(image) [, normalized state]."""
        features = self.encoder(image)
        if self.state_dim == 0:
            return features
        if state is None:
            raise ValueError(f"this prior is conditioned on the arm state: pass state "
                             f"(B, {self.state_dim}) with the image")
        if state.shape != (image.shape[0], self.state_dim):
            raise ValueError(f"state must be ({image.shape[0]}, {self.state_dim}), "
                             f"got {tuple(state.shape)}")
        normalized = (state.to(features.dtype) - self.state_mean) / self.state_std
        return torch.cat([features, normalized], dim=1)

    # ---- the two directions ---------------------------------------------------------

    def forward(self, z: torch.Tensor, image: torch.Tensor,
                state: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, 7) float, image (B, H, W, 3) uint8 [, state (B, S)] -> action (B, 7) in (-1, 1)."""
        return self.forward_with_logdet(z, image, state)[0]

    def forward_with_logdet(self, z: torch.Tensor, image: torch.Tensor,
                            state: torch.Tensor | None = None):
        """-> (action, log|det da/dz|)."""
        return self.forward_from_condition(z, self.condition(image, state))

    def forward_from_condition(self, z: torch.Tensor, cond: torch.Tensor):
        """z and what ``condition`` returned -> (action, log|det da/dz|): the flow without its
        encoder pass, for a caller that already has the conditioning (e.g. a policy that
        observes the same features, fused with the prior into one graph)."""
        y = z
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.couplings:
            y, ld = layer(y, cond)
            log_det = log_det + ld
        a = torch.tanh(y)
        # d tanh(y)/dy = 1 - tanh^2 = 4 / (e^y + e^-y)^2; the softplus form is stable for large |y|.
        log_det = log_det + (2.0 * (math.log(2.0) - y - nn.functional.softplus(-2.0 * y))).sum(dim=1)
        return a, log_det

    def inverse(self, action: torch.Tensor, image: torch.Tensor,
                state: torch.Tensor | None = None):
        """action (B, 7), image (B, H, W, 3) uint8 [, state] -> (z (B, 7), log|det dz/da| (B,)).

        Actions are clamped to +-action_clamp before atanh.
        """
        cond = self.condition(image, state)
        a = torch.clamp(action, -self.action_clamp, self.action_clamp)
        y = 0.5 * (torch.log1p(a) - torch.log1p(-a))  # atanh, written out for ONNX
        log_det = -torch.log1p(-a * a).sum(dim=1)  # d atanh(a)/da = 1 / (1 - a^2)
        x = y
        for layer in reversed(self.couplings):
            x, ld = layer.inverse(x, cond)
            log_det = log_det + ld
        return x, log_det

    # ---- likelihood and sampling ----------------------------------------------------

    def log_prob(self, action: torch.Tensor, image: torch.Tensor,
                 state: torch.Tensor | None = None) -> torch.Tensor:
        """log p(a | s) per row (B,), by change of variables (paper eq. 2)."""
        z, log_det = self.inverse(action, image, state)
        return base_log_prob(z) + log_det

    def sample(self, image: torch.Tensor, n: int = 1, generator: torch.Generator | None = None,
               state: torch.Tensor | None = None):
        """Actions for random z ~ N(0, I) (what random exploration through the prior does).

        image (H, W, 3) [state (S,)] -> actions (n, 7); image (B, H, W, 3) [state (B, S)]
        -> actions (B, n, 7). ``generator`` is a CPU torch.Generator for reproducible draws.
        """
        single = image.dim() == 3
        images = image[None] if single else image
        if state is not None and single:
            state = state[None]
        b = images.shape[0]
        # drawn on the CPU (a CPU generator works whatever the model's device)
        z = torch.randn(b * n, self.action_dim, generator=generator).to(images.device)
        rep = images.repeat_interleave(n, dim=0)
        rep_state = None if state is None else state.repeat_interleave(n, dim=0)
        a = self.forward(z, rep, rep_state).reshape(b, n, self.action_dim)
        return a[0] if single else a
