"""Scripted collection: the policy succeeds, the CLI filters, refuses held-out objects,
survives SIGKILL, appends on rerun, and does not depend on the worker count."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from parrot_core.dataset import load_episodes, read_header, summarize
from sim.robot import HOME_POS
from sim.collect import CollectError, collect_episode, run_collection
from sim.env import EnvConfig, ParrotEnv
from sim.objects import POOLS
from sim.scripted import make_scripted_policy, policy_rng

ROOT = Path(__file__).resolve().parents[1]


def _collect_cli(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "parrot_cli.main", "collect", "--no-progress",
                             *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("task,seed", [("grasp", 0), ("pick_place", 1)])
def test_scripted_policy_succeeds_on_fixed_seed(task, seed):
    """Alg. 1 (grasp) and Alg. 2 (pick and place) achieve their task on a fixed seed; the
    episode has 25 (image, action) steps with actions clipped to +-0.9 and a +1 reward."""
    with ParrotEnv(EnvConfig(task=task, terminate_on_success=False)) as env:
        episode, success = collect_episode(env, make_scripted_policy(task, policy_rng(seed)), seed)
    assert success
    assert episode.images.shape == (25, 48, 48, 3) and episode.actions.shape == (25, 7)
    assert np.abs(episode.actions).max() <= 0.9 + 1e-6
    assert episode.rewards[-1] == 1.0
    assert episode.attrs["object_pool"] == "train" and episode.attrs["success"]


def test_policy_noise_comes_only_from_its_rng():
    """Same seed -> the same actions (scene and noise both fixed by the episode seed)."""
    runs = []
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        for _ in range(2):
            ep, _ = collect_episode(env, make_scripted_policy("grasp", policy_rng(4)), 4)
            runs.append(ep.actions)
    assert np.array_equal(runs[0], runs[1])


def test_a_deliberate_miss_is_retried_and_is_not_a_demonstration():
    """--retries 1 --misaim 1 (grasp, seed 1): the first close misses, the policy lifts, opens
    and grasps on its second try; demo_start is the step after the missed close, so a prior
    learns the recovery and not the miss. Without misaim, retries change nothing while the
    first grasp holds (no extra draws from the rng)."""
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        missed, success = collect_episode(
            env, make_scripted_policy("grasp", policy_rng(1), retries=1, misaim=1.0), 1)
        plain, _ = collect_episode(env, make_scripted_policy("grasp", policy_rng(0)), 0)
        with_retries, _ = collect_episode(
            env, make_scripted_policy("grasp", policy_rng(0), retries=1), 0)
    k = missed.attrs["demo_start"]
    closed = missed.states[:, 3]
    assert success and k > 0
    assert closed[k - 1] == 0 and closed[k] == 1  # the action before demo_start closed
    reopened = k + int(np.argmin(closed[k:]))
    assert closed[reopened] == 0 and closed[reopened:].max() == 1  # opened, then closed again
    assert plain.attrs["demo_start"] == 0 and np.array_equal(plain.actions, with_retries.actions)
    with pytest.raises(ValueError, match="misaim needs retries"):
        make_scripted_policy("grasp", policy_rng(0), misaim=0.5)
    with pytest.raises(CollectError, match="--misaim needs --retries"):
        run_collection("grasp", 1, 1, "unused", misaim=0.5)


def test_heldout_pool_is_refused_for_collection(tmp_path):
    """`parrot collect --objects heldout` fails with one clear line and writes nothing."""
    proc = _collect_cli("--task", "grasp", "--episodes", 1, "--out", tmp_path / "ds",
                        "--objects", "heldout")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "parrot collect: error:" in err and "held-out" in err
    assert not (tmp_path / "ds").exists()
    with pytest.raises(CollectError):
        run_collection("grasp", 1, 1, tmp_path / "ds2", objects="heldout")


def test_results_do_not_depend_on_worker_count(tmp_path):
    """Episode i uses seed S + i: 1 and 2 workers keep the same episodes, same actions;
    only train-pool objects appear in the dataset; each step records its arm state."""
    by_k = {}
    for k in (1, 2):
        counts = run_collection("mixed", 4, k, tmp_path / f"k{k}", seed=100, progress=False)
        eps = load_episodes(tmp_path / f"k{k}")
        by_k[k] = {e.attrs["seed"]: e.actions for e in eps}
        assert sum(c["attempted"] for c in counts.values()) == 4
        for e in eps:
            assert set(e.attrs["objects"]) <= set(POOLS["train"])
            assert e.attrs["object_pool"] == "train" and e.attrs["source"] == "scripted"
            # the arm state each action was chosen in: home pose and gripper open at the start
            assert np.allclose(e.states[0], [*HOME_POS, 0.0], atol=1e-3)
            assert e.states[:, 3].max() == 1.0  # every kept episode grasped
    for s in by_k[1]:
        assert np.array_equal(by_k[1][s], by_k[2][s])
    # the view the images were rendered from, for priors to be checked against
    from parrot_core.camera import DEFAULT_CAMERA
    assert read_header(tmp_path / "k1")["camera_view"] == DEFAULT_CAMERA.view_record()


def test_killed_collection_is_readable_and_rerun_appends(tmp_path):
    """SIGKILL `parrot collect` mid-run: its workers die with it, every finished episode
    reads back through parrot_core.dataset, `parrot dataset info` works, and a rerun adds
    episodes without touching the old ones."""
    out = tmp_path / "ds"
    proc = _collect_cli("--task", "grasp", "--episodes", 400, "--workers", 2, "--out", out)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "episodes").glob("*.h5"))) < 3:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(1.0)  # workers die with the parent (PR_SET_PDEATHSIG)
    first = sorted((out / "episodes").glob("*.h5"))
    time.sleep(1.0)
    assert sorted((out / "episodes").glob("*.h5")) == first, "workers kept writing after the kill"
    assert 3 <= len(first) < 400
    n_before = len(load_episodes(out))
    s = summarize(out)
    assert s["episodes"] == n_before and s["attempted"] >= n_before
    with h5py.File(first[0], "r") as f:  # any HDF5 reader opens an episode
        assert f["images"].dtype == np.uint8

    proc = _collect_cli("--task", "grasp", "--episodes", 3, "--workers", 1, "--out", out,
                        "--seed", 1000)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "kept/attempted" in stdout
    after = load_episodes(out)
    assert len(after) > n_before
    assert set(first) <= set(sorted((out / "episodes").glob("*.h5")))

    info = subprocess.run([sys.executable, "-m", "parrot_cli.main", "dataset", "info", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert f"episodes:     {len(after)}" in info.stdout and "success filter rate" in info.stdout
