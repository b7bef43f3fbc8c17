"""The `policy` node over real DDS, in its own process with torch made unimportable."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from ros_helpers import TestNode, domain_id, export_tiny_prior, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros
RATE = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A policy node (mode prior, 32x32 tiny random prior) and a test node talking to it."""
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image, JointState

    from parrot_bringup import interfaces as itf

    root = tmp_path_factory.mktemp("policy_node")
    prior = export_tiny_prior(root / "prior", image_size=32)
    domain = domain_id(__name__)
    log = root / "policy.log"
    # torch is blocked in the node process: any (even indirect) torch import kills the node
    # keep-warm on: the models rerun between images in the node's own thread (torch-free too)
    proc = start_node("policy", {"mode": "prior", "prior_dir": str(prior),
                                 "control_rate_hz": RATE, "image_qos": "reliable",
                                 "keep_warm_hz": 200.0},
                      ros_env(domain), log, prelude="sys.modules['torch'] = None")
    t = TestNode(domain)
    got = {"twist": {}, "grip": {}}
    t.node.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                               lambda m: got["twist"].__setitem__(itf.stamp_to_ns(m.header.stamp), m),
                               itf.command_qos())
    t.node.create_subscription(JointState, itf.TOPIC_GRIPPER,
                               lambda m: got["grip"].__setitem__(itf.stamp_to_ns(m.header.stamp), m),
                               itf.command_qos())
    pub = t.node.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("reliable"))
    assert t.spin_until(lambda: pub.get_subscription_count() > 0, 20), log.read_text()
    t.spin_for(0.3)
    yield t, pub, got, log, proc
    t.close()
    stop(proc)


def _send(t, pub, img, stamp_ns, encoding="rgb8", mutate=None):
    from parrot_bringup import interfaces as itf
    msg = itf.numpy_to_image(img, stamp_ns, encoding=encoding)
    if mutate:
        mutate(msg)
    pub.publish(msg)


def test_images_in_commands_out_stamped_with_the_image(stack):
    """Each rgb8/bgr8 image of any size yields one twist + gripper command carrying the
    image's stamp, with a valid action (|a| <= 1, twist = delta * rate); torch never loads."""
    from parrot_bringup import interfaces as itf
    t, pub, got, log, proc = stack
    rng = np.random.default_rng(0)
    stamps = []
    for i, (shape, enc) in enumerate([((48, 48, 3), "rgb8"), ((64, 40, 3), "bgr8"),
                                      ((32, 32, 3), "rgb8")]):
        stamp = 1_000_000_000 * (100 + i)
        _send(t, pub, rng.integers(0, 256, shape, dtype=np.uint8), stamp, enc)
        stamps.append(stamp)
        assert t.spin_until(lambda: stamp in got["twist"] and stamp in got["grip"], 15), \
            log.read_text()
    assert proc.poll() is None
    for s in stamps:
        a = itf.msgs_to_action(got["twist"][s], got["grip"][s], RATE)
        assert a.shape == (7,) and np.all(np.abs(a) <= 1.0)
        assert got["twist"][s].header.frame_id == itf.DEFAULT_COMMAND_FRAME
        assert list(got["grip"][s].name) == [itf.GRIPPER_JOINT]


@pytest.mark.parametrize("case", ["mono8", "short_data", "step_too_small"])
def test_wrong_encoding_or_size_is_rejected_with_a_logged_error(stack, case):
    """A mono8 image, or one whose data/step disagree with its size, gets no command and an
    error in the node's log naming what was expected; the node keeps serving."""
    t, pub, got, log, proc = stack
    stamp = {"mono8": 7_000_000_000, "short_data": 8_000_000_000, "step_too_small": 9_000_000_000}[case]
    img = np.zeros((48, 48, 3), np.uint8)

    def mutate(m):
        if case == "mono8":
            m.encoding = "mono8"
        elif case == "short_data":
            m.data = bytes(m.data)[:-10]
        else:
            m.step = 48
    _send(t, pub, img, stamp, mutate=mutate)
    expected = {"mono8": "expected one of rgb8, bgr8", "short_data": "expected height * step",
                "step_too_small": "smaller than 3 * width"}[case]
    assert t.spin_until(lambda: expected in log.read_text(), 10), log.read_text()
    t.spin_for(0.3)
    assert stamp not in got["twist"] and stamp not in got["grip"]
    # still alive and answering
    ok = stamp + 1
    _send(t, pub, img, ok)
    assert t.spin_until(lambda: ok in got["twist"], 10), log.read_text()


def test_when_it_stops_the_node_logs_where_each_images_time_went(stack):
    """Last in this module (it stops the node): the shutdown log line that
    benchmarks/ros_latency.py reads, with each stage's median and p99 over the images it
    answered (arrival, decode, model, publish)."""
    import json

    from parrot_bringup.policy import STAGES_LOG
    t, pub, got, log, proc = stack
    assert got["twist"], "no image answered before"  # the tests above sent some
    stop(proc, timeout=20)
    line = next((ln for ln in log.read_text().splitlines() if STAGES_LOG in ln), None)
    assert line is not None, log.read_text()
    stages = json.loads(line.split(STAGES_LOG, 1)[1])
    assert set(stages) == {"arrive", "decode", "model", "publish"}
    assert all(s["n"] >= 1 and 0 <= s["median"] <= s["p99"] for s in stages.values())
