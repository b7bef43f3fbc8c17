"""Scripted collection through the ROS 2 nodes == the in-process collector, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("pybullet")
pytest.importorskip("rosbags")
from ros_helpers import REPO, domain_id, ros_env  # noqa: E402

pytestmark = pytest.mark.ros
SEED, EPISODES, TASK = 11, 2, "grasp"


def test_launch_scripted_collection_bags_convert_to_the_collectors_dataset(tmp_path):
    """`parrot launch sim driver:=scripted record:=true` with config/collect.yaml (lock-step
    twin, scripted node, recorder as separate processes) records one bag per episode;
    `parrot bag2dataset` turns them into a dataset whose episodes equal sim.collect's
    collect_episode for the same seeds: images, actions, rewards, arm states and attrs."""
    from parrot_core.dataset import load_episodes, summarize
    from sim.collect import collect_episode
    from sim.env import EnvConfig, ParrotEnv
    from sim.scripted import make_scripted_policy, policy_rng

    params = yaml.safe_load((REPO / "ros2_ws/src/parrot_bringup/config/collect.yaml").read_text())
    params["sim_twin"]["ros__parameters"].update(seed=SEED, episodes=EPISODES, task=TASK,
                                                 start_delay_s=0.5)
    params["recorder"]["ros__parameters"].update(out_dir=str(tmp_path / "bags"), session="s")
    pfile = tmp_path / "collect.yaml"
    pfile.write_text(yaml.safe_dump(params))
    env = ros_env(domain_id(__name__))
    run = subprocess.run([sys.executable, "-m", "parrot_cli", "launch", "sim",
                          "driver:=scripted", "record:=true", f"params_file:={pfile}"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stdout + run.stderr
    bags = sorted((tmp_path / "bags" / "s").iterdir())
    assert [b.name for b in bags] == [f"ep{i:06d}_seed{SEED + i}" for i in range(EPISODES)]
    assert all((b / "metadata.yaml").exists() for b in bags)

    convert = [sys.executable, "-m", "parrot_cli", "bag2dataset", str(tmp_path / "bags"),
               "--out", str(tmp_path / "ds"), "--keep", "all"]
    conv = subprocess.run(convert, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    got = {e.attrs["seed"]: e for e in load_episodes(tmp_path / "ds")}
    assert sorted(got) == [SEED + i for i in range(EPISODES)]
    stats_before = summarize(tmp_path / "ds")
    # converting the same bags into the same dataset again adds nothing and keeps the stats true
    again = subprocess.run(convert, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 episodes written" in again.stdout and f"{EPISODES} already converted" in again.stdout
    assert len(load_episodes(tmp_path / "ds")) == EPISODES
    assert summarize(tmp_path / "ds") == stats_before

    cfg = params["sim_twin"]["ros__parameters"]
    sim = ParrotEnv(EnvConfig(task=TASK, objects=cfg["objects"], image_size=cfg["image_size"],
                              max_steps=cfg["max_steps"], terminate_on_success=False))
    try:
        for seed, ep in got.items():
            ref, success = collect_episode(sim, make_scripted_policy(
                TASK, policy_rng(seed), noise_std=params["scripted"]["ros__parameters"]["noise_std"]),
                seed)
            assert ep.images.shape == ref.images.shape and ep.actions.shape == ref.actions.shape
            np.testing.assert_array_equal(ep.images, ref.images)
            np.testing.assert_array_equal(ep.actions, ref.actions)
            np.testing.assert_array_equal(ep.rewards, ref.rewards)
            np.testing.assert_array_equal(ep.states, ref.states)  # parrot/arm/state
            for key in ("task", "objects", "object_pool", "seed", "success"):
                assert ep.attrs[key] == ref.attrs[key], key
            assert ep.attrs["source"] == "bag"
    finally:
        sim.close()
