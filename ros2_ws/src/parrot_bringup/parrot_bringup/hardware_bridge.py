"""`hardware_bridge` node: policy commands -> the real arm, every one through the SafetyFilter.

A lifecycle (managed) node: it moves the arm only while **active**. `autostart` (default
`configure`) brings it to *inactive* at start; activate it with
`ros2 lifecycle set /hardware_bridge activate` or, on a pip-only install,
`python -m parrot_bringup.lifecycle_ctl hardware_bridge activate`. Deactivating stops the arm.

In:  `parrot/cmd/twist` + `parrot/cmd/gripper` (paired by stamp, interfaces.CommandAssembler;
     a command stamped older than one already decided is refused (`out_of_order`, a stop)
     when the filter would have passed it, and one for the stamp of a command refused as
     NaN/inf is ignored: the late half of a command never undoes a newer stop),
     `camera/image_raw` (only its arrival: stale-image guard), `joint_states` (FK for the
     workspace box, IK start), `parrot/estop` (std_msgs/Bool; True latches a stop),
     service `parrot/estop/reset` (std_srvs/Trigger; refused while the e-stop still reads True).
Out: `output_mode: servo` -> geometry_msgs/TwistStamped on `servo_topic` (MoveIt Servo with
     `command_in_type: speed_units`: m/s and rad/s in `servo_frame`), republished at
     `servo_repeat_hz` until 1.5 control periods after its command (Servo halts when no
     command comes within its `incoming_command_timeout`, 0.2 s in xarm_ros2, so one twist per
     10 Hz command would be stop-and-go), then a zero twist; Servo is started through
     `servo_start_service` on activation and its status (`servo_status_topic`) is reported on
     /diagnostics. `output_mode: joint_trajectory` -> trajectory_msgs/JointTrajectory on
     `trajectory_topic` (one point, IK on the URDF with PyBullet DIRECT). The gripper ->
     a one-point JointTrajectory of `gripper_joint` on `gripper_topic` (xarm_ros2's
     `xarm_gripper_traj_controller`), or with `gripper_output: float64_array` a
     std_msgs/Float64MultiArray [position] (a forward command controller).
     `/diagnostics` (diagnostic_msgs/DiagnosticArray): every stop with its reason, and a
     periodic status with counters, Servo's status and the image-to-output latency.
     `arm_state_topic` (`parrot/arm/state`): for each accepted joint state, the TCP position
     (FK) and whether the gripper is closed (its joint in `joint_states`, else the last
     gripper command sent), stamped like the joint state: what a state-conditioned prior reads.

Stopping = zero motion: a zero twist (servo), or a one-point trajectory holding the measured
joints (an empty trajectory if none were measured, which a joint trajectory controller takes
as "hold"); the gripper holds. The rules are parrot_core.safety's, plus two that only the
bridge can check: `joint_states` (no fresh joint state, so the TCP is unknown),
`invalid_joint_state` (a NaN/inf joint, one far beyond its URDF limit, or a non-finite FK) and
`ik` (no IK solution within tolerance, or one that jumps a joint by more than
`max_joint_step_rad`).
Each stop is logged with its reason: at once for the first stop after motion or a new
reason, then at most every `stop_log_throttle_s`.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from rclpy.client import Client
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, Int8
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from parrot_bringup import interfaces as itf
from parrot_bringup.arm_kinematics import (DEFAULT_EE_LINK, DEFAULT_TCP_OFFSET, XARM6_JOINTS,
                                           ArmKinematics, KinematicsError)
from parrot_bringup.node_runtime import IMAGE_QOS, Param, declare, described, run_node
from parrot_core.arm_state import arm_state
from parrot_core.safety import SafetyConfig, SafetyDecision, SafetyFilter, \
    config_from_parameters, parameter_defaults, parameter_docs, refused_command

OUTPUT_MODES = ("servo", "joint_trajectory")
GRIPPER_OUTPUTS = ("trajectory", "float64_array")
AUTOSTART = ("none", "configure", "activate")
PARAMS = {
    "output_mode": Param("servo", "servo: TwistStamped to MoveIt Servo; joint_trajectory: IK "
                                  "to a JointTrajectory per step", choices=OUTPUT_MODES),
    "autostart": Param("configure", "lifecycle transitions made at start", choices=AUTOSTART),
    "control_rate_hz": Param(10.0, "the policy's rate: twist (m/s) = per-step delta x rate (Hz)",
                             (0.1, 1000.0)),
    "watchdog_rate_hz": Param(20.0, "rate of the stale-command / stale-image checks (Hz)",
                              (1.0, 1000.0)),
    "servo_topic": Param(itf.TOPIC_SERVO_TWIST, "MoveIt Servo's twist command topic"),
    "servo_frame": Param("link_base", "frame_id of the twists sent to Servo"),
    "servo_start_service": Param(itf.SERVICE_SERVO_START, "std_srvs/Trigger called on activate "
                                                          "(\"\": none)"),
    "servo_status_topic": Param(itf.TOPIC_SERVO_STATUS, "Servo's std_msgs/Int8 status, logged and "
                                                        "reported on /diagnostics (\"\": not watched)"),
    "servo_repeat_hz": Param(50.0, "twist republish rate (> 1 / Servo's command timeout) (Hz)",
                             (1.0, 1000.0)),
    "trajectory_topic": Param(itf.TOPIC_JOINT_TRAJECTORY, "joint trajectory controller topic"),
    "trajectory_duration_s": Param(0.0, "time_from_start of a step; 0: one control period (s)",
                                   (0.0, 10.0)),
    "hold_duration_s": Param(0.05, "time_from_start of a stop (hold) point (s)", (0.0, 10.0)),
    "gripper_output": Param("trajectory", "gripper command type", choices=GRIPPER_OUTPUTS),
    "gripper_topic": Param(itf.TOPIC_GRIPPER_TRAJECTORY, "gripper controller topic"),
    "gripper_joint": Param(itf.XARM_GRIPPER_JOINT, "gripper joint name"),
    "gripper_duration_s": Param(0.5, "time_from_start of a gripper trajectory point (s)",
                                (0.0, 10.0)),
    "gripper_open_position": Param(0.0, "gripper joint position when open"),
    "gripper_closed_position": Param(0.85, "gripper joint position when closed"),
    "joint_states_topic": Param(itf.TOPIC_JOINT_STATES, "the arm's sensor_msgs/JointState"),
    "joint_state_timeout_s": Param(0.5, "joint states older than this stop the arm (s)",
                                   (0.01, 10.0)),
    # The arm state a state-conditioned prior reads (TCP from FK, gripper closed), published
    # for every accepted joint state; "" = not published.
    "arm_state_topic": Param(itf.TOPIC_ARM_STATE, "where the arm state for a state-conditioned "
                                                  "prior is published (\"\": not published)"),
    "joint_names": Param(list(XARM6_JOINTS), "the arm's joint names, base to tool"),
    "urdf_path": Param("", "URDF for FK/IK (\"\": the package's urdf/xarm6_with_gripper.urdf)"),
    "ee_link": Param(DEFAULT_EE_LINK, "URDF link the TCP offset is applied to"),
    "tcp_offset_m": Param(list(DEFAULT_TCP_OFFSET), "TCP offset from ee_link [x, y, z] (m)"),
    "ik_tolerance_m": Param(0.005, "IK solutions further from the target are refused (m)",
                            (1e-5, 0.1)),
    "ik_timeout_s": Param(0.05, "an IK result that took longer is stale: refused (s)",
                          (1e-3, 10.0)),
    "max_joint_step_rad": Param(0.35, "a step moving any joint further is refused (rad)",
                                (0.0, 3.2)),
    "estop_topic": Param(itf.TOPIC_ESTOP, "e-stop topic (std_msgs/Bool, latched)"),
    "estop_reset_service": Param(itf.SERVICE_ESTOP_RESET, "std_srvs/Trigger that clears the e-stop"),
    "image_topic": Param(itf.TOPIC_IMAGE, "camera topic watched for image freshness"),
    "image_qos": IMAGE_QOS,
    "stop_log_throttle_s": Param(2.0, "at most one log line per stop reason this often (s)",
                                 (0.0, 3600.0)),
    "diagnostics_period_s": Param(1.0, "/diagnostics publish period (s)", (0.01, 60.0)),
    **described(parameter_defaults(SafetyConfig(require_image=True)), parameter_docs()),
}
DIAG_NAME = "parrot: hardware_bridge safety"
# A measured joint this far beyond its URDF limit is a fault (calibration, joint order).
JOINT_LIMIT_MARGIN_RAD = 0.1


class BridgeConfigError(RuntimeError):
    """A parameter the bridge cannot work with (mode, URDF, joint names)."""


class StopReporter:
    """Logs stops and turns them into DiagnosticStatus: each new stop episode or new reason
    at once, repeats of the same reason at most every `throttle_s`."""

    def __init__(self, logger, throttle_s: float):
        self.log = logger
        self.throttle_s = float(throttle_s)
        self.counts: dict[str, int] = {}
        self.current: str | None = None  # reason of the ongoing stop, None while moving
        self.detail = ""
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def moving(self) -> None:
        self.current = None

    def stop(self, reason: str, detail: str, now: float) -> bool:
        """Record a stop; True when it was logged (and should be published)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        new = reason != self.current
        self.current, self.detail = reason, detail
        if new or now - self._last_log.get(reason, -1e18) >= self.throttle_s:
            n = self._suppressed.pop(reason, 0)
            extra = f" ({n} repeats not logged)" if n else ""
            self.log.warning(f"STOP [{reason}] {detail}{extra}")
            self._last_log[reason] = now
            return True
        self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
        return False


class HardwareBridge(LifecycleNode):
    def __init__(self, name: str = "hardware_bridge", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.pub_diag = self.create_publisher(DiagnosticArray, itf.TOPIC_DIAGNOSTICS, 10)
        self.reporter = StopReporter(self.get_logger(), self.p["stop_log_throttle_s"])
        self.pub_motion = self.pub_grip = None  # lifecycle publishers, made by on_configure
        self.kin = None
        self.filter = SafetyFilter(config_from_parameters(self.p))
        self._entities: list = []
        self._q = None
        self._q_time = None
        self._q_problem: str | None = None  # why the last joint state was refused
        self._gripper_closed = False  # measured (gripper joint in joint_states) or commanded
        self.state_kin = None  # FK for the arm state, apart from the IK worker's solver
        self.pub_arm_state = None
        self._estop_pressed = False
        self.applied = 0
        self.out_of_order = 0  # commands refused: stamped older than one already decided
        self.duplicates = 0  # commands ignored: for the stamp of one refused as NaN/inf
        self._bad_stamp_ns: int | None = None
        self._newest_decided_ns: int | None = None
        self.latency_ms: deque = deque(maxlen=1000)
        self.estop_reaction_ms: float | None = None
        self.servo_status: str = "unknown"
        self.servo_started: str = "not asked"
        self._twist_out = None  # (linear, angular) being republished for Servo, or None
        self._twist_until = 0.0
        # joint_trajectory mode runs FK + IK in one worker thread, so a slow IK never delays
        # the e-stop or the watchdog (they run on the executor's thread). The lock makes
        # "check the e-stop, then publish motion" atomic against "latch, then publish stop".
        self._ik_worker: ThreadPoolExecutor | None = None
        self._out_lock = threading.RLock()

    def autostart(self) -> None:
        """The `autostart` transitions, made by main() once the node exists (as launch_ros's
        autostart does), never by the constructor."""
        autostart = self.p["autostart"]
        if autostart not in AUTOSTART:
            raise BridgeConfigError(f"autostart must be one of {AUTOSTART}, got {autostart!r}")
        if autostart in ("configure", "activate"):
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise BridgeConfigError("configure failed (see the log above)")
            if autostart == "activate":
                self.trigger_activate()

    # ---- lifecycle -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Active in the lifecycle: the motion publisher is activated only then."""
        return self.pub_motion is not None and self.pub_motion.is_activated

    def on_configure(self, state) -> TransitionCallbackReturn:
        p = self.p = {name: self.get_parameter(name).value for name in PARAMS}
        try:
            if p["output_mode"] not in OUTPUT_MODES:
                raise BridgeConfigError(
                    f"output_mode must be one of {OUTPUT_MODES}, got {p['output_mode']!r}")
            if float(p["control_rate_hz"]) <= 0 or float(p["watchdog_rate_hz"]) <= 0:
                raise BridgeConfigError("control_rate_hz and watchdog_rate_hz must be > 0")
            if p["gripper_output"] not in GRIPPER_OUTPUTS:
                raise BridgeConfigError(f"gripper_output must be one of {GRIPPER_OUTPUTS}, "
                                        f"got {p['gripper_output']!r}")
            self.kin = ArmKinematics(p["urdf_path"], p["joint_names"], p["ee_link"],
                                     p["tcp_offset_m"])
            if p["arm_state_topic"]:  # its own solver: the IK worker thread uses self.kin
                self.state_kin = ArmKinematics(p["urdf_path"], p["joint_names"], p["ee_link"],
                                               p["tcp_offset_m"])
        except (BridgeConfigError, KinematicsError) as e:
            self.get_logger().error(f"cannot configure: {e}")
            return TransitionCallbackReturn.FAILURE
        self.rate = float(p["control_rate_hz"])
        self.filter = SafetyFilter(config_from_parameters(p), self.rate)
        self.reporter.throttle_s = float(p["stop_log_throttle_s"])
        self.assembler = itf.CommandAssembler(self.rate)
        cq = itf.command_qos()
        # lifecycle publishers: they send nothing unless the node is active
        if p["output_mode"] == "servo":
            self.pub_motion = self.create_lifecycle_publisher(TwistStamped, p["servo_topic"], cq)
        else:
            self.pub_motion = self.create_lifecycle_publisher(JointTrajectory,
                                                              p["trajectory_topic"], cq)
        grip_type = JointTrajectory if p["gripper_output"] == "trajectory" else Float64MultiArray
        self.pub_grip = self.create_lifecycle_publisher(grip_type, p["gripper_topic"], cq)
        img_qos = itf.image_qos(p["image_qos"])
        img_qos = QoSProfile(depth=1, reliability=img_qos.reliability,
                             durability=img_qos.durability, history=img_qos.history)
        self._entities = [
            self.pub_motion, self.pub_grip,
            self.create_subscription(TwistStamped, itf.TOPIC_TWIST, self._on_twist, cq),
            self.create_subscription(JointState, itf.TOPIC_GRIPPER, self._on_gripper, cq),
            # raw: only the arrival counts, so a full frame is never deserialized here
            self.create_subscription(Image, p["image_topic"], self._on_image, img_qos, raw=True),
            self.create_subscription(JointState, p["joint_states_topic"], self._on_joints,
                                     itf.image_qos("sensor")),
            self.create_subscription(Bool, p["estop_topic"], self._on_estop, itf.estop_qos()),
            self.create_service(Trigger, p["estop_reset_service"], self._on_reset),
            self.create_timer(1.0 / float(p["watchdog_rate_hz"]), self._on_watchdog),
            self.create_timer(float(p["diagnostics_period_s"]), self._publish_status),
        ]
        self.pub_arm_state = None
        if p["arm_state_topic"]:
            self.pub_arm_state = self.create_publisher(JointState, p["arm_state_topic"],
                                                       itf.state_qos())
            self._entities.append(self.pub_arm_state)
        self._servo_start = None
        if p["output_mode"] == "servo":
            self._entities += self._servo_entities(p)
        else:
            self._ik_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ik")
        self.get_logger().info(
            f"configured: output {p['output_mode']} -> "
            f"{p['servo_topic'] if p['output_mode'] == 'servo' else p['trajectory_topic']}, "
            f"gripper -> {p['gripper_topic']}, URDF {self.kin.urdf}; inactive until activated")
        return TransitionCallbackReturn.SUCCESS

    def _servo_entities(self, p) -> list:
        """MoveIt Servo's side: the twist republish timer, its status, its start service."""
        made = []
        if float(p["servo_repeat_hz"]) > 0:
            made.append(self.create_timer(1.0 / float(p["servo_repeat_hz"]), self._on_repeat))
        if p["servo_status_topic"]:
            made.append(self.create_subscription(Int8, p["servo_status_topic"],
                                                 self._on_servo_status, 10))
        if p["servo_start_service"]:
            self._servo_start = self.create_client(Trigger, p["servo_start_service"])
            made.append(self._servo_start)
        return made

    def _start_servo(self) -> None:
        """Ask Servo to start (xarm_ros2's Servo idles until ~/start_servo); never blocks."""
        if self._servo_start is None:
            return
        name = self.p["servo_start_service"]
        if not self._servo_start.service_is_ready():
            self.servo_started = "service not available"
            self.get_logger().warning(f"MoveIt Servo start service {name} is not available: is "
                                      f"servo_server running? Twists are sent anyway")
            return
        self.servo_started = "requested"

        def done(future):
            res = future.result()
            self.servo_started = "yes" if res is not None and res.success else \
                f"refused: {getattr(res, 'message', '')}"
            self.get_logger().info(f"MoveIt Servo start ({name}): {self.servo_started}")
        self._servo_start.call_async(Trigger.Request()).add_done_callback(done)

    def _on_servo_status(self, msg: Int8) -> None:
        code = int(msg.data)
        name = itf.SERVO_STATUS.get(code, f"UNKNOWN({code})")
        if name == self.servo_status:
            return
        self.servo_status = name
        if code in itf.SERVO_HALTING:
            self.get_logger().warning(f"MoveIt Servo reports {name}: Servo is halting the arm")
            self._publish_diag(DiagnosticStatus.ERROR, f"servo: {name}", "servo_status")
        else:
            self.get_logger().info(f"MoveIt Servo status: {name}")

    def _on_repeat(self) -> None:
        """Keep the accepted twist flowing to Servo until it expires, then a zero twist."""
        with self._out_lock:
            if self._twist_out is None or not self.active or self.filter.estopped:
                return
            if time.monotonic() < self._twist_until:
                self.pub_motion.publish(self._twist(*self._twist_out))
            else:
                self._twist_out = None
                self.pub_motion.publish(self._stop_motion())

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.assembler = itf.CommandAssembler(self.rate)
        self._newest_decided_ns = self._bad_stamp_ns = None
        result = super().on_activate(state)  # activates the motion and gripper publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._start_servo()
        self.get_logger().info("active: commands that pass the safety filter move the arm")
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        # the stop goes out while the publishers are still active, then they are deactivated
        self._halt(SafetyDecision(stop_reason="deactivated", detail="bridge deactivated"),
                   self._now())
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        if self.active:
            self.on_deactivate(state)
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        if self._ik_worker is not None:
            self._ik_worker.shutdown(wait=True, cancel_futures=True)  # before kin is closed
            self._ik_worker = None
        for e in self._entities:
            self._destroy(e)
        self._entities = []
        self.pub_motion = self.pub_grip = self.pub_arm_state = None
        for kin in (self.kin, self.state_kin):
            if kin is not None:
                kin.close()
        self.kin = self.state_kin = None

    def _destroy(self, e) -> None:
        """Destroy what on_configure made, each with its own destroy_* (lifecycle publishers
        first: they are also Publishers, and the node must stop managing them)."""
        for kind, destroy in ((LifecyclePublisher, self.destroy_lifecycle_publisher),
                              (Publisher, self.destroy_publisher),
                              (Subscription, self.destroy_subscription),
                              (Service, self.destroy_service), (Client, self.destroy_client),
                              (Timer, self.destroy_timer)):
            if isinstance(e, kind):
                destroy(e)
                return
        raise TypeError(f"the bridge made an entity it cannot destroy: {type(e).__name__}")

    def close(self) -> None:  # node_runtime calls this on Ctrl-C: stop the arm first
        if self.active:
            try:
                self._halt(SafetyDecision(stop_reason="shutdown", detail="node shutting down"),
                           self._now())
                super().on_deactivate(None)  # the publishers: nothing more goes out
            except Exception:  # noqa: BLE001 - best effort while the context goes down
                pass

    # ---- inputs ---------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, _cdr: bytes) -> None:
        self.filter.on_image(self._now())

    def _on_joints(self, msg: JointState) -> None:
        names = list(msg.name)
        self._measure_gripper(names, msg.position)
        try:
            q = np.asarray([msg.position[names.index(n)] for n in self.p["joint_names"]], float)
        except (ValueError, IndexError):
            return  # another group's joint states (e.g. the gripper alone)
        problem = self._implausible(q)
        if problem:  # the TCP is unknown: forget the last good state and stop now
            self._q = self._q_time = None
            self._q_problem = problem
            if self.active:
                self._halt(SafetyDecision(stop_reason="invalid_joint_state", detail=problem),
                           self._now())
            return
        self._q, self._q_time, self._q_problem = q, self._now(), None
        self._publish_arm_state(q, itf.stamp_to_ns(msg.header.stamp))

    def _measure_gripper(self, names, positions) -> None:
        """The gripper joint's position, when joint_states carry it, says closed or open."""
        joint = self.p["gripper_joint"]
        if joint in names and names.index(joint) < len(positions):
            pos = float(positions[names.index(joint)])
            opened, closed = float(self.p["gripper_open_position"]), float(self.p["gripper_closed_position"])
            if np.isfinite(pos):
                self._gripper_closed = abs(pos - closed) < abs(pos - opened)

    def _publish_arm_state(self, q, stamp_ns: int) -> None:
        if self.pub_arm_state is None or self.state_kin is None:
            return
        tcp, _ = self.state_kin.fk(q)
        if not np.all(np.isfinite(tcp)):
            return  # _check stops on a non-finite FK; a prior gets no state to act on
        self.pub_arm_state.publish(itf.arm_state_msg(
            arm_state(tcp, self._gripper_closed), stamp_ns or int(self._now() * 1e9)))

    def _implausible(self, q) -> str | None:
        """Why a measured joint state cannot be trusted, or None."""
        if not np.all(np.isfinite(q)):
            return f"non-finite joint state {q.tolist()} on {self.p['joint_states_topic']}"
        if self.kin is not None:
            margin = JOINT_LIMIT_MARGIN_RAD
            if np.any(q < self.kin.arm_lower - margin) or np.any(q > self.kin.arm_upper + margin):
                return (f"joint state {np.round(q, 3).tolist()} beyond the URDF's joint limits "
                        f"(+{margin} rad): miscalibrated or wrong joint order")
        return None

    def _on_estop(self, msg: Bool) -> None:
        t_in = time.perf_counter()
        self._estop_pressed = bool(msg.data)
        if msg.data:
            with self._out_lock:
                self._halt(self.filter.estop(f"e-stop on {self.p['estop_topic']}"), self._now())
            self.estop_reaction_ms = (time.perf_counter() - t_in) * 1e3
            self.get_logger().warning(f"e-stop: stop published {self.estop_reaction_ms:.1f} ms "
                                      f"after the message arrived")
        elif self.filter.estopped:
            self.get_logger().info("e-stop released; call the reset service "
                                   f"{self.p['estop_reset_service']} to move again")

    def _on_reset(self, request, response):
        with self._out_lock:
            return self._reset(response)

    def _reset(self, response):
        if self._estop_pressed:
            response.success = False
            response.message = f"e-stop still pressed ({self.p['estop_topic']} is True)"
        else:
            was = self.filter.estopped
            self.filter.reset_estop()
            response.success = True
            response.message = "e-stop reset" if was else "no e-stop was latched"
            self.get_logger().info(response.message)
        return response

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        raw = [t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]
        if not np.all(np.isfinite(raw)):  # never pair it: the filter rejects it now
            return self._decide_bad(np.array(raw + [0.0]), itf.stamp_to_ns(msg.header.stamp))
        self._assembled(self.assembler.add_twist, msg)

    def _on_gripper(self, msg: JointState) -> None:
        if not np.all(np.isfinite(list(msg.position))):
            return self._decide_bad(np.array([0.0] * 6 + [float("nan")]),
                                    itf.stamp_to_ns(msg.header.stamp))
        self._assembled(self.assembler.add_gripper, msg)

    def _assembled(self, add, msg) -> None:
        try:
            out = add(msg)
        except ValueError as e:  # malformed, or beyond a full-scale step: refused, not clipped
            return self._reject(refused_command(e), self._now())
        if out is None:
            return
        stamp_ns, action = out
        order = self._take_stamp(stamp_ns)
        if order == "same" and stamp_ns == self._bad_stamp_ns:  # that image's command was NaN
            self.duplicates += 1
            return self.get_logger().warning(
                f"a command for stamp {stamp_ns} ns, whose command was refused as NaN/inf: "
                f"ignored", throttle_duration_sec=5.0)
        self._decide(action, stamp_ns, in_order=order != "older")

    def _decide_bad(self, action, stamp_ns: int) -> None:
        """A non-finite half: refused at once, whatever its stamp."""
        self._take_stamp(stamp_ns)
        self._bad_stamp_ns = stamp_ns
        self._decide(action, stamp_ns)

    def _take_stamp(self, stamp_ns: int) -> str:
        """"newer" (it becomes the newest decided stamp), "same" or "older" than the newest
        command decided so far. The halves of a command travel on two topics, so one can
        complete after a newer command was decided: applying it then would undo that
        decision, a stop included."""
        with self._out_lock:
            newest = self._newest_decided_ns
            if newest is not None and stamp_ns <= newest:
                return "same" if stamp_ns == newest else "older"
            self._newest_decided_ns = stamp_ns
            return "newer"

    # ---- decisions ------------------------------------------------------------------------
    def _decide(self, action, stamp_ns: int, in_order: bool = True) -> None:
        """joint_trajectory: FK and IK on the worker thread (one at a time, in order), so the
        executor's thread stays free for the e-stop and the watchdog; servo: right here."""
        if self._ik_worker is None:
            return self._decide_now(action, stamp_ns, in_order)
        job = self._ik_worker.submit(self._decide_now, action, stamp_ns, in_order)
        job.add_done_callback(self._log_failure)

    def _log_failure(self, job) -> None:
        if job.exception() is not None:  # never silent: the command was not applied
            self.get_logger().error(f"command processing failed: {job.exception()!r}")

    def _decide_now(self, action, stamp_ns: int, in_order: bool = True) -> None:
        """Check a command, find its motion (IK outside the lock), then publish it unless the
        arm was stopped meanwhile; every refusal stops the arm."""
        with self._out_lock:
            d, q, ee_pos, ee_orn = self._check(action, stamp_ns)
        if not d.stopped and not in_order:
            self.out_of_order += 1
            d = SafetyDecision(stop_reason="out_of_order", detail=(
                f"command stamped {stamp_ns} ns completed after a newer one was decided "
                f"({self._newest_decided_ns} ns): not applied"))
        if d.stopped:
            return self._reject(d, self._now())
        if self.p["output_mode"] == "servo":
            msg = self._twist(d.pos_delta * self.rate, d.rot_delta * self.rate)
        else:
            msg, refusal = self._joint_step(q, ee_pos, ee_orn, d)
            if refusal is not None:
                return self._reject(refusal, self._now())
        with self._out_lock:
            if not self.active or self.filter.estopped:  # stopped while IK ran
                return self._halt(SafetyDecision(
                    stop_reason="estop" if self.filter.estopped else "inactive",
                    detail="stopped while the command was being computed"), self._now())
            self._publish_motion(msg, d, stamp_ns)

    def _check(self, action, stamp_ns: int):
        """(decision, q, ee_pos, ee_orn) for a command, from the filter and the joint state."""
        now = self._now()
        none = (None, None, None)
        if not self.active:
            return (SafetyDecision(stop_reason="inactive", detail="command ignored: bridge not "
                                   "active (lifecycle activate to move the arm)"), *none)
        if self.filter.estopped:
            return (self.filter.check_command(action, now), *none)
        if self._q is None and self._q_problem:
            return (SafetyDecision(stop_reason="invalid_joint_state", detail=self._q_problem),
                    *none)
        if self._q is None or now - self._q_time > float(self.p["joint_state_timeout_s"]):
            age = "none received" if self._q is None else f"last {now - self._q_time:.2f} s ago"
            return (SafetyDecision(
                stop_reason="joint_states",
                detail=f"no fresh joint state on {self.p['joint_states_topic']} ({age}; "
                       f"> {self.p['joint_state_timeout_s']} s): TCP unknown"), *none)
        q = self._q.copy()
        ee_pos, ee_orn = self.kin.fk(q)
        if not (np.all(np.isfinite(ee_pos)) and np.all(np.isfinite(ee_orn))):
            return (SafetyDecision(stop_reason="invalid_joint_state", detail=f"forward kinematics of "
                                   f"{q.tolist()} is not finite: TCP unknown"), *none)
        d = self.filter.check_command(action, now, image_stamp=stamp_ns * 1e-9, ee_pos=ee_pos,
                                      ee_orn=ee_orn)
        return d, q, ee_pos, ee_orn

    def _joint_step(self, q, ee_pos, ee_orn, d: SafetyDecision):
        """(JointTrajectory, None), or (None, refusal) when IK fails, jumps or is too slow."""
        target_pos, target_orn = self.kin.apply_delta(ee_pos, ee_orn, d.pos_delta, d.rot_delta)
        t0 = time.perf_counter()
        try:
            q_new = self.kin.ik(q, target_pos, target_orn,
                                tolerance_m=float(self.p["ik_tolerance_m"]))
        except KinematicsError as e:
            return None, SafetyDecision(stop_reason="ik", detail=str(e))
        took = time.perf_counter() - t0
        if took > float(self.p["ik_timeout_s"]):
            return None, SafetyDecision(stop_reason="ik", detail=f"IK took {took:.3f} s "
                                        f"(> ik_timeout_s {self.p['ik_timeout_s']}): stale")
        jump = float(np.max(np.abs(q_new - q)))
        if jump > float(self.p["max_joint_step_rad"]):
            return None, SafetyDecision(
                stop_reason="ik", detail=f"IK solution moves a joint by {jump:.3f} rad "
                f"(> max_joint_step_rad {self.p['max_joint_step_rad']})")
        dur = float(self.p["trajectory_duration_s"]) or 1.0 / self.rate
        return self._trajectory(q_new, dur), None

    def _publish_motion(self, msg, d: SafetyDecision, stamp_ns: int) -> None:
        self.pub_motion.publish(msg)
        if self.p["output_mode"] == "servo":  # republished for Servo until 1.5 periods pass
            self._twist_out = (d.pos_delta * self.rate, d.rot_delta * self.rate)
            self._twist_until = time.monotonic() + 1.5 / self.rate
        if d.gripper != 0:
            pos = self.p["gripper_open_position"] if d.gripper > 0 else \
                self.p["gripper_closed_position"]
            self.pub_grip.publish(self._gripper_msg(float(pos)))
            self._gripper_closed = d.gripper < 0  # until joint_states say otherwise
        self.applied += 1
        self.latency_ms.append((self._now() - stamp_ns * 1e-9) * 1e3)
        if self.reporter.current is not None:
            self.get_logger().info(f"moving again after stop [{self.reporter.current}]")
        self.reporter.moving()

    def _reject(self, d: SafetyDecision, now: float) -> None:
        """A command that did not pass: stop the arm (every time) and report."""
        self._halt(d, now)

    def _halt(self, d: SafetyDecision, now: float) -> None:
        with self._out_lock:  # from any thread: never interleaved with a motion being published
            self._twist_out = None  # nothing is republished after a stop
            if self.active:
                self.pub_motion.publish(self._stop_motion())
            if self.reporter.stop(d.stop_reason, d.detail, now):
                level = DiagnosticStatus.WARN if d.stop_reason in ("inactive", "deactivated") \
                    else DiagnosticStatus.ERROR
                self._publish_diag(level, f"stopped: {d.stop_reason}: {d.detail}", d.stop_reason)

    def _on_watchdog(self) -> None:
        if not self.active:
            return
        with self._out_lock:
            now = self._now()
            d = self.filter.check_watchdog(now)
            if d is not None and d.stop_reason != self.reporter.current:
                self._halt(d, now)  # once per stop: a transition from moving (or another reason)

    # ---- outputs --------------------------------------------------------------------------
    def _twist(self, lin, ang) -> TwistStamped:
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p["servo_frame"]
        t = msg.twist
        t.linear.x, t.linear.y, t.linear.z = (float(v) for v in lin)
        t.angular.x, t.angular.y, t.angular.z = (float(v) for v in ang)
        return msg

    def _trajectory(self, q, duration_s: float) -> JointTrajectory:
        msg = JointTrajectory()  # header stamp 0: start now
        msg.joint_names = list(self.p["joint_names"])
        if q is not None:
            pt = JointTrajectoryPoint()
            pt.positions = [float(v) for v in q]
            pt.velocities = [0.0] * len(pt.positions)
            _set_time_from_start(pt, duration_s)
            msg.points = [pt]
        return msg

    def _gripper_msg(self, position: float):
        if self.p["gripper_output"] == "float64_array":
            return Float64MultiArray(data=[position])
        msg = JointTrajectory()
        msg.joint_names = [self.p["gripper_joint"]]
        pt = JointTrajectoryPoint(positions=[position])
        _set_time_from_start(pt, float(self.p["gripper_duration_s"]))
        msg.points = [pt]
        return msg

    def _stop_motion(self):
        if self.p["output_mode"] == "servo":
            return self._twist((0, 0, 0), (0, 0, 0))
        return self._trajectory(self._q, float(self.p["hold_duration_s"]))

    # ---- diagnostics ----------------------------------------------------------------------
    def _publish_diag(self, level, message: str, reason: str | None) -> None:
        st = DiagnosticStatus(level=level, name=DIAG_NAME, message=message,
                              hardware_id=self.p.get("servo_frame", ""))
        vals = {"reason": reason or "", "active": str(self.active).lower(),
                "estopped": str(self.filter.estopped).lower(),
                "output_mode": self.p["output_mode"], "commands_applied": str(self.applied),
                "commands_out_of_order": str(self.out_of_order),
                "commands_duplicate": str(self.duplicates)}
        vals.update({f"stops.{k}": str(v) for k, v in sorted(self.reporter.counts.items())})
        if self.p["output_mode"] == "servo":
            vals["servo_status"] = self.servo_status
            vals["servo_started"] = self.servo_started
        if self.estop_reaction_ms is not None:
            vals["estop_reaction_ms"] = f"{self.estop_reaction_ms:.3f}"
        if self.latency_ms:
            lat = sorted(self.latency_ms)
            vals["latency_ms.last"] = f"{self.latency_ms[-1]:.3f}"
            vals["latency_ms.median"] = f"{statistics.median(lat):.3f}"
            vals["latency_ms.p99"] = f"{lat[min(len(lat) - 1, int(0.99 * len(lat)))]:.3f}"
            vals["latency_ms.n"] = str(len(lat))
        st.values = [KeyValue(key=k, value=v) for k, v in vals.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def _publish_status(self) -> None:
        if not self.active:
            level, msg = DiagnosticStatus.WARN, "inactive: not moving the arm"
        elif self.reporter.current is not None:
            level = DiagnosticStatus.ERROR
            msg = f"stopped: {self.reporter.current}: {self.reporter.detail}"
        else:
            level, msg = DiagnosticStatus.OK, "active"
        self._publish_diag(level, msg, self.reporter.current)


def _set_time_from_start(point: JointTrajectoryPoint, seconds: float) -> None:
    sec = int(seconds)
    point.time_from_start.sec, point.time_from_start.nanosec = sec, int((seconds - sec) * 1e9)


def main(argv=None) -> int:
    return run_node(HardwareBridge, argv, on_start=HardwareBridge.autostart)


if __name__ == "__main__":
    raise SystemExit(main())
