"""The bridge's FK/IK in numpy from the shipped URDF: the twin's kinematics to well under
0.1 mm, without pybullet (robot compute on aarch64 has no pybullet wheel)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from parrot_bringup.arm_kinematics import ArmKinematics, KinematicsError
from parrot_core.safety import quaternion_matrix
from ros_helpers import REPO

HOME = np.array([0.0, -0.5, -0.8, 0.0, 1.3, 0.0])


def test_fk_agrees_with_the_twins_pybullet_arm_within_a_tenth_of_a_millimetre():
    """200 joint configurations drawn within the limits: the TCP position of the twin's arm
    (sim/robot.py, PyBullet) and of ArmKinematics agree to 0.1 mm, rotation matrices to 1e-5."""
    pybullet = pytest.importorskip("pybullet")
    from sim.robot import XArm
    kin = ArmKinematics()
    client = pybullet.connect(pybullet.DIRECT)
    try:
        twin = XArm(client)
        rng = np.random.default_rng(0)
        for _ in range(200):
            q = rng.uniform(kin.arm_lower, kin.arm_upper)
            twin.reset(q)
            twin_pos, twin_orn = twin.ee_pose()
            pos, orn = kin.fk(q)
            assert np.linalg.norm(pos - twin_pos) < 1e-4, q
            # rotation matrices, not arccos of a dot product (float32 quaternions blur that)
            assert np.allclose(quaternion_matrix(orn), quaternion_matrix(twin_orn), atol=1e-5), q
    finally:
        pybullet.disconnect(client)


def test_ik_reaches_random_deltas_from_the_current_joints_within_the_limits():
    kin = ArmKinematics()
    pos, orn = kin.fk(HOME)
    rng = np.random.default_rng(1)
    for _ in range(50):
        target, turned = kin.apply_delta(pos, orn, rng.uniform(-0.03, 0.03, 3),
                                         rng.uniform(-0.15, 0.15, 3))
        q = kin.ik(HOME, target, turned)
        got_pos, got_orn = kin.fk(q)
        assert np.linalg.norm(got_pos - target) < 1e-4
        assert abs(float(np.dot(got_orn, turned))) > 1 - 1e-6
        assert np.all(q >= kin.arm_lower) and np.all(q <= kin.arm_upper)


def test_a_urdf_without_the_named_joints_or_link_is_refused_by_name(tmp_path):
    with pytest.raises(KinematicsError, match="no joint.*'elbow'"):
        ArmKinematics(joint_names=["joint1", "elbow"])
    with pytest.raises(KinematicsError, match="no link 'flange'"):
        ArmKinematics(ee_link="flange")
    with pytest.raises(KinematicsError, match="not found"):
        ArmKinematics(str(tmp_path / "missing.urdf"))
    (tmp_path / "broken.urdf").write_text("<robot><joint")
    with pytest.raises(KinematicsError, match="cannot load"):
        ArmKinematics(str(tmp_path / "broken.urdf"))


def test_the_bridge_kinematics_never_import_pybullet():
    code = ("import sys; from parrot_bringup.arm_kinematics import ArmKinematics; "
            "k = ArmKinematics(); k.ik([0, -0.5, -0.8, 0, 1.3, 0], *k.fk([0, -0.5, -0.8, 0, 1.3, 0.01])); "
            "assert 'pybullet' not in sys.modules, 'pybullet imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("angle", [1e-3, 1.0, np.pi])
def test_the_orientation_error_ik_drives_to_zero_is_the_rotation_itself(angle):
    """The rotation vector of R (axis x angle) rebuilds R, a half turn included (where the
    axis must come from R's symmetric part)."""
    from parrot_bringup.arm_kinematics import _axis_angle, _rotation_vector
    for axis in (np.array([1.0, -1.0, 0.0]), np.array([0.2, 0.5, -0.84]), np.array([0.0, 0, 1])):
        axis = axis / np.linalg.norm(axis)
        r = _axis_angle(axis, angle)
        v = _rotation_vector(r)
        assert np.linalg.norm(v) == pytest.approx(angle, abs=1e-6)
        assert np.allclose(_axis_angle(v / np.linalg.norm(v), np.linalg.norm(v)), r, atol=1e-6)
