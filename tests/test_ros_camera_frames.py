"""The twin as the arm's camera: full 640x480 frames across processes, cropped by the policy
node with the same camera file, drive the lock-step twin as its own 48x48 images would."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
from ros_helpers import (REPO, TestNode, domain_id, export_tiny_prior, ros_env,  # noqa: E402
                         start_node, stop)

pytestmark = pytest.mark.ros
CAMERA_FILE = REPO / "ros2_ws" / "src" / "parrot_bringup" / "config" / "camera.yaml"


def test_full_camera_frames_are_cropped_by_the_camera_file_and_answered(tmp_path):
    """sim_twin publishes the camera file's full frames (921 KB each, over Parrot's Fast DDS
    profile); the policy node, given the same camera_file, answers each with a command
    stamped like it, and the lock-step twin steps on them: the episode advances."""
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf

    domain = domain_id(__name__)
    env = ros_env(domain)
    prior = export_tiny_prior(tmp_path / "prior", image_size=48)
    twin_log, policy_log = tmp_path / "twin.log", tmp_path / "policy.log"
    procs = [
        start_node("policy", {"mode": "prior", "prior_dir": str(prior), "image_qos": "reliable",
                              "camera_file": str(CAMERA_FILE)}, env, policy_log),
        start_node("sim_twin", {"lockstep": True, "seed": 5, "image_qos": "reliable",
                                "camera_file": str(CAMERA_FILE), "full_camera_frames": True,
                                "start_when_matched": True, "start_delay_s": 0.3,
                                "min_image_subscribers": 2, "max_steps": 25}, env, twin_log),
    ]
    t = TestNode(domain)
    try:
        sizes, commands, steps = set(), set(), []
        t.node.create_subscription(Image, itf.TOPIC_IMAGE,
                                   lambda m: sizes.add((m.height, m.width)), itf.image_qos("reliable"))
        t.node.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                                   lambda m: commands.add(itf.stamp_to_ns(m.header.stamp)),
                                   itf.command_qos())
        t.node.create_subscription(String, itf.TOPIC_EPISODE_STATE,
                                   lambda m: steps.append(itf.parse_json_msg(m)), itf.state_qos())
        logs = lambda: twin_log.read_text() + policy_log.read_text()  # noqa: E731
        # a lock-step twin steps only on a command stamped with the frame it published
        assert t.spin_until(lambda: len(steps) >= 5, 90), logs()
        assert sizes == {(480, 640)}
        # and the commands are the policy node's, for those frames (this node may join late)
        assert t.spin_until(lambda: any(int(s["stamp_ns"]) in commands for s in steps), 30), logs()
        assert "rejected" not in policy_log.read_text() and "no command" not in policy_log.read_text()
        assert all(p.poll() is None for p in procs), logs()
    finally:
        t.close()
        for p in procs:
            stop(p)
