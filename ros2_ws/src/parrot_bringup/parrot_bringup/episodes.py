"""`episodes` node: an operator's episodes on the arm, as the twin's `operator_episodes` runs
them in sim, so teleop recordings of the arm convert like the twin's.

Services (std_srvs/Trigger): `parrot/episode/start`, `end_success`, `end_failure`, `discard`
(the teleop node's Enter / y / x / z). Between episodes nothing is recorded: the start event
marks the first image after it, the end event the last image that got a command.
While an episode runs, every camera image answered by a command (twist and gripper stamped
with the image's stamp) is reported on `parrot/episode/state` as one step, as the twin
reports the steps it applies; the recorder then knows when an episode is complete and
`bag2dataset` pairs exactly those steps. An episode still running after `max_duration_s`
ends as a failure (`reason: time_limit`). The person resets the scene between episodes. A
start waits for `min_recorders` ready recorders (`parrot/recorder/status`).
"""

from __future__ import annotations

import time

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import IMAGE_QOS, Param, declare, run_node

PARAMS = {
    "task": Param("grasp", "the task the operator demonstrates (stored with each episode)"),
    "max_duration_s": Param(30.0, "an episode still running this long ends as a failure (s)",
                            (1.0, 3600.0)),
    "control_rate_hz": Param(10.0, "the command rate (stored with each episode)", (0.1, 1000.0)),
    "min_recorders": Param(1, "ready recorders a start waits for (parrot/recorder/status): "
                              "an episode started before would lose its first image", (0, 1000)),
    "image_qos": IMAGE_QOS,
}


class EpisodesNode(Node):
    def __init__(self, name: str = "episodes", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.pub_event = self.create_publisher(String, itf.TOPIC_EPISODE_EVENT, itf.event_qos())
        self.pub_state = self.create_publisher(String, itf.TOPIC_EPISODE_STATE, itf.state_qos())
        self.create_subscription(Image, itf.TOPIC_IMAGE, self._on_image,
                                 itf.image_qos(self.p["image_qos"]))
        self.twists: set[int] = set()
        self.grips: set[int] = set()
        self.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                                 lambda m: self._on_command(self.twists, m), itf.command_qos())
        self.create_subscription(JointState, itf.TOPIC_GRIPPER,
                                 lambda m: self._on_command(self.grips, m), itf.command_qos())
        self.recorders = itf.ReadyRecorders(self)
        itf.create_episode_services(self, self._on_start, self._on_end)
        self.create_timer(0.2, self._check_time)
        self.episode = -1
        self.active = False
        self.latest_image_ns = None
        self.images_in_episode: set[int] = set()

    # ---- inputs ------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        ns = itf.stamp_to_ns(msg.header.stamp)
        self.latest_image_ns = ns if self.latest_image_ns is None else max(ns, self.latest_image_ns)
        if self.active and ns >= self.first_ns:
            self.images_in_episode.add(ns)
            self._step_if_answered(ns)

    def _on_command(self, stamps: set, msg) -> None:
        ns = itf.stamp_to_ns(msg.header.stamp)
        if not self.active or ns < self.first_ns:
            return
        stamps.add(ns)
        self._step_if_answered(ns)

    def _step_if_answered(self, ns: int) -> None:
        """An image of this episode with both halves of its command is one step."""
        if ns in self.stepped or not (ns in self.images_in_episode and ns in self.twists
                                      and ns in self.grips):
            return
        self.stepped.add(ns)
        self.last_step_ns = max(self.last_step_ns or ns, ns)
        self.pub_state.publish(itf.json_msg({
            "stamp_ns": ns, "episode": self.episode, "step": len(self.stepped) - 1,
            "reward": 0.0, "success": False, "terminated": False, "truncated": False}))

    # ---- episode flow ------------------------------------------------------------------
    def _on_start(self, response):
        if self.active:
            response.success, response.message = False, "an episode is running"
            return response
        if self.latest_image_ns is None:
            response.success, response.message = False, "no camera image yet: is the camera up?"
            return response
        waiting = self.recorders.waiting_for(int(self.p["min_recorders"]))
        if waiting:
            response.success, response.message = False, waiting
            return response
        self.episode += 1
        self.active = True
        self.started_at = time.monotonic()
        self.first_ns = self.latest_image_ns + 1  # from the next image on
        self.stepped, self.last_step_ns = set(), None
        self.images_in_episode, self.twists, self.grips = set(), set(), set()
        rate = float(self.p["control_rate_hz"])
        self.pub_event.publish(itf.EpisodeEvent("start", self.episode, {
            "seed": -1, "task": self.p["task"], "object_pool": "real", "objects": [],
            "control_rate_hz": rate, "lockstep": False, "source": "teleop",
            "max_steps": int(float(self.p["max_duration_s"]) * rate),
            "first_stamp_ns": self.first_ns}).to_msg())
        self.get_logger().info(f"episode {self.episode} started")
        response.success, response.message = True, f"episode {self.episode} recording"
        return response

    def _on_end(self, response, label: bool | None):
        if not self.active:
            response.success, response.message = False, "no episode is running"
            return response
        self._end("discarded" if label is None else "operator", label)
        response.success = True
        response.message = f"episode {self.episode} " + (
            "discarded" if label is None else f"ended, success={label}")
        return response

    def _end(self, reason: str, label: bool | None) -> None:
        self.active = False
        self.pub_event.publish(itf.EpisodeEvent("end", self.episode, {
            "seed": -1, "success": bool(label), "steps": len(self.stepped), "return": 0.0,
            "reason": reason,
            **({"discarded": True} if label is None else {}),
            **({"operator_label": bool(label)} if reason == "operator" else {}),
            "last_stamp_ns": self.last_step_ns if self.last_step_ns is not None
            else self.first_ns}).to_msg())
        self.get_logger().info(f"episode {self.episode} ended ({reason}), {len(self.stepped)} steps")

    def _check_time(self) -> None:
        if self.active and time.monotonic() - self.started_at > float(self.p["max_duration_s"]):
            self._end("time_limit", False)


def main(argv=None) -> int:
    return run_node(EpisodesNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
