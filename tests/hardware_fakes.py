"""Test helpers for the hardware path: a fake arm that speaks the arm's topics, over real DDS.

`FakeArm` is one rclpy node in its own Context/domain, spun in a background thread. It plays
the arm side (publishes `joint_states`, records what arrives on the MoveIt Servo topic, the
joint trajectory topic, the gripper controller topic and `/diagnostics`) and the parts a
test crafts inputs for (camera images, policy commands, the e-stop). The bridge under test
runs in its own process (`start_bridge`), so everything crosses DDS.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pybullet as p
import yaml
import ros_helpers
from ros_helpers import domain_id

ROOT = Path(__file__).resolve().parent.parent
# A comfortable pose: TCP in front of the base, pointing down, inside the default box.
Q0 = [0.0, -0.5, -0.5, 0.0, 1.0, 0.0]
JOINTS = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6"]
SERVO_TOPIC = "/servo_server/delta_twist_cmds"
SERVO_START = "/servo_server/start_servo"
SERVO_STATUS = "/servo_server/status"
SERVO_COMMAND_TIMEOUT_S = 0.2  # xarm_ros2's incoming_command_timeout: Servo halts after it
TRAJ_TOPIC = "/xarm6_traj_controller/joint_trajectory"
GRIPPER_TOPIC = "/xarm_gripper_traj_controller/joint_trajectory"


def down_turned(roll=0.0, pitch=0.0, yaw=0.0):
    """The TCP quaternion (x, y, z, w) turned by roll/pitch/yaw (base axes) from pointing down."""
    down = p.getQuaternionFromEuler((np.pi, 0.0, 0.0))
    return p.multiplyTransforms((0, 0, 0), p.getQuaternionFromEuler((roll, pitch, yaw)),
                                (0, 0, 0), down)[1]


def domain_for(module_name: str) -> int:
    """A ROS_DOMAIN_ID unique to a test module (and spread over concurrent test runs)."""
    return domain_id(module_name)


def ros_env(domain: int) -> dict:
    """ros_helpers.ros_env, with log lines as `[LEVEL] [node]: message` (tests read them)."""
    env = ros_helpers.ros_env(domain)
    env["RCUTILS_CONSOLE_OUTPUT_FORMAT"] = "[{severity}] [{name}]: {message}"
    return env


def write_params(path: Path, node: str, params: dict) -> Path:
    path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}))
    return path


def start_bridge(tmp: Path, domain: int, params: dict, name: str = "hardware_bridge",
                 prelude: str = ""):
    """The real node executable in its own process, parameters from a --params-file.
    `prelude`: Python run first in that process (e.g. to make IK slow for a test)."""
    pfile = write_params(tmp / f"{name}.yaml", name, params)
    log = open(tmp / f"{name}.log", "wb")
    code = (f"import sys\n{prelude}\nfrom parrot_bringup.hardware_bridge import main\n"
            f"sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--ros-args",
         "-r", f"__node:={name}", "--params-file", str(pfile)],
        env=ros_env(domain), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    proc.log_path = tmp / f"{name}.log"
    return proc


def stop_process(proc, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(pred, timeout: float, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    return pred()


class FakeArm:
    """The arm's topics and the test's crafted inputs, in one node on `domain`."""

    def __init__(self, domain: int, q=Q0, control_rate_hz: float = 10.0,
                 joint_states_hz: float = 50.0):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool, Int8
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from parrot_bringup import interfaces as itf

        self.itf, self.rclpy = itf, rclpy
        self.rate = control_rate_hz
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("fake_arm", context=self.ctx)
        n = self.node
        self.lock = threading.Lock()
        self.q = list(q)
        self.publish_joints = True
        self.publish_images = True
        self.gripper_position = None  # when set, joint_states carry the gripper's drive_joint
        self.twists, self.trajs, self.grips, self.diags = [], [], [], []
        self.arm_states = []
        self.servo_starts = 0
        self.pub_js = n.create_publisher(JointState, itf.TOPIC_JOINT_STATES, itf.image_qos("sensor"))
        self.pub_img = n.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("sensor"))
        self.pub_twist = n.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        self.pub_grip = n.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())
        self.pub_estop = n.create_publisher(Bool, itf.TOPIC_ESTOP, itf.estop_qos())
        rec = lambda store: (lambda m: self._record(store, m))  # noqa: E731
        n.create_subscription(TwistStamped, SERVO_TOPIC, rec(self.twists), itf.command_qos())
        n.create_subscription(JointTrajectory, TRAJ_TOPIC, rec(self.trajs), itf.command_qos())
        n.create_subscription(JointTrajectory, GRIPPER_TOPIC, rec(self.grips), itf.command_qos())
        # the fake MoveIt Servo: start service and status topic as xarm_ros2's servo_server
        n.create_service(Trigger, SERVO_START, self._on_servo_start)
        self.pub_servo_status = n.create_publisher(Int8, SERVO_STATUS, 10)
        n.create_subscription(DiagnosticArray, itf.TOPIC_DIAGNOSTICS, rec(self.diags), 50)
        n.create_subscription(JointState, itf.TOPIC_ARM_STATE, rec(self.arm_states), itf.state_qos())
        self._img = np.zeros((48, 48, 3), np.uint8)
        self.last_image_ns = None
        self._last_command_ns = None
        n.create_timer(1.0 / joint_states_hz, self._tick_joints)
        n.create_timer(0.05, self._tick_image)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(n)
        self._spin = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_servo_start(self, request, response):
        self.servo_starts += 1
        response.success, response.message = True, "servo started (fake)"
        return response

    def _run(self):
        while self._spin and self.ctx.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _record(self, store, msg):
        with self.lock:
            store.append((time.monotonic(), msg))

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _tick_joints(self):
        if not self.publish_joints:
            return
        from sensor_msgs.msg import JointState
        msg = JointState(name=list(JOINTS), position=[float(v) for v in self.q])
        if self.gripper_position is not None:
            msg.name.append(self.itf.XARM_GRIPPER_JOINT)
            msg.position.append(float(self.gripper_position))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_js.publish(msg)

    def _tick_image(self):
        if self.publish_images:
            self.last_image_ns = self.now_ns()
            self.pub_img.publish(self.itf.numpy_to_image(self._img, self.last_image_ns))

    # ---- crafted inputs ------------------------------------------------------------------
    def command(self, action, stamp_ns: int | None = None, halves=("twist", "gripper")) -> float:
        """Publish a policy command (twist + gripper), stamped by default with the latest
        image, or with the time now when a command already answered that image (as a policy
        answers each image once). NaNs go out raw (no validation); `halves` sends only some of the two messages. Returns the
        monotonic send time."""
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import JointState
        from parrot_core.action_space import POS_SCALE_M, ROT_SCALE_RAD
        a = np.asarray(action, float)
        if stamp_ns is None:
            stamp_ns = self.last_image_ns or self.now_ns()
            if stamp_ns == self._last_command_ns:
                stamp_ns = self.now_ns()
        ns = self._last_command_ns = stamp_ns
        stamp = self.itf.ns_to_stamp(ns)
        tw = TwistStamped()
        tw.header.stamp = stamp
        tw.header.frame_id = "base_link"
        lin, ang = a[:3] * POS_SCALE_M * self.rate, a[3:6] * ROT_SCALE_RAD * self.rate
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = map(float, lin)
        tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = map(float, ang)
        gr = JointState(name=["gripper"], position=[float(a[6])])
        gr.header.stamp = stamp
        t = time.monotonic()
        if "twist" in halves:
            self.pub_twist.publish(tw)
        if "gripper" in halves:
            self.pub_grip.publish(gr)
        return t

    def command_until(self, action, pred, timeout: float = 5.0, period: float = 0.1):
        """Send `action` (stamped with a fresh image) every `period` s until pred() is truthy.
        On a loaded machine the bridge rightly refuses a first command whose joint states or
        image have not reached it yet (e.g. right after a reconfigure). Returns (monotonic time
        of the last send, pred's last value)."""
        deadline = time.monotonic() + timeout
        while True:
            wait_for(lambda: self.last_image_ns and self.now_ns() - self.last_image_ns < 60e6, 1)
            sent = self.command(action)
            got = wait_for(pred, period)
            if got or time.monotonic() > deadline:
                return sent, got

    def estop(self, pressed: bool) -> None:
        from std_msgs.msg import Bool
        self.pub_estop.publish(Bool(data=bool(pressed)))

    def call(self, srv_type, name: str, request, timeout: float = 5.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
            fut = client.call_async(request)
            end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < end:
                time.sleep(0.01)
            assert fut.done(), f"{name}: no answer"
            return fut.result()
        finally:
            self.node.destroy_client(client)

    def reset_estop(self):
        from std_srvs.srv import Trigger
        from parrot_bringup import interfaces as itf
        return self.call(Trigger, "/" + itf.SERVICE_ESTOP_RESET, Trigger.Request())

    def lifecycle(self, transition: str, node: str = "hardware_bridge") -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        req = ChangeState.Request()
        req.transition.id = {"configure": Transition.TRANSITION_CONFIGURE,
                             "activate": Transition.TRANSITION_ACTIVATE,
                             "deactivate": Transition.TRANSITION_DEACTIVATE,
                             "cleanup": Transition.TRANSITION_CLEANUP}[transition]
        return self.call(ChangeState, f"/{node}/change_state", req).success

    def lifecycle_state(self, node: str = "hardware_bridge") -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(GetState, f"/{node}/get_state", GetState.Request()).current_state.label

    def state_or_none(self, node: str = "hardware_bridge") -> str | None:
        """The lifecycle state, or None while the node's services are not up yet."""
        try:
            return self.lifecycle_state(node)
        except AssertionError:
            return None

    def set_params(self, params: dict, node: str = "hardware_bridge") -> None:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        req = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in params.items()])
        res = self.call(SetParameters, f"/{node}/set_parameters", req)
        assert all(r.successful for r in res.results), res

    def wait_matched(self, motion_topic: str, timeout: float = 10.0) -> bool:
        """Until the bridge's command subscriptions and its motion publisher are matched."""
        return bool(wait_for(lambda: self.pub_twist.get_subscription_count() >= 1
                             and self.pub_grip.get_subscription_count() >= 1
                             and self.node.count_publishers(motion_topic) >= 1, timeout, 0.05))

    # ---- observations --------------------------------------------------------------------
    def clear(self) -> None:
        with self.lock:
            for store in (self.twists, self.trajs, self.grips, self.diags):
                store.clear()

    def snapshot(self, store):
        with self.lock:
            return list(store)

    def diag_texts(self) -> list[str]:
        out = []
        for _, arr in self.snapshot(self.diags):
            for st in arr.status:
                vals = " ".join(f"{kv.key}={kv.value}" for kv in st.values)
                out.append(f"{st.message} | {vals}")
        return out

    def close(self) -> None:
        self._spin = False
        self.thread.join(2)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)


def twist_vec(msg) -> np.ndarray:
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])
