"""The operator's episodes on the arm: a camera, the teleop node and the `episodes` node over
DDS give bags that bag2dataset converts like the twin's."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")
from ros_helpers import TestNode, domain_id, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros


def test_episodes_node_marks_the_operators_episodes_for_recording(tmp_path):
    """A camera publishing at 10 Hz (the test), teleop answering each image, and Enter / y /
    Enter / z on the key topic: the first episode is recorded with exactly the images that got
    a command after its start (one step each, reported on parrot/episode/state) and the
    operator's label; the second is discarded; images between episodes are in neither. An
    Enter while an episode runs is refused and logged, and the teleop node keeps going. A
    start waits for the recorder to be ready (min_recorders 1, the default): no image lost."""
    from sensor_msgs.msg import Image, Joy
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf
    from parrot_bringup.bag2dataset import convert
    from parrot_core.dataset import load_episodes

    domain = domain_id(__name__)
    env = ros_env(domain)
    logs = {n: tmp_path / f"{n}.log" for n in ("episodes", "teleop", "recorder")}
    procs = [
        start_node("episodes", {"image_qos": "reliable", "task": "grasp"}, env, logs["episodes"]),
        start_node("teleop", {"keyboard": False, "image_qos": "reliable"}, env, logs["teleop"]),
        start_node("recorder", {"out_dir": str(tmp_path / "bags"), "session": "s",
                                "image_qos": "reliable"}, env, logs["recorder"]),
    ]
    t = TestNode(domain)
    events, steps, saved = [], [], set()
    t.node.create_subscription(String, itf.TOPIC_EPISODE_EVENT,
                               lambda m: events.append(itf.parse_json_msg(m)), itf.event_qos())
    t.node.create_subscription(String, itf.TOPIC_EPISODE_STATE,
                               lambda m: steps.append(itf.parse_json_msg(m)), itf.state_qos())
    t.node.create_subscription(String, itf.TOPIC_RECORDER_SAVED,
                               lambda m: saved.add(itf.parse_json_msg(m)["episode"]), itf.event_qos())
    camera = t.node.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("reliable"))
    keys = t.node.create_publisher(String, itf.TOPIC_TELEOP_KEY, itf.command_qos())
    joy = t.node.create_publisher(Joy, itf.TOPIC_JOY, itf.image_qos("sensor"))
    rng = np.random.default_rng(0)
    published = []

    def text():
        return "\n".join(f"--- {n}\n{p.read_text()}" for n, p in logs.items())

    def frames_until(cond, timeout: float, key: str | None = None) -> bool:
        """Publish a camera frame every 0.1 s (and `key` every 2 s) until cond() holds."""
        deadline, next_key = time.monotonic() + timeout, 0.0
        while time.monotonic() < deadline:
            if cond():
                return True
            if key is not None and time.monotonic() >= next_key:
                keys.publish(String(data=key))
                next_key = time.monotonic() + 2.0
            stamp = time.time_ns()
            camera.publish(itf.numpy_to_image(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), stamp))
            published.append(stamp)
            t.spin_for(0.1)
        return bool(cond())

    def has(kind: str, k: int) -> bool:
        return any(e["event"] == kind and e["episode"] == k for e in events)

    try:
        assert t.spin_until(lambda: keys.get_subscription_count() > 0 and joy.get_subscription_count()
                            > 0 and camera.get_subscription_count() >= 3, 30), text()
        assert frames_until(lambda: has("start", 0), 60, key="\n"), text()
        keys.publish(String(data="\n"))  # refused while it runs: said, and nothing breaks
        assert frames_until(lambda: "an episode is running" in logs["teleop"].read_text(), 30), text()
        assert frames_until(lambda: sum(s["episode"] == 0 for s in steps) >= 8, 30), text()
        # a joystick: axis 1 is dx (joy_axes), button 0 closes the gripper
        for _ in range(5):  # best effort, as joystick drivers publish: repeated, latest wins
            joy.publish(Joy(axes=[0.0, 0.9, 0.0, 0.0, 0.0, 0.0], buttons=[1, 0]))
            frames_until(lambda: False, 0.2)
        assert frames_until(lambda: sum(s["episode"] == 0 for s in steps) >= 14, 30), text()
        assert frames_until(lambda: has("end", 0), 30, key="y"), text()
        frames_until(lambda: False, 0.5)  # between episodes: not recorded
        assert frames_until(lambda: has("start", 1), 60, key="\n"), text()
        assert frames_until(lambda: sum(s["episode"] == 1 for s in steps) >= 3, 30), text()
        assert frames_until(lambda: has("end", 1), 30, key="z"), text()
        assert t.spin_until(lambda: {0, 1} <= saved, 30), text()
        assert all(p.poll() is None for p in procs), text()
    finally:
        t.close()
        for p in procs:
            stop(p)

    end0 = next(e for e in events if e["event"] == "end" and e["episode"] == 0)
    start0 = next(e for e in events if e["event"] == "start" and e["episode"] == 0)
    assert end0["success"] is True and end0["operator_label"] is True
    stepped0 = sorted(s["stamp_ns"] for s in steps if s["episode"] == 0)
    assert len(stepped0) == end0["steps"] and stepped0[0] >= start0["first_stamp_ns"]
    report = convert([tmp_path / "bags" / "s"], tmp_path / "data", keep="all", log=lambda *_: None)
    assert report["converted"] == 1, f"{report['skipped']}\n{text()}"
    assert any("discarded by the operator" in s for s in report["skipped"])
    (episode,) = load_episodes(tmp_path / "data")
    assert len(episode.actions) == end0["steps"]
    joystick = episode.actions[episode.actions[:, 6] < -0.5]  # after the button closed it
    assert len(joystick) and np.allclose(joystick[:, 0], 0.9, atol=1e-5)
    assert episode.attrs["source"] == "teleop" and episode.attrs["success"] is True


def test_a_start_is_refused_until_a_recorder_is_ready(tmp_path):
    """With a camera up but no recorder, Enter (the start service) is refused and says it is
    waiting for the recorder, rather than starting an episode whose first image nobody
    records."""
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    from parrot_bringup import interfaces as itf

    domain = domain_id(f"{__name__}.refused")
    env = ros_env(domain)
    node = start_node("episodes", {"image_qos": "reliable"}, env, tmp_path / "episodes.log")
    t = TestNode(domain)
    camera = t.node.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("reliable"))
    client = t.node.create_client(Trigger, itf.SERVICE_EPISODE_START)

    def start() -> Trigger.Response:
        future = client.call_async(Trigger.Request())
        assert t.spin_until(future.done, 30)
        return future.result()

    try:
        assert t.spin_until(lambda: client.service_is_ready()
                            and camera.get_subscription_count() > 0, 30)
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # until the node has seen a camera image
            camera.publish(itf.numpy_to_image(np.zeros((48, 48, 3), np.uint8), time.time_ns()))
            answer = start()
            if "no camera image yet" not in answer.message:
                break
        assert not answer.success and "waiting for 1 recorder" in answer.message, answer.message
    finally:
        t.close()
        stop(node)
    text = (tmp_path / "episodes.log").read_text()
    assert "started" not in text, text
