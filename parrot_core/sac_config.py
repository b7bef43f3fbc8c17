"""SAC's settings: one dataclass, the single source of every default.

``parrot train-rl`` builds its options from these fields (so ``--help`` needs no torch), the
agent (parrot_core.sac) reads them, and every RL checkpoint saves them (``to_dict``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from parrot_core.action_space import ACTION_DIM

DISTRIBUTIONS = ("tanh", "clipped")
REGULARIZERS = ("entropy", "kl_base")
# How the policy learns from Q: "sac" (reparameterised gradient of Q) or "awac" (weighted
# likelihood of the replayed actions, weight exp(advantage / awac_lambda)): the policy only
# moves towards actions it tried that Q rates above its average (Nair et al. 2020).
POLICY_UPDATES = ("sac", "awac")
# What the policy's update reads of the two critics: their min (SAC's pessimism, against the
# overestimation bootstrapping feeds) or their mean (with Monte Carlo targets nothing
# bootstraps, and averaging two critics halves the part of their noise that is independent)
CRITIC_ESTIMATES = ("min", "mean")
# What the AWAC step's advantage A = estimate - V(s) takes as the replayed action's worth: the
# critics' Q(s, a), or the return they regress to (their n-step target; with Monte Carlo targets
# the episode's own discounted success), unbiased where a critic cannot resolve one step's z
AWAC_ADVANTAGES = ("q", "return")
# What the critics see of the policy's choice: z itself, or the action a = f(z; s) the prior
# maps it to (PARROT on the prior's features: the flow runs on the stored features). A critic
# on z must learn the flow's state-dependent map besides the task (docs/RL_DESIGN.md).
CRITIC_INPUTS = ("z", "action")


class SACConfigError(ValueError):
    """An inconsistent SAC configuration."""


@dataclass
class SACConfig:
    """Network sizes and SAC hyperparameters. Defaults: paper Table 1 + Figure 7."""

    image_size: int = 48
    action_dim: int = ACTION_DIM
    # Observations: 0 -> uint8 images, each network with its own CNN (Figure 7, paper-faithful;
    # slow on a CPU); > 0 -> float vectors of this size, e.g. the frozen prior's features
    # (parrot_core.prior_features), and the networks are MLPs only.
    obs_dim: int = 0
    # networks (Figure 7): per-network CNN with `conv_channels` 3x3 filters, then the MLP
    conv_channels: int = 16
    hidden_sizes: tuple[int, ...] = (1024, 512, 256)
    # SAC (Table 1)
    gamma: float = 0.99
    policy_lr: float = 3e-4
    q_lr: float = 3e-4
    alpha_lr: float = 3e-4
    batch_size: int = 256
    target_update_period: int = 1000  # updates between target updates
    tau: float = 1.0  # 1.0: hard copy every `target_update_period` (Table 1)
    reward_scale: float = 1.0
    updates_per_step: float = 1.0  # gradient steps per env step (may be fractional)
    n_step: int = 1  # n-step returns (in decisions): a sparse success reaches Q in 1/n as many backups
    # env steps each action the policy chooses is held for (PARROT: z, still mapped through the
    # prior on every new image); replay stores one transition per decision, its reward
    # discounted within the hold and its discount gamma^k (docs/RL_DESIGN.md, "Holding z for
    # several steps")
    hold_steps: int = 1
    # True (SAC): an episode cut at the time limit bootstraps from its last observation. False:
    # the cut ends the return, so with n_step >= the episode length every target is the
    # episode's own discounted success (Monte Carlo) and no error of Q can feed back into Q
    # (docs/RL_DESIGN.md, "Time limits").
    bootstrap_time_limit: bool = True
    autotune_alpha: bool = True
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None -> -action_dim
    # What alpha weighs (see SACAgent.regularizer): "entropy" (standard SAC: reward + alpha *
    # entropy) or "kl_base" (reward - alpha * KL(pi || N(0, I)): stay near the prior's base
    # distribution unless Q pays for leaving it; PARROT). With autotune, alpha keeps the KL
    # near target_kl nats.
    regularizer: str = "entropy"
    target_kl: float = 2.0
    # True (SAC): the critic's target is soft, r + gamma * (Q' - alpha * regularizer'). False:
    # the critic learns the task's return alone and only the actor pays alpha * regularizer, so
    # Q stays a success probability while alpha moves (docs/RL_DESIGN.md).
    critic_regularizer: bool = True
    policy_update: str = "sac"
    awac_lambda: float = 0.3  # advantage temperature (in units of Q) for "awac"
    awac_max_weight: float = 20.0  # cap on exp(advantage / lambda): one lucky sample cannot dominate
    # z samples from the policy that estimate the advantage's baseline V(s) = E_pi Q(s, z): Q
    # varies over the policy's z, so one sample adds noise to every weight (CRR uses 4)
    awac_value_samples: int = 1
    awac_advantage: str = "q"  # one of AWAC_ADVANTAGES (docs/RL_DESIGN.md, "The advantage's return")
    critic_estimate: str = "min"  # one of CRITIC_ESTIMATES; the critics' own targets keep the min
    critic_input: str = "z"  # one of CRITIC_INPUTS
    # > 0: evaluation and export read an exponential moving average of the policy's weights
    # with this decay per update, collection the trained weights; 0: the trained weights for
    # all (docs/RL_DESIGN.md, "An average of the policy's weights")
    actor_ema: float = 0.0
    # LayerNorm after each hidden layer of the critics: bounds how far Q can extrapolate to
    # actions it never saw (RLPD, Ball et al. 2023), the overestimation the actor exploits
    critic_layer_norm: bool = False
    # policy distribution (module docstring)
    distribution: str = "tanh"
    action_scale: float = 1.0
    z_clip: float = 6.0  # only for "clipped"
    init_std: float = 1.0
    mean_reg: float = 1e-3  # weight of the pre-tanh mean penalty in the policy loss (rlkit)
    log_std_min: float = -5.0  # log std is squashed smoothly into (min, max) (CleanRL)
    log_std_max: float = 2.0
    # data collection
    buffer_size: int = 100_000
    learning_starts: int = 1000  # env steps collected with the initial policy before updates
    # behaviour cloning (BC+SAC baseline; paper: Gaussian max likelihood + entropy term)
    bc_lr: float = 3e-4
    bc_entropy_weight: float = 0.01

    def __post_init__(self):
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        if self.distribution not in DISTRIBUTIONS:
            raise SACConfigError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if self.action_scale <= 0 or self.z_clip <= 0 or self.init_std <= 0:
            raise SACConfigError("action_scale, z_clip and init_std must be > 0")
        if not 0.0 < self.tau <= 1.0:
            raise SACConfigError(f"tau must be in (0, 1], got {self.tau}")
        if self.target_update_period < 1 or self.batch_size < 1 or self.updates_per_step < 0:
            raise SACConfigError("target_update_period and batch_size must be >= 1, updates_per_step >= 0")
        if not self.log_std_min < math.log(self.init_std) < self.log_std_max:
            raise SACConfigError("log(init_std) must lie inside (log_std_min, log_std_max)")
        if self.n_step < 1:
            raise SACConfigError(f"n_step must be >= 1, got {self.n_step}")
        if self.hold_steps < 1:
            raise SACConfigError(f"hold_steps must be >= 1, got {self.hold_steps}")
        if self.regularizer not in REGULARIZERS:
            raise SACConfigError(f"regularizer must be one of {REGULARIZERS}, got {self.regularizer!r}")
        if self.policy_update not in POLICY_UPDATES:
            raise SACConfigError(f"policy_update must be one of {POLICY_UPDATES}, "
                                 f"got {self.policy_update!r}")
        if self.awac_lambda <= 0 or self.awac_max_weight <= 0:
            raise SACConfigError("awac_lambda and awac_max_weight must be > 0")
        if self.critic_estimate not in CRITIC_ESTIMATES:
            raise SACConfigError(f"critic_estimate must be one of {CRITIC_ESTIMATES}, "
                                 f"got {self.critic_estimate!r}")
        if self.critic_input not in CRITIC_INPUTS:
            raise SACConfigError(f"critic_input must be one of {CRITIC_INPUTS}, got {self.critic_input!r}")
        if self.awac_advantage not in AWAC_ADVANTAGES:
            raise SACConfigError(f"awac_advantage must be one of {AWAC_ADVANTAGES}, "
                                 f"got {self.awac_advantage!r}")
        if not 0.0 <= self.actor_ema < 1.0:
            raise SACConfigError(f"actor_ema must be in [0, 1), got {self.actor_ema}")
        if self.awac_value_samples < 1:
            raise SACConfigError(f"awac_value_samples must be >= 1, got {self.awac_value_samples}")

    @property
    def entropy_target(self) -> float:
        return float(-self.action_dim if self.target_entropy is None else self.target_entropy)

    @property
    def decision_gamma(self) -> float:
        """The discount from one decision to the next: gamma per env step, hold_steps of them."""
        return self.gamma ** self.hold_steps

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SACConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SACConfigError(f"unknown SACConfig fields: {sorted(unknown)}")
        return cls(**d)


def config_for_algo(algo: str, **overrides) -> SACConfig:
    """The SAC config each algorithm uses; only the policy's output space differs.

    parrot: acts in z with the clipped Gaussian starting at N(0, I) (scale 4, clip 6, std <= 1.25),
        regularized towards N(0, I) by KL instead of rewarded for entropy.
    sac, bc-sac: act in [-1, 1] actions with the tanh Gaussian (scale 1).
    """
    if algo == "parrot":
        base = dict(distribution="clipped", action_scale=4.0, z_clip=6.0, log_std_max=math.log(1.25),
                    regularizer="kl_base")
    elif algo in ("sac", "bc-sac"):
        base = dict(distribution="tanh", action_scale=1.0)
    else:
        raise SACConfigError(f"unknown algo {algo!r} (parrot | sac | bc-sac)")
    base.update(overrides)
    return SACConfig(**base)
