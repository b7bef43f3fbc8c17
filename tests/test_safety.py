"""Safety rules: each crafted bad input stops motion and names the rule that fired."""

import numpy as np
import pytest

from hardware_fakes import down_turned
from parrot_core.safety import SafetyConfig, SafetyFilter

GOOD = np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32)
EE_CENTER = (0.45, 0.0, 0.25)


def fresh_filter(rate_hz: float = 10.0, **overrides) -> SafetyFilter:
    f = SafetyFilter(SafetyConfig(**overrides), control_rate_hz=rate_hz)
    f.on_image(now=0.0)
    return f


def test_good_command_passes_with_metric_delta():
    """A sane command in the middle of the workspace moves the arm by action * scale."""
    d = fresh_filter().check_command(GOOD, now=0.1, image_stamp=0.05, ee_pos=EE_CENTER)
    assert not d.stopped
    assert d.pos_delta[0] > 0 and np.allclose(d.pos_delta[1:], 0)


@pytest.mark.parametrize("bad", [
    [np.nan, 0, 0, 0, 0, 0, 0], [0, np.inf, 0, 0, 0, 0, 0], [0.1] * 6,
])
def test_nan_inf_or_wrong_shape_stops(bad):
    """NaN, inf or a wrong-length command is never applied."""
    d = fresh_filter().check_command(bad, now=0.1, ee_pos=EE_CENTER)
    assert d.stopped and d.stop_reason == "nan_or_inf"
    assert np.all(d.pos_delta == 0) and np.all(d.rot_delta == 0)


def test_workspace_box_stops_motion_leaving_it():
    """A step whose target is outside the box stops; the same step inside is fine."""
    f = fresh_filter()
    near_edge = (SafetyConfig().workspace_max[0] - 0.001, 0.0, 0.25)
    d = f.check_command(GOOD, now=0.1, ee_pos=near_edge)
    assert d.stop_reason == "workspace" and "outside box" in d.detail
    assert not f.check_command(-GOOD, now=0.2, ee_pos=near_edge).stopped


def test_from_outside_the_box_only_steps_back_towards_it_pass():
    """A TCP already outside the box (a start pose, a box changed at run time) may move back
    towards the box, never further out, nor out on another axis."""
    f = fresh_filter()
    beyond = (SafetyConfig().workspace_max[0] + 0.05, 0.0, 0.25)
    assert not f.check_command(-GOOD, now=0.1, ee_pos=beyond).stopped
    assert f.check_command(GOOD, now=0.2, ee_pos=beyond).stop_reason == "workspace"
    sideways_out = [-0.5, 0, 0, 0, 0, 0, 0]
    at_y_edge = (beyond[0], SafetyConfig().workspace_min[1] + 0.001, 0.25)
    sideways_out[1] = -0.5
    assert f.check_command(sideways_out, now=0.3, ee_pos=at_y_edge).stop_reason == "workspace"


def test_translation_and_rotation_limits_stop():
    """Per-step limits below what full-scale actions command stop the motion."""
    d = fresh_filter(max_translation_m=0.01).check_command(GOOD, now=0.1, ee_pos=EE_CENTER)
    assert d.stop_reason == "translation_limit"
    rot = np.array([0, 0, 0, 1.0, 0, 0, 0])
    d = fresh_filter(max_rotation_rad=0.05).check_command(rot, now=0.1, ee_pos=EE_CENTER)
    assert d.stop_reason == "rotation_limit"
    d = fresh_filter().check_delta([0.2, 0, 0], [0, 0, 0], 0, now=0.1, ee_pos=EE_CENTER)
    assert d.stop_reason == "translation_limit"


def test_estop_latches_until_reset():
    """After an e-stop nothing moves, however good the command, until reset."""
    f = fresh_filter()
    f.estop("operator pressed stop")
    for t in (0.1, 0.2, 5.0):
        d = f.check_command(GOOD, now=t, ee_pos=EE_CENTER)
        assert d.stop_reason == "estop" and "operator" in d.detail
    f.reset_estop()
    f.on_image(now=5.0)
    assert not f.check_command(GOOD, now=5.1, ee_pos=EE_CENTER).stopped


def test_watchdog_stops_after_timeout_only():
    """No fresh command within the timeout -> stop; within it -> keep going."""
    f = fresh_filter(command_timeout_s=0.5)
    assert f.check_watchdog(now=10.0) is None  # nothing commanded yet
    f.check_command(GOOD, now=0.1, ee_pos=EE_CENTER)
    assert f.check_watchdog(now=0.5) is None
    d = f.check_watchdog(now=0.61)
    assert d.stop_reason == "stale_command" and "no command" in d.detail


def test_stale_or_lagging_images_stop():
    """Commands stop when images stop arriving or the command's image is too old."""
    f = fresh_filter(image_timeout_s=0.5, max_image_age_s=0.3)
    assert f.check_command(GOOD, now=0.9, ee_pos=EE_CENTER).stop_reason == "stale_image"
    f.on_image(now=1.0)
    d = f.check_command(GOOD, now=1.1, image_stamp=0.5, ee_pos=EE_CENTER)
    assert d.stop_reason == "stale_image" and "old" in d.detail
    assert not f.check_command(GOOD, now=1.1, image_stamp=1.0, ee_pos=EE_CENTER).stopped


@pytest.mark.parametrize("action", [
    [2.33, 0, 0, 0, 0, 0, 0],        # a 0.7 m/s twist at 10 Hz: clipping made it 0.3 m/s
    [3.0, 0.67, 0, 0, 0, 0, 0],      # (0.9, 0.2) m/s: clipping turned its direction
    [0, 0, 0, 2.67, 0, 0, 0],        # 4.0 rad/s: clipping made it 1.5 rad/s
    [0, 0, 0, 0, 0, 0, 1.5],         # a gripper value beyond open
])
def test_out_of_range_command_is_refused_not_clipped(action):
    """Beyond [-1, 1] a command is refused with zero motion, never clipped into range."""
    d = fresh_filter().check_command(action, now=0.1, ee_pos=EE_CENTER)
    assert d.stopped and d.stop_reason == "out_of_range" and "not clipped" in d.detail
    assert np.all(d.pos_delta == 0) and np.all(d.rot_delta == 0) and d.gripper == 0


def test_speed_limit_is_physical_whatever_the_control_rate():
    """The same full-scale diagonal step is 0.52 m/s at 10 Hz (passes the 0.6 m/s default)
    and 1.56 m/s at 30 Hz (refused); rotation likewise in rad/s."""
    diag = [1, 1, 1, 0, 0, 0, 0]
    assert not fresh_filter(10.0).check_command(diag, now=0.1, ee_pos=EE_CENTER).stopped
    d = fresh_filter(30.0).check_command(diag, now=0.1, ee_pos=EE_CENTER)
    assert d.stop_reason == "speed_limit" and "m/s" in d.detail and "30 Hz" in d.detail
    turn = [0, 0, 0, 1, 1, 1, 0]
    assert fresh_filter(30.0).check_command(turn, now=0.1, ee_pos=EE_CENTER).stop_reason == \
        "speed_limit"


def test_command_stamped_in_the_future_stops():
    """A stamp ahead of now by more than max_image_future_s cannot be aged: refused."""
    f = fresh_filter(max_image_future_s=0.05)
    f.on_image(now=1.0)
    d = f.check_command(GOOD, now=1.0, image_stamp=1.5, ee_pos=EE_CENTER)
    assert d.stop_reason == "future_stamp" and "future" in d.detail
    assert not f.check_command(GOOD, now=1.0, image_stamp=1.02, ee_pos=EE_CENTER).stopped


@pytest.mark.parametrize("pose, action", [
    (dict(roll=0.55), [0, 0, 0, 0.67, 0, 0, 0]),    # roll 0.55 + 0.1 > 0.6
    (dict(pitch=-0.55), [0, 0, 0, 0, -0.67, 0, 0]),  # pitch -0.55 - 0.1 < -0.6
    (dict(yaw=1.5), [0, 0, 0, 0, 0, 0.67, 0]),      # yaw 1.5 + 0.1 > pi/2
])
def test_orientation_limits_refuse_a_turn_past_the_twins_limits(pose, action):
    """A step that would tilt the tool past max_tilt_rad or turn it past max_yaw_rad is
    refused (zero motion, rule named); the opposite turn from the same pose passes."""
    f = fresh_filter()
    d = f.check_command(action, now=0.1, ee_pos=EE_CENTER, ee_orn=down_turned(**pose))
    assert d.stop_reason == "orientation_limit" and "from pointing down" in d.detail
    assert np.all(d.rot_delta == 0) and np.all(d.pos_delta == 0)
    back = -np.asarray(action, float)
    assert not f.check_command(back, now=0.2, ee_pos=EE_CENTER, ee_orn=down_turned(**pose)).stopped


def test_a_non_unit_or_non_finite_tcp_quaternion_stops():
    """An orientation that is not a unit quaternion (bad FK or joint state) fails closed."""
    for bad in ([0, 0, 0, 0], [np.nan, 0, 0, 1], [1, 1, 0, 0]):
        d = fresh_filter().check_command(GOOD, now=0.1, ee_pos=EE_CENTER, ee_orn=bad)
        assert d.stop_reason == "invalid_joint_state"


def test_orientation_convention_is_the_twins_target_rpy():
    """The filter measures orientation as the twin accumulates it: after turning the twin's
    TCP target, the filter reads back the twin's own target roll/pitch/yaw."""
    from parrot_core.safety import orientation_from_reference, quaternion_matrix
    from sim.env import EnvConfig, ParrotEnv
    env = ParrotEnv(EnvConfig(task="grasp", objects="train"))
    try:
        env.reset(seed=3)
        for a in ([0, 0, 0, 0.8, 0, 0.5, 0], [0, 0, 0, 0, -0.6, 0.9, 0], [0, 0, 0, 0.3, 0.4, 0, 0]):
            env.step(np.asarray(a, np.float32))
        rpy = orientation_from_reference(quaternion_matrix(env._target_orn()), (np.pi, 0, 0))
        np.testing.assert_allclose(rpy, env.target_rpy, atol=1e-6)
    finally:
        env.close()
