"""hardware_bridge in `joint_trajectory` mode (IK on the xArm6 URDF), over real DDS.

Pins: a policy step becomes a one-point JointTrajectory whose FK moves the TCP by the
commanded delta (and the gripper command a one-point trajectory of `drive_joint` for
xarm_ros2's gripper trajectory controller); the watchdog stops by holding the measured joints; an IK solution that jumps
a joint past `max_joint_step_rad` is refused with reason `ik` (set through a lifecycle
cleanup -> reconfigure cycle with new parameters); the kinematics refuse unreachable targets.
"""

import time

import numpy as np
import pytest

from hardware_fakes import (JOINTS, Q0, TRAJ_TOPIC, FakeArm, domain_for, start_bridge,
                            stop_process, wait_for)
from parrot_bringup.arm_kinematics import ArmKinematics, KinematicsError


@pytest.fixture(scope="module")
def kin():
    k = ArmKinematics()
    yield k
    k.close()


def test_ik_reaches_a_delta_and_refuses_the_unreachable(kin):
    pos, orn = kin.fk(Q0)
    target, torn = kin.apply_delta(pos, orn, [0.02, -0.01, 0.01], [0, 0, 0.1])
    q = kin.ik(Q0, target, torn)
    assert np.linalg.norm(kin.fk(q)[0] - target) < 1e-3
    assert np.max(np.abs(q - Q0)) < 0.3  # stays on the same branch, near the start
    with pytest.raises(KinematicsError, match="misses the target"):
        kin.ik(Q0, [2.0, 0.0, 0.3], orn)


@pytest.mark.parametrize("field", ["q", "target", "orn"])
def test_ik_refuses_non_finite_inputs_at_once(kin, field):
    """PyBullet's IK hung for minutes on a NaN target; non-finite inputs are refused before it
    runs, naming which one."""
    pos, orn = kin.fk(Q0)
    q, target, torn = list(Q0), list(pos), list(orn)
    {"q": q, "target": target, "orn": torn}[field][0] = float("nan")
    with pytest.raises(KinematicsError, match="not finite"):
        kin.ik(q, target, torn)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("traj")
    domain = domain_for(__name__)
    params = {"output_mode": "joint_trajectory", "autostart": "activate",
              "control_rate_hz": 10.0, "watchdog_rate_hz": 20.0,
              "safety": {"command_timeout_s": 0.4}}
    bridge = start_bridge(tmp, domain, params)
    arm = FakeArm(domain)
    try:
        assert wait_for(lambda: arm.state_or_none() == "active", 20, 0.2), \
            bridge.log_path.read_text()
        assert arm.wait_matched(TRAJ_TOPIC)
        yield arm, bridge
    finally:
        arm.close()
        stop_process(bridge)


@pytest.mark.ros
def test_step_becomes_a_joint_trajectory_and_watchdog_holds(rig, kin):
    arm, _ = rig
    arm.clear()
    # a command refused while joint states catch up yields a hold (positions == Q0): wait
    # for the trajectory that moves
    def moving():
        return [(t, m) for t, m in arm.snapshot(arm.trajs)
                if m.points and not np.allclose(m.points[0].positions, Q0)]
    t0, got = arm.command_until([0.5, 0, 0, 0, 0, 0, -1.0], moving)
    assert got, f"no moving trajectory: {arm.diag_texts()[-3:]}"
    traj = got[0][1]
    assert list(traj.joint_names) == JOINTS and len(traj.points) == 1
    pt = traj.points[0]
    assert pt.time_from_start.sec == 0 and abs(pt.time_from_start.nanosec - 1e8) < 1e3
    moved = kin.fk(pt.positions)[0] - kin.fk(Q0)[0]
    assert np.allclose(moved, [0.015, 0, 0], atol=2e-3), moved
    grips = wait_for(lambda: arm.snapshot(arm.grips), 2)
    assert grips and list(grips[0][1].joint_names) == ["drive_joint"]
    assert list(grips[0][1].points[0].positions) == [0.85]  # -1 closes: gripper_closed_position
    # no more commands: the watchdog holds the measured joints
    hold = wait_for(lambda: [m for t, m in arm.snapshot(arm.trajs) if t > t0
                             and m.points and np.allclose(m.points[0].positions, Q0)], 3)
    assert hold, "the watchdog did not send a hold"
    assert wait_for(lambda: [d for d in arm.diag_texts() if "stopped: stale_command" in d], 2)


@pytest.mark.ros
def test_joint_jump_is_refused_with_reason_ik(rig):
    arm, bridge = rig
    assert arm.lifecycle("deactivate") and arm.lifecycle("cleanup")
    # cleanup destroys the publishers; configure makes new ones, which must match again
    assert wait_for(lambda: arm.node.count_publishers(TRAJ_TOPIC) == 0, 5)
    arm.set_params({"max_joint_step_rad": 1e-4})
    assert arm.lifecycle("configure") and arm.lifecycle("activate")
    assert arm.wait_matched(TRAJ_TOPIC)
    arm.clear()
    # resent until the reconfigured bridge has joint states again and says "ik"
    _, diag = arm.command_until([0.5, 0, 0, 0, 0, 0, 0],
                                lambda: [d for d in arm.diag_texts() if "stopped: ik" in d])
    assert diag and "max_joint_step_rad" in diag[0], arm.diag_texts()[-3:]
    time.sleep(0.1)
    trajs = [m for _, m in arm.snapshot(arm.trajs)]
    assert trajs and all(np.allclose(m.points[0].positions, Q0) for m in trajs), \
        "a refused IK step moved the arm"
