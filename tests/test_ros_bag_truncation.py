"""A recorder killed mid-episode leaves every finished episode convertible."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
pytest.importorskip("rosbags")
from ros_helpers import REPO, TestNode, domain_id, ros_env, start_node, stop  # noqa: E402

pytestmark = pytest.mark.ros


# Long enough that the kill lands inside the third episode on a loaded 2-core machine.
STEPS = 30


def test_killed_recorders_leave_finished_episodes_convertible(tmp_path):
    """Free-running twin (20 Hz) + scripted node + two recorders (split=episode and
    split=none). After two episodes have ended, both recorders are SIGKILLed in the middle
    of the third. bag2dataset converts exactly the two finished episodes from each --
    from complete per-episode bags, and from the single bag with no footer/metadata.yaml --
    and says what it skipped (the interrupted recording / the unfinished episode)."""
    from std_msgs.msg import String

    from parrot_bringup import interfaces as itf
    from parrot_core.dataset import load_episodes

    domain = domain_id(4)
    env = ros_env(domain)
    rec = {}
    procs = []
    t = TestNode(domain)
    try:
        for split in ("episode", "none"):
            rec[split] = start_node("recorder", {"out_dir": str(tmp_path / split), "session": "s",
                                                 "split": split, "image_qos": "reliable"},
                                    env, tmp_path / f"rec_{split}.log", name=f"rec_{split}")
        procs += list(rec.values())
        procs.append(start_node("scripted", {"control_rate_hz": 20.0}, env,
                                tmp_path / "scripted.log"))
        procs.append(start_node("sim_twin", {"control_rate_hz": 20.0, "seed": 3, "max_steps": STEPS,
                                             "terminate_on_success": False, "image_qos": "reliable",
                                             "start_when_matched": True, "start_delay_s": 0.5,
                                             "min_image_subscribers": 2},
                                env, tmp_path / "twin.log"))
        events = []
        t.node.create_subscription(String, itf.TOPIC_EPISODE_EVENT,
                                   lambda m: events.append(itf.parse_json_msg(m)), itf.event_qos())
        third_started = lambda: any(e["event"] == "start" and e["episode"] == 2 for e in events)  # noqa: E731
        assert t.spin_until(third_started, 40), (tmp_path / "twin.log").read_text()
        ep1 = tmp_path / "episode" / "s" / "ep000001_seed4" / "metadata.yaml"
        assert t.spin_until(ep1.exists, 5), (tmp_path / "rec_episode.log").read_text()
        t.spin_for(0.1)  # third episode (STEPS at 20 Hz = 1.5 s) still running
        assert not any(e["event"] == "end" and e["episode"] == 2 for e in events)
        for p in rec.values():
            p.send_signal(signal.SIGKILL)
            p.wait()
    finally:
        t.close()
        for p in procs:
            stop(p)

    assert not (tmp_path / "none" / "s" / "bag" / "metadata.yaml").exists()
    for split, skipped in (("episode", "no metadata.yaml"), ("none", "no metadata.yaml")):
        out = tmp_path / f"ds_{split}"
        conv = subprocess.run([sys.executable, "-m", "parrot_cli", "bag2dataset",
                               str(tmp_path / split), "--out", str(out), "--keep", "all"],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert conv.returncode == 0, conv.stdout + conv.stderr
        assert "2 episodes written" in conv.stdout, conv.stdout
        assert skipped in conv.stdout, conv.stdout
        eps = load_episodes(out)
        assert sorted(e.attrs["seed"] for e in eps) == [3, 4]
        assert all(len(e) == STEPS for e in eps)
