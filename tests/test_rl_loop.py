"""The RL loop (parrot_core.rl_loop): replay semantics, checkpoints and --resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from parrot_core.action_transform import IdentityTransform
from parrot_core.rl_loop import CHECKPOINT, LoopConfig, RunError, make_agent, read_metrics, train
from parrot_core.sac import ReplayBuffer
from rl_toy import ColorSignEnv, tiny_config

torch.set_num_threads(1)
CFG = dict(learning_starts=20, batch_size=16, hidden_sizes=(32,))


def _run(out, steps, fail_at=None, resume=False, seed=3, **cfg):
    agent = make_agent(tiny_config("sac", **{**CFG, **cfg}), seed=seed)
    loop = LoopConfig(total_steps=steps, seed=seed, eval_every=30, eval_episodes=4, progress=False)
    train(agent, lambda: ColorSignEnv(horizon=3, fail_at_step=fail_at), IdentityTransform(), out, loop,
          resume=resume, run_meta={"algo": "sac", "task": "toy"},
          eval_env_factory=lambda: ColorSignEnv(horizon=3))
    return agent


def _rows(out):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_metrics(out)]


def test_resume_after_crash_continues_from_the_same_step(tmp_path):
    """A run killed at env step 50 resumes from its checkpoint at step 30 (rows after it are
    dropped) and, with replay, optimiser and RNG states restored, ends bit-identical to an
    uninterrupted run: same final weights, same metrics rows at the same env steps."""
    straight = _run(tmp_path / "a", 90)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 90, fail_at=50)
    ckpt = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)
    assert ckpt["loop"]["global_step"] == 30 and sorted(p.name for p in (tmp_path / "b").glob("replay_*")) == \
        ["replay_30.npz"]
    resumed = _run(tmp_path / "b", 90, resume=True)
    assert [r["env_step"] for r in _rows(tmp_path / "b") if r["kind"] == "eval"] == [0, 30, 60, 90]
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    for k, v in straight.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k]), k
    assert straight.num_updates == resumed.num_updates == 90 - 20 + 1


def test_resume_extends_a_finished_run_and_refuses_misuse(tmp_path):
    """A finished run continues to a larger --steps with --resume; without --resume the run
    dir is protected; a different config on --resume is refused with RunError."""
    _run(tmp_path, 30)
    with pytest.raises(RunError, match="--resume"):
        _run(tmp_path, 60)
    with pytest.raises(RunError, match="different sac config"):
        _run(tmp_path, 60, resume=True, batch_size=8)
    _run(tmp_path, 60, resume=True)
    steps = [r["env_step"] for r in read_metrics(tmp_path) if r["kind"] == "eval"]
    assert steps == [0, 30, 60]
    assert json.loads((tmp_path / "config.json").read_text())["loop"]["total_steps"] == 60


def test_truncation_bootstraps_termination_does_not():
    """Replay 'done' is `terminated` only: time-limit truncations keep bootstrapping."""
    buf = ReplayBuffer(8, (8, 8, 3), 7)
    img = np.zeros((8, 8, 3), np.uint8)
    buf.add(img, np.zeros(7), 0.0, img, terminated=False)  # truncated at max_steps
    buf.add(img, np.zeros(7), 1.0, img, terminated=True)
    assert buf.dones[:2].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bootstrap", [True, False])
def test_without_time_limit_bootstrap_the_cut_ends_the_critics_return(tmp_path, bootstrap):
    """With bootstrap_time_limit=False the loop stores an episode cut at its time limit as done
    (the critic's target stops there); by default it bootstraps. Either way the cut is an
    episode end, so n-step returns never run into the next episode."""
    _run(tmp_path, 30, bootstrap_time_limit=bootstrap)
    with np.load(tmp_path / "replay_30.npz") as f:
        dones, ends = f["dones"], f["ends"]
    cut = np.arange(30) % 3 == 2  # ColorSignEnv(horizon=3) truncates every third step
    assert ends.tolist() == cut.tolist()
    assert dones.tolist() == (np.zeros(30) if bootstrap else cut).tolist()


class RecordingEnv(ColorSignEnv):
    """ColorSignEnv that logs every step's (step in episode, action, reward)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.log = []

    def step(self, action):
        t = self.t
        out = super().step(action)
        self.log.append((t, np.array(action, np.float32), out[1]))
        return out


def test_holding_an_action_stores_one_transition_per_decision(tmp_path):
    """hold_steps=2 on 3-step episodes: the policy acts at steps 0 and 2 and holds its action in
    between, in training and in evaluation; replay holds one transition per decision, its
    reward discounted within the hold; the budget still counts env steps."""
    train_env, eval_env = RecordingEnv(horizon=3), RecordingEnv(horizon=3)
    agent = make_agent(tiny_config("sac", **CFG, hold_steps=2, gamma=0.9), seed=0)
    train(agent, lambda: train_env, IdentityTransform(), tmp_path,
          LoopConfig(total_steps=30, eval_every=30, eval_episodes=2, progress=False),
          run_meta={"algo": "sac", "task": "toy"}, eval_env_factory=lambda: eval_env)
    assert len(train_env.log) == 30
    for log in (train_env.log, eval_env.log):
        steps = [t for t, _, _ in log]
        for i, (t, action, _) in enumerate(log):
            if t == 1:  # the second step of a hold: the action of the step before
                assert np.array_equal(action, log[i - 1][1])
            if t == 2 and log is train_env.log:  # a new decision (sampled; the mean may repeat)
                assert not np.array_equal(action, log[i - 1][1])
        assert set(steps) == {0, 1, 2}
    with np.load(tmp_path / "replay_30.npz") as f:
        rewards, ends = f["rewards"], f["ends"]
    assert len(rewards) == 20 and ends.tolist() == [False, True] * 10
    logged = np.array([r for _, _, r in train_env.log]).reshape(10, 3)
    want = np.stack([logged[:, 0] + 0.9 * logged[:, 1], logged[:, 2]], axis=1).reshape(-1)
    assert np.allclose(rewards, want)


def test_replay_buffer_round_trip(tmp_path):
    """save/load keeps the filled part, the write pointer and uint8 images."""
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(5, (4, 4, 3), 7)
    for i in range(7):  # wraps around
        buf.add(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), rng.standard_normal(7), i, 
                rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), i % 2)
    buf.save(tmp_path / "r.npz")
    other = ReplayBuffer(5, (4, 4, 3), 7)
    other.load(tmp_path / "r.npz")
    assert (other.ptr, other.size) == (2, 5) and other.obs.dtype == np.uint8
    for k in ("obs", "next_obs", "actions", "rewards", "dones"):
        assert np.array_equal(getattr(buf, k), getattr(other, k))


def test_evaluation_reports_the_mean_and_the_sampled_policy_without_touching_training_rng():
    """evaluate() scores the policy's mean and samples from it: a fresh SAC policy (mean 0,
    std 1) never succeeds with its mean (|a[0]| = 0 < margin) but does when sampling; the same
    call twice gives the same figures, and the global torch stream is where it was."""
    from parrot_core.rl_loop import evaluate
    agent = make_agent(tiny_config("sac", **CFG), seed=0)
    env = ColorSignEnv()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = evaluate(agent, env, IdentityTransform(), 40)
    assert torch.equal(torch.get_rng_state(), before)
    assert first["eval_success"] == 0.0 and 0.2 < first["eval_success_sampled"] < 0.8
    assert evaluate(agent, env, IdentityTransform(), 40) == first


def test_n_step_returns_stop_at_episode_ends_and_at_the_newest_step():
    """sample(n_step=3): rewards of up to 3 steps of one episode, discounted; next_obs after
    the last step taken and gamma^k for the k steps; a termination ends the sum without
    bootstrapping (done 1), a truncation ends it with bootstrapping (done 0), and the newest
    transition is as far as a return reaches."""
    g = 0.5
    buf = ReplayBuffer(16, (1,), 7, np.float32)
    # episode A: 4 steps, truncated; episode B: 2 steps, terminated; episode C: 2 steps so far
    steps = [(0.0, False, False), (1.0, False, False), (0.0, False, False), (2.0, False, True),
             (0.0, False, False), (1.0, True, False), (0.0, False, False), (4.0, False, False)]
    for k, (r, term, trunc) in enumerate(steps):
        buf.add(np.float32([k]), np.zeros(7), r, np.float32([k + 1]), term, trunc)

    class Fixed:  # a generator that "samples" every index once
        def integers(self, low, high, size):
            return np.arange(high)

    b = {k: v.numpy() for k, v in buf.sample(8, Fixed(), n_step=3, gamma=g).items()}
    assert np.allclose(b["rewards"], [0 + g * 1 + g * g * 0, 1 + 0 + g * g * 2, 0 + g * 2, 2,
                                      0 + g * 1, 1, 0 + g * 4, 4])
    assert b["next_obs"][:, 0].tolist() == [3, 4, 4, 4, 6, 6, 8, 8]
    assert b["dones"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert np.allclose(b["discounts"], [g ** 3, g ** 3, g ** 2, g, g ** 2, g, g ** 2, g])
    one = {k: v.numpy() for k, v in buf.sample(8, Fixed()).items()}
    assert "discounts" not in one and one["next_obs"][:, 0].tolist() == list(range(1, 9))


def test_n_step_returns_in_a_replay_that_has_wrapped():
    """A replay smaller than the run (--buffer-size) overwrites its oldest steps: a return
    still sums one episode across the array's end, and stops at the newest transition instead
    of running on into the oldest one kept (the next slot to be overwritten)."""
    g = 0.5
    buf = ReplayBuffer(4, (1,), 7, np.float32)
    # 6 steps into 4 slots: slots hold steps 4, 5, 2, 3; steps 2-5 are one episode (no end yet)
    for k, r in enumerate([9.0, 9.0, 1.0, 2.0, 4.0, 8.0]):
        buf.add(np.float32([k]), np.zeros(7), r, np.float32([k + 1]), k == 1, False)

    class Fixed:  # "samples" every slot once
        def integers(self, low, high, size):
            return np.arange(high)

    b = {k: v.numpy() for k, v in buf.sample(4, Fixed(), n_step=3, gamma=g).items()}
    # slots 0..3 hold steps 4, 5, 2, 3
    assert np.allclose(b["rewards"], [4 + g * 8, 8, 1 + g * 2 + g * g * 4, 2 + g * 4 + g * g * 8])
    assert b["next_obs"][:, 0].tolist() == [6, 6, 5, 6]
    assert np.allclose(b["discounts"], [g ** 2, g, g ** 3, g ** 3])


def test_bc_to_convergence_stops_at_the_plateau_and_keeps_the_best_weights():
    """With patience, BC holds whole episodes out, stops once their NLL has not improved for
    `patience` checks (long before the step cap on an easy feature dataset) and leaves the
    policy at its best checkpoint: the held-out NLL of the returned policy is the best seen."""
    from parrot_core.rl_loop import _bc_nll, _bc_split, behaviour_clone
    rng = np.random.default_rng(0)
    episodes = np.repeat(np.arange(40), 10)
    obs = rng.normal(size=(400, 6)).astype(np.float32)
    actions = np.clip(0.5 * np.tanh(obs[:, :1]) + 0.05 * rng.normal(size=(400, 7)), -0.99, 0.99)
    agent = make_agent(tiny_config("sac", obs_dim=6, hidden_sizes=(32,), batch_size=32), seed=0)
    out = behaviour_clone(agent, obs, actions.astype(np.float32), 20_000, np.random.default_rng(1),
                          patience=2, episode=episodes, check_every=25, val_fraction=0.2)
    assert out["bc_converged"] and out["bc_steps"] < 20_000
    assert out["bc_best_step"] <= out["bc_steps"] - 2 * 25
    _, held = _bc_split(400, episodes, 0.2, np.random.default_rng(1))
    assert set(episodes[held]).isdisjoint(set(np.delete(episodes, held)))  # whole episodes
    assert abs(_bc_nll(agent, obs[held], actions[held]) - out["bc_val_nll"]) < 1e-4
