"""LeRobot datasets both ways: a prior dataset exported as LeRobot v3.0 and imported back is
the same data, the files follow LeRobot's documented layout, and an action space that is not
ours is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from parrot_cli.main import main as parrot  # noqa: E402
from parrot_core.dataset import DatasetWriter, Episode, load_episodes  # noqa: E402
from parrot_core.lerobot_format import LeRobotFormatError, import_lerobot  # noqa: E402


def write_dataset(root, n: int = 3, steps: int = 6) -> None:
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root, (48, 48), worker=0, run_id="t")
    for k in range(n):
        writer.write_episode(Episode(
            rng.integers(0, 256, (steps, 48, 48, 3), dtype=np.uint8),
            rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
            np.r_[np.zeros(steps - 1), 1.0].astype(np.float32),
            states=rng.uniform(0, 0.5, (steps, 4)).astype(np.float32),
            attrs={"task": "grasp" if k % 2 == 0 else "pick_place", "seed": k, "success": True,
                   "demo_start": k}))


def test_export_then_import_round_trips_images_actions_states_and_tasks(tmp_path, capsys):
    """Export writes meta/info.json (v3.0, image/action/state features), the frames, the
    episode rows with their index ranges and the tasks; importing it gives back every
    episode's images (PNG is lossless), actions, states, rewards, task and demo_start (the
    first step that is a demonstration), source=lerobot."""
    write_dataset(tmp_path / "ours")
    assert parrot(["dataset", "export", str(tmp_path / "ours"), "--format", "lerobot",
                   "--out", str(tmp_path / "lr")]) == 0
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3
    assert info["total_frames"] == 18 and info["features"]["action"]["shape"] == [7]
    assert info["features"]["observation.image"]["dtype"] == "image"
    episodes = pq.read_table(tmp_path / "lr" / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 6), (6, 12), (12, 18)]
    frames = pq.read_table(tmp_path / "lr" / "data/chunk-000/file-000.parquet")
    assert {"observation.image", "action", "observation.state", "timestamp", "frame_index",
            "episode_index", "index", "task_index"} <= set(frames.column_names)
    tasks = pq.read_table(tmp_path / "lr" / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]

    assert parrot(["dataset", "import", str(tmp_path / "lr"), "--out", str(tmp_path / "back")]) == 0
    before = sorted(load_episodes(tmp_path / "ours"), key=lambda e: e.attrs["seed"])
    after = sorted(load_episodes(tmp_path / "back"), key=lambda e: e.attrs["lerobot_episode"])
    assert len(after) == 3
    for a, b in zip(before, after):
        assert np.array_equal(a.images, b.images)
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-7)
        np.testing.assert_allclose(a.states, b.states, atol=1e-7)
        np.testing.assert_allclose(a.rewards, b.rewards)
        assert b.attrs["task"] == a.attrs["task"] and b.attrs["source"] == "lerobot"
        assert b.attrs["demo_start"] == a.attrs["demo_start"]
        assert b.attrs["success"] is True and not b.attrs["success_assumed"]


def test_an_action_space_that_is_not_parrots_is_refused(tmp_path):
    """A 6D joint-position action (shape) and a 7D action in metres (range) are refused with
    what they are and what Parrot's action is; nothing is written."""
    write_dataset(tmp_path / "ours", n=1)
    assert parrot(["dataset", "export", str(tmp_path / "ours"), "--out", str(tmp_path / "lr")]) == 0
    info_path = tmp_path / "lr" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["shape"] = [6]
    info_path.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match=r"shape \[6\].*7D action"):
        import_lerobot(tmp_path / "lr", tmp_path / "x")
    assert not (tmp_path / "x").exists()

    import pyarrow as pa
    info["features"]["action"]["shape"] = [7]
    info_path.write_text(json.dumps(info))
    data = tmp_path / "lr" / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    big = pa.array((np.asarray(table["action"].to_pylist()) * 40).tolist(), pa.list_(pa.float32(), 7))
    pq.write_table(table.set_column(table.column_names.index("action"), "action", big), data)
    with pytest.raises(LeRobotFormatError, match=r"in \[-1, 1\]"):
        import_lerobot(tmp_path / "lr", tmp_path / "y")
    with pytest.raises(LeRobotFormatError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path / "ours", tmp_path / "z")
