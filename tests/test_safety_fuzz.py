"""Property-based fuzzing (hypothesis) of what stands between a message and the arm.

Whatever comes in -- any floats (NaN, inf, huge, denormal), any stamps, any joint states,
any image header -- the safety filter, the command assembly and the image decoding either
refuse with their own error or return something inside the limits; nothing else escapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hardware_fakes import down_turned
from parrot_bringup import interfaces as itf
from parrot_core.safety import (SafetyConfig, SafetyFilter, euler_matrix,
                                   orientation_from_reference, quaternion_matrix)
from parrot_core.action_space import InvalidActionError

# derandomize: the same examples on every run, so CI cannot flake on a lucky draw
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)
# mostly near the valid range, so passing commands are common and the limits get tested
near_range = st.one_of(st.floats(-0.4, 0.4), st.floats(-0.4, 0.4), st.floats(-1.05, 1.05),
                       anything)
# mostly well inside the default box, so commands pass; sometimes near or beyond its faces
sane_ee = st.one_of(st.tuples(st.floats(0.27, 0.55), st.floats(-0.2, 0.2), st.floats(0.07, 0.3)),
                    st.tuples(st.floats(0.27, 0.55), st.floats(-0.2, 0.2), st.floats(0.07, 0.3)),
                    st.tuples(st.floats(0.1, 0.8), st.floats(-0.4, 0.4), st.floats(-0.05, 0.6)))
times = st.floats(min_value=-1e3, max_value=1e6, allow_nan=False)
CONFIG = SafetyConfig()
EE = (0.45, 0.0, 0.25)
OUTCOMES: set = set()  # stop reasons seen by the filter fuzz (None: passed)


@FUZZ
@given(action=st.one_of(st.lists(near_range, min_size=7, max_size=7),
                        st.lists(anything, min_size=0, max_size=9)),
       now=times, stamp=st.one_of(st.none(), st.floats(-1.0, 0.1), anything),
       ee=st.one_of(sane_ee, st.lists(anything, min_size=3, max_size=3)),
       rate=st.sampled_from([1.0, 10.0, 30.0, 100.0]),
       orn=st.one_of(st.none(), st.tuples(st.floats(-0.7, 0.7), st.floats(-0.7, 0.7),
                                          st.floats(-1.7, 1.7)),
                     st.lists(anything, min_size=4, max_size=4)))
@example(action=[0.1] * 7, now=0.0, stamp=None, ee=[float("nan"), 0.0, 0.2], rate=10.0, orn=None)
@example(action=[0, 0, 0, 0.67, 0, 0, 0], now=0.0, stamp=None, ee=EE, rate=10.0, orn=(0.55, 0, 0))
def test_filter_output_never_leaves_the_limits(action, now, stamp, ee, rate, orn):
    """Any command, stamp, TCP position and orientation: a stop with zero motion and a named
    rule, or a motion inside every per-step, speed, workspace and orientation limit."""
    if orn is not None and len(orn) == 3:  # roll, pitch, yaw from pointing down
        orn = down_turned(*orn)
    f = SafetyFilter(CONFIG, control_rate_hz=rate)
    f.on_image(now)
    stamp = None if stamp is None else now + stamp  # mostly near now: fresh, old or ahead
    d = f.check_command(action, now=now, image_stamp=stamp, ee_pos=ee, ee_orn=orn)
    OUTCOMES.add(d.stop_reason)
    if d.stopped:
        assert d.stop_reason and np.all(d.pos_delta == 0) and np.all(d.rot_delta == 0)
        assert d.gripper == 0
        return
    a = np.asarray(action, float)
    assert a.shape == (7,) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1 + 1e-6)
    assert np.linalg.norm(d.pos_delta) <= CONFIG.max_translation_m + 1e-9
    assert np.linalg.norm(d.rot_delta) <= CONFIG.max_rotation_rad + 1e-9
    assert np.linalg.norm(d.pos_delta) * rate <= CONFIG.max_speed_m_s + 1e-9
    assert np.linalg.norm(d.rot_delta) * rate <= CONFIG.max_angular_speed_rad_s + 1e-9
    target = np.asarray(ee, float) + d.pos_delta
    assert np.all(np.isfinite(target))
    lo, hi = np.asarray(CONFIG.workspace_min), np.asarray(CONFIG.workspace_max)
    outside_after = np.maximum(lo - target, 0) + np.maximum(target - hi, 0)
    outside_now = np.maximum(lo - np.asarray(ee, float), 0) + np.maximum(np.asarray(ee, float) - hi, 0)
    assert np.all(outside_after < outside_now + 1e-12)  # inside, or back towards the box
    assert d.gripper in (-1, 0, 1)
    if orn is not None:
        turned = euler_matrix(d.rot_delta) @ quaternion_matrix(orn)
        roll, pitch, yaw = orientation_from_reference(turned, CONFIG.reference_rpy)
        assert max(abs(roll), abs(pitch)) <= CONFIG.max_tilt_rad + 1e-6
        assert abs(yaw) <= CONFIG.max_yaw_rad + 1e-6


@FUZZ
@given(lin=st.lists(anything, min_size=3, max_size=3), ang=st.lists(anything, min_size=3,
                                                                     max_size=3),
       grip=st.lists(anything, min_size=0, max_size=3),
       names=st.sampled_from([["gripper"], [], ["other"], ["gripper", "x"]]),
       rate=st.floats(min_value=0.1, max_value=1000))
def test_command_assembly_refuses_or_returns_a_valid_action(lin, ang, grip, names, rate):
    """Any twist + gripper message pair: a (7,) action in [-1, 1], or a ValueError (the
    interface's own errors are ValueErrors) -- never a clipped or non-finite action."""
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import JointState
    tw = TwistStamped()
    tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = lin
    tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = ang
    g = JointState(name=names, position=grip)
    try:
        a = itf.msgs_to_action(tw, g, rate)
    except (itf.InterfaceError, InvalidActionError):
        return
    assert a.shape == (7,) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    raw = np.array(lin) / (0.03 * rate)
    assert np.allclose(a[:3], raw, atol=1e-4), "the action is not the twist it came from"


@FUZZ
@given(h=st.integers(-2, 40), w=st.integers(-2, 40), step=st.integers(-3, 200),
       n=st.integers(0, 6000), enc=st.sampled_from(["rgb8", "bgr8", "mono8", "RGB8", "", "rgba8"]))
def test_image_decoding_refuses_or_returns_the_declared_shape(h, w, step, n, enc):
    """Any header/data combination: an (h, w, 3) uint8 image, or ImageFormatError."""
    from sensor_msgs.msg import Image
    msg = Image()
    msg.height, msg.width, msg.step = max(h, 0), max(w, 0), max(step, 0)
    msg.encoding = enc
    msg.data = bytes(n % 256 for n in range(n))
    try:
        img = itf.image_to_numpy(msg)
    except itf.ImageFormatError:
        return
    assert img.shape == (msg.height, msg.width, 3) and img.dtype == np.uint8


def test_filter_fuzz_reached_passes_and_refusals():
    """The filter's fuzz above saw commands pass and several rules refuse (not vacuous)."""
    if not OUTCOMES:
        pytest.skip("run with the filter fuzz test")
    assert None in OUTCOMES
    assert {"nan_or_inf", "out_of_range", "workspace", "orientation_limit",
            "invalid_joint_state"} <= OUTCOMES, OUTCOMES
