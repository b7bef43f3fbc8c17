"""What a fast SAC observes: the frozen prior's image features (and normalized arm state).

    features = PriorFeatures(prior)             # prior: a ConditionalRealNVP (frozen here)
    f = features(obs, info)                     # (D,) float32 for one env step
    F = features.batch(images, states)          # (N, D) float32 for a dataset

D = the prior's PriorConfig.condition_dim: exactly what the prior's coupling layers are conditioned
on (``ConditionalRealNVP.condition``). The features are computed once per env step and stored
in replay, so SAC's actor and critics are MLPs and an update costs no CNN pass. The module is
saved with each RL checkpoint, so an exported policy (image [, state] -> output) rebuilds the
same function without the prior's run directory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from parrot_core.arm_state import state_from_info
from parrot_core.flow import ConditionalRealNVP, PriorConfig


def load_prior_module(path) -> ConditionalRealNVP:
    """The torch prior of a `parrot train-prior` run dir or a `parrot export` dir."""
    from pathlib import Path
    if (Path(path) / "prior_meta.json").exists():
        from parrot_core.export import load_exported_prior
        return load_exported_prior(path)
    from parrot_core.train_prior import load_prior
    return load_prior(path)


class FeatureModule(nn.Module):
    """image uint8 (B, H, W, 3) [, state (B, S)] -> features (B, D): the prior's conditioning."""

    def __init__(self, prior: ConditionalRealNVP):
        super().__init__()
        self.config = prior.config
        self.flow = prior  # only condition() (the encoder and state buffers) is used

    @property
    def state_dim(self) -> int:
        return self.flow.state_dim

    @property
    def dim(self) -> int:
        return self.config.condition_dim

    def forward(self, image: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return self.flow.condition(image, state)

    def to_checkpoint(self) -> dict:
        """The weights an export needs (the couplings are left out: features only)."""
        keep = {k: v for k, v in self.flow.state_dict().items() if not k.startswith("couplings.")}
        return {"prior_config": self.config.to_dict(), "weights": keep}

    @classmethod
    def from_checkpoint(cls, saved: dict) -> "FeatureModule":
        prior = ConditionalRealNVP(PriorConfig.from_dict(saved["prior_config"]))
        missing, unexpected = prior.load_state_dict(saved["weights"], strict=False)
        if unexpected or any(not k.startswith("couplings.") for k in missing):
            raise ValueError(f"feature weights do not fit the prior config (missing {missing}, "
                             f"unexpected {unexpected})")
        return cls(prior).eval()


class PriorFeatures:
    """Frozen features of a prior for the RL loop: ``features(obs, info)`` per step."""

    def __init__(self, prior: ConditionalRealNVP, device="cpu"):
        self.module = FeatureModule(prior).to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.dim = self.module.dim

    @torch.no_grad()
    def batch(self, images: np.ndarray, states: np.ndarray | None = None,
              batch_size: int = 1024) -> np.ndarray:
        out = np.empty((len(images), self.dim), np.float32)
        needs_state = self.module.state_dim > 0
        if needs_state and states is None:
            raise ValueError("these features include the arm state: pass states with the images")
        for i in range(0, len(images), batch_size):
            img = torch.as_tensor(np.asarray(images[i:i + batch_size]), device=self.device)
            st = (torch.as_tensor(np.asarray(states[i:i + batch_size], np.float32), device=self.device)
                  if needs_state else None)
            out[i:i + batch_size] = self.module(img, st).cpu().numpy()
        return out

    def __call__(self, obs: np.ndarray, info: dict) -> np.ndarray:
        state = state_from_info(info)[None] if self.module.state_dim else None
        return self.batch(np.asarray(obs)[None], state)[0]

    def action_of(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The prior's action f(z; s) from features this module computed (a batch): the flow's
        couplings alone, differentiable in z (SACConfig.critic_input "action")."""
        return self.module.flow.forward_from_condition(z, features)[0]

    def checkpoint(self) -> dict:
        """Saved with every RL checkpoint (see FeatureModule.to_checkpoint)."""
        return {"prior_features": self.module.to_checkpoint()}

    def describe(self) -> dict:
        return {"name": "prior_features", "dim": self.dim, "state_dim": self.module.state_dim}
