"""The safety rules every command passes through, in sim and on hardware alike.

Pure logic, no ROS: the `hardware_bridge` and `sim_twin` nodes feed it commands, images,
clock ticks and e-stop messages, and move the arm only with what it returns; the twin's
`ParrotEnv` runs it on every step too (no clock there: the motion rules only), so collection
and RL see a refusal where the arm would refuse. The safe
reaction to anything unexpected is to stop: every rule, when triggered, returns a zero
motion together with the reason, so the node can log it and publish a diagnostic.

Rules:
- nan_or_inf:       a command with NaN/inf or the wrong shape is never applied
- out_of_range:     an action outside [-1, 1] is refused, not clipped (clipping would change
                    its size or direction)
- estop:            an e-stop latches until `reset_estop()`; nothing moves meanwhile
- translation_limit / rotation_limit: a per-step delta above the limit stops motion
                    (it means the command source is misconfigured, so we don't guess)
- speed_limit:      the same in physical units, m/s and rad/s at the filter's control rate,
                    so raising the rate cannot raise the arm's speed
- workspace:        a step that would leave the workspace box stops motion (from outside the
                    box, only steps back towards it pass)
- orientation_limit: a step that would tilt the tool more than `max_tilt_rad` (roll or pitch)
                    from pointing straight down, or turn it more than `max_yaw_rad` from the
                    reference yaw, stops motion: the twin's own limits, so a policy pretrained
                    there is never refused on the arm for a pose the twin allowed
- invalid_joint_state: a TCP position that is not finite (from a bad joint state) stops
                    motion: NaN compares False, so the box check alone would let it through
- stale_command:    no fresh command within `command_timeout_s` -> zero motion (watchdog)
- stale_image:      no image within `image_timeout_s` (or none yet, with `require_image`), or
                    the command was computed from an image older than `max_image_age_s` ->
                    zero motion
- future_stamp:     a command stamped more than `max_image_future_s` ahead of now (a clock or
                    stamping fault: its age cannot be judged) -> zero motion
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from parrot_core.action_space import (ActionOutOfRangeError, InvalidActionError, to_metric,
                                       validate_action)


def _rule(default, description: str, value_range: tuple[float, float] | None = None):
    """A SafetyConfig field with what its ROS parameter says about it (parameter_docs)."""
    return field(default=default, metadata={"description": description, "range": value_range})


@dataclass
class SafetyConfig:
    # metres, arm base frame (TCP): the twin's reach (sim/env.py keeps its TCP target inside),
    # so a policy pretrained there is refused on the arm where the twin refused it
    workspace_min: tuple[float, float, float] = _rule(
        (0.22, -0.26, 0.015), "workspace box, lower corner [x, y, z] (m, base frame, TCP)")
    workspace_max: tuple[float, float, float] = _rule(
        (0.60, 0.26, 0.35), "workspace box, upper corner [x, y, z] (m, base frame, TCP)")
    # Per control step. Above the largest valid command (a full-scale diagonal step is
    # sqrt(3) * POS_SCALE_M = 0.052 m, sqrt(3) * ROT_SCALE_RAD = 0.26 rad), so they only
    # fire when the command source or the scaling is misconfigured.
    max_translation_m: float = _rule(0.06, "largest TCP translation per control step (m)",
                                     (0.0, 1.0))
    max_rotation_rad: float = _rule(0.30, "largest TCP rotation per control step (rad)",
                                    (0.0, math.pi))
    # Physical speed limits, whatever the control rate: at 10 Hz a full-scale diagonal step
    # is 0.52 m/s and 2.6 rad/s; at 30 Hz the same action is three times as fast.
    max_speed_m_s: float = _rule(0.6, "largest TCP speed (m/s), whatever the control rate",
                                 (0.0, 5.0))
    max_angular_speed_rad_s: float = _rule(3.0, "largest TCP angular speed (rad/s)", (0.0, 20.0))
    command_timeout_s: float = _rule(0.5, "no fresh command for this long: the arm stops (s)",
                                     (0.01, 10.0))
    image_timeout_s: float = _rule(0.5, "no image for this long: the arm stops (s)", (0.01, 10.0))
    max_image_age_s: float = _rule(
        0.5, "a command computed from an older image is refused (s)", (0.01, 10.0))
    max_image_future_s: float = _rule(  # clock skew tolerated between camera and this node
        0.05, "a command stamped further ahead of now is refused (s, clock skew)", (0.0, 1.0))
    # Tool orientation, as roll/pitch/yaw of the rotation from `reference_rpy` (the tool
    # pointing straight down, sim/robot.py DOWN_EULER) in the base frame: the twin's limits.
    max_tilt_rad: float = _rule(0.6, "largest roll or pitch away from reference_rpy (rad)",
                                (0.0, math.pi))
    max_yaw_rad: float = _rule(math.pi / 2, "largest yaw away from reference_rpy (rad)",
                               (0.0, math.pi))
    reference_rpy: tuple[float, float, float] = _rule(
        (math.pi, 0.0, 0.0), "tool orientation the tilt and yaw limits are measured from "
                             "(roll, pitch, yaw in rad; default: pointing straight down)")
    # True: a command before the first image stops (hardware: never move blind).
    require_image: bool = _rule(False, "refuse every command until the first image arrived")


@dataclass
class SafetyDecision:
    """What to do with the arm now: move by (pos_delta, rot_delta, gripper) or stop."""

    pos_delta: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rot_delta: np.ndarray = field(default_factory=lambda: np.zeros(3))
    gripper: int = 0  # +1 open, -1 close, 0 hold
    stop_reason: str | None = None  # rule name, None when the command passed
    detail: str = ""

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None


def _stop(reason: str, detail: str) -> SafetyDecision:
    return SafetyDecision(stop_reason=reason, detail=detail)


def refused_command(error: ValueError) -> SafetyDecision:
    """The stop for a command that could not even be assembled into an action: beyond the
    action range (ActionOutOfRangeError) or malformed (any other interface ValueError)."""
    if isinstance(error, ActionOutOfRangeError):
        return _stop("out_of_range", str(error))
    return _stop("nan_or_inf", f"malformed command: {error}")


class SafetyFilter:
    """Stateful checker: one per arm. Times are seconds on one clock (ROS time)."""

    def __init__(self, config: SafetyConfig | None = None, control_rate_hz: float = 10.0):
        if not control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz}")
        self.config = config or SafetyConfig()
        self.rate = float(control_rate_hz)  # a per-step delta times this is a speed
        self._estop_reason: str | None = None
        self._last_command_time: float | None = None
        self._last_image_time: float | None = None

    # -- inputs ---------------------------------------------------------------------------
    def on_image(self, now: float) -> None:
        self._last_image_time = now

    def estop(self, reason: str = "e-stop requested") -> SafetyDecision:
        self._estop_reason = reason
        return _stop("estop", reason)

    def reset_estop(self) -> None:
        self._estop_reason = None

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    def check_command(self, action, now: float, image_stamp: float | None = None,
                      ee_pos=None, ee_orn=None) -> SafetyDecision:
        """Decide what a 7D policy command may do. `image_stamp`: when the image it was
        computed from was taken; `ee_pos`, `ee_orn`: the TCP's current position (for the box)
        and quaternion (x, y, z, w; for the orientation limits)."""
        if self.estopped:
            return _stop("estop", f"latched: {self._estop_reason}")
        try:
            pos, rot, grip = to_metric(validate_action(action, "command", strict=True))
        except ActionOutOfRangeError as e:
            return _stop("out_of_range", str(e))
        except InvalidActionError as e:
            return _stop("nan_or_inf", str(e))
        return self._check_motion(pos, rot, grip, now, image_stamp, ee_pos, ee_orn)

    def check_delta(self, pos_delta, rot_delta, gripper: int, now: float,
                    image_stamp: float | None = None, ee_pos=None, ee_orn=None) -> SafetyDecision:
        """Like check_command, for a command already in metres/radians per step."""
        if self.estopped:
            return _stop("estop", f"latched: {self._estop_reason}")
        pos, rot = np.asarray(pos_delta, float), np.asarray(rot_delta, float)
        if pos.shape != (3,) or rot.shape != (3,) or not (np.all(np.isfinite(pos)) and
                                                          np.all(np.isfinite(rot))):
            return _stop("nan_or_inf", f"bad delta pos={pos.tolist()} rot={rot.tolist()}")
        return self._check_motion(pos, rot, int(gripper), now, image_stamp, ee_pos, ee_orn)

    def _check_motion(self, pos, rot, grip, now, image_stamp, ee_pos, ee_orn) -> SafetyDecision:
        cfg = self.config
        self._last_command_time = now
        if image_stamp is not None and image_stamp - now > cfg.max_image_future_s:
            return _stop("future_stamp", f"command stamped {image_stamp - now:.3f} s in the future "
                                         f"(> {cfg.max_image_future_s} s): clock or stamping fault")
        stale = self._image_staleness(now, image_stamp)
        if stale:
            return _stop("stale_image", stale)
        step, turn_step = float(np.linalg.norm(pos)), float(np.linalg.norm(rot))
        if step > cfg.max_translation_m + 1e-9:
            return _stop("translation_limit", f"step {step:.3f} m > {cfg.max_translation_m:.3f} m")
        if turn_step > cfg.max_rotation_rad + 1e-9:
            return _stop("rotation_limit",
                         f"step {turn_step:.3f} rad > {cfg.max_rotation_rad:.3f} rad")
        speed, turn = step * self.rate, turn_step * self.rate
        if speed > cfg.max_speed_m_s + 1e-9 or turn > cfg.max_angular_speed_rad_s + 1e-9:
            return _stop("speed_limit", f"{speed:.3f} m/s, {turn:.3f} rad/s at {self.rate:g} Hz "
                                        f"(limits {cfg.max_speed_m_s} m/s, "
                                        f"{cfg.max_angular_speed_rad_s} rad/s)")
        if ee_pos is not None:
            ee = np.asarray(ee_pos, float)
            if ee.shape != (3,) or not np.all(np.isfinite(ee)):  # NaN compares False: fail closed
                return _stop("invalid_joint_state", f"TCP position {ee.tolist()} not finite")
            target = ee + pos
            lo, hi = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
            outside_after = np.maximum(lo - target, 0) + np.maximum(target - hi, 0)
            outside_now = np.maximum(lo - ee, 0) + np.maximum(ee - hi, 0)
            # outside, or further out than now on some axis: a TCP that is outside (a start
            # pose, a box changed at run time) may still move back towards the box
            if np.any((outside_after > 0) & (outside_after >= outside_now)):
                return _stop("workspace", f"target {np.round(target, 3).tolist()} outside box "
                                          f"{np.round(cfg.workspace_min, 3).tolist()}.."
                                          f"{np.round(cfg.workspace_max, 3).tolist()}")
        if ee_orn is not None:
            refused = self._orientation_refusal(ee_orn, rot)
            if refused:
                return refused
        return SafetyDecision(pos_delta=pos, rot_delta=rot, gripper=grip)

    def _orientation_refusal(self, ee_orn, rot) -> SafetyDecision | None:
        cfg = self.config
        q = np.asarray(ee_orn, float)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            return _stop("invalid_joint_state", f"TCP orientation {q.tolist()} is not a unit "
                                                f"quaternion")
        roll, pitch, yaw = orientation_from_reference(
            euler_matrix(rot) @ quaternion_matrix(q), cfg.reference_rpy)
        if max(abs(roll), abs(pitch)) > cfg.max_tilt_rad + 1e-9 or abs(yaw) > cfg.max_yaw_rad + 1e-9:
            return _stop("orientation_limit",
                         f"target roll {roll:.3f}, pitch {pitch:.3f}, yaw {yaw:.3f} rad from "
                         f"pointing down (limits tilt {cfg.max_tilt_rad:.3f}, yaw "
                         f"{cfg.max_yaw_rad:.3f} rad)")
        return None

    def _image_staleness(self, now: float, image_stamp: float | None) -> str:
        cfg = self.config
        if self._last_image_time is None and cfg.require_image:
            return "no image received yet"
        if self._last_image_time is not None and now - self._last_image_time > cfg.image_timeout_s:
            return f"no image for {now - self._last_image_time:.2f} s (> {cfg.image_timeout_s} s)"
        if image_stamp is not None and now - image_stamp > cfg.max_image_age_s:
            return (f"command computed from an image {now - image_stamp:.2f} s old "
                    f"(> {cfg.max_image_age_s} s)")
        return ""

    def check_watchdog(self, now: float) -> SafetyDecision | None:
        """Call on a timer: a stop decision when commands went stale, else None."""
        if self.estopped:
            return _stop("estop", f"latched: {self._estop_reason}")
        if self._last_command_time is None:
            return None  # nothing commanded yet, nothing moving
        age = now - self._last_command_time
        if age > self.config.command_timeout_s:
            return _stop("stale_command",
                         f"no command for {age:.2f} s (> {self.config.command_timeout_s} s)")
        return None


# ---- orientation: the same convention as PyBullet's Euler angles (R = Rz(yaw) Ry(pitch) Rx(roll))

def quaternion_matrix(q) -> np.ndarray:
    """Rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quaternion_from_rotation(r: np.ndarray) -> tuple[float, float, float, float]:
    """[x, y, z, w] of a rotation matrix (Shepperd's method: stable for every rotation)."""
    r = np.asarray(r, float)
    t = np.trace(r)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return tuple(float(v) for v in q / np.linalg.norm(q))


def euler_matrix(rpy) -> np.ndarray:
    """Rotation matrix of roll, pitch, yaw about the base's x, y, z axes."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def orientation_from_reference(rotation: np.ndarray, reference_rpy) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of the base-frame rotation taking the reference pose to `rotation`:
    what the twin accumulates as its target_rpy and limits."""
    d = rotation @ euler_matrix(reference_rpy).T
    pitch = -math.asin(max(-1.0, min(1.0, float(d[2, 0]))))
    return math.atan2(d[2, 1], d[2, 2]), pitch, math.atan2(d[1, 0], d[0, 0])


# ---- ROS parameters (declared as `safety.<field>` by the nodes that apply commands) ------

def parameter_defaults(config: SafetyConfig | None = None) -> dict:
    """`safety.<field>` parameter names and defaults of every SafetyConfig field, for
    `declare()` in the bridge and the twin (tuples as float lists: ROS double arrays)."""
    c = config or SafetyConfig()
    return {f"safety.{f.name}": _as_parameter(getattr(c, f.name)) for f in fields(SafetyConfig)}


def parameter_docs() -> dict:
    """`safety.<field>` -> (description, inclusive range or None) for the ROS descriptors."""
    return {f"safety.{f.name}": (f.metadata["description"], f.metadata["range"])
            for f in fields(SafetyConfig)}


def config_from_parameters(p: dict) -> SafetyConfig:
    """SafetyConfig from the declared `safety.*` parameter values, each converted to its
    field's type (the type of the field's default)."""
    default = SafetyConfig()
    return SafetyConfig(**{f.name: _from_parameter(p[f"safety.{f.name}"], getattr(default, f.name))
                           for f in fields(SafetyConfig)})


def _as_parameter(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return float(value)


def _from_parameter(value, like):
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, tuple):
        return tuple(float(v) for v in value)
    return float(value)
