"""`scripted` node: sim.scripted policies driving the twin through the command topics.

Scripted policies need privileged state (object positions etc.), which only the twin has:
the node subscribes to `parrot/sim/info` (std_msgs/String JSON published by `sim_twin`
with every image: `stamp_ns`, `episode`, `seed`, `step`, `task`, `info`; numpy arrays are
encoded with dtype so they decode bit-exact) and answers each with one command stamped
with that `stamp_ns`, i.e. the stamp of the image the twin published with it. Sim only.

A new `episode` number creates a fresh policy with
``make_scripted_policy(task, sim.scripted.policy_rng(seed), noise_std)`` -- the same
construction as the in-process collector (sim.collect), so for the same seed the node
produces the same actions. A repeated stamp (lock-step re-send) is answered with the
same command again, not a new draw from the rng.
"""

from __future__ import annotations

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import COMMAND_FRAME, Param, declare, run_node

PARAMS = {
    "task": Param("", "task of the scripted policy; empty: the task of the twin's info message"),
    "noise_std": Param(0.1, "std of the Gaussian noise added to each action (paper: 0.1)",
                       (0.0, 1.0)),
    "control_rate_hz": Param(10.0, "command rate (Hz); twist = per-step delta x rate", (0.1, 1000.0)),
    "command_frame": COMMAND_FRAME,
}


def make_policy(task: str, seed: int, noise_std: float):
    """The collector's construction of a scripted policy for episode ``seed``."""
    from sim.scripted import make_scripted_policy, policy_rng
    policy = make_scripted_policy(task, policy_rng(seed), noise_std=noise_std)
    policy.reset()
    return policy


class ScriptedNode(Node):
    def __init__(self, name: str = "scripted", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.rate = float(self.p["control_rate_hz"])
        self.pub_twist = self.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        self.pub_grip = self.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())
        self.create_subscription(String, itf.TOPIC_SIM_INFO, self._on_info, itf.info_qos())
        self.episode = None
        self.policy = None
        self.answered: dict[int, object] = {}  # stamp_ns -> action (re-sends)

    def _on_info(self, msg):
        try:
            payload = itf.parse_json_msg(msg)
            stamp_ns, episode = int(payload["stamp_ns"]), int(payload["episode"])
        except (itf.InterfaceError, KeyError, ValueError) as e:
            self.get_logger().error(f"bad {itf.TOPIC_SIM_INFO} message: {e}")
            return
        if stamp_ns in self.answered:
            action = self.answered[stamp_ns]
        else:
            if episode != self.episode:
                task = self.p["task"] or payload["task"]
                self.policy = make_policy(task, int(payload["seed"]), float(self.p["noise_std"]))
                self.episode = episode
                self.answered.clear()
            action = self.policy.act(payload["info"])
            self.answered[stamp_ns] = action
        try:
            twist, grip = itf.action_to_msgs(action, stamp_ns, self.rate, self.p["command_frame"])
        except ValueError as e:
            self.get_logger().error(f"scripted policy gave an invalid action: {e}")
            return
        self.pub_twist.publish(twist)
        self.pub_grip.publish(grip)


def main(argv=None) -> int:
    return run_node(ScriptedNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
