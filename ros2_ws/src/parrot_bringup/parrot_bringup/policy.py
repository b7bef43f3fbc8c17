"""`policy` node: camera image in, 7D command out, with onnxruntime only (never torch).

For every image: validate encoding/size (rgb8/bgr8; anything else is logged as an error and
answered with no command), convert to RGB, resize with cv2.INTER_AREA to the model's
input size, run the model, publish the command stamped with the image's stamp.

Modes (`mode` parameter, changeable at run time):
- `policy`: the exported SAC policy (`policy_dir`, policy.onnx) picks z from the image and
  the prior maps it to an action, a = f(z; image) (PARROT). A policy exported to act
  directly in action space (baselines) needs no prior.
- `prior`:  random exploration through the prior, z ~ N(0, I) (`seed`).
- `off`:    publishes nothing.

Images are taken newest-first (keep-last-1 subscription), so a slow model drops frames
instead of building latency.

A prior conditioned on the arm state, or a policy that observes it (exports with
``state_dim > 0``), also needs
`parrot/arm/state` (published by the twin and by `hardware_bridge`): each image waits for
the first state stamped at or after it (interfaces.ArmStateBuffer) and is answered then;
with no such state within `max_state_skew_s` it gets no command, so a stalled arm state
stops the arm through the bridge's watchdog instead of acting on a stale one.
"""

from __future__ import annotations

import json
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import COMMAND_FRAME, IMAGE_QOS, Param, declare, run_node
from parrot_bringup.policy_models import MODES, Models, PolicyConfigError

PARAMS = {
    "mode": Param("off", "policy: act with the SAC policy; prior: explore with random z through "
                         "the prior; off: publish nothing", choices=MODES),
    "prior_dir": Param("", "ONNX prior export directory (parrot export)"),
    "policy_dir": Param("", "ONNX policy export directory (parrot export-policy); mode policy"),
    "seed": Param(0, "seed of the random z drawn in mode prior", (0, 2**31 - 1)),
    "control_rate_hz": Param(10.0, "rate the command is scaled for: twist = per-step delta x rate (Hz)", (0.1, 1000.0)),
    "command_frame": COMMAND_FRAME,
    "image_qos": IMAGE_QOS,
    "image_topic": Param(itf.TOPIC_IMAGE, "the images acted on: the camera's frames, or the "
                                          "models' view usb_camera publishes (model_view_topic)"),
    "expected_image_size": Param([0, 0], "refuse images of any other size [H, W]; [0, 0] "
                                         "accepts every size and resizes to the model's"),
    "camera_file": Param("", "the arm camera's file (config/camera.yaml form): crop each frame to "
                             "the models' field of view, then resize; '' resizes the whole frame"),
    "threads": Param(1, "onnxruntime intra-op threads", (1, 64)),
    "keep_warm_hz": Param(0.0, "between frames, rerun the models on the newest image at this "
                               "rate so a frame finds them warm (a distilled student at 30 Hz: "
                               "about 0.6 -> 0.4 ms); 0: off", (0.0, 2000.0)),
    "max_state_skew_s": Param(0.1, "a state-conditioned prior: how much later than the image "
                                   "its arm state may be stamped (s)", (0.0, 10.0)),
}


class PolicyNode(Node):
    def __init__(self, name: str = "policy", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.rate = float(self.p["control_rate_hz"])
        size = [int(s) for s in self.p["expected_image_size"]]
        self.expected = tuple(size) if len(size) == 2 and all(size) else None
        self.pub_twist = self.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        self.pub_grip = self.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())
        qos = itf.image_qos(self.p["image_qos"])
        qos = QoSProfile(depth=1, reliability=qos.reliability, durability=qos.durability,
                         history=qos.history)
        self.camera = self._load_camera(self.p["camera_file"])
        self.models = self._load(self.p["mode"])
        self.arm_states = itf.ArmStateBuffer(float(self.p["max_state_skew_s"]))
        self.waiting = None  # (stamp_ns, image) that waits for its arm state
        self.create_subscription(Image, self.p["image_topic"], self._on_image, qos)
        self.create_subscription(JointState, itf.TOPIC_ARM_STATE, self._on_arm_state,
                                 itf.state_qos())
        self.add_on_set_parameters_callback(self._on_params)
        # where an image's time goes (ms), logged at shutdown (benchmarks/ros_latency.py reads it):
        # arrive = callback start - image stamp (DDS, executor; the stamp's clock must be this
        # host's), decode = message -> array, model = crop/resize + inference, publish = the
        # command's messages built and sent
        self.stage_ms = {k: deque(maxlen=5000) for k in ("arrive", "decode", "model", "publish")}
        self.last_stamp = None
        self.errors = 0

    def _load(self, mode: str) -> Models:
        if mode not in MODES:
            raise PolicyConfigError(f"mode must be one of {MODES}, got {mode!r}")
        models = Models(mode, self.p["prior_dir"], self.p["policy_dir"], int(self.p["seed"]),
                        int(self.p["threads"]), float(self.p["keep_warm_hz"]))
        self.get_logger().info(f"mode {mode}" + (
            f", model input {models.image_size[0]}x{models.image_size[1]}"
            if models.image_size else ""))
        return models

    @staticmethod
    def _load_camera(path: str):
        from parrot_core.camera import CameraError, optional_camera
        try:
            return optional_camera(path)
        except CameraError as e:
            raise PolicyConfigError(f"camera_file: {e}") from None

    def _on_params(self, params):
        for prm in params:
            if prm.name == "mode":
                try:
                    models = self._load(prm.value)
                except Exception as e:  # keep the running mode
                    return SetParametersResult(successful=False, reason=str(e))
                self.models.close()  # its keep-warm thread, if any
                self.models = models
                self.p["mode"] = prm.value
        return SetParametersResult(successful=True)

    def _on_image(self, msg: Image):
        if self.models.mode == "off":
            return
        stamp_ns = itf.stamp_to_ns(msg.header.stamp)
        if stamp_ns == self.last_stamp:
            return  # a re-sent image (lock-step twin): answered already
        self.stage_ms["arrive"].append((time.time_ns() - stamp_ns) / 1e6)
        t0 = time.perf_counter()
        try:
            img = itf.image_to_numpy(msg, self.expected)
        except itf.ImageFormatError as e:
            self.errors += 1
            self.get_logger().error(f"image rejected, no command: {e}")
            return
        self.stage_ms["decode"].append((time.perf_counter() - t0) * 1e3)
        if self.models.needs_arm_state:
            self.waiting = (stamp_ns, img)  # a newer image replaces one still waiting
            self._answer_waiting()
        else:
            self._act(stamp_ns, img)

    def _on_arm_state(self, msg: JointState):
        try:
            self.arm_states.add(*itf.arm_state_from_msg(msg))
        except itf.InterfaceError as e:
            self.errors += 1
            self.get_logger().error(f"arm state rejected: {e}")
            return
        if self.waiting is not None:
            self._answer_waiting()

    def _answer_waiting(self):
        stamp_ns, img = self.waiting
        try:
            state = self.arm_states.for_image(stamp_ns)
        except itf.InterfaceError as e:
            self.waiting = None
            self.errors += 1
            self.get_logger().error(f"no command for image {stamp_ns}: {e}")
            return
        if state is not None:
            self.waiting = None
            self._act(stamp_ns, img, state)

    def _act(self, stamp_ns: int, img: np.ndarray, state: np.ndarray | None = None):
        t0 = time.perf_counter()
        try:
            action = self.models(self.models.view(img, self.camera), state)
            t1 = time.perf_counter()
            twist, grip = itf.action_to_msgs(action, stamp_ns, self.rate, self.p["command_frame"])
        except ValueError as e:  # InvalidActionError (NaN/inf) or a model input error
            self.errors += 1
            self.get_logger().error(f"no command for image {stamp_ns}: {e}")
            return
        self.last_stamp = stamp_ns
        self.pub_twist.publish(twist)
        self.pub_grip.publish(grip)
        self.stage_ms["model"].append((t1 - t0) * 1e3)
        self.stage_ms["publish"].append((time.perf_counter() - t1) * 1e3)

    def stage_summary(self) -> dict:
        """Median and p99 (ms) of each stage over the images answered (the last 5000)."""
        return {k: {"median": round(float(np.median(v)), 3),
                    "p99": round(float(np.percentile(v, 99)), 3), "n": len(v)}
                for k, v in self.stage_ms.items() if v}

    def close(self) -> None:  # node_runtime calls this at shutdown
        self.models.close()
        if self.stage_ms["model"]:
            self.get_logger().info(f"{STAGES_LOG} {json.dumps(self.stage_summary())}")


STAGES_LOG = "time per image, ms:"


def main(argv=None) -> int:
    return run_node(PolicyNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
