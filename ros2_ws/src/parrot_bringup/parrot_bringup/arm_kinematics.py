"""FK/IK of the real arm from its URDF in plain numpy (no ROS, no pybullet, no solver library).

The `hardware_bridge` needs the tool centre point (TCP) pose for the workspace box and, in
`joint_trajectory` mode, joint targets for an end-effector delta. The joints of the chain from
the URDF's root to `ee_link` (origin xyz/rpy, axis, limits) are all FK needs, so robot compute
installs nothing for it (an aarch64 board has no pybullet wheel). The xArm6 URDF ships with the
package (`parrot_bringup/urdf/xarm6_with_gripper.urdf`, the file pybullet_data carries); FK
agrees with the twin's PyBullet to well under 0.1 mm (tests/test_arm_kinematics.py). IK is
damped least squares on the 6D pose error from the current joints, within the joint limits.

The TCP is `ee_link` plus `tcp_offset` (metres, in the ee_link frame); the defaults match the
twin (`sim/robot.py`: 0.145 m along the flange axis from the gripper base), so the
workspace box and the deltas mean the same in sim and on the arm. The rotation delta turns
the TCP about the base x/y/z axes (pre-multiplied), as the twin does.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parrot_core.safety import euler_matrix, quaternion_from_rotation, quaternion_matrix

PACKAGE_URDF_DIR = Path(__file__).resolve().parent / "urdf"
DEFAULT_URDF = "xarm6_with_gripper.urdf"  # in PACKAGE_URDF_DIR
DEFAULT_EE_LINK = "xarm_gripper_base_link"
DEFAULT_TCP_OFFSET = (0.0, 0.0, 0.145)
XARM6_JOINTS = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6"]
IK_DAMPING = 1e-2  # Levenberg-Marquardt damping: steady steps near singular poses


class KinematicsError(RuntimeError):
    """A URDF that cannot be loaded or lacks the named joints/link, or an IK without solution."""


def resolve_urdf(path: str) -> str:
    """An absolute path as is; a relative one (or "") in the package's urdf/ directory."""
    if path and os.path.isabs(path):
        return path
    return str(PACKAGE_URDF_DIR / (path or DEFAULT_URDF))


@dataclass
class _Joint:
    name: str
    kind: str  # revolute | continuous | prismatic | fixed
    origin: np.ndarray  # 4x4, parent link frame -> joint frame
    axis: np.ndarray  # unit vector in the joint frame
    lower: float
    upper: float


def _origin(el) -> np.ndarray:
    t = np.eye(4)
    if el is not None:
        t[:3, :3] = euler_matrix([float(v) for v in el.get("rpy", "0 0 0").split()])
        t[:3, 3] = [float(v) for v in el.get("xyz", "0 0 0").split()]
    return t


def _chain(urdf: str, ee_link: str) -> list[_Joint]:
    """The joints from the root link to ee_link, root first."""
    try:
        robot = ET.parse(urdf).getroot()
    except (ET.ParseError, OSError) as e:
        raise KinematicsError(f"cannot load arm URDF {urdf}: {e}") from e
    by_child, links = {}, {el.get("name") for el in robot.findall("link")}
    for el in robot.findall("joint"):  # direct children only: <transmission> names joints too
        limit = el.find("limit")
        axis = np.array([float(v) for v in (el.find("axis").get("xyz") if el.find("axis") is not None
                                             else "1 0 0").split()])
        lo = float(limit.get("lower", 0.0)) if limit is not None else 0.0
        hi = float(limit.get("upper", 0.0)) if limit is not None else 0.0
        if el.get("type") == "continuous" or hi <= lo:
            lo, hi = -2 * np.pi, 2 * np.pi
        by_child[el.find("child").get("link")] = (el.find("parent").get("link"), _Joint(
            el.get("name"), el.get("type"), _origin(el.find("origin")),
            axis / np.linalg.norm(axis), lo, hi))
    if ee_link not in links:
        raise KinematicsError(f"{urdf}: no link {ee_link!r}; has {sorted(links)}")
    chain, link = [], ee_link
    while link in by_child:
        link, joint = by_child[link]
        chain.append(joint)
    return chain[::-1]


def _joint_motion(joint: _Joint, q: float) -> np.ndarray:
    t = np.eye(4)
    if joint.kind in ("revolute", "continuous"):
        t[:3, :3] = _axis_angle(joint.axis, q)
    elif joint.kind == "prismatic":
        t[:3, 3] = joint.axis * q
    return t


def _axis_angle(axis, angle: float) -> np.ndarray:
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _rotation_vector(r: np.ndarray) -> np.ndarray:
    """The axis * angle of a rotation matrix (the orientation error IK drives to zero)."""
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))
    if angle < 1e-9:
        return np.zeros(3)
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if np.pi - angle < 1e-6:  # half a turn: the axis from the symmetric part R = 2aa^T - I
        i = int(np.argmax(np.diag(r)))
        axis = (r[:, i] + np.eye(3)[i]) / np.sqrt(2.0 * (1.0 + r[i, i]))
        return axis * angle
    return w / (2 * np.sin(angle)) * angle


class ArmKinematics:
    def __init__(self, urdf: str = "", joint_names=None, ee_link: str = DEFAULT_EE_LINK,
                 tcp_offset=DEFAULT_TCP_OFFSET):
        self.urdf = resolve_urdf(urdf)
        if not os.path.exists(self.urdf):
            raise KinematicsError(f"arm URDF {self.urdf!r} not found")
        self.joint_names = list(joint_names or XARM6_JOINTS)
        self.chain = _chain(self.urdf, ee_link)
        in_chain = {j.name: k for k, j in enumerate(self.chain)}
        missing = [n for n in self.joint_names if n not in in_chain]
        if missing:
            raise KinematicsError(f"{self.urdf}: no joint(s) {missing} between the root and "
                                  f"{ee_link!r}; the chain has {sorted(in_chain)}")
        self._slot = [in_chain[n] for n in self.joint_names]  # chain index of each named joint
        self.arm_lower = np.array([self.chain[k].lower for k in self._slot])
        self.arm_upper = np.array([self.chain[k].upper for k in self._slot])
        self.tcp_offset = np.asarray(tcp_offset, float)

    def close(self) -> None:
        """Nothing to release (kept so callers need not know the solver)."""

    def _frames(self, q) -> tuple[np.ndarray, list]:
        """World pose of the TCP (4x4) and, per named joint, its world axis and origin."""
        angles = np.zeros(len(self.chain))
        angles[self._slot] = np.asarray(q, float)
        t, axes = np.eye(4), {}
        for k, joint in enumerate(self.chain):
            t = t @ joint.origin
            axes[k] = (t[:3, :3] @ joint.axis, t[:3, 3].copy(), joint.kind)
            t = t @ _joint_motion(joint, angles[k])
        tcp = t.copy()
        tcp[:3, 3] = t[:3, 3] + t[:3, :3] @ self.tcp_offset
        return tcp, [axes[k] for k in self._slot]

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions (joint_names order) -> TCP position (m), quaternion (x, y, z, w)."""
        tcp, _ = self._frames(q)
        return tcp[:3, 3].copy(), np.array(quaternion_from_rotation(tcp[:3, :3]))

    def _jacobian(self, tcp_pos, joints) -> np.ndarray:
        cols = []
        for axis, origin, kind in joints:
            if kind == "prismatic":
                cols.append(np.r_[axis, np.zeros(3)])
            else:
                cols.append(np.r_[np.cross(axis, tcp_pos - origin), axis])
        return np.array(cols).T  # (6, n): linear velocity over angular velocity

    def apply_delta(self, pos, orn, pos_delta, rot_delta) -> tuple[np.ndarray, np.ndarray]:
        """Target TCP pose: position + delta; orientation turned by the rpy delta (base axes)."""
        turned = euler_matrix(rot_delta) @ quaternion_matrix(orn)
        return (np.asarray(pos, float) + np.asarray(pos_delta, float),
                np.array(quaternion_from_rotation(turned)))

    def ik(self, q_current, target_pos, target_orn, iterations: int = 100,
           tolerance_m: float = 0.005) -> np.ndarray:
        """Joint positions reaching the TCP target, starting from (and near) q_current.

        Raises KinematicsError when the solution misses the target by more than
        `tolerance_m` (out of reach, singular) or would leave the joint limits.
        """
        for name, v in (("q_current", q_current), ("target_pos", target_pos),
                        ("target_orn", target_orn)):
            if not np.all(np.isfinite(np.asarray(v, float))):
                raise KinematicsError(f"IK {name} is not finite: {np.asarray(v).tolist()}")
        goal_pos = np.asarray(target_pos, float)
        goal_rot = quaternion_matrix(target_orn)
        q = np.clip(np.asarray(q_current, float), self.arm_lower, self.arm_upper)
        for _ in range(iterations):
            tcp, joints = self._frames(q)
            error = np.r_[goal_pos - tcp[:3, 3], _rotation_vector(goal_rot @ tcp[:3, :3].T)]
            if np.linalg.norm(error[:3]) < 1e-6 and np.linalg.norm(error[3:]) < 1e-5:
                break
            jac = self._jacobian(tcp[:3, 3], joints)
            step = jac.T @ np.linalg.solve(jac @ jac.T + IK_DAMPING ** 2 * np.eye(6), error)
            q = np.clip(q + step, self.arm_lower, self.arm_upper)
        got, _ = self.fk(q)
        err = float(np.linalg.norm(got - goal_pos))
        if err > tolerance_m:
            raise KinematicsError(f"IK misses the target by {err * 1000:.1f} mm "
                                  f"(> {tolerance_m * 1000:.1f} mm): out of reach?")
        return q
