"""A recorder killed mid-episode leaves every finished episode convertible."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
pytest.importorskip("rosbags")
from ros_helpers import REPO, TestNode, domain_id, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros


# 3 s episodes at 20 Hz: a kill within the first second of one lands well inside it.
STEPS = 60
RATE_HZ = 20.0
KILL_WITHIN_S = 1.0


def test_killed_recorders_leave_finished_episodes_convertible(tmp_path):
    """Free-running twin + scripted node + two recorders (split=episode and split=none).
    Once both recorders have said (on `parrot/recorder/saved`) that every finished episode
    is durable, and at least two have finished, both are SIGKILLed early in the next
    episode. bag2dataset converts exactly the episodes they reported -- from complete
    per-episode bags, and from the single bag with no footer/metadata.yaml -- with every
    step, and says that the session bag's recording was interrupted (no metadata.yaml)."""
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf
    from parrot_core.dataset import load_episodes

    domain = domain_id(__name__)
    env = ros_env(domain)
    rec = {}
    procs = []
    t = TestNode(domain)
    starts, ends, saved = {}, set(), {"episode": {}, "none": {}}
    try:
        for split in ("episode", "none"):
            rec[split] = start_node("recorder", {"out_dir": str(tmp_path / split), "session": "s",
                                                 "split": split, "image_qos": "reliable"},
                                    env, tmp_path / f"rec_{split}.log", name=f"rec_{split}")
        procs += list(rec.values())
        procs.append(start_node("scripted", {"control_rate_hz": RATE_HZ}, env,
                                tmp_path / "scripted.log"))
        procs.append(start_node("sim_twin", {"control_rate_hz": RATE_HZ, "seed": 3,
                                             "max_steps": STEPS, "terminate_on_success": False,
                                             "image_qos": "reliable", "start_when_matched": True,
                                             "start_delay_s": 0.5, "min_recorders": 2,
                                             # 20 Hz x 3 cm steps: above the 0.6 m/s default
                                             "safety.max_speed_m_s": 1.2},
                                env, tmp_path / "twin.log"))

        def on_event(msg):
            e = itf.parse_json_msg(msg)
            if e["event"] == "start":
                starts.setdefault(e["episode"], (time.monotonic(), e["seed"]))
            else:
                ends.add(e["episode"])

        def on_saved(msg):
            n = itf.parse_json_msg(msg)
            saved[n["recorder"].removeprefix("/").removeprefix("rec_")][n["episode"]] = n

        t.node.create_subscription(String, itf.TOPIC_EPISODE_EVENT, on_event, itf.event_qos())
        t.node.create_subscription(String, itf.TOPIC_RECORDER_SAVED, on_saved, itf.event_qos())

        def early_in_an_episode_after_two_durable() -> bool:
            if not starts:
                return False
            current = max(starts)
            started_at = starts[current][0]
            return (current >= 2 and current not in ends
                    and time.monotonic() - started_at < KILL_WITHIN_S
                    and all(set(range(current)) <= set(s) for s in saved.values()))

        assert t.spin_until(early_in_an_episode_after_two_durable, 120), (
            f"starts {sorted(starts)}, ends {sorted(ends)}, saved "
            f"{ {k: sorted(v) for k, v in saved.items()} }\n" +
            (tmp_path / "rec_none.log").read_text())
        in_flight = max(starts)
        for p in rec.values():
            p.send_signal(signal.SIGKILL)
        for p in rec.values():
            p.wait()
    finally:
        t.close()
        for p in procs:
            stop(p)

    assert in_flight not in ends
    finished = list(range(in_flight))
    for split in ("episode", "none"):
        assert all(saved[split][k]["complete"] for k in finished), saved[split]
    assert not (tmp_path / "none" / "s" / "bag" / "metadata.yaml").exists()
    for split in ("episode", "none"):
        out = tmp_path / f"ds_{split}"
        conv = subprocess.run([sys.executable, "-m", "parrot_cli", "bag2dataset",
                               str(tmp_path / split), "--out", str(out), "--keep", "all"],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert conv.returncode == 0, conv.stdout + conv.stderr
        assert f"{len(finished)} episodes written" in conv.stdout, conv.stdout
        if split == "none":  # (a per-episode recorder may be killed before its next bag exists)
            assert "no metadata.yaml" in conv.stdout, conv.stdout
        eps = load_episodes(out)
        assert sorted(e.attrs["seed"] for e in eps) == [starts[k][1] for k in finished]
        assert all(len(e) == STEPS for e in eps)
