"""Scripted policies of the paper (Appendix A.2, Algorithms 1 and 2), on privileged state.

Grasp (Alg. 1): while the gripper is open and the TCP is farther than GRASP_THRESHOLD_M
from the object, ``action = K_GAIN * (object - tcp)``; then close; then lift (dz = +1)
until the object is LIFT_MARGIN_M above what the task asks; then 0.
Pick and place (Alg. 2): grasp as above until the object is held, then
``K_GAIN * (drop point - tcp)`` until within DROP_THRESHOLD_M, then open once and do
nothing more (``placeAttempted``). The drop point is DROP_HEIGHT_M above the tray
(``pick_place``) or the target pad (``place_on_target``).

Retries (``retries=N``): when the lift after a close has risen RETRY_CHECK_M and the object
did not come up, open and go for it again, up to N more times, as a person teleoperating
would. ``misaim=p`` makes the first attempt of a fraction p of episodes aim MISAIM_M off the
object sideways, so that the data holds recoveries from the misses a learnt policy makes;
the steps up to that deliberate close are not demonstrations (``demo_start``: the first
step whose action is one, stored with the episode and the only steps a prior learns from).

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
RETRY_CHECK_M = 0.04  # lift this far above the close before judging a grasp missed
MISAIM_M = (0.03, 0.05)  # a deliberate miss: this far from the object, any sideways direction
BLIND_GRASP_Z_M = 0.025  # about the centre height of a 7 cm object lying on the table


def policy_rng(seed: int) -> np.random.Generator:
    """The policy's random stream for episode ``seed`` (distinct from the scene's)."""
    return np.random.default_rng([int(seed), 1])


def grasp_point(obj: np.ndarray, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Where the TCP closes on an object centred at ``obj`` (shifted sideways by ``offset``)."""
    target = obj + np.asarray(offset)
    target[2] = max(obj[2] + GRASP_Z_OFFSET_M, MIN_GRASP_Z_M)
    return target


def retry_options_error(retries: int, misaim: float, flag: str = "") -> str | None:
    """What is wrong with these retry options, or None; ``flag`` ("--") names CLI options."""
    if retries < 0 or not 0.0 <= misaim <= 1.0:
        return (f"{flag}retries must be >= 0 and {flag}misaim in [0, 1], "
                f"got {retries}, {misaim}")
    if misaim and not retries:
        return f"{flag}misaim needs {flag}retries >= 1: a deliberate miss must be recovered"
    return None


class ScriptedPolicy:
    """``reset()`` at episode start, then ``act(info) -> (7,) float32`` each step."""

    def __init__(self, task: str, rng: np.random.Generator, noise_std: float = 0.1,
                 retries: int = 0, misaim: float = 0.0):
        error = retry_options_error(retries, misaim)
        if error:
            raise ValueError(error)
        self.spec = task_spec(task)
        self.task = task
        self.rng = rng
        self.noise_std = float(noise_std)
        self.retries = int(retries)
        self.misaim = float(misaim)
        self.reset()

    def reset(self) -> None:
        self.object = None
        self.grasp_attempted = False
        self.place_attempted = False
        self.attempts_left = self.retries
        self.close_z = None
        self.steps = 0  # actions planned so far
        self.demo_start = 0  # first step whose action is a demonstration
        # drawn only when asked for, so that misaim=0 leaves the noise stream as it was
        self.aim_offset = self._draw_misaim() if self.misaim else np.zeros(3)

    def _draw_misaim(self) -> np.ndarray:
        if self.rng.random() >= self.misaim:
            return np.zeros(3)
        angle = self.rng.uniform(0.0, 2.0 * np.pi)
        radius = self.rng.uniform(*MISAIM_M)
        return np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])

    def plan(self, info) -> np.ndarray:
        """The noise-free action of Alg. 1/2 for this step (updates the policy's phase)."""
        self.steps += 1
        return self._plan(info)

    def _plan(self, info) -> np.ndarray:
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
        target = grasp_point(obj, self.aim_offset)
        if not self.grasp_attempted and not info["gripper_closed"]:
            if np.linalg.norm(target - ee) > GRASP_THRESHOLD_M:
                a[:3] = K_GAIN * (target - ee)
            else:
                a[6] = GRIP_CLOSE
                self.grasp_attempted = True
                self.close_z = ee[2]
                if self.aim_offset.any():  # a deliberate miss is no demonstration
                    self.demo_start = self.steps
                    self.aim_offset = np.zeros(3)
            return a
        if (self.attempts_left and self.close_z is not None and not held
                and ee[2] - self.close_z >= RETRY_CHECK_M):
            self.attempts_left -= 1  # missed: open and go for the object again
            self.grasp_attempted, self.close_z = False, None
            a[:3] = K_GAIN * (grasp_point(obj) - ee)
            a[6] = GRIP_OPEN
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


def make_scripted_policy(task: str, rng: np.random.Generator, noise_std: float = 0.1,
                         retries: int = 0, misaim: float = 0.0) -> ScriptedPolicy:
    return ScriptedPolicy(task, rng, noise_std, retries, misaim)


class BlindReach:
    """The scripted motions without looking: reach where objects spawn on average (the centre
    of the object region), descend, close, lift; for a place task carry to the centre of the
    containers' region and open. What a policy that ignores the image achieves on a layout:
    a success rate well above 0 means the layout does not test finding the object."""

    def __init__(self, task: str):
        from sim.env import CONTAINER_REGION, OBJECT_REGION, PAD_REGION  # sim.env imports us

        self.spec = task_spec(task)
        self.grasp_at = np.array([*np.mean(OBJECT_REGION, axis=0), BLIND_GRASP_Z_M])
        drop_region = CONTAINER_REGION if self.spec.place == "tray" else PAD_REGION
        height = DROP_HEIGHT_M.get(self.spec.place, 0.0)
        self.drop_at = np.array([*np.mean(drop_region, axis=0), height])
        self.reset()

    def reset(self) -> None:
        self.close_z = None
        self.opened = False

    def act(self, info) -> np.ndarray:
        ee = np.asarray(info["ee_pos"], dtype=np.float64)
        a = np.zeros(7)
        if self.close_z is None:  # reach and close
            if np.linalg.norm(self.grasp_at - ee) > GRASP_THRESHOLD_M:
                a[:3] = K_GAIN * (self.grasp_at - ee)
            else:
                a[6] = GRIP_CLOSE
                self.close_z = ee[2]
        elif ee[2] < self.close_z + GRASP_LIFT_M + LIFT_MARGIN_M and not self.opened:
            a[2], a[6] = 1.0, GRIP_CLOSE  # lift
        elif self.spec.place is not None and not self.opened:
            if np.linalg.norm(self.drop_at - ee) > DROP_THRESHOLD_M:
                a[:3] = K_GAIN * (self.drop_at - ee)
                a[6] = GRIP_CLOSE
            else:
                a[6] = GRIP_OPEN
                self.opened = True
        return np.clip(a, -CLIP, CLIP).astype(np.float32)
