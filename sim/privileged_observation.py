"""A privileged observation for RL sanity checks in the twin (never on the arm).

    observe = PrivilegedObservation(num_objects=3)
    x = observe(obs, info)      # (4 + 4 * num_objects + 3,) float32

What it holds: the arm state (TCP position, gripper closed) and, for each object in scene
order, its position relative to the TCP and its height above its spawn height, in metres
scaled by 10 (so values are about +-1), plus the target's position relative to the TCP for
placing tasks (zeros otherwise). With it, an RL failure cannot be blamed on perception:
PARROT and SAC on this observation must climb above the prior if the RL machinery works
(`parrot train-rl --observation privileged`). Its policies cannot be exported: no real arm
knows where the objects are.
"""

from __future__ import annotations

import numpy as np

from parrot_core.arm_state import state_from_info

SCALE = 10.0  # metres -> about +-1 over the workspace


class PrivilegedObservation:
    def __init__(self, num_objects: int):
        self.num_objects = int(num_objects)
        self.dim = 4 + 4 * self.num_objects + 3

    def __call__(self, obs, info) -> np.ndarray:
        x = np.zeros(self.dim, np.float32)
        x[:4] = state_from_info(info)
        tcp = np.asarray(info["ee_pos"], dtype=np.float64)
        for k, name in enumerate(info["object_names"][:self.num_objects]):
            pos = np.asarray(info["object_positions"][name], dtype=np.float64)
            x[4 + 4 * k:7 + 4 * k] = SCALE * (pos - tcp)
            x[7 + 4 * k] = SCALE * (pos[2] - info["object_spawn_z"][name])
        if info.get("target_position") is not None:
            x[-3:] = SCALE * (np.asarray(info["target_position"], dtype=np.float64) - tcp)
        return x

    def describe(self) -> dict:
        return {"name": "privileged", "dim": self.dim, "num_objects": self.num_objects}
