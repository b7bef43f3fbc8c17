"""`parrot bag2dataset BAG... --out DIR`: ROS 2 bags -> a Parrot prior dataset.

A BAG is a rosbag2 directory (metadata.yaml + .mcap), a bare .mcap file, or a directory
holding bags (a recorder session). Each episode is delimited by the `parrot/episode/event`
start/end markers. Its steps are the stamps the twin reported on `parrot/episode/state`
(one per applied command; a free-running twin may get commands it never applies, for views
it re-published while waiting), or, in a bag without twin reports, every image in the
episode that got a command. Each step pairs the image with the command (twist + gripper)
stamped with the same stamp -- the command computed from that image -- and the reward the
twin reported for it, and the arm state (`parrot/arm/state`, paired like the policy node
pairs it) when the bag has one for every step. Episodes are written with
parrot_core.dataset.DatasetWriter (source="bag"), the same format `parrot collect` writes.

Truncated bags (a killed recorder or `ros2 bag record`): a bag without metadata.yaml, or
whose MCAP lacks its footer/index, is read record by record up to the first damaged byte.
Episodes with an end marker inside the readable part are converted; the rest are listed as
skipped with the reason. Nothing is guessed: an episode with a missing image/command is
skipped too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parrot_bringup import interfaces as itf
from parrot_core.camera import model_image

MCAP_MAGIC = b"\x89MCAP0\r\n"


class Bag2DatasetError(RuntimeError):
    """Unusable input: no bag found, or nothing readable."""


@dataclass
class RawMsg:
    topic: str
    msgtype: str
    log_time: int
    data: bytes


# ---- reading ---------------------------------------------------------------------------

def find_bags(paths) -> list[Path]:
    """Expand BAG arguments into bag directories / .mcap files, in a stable order."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise Bag2DatasetError(f"{p}: no such bag")
        if p.is_file():
            if p.suffix != ".mcap":
                raise Bag2DatasetError(f"{p}: not a bag (expected a bag directory or .mcap file)")
            out.append(p)
        elif _is_bag_dir(p):
            out.append(p)
        else:
            sub = sorted(d for d in p.rglob("*") if d.is_dir() and _is_bag_dir(d))
            if not sub:
                raise Bag2DatasetError(f"{p}: holds no rosbag2 bag (no metadata.yaml or .mcap)")
            out.extend(sub)
    return out


def _is_bag_dir(p: Path) -> bool:
    return (p / "metadata.yaml").exists() or any(p.glob("*.mcap"))


def read_bag(path: Path) -> tuple[list[RawMsg], str | None]:
    """All messages of a bag; (messages, note) where note says what was damaged."""
    path = Path(path)
    if path.is_dir() and (path / "metadata.yaml").exists():
        try:
            from rosbags.rosbag2 import Reader
            msgs = []
            with Reader(path) as reader:
                for conn, t, data in reader.messages():
                    msgs.append(RawMsg(conn.topic, conn.msgtype, t, bytes(data)))
            return msgs, None
        except Exception as e:  # fall through to the record scan
            note = f"index unreadable ({type(e).__name__}: {e}); scanned records"
    else:
        note = ("no metadata.yaml (recording interrupted: only what reached the disk is "
                "converted); scanned records")
    files = [path] if path.is_file() else sorted(path.glob("*.mcap"))
    if not files:
        raise Bag2DatasetError(f"{path}: no .mcap file in the bag")
    msgs = []
    for f in files:
        got, damage = scan_mcap(f)
        msgs.extend(got)
        if damage:
            note += f"; {f.name}: {damage}"
    return msgs, note


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # python >= 3.14
        except ImportError:
            from backports import zstd
        return zstd.decompress(data)
    if compression == "lz4":
        import lz4.frame
        return lz4.frame.decompress(data)
    raise ValueError(f"unsupported MCAP chunk compression {compression!r}")


def scan_mcap(path: Path) -> tuple[list[RawMsg], str | None]:
    """Read an MCAP file record by record, tolerating a missing footer or a cut-off end."""
    blob = Path(path).read_bytes()
    if len(blob) == 0:
        return [], "empty (nothing reached the disk before the recording stopped)"
    if blob[:8] != MCAP_MAGIC:
        return [], "not an MCAP file (bad magic)"
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    msgs: list[RawMsg] = []

    def records(buf: bytes, pos: int, end: int):
        while pos + 9 <= end:
            op = buf[pos]
            (length,) = struct.unpack_from("<Q", buf, pos + 1)
            body_start = pos + 9
            if body_start + length > end:
                raise EOFError(f"record at byte {pos} cut off")
            yield op, buf[body_start:body_start + length]
            pos = body_start + length
        if pos != end:
            raise EOFError(f"{end - pos} stray bytes at byte {pos}")

    def string(b, off):
        (n,) = struct.unpack_from("<I", b, off)
        return b[off + 4:off + 4 + n].decode(), off + 4 + n

    def handle(op, body):
        if op == 0x03:  # schema
            (sid,) = struct.unpack_from("<H", body, 0)
            name, _ = string(body, 2)
            schemas[sid] = name
        elif op == 0x04:  # channel
            cid, sid = struct.unpack_from("<HH", body, 0)
            topic, _ = string(body, 4)
            channels[cid] = (topic, schemas.get(sid, ""))
        elif op == 0x05:  # message
            cid, _seq, log_time = struct.unpack_from("<HIQ", body, 0)
            if cid in channels:
                topic, msgtype = channels[cid]
                msgs.append(RawMsg(topic, msgtype, log_time, bytes(body[22:])))
        elif op == 0x06:  # chunk
            _s, _e, usize, _crc = struct.unpack_from("<QQQI", body, 0)
            comp, off = string(body, 28)
            (clen,) = struct.unpack_from("<Q", body, off)
            inner = _decompress(bytes(body[off + 8:off + 8 + clen]), comp, usize)
            for iop, ibody in records(inner, 0, len(inner)):
                handle(iop, ibody)
        elif op == 0x02:  # footer: the file is complete
            raise StopIteration

    damage = None
    pos = 8
    try:
        for op, body in records(blob, pos, len(blob)):
            if op in (0x02,):
                break
            try:
                handle(op, body)
            except StopIteration:
                break
    except EOFError as e:
        damage = f"truncated ({e})"
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        damage = f"damaged ({e})"
    if blob[-8:] != MCAP_MAGIC and damage is None:
        damage = "no footer"
    return msgs, damage


# ---- episodes --------------------------------------------------------------------------

def _topic_is(topic: str, rel: str) -> bool:
    return topic == rel or topic == "/" + rel or topic.endswith("/" + rel)


@dataclass
class BagEpisode:
    episode: int
    start: dict
    end: dict | None
    images: np.ndarray | None = None
    actions: np.ndarray | None = None
    rewards: np.ndarray | None = None
    states: np.ndarray | None = None  # arm states, when the bag has one for every step
    problem: str | None = None


def episodes_from_messages(msgs: list[RawMsg], image_size=None, camera=None) -> list[BagEpisode]:
    """Pair images with their commands inside each start/end-delimited episode. With a
    camera (parrot_core.camera.CameraModel) each frame is cropped to the models' view and
    resized to image_size (default 48x48), as the policy node does with that camera file."""
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)

    def de(m):
        return ts.deserialize_cdr(m.data, m.msgtype)

    images: dict[int, object] = {}
    twists: dict[int, object] = {}
    grips: dict[int, object] = {}
    rewards: dict[int, float] = {}
    applied: dict[int, set] = {}  # episode -> stamps whose command the twin applied
    starts: dict[int, dict] = {}
    ends: dict[int, dict] = {}
    arm_states = itf.ArmStateBuffer(keep=None)
    for m in msgs:
        t = m.topic
        if _topic_is(t, itf.TOPIC_IMAGE):
            msg = de(m)
            images.setdefault(itf.stamp_to_ns(msg.header.stamp), msg)
        elif _topic_is(t, itf.TOPIC_TWIST):
            msg = de(m)
            twists.setdefault(itf.stamp_to_ns(msg.header.stamp), msg)
        elif _topic_is(t, itf.TOPIC_GRIPPER):
            msg = de(m)
            grips.setdefault(itf.stamp_to_ns(msg.header.stamp), msg)
        elif _topic_is(t, itf.TOPIC_EPISODE_STATE):
            payload = itf.parse_json_msg(de(m))
            rewards[int(payload["stamp_ns"])] = float(payload.get("reward", 0.0))
            if "episode" in payload:
                applied.setdefault(int(payload["episode"]), set()).add(int(payload["stamp_ns"]))
        elif _topic_is(t, itf.TOPIC_ARM_STATE):
            try:
                arm_states.add(*itf.arm_state_from_msg(de(m)))
            except itf.InterfaceError:
                continue  # a bad state is never paired: the step then has none
        elif _topic_is(t, itf.TOPIC_EPISODE_EVENT):
            try:
                ev = itf.EpisodeEvent.from_payload(itf.parse_json_msg(de(m)))
            except itf.InterfaceError:
                continue
            (starts if ev.kind == "start" else ends).setdefault(ev.episode, ev.fields)

    out = []
    for k in sorted(starts):
        start, end = starts[k], ends.get(k)
        ep = BagEpisode(k, start, end)
        out.append(ep)
        if end is None:
            ep.problem = "unfinished (no end marker: recording stopped mid-episode)"
            continue
        if end.get("discarded"):
            ep.problem = "discarded by the operator"
            continue
        lo, hi = int(start["first_stamp_ns"]), int(end["last_stamp_ns"])
        rate = float(start.get("control_rate_hz", 10.0))
        if k in applied:  # the twin's per-step reports: exactly the commands it applied
            stamps = sorted(s for s in applied[k] if lo <= s <= hi)
            stamps = [s for s in stamps if s in images and s in twists and s in grips]
        else:  # no twin reports (e.g. a hardware bag): every image that got a command
            stamps = sorted(s for s in images if lo <= s <= hi and s in twists and s in grips)
        want = int(end.get("steps", len(stamps)))
        if want == 0:
            ep.problem = "empty (no steps)"
            continue
        if len(stamps) != want:
            ep.problem = (f"incomplete: {len(stamps)} of {want} steps have an image and "
                          f"a command")
            continue
        try:
            frames = [itf.image_to_numpy(images[s]) for s in stamps]
            if camera is not None or image_size is not None:
                frames = [model_image(f, image_size or (48, 48), camera) for f in frames]
            if len({f.shape for f in frames}) != 1:
                raise itf.ImageFormatError("image size changes within the episode "
                                           "(pass --image-size)")
            ep.images = np.stack(frames)
            ep.actions = np.stack([itf.msgs_to_action(twists[s], grips[s], rate)
                                   for s in stamps]).astype(np.float32)
        except ValueError as e:
            ep.problem = f"bad message: {e}"
            continue
        ep.rewards = np.array([rewards.get(s, 0.0) for s in stamps], np.float32)
        ep.states = _states_of(arm_states, stamps)
    return out


def _states_of(arm_states, stamps) -> np.ndarray | None:
    """Each step's arm state (paired as the policy node pairs them), or None unless all have one."""
    try:
        states = [arm_states.for_image(s) for s in stamps]
    except itf.InterfaceError:
        return None
    return None if any(s is None for s in states) else np.stack(states)


def bag_episodes(bags, report: dict, image_size=None, camera=None, log=print):
    """Yield (bag, BagEpisode) for every usable episode of the bags, in order. `report` counts
    the readable bags (`bags`) and lists what was skipped and why (`skipped`): an unreadable
    bag, one without episode markers, an unfinished, incomplete or discarded episode."""
    for bag in find_bags(bags):
        try:
            msgs, note = read_bag(bag)
        except Exception as e:
            report["skipped"].append(f"{bag}: unreadable ({e})")
            log(f"{bag}: unreadable, skipped ({e})")
            continue
        report["bags"] += 1
        if note:
            log(f"{bag}: {note}")
        eps = episodes_from_messages(msgs, image_size, camera)
        if not eps:
            report["skipped"].append(f"{bag}: no episode markers")
            log(f"{bag}: no episode start markers, nothing to convert")
        for ep in eps:
            if ep.problem:
                report["skipped"].append(f"{bag} episode {ep.episode}: {ep.problem}")
                log(f"{bag}: skipped episode {ep.episode}: {ep.problem}")
                continue
            yield bag, ep


# ---- conversion --------------------------------------------------------------------------

def convert(bags, out, keep: str = "success", image_size=None, run_id=None,
            log=print, camera=None) -> dict:
    """Convert bags into the dataset at `out`; returns counts and the skipped episodes."""
    from parrot_core.dataset import DatasetWriter, Episode, attempted_keys
    writer = None
    report = {"bags": 0, "converted": 0, "filtered": 0, "already": 0, "skipped": []}
    # a bag episode converted (or filtered) by an earlier run into `out` is not converted again
    done = attempted_keys(out) if Path(out).is_dir() else set()
    for bag, ep in bag_episodes(bags, report, image_size, camera, log):
        key = f"{Path(bag).resolve()}#{ep.episode}"
        if key in done:
            report["already"] += 1
            continue
        success = bool(ep.end.get("success", False))
        task = ep.start.get("task", "unknown")
        if writer is None:
            writer = DatasetWriter(out, ep.images.shape[1:3], worker=0, run_id=run_id,
                                   camera_view=camera.view_record() if camera else None)
        kept = success or keep == "all"
        if kept:
            writer.write_episode(Episode(ep.images, ep.actions, ep.rewards, states=ep.states, attrs={
                "task": task, "objects": list(ep.start.get("objects", [])),
                "object_pool": ep.start.get("object_pool", "unknown"),
                "seed": int(ep.start.get("seed", -1)), "success": success,
                "source": ep.start.get("source", "bag"),
                "bag": str(bag), "bag_episode": ep.episode, "source_key": key}))
            report["converted"] += 1
        else:
            report["filtered"] += 1
        writer.record_attempt(kept, task, key=key)
    return report


def add_arguments(parser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG",
                        help="rosbag2 directory, .mcap file, or a recorder session directory")
    parser.add_argument("--out", required=True, help="dataset directory (created or appended)")
    parser.add_argument("--keep", choices=("success", "all"), default="success",
                        help="episodes to keep (default: successful ones, as the collector)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize images (cv2.INTER_AREA) to this size")
    parser.add_argument("--camera-file", metavar="YAML",
                        help="the camera's file: crop full frames to the models' view first, as "
                             "the policy node does with it (then --image-size, default 48 48)")
    parser.add_argument("--run-id", help="episode file prefix (default: random)")


def main(args) -> int:
    from parrot_core.camera import optional_camera
    report = convert(args.bags, args.out, args.keep,
                     tuple(args.image_size) if args.image_size else None, args.run_id,
                     camera=optional_camera(args.camera_file))
    if report["bags"] == 0:
        raise Bag2DatasetError("no readable bag among the inputs")
    print(f"{report['converted']} episodes written to {args.out} from {report['bags']} bags; "
          f"{report['filtered']} unsuccessful filtered out (--keep all keeps them); "
          f"{report['already']} already converted into {args.out} by an earlier run; "
          f"{len(report['skipped'])} skipped")
    return 0


def cli(argv=None) -> int:
    """Entry point of the colcon-installed `bag2dataset` executable."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="bag2dataset", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return main(parser.parse_args(argv))
    except Bag2DatasetError as e:
        print(f"bag2dataset: error: {e}", file=sys.stderr)
        return 1
