"""A policy process killed while the arm moves: the bridge's watchdog stops the arm within
its timeout. Real processes: the policy node (onnxruntime, a tiny prior) drives the bridge
from the fake arm's camera images; the test SIGKILLs the policy node mid-motion."""

import signal
import time

import numpy as np
import pytest

from hardware_fakes import (SERVO_TOPIC, FakeArm, domain_for, start_bridge, stop_process,
                            twist_vec, wait_for)
from ros_helpers import export_tiny_prior, ros_env, start_node

from parrot_bringup import interfaces as itf

pytestmark = pytest.mark.ros

COMMAND_TIMEOUT = 0.4
WATCHDOG_HZ = 20.0


def test_killed_policy_node_leaves_the_arm_stopped_by_the_watchdog(tmp_path):
    domain = domain_for(__name__)
    prior = export_tiny_prior(tmp_path / "prior", image_size=32)
    bridge = start_bridge(tmp_path, domain, {
        "output_mode": "servo", "autostart": "activate", "control_rate_hz": 20.0,
        "watchdog_rate_hz": WATCHDOG_HZ,
        # a random prior's commands: any direction, so the box must not get in the way
        "safety": {"command_timeout_s": COMMAND_TIMEOUT, "workspace_min": [-2.0, -2.0, -2.0],
                   "workspace_max": [2.0, 2.0, 2.0], "max_speed_m_s": 2.0,
                   "max_angular_speed_rad_s": 10.0}})
    arm = FakeArm(domain, control_rate_hz=20.0)
    policy = None
    try:
        assert arm.wait_matched(SERVO_TOPIC, 20), bridge.log_path.read_text()
        policy = start_node("policy", {"mode": "prior", "prior_dir": str(prior),
                                       "control_rate_hz": 20.0}, ros_env(domain),
                            tmp_path / "policy.log")

        def moving(since=0.0):
            return [t for t, m in arm.snapshot(arm.twists) if t >= since and np.any(twist_vec(m))]
        assert wait_for(moving, 30), ((tmp_path / "policy.log").read_text()[-2000:] +
                                      bridge.log_path.read_text()[-2000:])
        assert wait_for(lambda: len(moving()) >= 5, 10), "the policy did not keep the arm moving"
        policy.send_signal(signal.SIGKILL)
        policy.wait()
        t_kill, kill_ns = time.monotonic(), arm.now_ns()
        stops = wait_for(lambda: [(t, m) for t, m in arm.snapshot(arm.twists)
                                  if t >= t_kill and not np.any(twist_vec(m))], 5)
        assert stops, f"no zero twist after the policy died: {arm.diag_texts()[-3:]}"
        received, stop = stops[0]
        # The bridge's promise is when it *sends* the stop (the twist's stamp, the bridge's
        # clock at publish): timeout + one watchdog period, plus slack for a loaded machine.
        # Reception in this test process is reported beside it, to tell which side stalled.
        sent_after = (itf.stamp_to_ns(stop.header.stamp) - kill_ns) * 1e-9
        assert sent_after <= COMMAND_TIMEOUT + 1.0 / WATCHDOG_HZ + 0.5, (
            f"the bridge sent its stop {sent_after:.2f} s after the kill (received "
            f"{received - t_kill:.2f} s after): {bridge.log_path.read_text()[-2000:]}")
        assert received - t_kill <= 3.0, f"the stop reached the arm {received - t_kill:.2f} s " \
            f"after the kill, sent {sent_after:.2f} s after"
        assert wait_for(lambda: [d for d in arm.diag_texts() if "stopped: stale_command" in d], 3)
        assert not moving(received), "the arm moved after the watchdog stop"
    finally:
        if policy is not None and policy.poll() is None:
            policy.kill()
        arm.close()
        stop_process(bridge)


def test_killed_bridge_leaves_the_arm_to_servos_command_timeout(tmp_path):
    """SIGKILL of the bridge mid-motion: nothing more reaches MoveIt Servo, so Servo's own
    incoming_command_timeout (0.2 s in xarm_ros2) halts the arm. Pinned here: the last twist
    arrives no later than the kill (plus delivery), so the fake Servo's timeout starts then."""
    from hardware_fakes import SERVO_COMMAND_TIMEOUT_S

    domain = domain_for(__name__ + ":bridge")
    bridge = start_bridge(tmp_path, domain, {"output_mode": "servo", "autostart": "activate",
                                             "control_rate_hz": 10.0})
    arm = FakeArm(domain)
    try:
        assert arm.wait_matched(SERVO_TOPIC, 20), bridge.log_path.read_text()
        _, got = arm.command_until([0.5, 0, 0, 0, 0, 0, 0], lambda: len(arm.snapshot(arm.twists)) > 3)
        assert got, f"the bridge never moved the arm: {arm.diag_texts()[-3:]}"
        arm.command([0.5, 0, 0, 0, 0, 0, 0])  # a fresh command: twists are being republished
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        t_kill = time.monotonic()
        # watch one Servo timeout and more: the fake Servo would halt 0.2 s after the last twist
        wait_for(lambda: False, 3 * SERVO_COMMAND_TIMEOUT_S)
        last = max(t for t, _ in arm.snapshot(arm.twists))
        halted_at = last + SERVO_COMMAND_TIMEOUT_S
        # (slack: a twist sent before the kill may be handled late on a loaded machine)
        assert last <= t_kill + 0.3, "twists reached Servo after the bridge was killed"
        assert halted_at - t_kill <= SERVO_COMMAND_TIMEOUT_S + 0.3
    finally:
        arm.close()
        stop_process(bridge)
