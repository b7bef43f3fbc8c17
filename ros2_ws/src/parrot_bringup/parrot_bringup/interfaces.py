"""The one place for Parrot's ROS 2 interface: topic names, QoS profiles, and conversions.

Every node, the recorder, `bag2dataset` and the tests import names and conversions from
here, so a topic or a unit changes in one file. Standard message types only:

| what                    | topic (relative)          | type                        | QoS              |
|-------------------------|---------------------------|-----------------------------|------------------|
| camera image            | `camera/image_raw`        | sensor_msgs/Image rgb8/bgr8 | sensor data*     |
| end-effector delta      | `parrot/cmd/twist`        | geometry_msgs/TwistStamped  | reliable, 100    |
| gripper command         | `parrot/cmd/gripper`      | sensor_msgs/JointState      | reliable, 100    |
| episode start/end       | `parrot/episode/event`    | std_msgs/String (JSON)      | reliable, latched|
| per-step episode state  | `parrot/episode/state`    | std_msgs/String (JSON)      | reliable, 100    |
| recorder ready          | `parrot/recorder/status`  | std_msgs/String (JSON)      | reliable, latched|
| episode on disk         | `parrot/recorder/saved`   | std_msgs/String (JSON)      | reliable, latched|
| privileged sim state    | `parrot/sim/info`         | std_msgs/String (JSON)      | reliable, 10     |
| reset                   | `parrot/sim/reset`        | std_srvs/Trigger (service)  |                  |
| joystick (teleop)       | `joy`                     | sensor_msgs/Joy             | sensor data      |
| e-stop (hardware)       | `parrot/estop`            | std_msgs/Bool (True=stop)   | reliable, latched|
| e-stop reset            | `parrot/estop/reset`      | std_srvs/Trigger (service)  |                  |
| arm joint states        | `joint_states`            | sensor_msgs/JointState      | sensor data      |
| arm state (for a prior) | `parrot/arm/state`        | sensor_msgs/JointState      | reliable, 100    |
| bridge stops/status     | `/diagnostics`            | diagnostic_msgs/DiagnosticArray | reliable, 10 |
| bridge -> MoveIt Servo  | `/servo_server/delta_twist_cmds` | geometry_msgs/TwistStamped | reliable, 10  |
| bridge -> Servo start   | `/servo_server/start_servo` | std_srvs/Trigger (service) |                  |
| Servo status -> bridge  | `/servo_server/status`    | std_msgs/Int8               | default          |
| bridge -> joint traj.   | `/xarm6_traj_controller/joint_trajectory` | trajectory_msgs/JointTrajectory | reliable, 10 |
| bridge -> gripper       | `/xarm_gripper_traj_controller/joint_trajectory` | trajectory_msgs/JointTrajectory (`drive_joint`) | reliable, 10 |

(the bridge's names are `hardware_bridge` parameters; these are the defaults, as xarm_ros2 names
them; `gripper_output: float64_array` publishes std_msgs/Float64MultiArray to a forward command
controller instead)

(*) `image_qos: reliable` switches image publishers/subscribers to reliable, for lock-step
collection where no image may be lost. A best-effort subscriber matches either publisher.

Units of a command (the convention MoveIt Servo consumes): `twist.linear` is the
end-effector position delta of one control step divided by the step period, in m/s, and
`twist.angular` the roll/pitch/yaw delta per period in rad/s, both in `command_frame`
(default `base_link`, the arm base = twin world frame). So `linear = a[:3] * POS_SCALE_M *
control_rate_hz`. The gripper is `JointState(name=["gripper"], position=[a[6]])`, the
normalised action value in [-1, 1] (> +0.5 opens, < -0.5 closes, else hold), not a joint
angle. Both messages carry `header.stamp` = the stamp of the image the command was computed
from; that stamp is how the twin, the recorder and `bag2dataset` pair them.

The arm state a state-conditioned prior reads (parrot_core.arm_state) is a JointState whose
`name` is `[tcp_x_m, tcp_y_m, tcp_z_m, gripper_closed]` and `position` the values, stamped
with the time it was measured: the twin publishes it with each image's stamp, the
`hardware_bridge` with each `joint_states` stamp (FK of the arm). A consumer pairs an image
with the first state stamped at or after it (ArmStateBuffer), so it acts on where the arm
was when the image was taken, never on a guess.

JSON topics carry `stamp_ns` (the image stamp as integer nanoseconds) where they refer to a
step.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

import numpy as np

from parrot_core.action_space import (POS_SCALE_M, ROT_SCALE_RAD, ActionOutOfRangeError,
                                       validate_action)
from parrot_core.arm_state import STATE_NAMES, ArmStateError, validate_state
from parrot_core.camera import resize_for_model  # noqa: F401 - the nodes' resize, one for all

# ---- names ---------------------------------------------------------------------------
TOPIC_IMAGE = "camera/image_raw"
TOPIC_TWIST = "parrot/cmd/twist"
TOPIC_GRIPPER = "parrot/cmd/gripper"
TOPIC_EPISODE_EVENT = "parrot/episode/event"
TOPIC_EPISODE_STATE = "parrot/episode/state"
TOPIC_RECORDER_STATUS = "parrot/recorder/status"
TOPIC_RECORDER_SAVED = "parrot/recorder/saved"
TOPIC_SIM_INFO = "parrot/sim/info"
TOPIC_JOY = "joy"
SERVICE_RESET = "parrot/sim/reset"
# An operator's episode (teleop): std_srvs/Trigger services of a twin with operator_episodes,
# or of whatever runs episodes on the arm. Discard ends it unrecorded and stages it again.
SERVICE_EPISODE_START = "parrot/episode/start"
SERVICE_EPISODE_SUCCESS = "parrot/episode/end_success"
SERVICE_EPISODE_FAILURE = "parrot/episode/end_failure"
SERVICE_EPISODE_DISCARD = "parrot/episode/discard"
TOPIC_TELEOP_KEY = "parrot/teleop/key"  # std_msgs/String: keys for teleop (a pedal, a script)
# the end services and the label each gives the episode (None: discarded)
EPISODE_END_LABELS = {SERVICE_EPISODE_SUCCESS: True, SERVICE_EPISODE_FAILURE: False,
                      SERVICE_EPISODE_DISCARD: None}
TOPIC_ESTOP = "parrot/estop"
SERVICE_ESTOP_RESET = "parrot/estop/reset"
TOPIC_JOINT_STATES = "joint_states"
TOPIC_ARM_STATE = "parrot/arm/state"
TOPIC_DIAGNOSTICS = "/diagnostics"
# The arm side as xarm_ros2 runs it: MoveIt Servo as `servo_server` (xarm_moveit_servo),
# `xarm6_traj_controller` and `xarm_gripper_traj_controller` (joint `drive_joint`).
TOPIC_SERVO_TWIST = "/servo_server/delta_twist_cmds"
SERVICE_SERVO_START = "/servo_server/start_servo"
TOPIC_SERVO_STATUS = "/servo_server/status"
TOPIC_JOINT_TRAJECTORY = "/xarm6_traj_controller/joint_trajectory"
TOPIC_GRIPPER_TRAJECTORY = "/xarm_gripper_traj_controller/joint_trajectory"
XARM_GRIPPER_JOINT = "drive_joint"
TOPIC_GRIPPER_COMMANDS = "/xarm_gripper_controller/commands"  # a forward command controller
# MoveIt Servo's status (std_msgs/Int8 on ~/status, the Servo xarm_ros2 launches); the
# halting ones stop the arm on Servo's side and are reported as errors.
SERVO_STATUS = {-1: "INVALID", 0: "NO_WARNING", 1: "DECELERATE_FOR_APPROACHING_SINGULARITY",
                2: "HALT_FOR_SINGULARITY", 3: "DECELERATE_FOR_COLLISION",
                4: "HALT_FOR_COLLISION", 5: "JOINT_BOUND", 6: "DECELERATE_FOR_LEAVING_SINGULARITY"}
SERVO_HALTING = {-1, 2, 4, 5}
GRIPPER_JOINT = "gripper"
DEFAULT_COMMAND_FRAME = "base_link"
DEFAULT_CAMERA_FRAME = "camera"

# Message type names as rosbag2/rosbags spell them.
MSGTYPE = {
    TOPIC_IMAGE: "sensor_msgs/msg/Image",
    TOPIC_TWIST: "geometry_msgs/msg/TwistStamped",
    TOPIC_GRIPPER: "sensor_msgs/msg/JointState",
    TOPIC_EPISODE_EVENT: "std_msgs/msg/String",
    TOPIC_EPISODE_STATE: "std_msgs/msg/String",
    TOPIC_SIM_INFO: "std_msgs/msg/String",
    TOPIC_ARM_STATE: "sensor_msgs/msg/JointState",
}
# What the recorder writes by default (and bag2dataset reads).
RECORDED_TOPICS = [TOPIC_IMAGE, TOPIC_TWIST, TOPIC_GRIPPER, TOPIC_EPISODE_EVENT,
                   TOPIC_EPISODE_STATE, TOPIC_ARM_STATE]
# What an episode cannot do without: a recorder is ready once these have a publisher (the arm
# state is optional: bag2dataset then stores the episode without states).
EPISODE_TOPICS = [TOPIC_IMAGE, TOPIC_TWIST, TOPIC_GRIPPER, TOPIC_EPISODE_EVENT,
                  TOPIC_EPISODE_STATE]

SUPPORTED_ENCODINGS = ("rgb8", "bgr8")


class InterfaceError(ValueError):
    """A message that does not follow Parrot's interface (encoding, size, fields)."""


class ImageFormatError(InterfaceError):
    """An image with an unsupported encoding or inconsistent/unexpected size."""


# ---- QoS (imported lazily so bag2dataset works without rclpy) ------------------------

IMAGE_QOS_KINDS = ("sensor", "reliable")


def image_qos(kind: str = "sensor"):
    """`sensor`: best effort, keep last 5 (sensor-data profile); `reliable`: keep last 100.

    The deep reliable queue lets a lock-step twin (100+ steps/s) run ahead of a recorder
    that stalls for a moment without losing an image.
    """
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    if kind == "sensor":
        return qos_profile_sensor_data
    if kind == "reliable":
        return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    raise InterfaceError(f"image_qos must be one of {', '.join(IMAGE_QOS_KINDS)}, got {kind!r}")


def command_qos():
    """Reliable, keep last 100 (a consumer that wants only the newest reads the newest)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def event_qos():
    """Latched: a recorder or driver that joins late still gets the last episode events."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def estop_qos():
    """Reliable and latched: a bridge that (re)starts after an e-stop still sees it."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def state_qos():
    """Episode state and the arm state: as commands (reliable, keep last 100)."""
    return command_qos()


def info_qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


# ---- stamps --------------------------------------------------------------------------

def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# ---- images --------------------------------------------------------------------------

def image_to_numpy(msg, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image (or a rosbags-deserialized one) -> (H, W, 3) uint8 RGB.

    Accepts rgb8 and bgr8 (bgr8 is converted), with row padding (`step` > 3 * width).
    Raises ImageFormatError naming what was expected: another encoding, a data length
    that does not match height/step, or a size other than `expected_size` (H, W).
    """
    enc = str(msg.encoding).lower()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if enc not in SUPPORTED_ENCODINGS:
        raise ImageFormatError(
            f"image encoding {msg.encoding!r} not supported: expected one of "
            f"{', '.join(SUPPORTED_ENCODINGS)} (3 x uint8 per pixel)")
    if h <= 0 or w <= 0:
        raise ImageFormatError(f"image size {h}x{w} is empty: expected height, width > 0")
    if step < 3 * w:
        raise ImageFormatError(
            f"image step {step} is smaller than 3 * width = {3 * w} for a {h}x{w} {enc} image")
    data = msg.data
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, np.ndarray))
                        else data, dtype=np.uint8)
    if buf.size != h * step:
        raise ImageFormatError(
            f"image data has {buf.size} bytes, expected height * step = {h} * {step} = "
            f"{h * step} for a {h}x{w} {enc} image")
    if expected_size is not None and tuple(expected_size) != (h, w):
        raise ImageFormatError(
            f"image is {h}x{w}, expected {expected_size[0]}x{expected_size[1]} (HxW)")
    img = buf.reshape(h, step)[:, : 3 * w].reshape(h, w, 3)
    if enc == "bgr8":
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


def numpy_to_image(img: np.ndarray, stamp_ns: int, frame_id: str = DEFAULT_CAMERA_FRAME,
                   encoding: str = "rgb8"):
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image with the given stamp (rgb8 or bgr8)."""
    from sensor_msgs.msg import Image
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ImageFormatError(f"expected an (H, W, 3) uint8 RGB array, got {img.shape} {img.dtype}")
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageFormatError(f"encoding must be one of {SUPPORTED_ENCODINGS}, got {encoding!r}")
    if encoding == "bgr8":
        img = img[:, :, ::-1]
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = np.ascontiguousarray(img).tobytes()
    return msg


# ---- commands ------------------------------------------------------------------------

def action_to_msgs(action, stamp_ns: int, control_rate_hz: float,
                   frame_id: str = DEFAULT_COMMAND_FRAME):
    """7D action -> (TwistStamped, JointState), both stamped with the image stamp.

    The action goes through parrot_core.action_space.validate_action (shape, NaN/inf,
    clip) first; InvalidActionError propagates, so no message is built for a bad action.
    """
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import JointState
    if control_rate_hz <= 0:
        raise InterfaceError(f"control_rate_hz must be > 0, got {control_rate_hz}")
    a = validate_action(action).astype(np.float64)
    stamp = ns_to_stamp(stamp_ns)
    twist = TwistStamped()
    twist.header.stamp = stamp
    twist.header.frame_id = frame_id
    lin = a[:3] * POS_SCALE_M * control_rate_hz
    ang = a[3:6] * ROT_SCALE_RAD * control_rate_hz
    twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in lin)
    twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (float(v) for v in ang)
    grip = JointState()
    grip.header.stamp = stamp
    grip.header.frame_id = frame_id
    grip.name = [GRIPPER_JOINT]
    grip.position = [float(a[6])]
    return twist, grip


def msgs_to_action(twist, gripper, control_rate_hz: float) -> np.ndarray:
    """Inverse of action_to_msgs -> validated float32 (7,) action (exact round trip).

    A command beyond the action range (a twist faster than one full-scale step per period) is
    refused with ActionOutOfRangeError, never clipped: clipping changes its size or direction."""
    if control_rate_hz <= 0:
        raise InterfaceError(f"control_rate_hz must be > 0, got {control_rate_hz}")
    t = twist.twist
    with np.errstate(over="ignore"):  # an absurd twist overflows to inf: refused below
        lin = np.array([t.linear.x, t.linear.y, t.linear.z]) / (POS_SCALE_M * control_rate_hz)
        ang = np.array([t.angular.x, t.angular.y, t.angular.z]) / (ROT_SCALE_RAD * control_rate_hz)
    try:
        return validate_action(np.concatenate([lin, ang, [gripper_value(gripper)]]), "command",
                               strict=True)
    except ActionOutOfRangeError as e:
        raise ActionOutOfRangeError(
            f"{e}; at {control_rate_hz:g} Hz a command moves at most {POS_SCALE_M * control_rate_hz:.2f} "
            f"m/s and {ROT_SCALE_RAD * control_rate_hz:.2f} rad/s per axis, the gripper value is "
            f"in [-1, 1]") from None


def gripper_value(msg) -> float:
    names = list(msg.name)
    if GRIPPER_JOINT in names:
        i = names.index(GRIPPER_JOINT)
    elif len(names) == 0 and len(msg.position) == 1:
        i = 0
    else:
        raise InterfaceError(f"gripper command must name joint {GRIPPER_JOINT!r}, got {names}")
    if len(msg.position) <= i:
        raise InterfaceError("gripper command has no position value")
    return float(msg.position[i])


class CommandAssembler:
    """Joins the twist and gripper halves of a command by their shared stamp.

    `add_twist`/`add_gripper` return (stamp_ns, action) once both halves of a stamp are in,
    else None. Halves older than the newest `keep` stamps are dropped.
    """

    def __init__(self, control_rate_hz: float, keep: int = 64):
        self.rate = float(control_rate_hz)
        self.keep = keep
        self._twist: dict[int, object] = {}
        self._grip: dict[int, object] = {}

    def add_twist(self, msg):
        return self._add(self._twist, self._grip, msg, twist_first=True)

    def add_gripper(self, msg):
        return self._add(self._grip, self._twist, msg, twist_first=False)

    def _add(self, mine, other, msg, twist_first):
        ns = stamp_to_ns(msg.header.stamp)
        if ns in other:
            partner = other.pop(ns)
            twist, grip = (msg, partner) if twist_first else (partner, msg)
            return ns, msgs_to_action(twist, grip, self.rate)
        mine[ns] = msg
        while len(mine) > self.keep:
            mine.pop(min(mine))
        return None


# ---- arm state -----------------------------------------------------------------------

def arm_state_msg(state, stamp_ns: int, frame_id: str = DEFAULT_COMMAND_FRAME):
    """(4,) arm state -> sensor_msgs/JointState named STATE_NAMES (see the module docstring)."""
    from sensor_msgs.msg import JointState
    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.name = list(STATE_NAMES)
    msg.position = [float(v) for v in validate_state(state)]
    return msg


def arm_state_from_msg(msg) -> tuple[int, np.ndarray]:
    """-> (stamp_ns, (4,) float32 state); InterfaceError for other names or NaN/inf values."""
    names = list(msg.name)
    if names != list(STATE_NAMES) or len(msg.position) != len(STATE_NAMES):
        raise InterfaceError(f"arm state must name {list(STATE_NAMES)} with one position each, "
                             f"got names {names} and {len(msg.position)} positions")
    try:
        state = validate_state(np.asarray(msg.position, dtype=np.float64))
    except ArmStateError as e:
        raise InterfaceError(str(e)) from None
    return stamp_to_ns(msg.header.stamp), state


class ArmStateBuffer:
    """The recent arm states, to pair each image with the state the arm was in.

    ``for_image(stamp)`` returns the first state stamped at or after the image, if it is at
    most ``max_skew_s`` later; None while it has not arrived yet (ask again when the next
    state comes); raises InterfaceError when the states jump past the image by more than
    ``max_skew_s`` (joint states that stalled around the image: no state to act on).
    """

    def __init__(self, max_skew_s: float = 0.1, keep: int | None = 256):
        self.max_skew_ns = int(max_skew_s * 1e9)
        self._states: deque = deque(maxlen=keep)

    def add(self, stamp_ns: int, state: np.ndarray) -> None:
        if self._states and stamp_ns < self._states[-1][0]:  # out of order: keep them sorted
            items = sorted([*self._states, (stamp_ns, state)], key=lambda item: item[0])
            self._states = deque(items, maxlen=self._states.maxlen)
        else:
            self._states.append((stamp_ns, state))

    def for_image(self, stamp_ns: int) -> np.ndarray | None:
        for state_ns, state in self._states:
            if state_ns >= stamp_ns:
                if state_ns - stamp_ns > self.max_skew_ns:
                    raise InterfaceError(
                        f"no arm state within {self.max_skew_ns * 1e-9:g} s of image {stamp_ns}: "
                        f"the next one is {(state_ns - stamp_ns) * 1e-9:.3f} s later")
                return state
        return None


# ---- JSON topics ---------------------------------------------------------------------

def to_jsonable(value):
    """Encode numpy arrays/scalars losslessly: arrays keep dtype and shape."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype),
                "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [to_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__npscalar__" in value:
            return np.asarray(value["__npscalar__"], dtype=value["dtype"])[()]
        if "__tuple__" in value:
            return tuple(from_jsonable(v) for v in value["__tuple__"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def json_msg(payload: dict):
    from std_msgs.msg import String
    return String(data=json.dumps(to_jsonable(payload)))


def parse_json_msg(msg) -> dict:
    try:
        return from_jsonable(json.loads(msg.data))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise InterfaceError(f"not a Parrot JSON message: {e}") from e


class ReadyRecorders:
    """The recorders that said they are ready (latched `parrot/recorder/status`), for a node
    that must not start an episode before they can record its first image."""

    def __init__(self, node):
        from std_msgs.msg import String
        self.names: set[str] = set()
        self._logger = node.get_logger()
        node.create_subscription(String, TOPIC_RECORDER_STATUS, self._on_status, event_qos())

    def _on_status(self, msg) -> None:
        try:
            status = parse_json_msg(msg)
        except InterfaceError as e:
            self._logger.error(f"bad recorder status: {e}")
            return
        if status.get("ready"):
            self.names.add(str(status.get("recorder")))

    def waiting_for(self, wanted: int) -> str | None:
        """Why an episode cannot start yet, or None."""
        if len(self.names) >= wanted:
            return None
        return (f"waiting for {wanted} recorder(s) to be ready ({len(self.names)} so far): "
                f"its first image would not be recorded")


def create_episode_services(node, on_start, on_end) -> None:
    """The operator's episode services on `node` (the twin with operator_episodes, the arm's
    `episodes` node): on_start(response) for start, on_end(response, label) for the three
    ends, label True / False / None (discarded). Both fill and return the Trigger response."""
    from std_srvs.srv import Trigger
    node.create_service(Trigger, SERVICE_EPISODE_START, lambda request, response: on_start(response))
    for service, label in EPISODE_END_LABELS.items():
        node.create_service(Trigger, service,
                            lambda request, response, label=label: on_end(response, label))


@dataclass
class EpisodeEvent:
    """`parrot/episode/event` payload. kind: start | end.

    start: episode, seed, task, objects, object_pool, first_stamp_ns
    end:   episode, success, steps, return, last_stamp_ns (stamp of the last step's image)
    """

    kind: str
    episode: int
    fields: dict

    def to_msg(self):
        return json_msg({"event": self.kind, "episode": self.episode, **self.fields})

    @classmethod
    def from_payload(cls, payload: dict) -> "EpisodeEvent":
        if payload.get("event") not in ("start", "end") or "episode" not in payload:
            raise InterfaceError(f"not an episode event: {payload}")
        fields = {k: v for k, v in payload.items() if k not in ("event", "episode")}
        return cls(payload["event"], int(payload["episode"]), fields)
