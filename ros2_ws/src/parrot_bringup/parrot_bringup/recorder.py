"""`recorder` node: rosbag2 (MCAP + metadata.yaml) bags of images, commands, arm states and
episode markers.

Written with the `rosbags` library from serialized bytes (raw subscriptions: no
deserialize/serialize round trip), so any rosbag2 tool (`ros2 bag info`, rosbags, Foxglove)
reads them.

Kill safety -- `split` parameter:
- `episode` (default): one bag per episode, `<out_dir>/<session>/ep<NNNNNN>_seed<S>/`, closed
  (index + metadata.yaml) as soon as its episode is complete. A recorder killed at any time
  leaves every finished episode as a complete bag; only the episode in flight is a truncated
  bag (no metadata.yaml), which `parrot bag2dataset` reports and skips.
- `none`: one bag for the whole session, `<out_dir>/<session>/bag/`. At every episode end the
  MCAP chunk in progress is written out, so after a kill the file holds every finished
  episode; `bag2dataset` reads such a truncated MCAP (no footer, no metadata.yaml) record
  by record and converts the episodes that have an end marker.

The recorder is ready when every recorded topic has a matched publisher: it then publishes
`parrot/recorder/status` (latched JSON: recorder, ready, root). Before that, messages of an
unmatched topic are lost to it (commands are volatile), so a twin started with
`start_when_matched` and `min_recorders: N` holds its first episode until N recorders are
ready.

Either way an episode is durable (written, flushed and fsynced, metadata.yaml included for
a closed bag) before the recorder says so: it then logs "episode K durable in PATH" and
publishes `parrot/recorder/saved` (latched JSON: recorder, episode, seed, path, split,
complete, messages). Whoever must not lose an episode waits for that notice.

Messages are routed to episodes by stamp: the start event carries the stamp of the
episode's first image, every state message (with its episode number) the stamp of a step's
image, the end event that of the last step's image; a message is written into an episode
once a stamp at or after its own is confirmed for that episode, so reordering across
topics cannot put a message in the wrong episode. An episode is complete when
the twin's state message of each of its steps is in, and for each of those stamps the
image, twist and gripper command; one still incomplete after `episode_grace_s` without any
new message of its own is closed as it is (and says so).
Images repeated with the same stamp (lock-step re-sends) are written once.
Bag timestamps are receive times (as `ros2 bag record` writes them); pairing uses header
stamps.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import IMAGE_QOS, Param, declare, run_node
from parrot_core.files import atomic_write_text, fsync_dir

PARAMS = {
    "out_dir": Param("bags", "directory the bags are written to"),
    "session": Param("", "session name (default: rec-<UTC time>-<pid>)"),
    "split": Param("episode", "episode: one bag per episode; none: one bag for the session",
                   choices=("episode", "none")),
    "image_qos": IMAGE_QOS,
    # Above Fast DDS's 3 s heartbeat period: a reliable sample lost on the way is repaired
    # only at the writer's next heartbeat, and closing before it loses that step.
    "episode_grace_s": Param(10.0, "after an episode's end event, wait this long for its last "
                                   "messages before closing its bag (s)", (0.0, 600.0)),
    "pending_limit": Param(500, "messages outside every episode kept until one claims them "
                                    "(older ones are dropped and counted)",
                           (1, 1_000_000)),
}

STAMPED = (itf.TOPIC_IMAGE, itf.TOPIC_TWIST, itf.TOPIC_GRIPPER)


class RecorderError(RuntimeError):
    pass


def header_stamp_ns(cdr: bytes) -> int:
    """stamp of a message whose first field is std_msgs/Header, from its CDR bytes."""
    sec, nsec = struct.unpack_from("<iI", cdr, 4)  # after the 4-byte encapsulation header
    return sec * 1_000_000_000 + nsec


_TYPESTORE = None


def typestore():
    """rosbags' message definitions (built once: it takes a while, not mid-episode)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


class BagFile:
    """One rosbag2 bag: a directory with `<name>.mcap` and, once closed, `metadata.yaml`.

    Written with the `mcap` library (rosbag2's storage profile `ros2`: `ros2msg` schemas,
    `cdr` messages), so `sync()` can end the chunk in progress with public API only.
    """

    def __init__(self, path: Path, topics: dict[str, str]):
        from mcap.writer import CompressionType, Writer
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RecorderError(f"{self.path}: a bag is there already (recorded earlier with "
                                f"the same session name?); not overwriting it") from None
        self.mcap_path = self.path / f"{self.path.name}.mcap"
        self.stream = open(self.mcap_path, "xb")
        self.writer = Writer(self.stream, compression=CompressionType.NONE)
        self.writer.start(profile="ros2", library="parrot recorder")
        ts = typestore()
        self.topics = dict(topics)
        self.channels: dict[str, int] = {}
        for topic, msgtype in topics.items():
            msgdef, _ = ts.generate_msgdef(msgtype, ros_version=2)
            schema = self.writer.register_schema(msgtype, "ros2msg", msgdef.encode())
            self.channels[topic] = self.writer.register_channel(
                topic, "cdr", schema, metadata={"offered_qos_profiles": ""})
        self.counts = {topic: 0 for topic in topics}
        self.first_ns: int | None = None
        self.last_ns = 0
        self._dirs_synced = False

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def write(self, topic: str, recv_ns: int, data: bytes) -> None:
        self.writer.add_message(self.channels[topic], log_time=recv_ns, data=data,
                                publish_time=recv_ns, sequence=self.counts[topic])
        self.counts[topic] += 1
        self.first_ns = recv_ns if self.first_ns is None else min(self.first_ns, recv_ns)
        self.last_ns = max(self.last_ns, recv_ns)

    def sync(self) -> None:
        """Everything written so far is on disk: chunk ended, stream flushed, file fsynced."""
        self.writer.flush()
        os.fsync(self.stream.fileno())
        self._sync_dirs_once()

    def _sync_dirs_once(self) -> None:
        """The bag's directory and its .mcap entry must survive a power cut too (once)."""
        if not self._dirs_synced:
            fsync_dir(self.path)
            fsync_dir(self.path.parent)
            self._dirs_synced = True

    def close(self) -> None:
        """Summary, footer and metadata.yaml, all fsynced: a complete rosbag2 bag."""
        self.writer.finish()
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        atomic_write_text(self.path / "metadata.yaml", self._metadata_yaml(), durable=True)
        self._sync_dirs_once()

    def _metadata_yaml(self) -> str:
        import yaml
        ts = typestore()
        start = self.first_ns or 0
        duration = max(0, self.last_ns - start)
        info = {
            "version": 9, "storage_identifier": "mcap",
            "relative_file_paths": [self.mcap_path.name],
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": self.messages,
            "topics_with_message_count": [
                {"topic_metadata": {"name": topic, "type": msgtype,
                                    "serialization_format": "cdr", "offered_qos_profiles": [],
                                    "type_description_hash": ts.hash_rihs01(msgtype)},
                 "message_count": self.counts[topic]}
                for topic, msgtype in self.topics.items()],
            "compression_format": "", "compression_mode": "",
            "files": [{"path": self.mcap_path.name,
                       "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration},
                       "message_count": self.messages}],
            "custom_data": None, "ros_distro": "kilted",
        }
        return yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)


@dataclass
class EpisodeRec:
    episode: int
    start: dict
    first_ns: int
    confirmed_ns: int = 0  # stamps in [first_ns, confirmed_ns] surely belong to this episode
    bag: BagFile | None = None
    end: dict | None = None
    last_activity: float = 0.0  # monotonic time of the end event or of its newest message
    last_seen: dict = field(default_factory=dict)  # topic -> set of stamps (dedup)
    closed: bool = False

    def owns(self, ns: int) -> bool:
        return self.first_ns <= ns <= self.confirmed_ns

    def is_complete(self) -> bool:
        """The twin reported every step, and each step's image and command are in."""
        steps = int(self.end.get("steps", 1))
        if steps == 0:
            return True
        step_stamps = self.last_seen.get(itf.TOPIC_EPISODE_STATE, set())
        return len(step_stamps) >= steps and all(
            ns in self.last_seen.get(topic, ()) for ns in step_stamps for topic in STAMPED)


class RecorderNode(Node):
    def __init__(self, name: str = "recorder", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        if self.p["split"] not in ("episode", "none"):
            raise RecorderError(f"split must be 'episode' or 'none', got {self.p['split']!r}")
        session = self.p["session"] or time.strftime("rec-%Y%m%dT%H%M%S", time.gmtime()) + \
            f"-{os.getpid()}"
        self.root = Path(self.p["out_dir"]).expanduser() / session
        self.root.mkdir(parents=True, exist_ok=True)
        typestore()
        qos = {itf.TOPIC_IMAGE: itf.image_qos(self.p["image_qos"]),
               itf.TOPIC_TWIST: itf.command_qos(), itf.TOPIC_GRIPPER: itf.command_qos(),
               itf.TOPIC_EPISODE_EVENT: itf.event_qos(),
               itf.TOPIC_EPISODE_STATE: itf.state_qos(), itf.TOPIC_ARM_STATE: itf.state_qos()}
        self.names: dict[str, str] = {}  # relative name -> resolved name (bag topic)
        self.subs = {}
        for topic in itf.RECORDED_TOPICS:
            msg_cls = _msg_class(itf.MSGTYPE[topic])
            sub = self.create_subscription(msg_cls, topic, self._cb(topic), qos[topic], raw=True)
            self.names[topic] = sub.topic_name
            self.subs[topic] = sub
        self.bag_topics = {self.names[t]: itf.MSGTYPE[t] for t in itf.RECORDED_TOPICS}
        self.episodes: dict[int, EpisodeRec] = {}
        self.pending: list[tuple[str, int, int, bytes]] = []  # episode not known yet
        self.session_bag: BagFile | None = None
        self.finished_bags: list[Path] = []
        self.dropped = 0
        self.received: dict[str, int] = {}
        self.saved_pub = self.create_publisher(String, itf.TOPIC_RECORDER_SAVED, itf.event_qos())
        self.status_pub = self.create_publisher(String, itf.TOPIC_RECORDER_STATUS, itf.event_qos())
        self.ready = False
        self.last_tick = time.monotonic()
        self.create_timer(0.1, self._on_timer)
        self.get_logger().info(f"recording to {self.root} (split={self.p['split']})")

    # ---- routing ---------------------------------------------------------------------
    # A message is written once its episode is certain: its stamp is at or before a stamp
    # the twin has confirmed for that episode (start: first image; each state message:
    # that step's image; end: last step's image). Until then it waits in `pending`, so a
    # start/end event arriving after the messages around it cannot misfile them.
    def _cb(self, topic):
        return lambda data: self._on_msg(topic, bytes(data))

    def _on_msg(self, topic: str, data: bytes):
        recv_ns = self.get_clock().now().nanoseconds
        self.received[topic] = self.received.get(topic, 0) + 1
        if topic == itf.TOPIC_EPISODE_EVENT:
            return self._on_event(data, recv_ns)
        if topic == itf.TOPIC_EPISODE_STATE:
            try:
                payload = itf.parse_json_msg(deserialize_message(data, String))
                ns, k = int(payload["stamp_ns"]), int(payload["episode"])
            except (itf.InterfaceError, KeyError, ValueError, TypeError):
                self.dropped += 1
                return
            ep = self.episodes.get(k)
            if ep is not None and not ep.closed and ns > ep.confirmed_ns:
                ep.confirmed_ns = ns
        else:
            ns = header_stamp_ns(data)
        self.pending.append((topic, ns, recv_ns, data))
        self._flush_pending()

    def _flush_pending(self):
        keep = []
        for item in self.pending:
            ep = next((e for e in self.episodes.values() if e.owns(item[1])), None)
            if ep is None:
                keep.append(item)
            elif ep.closed:
                self.dropped += 1
            else:
                self._write(ep, *item)
        limit = int(self.p["pending_limit"])
        if len(keep) > limit:  # outside every episode (e.g. idle views between episodes)
            self.dropped += len(keep) - limit
            keep = keep[-limit:]
        self.pending = keep

    def _write(self, ep: EpisodeRec, topic, ns, recv_ns, data):
        seen = ep.last_seen.setdefault(topic, set())
        if topic in STAMPED and ns in seen:
            return  # re-sent (lock-step) -- write once
        seen.add(ns)
        ep.last_activity = time.monotonic()
        self._bag_for(ep).write(self.names[topic], recv_ns, data)

    def _bag_for(self, ep: EpisodeRec) -> BagFile:
        if self.p["split"] == "none":
            if self.session_bag is None:
                self.session_bag = BagFile(self.root / "bag", self.bag_topics)
            return self.session_bag
        if ep.bag is None:
            seed = ep.start.get("seed", "x")
            ep.bag = BagFile(self.root / f"ep{ep.episode:06d}_seed{seed}", self.bag_topics)
        return ep.bag

    def _on_event(self, data: bytes, recv_ns: int):
        try:
            ev = itf.EpisodeEvent.from_payload(
                itf.parse_json_msg(deserialize_message(data, String)))
        except itf.InterfaceError as e:
            self.get_logger().error(f"bad episode event: {e}")
            return
        if ev.kind == "start":
            if ev.episode in self.episodes:
                return  # latched re-delivery
            first = int(ev.fields["first_stamp_ns"])
            ep = EpisodeRec(ev.episode, ev.fields, first, confirmed_ns=first)
            self.episodes[ev.episode] = ep
        else:
            ep = self.episodes.get(ev.episode)
            if ep is None or ep.end is not None:
                return  # started before we joined, or latched re-delivery
            ep.end = ev.fields
            ep.last_activity = time.monotonic()
            ep.confirmed_ns = max(ep.confirmed_ns, int(ev.fields["last_stamp_ns"]))
        self._bag_for(ep).write(self.names[itf.TOPIC_EPISODE_EVENT], recv_ns, data)
        self._flush_pending()
        self._check_complete(grace=False)

    def _on_timer(self):
        self._check_ready()
        now = time.monotonic()
        # rclpy runs a ready timer before the subscriptions: after a stall of this process the
        # messages that arrived during it are still queued, so no episode is given up this tick.
        stalled = now - self.last_tick > 0.5
        self.last_tick = now
        self._check_complete(grace=not stalled)

    def _check_ready(self):
        """Ready once every topic an episode needs has a matched publisher (said once,
        latched); the arm state is optional."""
        if self.ready or any(self.subs[t].get_publisher_count() == 0 for t in itf.EPISODE_TOPICS):
            return
        self.ready = True
        self.get_logger().info("ready: every topic an episode needs has a publisher")
        self.status_pub.publish(itf.json_msg({"recorder": self.get_fully_qualified_name(),
                                              "ready": True, "root": str(self.root)}))

    def _check_complete(self, grace: bool):
        """Close the finished episodes that are complete and, with `grace`, those silent for
        longer than episode_grace_s."""
        now = time.monotonic()
        for ep in list(self.episodes.values()):
            if ep.end is None or ep.closed:
                continue
            complete = ep.is_complete()
            overdue = grace and now - ep.last_activity > float(self.p["episode_grace_s"])
            if complete or overdue:
                self._close_episode(ep, complete)

    def _close_episode(self, ep: EpisodeRec, complete: bool):
        """Make the episode durable, then say so (log + `parrot/recorder/saved`)."""
        ep.closed = True
        bag = self._bag_for(ep)
        if self.p["split"] == "none":
            bag.sync()
        else:
            bag.close()
            ep.bag = None
        self.finished_bags.append(bag.path)
        self.get_logger().info(
            f"episode {ep.episode} durable in {bag.path}" +
            ("" if complete else " (incomplete: some of its messages never arrived)"))
        self.saved_pub.publish(itf.json_msg({
            "recorder": self.get_fully_qualified_name(), "episode": ep.episode,
            "seed": ep.start.get("seed"), "path": str(bag.path), "split": self.p["split"],
            "complete": complete, "messages": bag.messages}))
        # forget old episodes, keep recent ones for late messages' routing
        for k in sorted(self.episodes)[:-8]:
            if self.episodes[k].closed:
                del self.episodes[k]

    def close(self):
        """Clean shutdown: episodes in flight are still written, as unfinished bags."""
        self.get_logger().info(f"received {self.received}, dropped {self.dropped}, "
                               f"pending {len(self.pending)}")
        for ep in self.episodes.values():
            if ep.bag is not None:
                ep.bag.close()
                ep.bag = None
        if self.session_bag is not None:
            self.session_bag.close()
            self.session_bag = None


def _msg_class(msgtype: str):
    import importlib
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def main(argv=None) -> int:
    return run_node(RecorderNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
