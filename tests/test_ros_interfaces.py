"""parrot_bringup.interfaces conversions (no DDS traffic; needs the message packages)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from parrot_bringup import interfaces as itf  # noqa: E402
from parrot_core.action_space import POS_SCALE_M, ROT_SCALE_RAD, InvalidActionError  # noqa: E402

pytestmark = pytest.mark.ros


def test_image_round_trip_rgb8_bgr8_and_padded_rows():
    """numpy -> Image -> numpy is exact for rgb8 and bgr8 (converted to RGB), and row
    padding (step > 3 * width) is stripped."""
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8"):
        msg = itf.numpy_to_image(img, 123, encoding=enc)
        assert msg.encoding == enc and itf.stamp_to_ns(msg.header.stamp) == 123
        np.testing.assert_array_equal(itf.image_to_numpy(msg), img)
    msg = itf.numpy_to_image(img, 1)
    padded = np.zeros((5, 24), np.uint8)
    padded[:, :21] = img.reshape(5, 21)
    msg.step, msg.data = 24, padded.tobytes()
    np.testing.assert_array_equal(itf.image_to_numpy(msg), img)


def test_image_errors_name_what_was_expected():
    """Unsupported encoding, inconsistent data length and unexpected size raise
    ImageFormatError with the expectation in the message."""
    msg = itf.numpy_to_image(np.zeros((4, 4, 3), np.uint8), 1)
    with pytest.raises(itf.ImageFormatError, match="expected 8x8"):
        itf.image_to_numpy(msg, (8, 8))
    msg.encoding = "rgba8"
    with pytest.raises(itf.ImageFormatError, match="'rgba8' not supported: expected one of rgb8, bgr8"):
        itf.image_to_numpy(msg)
    msg.encoding = "rgb8"
    msg.data = bytes(47)
    with pytest.raises(itf.ImageFormatError, match="47 bytes, expected height \\* step = 4 \\* 12 = 48"):
        itf.image_to_numpy(msg)


def test_action_round_trip_units_and_validation():
    """Twist is delta * rate (m/s, rad/s), gripper rides in JointState 'gripper'; the round
    trip is exact in float32; NaN/wrong shape are rejected by validate_action; the assembler
    joins halves by stamp in either order."""
    a = np.array([0.5, -1.0, 0.25, 0.1, -0.2, 0.3, -0.9], np.float32)
    twist, grip = itf.action_to_msgs(a, 42, control_rate_hz=10.0)
    assert twist.twist.linear.x == pytest.approx(0.5 * POS_SCALE_M * 10)
    assert twist.twist.angular.z == pytest.approx(0.3 * ROT_SCALE_RAD * 10)
    assert list(grip.name) == ["gripper"] and grip.position[0] == pytest.approx(-0.9)
    np.testing.assert_array_equal(itf.msgs_to_action(twist, grip, 10.0), a)
    rng = np.random.default_rng(1)
    for _ in range(200):
        b = rng.uniform(-1, 1, 7).astype(np.float32)
        np.testing.assert_array_equal(itf.msgs_to_action(*itf.action_to_msgs(b, 1, 30.0), 30.0), b)
    with pytest.raises(InvalidActionError):
        itf.action_to_msgs([np.nan] * 7, 1, 10.0)
    with pytest.raises(InvalidActionError):
        itf.action_to_msgs([0.0] * 6, 1, 10.0)
    asm = itf.CommandAssembler(10.0)
    assert asm.add_gripper(grip) is None
    stamp, joined = asm.add_twist(twist)
    assert stamp == 42
    np.testing.assert_array_equal(joined, a)


def test_over_limit_twist_is_refused_with_the_limit_in_m_per_s():
    """A 0.7 m/s twist at 10 Hz (2.33x a full-scale step) is refused, never clipped to
    0.3 m/s; the error says the limit in m/s at that rate. Exactly full scale passes."""
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import JointState

    from parrot_core.action_space import ActionOutOfRangeError
    fast = TwistStamped()
    fast.twist.linear.x = 0.7
    grip = JointState(name=["gripper"], position=[0.0])
    with pytest.raises(ActionOutOfRangeError, match="0.30 m/s"):
        itf.msgs_to_action(fast, grip, 10.0)
    full = TwistStamped()
    full.twist.linear.x = POS_SCALE_M * 10.0
    assert itf.msgs_to_action(full, grip, 10.0)[0] == pytest.approx(1.0)


def test_json_codec_keeps_numpy_dtypes_exactly():
    """Privileged-state JSON round-trips arrays with dtype and shape, scalars, tuples, None."""
    info = {"ee_pos": np.array([0.1, 0.2, 0.3], np.float32), "q": np.arange(6.0).reshape(2, 3),
            "names": ["a", "b"], "pos": {"a": np.array([1e-9, 2.0, 3.0])}, "t": np.int64(3),
            "none": None, "tup": (1, 2.5)}
    back = itf.parse_json_msg(itf.json_msg(info))
    assert back["ee_pos"].dtype == np.float32
    np.testing.assert_array_equal(back["ee_pos"], info["ee_pos"])
    np.testing.assert_array_equal(back["q"], info["q"])
    np.testing.assert_array_equal(back["pos"]["a"], info["pos"]["a"])
    assert back["t"] == 3 and back["none"] is None and back["tup"] == (1, 2.5)


def test_parrot_dds_profile_is_used_unless_the_user_chose_one():
    """Nodes load the packaged Fast DDS profile (16 MB shared-memory segment: full-size camera
    frames) by default; a profile the user set, or another RMW, is left alone."""
    from parrot_bringup.dds_profile import PROFILE, use_parrot_profile
    assert PROFILE.exists() and "segment_size" in PROFILE.read_text()
    env = {}
    assert use_parrot_profile(env) == str(PROFILE) == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    mine = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my.xml"}
    assert use_parrot_profile(mine) == "/etc/my.xml" and "FASTDDS_DEFAULT_PROFILES_FILE" not in mine
    other = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_parrot_profile(other) is None and len(other) == 1


def test_arm_state_message_round_trip_and_refusals():
    """arm_state_msg / arm_state_from_msg round-trip the 4 values and the stamp; other names,
    a missing value or NaN raise InterfaceError."""
    from parrot_bringup import interfaces as itf
    state = np.float32([0.41, -0.05, 0.12, 1.0])
    stamp, back = itf.arm_state_from_msg(itf.arm_state_msg(state, 5_000_000_123))
    assert stamp == 5_000_000_123 and np.array_equal(back, state)
    msg = itf.arm_state_msg(state, 1)
    msg.name = ["x", "y", "z", "g"]
    with pytest.raises(itf.InterfaceError, match="arm state must name"):
        itf.arm_state_from_msg(msg)
    msg = itf.arm_state_msg(state, 1)
    msg.position = list(msg.position[:3])
    with pytest.raises(itf.InterfaceError, match="one position each"):
        itf.arm_state_from_msg(msg)
    msg = itf.arm_state_msg(state, 1)
    msg.position[0] = float("inf")
    with pytest.raises(itf.InterfaceError, match="NaN or inf"):
        itf.arm_state_from_msg(msg)


def test_arm_state_buffer_pairs_an_image_with_the_first_state_at_or_after_it():
    """The state stamped with the image, else the next one within max_skew_s; None while none
    has come yet; an error when the next one is too late. Out-of-order states are sorted."""
    from parrot_bringup import interfaces as itf
    buf = itf.ArmStateBuffer(max_skew_s=0.05)
    s = [np.full(4, k, np.float32) for k in range(4)]
    buf.add(100, s[0])
    buf.add(300, s[2])
    buf.add(200, s[1])  # late arrival
    assert buf.for_image(200)[0] == 1 and buf.for_image(150)[0] == 1 and buf.for_image(50)[0] == 0
    assert buf.for_image(301) is None
    buf.add(301 + 60_000_000, s[3])
    with pytest.raises(itf.InterfaceError, match="no arm state within 0.05 s"):
        buf.for_image(301)
