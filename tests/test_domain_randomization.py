"""Domain randomization changes how an episode looks, never what happens in it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")
from sim.env import EnvConfig, ParrotEnv  # noqa: E402
from sim.scripted import make_scripted_policy  # noqa: E402


def run_scripted(env: ParrotEnv, seed: int):
    """A scripted grasp episode: (first observation, success, final end-effector position)."""
    obs, info = env.reset(seed=seed)
    first = obs
    policy = make_scripted_policy("grasp", np.random.default_rng(seed), noise_std=0.0)
    policy.reset()
    success, done = False, False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(info))
        success |= bool(info["success"])
        done = terminated or truncated
    return first, success, np.array(info["ee_pos"])


def test_a_randomized_episode_looks_different_and_runs_the_same():
    """Same seed: the same objects at the same places, the same scripted outcome and end pose;
    a different image (colours, light, camera, noise); and the same image again from a second
    randomized env, so a seed's look is reproducible. Two seeds look different."""
    plain, rand, again = (ParrotEnv(EnvConfig(randomize=r)) for r in (False, True, True))
    try:
        firsts = []
        for seed in (2, 9):
            obs_p, ok_p, ee_p = run_scripted(plain, seed)
            obs_r, ok_r, ee_r = run_scripted(rand, seed)
            obs_a, _, _ = run_scripted(again, seed)
            assert ok_p == ok_r
            np.testing.assert_allclose(ee_p, ee_r, atol=1e-9)
            assert np.abs(obs_p.astype(int) - obs_r).mean() > 5
            assert np.array_equal(obs_r, obs_a)
            firsts.append(obs_r)
            _, info_p = plain.reset(seed=seed)
            _, info_r = rand.reset(seed=seed)
            for name in info_p["object_names"]:
                np.testing.assert_allclose(info_p["object_positions"][name],
                                           info_r["object_positions"][name], atol=1e-9)
        assert np.abs(firsts[0].astype(int) - firsts[1]).mean() > 5
    finally:
        for env in (plain, rand, again):
            env.close()


def test_the_plain_env_is_untouched_by_a_randomized_one_in_the_same_process():
    """PyBullet keeps visual changes per client: a randomized env leaves a plain env's images
    exactly as they were."""
    plain = ParrotEnv(EnvConfig())
    before = plain.reset(seed=4)[0]
    rand = ParrotEnv(EnvConfig(randomize=True))
    rand.reset(seed=4)
    try:
        assert np.array_equal(plain.reset(seed=4)[0], before)
    finally:
        plain.close()
        rand.close()


def test_a_wider_randomization_moves_the_image_further_and_needs_randomize():
    """--randomize-scale K: every range K times as wide, so a seed's x3 look is further from
    its plain image than its x1 look (a perturbation a prior trained at x1 never saw); the
    flag without --randomize, or a negative K, is refused by name."""
    import argparse

    from sim.domain_randomization import RandomizationConfig
    from sim.env import add_scene_arguments, scene_config

    wide = RandomizationConfig().scaled(3.0)
    assert wide.camera_position_m == pytest.approx(3 * RandomizationConfig.camera_position_m)
    with pytest.raises(ValueError, match="randomization scale"):
        RandomizationConfig().scaled(-1.0)
    parser = argparse.ArgumentParser()
    add_scene_arguments(parser)
    with pytest.raises(ValueError, match="--randomize-scale 3 needs --randomize"):
        scene_config(parser.parse_args(["--randomize-scale", "3"]))
    assert scene_config(parser.parse_args(["--randomize", "--randomize-scale", "3"]))[
        "randomization"] == wide

    def first_image(**kw) -> np.ndarray:
        env = ParrotEnv(EnvConfig(task="grasp", **kw))
        try:
            return env.reset(seed=7)[0].astype(np.float32)
        finally:
            env.close()

    plain = first_image()
    near = np.abs(first_image(randomize=True) - plain).mean()
    far = np.abs(first_image(randomize=True, randomization=wide) - plain).mean()
    assert far > near > 0
