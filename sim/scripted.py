"""Scripted policies of the paper (Appendix A.2, Algorithms 1 and 2), on privileged state.

Grasp (Alg. 1): while the gripper is open and the TCP is farther than GRASP_THRESHOLD_M
from the object, ``action = K_GAIN * (object - tcp)``; then close; then lift (dz = +1)
until the object is LIFT_MARGIN_M above what the task asks; then 0.
Pick and place (Alg. 2): grasp as above until the object is held, then
``K_GAIN * (drop point - tcp)`` until within DROP_THRESHOLD_M, then open once and do
nothing more (``placeAttempted``). The drop point is DROP_HEIGHT_M above the tray
(``pick_place``) or the target pad (``place_on_target``).

Every action gets N(0, noise_std) noise on all 7 dimensions and is clipped to +-0.9, like
the original collection. All randomness (which object ``grasp`` goes for, the noise) comes
from the ``rng`` passed in; ``policy_rng(seed)`` is the one collection uses, so an
episode's seed fixes the scene and the noise alike.
"""

from __future__ import annotations

import numpy as np

from parrot_core.action_space import POS_SCALE_M
from sim.tasks import GRASP_LIFT_M, LIFT_M, task_spec

GRASP_THRESHOLD_M = 0.02
DROP_THRESHOLD_M = 0.03
# action = K * error; at K = 0.6 / POS_SCALE_M a step covers ~60% of the remaining error
K_GAIN = 0.6 / POS_SCALE_M
LIFT_MARGIN_M = 0.03
MIN_GRASP_Z_M = 0.018  # TCP never aimed lower (pads reach 17 mm below the TCP)
GRASP_Z_OFFSET_M = 0.0  # aim offset from the object centre (z)
DROP_HEIGHT_M = {"tray": 0.11, "target": 0.07}
HELD_LIFT_M = 0.02
HELD_DIST_M = 0.07
CLIP = 0.9
GRIP_CLOSE, GRIP_OPEN = -1.0, 1.0


def policy_rng(seed: int) -> np.random.Generator:
    """The policy's random stream for episode ``seed`` (distinct from the scene's)."""
    return np.random.default_rng([int(seed), 1])


class ScriptedPolicy:
    """``reset()`` at episode start, then ``act(info) -> (7,) float32`` each step."""

    def __init__(self, task: str, rng: np.random.Generator, noise_std: float = 0.1):
        self.spec = task_spec(task)
        self.task = task
        self.rng = rng
        self.noise_std = float(noise_std)
        self.reset()

    def reset(self) -> None:
        self.object = None
        self.grasp_attempted = False
        self.place_attempted = False

    def plan(self, info) -> np.ndarray:
        """The noise-free action of Alg. 1/2 for this step (updates the policy's phase)."""
        a = np.zeros(7)
        if self.object is None:
            names = info["object_names"]
            self.object = info["target_object"] or names[int(self.rng.integers(len(names)))]
        obj = np.asarray(info["object_positions"][self.object], dtype=np.float64)
        ee = np.asarray(info["ee_pos"], dtype=np.float64)
        lifted = obj[2] - info["object_spawn_z"][self.object]
        held = (info["gripper_closed"] and lifted > HELD_LIFT_M
                and np.linalg.norm(obj - ee) < HELD_DIST_M)
        if self.spec.place is not None and (held or self.place_attempted):  # Alg. 2
            if self.place_attempted:
                return a
            drop = np.asarray(info["target_position"], dtype=np.float64).copy()
            drop[2] += DROP_HEIGHT_M[self.spec.place]
            if np.linalg.norm(drop - ee) > DROP_THRESHOLD_M:
                a[:3] = K_GAIN * (drop - ee)
            else:
                a[6] = GRIP_OPEN
                self.place_attempted = True
            return a
        # Alg. 1
        target = obj.copy()
        target[2] = max(target[2] + GRASP_Z_OFFSET_M, MIN_GRASP_Z_M)
        if not self.grasp_attempted and not info["gripper_closed"]:
            if np.linalg.norm(target - ee) > GRASP_THRESHOLD_M:
                a[:3] = K_GAIN * (target - ee)
            else:
                a[6] = GRIP_CLOSE
                self.grasp_attempted = True
            return a
        goal = (LIFT_M if self.task == "lift" else GRASP_LIFT_M) + LIFT_MARGIN_M
        a[6] = GRIP_CLOSE if info["gripper_closed"] else 0.0
        if lifted < goal:
            a[2] = 1.0
        return a

    def add_noise(self, plan: np.ndarray) -> np.ndarray:
        """The executed action: plan + N(0, noise_std), clipped to +-CLIP."""
        a = plan
        if self.noise_std > 0:
            a = a + self.rng.normal(0.0, self.noise_std, size=7)
        return np.clip(a, -CLIP, CLIP).astype(np.float32)

    def act(self, info) -> np.ndarray:
        return self.add_noise(self.plan(info))


def make_scripted_policy(task: str, rng: np.random.Generator, noise_std: float = 0.1) -> ScriptedPolicy:
    return ScriptedPolicy(task, rng, noise_std)
