"""`sim_twin` node: the PyBullet twin (sim.env.ParrotEnv) behind Parrot's ROS 2 interface.

Publishes the camera image, the arm state with each image's stamp (`parrot/arm/state`, for a
prior conditioned on it), the per-step episode state, episode start/end events and (sim
only) the privileged state JSON the scripted node needs; applies commands (twist +
gripper joined by stamp, see interfaces.py). Two stepping modes:

- free-running (`lockstep: false`): a timer at `control_rate_hz`; each tick applies the
  newest command received since the last step, or, without one, re-publishes the current
  view with a fresh stamp (or steps with a zero action if `step_without_command`).
- lock-step (`lockstep: true`): after publishing an image the twin waits for the command
  stamped with exactly that image's stamp, steps once, publishes the next image. Nothing
  depends on timing, so a run is reproducible step for step (used for collection). If no
  command comes within `lockstep_resend_s`, the same image (same stamp) is re-sent;
  subscribers treat a repeated stamp as one message.

Episodes: seed of episode k = `seed` + k (setting the `seed` parameter at run time restarts
the sequence there). `auto_reset` starts the next episode when one ends, up to `episodes`
(0 = forever); `parrot/sim/reset` (std_srvs/Trigger) ends the current one (reason
"reset") and starts the next seed. `start_when_matched` holds the first episode until a
command publisher, `min_image_subscribers` image subscribers (e.g. the policy node) and
`min_recorders` ready recorders (`parrot/recorder/status`: every topic an episode needs is
matched, so they miss none of it) are there, then `start_delay_s` more. With
`operator_episodes` every start waits for `min_recorders` too (refused, saying so).
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from rcl_interfaces.msg import SetParametersResult
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import IMAGE_QOS, Param, declare, described, run_node
from parrot_core.safety import SafetyFilter, config_from_parameters, \
    parameter_defaults, parameter_docs, refused_command
from parrot_core.action_space import InvalidActionError, validate_action
from parrot_core.arm_state import state_from_info
from sim.env import EnvConfig, ParrotEnv
from sim.tasks import TASKS

ENV = EnvConfig()  # the twin's defaults are the env's
PARAMS = {
    "task": Param(ENV.task, "the twin task (sim/tasks.py)", choices=tuple(TASKS)),
    "objects": Param(ENV.objects, "object pool", choices=("train", "heldout")),
    "image_size": Param(ENV.image_size, "side of the square camera image (px)", (4, 1024)),
    "max_steps": Param(ENV.max_steps, "steps per episode (paper: 25)", (1, 100_000)),
    # False for collection: episodes run max_steps and success is judged at the end.
    "terminate_on_success": Param(ENV.terminate_on_success, "end an episode at its first success"),
    "control_rate_hz": Param(ENV.control_rate_hz, "free-running step rate (Hz); the env's motion "
                                                  "rules judge speed at it", (0.1, 1000.0)),
    "lockstep": Param(False, "step once per command stamped with the last image's stamp"),
    "lockstep_resend_s": Param(1.0, "lock-step: re-send the image after this long without its "
                                    "command (s)", (0.01, 60.0)),
    "seed": Param(0, "scene seed of the first episode (episode k: seed + k)", (0, 2**62)),
    "episodes": Param(0, "episodes to run (0: forever)", (0, 2**62)),
    "auto_reset": Param(True, "start the next episode when one ends"),
    "operator_episodes": Param(False, "a person runs the episodes (teleop): each scene waits, "
                                      "shown but not recorded, until parrot/episode/start; "
                                      "end_success / end_failure label it, discard drops it "
                                      "and stages the same scene again"),
    "start_when_matched": Param(False, "hold the first episode until the command publisher, "
                                       "min_image_subscribers and min_recorders are there"),
    "start_delay_s": Param(0.5, "with start_when_matched: wait this much longer (s)",
                           (0.0, 60.0)),
    "min_image_subscribers": Param(0, "with start_when_matched: image subscribers to wait for "
                                      "(e.g. 1 for the policy node)", (0, 1000)),
    "min_recorders": Param(0, "ready recorders the first episode waits for (start_when_matched), "
                              "and every operator start", (0, 1000)),
    "step_without_command": Param(False, "free-running: step with a zero action when no "
                                         "command came (else re-publish the view)"),
    "image_qos": IMAGE_QOS,
    "image_encoding": Param("rgb8", "published image encoding", choices=itf.SUPPORTED_ENCODINGS),
    "camera_frame": Param(itf.DEFAULT_CAMERA_FRAME, "frame_id of the images"),
    "camera_file": Param("", "the arm camera's file (config/camera.yaml form): render its view "
                             "('' : the twin's camera)"),
    "full_camera_frames": Param(False, "publish the camera file's full frame (e.g. 640x480) "
                                       "instead of the observation, as the arm's camera does; "
                                       "the policy node then crops it with the same camera_file"),
    "publish_info": Param(True, "publish the privileged state JSON (sim only; the scripted "
                                "node needs it)"),
    "exit_when_done": Param(False, "exit after the last of `episodes`"),
    # Every command passes parrot_core.safety with the bridge's defaults, as on the arm (and
    # ParrotEnv runs the same motion rules itself).
    "safety.enabled": Param(True, "pass every command through the arm's safety rules"),
    **described(parameter_defaults(), parameter_docs()),
}


def make_env(task: str, objects: str, image_size: int, max_steps: int,
             terminate_on_success: bool = True, control_rate_hz: float = ENV.control_rate_hz,
             camera_file: str | None = None):
    return ParrotEnv(EnvConfig(task=task, objects=objects, image_size=image_size,
                               max_steps=max_steps, terminate_on_success=terminate_on_success,
                               control_rate_hz=control_rate_hz, camera_file=camera_file or None))


class SimTwinNode(Node):
    def __init__(self, name: str = "sim_twin", env=None, **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        p = self.p
        self.env = env if env is not None else make_env(
            p["task"], p["objects"], int(p["image_size"]), int(p["max_steps"]),
            bool(p["terminate_on_success"]), float(p["control_rate_hz"]), p["camera_file"])
        self.rate = float(p["control_rate_hz"])
        self.lockstep = bool(p["lockstep"])
        self.finished = False
        self.exit_code = 0
        self.safety = SafetyFilter(config_from_parameters(p), self.rate) if p["safety.enabled"] else None
        self.safety_stops: dict[str, int] = {}

        self.pub_image = self.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos(p["image_qos"]))
        self.pub_event = self.create_publisher(String, itf.TOPIC_EPISODE_EVENT, itf.event_qos())
        self.pub_state = self.create_publisher(String, itf.TOPIC_EPISODE_STATE, itf.state_qos())
        self.pub_info = self.create_publisher(String, itf.TOPIC_SIM_INFO, itf.info_qos())
        self.pub_arm_state = self.create_publisher(JointState, itf.TOPIC_ARM_STATE, itf.state_qos())
        self.assembler = itf.CommandAssembler(self.rate)
        self.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                                 lambda m: self._on_command(self.assembler.add_twist, m),
                                 itf.command_qos())
        self.create_subscription(JointState, itf.TOPIC_GRIPPER,
                                 lambda m: self._on_command(self.assembler.add_gripper, m),
                                 itf.command_qos())
        self.recorders = itf.ReadyRecorders(self)
        self.create_service(Trigger, itf.SERVICE_RESET, self._on_reset)
        self.operator = bool(p["operator_episodes"])
        if self.operator:
            itf.create_episode_services(self, self._on_operator_start, self._on_operator_end)
        self.staged = False  # operator mode: a scene on view, waiting for its start
        self.first_stamp_ns = 0  # the episode's first image: older commands are for another scene
        self.add_on_set_parameters_callback(self._on_params)

        self.next_seed = int(p["seed"])
        self.episode = -1
        self.active = False
        self.started = False
        self.obs = self.info = None
        self.stamp_ns = 0  # stamp of the image the next command must answer
        self.published_at = 0.0
        self.latest = None  # free-running: newest (stamp_ns, action) not yet applied
        self.steps = 0
        self.ret = 0.0
        self.episodes_done = 0
        self.matched_at = None
        self.done_at = None
        self.timer = self.create_timer(1.0 / self.rate, self._tick)
        self.get_logger().info(
            f"twin up: task={p['task']} objects={p['objects']} {p['image_size']}px "
            f"{'lock-step' if self.lockstep else f'{self.rate:g} Hz'}, seed={self.next_seed}")

    # ---- parameters / service --------------------------------------------------------
    def _on_params(self, params):
        for prm in params:
            if prm.name == "seed":
                self.next_seed = int(prm.value)
        return SetParametersResult(successful=True)

    def _on_reset(self, request, response):
        if self.active:
            self._end_episode(reason="reset")
        if self.operator:  # a new scene, waiting for the operator's start
            self._stage()
            response.success = True
            response.message = f"seed {self.seed_of_episode} staged"
            return response
        self._begin_episode()
        response.success = True
        response.message = f"episode {self.episode} seed {self.seed_of_episode}"
        return response

    # ---- an operator's episodes -------------------------------------------------------
    def _stage(self, seed: int | None = None):
        """Operator mode: show the next scene (or `seed` again) without starting it."""
        if seed is None:
            seed = self.next_seed
            self.next_seed += 1
        self.obs, self.info = self.env.reset(seed=seed)
        self.seed_of_episode = seed
        self.steps, self.ret, self.latest = 0, 0.0, None
        self.staged, self.started = True, True
        self._publish_view(self._now_ns())

    def _on_operator_start(self, response):
        why_not = ("an episode is running" if self.active else
                   "no scene staged yet (the twin is starting)" if not self.staged else
                   self.recorders.waiting_for(int(self.p["min_recorders"])))
        if why_not:
            response.success, response.message = False, why_not
            return response
        self.staged = False
        self._begin_episode(staged=True)
        response.success = True
        response.message = f"episode {self.episode} (seed {self.seed_of_episode}) recording"
        return response

    def _on_operator_end(self, response, label: bool | None):
        if not self.active:
            response.success = False
            response.message = "no episode is running"
            return response
        seed = self.seed_of_episode
        if label is None:
            self._end_episode("discarded", discarded=True)
        else:
            self._end_episode("operator", success=label)
        if self._more_episodes():
            self._stage(seed if label is None else None)  # a discarded scene comes again
        else:
            self.done_at = time.monotonic()
        response.success = True
        response.message = (f"episode {self.episode} " +
                            ("discarded" if label is None else f"ended, success={label}"))
        return response

    # ---- episode flow ----------------------------------------------------------------
    def _now_ns(self) -> int:
        ns = self.get_clock().now().nanoseconds
        return max(ns, self.stamp_ns + 1)  # stamps are unique and increasing

    def _begin_episode(self, staged: bool = False):
        if staged:  # the scene on view (operator mode), exactly as the operator saw it
            seed = self.seed_of_episode
        else:
            seed = self.next_seed
            self.next_seed += 1
            self.obs, self.info = self.env.reset(seed=seed)
        self.episode += 1
        self.seed_of_episode = seed
        self.steps, self.ret, self.latest = 0, 0.0, None
        self.active = True
        self.started = True
        stamp = self._now_ns()
        self.first_stamp_ns = stamp
        self.pub_event.publish(itf.EpisodeEvent("start", self.episode, {
            "seed": seed, "task": self.p["task"], "object_pool": self.p["objects"],
            "objects": list(self.info.get("object_names", [])),
            "image_size": [int(self.obs.shape[0]), int(self.obs.shape[1])],
            "control_rate_hz": self.rate, "lockstep": self.lockstep,
            "max_steps": int(self.p["max_steps"]), "first_stamp_ns": stamp,
            **({"source": "teleop"} if self.operator else {})}).to_msg())
        self._publish_view(stamp)

    def _publish_view(self, stamp_ns: int):
        self.stamp_ns = stamp_ns
        self.published_at = time.monotonic()
        if self.safety is not None and not self.lockstep:
            self.safety.on_image(stamp_ns * 1e-9)
        if self.p["publish_info"]:
            self.pub_info.publish(itf.json_msg({
                "stamp_ns": stamp_ns, "episode": self.episode, "seed": self.seed_of_episode,
                "step": self.steps, "task": self.p["task"], "info": self.info}))
        # the state first: a consumer that pairs it with the image waits less
        self.pub_arm_state.publish(itf.arm_state_msg(state_from_info(self.info), stamp_ns))
        frame = self.env.render_camera_frame() if self.p["full_camera_frames"] else self.obs
        self.pub_image.publish(itf.numpy_to_image(
            frame, stamp_ns, self.p["camera_frame"], self.p["image_encoding"]))

    def _end_episode(self, reason: str, last_stamp_ns: int | None = None,
                     success: bool | None = None, discarded: bool = False):
        """`success`: the operator's label (None: the task's own judgement)."""
        judged = bool(self.info.get("success", False))
        labelled = success is not None
        success = judged if success is None else bool(success)
        self.pub_event.publish(itf.EpisodeEvent("end", self.episode, {
            "seed": self.seed_of_episode, "success": success, "steps": self.steps,
            "return": self.ret, "reason": reason,
            **({"task_success": judged, "operator_label": success} if labelled else {}),
            **({"discarded": True} if discarded else {}),
            "last_stamp_ns": self.stamp_ns if last_stamp_ns is None else last_stamp_ns}).to_msg())
        self.get_logger().info(f"episode {self.episode} (seed {self.seed_of_episode}) ended: "
                               f"{reason}, success={success}, steps={self.steps}")
        self.active = False
        self.episodes_done += 1

    def _more_episodes(self) -> bool:
        n = int(self.p["episodes"])
        return n <= 0 or self.episodes_done < n

    def _safe_action(self, action: np.ndarray, stamp_ns: int) -> np.ndarray:
        """The command as the safety filter lets it through; a stop becomes zero motion with
        the gripper held. Lock-step runs are timing-free, so the time rules are off there."""
        if self.safety is None:
            return action
        now = None if self.lockstep else self.get_clock().now().nanoseconds * 1e-9
        d = self.safety.check_command(action, now=now or 0.0,
                                      image_stamp=None if self.lockstep else stamp_ns * 1e-9,
                                      ee_pos=self.info.get("ee_pos"),
                                      ee_orn=self.info.get("ee_orn"))
        if not d.stopped:
            return action
        self.safety_stops[d.stop_reason] = self.safety_stops.get(d.stop_reason, 0) + 1
        self.get_logger().warning(f"STOP [{d.stop_reason}] {d.detail}",
                                  throttle_duration_sec=2.0)
        return np.zeros(7, np.float32)

    def _step(self, action: np.ndarray, stamp_ns: int):
        action = self._safe_action(action, stamp_ns)
        self.obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.steps += 1
        self.ret += float(reward)
        self.pub_state.publish(itf.json_msg({
            "stamp_ns": stamp_ns, "episode": self.episode, "step": self.steps - 1,
            "reward": float(reward), "success": bool(self.info.get("success", False)),
            "terminated": bool(terminated), "truncated": bool(truncated)}))
        if terminated or truncated:
            self._end_episode("success" if terminated and self.info.get("success") else
                              ("terminated" if terminated else "time_limit"), stamp_ns)
            if self.operator:
                if self._more_episodes():
                    self._stage()
                else:
                    self.done_at = time.monotonic()
                return
            if self.p["auto_reset"] and self._more_episodes():
                if self.lockstep:
                    self._begin_episode()
            elif not self._more_episodes():
                self.done_at = time.monotonic()
            return
        self._publish_view(self._now_ns())

    def _on_command(self, add, msg) -> None:
        """A command half; a malformed or out-of-range command is refused (as on the arm),
        never applied and never allowed to take the node down."""
        try:
            joined = add(msg)
        except ValueError as e:  # InterfaceError / InvalidActionError / ActionOutOfRangeError
            d = refused_command(e)
            self.safety_stops[d.stop_reason] = self.safety_stops.get(d.stop_reason, 0) + 1
            self.get_logger().warning(f"STOP [{d.stop_reason}] {d.detail}",
                                      throttle_duration_sec=2.0)  # throttled per call site
            return
        self._on_half(joined)

    def _on_half(self, joined):
        if joined is None:
            return
        stamp_ns, action = joined
        if not self.active:
            return
        if stamp_ns < self.first_stamp_ns:  # answers an image of the scene before: not this one's
            return
        if self.lockstep:
            if stamp_ns != self.stamp_ns:
                self.get_logger().debug(f"command for stamp {stamp_ns} ignored: waiting for "
                                        f"{self.stamp_ns}")
                return
            self._step(action, stamp_ns)
        else:
            self.latest = (stamp_ns, action)

    def _matched(self) -> bool:
        return (self.count_publishers(itf.TOPIC_TWIST) > 0
                and self.pub_image.get_subscription_count() >= int(self.p["min_image_subscribers"])
                and self.recorders.waiting_for(int(self.p["min_recorders"])) is None)

    def _tick(self):
        now = time.monotonic()
        if self.done_at is not None:
            if self.p["exit_when_done"] and now - self.done_at > 1.0:
                self.finished = True  # let the last events go out first
            return
        if self.operator and not self.active:
            if not self.staged:
                self._stage()
            elif self.lockstep:  # a staged scene stays on view for the operator
                if now - self.published_at > float(self.p["lockstep_resend_s"]):
                    self._publish_view(self.stamp_ns)
            else:
                self._publish_view(self._now_ns())
            return
        if not self.started:
            if not self.p["auto_reset"]:
                return
            if self.p["start_when_matched"]:
                if not self._matched():
                    self.matched_at = None
                    return
                self.matched_at = self.matched_at or now
                if now - self.matched_at < float(self.p["start_delay_s"]):
                    return
            self._begin_episode()
            return
        if not self.active:
            if self.p["auto_reset"] and self._more_episodes() and not self.lockstep:
                self._begin_episode()
            return
        if self.lockstep:
            if now - self.published_at > float(self.p["lockstep_resend_s"]):
                self._publish_view(self.stamp_ns)  # same stamp: idempotent for subscribers
            return
        if self.latest is not None:
            stamp_ns, action = self.latest
            self.latest = None
            self._step(action, stamp_ns)
        elif self.p["step_without_command"]:
            self._step(np.zeros(7, np.float32), self.stamp_ns)
        else:
            self._publish_view(self._now_ns())

    def apply_action(self, action) -> None:
        """Direct (in-process) command, e.g. from a test; same validation as the topic path."""
        try:
            a = validate_action(action)
        except InvalidActionError as e:
            self.get_logger().error(f"rejected command: {e}")
            return
        self._on_half((self.stamp_ns, a))

    def close(self):
        close = getattr(self.env, "close", None)
        if close is not None:
            close()


def main(argv=None) -> int:
    return run_node(SimTwinNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
