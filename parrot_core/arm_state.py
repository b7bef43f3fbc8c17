"""The arm state a prior may be conditioned on, next to the image: what the real arm reports.

    state = [tcp_x, tcp_y, tcp_z, gripper_closed]     (float32, STATE_DIM = 4)

TCP position in metres in the arm's base frame (the twin's world frame: base at the origin,
table top at z = 0), from forward kinematics of ``joint_states`` on the arm; gripper_closed is
1.0 when the gripper is closed (or closing), else 0.0. Why these four: at 48x48 pixels the
image shows where the object is but barely how high the fingers are or whether they are
closed, and a prior that cannot tell closes the gripper above the object
(docs/RESULTS.md, "arm-state conditioning").
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 4
STATE_NAMES = ("tcp_x_m", "tcp_y_m", "tcp_z_m", "gripper_closed")


class ArmStateError(ValueError):
    """An arm state that must not reach a prior (wrong shape, NaN or inf)."""


def arm_state(tcp_position, gripper_closed) -> np.ndarray:
    """The (4,) state from a TCP position (m, base frame) and the gripper's closed flag."""
    state = np.zeros(STATE_DIM, np.float32)
    state[:3] = np.asarray(tcp_position, dtype=np.float64).reshape(3)
    state[3] = 1.0 if gripper_closed else 0.0
    return validate_state(state)


def state_from_info(info: dict) -> np.ndarray:
    """The state of a ParrotEnv ``info`` dict (what the twin knows before an action)."""
    return arm_state(info["ee_pos"], info["gripper_closed"])


def random_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """n plausible arm states (inside the twin's workspace, gripper open or closed), for test
    inferences and export parity checks."""
    return np.column_stack([rng.uniform(0.25, 0.55, n), rng.uniform(-0.2, 0.2, n),
                            rng.uniform(0.02, 0.3, n), rng.integers(0, 2, n)]).astype(np.float32)


def validate_state(state, name: str = "arm state") -> np.ndarray:
    s = np.asarray(state, dtype=np.float32)
    if s.shape != (STATE_DIM,):
        raise ArmStateError(f"{name} must have shape ({STATE_DIM},) {STATE_NAMES}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ArmStateError(f"{name} contains NaN or inf: {s.tolist()}")
    return s
