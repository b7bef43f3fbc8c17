"""DAgger collection: the prior acts, the scripted policy labels every state of the reach, the
episode ends at the first close, and the dataset is the same whatever the worker count."""

from pathlib import Path

import numpy as np
import pytest

from parrot_core.action_space import GRIPPER_THRESHOLD
from parrot_core.dataset import load_episodes
from sim.collect import CollectError, run_collection
from sim.dagger import dagger_episode, expert_plan, nearest_object
from sim.env import EnvConfig, ParrotEnv
from sim.scripted import GRIP_CLOSE, ScriptedPolicy, policy_rng

ROOT = Path(__file__).resolve().parents[1]
PRIOR = ROOT / "models" / "prior_xarm6_48px"


def _closing_after(steps: int):
    """A learner that holds still for ``steps`` steps, then closes the gripper."""
    count = {"t": 0}

    def learner(obs, info):
        count["t"] += 1
        return np.array([0, 0, 0, 0, 0, 0, -1.0 if count["t"] > steps else 0.0], np.float32)
    return learner


def test_labels_are_the_scripted_plan_and_the_episode_ends_where_the_learner_closes():
    """A learner that never moves and closes at its 4th step: 4 labelled states, each label
    the scripted reach toward the nearest object (plus the collection's noise), never a close."""
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        episode = dagger_episode(env, _closing_after(3), ScriptedPolicy("grasp", policy_rng(7), 0.0),
                                 7, "test")
        _, info = env.reset(seed=7)
        plan = expert_plan(ScriptedPolicy("grasp", policy_rng(7), 0.0), info)
    assert len(episode) == 4 and episode.states.shape == (4, 4)
    assert np.allclose(episode.actions[0], np.clip(plan, -0.9, 0.9))
    assert (episode.actions[:, 6] > -GRIPPER_THRESHOLD).all()
    assert episode.attrs["source"] == "dagger (test)" and episode.attrs["task"] == "grasp"


def test_the_reach_ends_with_the_scripted_close():
    """A learner that follows the scripted plan: the last label is the scripted close."""
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        follower = ScriptedPolicy("grasp", policy_rng(3), 0.0)
        episode = dagger_episode(
            env, lambda obs, info: np.clip(expert_plan(follower, info), -0.9, 0.9).astype(np.float32),
            ScriptedPolicy("grasp", policy_rng(3), 0.0), 3, "follower")
    assert len(episode) < 25 and episode.actions[-1, 6] == pytest.approx(GRIP_CLOSE * 0.9)
    assert (episode.actions[:-1, 6] == 0.0).all()


def test_the_labeller_aims_at_the_object_nearest_the_tcp():
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        _, info = env.reset(seed=11)
    ee = np.asarray(info["ee_pos"])[:2]
    dists = {n: np.linalg.norm(np.asarray(p[:2]) - ee) for n, p in info["object_positions"].items()}
    assert nearest_object(info) == min(dists, key=dists.get)


def test_dagger_collection_keeps_every_episode_and_ignores_the_worker_count(tmp_path):
    """`parrot collect --dagger PRIOR` with the shipped prior: every attempt is kept, and one
    or two workers write the same labelled episodes."""
    datasets = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        counts = run_collection("mixed", 4, workers, out, seed=900, progress=False, dagger=PRIOR)
        assert counts == {"grasp": {"attempted": 2, "kept": 2},
                          "pick_place": {"attempted": 2, "kept": 2}}
        datasets.append({e.attrs["seed"]: e for e in load_episodes(out)})
    assert datasets[0].keys() == datasets[1].keys() == set(range(900, 904))
    for seed, episode in datasets[0].items():
        assert np.array_equal(episode.actions, datasets[1][seed].actions)
        assert episode.attrs["source"] in ("dagger (random z)", "dagger (mode)")


def test_dagger_refuses_a_directory_that_is_not_a_prior(tmp_path):
    with pytest.raises(CollectError, match="not a prior export dir"):
        run_collection("grasp", 1, 1, tmp_path / "ds", dagger=tmp_path)
    assert not (tmp_path / "ds").exists()
