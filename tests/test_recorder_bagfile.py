"""The recorder's bag writer: closed bags are standard rosbag2, synced data survives a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("rosbags")
pytest.importorskip("mcap")
from ros_helpers import REPO  # noqa: E402

TOPICS = {"/parrot/episode/event": "std_msgs/msg/String",
          "/camera/image_raw": "sensor_msgs/msg/Image"}


def string_cdr(text: str) -> bytes:
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    return bytes(ts.serialize_cdr(ts.types["std_msgs/msg/String"](data=text),
                                  "std_msgs/msg/String"))


def test_closed_bag_reads_back_with_rosbags_reader(tmp_path):
    """Every message, topic, type and count comes back through rosbags' rosbag2 Reader."""
    from rosbags.rosbag2 import Reader

    from parrot_bringup.recorder import BagFile
    bag = BagFile(tmp_path / "bag", TOPICS)
    for i in range(5):
        bag.write("/parrot/episode/event", 1_000 + i, string_cdr(f"m{i}"))
    bag.sync()
    bag.write("/parrot/episode/event", 2_000, string_cdr("after sync"))
    bag.close()
    assert (tmp_path / "bag" / "metadata.yaml").exists()
    with Reader(tmp_path / "bag") as reader:
        got = [(c.topic, c.msgtype, t) for c, t, _ in reader.messages()]
        assert reader.message_count == 6
        assert {c.topic: c.msgtype for c in reader.connections} == TOPICS
    assert got == [("/parrot/episode/event", "std_msgs/msg/String", t)
                   for t in (1000, 1001, 1002, 1003, 1004, 2000)]


def test_synced_messages_survive_sigkill_and_later_ones_do_not_corrupt(tmp_path):
    """A process SIGKILLed after sync() leaves a footer-less MCAP whose synced messages
    bag2dataset's record scan reads back; what was written after the sync is lost, but the
    file stays readable up to it."""
    from parrot_bringup.bag2dataset import scan_mcap
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_recorder_bagfile import TOPICS, string_cdr
        from parrot_bringup.recorder import BagFile
        bag = BagFile(__import__('pathlib').Path({str(tmp_path / 'bag')!r}), TOPICS)
        for i in range(3):
            bag.write("/parrot/episode/event", 10 + i, string_cdr(f"kept{{i}}"))
        bag.sync()
        bag.write("/parrot/episode/event", 99, string_cdr("in flight"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    bag_dir = tmp_path / "bag"
    assert not (bag_dir / "metadata.yaml").exists()
    msgs, damage = scan_mcap(bag_dir / "bag.mcap")
    assert damage == "no footer"
    assert [m.log_time for m in msgs] == [10, 11, 12]
    assert all(m.msgtype == "std_msgs/msg/String" for m in msgs)
    assert os.path.getsize(bag_dir / "bag.mcap") > 0


def test_existing_bag_directory_is_refused_not_overwritten(tmp_path):
    """A second bag at the same path is refused with the path in the error; the first stays."""
    from parrot_bringup.recorder import BagFile, RecorderError
    first = BagFile(tmp_path / "bag", TOPICS)
    first.write("/parrot/episode/event", 1, string_cdr("x"))
    first.close()
    before = (tmp_path / "bag" / "bag.mcap").read_bytes()
    with pytest.raises(RecorderError, match="bag"):
        BagFile(tmp_path / "bag", TOPICS)
    assert (tmp_path / "bag" / "bag.mcap").read_bytes() == before


def test_recorder_gives_up_an_incomplete_episode_only_after_grace_and_never_right_after_a_stall(
        tmp_path):
    """An ended episode missing a step waits for it: not closed while it is within
    episode_grace_s, nor on the first timer tick after the recorder's own process stalled
    (the messages of the stall are still queued behind that tick), and closed incomplete on
    the next tick."""
    import time

    import rclpy
    from rclpy.parameter import Parameter

    from parrot_bringup.recorder import EpisodeRec, RecorderNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=1 + (os.getpid() * 7) % 200)
    try:
        node = RecorderNode(context=ctx, parameter_overrides=[
            Parameter("out_dir", value=str(tmp_path)), Parameter("episode_grace_s", value=1.0)])
        ep = EpisodeRec(0, {"first_stamp_ns": 1}, 1, end={"steps": 1, "last_stamp_ns": 5})
        node.episodes[0] = ep
        ep.last_activity = time.monotonic()
        node._on_timer()
        assert not ep.closed  # within the grace
        ep.last_activity = time.monotonic() - 5.0
        node.last_tick = time.monotonic() - 3.0  # the process was stalled for 3 s
        node._on_timer()
        assert not ep.closed
        node._on_timer()
        assert ep.closed and (tmp_path / node.root.name / "ep000000_seedx" / "metadata.yaml").exists()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
