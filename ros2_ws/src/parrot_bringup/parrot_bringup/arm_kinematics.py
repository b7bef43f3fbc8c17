"""FK/IK of the real arm from its URDF, with PyBullet in DIRECT mode as the solver (no ROS).

The `hardware_bridge` needs the tool centre point (TCP) pose for the workspace box and, in
`joint_trajectory` mode, joint targets for an end-effector delta. PyBullet is a pip wheel
and the arm's URDF ships with it (`pybullet_data/xarm/xarm6_with_gripper.urdf`), so no
MoveIt/KDL install is needed. No physics is stepped: joints are set, links are read.

The TCP is `ee_link` plus `tcp_offset` (metres, in the ee_link frame); the defaults match the
twin (`sim/robot.py`: 0.145 m along the flange axis from the gripper base), so the
workspace box and the deltas mean the same in sim and on the arm. The rotation delta turns
the TCP about the base x/y/z axes (pre-multiplied), as the twin does.
"""

from __future__ import annotations

import os

import numpy as np

DEFAULT_URDF = "xarm/xarm6_with_gripper.urdf"  # relative to pybullet_data
DEFAULT_EE_LINK = "xarm_gripper_base_link"
DEFAULT_TCP_OFFSET = (0.0, 0.0, 0.145)
XARM6_JOINTS = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6"]


class KinematicsError(RuntimeError):
    """A URDF that cannot be loaded or lacks the named joints/link, or an IK without solution."""


def resolve_urdf(path: str) -> str:
    if path and os.path.isabs(path):
        return path
    import pybullet_data
    rel = path or DEFAULT_URDF
    full = os.path.join(pybullet_data.getDataPath(), rel)
    return full if os.path.exists(full) else rel


class ArmKinematics:
    def __init__(self, urdf: str = "", joint_names=None, ee_link: str = DEFAULT_EE_LINK,
                 tcp_offset=DEFAULT_TCP_OFFSET):
        import pybullet as p
        self.p = p
        self.urdf = resolve_urdf(urdf)
        if not os.path.exists(self.urdf):
            raise KinematicsError(f"arm URDF {self.urdf!r} not found")
        self.cid = p.connect(p.DIRECT)
        try:
            self.body = p.loadURDF(self.urdf, useFixedBase=True, physicsClientId=self.cid)
        except p.error as e:
            p.disconnect(self.cid)
            raise KinematicsError(f"cannot load arm URDF {self.urdf}: {e}") from e
        self.joint_names = list(joint_names or XARM6_JOINTS)
        joints, links, movable = {}, {}, []
        lower, upper = [], []
        for j in range(p.getNumJoints(self.body, physicsClientId=self.cid)):
            info = p.getJointInfo(self.body, j, physicsClientId=self.cid)
            name, jtype, link = info[1].decode(), info[2], info[12].decode()
            joints[name], links[link] = j, j
            if jtype != p.JOINT_FIXED:
                movable.append(j)
                lo, hi = float(info[8]), float(info[9])
                if hi <= lo:  # continuous joint
                    lo, hi = -2 * np.pi, 2 * np.pi
                lower.append(lo)
                upper.append(hi)
        missing = [n for n in self.joint_names if n not in joints]
        if missing:
            self.close()
            raise KinematicsError(f"{self.urdf}: no joint(s) {missing}; has {sorted(joints)}")
        if ee_link not in links:
            self.close()
            raise KinematicsError(f"{self.urdf}: no link {ee_link!r}; has {sorted(links)}")
        self.joint_index = [joints[n] for n in self.joint_names]
        self.ee = links[ee_link]
        self.movable = movable
        self._dof_pos = [movable.index(j) for j in self.joint_index]  # positions in IK output
        self.lower, self.upper = np.array(lower), np.array(upper)
        self.arm_lower = self.lower[self._dof_pos]
        self.arm_upper = self.upper[self._dof_pos]
        self.tcp_offset = np.asarray(tcp_offset, float)

    def close(self) -> None:
        if self.cid is not None:
            try:
                self.p.disconnect(self.cid)
            except self.p.error:
                pass
            self.cid = None

    def _set(self, q) -> None:
        for j, v in zip(self.joint_index, q):
            self.p.resetJointState(self.body, j, float(v), 0.0, physicsClientId=self.cid)

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions (joint_names order) -> TCP position (m), quaternion (x, y, z, w)."""
        self._set(q)
        s = self.p.getLinkState(self.body, self.ee, computeForwardKinematics=True,
                                physicsClientId=self.cid)
        pos, orn = self.p.multiplyTransforms(s[4], s[5], self.tcp_offset.tolist(), (0, 0, 0, 1))
        return np.array(pos), np.array(orn)

    def apply_delta(self, pos, orn, pos_delta, rot_delta) -> tuple[np.ndarray, np.ndarray]:
        """Target TCP pose: position + delta; orientation turned by the rpy delta (base axes)."""
        rot = self.p.getQuaternionFromEuler([float(v) for v in rot_delta])
        orn = self.p.multiplyTransforms((0, 0, 0), rot, (0, 0, 0), orn)[1]
        return np.asarray(pos, float) + np.asarray(pos_delta, float), np.array(orn)

    def ik(self, q_current, target_pos, target_orn, iterations: int = 100,
           tolerance_m: float = 0.005) -> np.ndarray:
        """Joint positions reaching the TCP target, starting from (and near) q_current.

        Raises KinematicsError when the solution misses the target by more than
        `tolerance_m` (out of reach, singular) or leaves the joint limits.
        """
        p = self.p
        for name, v in (("q_current", q_current), ("target_pos", target_pos),
                        ("target_orn", target_orn)):
            if not np.all(np.isfinite(np.asarray(v, float))):  # PyBullet's IK can hang on NaN
                raise KinematicsError(f"IK {name} is not finite: {np.asarray(v).tolist()}")
        # ee_link origin for the TCP target: tcp = link * offset  ->  link = tcp * offset^-1
        inv_pos, inv_orn = p.invertTransform(self.tcp_offset.tolist(), (0, 0, 0, 1))
        link_pos, link_orn = p.multiplyTransforms(list(map(float, target_pos)),
                                                  list(map(float, target_orn)), inv_pos, inv_orn)
        self._set(q_current)
        rest = [0.0] * len(self.movable)
        for k, v in zip(self._dof_pos, q_current):
            rest[k] = float(v)
        sol = p.calculateInverseKinematics(
            self.body, self.ee, link_pos, link_orn, lowerLimits=self.lower.tolist(),
            upperLimits=self.upper.tolist(), jointRanges=(self.upper - self.lower).tolist(),
            restPoses=rest, maxNumIterations=iterations, residualThreshold=1e-5,
            physicsClientId=self.cid)
        q = np.array([sol[k] for k in self._dof_pos])
        if np.any(q < self.arm_lower - 1e-6) or np.any(q > self.arm_upper + 1e-6):
            raise KinematicsError(f"IK solution {np.round(q, 3).tolist()} outside joint limits")
        got, _ = self.fk(q)
        err = float(np.linalg.norm(got - np.asarray(target_pos, float)))
        if err > tolerance_m:
            raise KinematicsError(f"IK misses the target by {err * 1000:.1f} mm "
                                  f"(> {tolerance_m * 1000:.1f} mm): out of reach?")
        return q
