"""The twin is a gymnasium.Env: registered ids, spaces, and gymnasium's own env checker."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("pybullet")
from sim.env import GYM_IDS, ParrotEnv  # noqa: E402  (importing registers the ids)


@pytest.mark.parametrize("task", ["grasp", "pick_place"])
def test_registered_env_passes_gymnasiums_checker_without_warnings(task):
    """gymnasium.make(id, objects="heldout") builds the twin; check_env (spaces, seeding and
    reset determinism, step API, render) passes and warns about nothing."""
    env = gymnasium.make(GYM_IDS[task], objects="heldout", render_mode="rgb_array")
    try:
        assert isinstance(env.unwrapped, ParrotEnv)
        assert env.unwrapped.config.task == task and env.unwrapped.config.objects == "heldout"
        assert env.observation_space == gymnasium.spaces.Box(0, 255, (48, 48, 3), np.uint8)
        assert env.action_space.shape == (7,) and env.action_space.high.max() == 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker warning fails the test
            check_env(env.unwrapped)
        obs, _ = env.reset(seed=3)
        assert np.array_equal(env.render(), obs)
    finally:
        env.close()


def test_every_task_has_an_id_and_unseeded_resets_follow_the_seeded_stream():
    """One id per task; reset(seed=S) then reset() repeats scene for scene."""
    assert set(GYM_IDS) == {"grasp", "lift", "pick_place", "place_on_target"}
    assert all(i in gymnasium.registry for i in GYM_IDS.values())
    firsts = []
    for _ in range(2):
        env = gymnasium.make(GYM_IDS["grasp"])
        env.reset(seed=11)
        obs, info = env.reset()
        firsts.append((obs, info["seed"]))
        env.close()
    assert firsts[0][1] == firsts[1][1] and np.array_equal(firsts[0][0], firsts[1][0])
