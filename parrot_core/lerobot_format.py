"""Prior datasets to and from LeRobot's dataset format (LeRobotDataset v3.0).

    parrot dataset export DIR --format lerobot --out LEROBOT_DIR [--fps 10]
    parrot dataset import LEROBOT_DIR --out DIR [--image-key K] [--image-size 48] [--task T]

What a v3.0 dataset is (LeRobot's `datasets/utils.py`, documented schema)::

    meta/info.json                      codebase_version, fps, features, totals, path templates
    meta/tasks.parquet                  task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks,
                                        length, dataset_from_index, dataset_to_index, ...
    data/chunk-000/file-000.parquet     one row per frame: features + timestamp, frame_index,
                                        episode_index, index, task_index

Export writes the camera image as an `image` feature (PNG bytes in the parquet, no video
codec needed), the 7D action as `action` (our names), the arm state as `observation.state`
when the episodes have it, and `next.reward` / `next.success`. Import reads `image` features
(and `video` ones, decoded with OpenCV), requires an `action` of 7 values in [-1, 1]
(per-step end-effector deltas and the gripper, our action space): any other action space is
refused with what it is and what ours is, since guessing a mapping would train the prior on
the wrong thing. Imported episodes are `source=lerobot`; their success is `next.success` at
the last frame when there is such a column, otherwise the recording is taken as a
demonstration (success) and the episode says so (`success_assumed`).

pyarrow is an optional extra (`pip install pyarrow`), never needed on robot compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from parrot_core.action_space import ACTION_DIM, ACTION_NAMES
from parrot_core.arm_state import STATE_NAMES
from parrot_core.camera import model_image
from parrot_core.dataset import DatasetWriter, Episode, demo_start, load_episodes, read_header
from parrot_core.files import atomic_write_text

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
IMAGE_KEY = "observation.image"


class LeRobotFormatError(RuntimeError):
    """A LeRobot dataset that cannot be read, or whose actions are not Parrot's."""


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LeRobotFormatError("LeRobot datasets need pyarrow: pip install pyarrow") from None
    return pa, pq


def _png(image: np.ndarray) -> bytes:
    import cv2
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))  # cv2 wants BGR
    if not ok:
        raise LeRobotFormatError("PNG encoding failed")
    return buf.tobytes()


def _unpng(data: bytes) -> np.ndarray:
    import cv2
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise LeRobotFormatError("an image of the dataset is not a decodable PNG/JPEG")
    return img[:, :, ::-1].copy()


# ---- export ---------------------------------------------------------------------------------

def export_lerobot(src, out, fps: float = 10.0, robot_type: str = "xarm6") -> dict:
    """Write the dataset at `src` as a LeRobot v3.0 dataset at `out` (which must not exist)."""
    pa, pq = _pa()
    out = Path(out)
    if out.exists():
        raise LeRobotFormatError(f"{out} exists; choose a new --out")
    episodes = load_episodes(src)
    if not episodes:
        raise LeRobotFormatError(f"{src}: no episodes to export")
    h, w = (int(v) for v in read_header(src)["image_size"])
    with_states = all(e.states is not None for e in episodes)
    tasks = sorted({str(e.attrs.get("task", "unknown")) for e in episodes})
    columns = {k: [] for k in (IMAGE_KEY, "action", "observation.state", "next.reward",
                               "next.success", "timestamp", "frame_index", "episode_index",
                               "index", "task_index")}
    episode_rows = []
    index = 0
    for k, ep in enumerate(episodes):
        n = len(ep.actions)
        task = str(ep.attrs.get("task", "unknown"))
        columns[IMAGE_KEY] += [{"bytes": _png(img), "path": None} for img in ep.images]
        columns["action"] += ep.actions.astype(np.float32).tolist()
        if with_states:
            columns["observation.state"] += ep.states.astype(np.float32).tolist()
        columns["next.reward"] += ep.rewards.astype(np.float32).tolist()
        success = bool(ep.attrs.get("success", True))
        columns["next.success"] += [success and t == n - 1 for t in range(n)]
        columns["timestamp"] += (np.arange(n, dtype=np.float32) / fps).tolist()
        columns["frame_index"] += list(range(n))
        columns["episode_index"] += [k] * n
        columns["index"] += list(range(index, index + n))
        columns["task_index"] += [tasks.index(task)] * n
        episode_rows.append({"episode_index": k, "tasks": [task], "length": n,
                             "data/chunk_index": 0, "data/file_index": 0,
                             "dataset_from_index": index, "dataset_to_index": index + n,
                             "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                             # Parrot's own: the steps before it are no demonstration
                             "demo_start": demo_start(ep)})
        index += n
    if not with_states:
        del columns["observation.state"]

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {IMAGE_KEY: image_type, "action": pa.list_(pa.float32(), ACTION_DIM),
             "observation.state": pa.list_(pa.float32(), len(STATE_NAMES)),
             "next.reward": pa.float32(), "next.success": pa.bool_(), "timestamp": pa.float32(),
             "frame_index": pa.int64(), "episode_index": pa.int64(), "index": pa.int64(),
             "task_index": pa.int64()}
    data = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
    for rel in (DATA_PATH, EPISODES_PATH):
        (out / rel.format(chunk_index=0, file_index=0)).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, out / DATA_PATH.format(chunk_index=0, file_index=0))
    pq.write_table(pa.Table.from_pylist(episode_rows),
                   out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(pa, pq, out / TASKS_PATH, tasks)
    features = {
        IMAGE_KEY: {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channel"]},
        "action": {"dtype": "float32", "shape": [ACTION_DIM], "names": list(ACTION_NAMES)},
        **({"observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)],
                                  "names": list(STATE_NAMES)}} if with_states else {}),
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
            "total_episodes": len(episodes), "total_frames": index, "total_tasks": len(tasks),
            "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": DATA_PATH, "video_path": None, "features": features}
    atomic_write_text(out / "meta" / "info.json", json.dumps(info, indent=4))
    return {"episodes": len(episodes), "frames": index, "path": str(out)}


def _write_tasks(pa, pq, path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes it: the task strings are the (named) index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"], "column_indexes": [],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                     "numpy_type": "int64", "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, path)


# ---- import ---------------------------------------------------------------------------------

def _read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise LeRobotFormatError(f"{root}: no meta/info.json (not a LeRobot dataset)") from None
    except json.JSONDecodeError as e:
        raise LeRobotFormatError(f"{path}: not JSON ({e})") from None
    if not str(info.get("codebase_version", "")).startswith(("v3", "v2")):
        raise LeRobotFormatError(f"{path}: codebase_version {info.get('codebase_version')!r}; "
                                 f"this reads v2.x and v3.0")
    return info


def check_action_space(info: dict, root: Path) -> None:
    """Refuse an action feature that is not our 7D per-step end-effector delta + gripper."""
    action = info.get("features", {}).get("action")
    if action is None:
        raise LeRobotFormatError(f"{root}: no `action` feature")
    shape = list(action.get("shape", []))
    if shape != [ACTION_DIM]:
        raise LeRobotFormatError(
            f"{root}: `action` has shape {shape} ({action.get('names')}); Parrot's prior learns "
            f"a {ACTION_DIM}D action {list(ACTION_NAMES)} (per-step end-effector deltas and "
            f"the gripper, in [-1, 1]). Convert the recording's actions to that first.")


def _image_key(info: dict, wanted: str | None) -> str:
    cams = [k for k, f in info["features"].items() if f.get("dtype") in ("image", "video")]
    if wanted:
        if wanted not in cams:
            raise LeRobotFormatError(f"--image-key {wanted}: not an image feature (has {cams})")
        return wanted
    if not cams:
        raise LeRobotFormatError("the dataset has no image or video feature: a prior needs images")
    return cams[0]


def _video_frames(root: Path, info: dict, key: str, episode: dict) -> list[np.ndarray]:
    """The episode's frames of a `video` feature, decoded with OpenCV."""
    import cv2
    template = info.get("video_path") or ""
    path = root / template.format(video_key=key, episode_chunk=episode.get("data/chunk_index", 0),
                                  episode_index=episode["episode_index"],
                                  chunk_index=episode.get(f"videos/{key}/chunk_index", 0),
                                  file_index=episode.get(f"videos/{key}/file_index", 0))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise LeRobotFormatError(f"{path}: cannot open the video (OpenCV)")
    fps = float(info["fps"])
    start = float(episode.get(f"videos/{key}/from_timestamp", 0.0))
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(round(start * fps)))
    frames = []
    for _ in range(int(episode["length"])):
        ok, frame = cap.read()
        if not ok:
            raise LeRobotFormatError(f"{path}: fewer frames than episode "
                                     f"{episode['episode_index']} needs")
        frames.append(frame[:, :, ::-1].copy())
    cap.release()
    return frames


def import_lerobot(root, out, image_key: str | None = None, image_size=(48, 48),
                   task: str | None = None, camera=None) -> dict:
    """Append the LeRobot dataset at `root` to the prior dataset at `out`."""
    pa, pq = _pa()
    root = Path(root)
    info = _read_info(root)
    check_action_space(info, root)
    key = _image_key(info, image_key)
    is_video = info["features"][key]["dtype"] == "video"
    data = pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pydict() \
        if (root / "data").is_dir() else None
    if not data:
        raise LeRobotFormatError(f"{root}: no data/*.parquet")
    episodes_meta = _episodes_meta(root, pq, data)
    tasks = _tasks(root, pq)
    actions = np.asarray(data["action"], np.float32)
    if np.any(np.abs(actions) > 1.0 + 1e-6) or not np.all(np.isfinite(actions)):
        raise LeRobotFormatError(
            f"{root}: `action` values reach {np.nanmax(np.abs(actions)):.3g}; Parrot's actions "
            f"are per-step deltas in [-1, 1] (joint positions or metres are not): convert first")
    state_key = "observation.state"
    has_state = (state_key in data and
                 list(info["features"].get(state_key, {}).get("shape", [])) == [len(STATE_NAMES)])
    episode_of = np.asarray(data["episode_index"])
    frame_of = np.asarray(data["frame_index"])
    writer = DatasetWriter(out, tuple(image_size), worker=0,
                           camera_view=camera.view_record() if camera else None)
    n = 0
    for ep in episodes_meta:
        rows = np.flatnonzero(episode_of == ep["episode_index"])
        rows = rows[np.argsort(frame_of[rows])]
        frames = (_video_frames(root, info, key, ep) if is_video
                  else [_unpng(data[key][r]["bytes"]) for r in rows])
        images = np.stack([model_image(f, image_size, camera) for f in frames])
        success_col = data.get("next.success")
        success = bool(success_col[rows[-1]]) if success_col is not None else True
        ep_task = task or (ep.get("tasks") or [tasks.get(int(data["task_index"][rows[0]]), "unknown")])[0]
        writer.write_episode(Episode(
            images, actions[rows],
            np.asarray(data["next.reward"], np.float32)[rows] if "next.reward" in data else None,
            states=np.asarray(data[state_key], np.float32)[rows] if has_state else None,
            attrs={"task": ep_task, "objects": [], "object_pool": "lerobot", "seed": -1,
                   "success": success, "success_assumed": success_col is None,
                   "source": "lerobot", "lerobot_episode": int(ep["episode_index"]),
                   "demo_start": int(ep.get("demo_start") or 0),
                   "source_key": f"{root.resolve()}#{int(ep['episode_index'])}"}))
        writer.record_attempt(True, ep_task, key=f"{root.resolve()}#{int(ep['episode_index'])}")
        n += 1
    return {"episodes": n, "image_key": key, "path": str(out)}


def _episodes_meta(root: Path, pq, data: dict) -> list[dict]:
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if files:
        rows = pq.read_table(files).to_pylist()
    elif (root / "meta" / "episodes.jsonl").exists():  # v2.x
        rows = [json.loads(line) for line in (root / "meta" / "episodes.jsonl").read_text().splitlines()
                if line.strip()]
    else:  # no episode metadata: the episodes the frames name
        rows = [{"episode_index": int(k), "length": int(np.sum(np.asarray(data["episode_index"]) == k))}
                for k in sorted(set(data["episode_index"]))]
    return sorted(rows, key=lambda r: r["episode_index"])


def _tasks(root: Path, pq) -> dict[int, str]:
    path = root / TASKS_PATH
    if path.exists():
        t = pq.read_table(path).to_pydict()
        if "task" in t:
            return {int(i): str(s) for i, s in zip(t["task_index"], t["task"])}
    legacy = root / "meta" / "tasks.jsonl"
    if legacy.exists():
        return {int(r["task_index"]): str(r["task"]) for r in
                (json.loads(line) for line in legacy.read_text().splitlines() if line.strip())}
    return {}
