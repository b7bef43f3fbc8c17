"""The `sim_twin` node over real DDS: commands move the arm, reset service starts episodes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
from ros_helpers import TestNode, domain_id, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros
RATE = 10.0


def test_twin_moves_the_arm_for_a_command_and_resets_on_request(tmp_path):
    """Lock-step twin: a +x / +z command stamped with the current image's stamp moves the
    end effector by about POS_SCALE_M in x and z (state from parrot/sim/info), the step is
    reported on parrot/episode/state, each image comes with the arm state stamped like it
    (TCP position, gripper open), a command with a stale stamp is ignored, and the
    std_srvs/Trigger reset ends the episode and starts the next seed."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from parrot_bringup import interfaces as itf
    from parrot_core.action_space import POS_SCALE_M

    domain = domain_id(f"{__name__}:lockstep")
    log = tmp_path / "twin.log"
    proc = start_node("sim_twin", {"lockstep": True, "seed": 7, "control_rate_hz": RATE,
                                   "start_when_matched": True, "start_delay_s": 0.3,
                                   "min_image_subscribers": 1, "image_qos": "reliable",
                                   "max_steps": 25}, ros_env(domain), log)
    t = TestNode(domain)
    try:
        infos, images, states, events, arm_states = [], [], [], [], {}
        t.node.create_subscription(String, itf.TOPIC_SIM_INFO,
                                   lambda m: infos.append(itf.parse_json_msg(m)), itf.info_qos())
        t.node.create_subscription(Image, itf.TOPIC_IMAGE, images.append, itf.image_qos("reliable"))
        t.node.create_subscription(String, itf.TOPIC_EPISODE_STATE,
                                   lambda m: states.append(itf.parse_json_msg(m)), itf.state_qos())
        t.node.create_subscription(String, itf.TOPIC_EPISODE_EVENT,
                                   lambda m: events.append(itf.parse_json_msg(m)), itf.event_qos())
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import JointState
        t.node.create_subscription(JointState, itf.TOPIC_ARM_STATE,
                                   lambda m: arm_states.__setitem__(*itf.arm_state_from_msg(m)),
                                   itf.state_qos())
        pub_t = t.node.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        pub_g = t.node.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())

        assert t.spin_until(lambda: infos and images and events, 30), log.read_text()
        first = infos[-1]
        assert first["seed"] == 7 and first["step"] == 0
        assert events[0]["event"] == "start" and events[0]["seed"] == 7
        assert itf.stamp_to_ns(images[-1].header.stamp) == first["stamp_ns"]
        assert t.spin_until(lambda: first["stamp_ns"] in arm_states, 10)
        assert np.allclose(arm_states[first["stamp_ns"]], [*first["info"]["ee_pos"], 0.0], atol=1e-5)
        img = itf.image_to_numpy(images[-1], (48, 48))
        assert img.dtype == np.uint8

        def send(action, stamp):
            tw, g = itf.action_to_msgs(np.asarray(action, np.float32), stamp, RATE)
            pub_t.publish(tw)
            pub_g.publish(g)

        # a stale stamp is ignored in lock-step
        send([1, 0, 0, 0, 0, 0, 0], first["stamp_ns"] - 1)
        t.spin_for(0.5)
        assert len(states) == 0

        ee0 = np.asarray(first["info"]["ee_pos"])
        send([1, 0, 1, 0, 0, 0, 0], first["stamp_ns"])
        assert t.spin_until(lambda: len(states) == 1 and len(infos) >= 2 and
                            infos[-1]["step"] == 1, 10), log.read_text()
        assert states[0]["stamp_ns"] == first["stamp_ns"] and states[0]["step"] == 0
        moved = np.asarray(infos[-1]["info"]["ee_pos"]) - ee0
        assert moved[0] > 0.5 * POS_SCALE_M and moved[2] > 0.5 * POS_SCALE_M, moved
        assert abs(moved[1]) < 0.3 * POS_SCALE_M, moved

        client = t.node.create_client(Trigger, itf.SERVICE_RESET)
        assert client.wait_for_service(timeout_sec=10)
        fut = client.call_async(Trigger.Request())
        assert t.spin_until(fut.done, 10)
        assert fut.result().success and "seed 8" in fut.result().message
        assert t.spin_until(lambda: any(e["event"] == "start" and e["seed"] == 8 for e in events),
                            10)
        end = next(e for e in events if e["event"] == "end")
        assert end["episode"] == 0 and end["reason"] == "reset" and end["steps"] == 1
    finally:
        t.close()
        stop(proc)


def test_twin_passes_commands_through_the_safety_filter(tmp_path):
    """The sim path uses the same safety rules as the hardware bridge: with a per-step
    translation limit below the command, the twin steps with zero motion (the arm stays
    put) and logs the stop with its reason; a twist beyond a full-scale step is refused
    (not clipped) and does not take the node down."""
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf
    from parrot_core.action_space import POS_SCALE_M

    domain = domain_id(f"{__name__}:free_running")
    log = tmp_path / "twin.log"
    proc = start_node("sim_twin", {"lockstep": True, "seed": 7, "control_rate_hz": RATE,
                                   "start_when_matched": True, "start_delay_s": 0.3,
                                   "min_image_subscribers": 0, "image_qos": "reliable",
                                   "safety.max_translation_m": 0.01},
                      ros_env(domain), log)
    t = TestNode(domain)
    try:
        infos = []
        t.node.create_subscription(String, itf.TOPIC_SIM_INFO,
                                   lambda m: infos.append(itf.parse_json_msg(m)), itf.info_qos())
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import JointState
        pub_t = t.node.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        pub_g = t.node.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())
        assert t.spin_until(lambda: infos, 30), log.read_text()
        first = infos[-1]
        tw, g = itf.action_to_msgs(np.array([1, 0, 1, 0, 0, 0, 0], np.float32),
                                   first["stamp_ns"], RATE)
        pub_t.publish(tw)
        pub_g.publish(g)
        assert t.spin_until(lambda: infos[-1]["step"] == 1, 10), log.read_text()
        moved = np.asarray(infos[-1]["info"]["ee_pos"]) - np.asarray(first["info"]["ee_pos"])
        assert np.all(np.abs(moved) < 0.3 * POS_SCALE_M), moved
        # a twist 3x faster than a full-scale step: refused (not clipped), the node lives on
        fast, g = itf.action_to_msgs(np.zeros(7, np.float32), infos[-1]["stamp_ns"], RATE)
        fast.twist.linear.x = 3 * POS_SCALE_M * RATE
        pub_t.publish(fast)
        pub_g.publish(g)
        assert t.spin_until(lambda: "STOP [out_of_range]" in log.read_text(), 10), log.read_text()
        assert proc.poll() is None and infos[-1]["step"] == 1
    finally:
        t.close()
        stop(proc)
    assert "STOP [translation_limit]" in log.read_text()
