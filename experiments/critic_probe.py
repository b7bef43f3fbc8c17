"""How much does a critic learn from z? Supervised Monte Carlo critics on a finished run's replay.

An offline probe (docs/RESULTS.md, fourteenth session): each transition's target is its
episode's discounted success from that step on (the run's own Monte Carlo target), a fifth of
the episodes are held out, and critics of the run's kind (LayerNorm MLPs on the prior's
features and z) are fit to the rest. Printed: the held-out mean squared error and the AUC of
telling successful from failed episodes at their first 8 steps, for one critic, a wider one,
five averaged, and one that never sees z (z replaced by zeros). First, what the run's own final
critics say of its policy at recent early steps: the policy's spread, how much Q varies over
the policy's z, the advantage's spread with a one-sample and a 32-sample baseline, and Q of the
policy's mean, of its average sample and of the best of 32 samples.

    python experiments/critic_probe.py runs/rl_mc/grasp-parrot-awac-mc-s2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from finished_run import load_finished_run
from parrot_core.sac import QNetwork, SACAgent, SACConfig

EARLY_STEPS = 8  # env steps where an episode's outcome is still open


def episode_and_step(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate([[True], ends[:-1]])
    episode = np.cumsum(starts) - 1
    step = np.arange(len(ends)) - np.flatnonzero(starts)[episode]
    return episode, step


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive scores above a negative (Mann-Whitney)."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score)] = np.arange(1, len(score) + 1)
    pos, neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


@torch.no_grad()
def run_critic_statistics(agent: SACAgent, obs: torch.Tensor, z: torch.Tensor, samples: int = 32) -> dict:
    """The run's critics on its policy at the given states (and the z it took there)."""
    q_taken = agent.critic_q(obs, z)
    repeated = obs.repeat(samples, 1)
    q_samples = agent.critic_q(repeated, agent.actor.sample(repeated)[0]).view(samples, -1)
    log_std = agent.actor.params(obs)[1]
    return {"the policy's std in z (mean over states and dims)": float(log_std.exp().mean()),
            "std of Q over the policy's z (median per state)": float(q_samples.std(0).median()),
            "advantage std, 1-sample baseline": float((q_taken - q_samples[0]).std()),
            f"advantage std, {samples}-sample baseline": float((q_taken - q_samples.mean(0)).std()),
            "Q of the policy's mean": float(agent.critic_q(obs, agent.actor.deterministic(obs)).mean()),
            "Q of its average sample": float(q_samples.mean()),
            f"Q of the best of {samples} samples": float(q_samples.max(0).values.mean())}


def fit_and_score(data: dict, hidden: tuple[int, ...], heads: int, see_z: bool, steps: int,
                  seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    obs, z, target = data["obs"], data["z"] if see_z else torch.zeros_like(data["z"]), data["target"]
    cfg = SACConfig(obs_dim=obs.shape[1], hidden_sizes=hidden, critic_layer_norm=True)
    critics = [QNetwork(cfg) for _ in range(heads)]
    opt = torch.optim.Adam([p for q in critics for p in q.parameters()], lr=cfg.q_lr)
    for _ in range(steps):
        loss = 0.0
        for q in critics:  # each head its own batch
            i = torch.as_tensor(rng.choice(data["train"], cfg.batch_size))
            loss = loss + ((q(obs[i], z[i]) - target[i]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    i = torch.as_tensor(data["test"])
    with torch.no_grad():
        predicted = torch.stack([q(obs[i], z[i]) for q in critics]).mean(0).numpy()
    truth = target[i].numpy()
    return float(((predicted - truth) ** 2).mean()), auc(predicted, truth > 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished `parrot train-rl` run on the prior's features")
    ap.add_argument("--steps", type=int, default=8000, help="critic updates per fit")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    _, agent, replay = load_finished_run(args.run)
    n = len(replay)
    if replay.obs.ndim != 2:
        raise SystemExit(f"{args.run}: replay holds images; the probe needs a prior-features run")
    ends = replay.ends[:n]
    episode, decision = episode_and_step(ends)
    step = decision * agent.cfg.hold_steps  # the env step each decision was taken at
    held_out = np.random.default_rng(args.seed).random(episode.max() + 1) < 0.2
    # the run's own Monte Carlo targets: the discounted rewards to the episode's end
    target = replay._n_step(np.arange(n), int(decision.max()) + 1, agent.cfg.decision_gamma)[0]
    data = {"obs": torch.as_tensor(replay.obs[:n]), "z": torch.as_tensor(replay.actions[:n]),
            "target": torch.as_tensor(target),
            "train": np.flatnonzero(~held_out[episode]),
            "test": np.flatnonzero(held_out[episode] & (step < EARLY_STEPS))}
    recent = np.flatnonzero(step < EARLY_STEPS)[-2000:]
    torch.manual_seed(args.seed)
    stats = run_critic_statistics(agent, data["obs"][recent], data["z"][recent])
    print(f"{args.run}: its final critics at the last {len(recent)} early-step states")
    for name, value in stats.items():
        print(f"  {name:50s} {value:.3f}")
    print(f"{args.run}: {episode.max() + 1} episodes, {len(data['test'])} held-out early transitions")
    for name, hidden, heads, see_z in (("critic 128-128", (128, 128), 1, True),
                                       ("critic 256-256", (256, 256), 1, True),
                                       ("5 critics 128-128, averaged", (128, 128), 5, True),
                                       ("critic 128-128 without z", (128, 128), 1, False)):
        mse, area = fit_and_score(data, hidden, heads, see_z, args.steps, args.seed)
        print(f"  {name:30s} held-out MSE {mse:.4f}  AUC {area:.3f}", flush=True)


if __name__ == "__main__":
    main()
