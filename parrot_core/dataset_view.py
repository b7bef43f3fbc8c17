"""`parrot dataset view DATASET --out episodes.mcap`: episodes as a Foxglove recording.

Writes the chosen episodes of a prior dataset into one MCAP file with Foxglove's JSON schemas,
so Foxglove (the app or https://app.foxglove.dev, "Open local file") shows them without any
ROS installation: an Image panel on ``/camera``, a Plot panel on ``/action.dx`` ... ``/action.
gripper``, ``/arm_state.*`` and ``/episode.reward``, a Raw Messages panel on ``/episode``
(task, seed, objects, success). Episodes are laid out one after the other on a 10 Hz clock
(the twin's control rate) with a one-second gap, in the order of their files. A ROS 2 bag
from the recorder is an MCAP file already: Foxglove opens it directly.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from parrot_core.action_space import ACTION_NAMES
from parrot_core.arm_state import STATE_NAMES
from parrot_core.dataset import DatasetError, episode_paths, read_episode, read_header

STEP_NS = 100_000_000  # 10 Hz
EPISODE_GAP_NS = 1_000_000_000
CAMERA_FRAME = "camera"

# Foxglove's RawImage schema (foxglove/schemas, JSON encoding: bytes as base64)
RAW_IMAGE_SCHEMA = {
    "type": "object", "title": "foxglove.RawImage",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"},
                                                       "nsec": {"type": "integer"}}},
        "frame_id": {"type": "string"}, "width": {"type": "integer"},
        "height": {"type": "integer"}, "encoding": {"type": "string"},
        "step": {"type": "integer"}, "data": {"type": "string", "contentEncoding": "base64"},
    },
}


class DatasetViewError(DatasetError):
    """A view that cannot be written as asked."""


def _numbers_schema(title: str, names) -> dict:
    return {"type": "object", "title": title,
            "properties": {n: {"type": "number"} for n in names}}


def _stamp(ns: int) -> dict:
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def select_episodes(root, which: str) -> list[Path]:
    """Episode files by index: "all", or e.g. "0,3,7" / "0-9" (indices into the sorted files)."""
    paths = episode_paths(root)
    if not paths:
        raise DatasetViewError(f"{root}: dataset has no episodes")
    if which == "all":
        return paths
    chosen: list[int] = []
    for part in which.split(","):
        part = part.strip()
        try:
            lo, _, hi = part.partition("-")
            chosen += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise DatasetViewError(f"--episodes {which!r}: expected all, or indices like "
                                   f"0,3,7 or 0-9") from None
    bad = [i for i in chosen if not 0 <= i < len(paths)]
    if bad:
        raise DatasetViewError(f"--episodes: {bad} out of range; {root} has {len(paths)} "
                               f"episodes (0-{len(paths) - 1})")
    return [paths[i] for i in chosen]


def write_view(root, out, which: str = "0-9") -> dict:
    """Write the MCAP; returns {"episodes": n, "steps": n, "path": out}."""
    try:
        from mcap.writer import Writer
    except ImportError as e:
        raise DatasetViewError("parrot dataset view needs the mcap package "
                               "(pip install 'parrot-robot[ros]')") from e
    read_header(root)
    paths = select_episodes(root, which)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = 0
    with open(out, "wb") as f:
        writer = Writer(f)
        writer.start(profile="", library="parrot dataset view")

        def channel(topic: str, schema: dict) -> int:
            schema_id = writer.register_schema(schema["title"], "jsonschema",
                                               json.dumps(schema).encode())
            return writer.register_channel(topic, "json", schema_id)

        ch_image = channel("/camera", RAW_IMAGE_SCHEMA)
        ch_action = channel("/action", _numbers_schema("parrot.Action", ACTION_NAMES))
        ch_state = channel("/arm_state", _numbers_schema("parrot.ArmState", STATE_NAMES))
        ch_episode = channel("/episode", {"type": "object", "title": "parrot.EpisodeStep"})
        t = 0
        for index, path in enumerate(paths):
            ep = read_episode(path)
            for k in range(len(ep)):
                img = np.ascontiguousarray(ep.images[k])
                h, w = img.shape[:2]
                messages = [
                    (ch_image, {"timestamp": _stamp(t), "frame_id": CAMERA_FRAME, "width": w,
                                "height": h, "encoding": "rgb8", "step": 3 * w,
                                "data": base64.b64encode(img.tobytes()).decode()}),
                    (ch_action, dict(zip(ACTION_NAMES, map(float, ep.actions[k])))),
                    (ch_episode, {"episode": index, "file": path.name, "step": k,
                                  "reward": float(ep.rewards[k]), **_json_attrs(ep.attrs)}),
                ]
                if ep.states is not None:
                    messages.append((ch_state, dict(zip(STATE_NAMES, map(float, ep.states[k])))))
                for ch, payload in messages:
                    writer.add_message(ch, log_time=t, publish_time=t, sequence=steps,
                                       data=json.dumps(payload).encode())
                t += STEP_NS
                steps += 1
            t += EPISODE_GAP_NS
        writer.finish()
    return {"episodes": len(paths), "steps": steps, "path": str(out)}


def _json_attrs(attrs: dict) -> dict:
    """Episode attrs that JSON can carry (numpy scalars as Python numbers)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)
    return out
