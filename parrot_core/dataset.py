"""The prior dataset: successful (image, 7D action) episodes on disk, as HDF5.

Layout of a dataset directory::

    DIR/
      dataset.json              format name/version, image size, action dim, the camera's
                                view when known (CameraModel.view_record)
      episodes/<run>-w<k>-<n>.h5   one episode per file (see Episode for the fields)
      stats/<run>-w<k>.json     attempted/kept counters of one collection worker
      stats/<run>-w<k>.seeds    the seeds it attempted, one a line (`parrot collect --resume`)

Why one file per episode: a collector or recorder that is killed midway must not
corrupt what it already wrote, and HDF5 gives no such guarantee for a file that is
open for writing. Each episode is written to ``*.h5.<pid>.tmp`` and renamed into place, so
a kill loses at most the episode in flight and rerunning simply adds files.
Any HDF5 reader opens an episode: ``h5py.File(path)["images"]`` is (T, H, W, 3) uint8.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from parrot_core.arm_state import STATE_DIM, STATE_NAMES
from parrot_core.camera import describe_view, same_view
from parrot_core.files import atomic_replace, atomic_write_text, read_format_json

FORMAT_NAME = "parrot-dataset"
FORMAT_VERSION = 1
EPISODE_DIR = "episodes"
STATS_DIR = "stats"


class DatasetError(RuntimeError):
    """A dataset directory or episode file that is missing, corrupt or mismatched."""


@dataclass
class Episode:
    """One trajectory: images[t] is what the policy saw when it chose actions[t]."""

    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    actions: np.ndarray  # (T, 7) float32 in [-1, 1]
    rewards: np.ndarray | None = None  # (T,) float32
    attrs: dict = field(default_factory=dict)  # task, objects, seed, success, source, ...
    # (T, STATE_DIM) float32 arm state when actions[t] was chosen (parrot_core.arm_state);
    # None for data recorded without it.
    states: np.ndarray | None = None

    def __post_init__(self):
        self.images = np.asarray(self.images)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.rewards is None:
            self.rewards = np.zeros(len(self.actions), np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        _check_episode_arrays(self.images, self.actions, self.rewards, "episode")
        if self.states is not None:
            self.states = np.asarray(self.states, dtype=np.float32)
            _check_states(self.states, len(self.actions), "episode")

    def __len__(self) -> int:
        return len(self.actions)


def demo_start(episode: Episode) -> int:
    """The first step whose action is a demonstration (attr ``demo_start``, 0 when absent):
    the steps before it led somewhere on purpose (a scripted deliberate miss) and only show
    the states a recovery starts from."""
    k = episode.attrs.get("demo_start", 0)
    is_int = isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
    if not is_int or not 0 <= k < len(episode):
        raise DatasetError(f"episode {episode.attrs.get('seed', '?')}: demo_start must be an "
                           f"integer step in [0, {len(episode)}), got {k!r}")
    return int(k)


def demonstration(episode: Episode) -> Episode:
    """The episode from its demo_start on: what a prior or BC learns from."""
    k = demo_start(episode)
    if k == 0:
        return episode
    return Episode(episode.images[k:], episode.actions[k:], episode.rewards[k:],
                   {**episode.attrs, "demo_start": 0},
                   None if episode.states is None else episode.states[k:])


def _check_states(states: np.ndarray, steps: int, where: str) -> None:
    if states.shape != (steps, STATE_DIM):
        raise DatasetError(f"{where}: states must be ({steps}, {STATE_DIM}) {STATE_NAMES}, "
                           f"got {states.shape}")
    if not np.all(np.isfinite(states)):
        raise DatasetError(f"{where}: states contain NaN or inf")


def _check_episode_arrays(images, actions, rewards, where: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DatasetError(
            f"{where}: images must be (T, H, W, 3) uint8, got {images.shape} {images.dtype}"
        )
    if actions.ndim != 2 or actions.shape[1] != 7:
        raise DatasetError(f"{where}: actions must be (T, 7), got {actions.shape}")
    if not (len(images) == len(actions) == len(rewards)):
        raise DatasetError(
            f"{where}: images/actions/rewards lengths differ: "
            f"{len(images)}/{len(actions)}/{len(rewards)}"
        )
    if len(actions) == 0:
        raise DatasetError(f"{where}: episode has no steps")
    if not np.all(np.isfinite(actions)):
        raise DatasetError(f"{where}: actions contain NaN or inf")


class DatasetWriter:
    """Appends episodes to a dataset directory; safe to run in several processes at once.

    Each writer has its own file prefix (run id + worker index), so parallel workers and
    repeated runs never overwrite each other.
    """

    def __init__(self, root, image_size: tuple[int, int], worker: int = 0, run_id: str | None = None,
                 camera_view: dict | None = None):
        self.root = Path(root)
        self.image_size = tuple(int(s) for s in image_size)
        self.camera_view = camera_view  # CameraModel.view_record() of the images, when known
        self.prefix = f"{run_id or uuid.uuid4().hex[:8]}-w{worker}"
        (self.root / EPISODE_DIR).mkdir(parents=True, exist_ok=True)
        (self.root / STATS_DIR).mkdir(parents=True, exist_ok=True)
        self._ensure_header()
        self._count = 0
        self.stats = {"attempted": 0, "kept": 0, "by_task": {}}

    def _ensure_header(self) -> None:
        header_path = self.root / "dataset.json"
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "image_size": list(self.image_size),
            "action_dim": 7,
        }
        if self.camera_view is not None:
            header["camera_view"] = self.camera_view
        if header_path.exists():
            existing = read_header(self.root)
            if list(existing["image_size"]) != list(self.image_size):
                raise DatasetError(
                    f"{self.root}: dataset holds {existing['image_size']} images, "
                    f"cannot append {list(self.image_size)} images"
                )
            old_view = existing.get("camera_view")
            if old_view and self.camera_view and not same_view(old_view, self.camera_view):
                raise DatasetError(
                    f"{self.root}: dataset holds images from {describe_view(old_view)}, cannot "
                    f"append images from {describe_view(self.camera_view)} (another --out, or "
                    f"the same --camera-file)")
            return
        try:  # first writer wins; others find it already there
            fd = os.open(header_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return self._ensure_header()
        with os.fdopen(fd, "w") as f:
            json.dump(header, f, indent=2)

    def write_episode(self, episode: Episode) -> Path:
        if tuple(episode.images.shape[1:3]) != self.image_size:
            raise DatasetError(
                f"episode images are {episode.images.shape[1:3]}, dataset expects {self.image_size}"
            )
        path = self.root / EPISODE_DIR / f"{self.prefix}-{self._count:06d}.h5"
        with atomic_replace(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=episode.images, chunks=episode.images.shape,
                             compression="gzip", compression_opts=4)
            f.create_dataset("actions", data=episode.actions)
            f.create_dataset("rewards", data=episode.rewards)
            if episode.states is not None:
                f.create_dataset("states", data=episode.states)
            for key, value in episode.attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        self._count += 1
        return path

    def record_attempt(self, kept: bool, task: str = "unknown", seed: int | None = None,
                       key: str | None = None) -> None:
        """Count one attempted trajectory (kept or filtered out); persisted at once. ``key``
        names its source (e.g. a bag's episode) for attempted_keys().

        Call it after write_episode: a kill between the two leaves an episode file that the
        counters do not know of yet, which attempted_seeds() / attempted_keys() still find."""
        if seed is not None:
            with open(self.root / STATS_DIR / f"{self.prefix}.seeds", "a") as f:
                f.write(f"{int(seed)}\n")
        if key is not None:
            with open(self.root / STATS_DIR / f"{self.prefix}.keys", "a") as f:
                f.write(f"{key}\n")
        self.stats["attempted"] += 1
        self.stats["kept"] += int(kept)
        t = self.stats["by_task"].setdefault(task, {"attempted": 0, "kept": 0})
        t["attempted"] += 1
        t["kept"] += int(kept)
        atomic_write_text(self.root / STATS_DIR / f"{self.prefix}.json", json.dumps(self.stats))


def attempted_seeds(root) -> set[int]:
    """Seeds that collection workers already attempted in `root` (kept or not)."""
    seeds = {int(line) for line in _recorded_lines(root, "seeds") if line.strip().isdigit()}
    seeds.update(int(read_episode_attrs(path)["seed"]) for path in _uncounted_episodes(root))
    return seeds


def attempted_keys(root) -> set[str]:
    """Source keys (e.g. a bag's episode) already attempted in `root` (kept or not)."""
    keys = set(_recorded_lines(root, "keys"))
    keys.update(read_episode_attrs(path).get("source_key") for path in _uncounted_episodes(root))
    keys.discard(None)
    return keys


def _recorded_lines(root, suffix: str) -> list[str]:
    """The complete lines of every writer's STATS_DIR/*.suffix file (a kill mid-line leaves a
    last line without its newline: not counted)."""
    lines: list[str] = []
    for path in (Path(root) / STATS_DIR).glob(f"*.{suffix}"):
        lines += path.read_text().split("\n")[:-1]
    return lines


def _uncounted_episodes(root) -> list[Path]:
    """Episode files written but not yet counted by their writer's stats: killed between
    write_episode and record_attempt."""
    root = Path(root)
    uncounted: list[Path] = []
    for prefix, files in _episodes_by_writer(root).items():
        stats_file = root / STATS_DIR / f"{prefix}.json"
        counted = json.loads(stats_file.read_text())["kept"] if stats_file.exists() else 0
        uncounted += files[counted:]
    return uncounted


def _episodes_by_writer(root: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for path in episode_paths(root):
        groups.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return groups


def read_header(root) -> dict:
    root = Path(root)
    header_path = root / "dataset.json"
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    return read_format_json(header_path, FORMAT_NAME, FORMAT_VERSION, load_error=DatasetError,
                            what="header", missing_hint="not a Parrot dataset")


def episode_paths(root) -> list[Path]:
    """Finished episode files, in a stable order (in-flight ``.tmp`` files are ignored)."""
    return sorted((Path(root) / EPISODE_DIR).glob("*.h5"))


def read_episode(path) -> Episode:
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            images, actions, rewards = f["images"][()], f["actions"][()], f["rewards"][()]
            states = f["states"][()] if "states" in f else None
            attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
    except (OSError, KeyError) as e:
        raise DatasetError(f"{path}: corrupt or truncated episode file ({e})") from e
    _check_episode_arrays(images, actions, rewards, str(path))
    if states is not None:
        _check_states(states, len(actions), str(path))
    return Episode(images, actions, rewards, attrs, states)


def read_episode_attrs(path) -> dict:
    """An episode's attrs (task, seed, objects, ...) without reading its arrays."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _decode_attr(v) for k, v in f.attrs.items()}
    except OSError as e:
        raise DatasetError(f"{path}: corrupt or truncated episode file ({e})") from e


def _decode_attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_episodes(root) -> list[Episode]:
    read_header(root)
    paths = episode_paths(root)
    if not paths:
        raise DatasetError(f"{root}: dataset has no episodes")
    return [read_episode(p) for p in paths]


def load_arrays(root, tasks: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """All demonstration steps (each episode from its demo_start) as flat arrays: images
    (N,H,W,3) uint8, actions (N,7), episode (N,) int, and states (N,4) when every episode has
    them. ``tasks``: only the episodes of these tasks."""
    episodes = load_episodes(root)
    if tasks:
        episodes = [e for e in episodes if e.attrs.get("task") in tasks]
        if not episodes:
            raise DatasetError(f"{root}: no episodes of task {', '.join(tasks)}")
    episodes = [demonstration(e) for e in episodes]
    arrays = {
        "images": np.concatenate([e.images for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "episode": np.concatenate([np.full(len(e), i) for i, e in enumerate(episodes)]),
    }
    if all(e.states is not None for e in episodes):
        arrays["states"] = np.concatenate([e.states for e in episodes])
    return arrays


def summarize(root) -> dict:
    """What `parrot dataset info` prints; reads every episode, so corruption is found."""
    header = read_header(root)
    episodes = load_episodes(root)
    objects, tasks, sources = set(), {}, {}
    for e in episodes:
        objects.update(e.attrs.get("objects", []) or [])
        task = e.attrs.get("task", "unknown")
        tasks[task] = tasks.get(task, 0) + 1
        source = e.attrs.get("source", "unknown")
        sources[source] = sources.get(source, 0) + 1
    attempted = kept = 0
    for stats_file in sorted((Path(root) / STATS_DIR).glob("*.json")):
        try:
            s = json.loads(stats_file.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{stats_file}: corrupt stats file ({e})") from e
        attempted += s["attempted"]
        kept += s["kept"]
    # a writer killed between writing an episode and counting it: the episode is kept data
    uncounted = len(_uncounted_episodes(root))
    attempted, kept = attempted + uncounted, kept + uncounted
    return {
        "path": str(root),
        "image_size": header["image_size"],
        "episodes": len(episodes),
        "steps": int(sum(len(e) for e in episodes)),
        "objects_seen": sorted(objects),
        "tasks": tasks,
        "sources": sources,
        "attempted": attempted,
        "kept": kept,
        "success_filter_rate": (kept / attempted) if attempted else None,
        "camera_view": header.get("camera_view"),
    }


# ---- `parrot dataset info | view` ------------------------------------------------------

def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="dataset_cmd", required=True)
    info = sub.add_parser("info", help="print episodes, steps, objects and filter rate")
    info.add_argument("path", help="dataset directory")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    view = sub.add_parser("view", help="episodes as an MCAP file for Foxglove (images, actions, "
                                       "arm state, rewards over time)")
    view.add_argument("path", help="dataset directory")
    view.add_argument("--out", required=True, help="MCAP file to write")
    view.add_argument("--episodes", default="0-9",
                      help="episode indices: all, 0,3,7 or 0-9 (default 0-9)")
    export = sub.add_parser("export", help="write the dataset in another format (LeRobot v3.0)")
    export.add_argument("path", help="dataset directory")
    export.add_argument("--format", choices=["lerobot"], default="lerobot")
    export.add_argument("--out", required=True, help="directory to create")
    export.add_argument("--fps", type=float, default=10.0, help="control rate of the episodes")
    imp = sub.add_parser("import", help="append a LeRobot dataset (images + 7D actions) to a "
                                        "prior dataset")
    imp.add_argument("source", help="LeRobot dataset directory (v3.0 or v2.x)")
    imp.add_argument("--out", required=True, help="prior dataset directory (created or appended)")
    imp.add_argument("--image-key", help="camera feature to use (default: the first image/video)")
    imp.add_argument("--image-size", type=int, nargs=2, default=(48, 48), metavar=("H", "W"))
    imp.add_argument("--task", help="task name for every episode (default: the dataset's)")
    imp.add_argument("--camera-file", metavar="YAML",
                     help="crop frames to the models' view as the policy node does")


def main(args) -> int:
    if args.dataset_cmd == "export":
        from parrot_core.lerobot_format import export_lerobot
        r = export_lerobot(args.path, args.out, fps=args.fps)
        print(f"parrot dataset export: {r['episodes']} episodes, {r['frames']} frames -> "
              f"{r['path']} (LeRobot v3.0)")
        return 0
    if args.dataset_cmd == "import":
        from parrot_core.camera import optional_camera
        from parrot_core.lerobot_format import import_lerobot
        r = import_lerobot(args.source, args.out, args.image_key, tuple(args.image_size),
                           args.task, optional_camera(args.camera_file))
        print(f"parrot dataset import: {r['episodes']} episodes from {args.source} "
              f"(camera {r['image_key']}) -> {r['path']}")
        return 0
    if args.dataset_cmd == "view":
        from parrot_core.dataset_view import write_view
        n = write_view(args.path, args.out, args.episodes)
        print(f"parrot dataset view: {n['episodes']} episodes, {n['steps']} steps -> {n['path']}; "
              f"open it in Foxglove (Image panel on /camera, Plot on /action.*)")
        return 0
    s = summarize(args.path)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    rate = "n/a (no collection stats)" if s["success_filter_rate"] is None else (
        f"{s['success_filter_rate']:.1%} ({s['kept']} kept / {s['attempted']} attempted)")
    print(f"dataset:      {s['path']}")
    print(f"image size:   {s['image_size'][0]}x{s['image_size'][1]}")
    print(f"camera:       {describe_view(s['camera_view']) if s['camera_view'] else 'not recorded'}")
    print(f"episodes:     {s['episodes']}")
    print(f"steps:        {s['steps']}")
    print(f"tasks:        {', '.join(f'{k}={v}' for k, v in sorted(s['tasks'].items()))}")
    print(f"sources:      {', '.join(f'{k}={v}' for k, v in sorted(s['sources'].items()))}")
    print(f"objects seen: {len(s['objects_seen'])} ({', '.join(s['objects_seen'][:12])}"
          f"{', ...' if len(s['objects_seen']) > 12 else ''})")
    print(f"success filter rate: {rate}")
    return 0
