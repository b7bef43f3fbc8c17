"""The RL training loop: any env with the ParrotEnv API, a SACAgent, an ActionTransform.

``train(...)`` runs ``total_steps`` environment steps with one (or ``updates_per_step``)
SAC update per step after ``learning_starts``, evaluates the deterministic policy every
``eval_every`` steps on fixed-seed episodes, writes ``metrics.jsonl`` and checkpoints.

Run directory::

    config.json          run metadata (algo, task, seed, ...), SAC and loop config, prior info
    metrics.jsonl        one JSON row per evaluation ({"kind": "eval", "env_step": ..,
                         "eval_success": .., "train_success": .., "q_loss": .., ...}) and one
                         {"kind": "bc", ...} row for BC+SAC's pre-training
    checkpoint.pt        agent (networks, optimisers, log alpha), loop counters, RNG states
    replay_<step>.npz    the replay buffer at that checkpoint

Seeds. Training episode k of a run with seed S resets the env with ``S * 10_000_000 + k``;
evaluation episode i always uses ``EVAL_SEED_BASE + i``, so every algorithm and seed is
scored on the same scenes, disjoint from training ones.

Resume. Checkpoints are written only at episode boundaries (every ``checkpoint_every`` steps,
at the first boundary after it), after that step's evaluation. They hold the replay buffer,
optimiser states and the torch / numpy / python RNG states, so ``resume=True`` continues
from the same env step and, on CPU, reproduces the uninterrupted run exactly (metrics rows
written after the checkpoint are dropped and rewritten). The final checkpoint at
``total_steps`` may fall mid-episode; resuming from it with a larger budget starts the next
episode.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from parrot_core.action_transform import ActionTransform
from parrot_core.sac import ReplayBuffer, SACAgent
from parrot_core.tensorboard_log import TensorBoardLog

# What the agent observes of an env step: (obs, info) -> the array stored in replay.
Observe = Callable[[np.ndarray, dict], np.ndarray]

EVAL_SEED_BASE = 4_000_000_000
TRAIN_SEED_STRIDE = 10_000_000
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


class RunError(RuntimeError):
    """A run directory that cannot be started or resumed as asked."""


@dataclass
class LoopConfig:
    total_steps: int
    seed: int = 0
    eval_every: int = 5000
    eval_episodes: int = 20
    checkpoint_every: int | None = None  # None -> eval_every
    bc_steps: int = 0  # behaviour-cloning gradient steps before RL (BC+SAC)
    progress: bool = True
    tensorboard: bool = False  # also log every metrics row to RUN/tensorboard (optional package)

    def __post_init__(self):
        if self.total_steps < 1 or self.eval_every < 1 or self.eval_episodes < 0:
            raise RunError("total_steps and eval_every must be >= 1, eval_episodes >= 0")
        if not 0 <= self.seed < EVAL_SEED_BASE // TRAIN_SEED_STRIDE:
            raise RunError(f"seed must be in [0, {EVAL_SEED_BASE // TRAIN_SEED_STRIDE})")
        if self.checkpoint_every is None:
            self.checkpoint_every = self.eval_every


def train_episode_seed(seed: int, episode: int) -> int:
    return seed * TRAIN_SEED_STRIDE + episode


def make_agent(config, seed: int, device="cpu") -> SACAgent:
    """A fresh agent with seeded initial weights."""
    torch.manual_seed(seed)
    return SACAgent(config, device)


def image_observation(obs, info):
    """The agent observes the env's image itself (per-network CNNs)."""
    return obs


def run_eval_episodes(agent: SACAgent, env, transform: ActionTransform, episodes: int,
                      seed_base: int, observe: Observe, deterministic: bool) -> dict:
    """Success rate / return of the policy on fixed-seed episodes (mean action, or sampled)."""
    successes, returns, lengths = [], [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed_base + i)
        ret, length, success, done = 0.0, 0, False, False
        while not done:
            a = agent.act(observe(obs, info), deterministic=deterministic)
            obs, r, terminated, truncated, info = env.step(transform(a, obs, info))
            ret += float(r)
            length += 1
            success = success or bool(info.get("success", False))
            done = terminated or truncated
        successes.append(success)
        returns.append(ret)
        lengths.append(length)
    return {"success": float(np.mean(successes)), "return": float(np.mean(returns)),
            "length": float(np.mean(lengths))}


def evaluate(agent: SACAgent, env, transform: ActionTransform, episodes: int,
             seed_base: int = EVAL_SEED_BASE, observe: Observe = image_observation) -> dict:
    """The policy on fixed-seed episodes, twice: acting with its mean (``eval_success``) and
    sampling from it (``eval_success_sampled``). A PARROT policy regularized towards N(0, I)
    stays a broad distribution over z; its mean alone is not what training optimizes.
    Sampling uses its own seeded torch stream, so evaluation never shifts training's."""
    if not episodes:
        return {}
    mean = run_eval_episodes(agent, env, transform, episodes, seed_base, observe, True)
    with torch.random.fork_rng():
        torch.manual_seed(seed_base % 2**31)
        sampled = run_eval_episodes(agent, env, transform, episodes, seed_base, observe, False)
    return {"eval_success": mean["success"], "eval_return": mean["return"],
            "eval_length": mean["length"], "eval_success_sampled": sampled["success"],
            "eval_return_sampled": sampled["return"], "eval_episodes": episodes}


# ---- small file helpers --------------------------------------------------------------------

def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash
                continue
    return rows


def read_config(run_dir) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{run_dir}: no {CONFIG} (not a train-rl run directory)")
    return json.loads(path.read_text())


def _rng_state(np_rng: np.random.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state,
            "python": random.getstate()}


def _set_rng_state(state: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])


class _Averager:
    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, d: dict) -> None:
        for k, v in d.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self) -> dict:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return out


# ---- behaviour cloning ----------------------------------------------------------------------

def behaviour_clone(agent: SACAgent, obs: np.ndarray, actions: np.ndarray, steps: int,
                    rng: np.random.Generator, progress: bool = False) -> dict:
    """BC pre-training of the policy on (observation, action) pairs (BC+SAC baseline)."""
    if len(obs) == 0:
        raise RunError("behaviour cloning needs a non-empty dataset")
    cfg = agent.cfg
    if cfg.obs_dim and obs.shape[1:] != (cfg.obs_dim,):
        raise RunError(f"dataset observations are {obs.shape[1:]}, the policy expects ({cfg.obs_dim},)")
    if not cfg.obs_dim and obs.shape[1:3] != (cfg.image_size, cfg.image_size):
        raise RunError(f"dataset images are {obs.shape[1:3]}, the policy expects "
                       f"{cfg.image_size}x{cfg.image_size}")
    from tqdm import tqdm
    opt = torch.optim.Adam(agent.actor.parameters(), lr=agent.cfg.bc_lr)
    avg = _Averager()
    last = {}
    for i in tqdm(range(steps), desc="bc", disable=not progress, leave=False):
        idx = rng.integers(0, len(obs), size=agent.cfg.batch_size)
        last = agent.bc_update(torch.as_tensor(obs[idx], device=agent.device),
                               torch.as_tensor(actions[idx], dtype=torch.float32, device=agent.device), opt)
        avg.add(last)
    return {"bc_steps": steps, **{f"{k}_mean": v for k, v in avg.pop().items()},
            **{f"{k}_last": v for k, v in last.items()}}


# ---- the loop -----------------------------------------------------------------------------

def train(agent: SACAgent, env_factory: Callable[[], object], transform: ActionTransform, run_dir,
          loop: LoopConfig, resume: bool = False, run_meta: dict | None = None,
          bc_data: dict | None = None, eval_env_factory: Callable[[], object] | None = None,
          observe: Observe = image_observation) -> dict:
    """Train ``agent`` in ``env_factory()`` for ``loop.total_steps`` env steps; see module doc.

    ``bc_data``: {"obs": (N, ...) observations as ``observe`` makes them, "actions": (N,7)}
    for BC pre-training (``loop.bc_steps`` steps) before RL. ``observe(obs, info)``: what
    the agent sees and replay stores (the image, or e.g. PriorFeatures). Returns the last
    metrics row.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = agent.cfg
    ckpt_path = run_dir / CHECKPOINT
    config_doc = {"run": run_meta or {}, "sac": cfg.to_dict(),
                  "loop": dataclasses.asdict(loop), "transform": transform.describe(),
                  "observation": getattr(observe, "describe", lambda: {"name": "image"})()}
    # e.g. the frozen feature weights, so an export rebuilds image -> features -> policy
    checkpoint_extra = observe.checkpoint() if hasattr(observe, "checkpoint") else {}
    np_rng = np.random.default_rng(loop.seed)
    env = env_factory()
    eval_env = (eval_env_factory or env_factory)()

    state = {"global_step": 0, "episode": 0, "update_credit": 0.0, "wall_s": 0.0,
             "episode_in_progress": False}
    buffer = None
    if ckpt_path.exists() and not resume:
        raise RunError(f"{run_dir} already holds a run (checkpoint.pt); pass --resume to continue it "
                       f"or choose another --out")
    if ckpt_path.exists():
        old = read_config(run_dir)
        for key in ("run", "sac", "observation"):
            if old.get(key) != config_doc[key]:
                raise RunError(f"{run_dir}: --resume with a different {key} config than the run was "
                               f"started with:\n  was {old.get(key)}\n  now {config_doc[key]}")
        ckpt = torch.load(ckpt_path, map_location=agent.device, weights_only=False)
        agent.load_state_dict(ckpt["agent"])
        state.update(ckpt["loop"])
        replay_path = run_dir / ckpt["replay_file"]
        if not replay_path.exists():
            raise RunError(f"{replay_path}: replay buffer of the checkpoint is missing")
        buffer = ReplayBuffer(cfg.buffer_size, ckpt["image_shape"], cfg.action_dim,
                              np.dtype(ckpt.get("obs_dtype", "uint8")))
        buffer.load(replay_path)
        _set_rng_state(ckpt["rng"], np_rng)
        # drop rows written after the checkpoint: they will be produced again
        rows = [r for r in read_metrics(run_dir) if r.get("env_step", 0) <= state["global_step"]]
        (run_dir / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"resuming {run_dir} at env step {state['global_step']}", flush=True)
    else:
        (run_dir / METRICS).write_text("")
        torch.manual_seed(loop.seed)
        random.seed(loop.seed)
    # the budget may change on resume; everything else must not
    (run_dir / CONFIG).write_text(json.dumps(config_doc, indent=2, default=str) + "\n")

    step = state["global_step"]
    if step >= loop.total_steps:
        print(f"{run_dir}: already at env step {step} >= --steps {loop.total_steps}; nothing to do", flush=True)
        rows = [r for r in read_metrics(run_dir) if r.get("kind") == "eval"]
        return rows[-1] if rows else {}
    if state["episode_in_progress"]:  # final checkpoint of a shorter budget: next episode
        state["episode"] += 1
        state["episode_in_progress"] = False
    obs, info = env.reset(seed=train_episode_seed(loop.seed, state["episode"]))
    agent_obs = observe(obs, info)
    if buffer is None:
        buffer = ReplayBuffer(cfg.buffer_size, agent_obs.shape, cfg.action_dim, agent_obs.dtype)

    tb = TensorBoardLog(run_dir, loop.tensorboard)
    t_start = time.perf_counter()
    wall0 = state["wall_s"]
    losses, train_eps = _Averager(), [tuple(e) for e in state.pop("train_eps", [])]
    losses.sums, losses.counts = state.pop("loss_sums", {}), state.pop("loss_counts", {})
    last_row: dict = {}

    def wall() -> float:
        return wall0 + time.perf_counter() - t_start

    def log_eval(at_step: int) -> dict:
        row = {"kind": "eval", "env_step": at_step, "episodes": state["episode"],
               "updates": agent.num_updates,
               **evaluate(agent, eval_env, transform, loop.eval_episodes, observe=observe)}
        if train_eps:
            row["train_success"] = float(np.mean([s for s, _ in train_eps]))
            row["train_return"] = float(np.mean([r for _, r in train_eps]))
            train_eps.clear()
        row.update(losses.pop())
        row["alpha"] = agent.alpha
        row["wall_s"] = round(wall(), 3)
        _append_jsonl(run_dir / METRICS, row)
        tb.scalars(at_step, row, "rl")
        return row

    def save_checkpoint(at_step: int, in_progress: bool) -> None:
        replay_file = f"replay_{at_step}.npz"
        tmp = run_dir / (replay_file + ".tmp.npz")
        buffer.save(tmp)
        os.replace(tmp, run_dir / replay_file)
        loop_state = dict(state, global_step=at_step, wall_s=wall(), episode_in_progress=in_progress,
                          train_eps=list(train_eps), loss_sums=dict(losses.sums),
                          loss_counts=dict(losses.counts))
        _atomic_torch_save({"agent": agent.state_dict(), "loop": loop_state, "rng": _rng_state(np_rng),
                            "replay_file": replay_file, "image_shape": tuple(buffer.obs.shape[1:]),
                            "obs_dtype": str(buffer.obs.dtype), **checkpoint_extra}, ckpt_path)
        for old in run_dir.glob("replay_*.npz"):
            if old.name != replay_file:
                old.unlink()

    if step == 0 and not ckpt_path.exists():
        if bc_data is not None and loop.bc_steps > 0:
            bc = behaviour_clone(agent, bc_data["obs"], bc_data["actions"], loop.bc_steps, np_rng,
                                 progress=loop.progress)
            _append_jsonl(run_dir / METRICS, {"kind": "bc", "env_step": 0, **bc, "wall_s": round(wall(), 3)})
            tb.scalars(0, bc, "bc")
        last_row = log_eval(0)
        save_checkpoint(0, False)

    next_eval = (step // loop.eval_every + 1) * loop.eval_every
    next_ckpt = (step // loop.checkpoint_every + 1) * loop.checkpoint_every
    from tqdm import tqdm
    bar = tqdm(total=loop.total_steps, initial=step, disable=not loop.progress, unit="step",
               dynamic_ncols=True, desc=str((run_meta or {}).get("algo", "sac")))
    ep_return, ep_success = 0.0, False
    terminated = truncated = False
    last_eval_step = -1
    while step < loop.total_steps:
        agent_action = agent.act(agent_obs)
        next_obs, reward, terminated, truncated, info = env.step(transform(agent_action, obs, info))
        next_agent_obs = observe(next_obs, info)
        buffer.add(agent_obs, agent_action, reward, next_agent_obs, terminated, truncated)
        step += 1
        state["global_step"] = step
        ep_return += float(reward)
        ep_success = ep_success or bool(info.get("success", False))
        obs, agent_obs = next_obs, next_agent_obs

        if step >= cfg.learning_starts:
            state["update_credit"] += cfg.updates_per_step
            while state["update_credit"] >= 1.0:
                state["update_credit"] -= 1.0
                losses.add(agent.update(buffer.sample(cfg.batch_size, np_rng, agent.device,
                                                      cfg.n_step, cfg.gamma)))
        bar.update(1)

        if terminated or truncated:
            train_eps.append((ep_success, ep_return))
            state["episode"] += 1
            ep_return, ep_success = 0.0, False
            if step >= next_eval:
                last_row = log_eval(step)
                last_eval_step = step
                next_eval = (step // loop.eval_every + 1) * loop.eval_every
                bar.set_postfix(eval=f"{last_row.get('eval_success', math.nan):.2f}",
                                alpha=f"{agent.alpha:.3g}", refresh=False)
            if step >= next_ckpt and step < loop.total_steps:
                save_checkpoint(step, False)
                next_ckpt = (step // loop.checkpoint_every + 1) * loop.checkpoint_every
            if step < loop.total_steps:
                obs, info = env.reset(seed=train_episode_seed(loop.seed, state["episode"]))
                agent_obs = observe(obs, info)

    bar.close()
    if last_eval_step != step:
        last_row = log_eval(step)
    # the final checkpoint; `episode` already counts a just-finished episode
    save_checkpoint(step, in_progress=not (terminated or truncated))
    tb.close()
    for e in {id(env): env, id(eval_env): eval_env}.values():
        close = getattr(e, "close", None)
        if close:
            close()
    return last_row
