"""Task definitions: what counts as success (sparse reward 1.0) in each twin task.

All heights are in metres above the object's resting height at the start of the episode
("spawn height"), so tall and flat objects are treated alike.

* ``grasp``: any object lifted >= GRASP_LIFT_M above its spawn height and within
  HELD_DIST_M of the tool centre point (as in roboverse: lifted and near the gripper).
* ``lift``: the named ``target_object`` lifted >= LIFT_M above its spawn height, near the TCP.
* ``pick_place``: the named object inside the tray (x-y within TRAY_INNER_HALF_M of its
  centre, raised less than TRAY_WALL_M above its spawn height, i.e. its bottom below the
  rim whatever its size) with the gripper commanded open.
* ``place_on_target``: the named object resting (< REST_TOL_M above spawn height) with its
  centre within TARGET_RADIUS_M of the flat target pad's centre, gripper open.

Every task is built with the ``train`` or the ``heldout`` object pool (``EnvConfig.objects``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRASP_LIFT_M = 0.05
LIFT_M = 0.08
HELD_DIST_M = 0.10
TRAY_INNER_HALF_M = 0.06
TRAY_WALL_M = 0.035
TARGET_HALF_M = 0.045
TARGET_RADIUS_M = 0.045
REST_TOL_M = 0.025


class TaskError(ValueError):
    """Unknown task name."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    named_object: bool  # the task is about one named object (info["target_object"])
    place: str | None  # "tray" | "target" | None: where the object must end up
    description: str


TASKS = {
    "grasp": TaskSpec("grasp", False, None, "grasp any object and lift it"),
    "lift": TaskSpec("lift", True, None, "lift the named object above a height"),
    "pick_place": TaskSpec("pick_place", True, "tray", "put the named object in the tray"),
    "place_on_target": TaskSpec("place_on_target", True, "target",
                                "place the named object on the target pad"),
}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def _lifted(pos, spawn_z, ee, height) -> bool:
    return pos[2] - spawn_z >= height and float(np.linalg.norm(np.asarray(pos) - ee)) <= HELD_DIST_M


def is_success(task: str, *, positions: dict, spawn_z: dict, ee_pos, gripper_closed: bool,
               target_object: str | None, tray_pos=None, target_pos=None) -> bool:
    """Success of ``task`` in the current state (pure function of privileged state)."""
    ee = np.asarray(ee_pos)
    if task == "grasp":
        return any(_lifted(positions[n], spawn_z[n], ee, GRASP_LIFT_M) for n in positions)
    pos = np.asarray(positions[target_object])
    if task == "lift":
        return _lifted(pos, spawn_z[target_object], ee, LIFT_M)
    if task == "pick_place":
        d = np.abs(pos[:2] - np.asarray(tray_pos)[:2])
        # Relative to the spawn height, not an absolute z: a 7 cm object standing in the
        # tray has its centre above the 3.5 cm rim.
        return bool(not gripper_closed and d.max() <= TRAY_INNER_HALF_M
                    and pos[2] - spawn_z[target_object] <= tray_pos[2] + TRAY_WALL_M)
    if task == "place_on_target":
        d = float(np.linalg.norm(pos[:2] - np.asarray(target_pos)[:2]))
        return bool(not gripper_closed and d <= TARGET_RADIUS_M
                    and pos[2] - spawn_z[target_object] <= REST_TOL_M)
    raise TaskError(f"unknown task {task!r}")
