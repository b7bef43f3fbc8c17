"""The `policy` node with a prior conditioned on the arm state, over real DDS: each image is
answered only with the arm state it was taken in (`parrot/arm/state`, paired by stamp)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from ros_helpers import TestNode, domain_id, export_tiny_prior, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros
RATE = 10.0
STATE = np.float32([0.40, 0.0, 0.15, 0.0])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image, JointState

    from parrot_bringup import interfaces as itf

    root = tmp_path_factory.mktemp("policy_arm_state")
    prior = export_tiny_prior(root / "prior", image_size=32, state_dim=4)
    domain = domain_id(__name__)
    log = root / "policy.log"
    proc = start_node("policy", {"mode": "prior", "prior_dir": str(prior), "control_rate_hz": RATE,
                                 "image_qos": "reliable", "max_state_skew_s": 0.1},
                      ros_env(domain), log, prelude="sys.modules['torch'] = None")
    t = TestNode(domain)
    got = {}
    t.node.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                               lambda m: got.__setitem__(itf.stamp_to_ns(m.header.stamp), m),
                               itf.command_qos())
    images = t.node.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("reliable"))
    states = t.node.create_publisher(JointState, itf.TOPIC_ARM_STATE, itf.state_qos())
    assert t.spin_until(lambda: images.get_subscription_count() > 0
                        and states.get_subscription_count() > 0, 20), log.read_text()
    yield t, images, states, got, log, proc
    t.close()
    stop(proc)


def _image(stamp_ns):
    from parrot_bringup import interfaces as itf
    img = np.random.default_rng(stamp_ns % 1000).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return itf.numpy_to_image(img, stamp_ns)


def test_image_waits_for_its_arm_state_then_is_answered(stack):
    """An image with no arm state yet gets no command; the state stamped with it releases
    exactly one command with the image's stamp. A state that came first works as well."""
    from parrot_bringup import interfaces as itf
    t, images, states, got, log, proc = stack
    first = 100_000_000_000
    images.publish(_image(first))
    t.spin_for(0.5)
    assert first not in got
    states.publish(itf.arm_state_msg(STATE, first))
    assert t.spin_until(lambda: first in got, 15), log.read_text()
    second = first + 100_000_000
    states.publish(itf.arm_state_msg(STATE, second))
    images.publish(_image(second))
    assert t.spin_until(lambda: second in got, 15), log.read_text()
    assert proc.poll() is None


def test_a_state_far_after_the_image_gives_no_command(stack):
    """When the next arm state is stamped more than max_state_skew_s after the image (joint
    states stalled), the image is not answered and the log says why; the node keeps serving."""
    from parrot_bringup import interfaces as itf
    t, images, states, got, log, proc = stack
    stamp = 200_000_000_000
    images.publish(_image(stamp))
    states.publish(itf.arm_state_msg(STATE, stamp + 500_000_000))
    assert t.spin_until(lambda: "no arm state within 0.1 s" in log.read_text(), 15), log.read_text()
    assert stamp not in got
    later = stamp + 600_000_000
    states.publish(itf.arm_state_msg(STATE, later))
    images.publish(_image(later))
    assert t.spin_until(lambda: later in got, 15), log.read_text()


def test_a_malformed_arm_state_is_rejected_with_a_logged_error(stack):
    """A state naming other fields, or holding NaN, is refused and logged; the image waiting
    for it gets no command."""
    from sensor_msgs.msg import JointState

    from parrot_bringup import interfaces as itf
    t, images, states, got, log, proc = stack
    stamp = 300_000_000_000
    images.publish(_image(stamp))
    wrong = JointState(name=["joint1", "joint2", "joint3", "joint4"], position=[0.0] * 4)
    wrong.header.stamp = itf.ns_to_stamp(stamp)
    states.publish(wrong)
    assert t.spin_until(lambda: "arm state must name" in log.read_text(), 15), log.read_text()
    nan = itf.arm_state_msg(STATE, stamp)
    nan.position[2] = float("nan")
    states.publish(nan)
    assert t.spin_until(lambda: "contains NaN" in log.read_text(), 15), log.read_text()
    t.spin_for(0.3)
    assert stamp not in got
