"""The safety rules every command passes through, in sim and on hardware alike.

Pure logic, no ROS: the `hardware_bridge` and `sim_twin` nodes feed it commands, images,
clock ticks and e-stop messages, and move the arm only with what it returns. The safe
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
- workspace:        a step that would leave the workspace box stops motion
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

from dataclasses import dataclass, field

import numpy as np

from parrot_core.action_space import (ActionOutOfRangeError, InvalidActionError, to_metric,
                                       validate_action)


@dataclass
class SafetyConfig:
    workspace_min: tuple[float, float, float] = (0.15, -0.35, 0.0)  # metres, arm base frame
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.55)
    # Per control step. Above the largest valid command (a full-scale diagonal step is
    # sqrt(3) * POS_SCALE_M = 0.052 m, sqrt(3) * ROT_SCALE_RAD = 0.26 rad), so they only
    # fire when the command source or the scaling is misconfigured.
    max_translation_m: float = 0.06
    max_rotation_rad: float = 0.30
    # Physical speed limits, whatever the control rate: at 10 Hz a full-scale diagonal step
    # is 0.52 m/s and 2.6 rad/s; at 30 Hz the same action is three times as fast.
    max_speed_m_s: float = 0.6
    max_angular_speed_rad_s: float = 3.0
    command_timeout_s: float = 0.5
    image_timeout_s: float = 0.5
    max_image_age_s: float = 0.5
    max_image_future_s: float = 0.05  # clock skew tolerated between camera and this node
    # True: a command before the first image stops (hardware: never move blind).
    require_image: bool = False


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
                      ee_pos=None) -> SafetyDecision:
        """Decide what a 7D policy command may do. `image_stamp`: when the image it was
        computed from was taken; `ee_pos`: current end-effector position (for the box)."""
        if self.estopped:
            return _stop("estop", f"latched: {self._estop_reason}")
        try:
            pos, rot, grip = to_metric(validate_action(action, "command", strict=True))
        except ActionOutOfRangeError as e:
            return _stop("out_of_range", str(e))
        except InvalidActionError as e:
            return _stop("nan_or_inf", str(e))
        return self._check_motion(pos, rot, grip, now, image_stamp, ee_pos)

    def check_delta(self, pos_delta, rot_delta, gripper: int, now: float,
                    image_stamp: float | None = None, ee_pos=None) -> SafetyDecision:
        """Like check_command, for a command already in metres/radians per step."""
        if self.estopped:
            return _stop("estop", f"latched: {self._estop_reason}")
        pos, rot = np.asarray(pos_delta, float), np.asarray(rot_delta, float)
        if pos.shape != (3,) or rot.shape != (3,) or not (np.all(np.isfinite(pos)) and
                                                          np.all(np.isfinite(rot))):
            return _stop("nan_or_inf", f"bad delta pos={pos.tolist()} rot={rot.tolist()}")
        return self._check_motion(pos, rot, int(gripper), now, image_stamp, ee_pos)

    def _check_motion(self, pos, rot, grip, now, image_stamp, ee_pos) -> SafetyDecision:
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
            if np.any(target < lo) or np.any(target > hi):
                return _stop("workspace", f"target {np.round(target, 3).tolist()} outside box "
                                          f"{np.round(cfg.workspace_min, 3).tolist()}.."
                                          f"{np.round(cfg.workspace_max, 3).tolist()}")
        return SafetyDecision(pos_delta=pos, rot_delta=rot, gripper=grip)

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


# ---- ROS parameters (declared as `safety.<field>` by the nodes that apply commands) ------

def parameter_defaults(config: SafetyConfig | None = None) -> dict:
    """`safety.*` parameter names and defaults, for `declare()` in the bridge and the twin."""
    c = config or SafetyConfig()
    return {
        "safety.workspace_min": [float(v) for v in c.workspace_min],
        "safety.workspace_max": [float(v) for v in c.workspace_max],
        "safety.max_translation_m": float(c.max_translation_m),
        "safety.max_rotation_rad": float(c.max_rotation_rad),
        "safety.max_speed_m_s": float(c.max_speed_m_s),
        "safety.max_angular_speed_rad_s": float(c.max_angular_speed_rad_s),
        "safety.command_timeout_s": float(c.command_timeout_s),
        "safety.image_timeout_s": float(c.image_timeout_s),
        "safety.max_image_age_s": float(c.max_image_age_s),
        "safety.max_image_future_s": float(c.max_image_future_s),
        "safety.require_image": bool(c.require_image),
    }


def config_from_parameters(p: dict) -> SafetyConfig:
    """SafetyConfig from the declared `safety.*` parameter values."""
    return SafetyConfig(
        workspace_min=tuple(float(v) for v in p["safety.workspace_min"]),
        workspace_max=tuple(float(v) for v in p["safety.workspace_max"]),
        max_translation_m=float(p["safety.max_translation_m"]),
        max_rotation_rad=float(p["safety.max_rotation_rad"]),
        max_speed_m_s=float(p["safety.max_speed_m_s"]),
        max_angular_speed_rad_s=float(p["safety.max_angular_speed_rad_s"]),
        command_timeout_s=float(p["safety.command_timeout_s"]),
        image_timeout_s=float(p["safety.image_timeout_s"]),
        max_image_age_s=float(p["safety.max_image_age_s"]),
        max_image_future_s=float(p["safety.max_image_future_s"]),
        require_image=bool(p["safety.require_image"]))
