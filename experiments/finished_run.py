"""A finished `parrot train-rl` run as the offline probes read it: checkpoint, agent, replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from parrot_core.prior_features import PriorFeatures, load_prior_module
from parrot_core.rl_loop import CHECKPOINT
from parrot_core.sac import ReplayBuffer, SACAgent


def load_finished_run(run: Path) -> tuple[dict, SACAgent, ReplayBuffer]:
    """The run's last checkpoint, its agent and the replay buffer saved with it."""
    if not (run / CHECKPOINT).exists():
        raise SystemExit(f"{run}: no {CHECKPOINT}; expected a train-rl run directory")
    checkpoint = torch.load(run / CHECKPOINT, weights_only=False)
    action_of = None
    if checkpoint["agent"]["config"].get("critic_input") == "action":  # its critics read f(z; s)
        prior = json.loads((run / "config.json").read_text())["run"]["prior"]
        action_of = PriorFeatures(load_prior_module(prior)).action_of
    agent = SACAgent.from_state_dict(checkpoint["agent"], action_of=action_of)
    cfg = agent.cfg
    replay = ReplayBuffer(cfg.buffer_size, checkpoint["image_shape"], cfg.action_dim,
                          np.dtype(checkpoint.get("obs_dtype", "uint8")))
    replay.load(run / checkpoint["replay_file"])
    return checkpoint, agent, replay
