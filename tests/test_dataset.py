"""The prior dataset on disk: round trip, appends from several writers, and clear errors
for a missing, foreign, truncated or mismatched dataset."""

import json

import h5py
import numpy as np
import pytest

from parrot_cli.main import main as parrot
from parrot_core.dataset import (DatasetError, DatasetWriter, Episode, episode_paths,
                                 load_arrays, load_episodes, read_episode, summarize)


def episode(t=5, size=48, seed=0, task="grasp"):
    rng = np.random.default_rng(seed)
    return Episode(rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8),
                   rng.uniform(-1, 1, (t, 7)).astype(np.float32),
                   attrs={"task": task, "objects": ["rand_003", "rand_010"], "seed": seed,
                          "success": True, "source": "scripted"})


def test_round_trip_and_plain_h5py_readable(tmp_path):
    """What a writer stores comes back bit for bit, and any HDF5 reader opens an episode."""
    w = DatasetWriter(tmp_path, (48, 48), run_id="r")
    ep = episode()
    path = w.write_episode(ep)
    back = load_episodes(tmp_path)[0]
    assert np.array_equal(back.images, ep.images) and np.array_equal(back.actions, ep.actions)
    assert back.attrs["objects"] == ["rand_003", "rand_010"] and back.attrs["success"] is True
    with h5py.File(path) as f:
        assert f["images"].shape == (5, 48, 48, 3) and f["images"].dtype == np.uint8


def test_two_writers_append_and_stats_add_up(tmp_path):
    """Parallel workers and reruns never overwrite each other; the filter rate sums them."""
    for worker in (0, 1):
        w = DatasetWriter(tmp_path, (48, 48), worker=worker, run_id="r")
        w.write_episode(episode(seed=worker))
        w.record_attempt(True, "grasp")
        w.record_attempt(False, "grasp")
    DatasetWriter(tmp_path, (48, 48)).write_episode(episode(seed=9, task="pick_place"))
    s = summarize(tmp_path)
    assert s["episodes"] == 3 and s["steps"] == 15
    # the third writer never counted its episode (as if killed before record_attempt): it is
    # kept data all the same, one kept attempt
    assert (s["kept"], s["attempted"]) == (3, 5) and s["success_filter_rate"] == 0.6
    assert s["tasks"] == {"grasp": 2, "pick_place": 1}
    assert load_arrays(tmp_path)["images"].shape == (15, 48, 48, 3)


def test_in_flight_tmp_files_are_ignored(tmp_path):
    """A half-written episode (a killed writer's .tmp file) is not part of the dataset."""
    DatasetWriter(tmp_path, (48, 48)).write_episode(episode())
    (tmp_path / "episodes" / "x-w0-000000.h5.tmp").write_bytes(b"\x89HDF partial")
    assert len(episode_paths(tmp_path)) == 1 and summarize(tmp_path)["episodes"] == 1


def test_bad_datasets_are_clear_errors(tmp_path):
    """Missing dir, missing header, foreign format, truncated episode, wrong image size,
    NaN actions: each a DatasetError naming the thing and what was expected."""
    with pytest.raises(DatasetError, match="no such dataset directory"):
        summarize(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="dataset.json: missing"):
        summarize(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "dataset.json").write_text(json.dumps({"format": "robomimic", "version": 1}))
    with pytest.raises(DatasetError, match="expected 'parrot-dataset'"):
        summarize(foreign)

    root = tmp_path / "ds"
    path = DatasetWriter(root, (48, 48)).write_episode(episode())
    with pytest.raises(DatasetError, match="cannot append"):
        DatasetWriter(root, (64, 64))
    path.write_bytes(path.read_bytes()[:1000])  # truncated on disk
    with pytest.raises(DatasetError, match=f"{path.name}: corrupt or truncated"):
        summarize(root)
    with pytest.raises(DatasetError, match="NaN"):
        Episode(np.zeros((2, 48, 48, 3), np.uint8), np.full((2, 7), np.nan))


def test_dataset_info_command_reports_and_fails_clearly(tmp_path, capsys):
    """`parrot dataset info` prints the counts, and exits 1 with one line on a bad path."""
    w = DatasetWriter(tmp_path / "ds", (48, 48))
    w.write_episode(episode())
    w.record_attempt(True, "grasp")
    assert parrot(["dataset", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "episodes:     1" in out and "100.0% (1 kept / 1 attempted)" in out
    assert "camera:       not recorded" in out
    assert parrot(["dataset", "info", str(tmp_path / "missing")]) == 1
    assert "no such dataset directory" in capsys.readouterr().err


def test_arm_states_round_trip_and_bad_states_are_refused(tmp_path):
    """An episode's (T, 4) arm states are written and read back bitwise; states of the wrong
    shape or with NaN are refused before anything is written; episodes without states read
    back with states None."""
    writer = DatasetWriter(tmp_path, (48, 48), worker=0, run_id="t")
    states = np.random.default_rng(0).uniform(0, 0.5, (3, 4)).astype(np.float32)
    path = writer.write_episode(Episode(np.zeros((3, 48, 48, 3), np.uint8), np.zeros((3, 7)),
                                        states=states))
    assert np.array_equal(read_episode(path).states, states)
    with pytest.raises(DatasetError, match=r"states must be \(3, 4\)"):
        Episode(np.zeros((3, 48, 48, 3), np.uint8), np.zeros((3, 7)), states=states[:2])
    with pytest.raises(DatasetError, match="states contain NaN"):
        Episode(np.zeros((3, 48, 48, 3), np.uint8), np.zeros((3, 7)), states=np.full((3, 4), np.nan))
    plain = writer.write_episode(Episode(np.zeros((2, 48, 48, 3), np.uint8), np.zeros((2, 7))))
    assert read_episode(plain).states is None


def test_dataset_view_writes_a_foxglove_mcap_with_every_step(tmp_path):
    """`parrot dataset view` writes one MCAP: per step a foxglove.RawImage whose base64 data
    decodes to the episode's image, the action by name, the arm state, and the episode's
    attrs; episodes follow each other in time; a bad episode selection names what exists."""
    import base64
    import json

    from mcap.reader import make_reader

    from parrot_cli.main import main as parrot
    from parrot_core.dataset_view import DatasetViewError, write_view

    writer = DatasetWriter(tmp_path / "d", (8, 8), run_id="v")
    rng = np.random.default_rng(0)
    eps = [Episode(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                   rng.uniform(-1, 1, (n, 7)).astype(np.float32),
                   attrs={"task": "grasp", "seed": s, "success": True},
                   states=rng.uniform(0, 1, (n, 4)).astype(np.float32))
           for s, n in ((5, 3), (6, 4))]
    for e in eps:
        writer.write_episode(e)
    assert parrot(["dataset", "view", str(tmp_path / "d"), "--episodes", "all",
                   "--out", str(tmp_path / "v.mcap")]) == 0
    with open(tmp_path / "v.mcap", "rb") as f:
        msgs = [(c.topic, m.log_time, json.loads(m.data), s.name)
                for s, c, m in make_reader(f).iter_messages()]
    images = [m for m in msgs if m[0] == "/camera"]
    assert len(images) == 7 and images[0][3] == "foxglove.RawImage"
    first = images[4][2]  # episode 1, step 1
    pixels = np.frombuffer(base64.b64decode(first["data"]), np.uint8).reshape(8, 8, 3)
    np.testing.assert_array_equal(pixels, eps[1].images[1])
    actions = [m[2] for m in msgs if m[0] == "/action"]
    assert actions[0]["gripper"] == pytest.approx(float(eps[0].actions[0, 6]))
    states = [m[2] for m in msgs if m[0] == "/arm_state"]
    assert states[6]["tcp_z_m"] == pytest.approx(float(eps[1].states[3, 2]))
    steps = [m[2] for m in msgs if m[0] == "/episode"]
    assert [s["seed"] for s in steps] == [5, 5, 5, 6, 6, 6, 6] and steps[3]["success"] is True
    times = [m[1] for m in images]
    assert times == sorted(times) and times[3] - times[2] > times[2] - times[1]  # the gap
    with pytest.raises(DatasetViewError, match=r"out of range; .* has 2 episodes"):
        write_view(tmp_path / "d", tmp_path / "x.mcap", "0,5")


def test_the_camera_view_is_recorded_and_another_one_cannot_be_appended(tmp_path):
    """A collection records its camera's view in dataset.json; writing images of another view
    into the same directory is refused before anything is written, and the episodes already
    there stay."""
    from parrot_core.camera import DEFAULT_CAMERA, table_camera
    view = DEFAULT_CAMERA.view_record()
    w = DatasetWriter(tmp_path, (48, 48), run_id="a", camera_view=view)
    w.write_episode(episode(3))
    assert json.loads((tmp_path / "dataset.json").read_text())["camera_view"] == view
    assert summarize(tmp_path)["camera_view"] == view
    DatasetWriter(tmp_path, (48, 48), run_id="b", camera_view=view)  # the same view appends
    with pytest.raises(DatasetError, match="cannot append images from a camera at"):
        DatasetWriter(tmp_path, (48, 48), run_id="c", camera_view=table_camera(60.0, 0.58).view_record())
    assert len(episode_paths(tmp_path)) == 1
