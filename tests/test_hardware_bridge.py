"""hardware_bridge (servo output) over real DDS against a fake arm in another process.

Pins: the bridge does not move the arm until it is lifecycle-activated; every safety rule
triggered by a crafted input (NaN, per-step translation/rotation limit, workspace box,
lagging image, stopped images, stale joint states, e-stop latching until reset) stops the
motion (a zero twist reaches the arm, no motion after it) and says why on /diagnostics and
in the log (rate-limited, but once per new stop); the watchdog stops the arm within its
timeout; deactivating stops it; parameters come from a --params-file.
"""

import time

import numpy as np
import pytest

from hardware_fakes import (SERVO_COMMAND_TIMEOUT_S, SERVO_TOPIC, FakeArm, Q0, domain_for,
                            start_bridge, stop_process, twist_vec, wait_for)

pytestmark = pytest.mark.ros

GOOD = [0.5, 0, 0, 0, 0, 0, 0]
COMMAND_TIMEOUT = 0.4
TIMEOUT = 0.3
WATCHDOG_HZ = 20.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from parrot_bringup.arm_kinematics import ArmKinematics
    kin = ArmKinematics()
    tcp, _ = kin.fk(Q0)
    kin.close()
    tmp = tmp_path_factory.mktemp("bridge")
    domain = domain_for(__name__)
    params = {
        "output_mode": "servo", "autostart": "configure", "control_rate_hz": 10.0,
        "watchdog_rate_hz": WATCHDOG_HZ, "stop_log_throttle_s": 30.0,
        "joint_state_timeout_s": TIMEOUT, "diagnostics_period_s": 0.5,
        # the TCP sits 1 cm inside the box's -x face: a -3 cm step leaves it
        "safety": {"workspace_min": [float(tcp[0]) - 0.01, -0.35, 0.0],
                   "workspace_max": [0.75, 0.35, 0.55],
                   "command_timeout_s": COMMAND_TIMEOUT, "image_timeout_s": TIMEOUT,
                   "max_image_age_s": TIMEOUT,
                   # tighter than the defaults so a full-scale diagonal step trips them
                   "max_translation_m": 0.04, "max_rotation_rad": 0.2,
                   # the arm points down with yaw 0: a full yaw step (0.15 rad) turns past this
                   "max_yaw_rad": 0.1},
    }
    bridge = start_bridge(tmp, domain, params)
    arm = FakeArm(domain)
    try:
        state = wait_for(arm.state_or_none, 20, 0.2)
        assert state == "inactive", f"bridge not up: {state}\n{bridge.log_path.read_text()}"
        assert arm.wait_matched(SERVO_TOPIC)
        yield arm, bridge
    finally:
        arm.close()
        stop_process(bridge)


@pytest.fixture
def active(rig):
    arm, bridge = rig
    if arm.lifecycle_state() != "active":
        assert arm.lifecycle("activate")
    arm.publish_images = arm.publish_joints = True
    return arm, bridge


def moving(arm, since=0.0):
    return [(t, m) for t, m in arm.snapshot(arm.twists) if t >= since and np.any(twist_vec(m))]


def zeros(arm, since=0.0):
    return [(t, m) for t, m in arm.snapshot(arm.twists) if t >= since and not np.any(twist_vec(m))]


def go(arm):
    """Get the arm moving: good commands until a non-zero twist reaches the arm."""
    arm.clear()
    _, got = arm.command_until(GOOD, lambda: moving(arm))
    assert got, f"good commands did not move the arm for 5 s: {arm.diag_texts()[-3:]}"


def stream(arm, seconds, action=GOOD, fresh_stamp=False):
    """Keep commanding every 0.1 s (so the watchdog stays quiet)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        arm.command(action, stamp_ns=arm.now_ns() if fresh_stamp else None)
        time.sleep(0.1)


def assert_stopped_because(arm, reason, t0, text=""):
    """A zero twist reached the arm after t0, nothing moved after it, and the diagnostics
    name the rule (and `text` from its detail)."""
    got = wait_for(lambda: zeros(arm, t0), 3)
    assert got, f"no zero twist after the crafted input ({reason})"
    diag = wait_for(lambda: [d for d in arm.diag_texts() if f"stopped: {reason}" in d], 3)
    assert diag, f"no diagnostic for {reason}: {arm.diag_texts()}"
    assert text in diag[0]
    time.sleep(0.15)
    assert not moving(arm, got[0][0]), f"the arm moved after the {reason} stop"


def test_bridge_does_not_move_the_arm_until_activated(rig):
    arm, bridge = rig
    assert arm.lifecycle_state() == "inactive"
    wait_for(lambda: arm.last_image_ns, 3)
    arm.clear()
    stream(arm, 0.5)
    assert arm.snapshot(arm.twists) == [], "an inactive bridge published motion"
    assert wait_for(lambda: [d for d in arm.diag_texts() if "inactive" in d], 2)
    assert arm.lifecycle("activate")
    arm.clear()
    _, got = arm.command_until(GOOD, lambda: moving(arm))
    assert got, f"no motion after activation: {arm.diag_texts()[-3:]}"
    v = twist_vec(got[0][1])
    # 0.5 * POS_SCALE_M (0.03 m) per step at 10 Hz = 0.15 m/s along x, nothing else
    assert np.allclose(v, [0.15, 0, 0, 0, 0, 0], atol=1e-6)
    assert got[0][1].header.frame_id == "link_base"


CASES = {
    "nan_or_inf": ([np.nan, 0, 0, 0, 0, 0, 0], {}, "NaN"),
    "translation_limit": ([1, 1, 0, 0, 0, 0, 0], {}, "> 0.040 m"),
    "rotation_limit": ([0, 0, 0, 1, 1, 0, 0], {}, "> 0.200 rad"),
    "workspace": ([-1, 0, 0, 0, 0, 0, 0], {}, "outside box"),
    "orientation_limit": ([0, 0, 0, 0, 0, 1, 0], {}, "from pointing down"),
    "stale_image": (GOOD, {"stamp_age_s": 1.0}, "old"),
    "future_stamp": (GOOD, {"stamp_age_s": -1.0}, "in the future"),
    # 0.7 m/s at 10 Hz: was clipped to 0.3 m/s and applied
    "out_of_range": ([2.33, 0, 0, 0, 0, 0, 0], {}, "not clipped"),
}


@pytest.mark.parametrize("reason", list(CASES))
def test_crafted_command_stops_and_says_why(active, reason):
    arm, _ = active
    action, opts, text = CASES[reason]
    go(arm)
    stamp = arm.now_ns() - int(opts["stamp_age_s"] * 1e9) if "stamp_age_s" in opts else None
    t0 = arm.command(action, stamp_ns=stamp)
    assert_stopped_because(arm, reason, t0, text)


def test_a_command_completed_after_a_newer_stop_does_not_move_the_arm(active):
    """The two halves of a command travel on two topics. A good command whose gripper half
    arrives only after a newer NaN command stopped the arm is refused (out_of_order), and a
    second command for the stamp of the NaN one is ignored: the arm stays stopped."""
    arm, _ = active
    go(arm)
    late = arm.now_ns()
    arm.command(GOOD, stamp_ns=late, halves=("twist",))
    nan_stamp = late + 1_000_000
    t0 = arm.command([np.nan, 0, 0, 0, 0, 0, 0], stamp_ns=nan_stamp, halves=("twist",))
    assert_stopped_because(arm, "nan_or_inf", t0, "NaN")
    arm.command(GOOD, stamp_ns=late, halves=("gripper",))  # completes the older command
    diag = wait_for(lambda: [d for d in arm.diag_texts() if "stopped: out_of_order" in d], 3)
    assert diag, f"the late half was not refused: {arm.diag_texts()[-3:]}"
    arm.command(GOOD, stamp_ns=nan_stamp)  # a second command for the NaN command's image
    time.sleep(0.3)
    stopped_at = zeros(arm, t0)[0][0]  # motion sent before the stop may still arrive before it
    assert not moving(arm, stopped_at), "a command older than the stop, or a duplicate, moved the arm"
    go(arm)  # a newer command moves it again


def test_images_stopping_stops_the_arm(active):
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    arm.publish_images = False
    stream(arm, TIMEOUT + 0.3, fresh_stamp=True)
    assert_stopped_because(arm, "stale_image", t0, "no image for")
    arm.publish_images = True


def test_stale_joint_states_stop_the_arm(active):
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    arm.publish_joints = False
    stream(arm, TIMEOUT + 0.3)
    assert_stopped_because(arm, "joint_states", t0, "TCP unknown")
    arm.publish_joints = True


@pytest.mark.parametrize("bad_joint", [float("nan"), 9.0])
def test_non_finite_or_implausible_joint_state_stops_the_arm(active, bad_joint):
    """A NaN joint (FK would give a NaN TCP that passes every box comparison) or one far
    beyond its limit stops the arm at once, and commands stay refused until it is sane."""
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    arm.q = [bad_joint] + list(Q0[1:])
    try:
        assert_stopped_because(arm, "invalid_joint_state",
                               t0, "non-finite" if bad_joint != bad_joint else "beyond")
        t1 = time.monotonic()
        stream(arm, 0.3)
        assert not moving(arm, t1)
    finally:
        arm.q = list(Q0)
    go(arm)


def test_estop_latches_until_released_and_reset(active):
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    arm.estop(True)
    assert_stopped_because(arm, "estop", t0)
    t1 = time.monotonic()
    stream(arm, 0.3)  # good commands: still stopped
    assert not moving(arm, t1) and zeros(arm, t1)
    res = arm.reset_estop()
    assert not res.success and "still pressed" in res.message
    arm.estop(False)
    time.sleep(0.2)
    stream(arm, 0.2)
    assert not moving(arm, t1), "a released but not reset e-stop let the arm move"
    assert arm.reset_estop().success
    go(arm)


def test_commands_stopping_stop_the_twist_then_the_watchdog_reports(active):
    """When commands stop, the republished twist ends 1.5 control periods after the last
    one (a zero twist, well inside Servo's own timeout), and the watchdog reports
    stale_command after its timeout."""
    arm, _ = active
    go(arm)
    arm.clear()
    t_last = arm.command(GOOD)
    got = wait_for(lambda: zeros(arm, t_last), 3)
    assert got, "the arm was never stopped"
    assert got[0][0] - t_last <= 1.5 / 10.0 + 0.25, got[0][0] - t_last
    assert not moving(arm, got[0][0] + 0.05), "motion after the zero twist"
    diag = wait_for(lambda: [t for t, arr in arm.snapshot(arm.diags) for st in arr.status
                             if "stopped: stale_command" in st.message], 3)
    assert diag, "the watchdog never reported"
    elapsed = diag[0] - t_last
    assert COMMAND_TIMEOUT - 0.05 <= elapsed <= COMMAND_TIMEOUT + 1.0 / WATCHDOG_HZ + 0.3, elapsed


def test_twist_flows_at_servo_rate_servo_is_started_and_its_status_reported(active):
    """Commands at 10 Hz: the twist reaches Servo with no gap near Servo's 0.2 s command
    timeout (one twist per command would be stop-and-go); Servo was started on activation;
    a HALT status from Servo shows on /diagnostics."""
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    stream(arm, 1.0)
    times = [t for t, m in arm.snapshot(arm.twists) if t >= t0 + 0.1 and np.any(twist_vec(m))]
    gaps = np.diff(times)
    assert len(times) > 20 and gaps.max() < SERVO_COMMAND_TIMEOUT_S, (len(times), gaps.max())
    assert arm.servo_starts >= 1
    from std_msgs.msg import Int8
    arm.pub_servo_status.publish(Int8(data=4))
    assert wait_for(lambda: [d for d in arm.diag_texts() if "HALT_FOR_COLLISION" in d], 3), \
        arm.diag_texts()[-3:]
    arm.pub_servo_status.publish(Int8(data=0))


def test_stop_log_is_rate_limited_but_names_each_new_reason(active):
    arm, bridge = active
    go(arm)
    logged_before = len(bridge.log_path.read_text().splitlines())
    for _ in range(5):
        arm.command([np.inf, 0, 0, 0, 0, 0, 0])
        time.sleep(0.02)
    wait_for(lambda: len(zeros(arm)) >= 5, 3)
    go(arm)
    arm.command([0, 0, 0, 1, 1, 0, 0])
    wait_for(lambda: [d for d in arm.diag_texts() if "stopped: rotation_limit" in d], 3)
    time.sleep(0.3)
    log = bridge.log_path.read_text().splitlines()[logged_before:]
    assert any("STOP [rotation_limit]" in ln for ln in log)
    # one line for the five NaN commands of this episode
    nan_lines = [ln for ln in log if "STOP [nan_or_inf]" in ln]
    assert len(nan_lines) == 1, nan_lines


def test_deactivate_stops_the_arm_and_ignores_commands(active):
    arm, _ = active
    go(arm)
    t0 = time.monotonic()
    assert arm.lifecycle("deactivate")
    assert_stopped_because(arm, "deactivated", t0)
    t1 = time.monotonic()
    stream(arm, 0.3)
    assert not [m for t, m in arm.snapshot(arm.twists) if t > t1]
    assert arm.lifecycle("activate")
    go(arm)


def test_bridge_publishes_the_arm_state_a_prior_reads(rig):
    """For each joint state the bridge publishes parrot/arm/state: the TCP from FK of those
    joints and the gripper's closed flag from its drive_joint, stamped like the joint state
    (active or not: a policy can be checked before the arm moves)."""
    from parrot_bringup import interfaces as itf
    from parrot_bringup.arm_kinematics import ArmKinematics
    arm, bridge = rig
    kin = ArmKinematics()
    tcp, _ = kin.fk(Q0)
    kin.close()

    def state_since(since, closed):
        """(stamp_ns, state) of a state received after `since` with that gripper flag."""
        for t, msg in reversed(arm.snapshot(arm.arm_states)):
            stamp_ns, state = itf.arm_state_from_msg(msg)
            if t > since and state[3] == closed:
                return stamp_ns, state
        return None

    for position, closed in ((0.0, 0.0), (0.84, 1.0)):
        arm.gripper_position = position
        since = time.monotonic()
        got = wait_for(lambda: state_since(since, closed), 10)
        assert got, f"no arm state with gripper_closed={closed}: {bridge.log_path.read_text()[-2000:]}"
        stamp_ns, state = got
        assert np.allclose(state[:3], tcp, atol=1e-4), (state, tcp)
        assert abs(stamp_ns - arm.now_ns()) < 2e9
    arm.gripper_position = None
