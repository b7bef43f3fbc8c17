"""Tiny image-observation envs with the ParrotEnv API, for the SAC / RL-loop tests."""

from __future__ import annotations

import numpy as np

RED = np.array([255, 0, 0], np.uint8)
BLUE = np.array([0, 0, 255], np.uint8)


class ColorSignEnv:
    """The image is all red or all blue; reward 1 when sign(action[0]) matches the colour
    (red: a[0] > margin, blue: a[0] < -margin). ``horizon`` steps per episode, a fresh colour
    each step; with horizon 1 it is a contextual bandit that terminates, longer episodes are
    truncated (so the loop's bootstrapping and episode bookkeeping get exercised).
    ``fail_at_step`` raises KeyboardInterrupt on that (global) step, to simulate a crash."""

    def __init__(self, image_size: int = 8, horizon: int = 1, margin: float = 0.2,
                 fail_at_step: int | None = None):
        self.image_size, self.horizon, self.margin = image_size, horizon, margin
        self.fail_at_step = fail_at_step
        self.total_steps = 0
        self.rng = np.random.default_rng(0)
        self.t = 0
        self.red = True

    def _obs(self) -> np.ndarray:
        img = np.empty((self.image_size, self.image_size, 3), np.uint8)
        img[:] = RED if self.red else BLUE
        return img

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.red = bool(self.rng.integers(2))
        return self._obs(), {"success": False}

    def step(self, action):
        self.total_steps += 1
        if self.fail_at_step is not None and self.total_steps == self.fail_at_step:
            raise KeyboardInterrupt("simulated crash")
        a = float(np.asarray(action)[0])
        ok = a > self.margin if self.red else a < -self.margin
        self.t += 1
        self.red = bool(self.rng.integers(2))
        done = self.t >= self.horizon
        terminated = done and self.horizon == 1
        truncated = done and not terminated
        return self._obs(), float(ok), terminated, truncated, {"success": bool(ok)}



class StateToyEnv(ColorSignEnv):
    """ColorSignEnv whose info carries a fixed arm state (TCP position, gripper open), for
    agents that observe a state-conditioned prior's features."""

    ARM = {"ee_pos": [0.4, 0.0, 0.1], "gripper_closed": False}

    def reset(self, seed=None):
        obs, info = super().reset(seed)
        return obs, {**info, **self.ARM}

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        return obs, r, term, trunc, {**info, **self.ARM}

def tiny_config(algo: str = "sac", **overrides):
    """A SACConfig small enough for 8x8 images and sub-30 s CPU tests."""
    from parrot_core.sac import config_for_algo

    base = dict(image_size=8, conv_channels=4, hidden_sizes=(64, 64), batch_size=64, learning_starts=100,
                target_update_period=1, tau=0.01, policy_lr=1e-3, q_lr=1e-3, alpha_lr=1e-3, buffer_size=5000)
    base.update(overrides)
    return config_for_algo(algo, **base)


def negating_prior():
    """A stand-in prior a = -tanh(z) (torch module with the flow's forward(z, image) signature):
    if the loop bypassed the prior, a policy that learned in z would score 0."""
    import torch

    class NegatingPrior(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, image):
            assert image.dtype == torch.uint8
            return -torch.tanh(z) + 0.0 * self.dummy

    return NegatingPrior()
