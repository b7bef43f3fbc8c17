"""The 7D action every part of Parrot speaks, and how it maps to metres and radians.

An action is ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in [-1, 1]. The sim twin, the
ROS nodes and the hardware bridge all scale it with the constants below, so a policy
trained in the twin commands the same motion on the arm.
"""

from __future__ import annotations

import numpy as np

ACTION_DIM = 7
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
# End-effector position change per control step at |a| = 1 (metres).
POS_SCALE_M = 0.03
# End-effector orientation change per control step at |a| = 1 (radians, roll/pitch/yaw).
ROT_SCALE_RAD = 0.15
# Gripper: a > +GRIPPER_THRESHOLD opens, a < -GRIPPER_THRESHOLD closes, otherwise hold.
GRIPPER_THRESHOLD = 0.5


# Slack for float round trips (twist in m/s -> action) before a command counts as out of range.
RANGE_TOLERANCE = 1e-6


class InvalidActionError(ValueError):
    """An action that must never reach an arm (wrong shape, NaN or inf)."""


class ActionOutOfRangeError(InvalidActionError):
    """A finite action outside [-1, 1] where it must be refused (a command to an arm)."""


def validate_action(action, name: str = "action", strict: bool = False) -> np.ndarray:
    """Return ``action`` as a float32 (7,) array in [-1, 1].

    Raises InvalidActionError for a wrong shape or any NaN/inf: such an action is
    rejected, never clipped into something that looks valid. Finite values outside [-1, 1]
    are clipped (a policy's output), or with ``strict`` (a command on its way to an arm)
    raise ActionOutOfRangeError: clipping would change its size or its direction.
    """
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (ACTION_DIM,):
        raise InvalidActionError(f"{name} must have shape ({ACTION_DIM},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidActionError(f"{name} contains NaN or inf: {a.tolist()}")
    if strict and np.any(np.abs(a) > 1.0 + RANGE_TOLERANCE):
        raise ActionOutOfRangeError(f"{name} outside [-1, 1]: {np.round(a, 4).tolist()} "
                                    f"(refused, not clipped)")
    return np.clip(a, -1.0, 1.0).astype(np.float32)


def to_metric(action: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Split a validated action into (position delta m, rotation delta rad, gripper cmd).

    gripper cmd is +1 (open), -1 (close) or 0 (hold).
    """
    a = validate_action(action)
    grip = 1 if a[6] > GRIPPER_THRESHOLD else (-1 if a[6] < -GRIPPER_THRESHOLD else 0)
    return a[:3] * POS_SCALE_M, a[3:6] * ROT_SCALE_RAD, grip


# How `parrot train-prior` labels the gripper channel: as recorded (a toggle: hold is ~0) or as
# the gripper state each command leaves (open +, closed -); see gripper_as_target_state.
GRIPPER_LABELS = ("target-state", "as-recorded")


def gripper_as_target_state(actions: np.ndarray, start_closed: bool = False) -> np.ndarray:
    """One episode's actions with every *hold* gripper command relabelled as the state it holds.

    The gripper channel is a toggle (open above +GRIPPER_THRESHOLD, close below -threshold,
    hold in between), so a hold while open and an open command while open move the arm the
    same way. Relabelled, the channel says which state the gripper should be in: a hold while
    open becomes ``1 - |g|`` and a hold while closed ``-(1 - |g|)``, keeping the recorded
    noise as a distance from +-1. Open and close commands are kept as recorded, and the
    gripper's state is followed through them from ``start_closed``, so the episode replays
    exactly as before.
    """
    a = np.array(actions, dtype=np.float32, copy=True)
    if a.ndim != 2 or a.shape[1] != ACTION_DIM:
        raise ValueError(f"actions must be (T, {ACTION_DIM}), got {a.shape}")
    closed = bool(start_closed)
    for t in range(len(a)):
        g = float(a[t, 6])
        if g > GRIPPER_THRESHOLD:
            closed = False
        elif g < -GRIPPER_THRESHOLD:
            closed = True
        else:
            a[t, 6] = (-1.0 if closed else 1.0) * (1.0 - abs(g))
    return a


def scaling_metadata() -> dict:
    """The constants, for export metadata and bundles."""
    return {
        "action_dim": ACTION_DIM,
        "pos_scale_m": POS_SCALE_M,
        "rot_scale_rad": ROT_SCALE_RAD,
        "gripper_threshold": GRIPPER_THRESHOLD,
    }
