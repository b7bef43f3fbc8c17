"""Soft actor-critic over image observations (paper Appendix D, Table 1, Figure 7).

CleanRL-style: everything a SAC update does is in :meth:`SACAgent.update`, top to bottom.

Networks (Figure 7 / implementation notes "SAC on top")
    Policy and each of the two Q-functions own a separate CNN (three 3x3 convs, ReLU,
    2x2 max-pool after the first two, 48 -> 12) followed by an MLP (default
    [1024, 512, 256]). The Q-function concatenates the 7D action to the flattened conv
    features. Observations are the raw ``uint8 (B, H, W, 3)`` RGB images; the /255 and
    NHWC -> NCHW happen inside ``forward`` so the exported ONNX takes uint8 directly.
    Sizes are configurable (``conv_channels``, ``hidden_sizes``) for tests and 2-core runs.

Defaults (Table 1): discount 0.99, policy and Q lr 3e-4, reward scale 1, automatic entropy
    tuning (target entropy -|A|), one update per env step, target network updated every
    1000 updates by a hard copy (``tau = 1``), batch 256 (notes).

The policy distribution, two kinds (``SACConfig.distribution``; why: docs/RL_DESIGN.md)
    ``"tanh"``     a = action_scale * tanh(u), u ~ N(mu, sigma). Standard SAC; used by the
                   baselines that act directly in the [-1, 1] action space (scale 1).
    ``"clipped"``  z = clip(u, -z_clip, z_clip), u ~ N(m, sigma), m = scale * tanh(raw / scale),
                   log sigma bounded by ``log_std_max``. Used by PARROT, which acts in the
                   prior's latent z: at init (zero output weights, log-std bias log(init_std))
                   it is exactly the prior's base distribution N(0, I). Its log-prob is the
                   exact Gaussian one; the clip only guards against runaway samples.
    In both kinds the deterministic action (evaluation, ONNX export) is
    ``action_scale * tanh(raw_mean [/ action_scale])``: "tanh-squashed and scaled", as
    ARCHITECTURE.md says. A mean that runs into tanh's flat tail gets no gradient from Q; a
    weak penalty ``mean_reg * raw_mean^2`` (rlkit's policy mean regulariser) pulls it back.

What alpha weighs (``SACConfig.regularizer``)
    ``"entropy"``  standard SAC, reward + alpha * entropy (the baselines).
    ``"kl_base"``  reward - alpha * KL(pi || N(0, I)) (PARROT): see ``SACAgent.regularizer``
                   and docs/RL_DESIGN.md for why an entropy bonus in z fails.

Observations (``SACConfig.obs_dim``): uint8 images through per-network CNNs (0, the paper's), or
flat feature vectors through MLPs only (e.g. the frozen prior's features,
parrot_core.prior_features).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from parrot_core.encoders import ConvTrunk
from parrot_core.flow import LOG_2PI, base_log_prob
from parrot_core.sac_config import (DISTRIBUTIONS, POLICY_UPDATES, REGULARIZERS,  # noqa: F401
                                    SACConfig, SACConfigError, config_for_algo)

# ---- networks ---------------------------------------------------------------------------

class FlatTrunk(nn.Module):
    """Observations that already are feature vectors: passed on as float32."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = int(dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.to(torch.float32)


def make_trunk(cfg: "SACConfig") -> nn.Module:
    return FlatTrunk(cfg.obs_dim) if cfg.obs_dim else ConvTrunk(cfg.image_size, cfg.conv_channels)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), *([nn.LayerNorm(h)] if layer_norm else []), nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Q(s, a): own CNN (or the flat features), action concatenated, MLP -> scalar."""

    def __init__(self, cfg: SACConfig):
        super().__init__()
        self.trunk = make_trunk(cfg)
        self.head = mlp(self.trunk.out_dim + cfg.action_dim, cfg.hidden_sizes, 1,
                        layer_norm=cfg.critic_layer_norm)

    def forward(self, image: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.trunk(image), action], dim=1)).squeeze(1)


def _gaussian_log_prob(eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(mean + std * eps; mean, std), summed over the action dims. (B,)"""
    return (-0.5 * eps.pow(2) - log_std - 0.5 * LOG_2PI).sum(dim=1)


def _raw_for_log_std(log_std: float, cfg: SACConfig) -> float:
    """Inverse of the log-std bound in Actor.params."""
    lo, hi = cfg.log_std_min, cfg.log_std_max
    return math.atanh(2.0 * (log_std - lo) / (hi - lo) - 1.0)


class Actor(nn.Module):
    """pi(a|s): own CNN (or the flat features) + MLP -> (raw mean, log std); see module
    docstring for the two kinds."""

    def __init__(self, cfg: SACConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = make_trunk(cfg)
        self.head = mlp(self.trunk.out_dim, cfg.hidden_sizes, 2 * cfg.action_dim)
        last = self.head[-1]
        # Start at mean 0 / std init_std for every image (paper 3.2: pi(z|s) := p_z at init).
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        with torch.no_grad():
            last.bias[cfg.action_dim:] = _raw_for_log_std(math.log(cfg.init_std), cfg)

    def params(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.trunk(image))
        raw_mean, raw_std = out.chunk(2, dim=1)
        # CleanRL's smooth bound: log_std in (log_std_min, log_std_max), gradient everywhere
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw_std) + 1.0)
        return raw_mean, log_std

    def squash(self, raw_mean: torch.Tensor) -> torch.Tensor:
        """raw mean -> the deterministic action (what evaluation and ONNX use).

        tanh kind: scale * tanh(raw). clipped kind: scale * tanh(raw / scale), slope 1 at 0,
        so early Q gradients do not shoot the mean into tanh's flat tails.
        """
        s = self.cfg.action_scale
        return s * torch.tanh(raw_mean) if self.cfg.distribution == "tanh" else s * torch.tanh(raw_mean / s)

    def deterministic(self, image: torch.Tensor) -> torch.Tensor:
        return self.squash(self.params(image)[0])

    forward = deterministic

    def sample(self, image: torch.Tensor, with_raw: bool = False):
        """Reparameterised sample and its log-prob (B,) [and the raw mean]."""
        raw_mean, log_std = self.params(image)
        action, logp = self._sample(raw_mean, log_std)
        return (action, logp, raw_mean) if with_raw else (action, logp)

    def _sample(self, raw_mean: torch.Tensor, log_std: torch.Tensor):
        std = log_std.exp()
        eps = torch.randn_like(raw_mean)
        log_normal = _gaussian_log_prob(eps, log_std)
        cfg = self.cfg
        if cfg.distribution == "tanh":
            u = raw_mean + std * eps
            action = cfg.action_scale * torch.tanh(u)
            # log|d a/d u| = log(scale) + log(1 - tanh(u)^2), the stable softplus form
            log_jac = (math.log(cfg.action_scale) + 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(dim=1)
            return action, log_normal - log_jac
        z = (self.squash(raw_mean) + std * eps).clamp(-cfg.z_clip, cfg.z_clip)
        return z, log_normal

    def log_prob(self, image: torch.Tensor, action: torch.Tensor, clamp: float = 0.999) -> torch.Tensor:
        """log pi(action | image) for given actions (behaviour cloning). (B,)"""
        raw_mean, log_std = self.params(image)
        cfg = self.cfg
        if cfg.distribution == "tanh":
            a = (action / cfg.action_scale).clamp(-clamp, clamp)
            u = 0.5 * (torch.log1p(a) - torch.log1p(-a))
            eps = (u - raw_mean) / log_std.exp()
            log_jac = (math.log(cfg.action_scale) + torch.log1p(-a * a)).sum(dim=1)
            return _gaussian_log_prob(eps, log_std) - log_jac
        eps = (action - self.squash(raw_mean)) / log_std.exp()
        return _gaussian_log_prob(eps, log_std)


# ---- the agent ----------------------------------------------------------------------------

def _as_obs_tensor(obs, cfg: "SACConfig", device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(obs), device=device)
    if cfg.obs_dim:
        if t.shape[-1] != cfg.obs_dim:
            raise SACConfigError(f"observations must be ({cfg.obs_dim},) feature vectors, got "
                                 f"{tuple(t.shape)}")
    elif t.dtype != torch.uint8:
        raise SACConfigError(f"images must be uint8, got {t.dtype}")
    return t


class SACAgent:
    """Actor, twin Q, target twin Q, log alpha and their optimisers.

    ``action_of(obs, z) -> action``: the prior's map from z to the arm's action, given the
    stored observation (the prior's features); needed only with ``critic_input="action"``.
    """

    def __init__(self, config: SACConfig, device: str | torch.device = "cpu", action_of=None):
        self.cfg = config
        self.device = torch.device(device)
        if config.critic_input == "action" and action_of is None:
            raise SACConfigError("critic_input 'action' needs action_of, the prior's map "
                                 "(features, z) -> action (PARROT on the prior's features)")
        self.action_of = action_of if config.critic_input == "action" else None
        self.actor = Actor(config).to(self.device)
        # the policy evaluation and export read: the trained one, or the average of its weights
        self.eval_actor = (copy.deepcopy(self.actor).requires_grad_(False) if config.actor_ema > 0
                           else self.actor)
        self.qf1 = QNetwork(config).to(self.device)
        self.qf2 = QNetwork(config).to(self.device)
        self.qf1_target = copy.deepcopy(self.qf1).requires_grad_(False)
        self.qf2_target = copy.deepcopy(self.qf2).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=self.device, requires_grad=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.policy_lr)
        self.q_opt = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()), lr=config.q_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)
        self.num_updates = 0

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    # -- acting --
    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One observation (uint8 (H, W, 3) image or (obs_dim,) features) -> (action_dim,)
        float32 (z for PARROT)."""
        x = _as_obs_tensor(obs, self.cfg, self.device)[None]
        a = self.eval_actor.deterministic(x) if deterministic else self.actor.sample(x)[0]
        return a[0].cpu().numpy().astype(np.float32)

    # -- one SAC gradient step --
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs, actions, rewards = batch["obs"], batch["actions"], batch["rewards"]
        next_obs, dones = batch["next_obs"], batch["dones"]
        # the discount to next_obs: from ReplayBuffer.sample with n_step > 1, else one decision's
        discounts = batch.get("discounts", torch.full_like(rewards, cfg.decision_gamma))
        alpha = self.log_alpha.exp().detach()

        # Q-functions: soft Bellman backup from the target networks
        with torch.no_grad():
            next_a, next_logp = self.actor.sample(next_obs)
            next_seen = self.critic_view(next_obs, next_a)
            next_q = torch.min(self.qf1_target(next_obs, next_seen), self.qf2_target(next_obs, next_seen))
            if cfg.critic_regularizer:  # soft value: the regularizer is paid in every future step
                next_q = next_q - alpha * self.regularizer(next_a, next_logp)
            target = cfg.reward_scale * rewards + (1.0 - dones) * discounts * next_q
        seen = self.critic_view(obs, actions)
        q1, q2 = self.qf1(obs, seen), self.qf2(obs, seen)
        q_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()

        self.qf1.requires_grad_(False)  # Q weights frozen for the policy's step
        self.qf2.requires_grad_(False)
        if cfg.policy_update == "awac":
            actor_loss, logp, reg, pi = self.awac_actor_loss(obs, actions, alpha, target, seen)
        else:
            actor_loss, logp, reg, pi = self.sac_actor_loss(obs, alpha)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        if cfg.actor_ema > 0:
            self.update_eval_actor(cfg.actor_ema)
        self.qf1.requires_grad_(True)
        self.qf2.requires_grad_(True)

        # temperature: automatic entropy tuning towards target entropy -|A|
        alpha_loss = torch.zeros(())
        if cfg.autotune_alpha and cfg.regularizer == "kl_base":  # alpha up while KL > target
            alpha_loss = (self.log_alpha * (cfg.target_kl - reg.detach())).mean()
        elif cfg.autotune_alpha:  # alpha up while entropy < target
            alpha_loss = -(self.log_alpha * (logp.detach() + cfg.entropy_target)).mean()
        if cfg.autotune_alpha:
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()

        # target networks: hard copy every period (Table 1) or Polyak with tau < 1
        self.num_updates += 1
        if self.num_updates % cfg.target_update_period == 0:
            self.update_targets(cfg.tau)
        return {
            "q_loss": q_loss.item(), "actor_loss": actor_loss.item(), "alpha_loss": alpha_loss.item(),
            "alpha": alpha.item(), "q_mean": q1.mean().item(), "entropy": -logp.mean().item(),
            "kl_base": (logp - base_log_prob(pi)).mean().item(),
        }

    def sac_actor_loss(self, obs, alpha):
        """Maximise critic_q - alpha * regularizer through the reparameterised sample."""
        pi, logp, raw_mean = self.actor.sample(obs, with_raw=True)
        q_pi = self.critic_q(obs, pi)
        reg = self.regularizer(pi, logp)
        # + a weak pull of the pre-tanh mean to 0 (rlkit's mean regulariser): brings a mean that
        # ran into tanh's flat tail back where Q's gradient reaches it again
        loss = (alpha * reg - q_pi).mean() + self.cfg.mean_reg * raw_mean.pow(2).mean()
        return loss, logp, reg, pi

    def awac_actor_loss(self, obs, actions, alpha, returns, seen=None):
        """Weighted likelihood of the replayed actions, weight exp(A / lambda) (`awac_weights`):
        no gradient through Q, so a critic that is still wrong can only reweight actions the
        policy already tried. alpha * regularizer keeps the KL to the prior's base
        distribution in check as in the SAC update."""
        pi, logp = self.actor.sample(obs)  # the regularizer's sample, and the baseline's first
        weight = self.awac_weights(obs, actions, pi, returns, seen)
        reg = self.regularizer(pi, logp)
        loss = -(weight * self.actor.log_prob(obs, actions)).mean() + (alpha * reg).mean()
        return loss, logp, reg, pi

    @torch.no_grad()
    def awac_weights(self, obs, actions, pi, returns, seen=None) -> torch.Tensor:
        """exp(A / lambda), capped, with the advantage A = estimate - V(s): the estimate is
        critic_q(s, a) or the replayed return (the critics' own target), per `awac_advantage`;
        V(s) is the mean of critic_q over `awac_value_samples` z ~ pi (`pi` the first). `seen`:
        critic_view(obs, actions) if the caller has it."""
        cfg = self.cfg
        estimate = returns if cfg.awac_advantage == "return" else self.critic_q(obs, actions, seen)
        value = self.policy_value(obs, pi, cfg.awac_value_samples)
        return torch.exp((estimate - value) / cfg.awac_lambda).clamp(max=cfg.awac_max_weight)

    def critic_q(self, obs: torch.Tensor, action: torch.Tensor, seen=None) -> torch.Tensor:
        """What the policy's update reads of the two critics: their min or their mean. `seen`:
        critic_view(obs, action) if the caller has it (the prior's map costs more than a critic)."""
        seen = self.critic_view(obs, action) if seen is None else seen
        q1, q2 = self.qf1(obs, seen), self.qf2(obs, seen)
        return torch.min(q1, q2) if self.cfg.critic_estimate == "min" else (q1 + q2) / 2

    def critic_view(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """What the critics see of z (critic_input): z itself, or the prior's action f(z; s)."""
        return z if self.action_of is None else self.action_of(obs, z)

    @torch.no_grad()
    def policy_value(self, obs: torch.Tensor, pi: torch.Tensor, samples: int) -> torch.Tensor:
        """V(s) = E_{z ~ pi} critic_q(s, z), from the given sample `pi` and `samples` - 1 more."""
        if samples == 1:
            return self.critic_q(obs, pi)
        more_obs = obs.repeat(samples - 1, *([1] * (obs.dim() - 1)))
        more = self.critic_q(more_obs, self.actor.sample(more_obs)[0]).view(samples - 1, -1)
        return (self.critic_q(obs, pi) + more.sum(0)) / samples

    def regularizer(self, action: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
        """What alpha weighs, per sample: log pi(a|s) (entropy bonus), or log pi(z|s) - log
        N(z; 0, I), a one-sample KL(pi || N(0, I)) that is 0 at the prior's base distribution
        and never a bonus, so it cannot inflate Q the way an entropy bonus in z does."""
        if self.cfg.regularizer == "kl_base":
            return logp - base_log_prob(action)
        return logp

    @torch.no_grad()
    def update_targets(self, tau: float) -> None:
        for net, tgt in ((self.qf1, self.qf1_target), (self.qf2, self.qf2_target)):
            for p, tp in zip(net.parameters(), tgt.parameters()):
                tp.mul_(1.0 - tau).add_(p, alpha=tau)

    @torch.no_grad()
    def update_eval_actor(self, decay: float) -> None:
        """eval_actor <- decay * eval_actor + (1 - decay) * actor (decay 0: a copy); nothing
        where evaluation reads the trained policy itself (actor_ema 0)."""
        if self.eval_actor is self.actor:
            return
        for p, ep in zip(self.actor.parameters(), self.eval_actor.parameters()):
            ep.mul_(decay).add_(p, alpha=1.0 - decay)

    # -- behaviour cloning (BC+SAC baseline) --
    def bc_update(self, images: torch.Tensor, actions: torch.Tensor, opt: torch.optim.Optimizer) -> dict[str, float]:
        """Max likelihood of dataset actions + entropy bonus (paper App. D, BC)."""
        nll = -self.actor.log_prob(images, actions).mean()
        _, logp = self.actor.sample(images)
        loss = nll + self.cfg.bc_entropy_weight * logp.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            mse = F.mse_loss(self.actor.deterministic(images), actions.clamp(-1, 1))
        return {"bc_nll": nll.item(), "bc_entropy": -logp.mean().item(), "bc_mse": mse.item()}

    # -- (de)serialisation: everything resume needs --
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "actor": self.actor.state_dict(),
            "qf1": self.qf1.state_dict(), "qf2": self.qf2.state_dict(),
            "qf1_target": self.qf1_target.state_dict(), "qf2_target": self.qf2_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            **({"eval_actor": self.eval_actor.state_dict()} if self.cfg.actor_ema > 0 else {}),
            "actor_opt": self.actor_opt.state_dict(), "q_opt": self.q_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "qf1", "qf2", "qf1_target", "qf2_target"):
            getattr(self, name).load_state_dict(state[name])
        if self.cfg.actor_ema > 0:
            self.eval_actor.load_state_dict(state["eval_actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.num_updates = int(state["num_updates"])

    @classmethod
    def from_state_dict(cls, state: dict, device="cpu", action_of=None) -> "SACAgent":
        agent = cls(SACConfig.from_dict(state["config"]), device, action_of)
        agent.load_state_dict(state)
        return agent


# ---- replay buffer --------------------------------------------------------------------------

class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, done); images stay uint8, features float32.

    ``done`` is *terminated* only: a time-limit truncation still bootstraps from next_obs.
    ``sample(..., n_step=n, gamma=g)`` returns n-step transitions: the discounted rewards of up
    to n consecutive steps of one episode, the observation after the last of them, whether it
    terminated, and ``discounts`` = g^k for the k steps taken (fewer at an episode's end or at
    the newest transition).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], action_dim: int,
                 obs_dtype=np.uint8):
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), obs_dtype)
        self.actions = np.zeros((self.capacity, action_dim), np.float32)
        self.rewards = np.zeros((self.capacity,), np.float32)
        self.dones = np.zeros((self.capacity,), np.float32)
        self.ends = np.zeros((self.capacity,), bool)  # terminated or truncated: episode boundary
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated, truncated: bool = False) -> None:
        i = self.ptr
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.dones[i] = float(terminated)
        self.ends[i] = bool(terminated or truncated)
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator, device="cpu", n_step: int = 1,
               gamma: float = 0.99) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, size=batch_size)
        t = lambda a, i=idx: torch.as_tensor(a[i], device=device)  # noqa: E731
        batch = {"obs": t(self.obs), "actions": t(self.actions)}
        if n_step == 1:
            return {**batch, "rewards": t(self.rewards), "next_obs": t(self.next_obs),
                    "dones": t(self.dones)}
        rewards, last, discounts = self._n_step(idx, n_step, gamma)
        return {**batch, "rewards": torch.as_tensor(rewards, device=device),
                "next_obs": t(self.next_obs, last), "dones": t(self.dones, last),
                "discounts": torch.as_tensor(discounts, device=device)}

    def _n_step(self, idx: np.ndarray, n_step: int, gamma: float):
        """Discounted rewards of up to n steps from each index, the index of the last step
        taken and gamma^k for the k steps taken."""
        rewards = np.zeros(len(idx), np.float32)
        discounts = np.ones(len(idx), np.float32)
        last = idx.copy()
        going = np.ones(len(idx), bool)
        newest = (self.ptr - 1) % self.capacity
        for k in range(n_step):
            j = (idx + k) % self.capacity
            rewards += np.where(going, discounts * self.rewards[j], 0.0).astype(np.float32)
            last = np.where(going, j, last)
            discounts = np.where(going, discounts * gamma, discounts).astype(np.float32)
            going &= ~self.ends[j] & (j != newest)  # never into the next episode or the oldest data
        return rewards, last, discounts

    def save(self, path) -> None:
        n = self.size
        np.savez(path, obs=self.obs[:n], next_obs=self.next_obs[:n], actions=self.actions[:n],
                 rewards=self.rewards[:n], dones=self.dones[:n], ends=self.ends[:n],
                 meta=np.array([self.capacity, self.ptr, self.size], np.int64))

    def load(self, path) -> None:
        with np.load(path) as f:
            capacity, ptr, size = (int(v) for v in f["meta"])
            if capacity != self.capacity or f["obs"].shape[1:] != self.obs.shape[1:]:
                raise SACConfigError(
                    f"{path}: replay buffer capacity/shape {capacity}/{f['obs'].shape[1:]} does not match "
                    f"{self.capacity}/{self.obs.shape[1:]}")
            for k in ("obs", "next_obs", "actions", "rewards", "dones"):
                getattr(self, k)[:size] = f[k]
            # buffers saved before episode ends were stored: terminations are the ends they know
            self.ends[:size] = f["ends"] if "ends" in f.files else f["dones"] > 0
        self.ptr, self.size = ptr, size
