"""Does the prior find the object? Localization figures `parrot prior-viz` prints.

- Reaching error: scripted episodes (collection noise) on the viz's scenes; at each step of
  the reaching phase (gripper open, before the scripted close) the prior's mode action
  f(0; image) is compared with the scripted policy's noise-free action. Median |dx| and |dy|,
  in action units and in metres of commanded motion per step.
- Sideways miss: in closed loop, the horizontal distance from the TCP to the nearest object at
  the first step that commands the gripper closed (a[6] < -0.5); the scripted policy closes
  within GRASP_THRESHOLD_M (2 cm). Also split into |dx| (towards / away from the default
  camera, which looks along -x) and |dy| (sideways in its image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parrot_core.action_space import POS_SCALE_M
from sim.scripted import CLIP, GRASP_THRESHOLD_M, ScriptedPolicy, policy_rng

CLOSE_BELOW = -0.5  # the twin closes the gripper for a[6] < -0.5


def horizontal_distances(info) -> dict[str, float]:
    """Distance (m) in x-y from the TCP to each object, by name."""
    ee = np.asarray(info["ee_pos"], dtype=np.float64)[:2]
    return {n: float(np.linalg.norm(np.asarray(info["object_positions"][n][:2]) - ee))
            for n in info["object_names"]}


def horizontal_miss(info) -> float:
    """Distance (m) in x-y from the TCP to the nearest object."""
    return float(np.linalg.norm(miss_offset(info)))


def miss_offset(info) -> np.ndarray:
    """(dx, dy) in metres from the TCP to the nearest object (in x-y)."""
    name = min(horizontal_distances(info).items(), key=lambda kv: kv[1])[0]
    return (np.asarray(info["object_positions"][name][:2], dtype=np.float64)
            - np.asarray(info["ee_pos"], dtype=np.float64)[:2])


def first_close_miss(info_before_step, action, already: np.ndarray | None) -> np.ndarray | None:
    """(dx, dy) to the nearest object at the first close command of an episode (kept once set)."""
    if already is None and float(action[6]) < CLOSE_BELOW:
        return miss_offset(info_before_step)
    return already


def summarize_misses(misses: list) -> dict:
    """Medians over the episodes that closed; ``misses`` holds first_close_miss's (dx, dy) or None."""
    closed = np.array([m for m in misses if m is not None], dtype=np.float64).reshape(-1, 2)
    if not len(closed):
        return {"episodes": len(misses), "closed": 0, "median_miss_m": None, "within_2cm": None,
                "median_abs_dx_m": None, "median_abs_dy_m": None}
    dist = np.linalg.norm(closed, axis=1)
    return {"episodes": len(misses), "closed": len(closed),
            "median_miss_m": float(np.median(dist)),
            "within_2cm": float(np.mean(dist <= GRASP_THRESHOLD_M)),
            "median_abs_dx_m": float(np.median(np.abs(closed[:, 0]))),
            "median_abs_dy_m": float(np.median(np.abs(closed[:, 1])))}


@dataclass
class ReachingError:
    steps: int
    median_abs_dx: float  # action units
    median_abs_dy: float

    def as_dict(self) -> dict:
        return {"steps": self.steps, "median_abs_dx": self.median_abs_dx,
                "median_abs_dy": self.median_abs_dy,
                "median_abs_dx_m": self.median_abs_dx * POS_SCALE_M,
                "median_abs_dy_m": self.median_abs_dy * POS_SCALE_M}


def reaching_error(env, prior_mode, episodes: int, seed: int, noise_std: float = 0.1) -> ReachingError:
    """Prior mode vs scripted action at the reaching-phase states of `episodes` scenes;
    ``prior_mode(obs, info)`` is the action (a `sim.prior_viz` sampler)."""
    errors = []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        policy = ScriptedPolicy(env.config.task, policy_rng(seed + i), noise_std)
        done = False
        while not done:
            reaching = not policy.grasp_attempted and not info["gripper_closed"]
            plan = policy.plan(info)
            clean = np.clip(plan, -CLIP, CLIP)
            if reaching and clean[6] == 0.0:  # not the closing step itself
                errors.append(np.abs(prior_mode(obs, info)[:2] - clean[:2]))
            action = policy.add_noise(plan)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    if not errors:
        return ReachingError(0, float("nan"), float("nan"))
    e = np.array(errors)
    return ReachingError(len(e), float(np.median(e[:, 0])), float(np.median(e[:, 1])))
