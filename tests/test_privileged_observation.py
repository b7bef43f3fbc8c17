"""The privileged observation of the RL sanity check (sim/privileged_observation.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parrot_core.action_transform import IdentityTransform
from parrot_core.rl_loop import LoopConfig, make_agent, train
from rl_toy import ColorSignEnv, tiny_config
from sim.env import EnvConfig, ParrotEnv
from sim.privileged_observation import SCALE, PrivilegedObservation

torch.set_num_threads(1)


def test_privileged_observation_holds_the_arm_and_the_objects_relative_to_it():
    """Arm state first, then each object's offset from the TCP and its lift above its spawn
    height (x SCALE), then the placing target's offset (zeros for grasp)."""
    with ParrotEnv(EnvConfig(task="pick_place", objects="heldout", num_objects=2)) as env:
        obs, info = env.reset(seed=5)
        x = PrivilegedObservation(2)(obs, info)
    tcp = np.asarray(info["ee_pos"])
    assert x.shape == (4 + 8 + 3,) and x.dtype == np.float32
    assert np.allclose(x[:4], [*tcp, 0.0], atol=1e-6)
    first = info["object_positions"][info["object_names"][0]]
    assert np.allclose(x[4:7], SCALE * (np.asarray(first) - tcp), atol=1e-5)
    assert abs(x[7]) < 0.01  # resting at its spawn height
    assert np.allclose(x[-3:], SCALE * (np.asarray(info["target_position"]) - tcp), atol=1e-5)


def test_a_privileged_run_cannot_be_exported(tmp_path):
    """No real arm knows where the objects are: export-policy refuses such a run."""
    from parrot_core.export_policy import PolicyExportError, export_policy

    class Observe:  # a vector observation that is not the prior's features
        dim = 3

        def __call__(self, obs, info):
            return np.float32([1.0 if obs[0, 0, 0] else -1.0, 0.0, 0.0])

        def describe(self):
            return {"name": "privileged", "dim": 3}

    agent = make_agent(tiny_config("sac", obs_dim=3), seed=0)
    train(agent, lambda: ColorSignEnv(), IdentityTransform(), tmp_path / "run",
          LoopConfig(total_steps=10, eval_every=10, eval_episodes=1, progress=False),
          run_meta={"algo": "sac"}, observe=Observe())
    with pytest.raises(PolicyExportError, match="observes privileged"):
        export_policy(tmp_path / "run", tmp_path / "export", exporter="torchscript")
