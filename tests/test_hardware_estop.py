"""The e-stop is never queued behind IK: with IK stuck in the command thread, an e-stop stops
the arm at once, and the motion IK was computing is never published after it."""

import time

import numpy as np
import pytest

from hardware_fakes import (Q0, TRAJ_TOPIC, FakeArm, domain_for, start_bridge, stop_process,
                            wait_for)

pytestmark = pytest.mark.ros

IK_STUCK_S = 3.0
REACTION_LIMIT_MS = 50.0


def slow_ik_prelude(marker) -> str:
    """Patch ArmKinematics.ik to touch `marker`, then sit for IK_STUCK_S before solving."""
    return (
        "import time\n"
        "from parrot_bringup import arm_kinematics as ak\n"
        "_ik = ak.ArmKinematics.ik\n"
        "def slow_ik(self, *a, **k):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        f"    time.sleep({IK_STUCK_S})\n"
        "    return _ik(self, *a, **k)\n"
        "ak.ArmKinematics.ik = slow_ik\n")


def test_estop_acts_while_ik_is_stuck(tmp_path):
    marker = tmp_path / "in_ik"
    domain = domain_for(__name__)
    params = {"output_mode": "joint_trajectory", "autostart": "activate",
              "control_rate_hz": 10.0, "ik_timeout_s": 10.0, "diagnostics_period_s": 0.2,
              "safety": {"command_timeout_s": 5.0}}
    bridge = start_bridge(tmp_path, domain, params, prelude=slow_ik_prelude(marker))
    arm = FakeArm(domain)
    try:
        assert wait_for(lambda: arm.state_or_none() == "active", 20, 0.2), \
            bridge.log_path.read_text()
        assert arm.wait_matched(TRAJ_TOPIC)
        # commands until one is inside (the stuck) IK
        _, inside = arm.command_until([0.5, 0, 0, 0, 0, 0, 0], marker.exists, timeout=10)
        assert inside, f"no command reached IK: {arm.diag_texts()[-3:]}"
        arm.clear()
        t_press = time.monotonic()
        arm.estop(True)
        held = wait_for(lambda: [t for t, m in arm.snapshot(arm.trajs) if m.points
                                 and np.allclose(m.points[0].positions, Q0)], IK_STUCK_S)
        assert held, f"no stop while IK was stuck: {bridge.log_path.read_text()[-2000:]}"
        assert held[0] - t_press < IK_STUCK_S / 2, "the e-stop waited for IK"
        reaction = wait_for(lambda: [d for d in arm.diag_texts() if "estop_reaction_ms=" in d], 3)
        assert reaction, arm.diag_texts()[-3:]
        ms = float(reaction[-1].split("estop_reaction_ms=")[1].split()[0])
        assert ms < REACTION_LIMIT_MS, f"e-stop took {ms} ms inside the bridge"
        # IK returns; its motion (and every queued command) must not move the arm
        assert wait_for(lambda: "stopped while the command was being computed"
                        in bridge.log_path.read_text() or
                        [d for d in arm.diag_texts() if "computed" in d], IK_STUCK_S + 5)
        moved = [m for t, m in arm.snapshot(arm.trajs)
                 if m.points and not np.allclose(m.points[0].positions, Q0)]
        assert not moved, "motion computed before the e-stop was published after it"
    finally:
        arm.close()
        stop_process(bridge)
