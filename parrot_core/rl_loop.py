"""The RL training loop: any env with the ParrotEnv API, a SACAgent, an ActionTransform.

``train(...)`` runs ``total_steps`` environment steps with one (or ``updates_per_step``)
SAC update per step after ``learning_starts`` (the agent decides every step, or every
``hold_steps`` steps and holds its action in between), evaluates the deterministic policy every
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

import copy
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from parrot_core.action_transform import ActionTransform
from parrot_core.files import atomic_replace
from parrot_core.metrics_log import append_row, keep_rows, read_rows
from parrot_core.sac import ReplayBuffer, SACAgent
from parrot_core.tensorboard_log import TensorBoardLog

# What the agent observes of an env step: (obs, info) -> the array stored in replay.
Observe = Callable[[np.ndarray, dict], np.ndarray]

EVAL_SEED_BASE = 4_000_000_000
TRAIN_SEED_STRIDE = 10_000_000
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"


class RunError(RuntimeError):
    """A run directory that cannot be started or resumed as asked."""


@dataclass
class LoopConfig:
    total_steps: int  # 0: only the step-0 evaluation (e.g. of BC alone)
    seed: int = 0
    eval_every: int = 5000
    eval_episodes: int = 20
    checkpoint_every: int | None = None  # None -> eval_every
    bc_steps: int = 0  # behaviour-cloning gradient steps before RL (BC+SAC); the cap with patience
    bc_patience: int = 0  # > 0: BC until the held-out NLL stops improving (behaviour_clone)
    progress: bool = True
    tensorboard: bool = False  # also log every metrics row to RUN/tensorboard (optional package)

    def __post_init__(self):
        if self.total_steps < 0 or self.eval_every < 1 or self.eval_episodes < 0 or self.bc_patience < 0:
            raise RunError("total_steps, eval_episodes and bc_patience must be >= 0, eval_every >= 1")
        if not 0 <= self.seed < EVAL_SEED_BASE // TRAIN_SEED_STRIDE:
            raise RunError(f"seed must be in [0, {EVAL_SEED_BASE // TRAIN_SEED_STRIDE})")
        if self.checkpoint_every is None:
            self.checkpoint_every = self.eval_every


def train_episode_seed(seed: int, episode: int) -> int:
    return seed * TRAIN_SEED_STRIDE + episode


def make_agent(config, seed: int, device="cpu", action_of=None) -> SACAgent:
    """A fresh agent with seeded initial weights (``action_of``: see SACAgent)."""
    torch.manual_seed(seed)
    return SACAgent(config, device, action_of)


def image_observation(obs, info):
    """The agent observes the env's image itself (per-network CNNs)."""
    return obs


def run_eval_episodes(agent: SACAgent, env, transform: ActionTransform, episodes: int,
                      seed_base: int, observe: Observe, deterministic: bool) -> dict:
    """Success rate / return of the policy on fixed-seed episodes (mean action, or sampled)."""
    successes, returns, lengths = [], [], []
    hold = agent.cfg.hold_steps
    for i in range(episodes):
        obs, info = env.reset(seed=seed_base + i)
        ret, length, success, done = 0.0, 0, False, False
        while not done:
            if length % hold == 0:  # a new decision; in between the policy holds it
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
    with atomic_replace(path) as tmp:
        torch.save(obj, tmp)


def read_metrics(run_dir) -> list[dict]:
    """The run's metrics.jsonl rows (parrot_core/metrics_log.py)."""
    return read_rows(run_dir)


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
                    rng: np.random.Generator, progress: bool = False, patience: int = 0,
                    episode: np.ndarray | None = None, check_every: int = 500,
                    val_fraction: float = 0.05) -> dict:
    """BC pre-training of the policy on (observation, action) pairs (BC+SAC baseline).

    ``patience > 0``: train to convergence. ``val_fraction`` of the episodes (``episode``: the
    episode id of each row; without it, the last rows) is held out; every ``check_every``
    steps the held-out NLL is measured, and after ``patience`` checks without improvement (or
    ``steps``, the cap) the policy goes back to its best weights. ``patience = 0``, or a dataset
    too small to hold an episode out: exactly ``steps`` on every row."""
    if len(obs) == 0:
        raise RunError("behaviour cloning needs a non-empty dataset")
    cfg = agent.cfg
    if cfg.obs_dim and obs.shape[1:] != (cfg.obs_dim,):
        raise RunError(f"dataset observations are {obs.shape[1:]}, the policy expects ({cfg.obs_dim},)")
    if not cfg.obs_dim and obs.shape[1:3] != (cfg.image_size, cfg.image_size):
        raise RunError(f"dataset images are {obs.shape[1:3]}, the policy expects "
                       f"{cfg.image_size}x{cfg.image_size}")
    train_rows, val_rows = _bc_split(len(obs), episode, val_fraction if patience > 0 else 0.0, rng)
    from tqdm import tqdm
    opt = torch.optim.Adam(agent.actor.parameters(), lr=agent.cfg.bc_lr)
    avg = _Averager()
    last: dict = {}
    best_nll, best_step, best_weights, checks_since_best = math.inf, 0, None, 0
    step = 0
    for step in tqdm(range(1, steps + 1), desc="bc", disable=not progress, leave=False):
        idx = train_rows[rng.integers(0, len(train_rows), size=agent.cfg.batch_size)]
        last = agent.bc_update(torch.as_tensor(obs[idx], device=agent.device),
                               torch.as_tensor(actions[idx], dtype=torch.float32, device=agent.device), opt)
        avg.add(last)
        if len(val_rows) and step % check_every == 0:
            nll = _bc_nll(agent, obs[val_rows], actions[val_rows])
            if nll < best_nll:
                best_nll, best_step, checks_since_best = nll, step, 0
                best_weights = copy.deepcopy(agent.actor.state_dict())
            else:
                checks_since_best += 1
                if checks_since_best >= patience:
                    break
    out = {"bc_steps": step, **{f"{k}_mean": v for k, v in avg.pop().items()},
           **{f"{k}_last": v for k, v in last.items()}}
    if best_weights is not None:
        agent.actor.load_state_dict(best_weights)
        out.update(bc_best_step=best_step, bc_val_nll=best_nll, bc_converged=checks_since_best >= patience)
    agent.update_eval_actor(0.0)  # an average of the weights starts from the cloned policy
    return out


def _bc_split(n: int, episode: np.ndarray | None, val_fraction: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held out): whole episodes held out when their ids are known."""
    if val_fraction <= 0:
        return np.arange(n), np.arange(0)
    if episode is None:
        n_val = int(n * val_fraction)
        held = np.zeros(n, bool)
        held[n - n_val:] = True
    else:
        ids = np.unique(episode)
        held = np.isin(episode, rng.permutation(ids)[:int(len(ids) * val_fraction)])
    if not held.any() or held.all():  # too small to hold out: BC runs its `steps` on every row
        return np.arange(n), np.arange(0)
    return np.flatnonzero(~held), np.flatnonzero(held)


@torch.no_grad()
def _bc_nll(agent: SACAgent, obs: np.ndarray, actions: np.ndarray, batch: int = 4096) -> float:
    """Mean -log pi(a|s) of the policy over held-out rows."""
    total = 0.0
    for i in range(0, len(obs), batch):
        o = torch.as_tensor(obs[i:i + batch], device=agent.device)
        a = torch.as_tensor(actions[i:i + batch], dtype=torch.float32, device=agent.device)
        total += float(-agent.actor.log_prob(o, a).sum())
    return total / len(obs)


# ---- the loop -----------------------------------------------------------------------------

def train(agent: SACAgent, env_factory: Callable[[], object], transform: ActionTransform, run_dir,
          loop: LoopConfig, resume: bool = False, run_meta: dict | None = None,
          bc_data: dict | Callable[[], dict] | None = None, eval_env_factory: Callable[[], object] | None = None,
          observe: Observe = image_observation) -> dict:
    """Train ``agent`` in ``env_factory()`` for ``loop.total_steps`` env steps; see module doc.

    ``bc_data``: {"obs": (N, ...) observations as ``observe`` makes them, "actions": (N,7)}
    for BC pre-training (``loop.bc_steps`` steps) before RL, or a function that loads it (called
    only when BC runs: a resumed run never loads the dataset). ``observe(obs, info)``: what
    the agent sees and replay stores (the image, or e.g. PriorFeatures). Returns the last
    metrics row.
    """
    run = TrainingRun(agent, env_factory, transform, run_dir, loop, run_meta,
                      eval_env_factory, observe)
    try:
        return run.run(resume, bc_data)
    finally:
        run.close()


@dataclass
class DecisionOutcome:
    """What one decision's env steps returned: their count, undiscounted reward, and end."""
    steps: int = 0
    reward: float = 0.0
    success: bool = False
    terminated: bool = False
    truncated: bool = False

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class TrainingRun:
    """One run directory's training: collect -> update -> evaluate -> checkpoint."""

    def __init__(self, agent: SACAgent, env_factory, transform: ActionTransform, run_dir,
                 loop: LoopConfig, run_meta: dict | None, eval_env_factory, observe: Observe):
        self.agent, self.transform, self.loop, self.observe = agent, transform, loop, observe
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.run_dir / CHECKPOINT
        self.run_meta = run_meta or {}
        self.config_doc = {"run": self.run_meta, "sac": agent.cfg.to_dict(),
                           "loop": dataclasses.asdict(loop), "transform": transform.describe(),
                           "observation": getattr(observe, "describe", lambda: {"name": "image"})()}
        # e.g. the frozen feature weights, so an export rebuilds image -> features -> policy
        self.checkpoint_extra = observe.checkpoint() if hasattr(observe, "checkpoint") else {}
        self.np_rng = np.random.default_rng(loop.seed)
        self.env = env_factory()
        self.eval_env = (eval_env_factory or env_factory)()
        self.state = {"global_step": 0, "episode": 0, "update_credit": 0.0, "wall_s": 0.0,
                      "episode_in_progress": False}
        self.buffer: ReplayBuffer | None = None
        self.losses, self.train_eps = _Averager(), []
        self.tb = TensorBoardLog(self.run_dir, loop.tensorboard)
        self._t_start, self._wall0 = time.perf_counter(), 0.0

    # ---- the loop --------------------------------------------------------------------------
    def run(self, resume: bool, bc_data: dict | Callable[[], dict] | None) -> dict:
        loop, state = self.loop, self.state
        self.start(resume)
        step = state["global_step"]
        if step >= loop.total_steps and self.ckpt_path.exists():
            print(f"{self.run_dir}: already at env step {step} >= --steps {loop.total_steps}; "
                  f"nothing to do", flush=True)
            rows = [r for r in read_metrics(self.run_dir) if r.get("kind") == "eval"]
            return rows[-1] if rows else {}
        if state["episode_in_progress"]:  # final checkpoint of a shorter budget: next episode
            state["episode"] += 1
            state["episode_in_progress"] = False
        obs, info = self.env.reset(seed=train_episode_seed(loop.seed, state["episode"]))
        agent_obs = self.observe(obs, info)
        if self.buffer is None:
            self.buffer = ReplayBuffer(self.agent.cfg.buffer_size, agent_obs.shape,
                                       self.agent.cfg.action_dim, agent_obs.dtype)
        self._t_start, self._wall0 = time.perf_counter(), state["wall_s"]
        last_row: dict = {}
        last_eval_step = -1
        if step == 0 and not self.ckpt_path.exists():
            if bc_data is not None and loop.bc_steps > 0:
                self.pretrain_bc(bc_data() if callable(bc_data) else bc_data)
            last_row, last_eval_step = self.evaluate(0), 0
            self.save_checkpoint(0, False)

        next_eval = (step // loop.eval_every + 1) * loop.eval_every
        next_ckpt = (step // loop.checkpoint_every + 1) * loop.checkpoint_every
        from tqdm import tqdm
        bar = tqdm(total=loop.total_steps, initial=step, disable=not loop.progress, unit="step",
                   dynamic_ncols=True, desc=str(self.run_meta.get("algo", "sac")))
        ep_return, ep_success, done = 0.0, False, False
        while step < loop.total_steps:
            obs, info, agent_obs, outcome = self.collect_decision(obs, info, agent_obs)
            bar.update(state["global_step"] - step)
            step, done = state["global_step"], outcome.done
            ep_return += outcome.reward
            ep_success = ep_success or outcome.success
            self.update(outcome.steps)
            if not done:
                continue
            self.train_eps.append((ep_success, ep_return))
            state["episode"] += 1
            ep_return, ep_success = 0.0, False
            if step >= next_eval:
                last_row, last_eval_step = self.evaluate(step), step
                next_eval = (step // loop.eval_every + 1) * loop.eval_every
                bar.set_postfix(eval=f"{last_row.get('eval_success', math.nan):.2f}",
                                alpha=f"{self.agent.alpha:.3g}", refresh=False)
            if step >= next_ckpt and step < loop.total_steps:
                self.save_checkpoint(step, False)
                next_ckpt = (step // loop.checkpoint_every + 1) * loop.checkpoint_every
            if step < loop.total_steps:
                obs, info = self.env.reset(seed=train_episode_seed(loop.seed, state["episode"]))
                agent_obs = self.observe(obs, info)
        bar.close()
        if last_eval_step != step:
            last_row = self.evaluate(step)
        # the final checkpoint; `episode` already counts a just-finished episode
        self.save_checkpoint(step, in_progress=not done)
        return last_row

    def collect_decision(self, obs, info, agent_obs):
        """One action of the current policy, held for up to ``hold_steps`` env steps (never past
        the episode's end or the budget), stored in replay as one transition."""
        cfg = self.agent.cfg
        agent_action = self.agent.act(agent_obs)
        outcome = DecisionOutcome()
        discounted, discount = 0.0, 1.0
        while (outcome.steps < cfg.hold_steps and not outcome.done
               and self.state["global_step"] < self.loop.total_steps):
            obs, reward, terminated, truncated, info = self.env.step(
                self.transform(agent_action, obs, info))
            self.state["global_step"] += 1
            outcome.steps += 1
            outcome.reward += float(reward)
            outcome.success = outcome.success or bool(info.get("success", False))
            outcome.terminated, outcome.truncated = bool(terminated), bool(truncated)
            discounted += discount * float(reward)
            discount *= cfg.gamma
        next_agent_obs = self.observe(obs, info)
        # without bootstrapping at the time limit, the critic sees the cut as the episode's end
        ends_return = outcome.terminated or (outcome.truncated and not cfg.bootstrap_time_limit)
        self.buffer.add(agent_obs, agent_action, discounted, next_agent_obs, ends_return,
                        outcome.truncated)
        return obs, info, next_agent_obs, outcome

    def update(self, env_steps: int) -> None:
        """``updates_per_step`` SAC updates per env step taken (fractional ones accumulate),
        after learning_starts."""
        cfg, state = self.agent.cfg, self.state
        if state["global_step"] < cfg.learning_starts:
            return
        state["update_credit"] += cfg.updates_per_step * env_steps
        while state["update_credit"] >= 1.0:
            state["update_credit"] -= 1.0
            batch = self.buffer.sample(cfg.batch_size, self.np_rng, self.agent.device,
                                       cfg.n_step, cfg.decision_gamma)
            self.losses.add(self.agent.update(batch))

    def pretrain_bc(self, bc_data: dict) -> None:
        bc = behaviour_clone(self.agent, bc_data["obs"], bc_data["actions"], self.loop.bc_steps,
                             self.np_rng, progress=self.loop.progress,
                             patience=self.loop.bc_patience, episode=bc_data.get("episode"))
        append_row(self.run_dir,
                      {"kind": "bc", "env_step": 0, **bc, "wall_s": round(self.wall(), 3)})
        self.tb.scalars(0, bc, "bc")

    def evaluate(self, at_step: int) -> dict:
        """Evaluate, add the training episodes' and losses' averages since the last row, log."""
        row = {"kind": "eval", "env_step": at_step, "episodes": self.state["episode"],
               "updates": self.agent.num_updates,
               **evaluate(self.agent, self.eval_env, self.transform, self.loop.eval_episodes,
                          observe=self.observe)}
        if self.train_eps:
            row["train_success"] = float(np.mean([s for s, _ in self.train_eps]))
            row["train_return"] = float(np.mean([r for _, r in self.train_eps]))
            self.train_eps.clear()
        row.update(self.losses.pop())
        row["alpha"] = self.agent.alpha
        row["wall_s"] = round(self.wall(), 3)
        append_row(self.run_dir, row)
        self.tb.scalars(at_step, row, "rl")
        return row

    def wall(self) -> float:
        return self._wall0 + time.perf_counter() - self._t_start

    # ---- checkpoints -----------------------------------------------------------------------
    def start(self, resume: bool) -> None:
        """Load the checkpoint (resume) or start fresh; (re)write config.json."""
        if self.ckpt_path.exists() and not resume:
            raise RunError(f"{self.run_dir} already holds a run (checkpoint.pt); pass --resume to "
                           f"continue it or choose another --out")
        if self.ckpt_path.exists():
            self.load_checkpoint()
        else:
            keep_rows(self.run_dir, lambda r: False)  # a fresh run: no rows
            torch.manual_seed(self.loop.seed)
            random.seed(self.loop.seed)
        # the budget may change on resume; everything else must not
        (self.run_dir / CONFIG).write_text(json.dumps(self.config_doc, indent=2, default=str) + "\n")

    def load_checkpoint(self) -> None:
        old = read_config(self.run_dir)
        for key in ("run", "sac", "observation"):
            if old.get(key) != self.config_doc[key]:
                raise RunError(f"{self.run_dir}: --resume with a different {key} config than the "
                               f"run was started with:\n  was {old.get(key)}\n  "
                               f"now {self.config_doc[key]}")
        ckpt = torch.load(self.ckpt_path, map_location=self.agent.device, weights_only=False)
        self.agent.load_state_dict(ckpt["agent"])
        self.state.update(ckpt["loop"])
        self.train_eps = [tuple(e) for e in self.state.pop("train_eps", [])]
        self.losses.sums = self.state.pop("loss_sums", {})
        self.losses.counts = self.state.pop("loss_counts", {})
        replay_path = self.run_dir / ckpt["replay_file"]
        if not replay_path.exists():
            raise RunError(f"{replay_path}: replay buffer of the checkpoint is missing")
        cfg = self.agent.cfg
        self.buffer = ReplayBuffer(cfg.buffer_size, ckpt["image_shape"], cfg.action_dim,
                                   np.dtype(ckpt.get("obs_dtype", "uint8")))
        self.buffer.load(replay_path)
        _set_rng_state(ckpt["rng"], self.np_rng)
        # drop rows written after the checkpoint: they will be produced again
        step = self.state["global_step"]
        keep_rows(self.run_dir, lambda r: r.get("env_step", 0) <= step)
        print(f"resuming {self.run_dir} at env step {step}", flush=True)

    def save_checkpoint(self, at_step: int, in_progress: bool) -> None:
        replay_file = f"replay_{at_step}.npz"
        with atomic_replace(self.run_dir / replay_file, suffix=".npz") as tmp:
            self.buffer.save(tmp)
        loop_state = dict(self.state, global_step=at_step, wall_s=self.wall(),
                          episode_in_progress=in_progress, train_eps=list(self.train_eps),
                          loss_sums=dict(self.losses.sums), loss_counts=dict(self.losses.counts))
        _atomic_torch_save({"agent": self.agent.state_dict(), "loop": loop_state,
                            "rng": _rng_state(self.np_rng), "replay_file": replay_file,
                            "image_shape": tuple(self.buffer.obs.shape[1:]),
                            "obs_dtype": str(self.buffer.obs.dtype), **self.checkpoint_extra},
                           self.ckpt_path)
        for old in self.run_dir.glob("replay_*.npz"):
            if old.name != replay_file:
                old.unlink()

    def close(self) -> None:
        self.tb.close()
        for e in {id(self.env): self.env, id(self.eval_env): self.eval_env}.values():
            close = getattr(e, "close", None)
            if close:
                close()
