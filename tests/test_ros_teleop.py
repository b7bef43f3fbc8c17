"""Teleop recording as a person does it, over DDS: a scripted operator types keys, the twin
runs the operator's episodes, the recorder keeps them, bag2dataset labels them."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
pytest.importorskip("rosbags")
from ros_helpers import TestNode, domain_id, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_frame(port: int) -> np.ndarray:
    """GET /frame.jpg from the teleop node's camera view, decoded."""
    import urllib.request

    import cv2
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/frame.jpg", timeout=10) as r:
        assert r.headers["Content-Type"] == "image/jpeg"
        return cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)


def test_an_operators_episodes_are_started_labelled_discarded_and_recorded(tmp_path):
    """Enter starts an episode once the recorder is ready (nothing is recorded before it,
    and none of it is lost to a recorder still starting), y ends it as a success, z
    discards the next one and the same scene comes again, x ends that as a failure. The
    recorder saves what ran; bag2dataset keeps the two labelled episodes with source teleop
    and the operator's labels, skips the discarded one saying so, and the gripper closed in
    the first episode starts the next ones open. The operator's live view serves the camera."""
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf
    from parrot_bringup.bag2dataset import convert
    from parrot_core.dataset import load_episodes

    domain = domain_id(__name__)
    env = ros_env(domain)
    logs = {n: tmp_path / f"{n}.log" for n in ("twin", "recorder", "teleop")}
    port = free_port()
    procs = [
        start_node("sim_twin", {"operator_episodes": True, "seed": 11, "max_steps": 300,
                                "terminate_on_success": False, "step_without_command": False,
                                "min_recorders": 1, "image_qos": "reliable"}, env, logs["twin"]),
        start_node("recorder", {"out_dir": str(tmp_path / "bags"), "session": "s",
                                "image_qos": "reliable"}, env, logs["recorder"]),
        start_node("teleop", {"keyboard": False, "image_qos": "reliable", "view_port": port},
                   env, logs["teleop"]),
    ]
    t = TestNode(domain)
    events, steps, saved = [], [], {}
    t.node.create_subscription(String, itf.TOPIC_EPISODE_EVENT,
                               lambda m: events.append(itf.parse_json_msg(m)), itf.event_qos())
    t.node.create_subscription(String, itf.TOPIC_EPISODE_STATE,
                               lambda m: steps.append(itf.parse_json_msg(m)), itf.state_qos())
    t.node.create_subscription(String, itf.TOPIC_RECORDER_SAVED,
                               lambda m: saved.__setitem__(itf.parse_json_msg(m)["episode"], 1),
                               itf.event_qos())
    keys = t.node.create_publisher(String, itf.TOPIC_TELEOP_KEY, itf.command_qos())

    def text():
        return "\n".join(f"--- {n}\n{p.read_text()}" for n, p in logs.items())

    def press(chars: str) -> None:
        keys.publish(String(data=chars))

    def started(k: int) -> bool:
        return any(e["event"] == "start" and e["episode"] == k for e in events)

    def ended(k: int) -> bool:
        return any(e["event"] == "end" and e["episode"] == k for e in events)

    def start_episode(k: int) -> None:
        deadline = time.monotonic() + 60
        while not started(k) and time.monotonic() < deadline:
            press("\n")  # until the teleop node has found the twin's services
            t.spin_until(lambda: started(k), 5)
        assert started(k), text()
        # keys after the operator sees REC: teleop opens the gripper when the start reaches it
        assert t.spin_until(lambda: f"REC episode {k}," in logs["teleop"].read_text(), 20), text()

    def run_steps(k: int, n: int) -> None:
        assert t.spin_until(lambda: sum(s["episode"] == k for s in steps) >= n, 30), text()

    try:
        assert t.spin_until(lambda: keys.get_subscription_count() > 0, 30), text()
        t.spin_for(1.0)
        assert not any(e["event"] == "start" for e in events)  # a scene waits for Enter
        start_episode(0)
        press("w")
        press("c")
        run_steps(0, 10)
        press("y")
        assert t.spin_until(lambda: ended(0), 20), text()
        start_episode(1)
        run_steps(1, 5)
        press("z")
        assert t.spin_until(lambda: ended(1), 20), text()
        start_episode(2)
        run_steps(2, 5)
        press("x")
        assert t.spin_until(lambda: ended(2) and {0, 1, 2} <= set(saved), 30), text()
        # the status line, logged on each change when there is no terminal
        assert t.spin_until(lambda: "REC episode" in logs["teleop"].read_text()
                            and "READY" in logs["teleop"].read_text(), 20), text()
        frame = live_frame(port)  # what the operator's browser shows: the camera, enlarged
        assert frame.shape[0] >= 384 and frame.shape[0] % 48 == 0
    finally:
        t.close()
        for p in procs:
            stop(p)

    by = {e["episode"]: e for e in events if e["event"] == "end"}
    first = {e["episode"]: e for e in events if e["event"] == "start"}
    assert by[0]["success"] is True and by[0]["operator_label"] is True
    assert by[1].get("discarded") is True
    assert by[2]["success"] is False
    assert first[2]["seed"] == first[1]["seed"]  # the discarded scene came again

    assert "incomplete" not in logs["recorder"].read_text()  # no false warning at episode ends
    report = convert([tmp_path / "bags" / "s"], tmp_path / "data", keep="all", log=lambda *_: None)
    assert report["converted"] == 2
    assert any("discarded by the operator" in s for s in report["skipped"])
    episodes = sorted(load_episodes(tmp_path / "data"), key=lambda e: e.attrs["bag_episode"])
    assert [e.attrs["success"] for e in episodes] == [True, False]
    assert {e.attrs["source"] for e in episodes} == {"teleop"}
    assert np.any(episodes[0].actions[:, 6] < -0.5)  # closed in the first episode
    assert episodes[1].actions[0, 6] > 0.5  # open again at the start of the next
