"""SAC agent (parrot_core.sac): the initial policy, its log-probs, and learning on a toy task."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from parrot_core.action_transform import IdentityTransform, PriorTransform
from parrot_core.rl_loop import LoopConfig, make_agent, read_metrics, train
from parrot_core.sac import SACConfig, SACConfigError, config_for_algo
from rl_toy import ColorSignEnv, negating_prior, tiny_config

torch.set_num_threads(1)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _ks_statistic(samples: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the empirical CDF and N(0, 1)."""
    x = np.sort(samples)
    n = len(x)
    cdf = _normal_cdf(x)
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


def test_initial_parrot_policy_is_the_base_distribution():
    """Paper 3.2: PARROT's policy starts at pi(z|s) = N(0, I) for every image. Per z dim, 8192
    samples over 32 random images pass a KS test against N(0, 1) (alpha = 0.001), mean 0 and
    variance 1 within 5 standard errors, off-diagonal correlations ~0; the deterministic (mean)
    output is exactly 0 and log-probs are the standard normal's."""
    torch.manual_seed(0)
    agent = make_agent(config_for_algo("parrot", image_size=48, conv_channels=8, hidden_sizes=(64, 64)), seed=0)
    images = torch.randint(0, 256, (32, 48, 48, 3), dtype=torch.uint8)
    with torch.no_grad():
        raw_mean, log_std = agent.actor.params(images)  # one network pass per image,
        z, logp = agent.actor._sample(raw_mean.repeat_interleave(256, 0),  # 256 draws each
                                      log_std.repeat_interleave(256, 0))
        mean = agent.actor.deterministic(images)
    z = z.numpy().astype(np.float64)
    n = len(z)
    assert torch.equal(mean, torch.zeros_like(mean))
    expected_logp = -0.5 * (z ** 2).sum(1) - 3.5 * math.log(2 * math.pi)
    assert np.allclose(logp.numpy(), expected_logp, atol=1e-4)
    crit = 1.95 / math.sqrt(n)  # KS critical value, alpha = 0.001
    for d in range(7):
        assert _ks_statistic(z[:, d]) < crit, f"dim {d}"
    assert np.all(np.abs(z.mean(0)) < 5 / math.sqrt(n))
    assert np.all(np.abs(z.var(0) - 1.0) < 5 * math.sqrt(2.0 / n))
    corr = np.corrcoef(z.T)
    assert np.abs(corr - np.eye(7)).max() < 5 / math.sqrt(n)
    assert np.abs(z).max() > 3.0  # not squashed into [-1, 1] like a scale-1 tanh policy


def test_baseline_policy_acts_in_the_action_box():
    """SAC / BC+SAC act directly in [-1, 1]: tanh-squashed samples stay inside, mean is 0."""
    torch.manual_seed(0)
    agent = make_agent(config_for_algo("sac", image_size=16, conv_channels=4, hidden_sizes=(32,)), seed=0)
    images = torch.randint(0, 256, (256, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        a, _ = agent.actor.sample(images)
        assert torch.equal(agent.actor.deterministic(images), torch.zeros(256, 7))
    assert a.abs().max() < 1.0 and a.std() > 0.4


@pytest.mark.parametrize("algo", ["parrot", "sac"])
def test_sample_log_prob_matches_density_of_given_actions(algo):
    """The log-prob a reparameterised sample reports equals log_prob() of that action (the
    density BC maximises), after randomising the head so mean and std vary."""
    torch.manual_seed(1)
    agent = make_agent(tiny_config(algo), seed=1)
    with torch.no_grad():
        for p in agent.actor.head[-1].parameters():
            p.normal_(0, 0.3)
    images = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8)
    with torch.no_grad():
        a, logp = agent.actor.sample(images)
        keep = a.abs().max(1).values < 0.99 if algo == "sac" else torch.ones(64, dtype=torch.bool)
        assert torch.allclose(agent.actor.log_prob(images, a)[keep], logp[keep], atol=1e-3)


def test_config_rejects_nonsense():
    """Bad SAC settings fail at construction with SACConfigError."""
    with pytest.raises(SACConfigError):
        SACConfig(distribution="beta")
    with pytest.raises(SACConfigError):
        config_for_algo("ppo")
    with pytest.raises(SACConfigError):
        SACConfig(tau=0.0)
    with pytest.raises(SACConfigError, match="policy_update"):
        SACConfig(policy_update="ppo")
    with pytest.raises(SACConfigError, match="awac_lambda"):
        SACConfig(awac_lambda=0.0)
    with pytest.raises(SACConfigError, match="awac_value_samples"):
        SACConfig(awac_value_samples=0)
    with pytest.raises(SACConfigError, match="hold_steps"):
        SACConfig(hold_steps=0)
    with pytest.raises(SACConfigError, match="critic_estimate"):
        SACConfig(critic_estimate="max")
    with pytest.raises(SACConfigError, match="awac_advantage"):
        SACConfig(awac_advantage="td")
    with pytest.raises(SACConfigError, match="critic_input"):
        SACConfig(critic_input="image")
    with pytest.raises(SACConfigError, match="actor_ema"):
        SACConfig(actor_ema=1.0)


def _learn(algo, transform, tmp_path, steps=500, action_of=None, **config):
    agent = make_agent(tiny_config(algo, **config), seed=0, action_of=action_of)
    loop = LoopConfig(total_steps=steps, seed=0, eval_every=250, eval_episodes=20, progress=False)
    train(agent, lambda: ColorSignEnv(), transform, tmp_path, loop, run_meta={"algo": algo})
    return [r for r in read_metrics(tmp_path) if r["kind"] == "eval"]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_sac_learns_trivially_easy_task(tmp_path, layer_norm):
    """SAC in action space learns 'push a[0] towards the image's colour' within 500 env steps:
    eval success goes from 0 (zero mean action) to >= 0.9, with plain critics and with
    LayerNorm in the critics' hidden layers (--critic-layer-norm)."""
    rows = _learn("sac", IdentityTransform(), tmp_path, critic_layer_norm=layer_norm)
    agent_q = make_agent(tiny_config("sac", critic_layer_norm=layer_norm), seed=0).qf1
    assert any(isinstance(m, torch.nn.LayerNorm) for m in agent_q.modules()) == layer_norm
    assert rows[0]["env_step"] == 0 and rows[0]["eval_success"] == 0.0
    assert rows[-1]["env_step"] == 500 and rows[-1]["eval_success"] >= 0.9


def test_parrot_learns_through_a_frozen_prior(tmp_path):
    """PARROT acts in z and the env executes a = prior(z, s): with a stand-in prior that
    negates (a = -tanh(z)), the policy learns the opposite z sign and reaches >= 0.9 success;
    the prior's weights never change."""
    prior = negating_prior()
    transform = PriorTransform(prior)
    assert not any(p.requires_grad for p in prior.parameters()) and not prior.training
    rows = _learn("parrot", transform, tmp_path)
    assert rows[-1]["eval_success"] >= 0.9
    assert float(prior.dummy) == 0.0


@pytest.mark.parametrize("value_samples", [1, 8])
def test_parrot_with_the_awac_policy_update_learns_through_the_prior(tmp_path, value_samples):
    """--policy-update awac: the z policy re-weights the z it tried by exp(advantage / lambda)
    instead of following Q's gradient, and still learns the negating prior's task (>= 0.9),
    with the advantage's baseline from one policy sample or the mean of eight."""
    rows = _learn("parrot", PriorTransform(negating_prior()), tmp_path, steps=750,
                  policy_update="awac", awac_lambda=0.1, awac_value_samples=value_samples)
    assert rows[0]["eval_success"] < 0.7 and rows[-1]["eval_success"] >= 0.9


def test_parrot_with_critics_on_the_priors_action_learns(tmp_path):
    """critic_input='action': the critics see the action the prior maps z to, not z; with the
    negating prior's map as action_of the AWAC policy in z still learns the task (>= 0.9)."""
    rows = _learn("parrot", PriorTransform(negating_prior()), tmp_path, steps=750,
                  action_of=lambda obs, z: -torch.tanh(z), policy_update="awac", awac_lambda=0.1,
                  critic_input="action")
    assert rows[0]["eval_success"] < 0.7 and rows[-1]["eval_success"] >= 0.9


class _SumOfInput(torch.nn.Module):
    """A stand-in critic Q(s, x) = sum(x) of whatever it is shown."""

    def forward(self, obs, x):
        return x.sum(dim=1)


@pytest.mark.parametrize("critic_input", ["z", "action"])
def test_the_critics_see_z_or_the_priors_action(critic_input):
    """critic_q(s, z) evaluates the critics on z itself, or with critic_input='action' on
    action_of(s, z), the prior's action (here a stand-in map 2z + 1)."""
    agent = make_agent(tiny_config("parrot", critic_input=critic_input), seed=0,
                       action_of=lambda obs, z: 2 * z + 1)
    agent.qf1 = agent.qf2 = _SumOfInput()
    obs = torch.zeros((3, 8, 8, 3), dtype=torch.uint8)
    z = torch.arange(21, dtype=torch.float32).view(3, 7)
    seen = z if critic_input == "z" else 2 * z + 1
    assert torch.equal(agent.critic_q(obs, z), seen.sum(dim=1))


def test_critics_on_the_action_need_the_priors_map():
    """An agent whose critics read the prior's action but is given no map to it is refused."""
    with pytest.raises(SACConfigError, match="action_of"):
        make_agent(tiny_config("parrot", critic_input="action"), seed=0)


class _SumOfZ(torch.nn.Module):
    """A stand-in critic Q(s, z) = sum(z): under N(0, I) its value E_pi Q is 0 in every state."""

    def forward(self, obs, z):
        return z.sum(dim=1)


@pytest.mark.parametrize("samples, spread", [(1, (2.0, 3.2)), (64, (0.2, 0.45))])
def test_the_awac_baseline_averages_the_policys_samples(samples, spread):
    """The advantage's baseline V(s) is the mean of Q over `awac_value_samples` z ~ pi: with
    Q = sum(z) and the policy at N(0, I) one sample scatters V by sqrt(7) = 2.6 around the true
    0, the mean of 64 by sqrt(7 / 64) = 0.33."""
    agent = make_agent(tiny_config("parrot", awac_value_samples=samples), seed=0)
    agent.qf1 = agent.qf2 = _SumOfZ()
    obs = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (2000, 8, 8, 3), dtype=np.uint8))
    pi, _ = agent.actor.sample(obs)
    value = agent.policy_value(obs, pi, agent.cfg.awac_value_samples)
    assert value.shape == (2000,)
    assert abs(float(value.mean())) < 0.2
    assert spread[0] < float(value.std()) < spread[1], float(value.std())


class _ConstantQ(torch.nn.Module):
    """A stand-in critic with the same value for every state and z."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, obs, z):
        return torch.full((len(z),), self.value)


@pytest.mark.parametrize("estimate, want", [("min", 0.2), ("mean", 0.5)])
def test_the_policy_reads_the_critics_min_or_mean(estimate, want):
    """critic_q, what the policy's update (and its AWAC baseline) reads of the two critics, is
    their min by default and their mean with critic_estimate='mean'."""
    agent = make_agent(tiny_config("parrot", critic_estimate=estimate), seed=0)
    agent.qf1, agent.qf2 = _ConstantQ(0.2), _ConstantQ(0.8)
    obs = torch.zeros((5, 8, 8, 3), dtype=torch.uint8)
    z = torch.zeros(5, 7)
    assert torch.allclose(agent.critic_q(obs, z), torch.full((5,), want))
    assert torch.allclose(agent.policy_value(obs, z, 4), torch.full((5,), want))


@pytest.mark.parametrize("advantage", ["q", "return"])
def test_the_awac_advantage_reads_the_critics_or_the_return(advantage):
    """awac_advantage='q' weighs a replayed z by what the critics say of it, 'return' by the
    return it earned: with critics that rate every z alike (0.5), the two replayed z of one state
    weigh the same under 'q', and the one whose episode succeeded (return 1, the other 0) weighs
    exp(0.5 / lambda) (capped) against exp(-0.5 / lambda) under 'return'."""
    agent = make_agent(tiny_config("parrot", policy_update="awac", awac_lambda=0.1,
                                    awac_advantage=advantage), seed=0)
    agent.qf1 = agent.qf2 = _ConstantQ(0.5)
    obs = torch.zeros((2, 8, 8, 3), dtype=torch.uint8)
    z, returns = torch.tensor([[0.5] * 7, [-0.5] * 7]), torch.tensor([1.0, 0.0])
    weights = agent.awac_weights(obs, z, agent.actor.sample(obs)[0], returns)
    want = [1.0, 1.0] if advantage == "q" else [agent.cfg.awac_max_weight, math.exp(-5.0)]
    assert torch.allclose(weights, torch.tensor(want), rtol=1e-5)


def test_the_awac_policy_moves_towards_the_z_whose_episodes_succeeded():
    """With awac_advantage='return' the AWAC step alone moves the policy's mean towards the z
    that earned a return and away from the one that did not, however the critics rate them."""
    agent = make_agent(tiny_config("parrot", policy_update="awac", awac_lambda=0.1,
                                   awac_advantage="return", autotune_alpha=False, init_alpha=1e-3),
                       seed=0)
    agent.qf1 = agent.qf2 = _ConstantQ(0.5)
    obs = torch.zeros((64, 8, 8, 3), dtype=torch.uint8)
    z = torch.tensor([[0.5] * 7, [-0.5] * 7]).repeat(32, 1)
    returns = torch.tensor([1.0, 0.0]).repeat(32)
    for _ in range(100):
        loss = agent.awac_actor_loss(obs, z, torch.tensor(1e-3), returns)[0]
        agent.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.actor_opt.step()
    with torch.no_grad():
        mean = agent.actor.deterministic(obs[:1])[0]
    assert torch.all(mean > 0.3), mean


def _random_batch(n: int, gen: torch.Generator) -> dict:
    obs = torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8, generator=gen)
    return {"obs": obs, "actions": torch.rand((n, 7), generator=gen) * 2 - 1,
            "rewards": torch.rand(n, generator=gen), "next_obs": obs, "dones": torch.zeros(n)}


def test_evaluation_reads_an_average_of_the_policys_weights():
    """actor_ema > 0: after every update the evaluated policy's weights are the exponential
    moving average of the trained ones; deterministic actions come from the average, sampled
    (collection) ones from the trained policy; it survives a checkpoint. actor_ema 0: one policy."""
    plain = make_agent(tiny_config("sac"), seed=0)
    assert plain.eval_actor is plain.actor
    agent = make_agent(tiny_config("sac", actor_ema=0.9), seed=0)
    average = [p.detach().clone() for p in agent.actor.parameters()]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        agent.update(_random_batch(64, gen))
        for a, p in zip(average, agent.actor.parameters()):
            a.mul_(0.9).add_(p.detach(), alpha=0.1)
    for a, p in zip(average, agent.eval_actor.parameters()):
        assert torch.allclose(a, p, atol=1e-6)
    image = np.full((8, 8, 3), 200, np.uint8)
    x = torch.as_tensor(image)[None]
    with torch.no_grad():
        from_average, from_trained = agent.eval_actor.deterministic(x)[0], agent.actor.deterministic(x)[0]
    assert not torch.allclose(from_average, from_trained)
    assert np.allclose(agent.act(image, deterministic=True), from_average.numpy())
    restored = type(agent).from_state_dict(agent.state_dict())
    for p, q in zip(restored.eval_actor.parameters(), agent.eval_actor.parameters()):
        assert torch.equal(p, q)


def test_a_run_with_an_averaged_policy_learns_and_exports_the_average(tmp_path):
    """SAC with actor_ema 0.95 still learns the toy task (the average is what evaluation
    scores, >= 0.9), and the run's exported policy is that average, not the trained weights."""
    from parrot_core.export_policy import load_actor

    rows = _learn("sac", IdentityTransform(), tmp_path, actor_ema=0.95)
    assert rows[-1]["eval_success"] >= 0.9
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["agent"]
    actor = load_actor(tmp_path)[0]
    for name, weight in actor.state_dict().items():
        assert torch.equal(weight, saved["eval_actor"][name])
    assert any(not torch.equal(saved["eval_actor"][k], saved["actor"][k]) for k in saved["actor"])


def test_prior_transform_runs_the_real_flow():
    """PriorTransform over the real ConditionalRealNVP returns flow.forward(z, image) for one
    (z, image) pair, frozen and without building a graph."""
    from parrot_core.flow import ConditionalRealNVP, PriorConfig

    torch.manual_seed(0)
    flow = ConditionalRealNVP(PriorConfig(image_size=8, conv_channels=4, encoder_hidden=(16,), feature_dim=8,
                                          coupling_hidden=(16,)))
    with torch.no_grad():
        for layer in flow.couplings:
            layer.net[-1].weight.normal_(0, 0.2)
    t = PriorTransform(flow)
    z = np.random.default_rng(0).standard_normal(7).astype(np.float32)
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    a = t(z, img)
    with torch.no_grad():
        ref = flow(torch.from_numpy(z)[None], torch.from_numpy(img)[None])[0].numpy()
    assert a.shape == (7,) and a.dtype == np.float32 and np.allclose(a, ref, atol=1e-6)
    assert np.all(np.abs(a) < 1) and not np.allclose(a, np.tanh(z), atol=1e-3)


class _SlopedQ(torch.nn.Module):
    """A critic that has learned nothing but a constant slope in z: Q = slope . z + b."""

    def __init__(self, slope: float):
        super().__init__()
        self.register_buffer("slope", torch.full((7,), slope))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, image, action):
        return action @ self.slope + self.b


def _mean_after_chasing_a_spurious_slope(mean_reg: float, slope: float = 0.02, updates: int = 300,
                                         regularizer: str = "kl_base"):
    torch.manual_seed(0)
    agent = make_agent(tiny_config("parrot", mean_reg=mean_reg, init_alpha=0.1,
                                   regularizer=regularizer, autotune_alpha=False), seed=0)
    agent.qf1, agent.qf2 = _SlopedQ(slope), _SlopedQ(slope)
    agent.qf1_target, agent.qf2_target = copy.deepcopy(agent.qf1), copy.deepcopy(agent.qf2)
    agent.q_opt = torch.optim.Adam([agent.qf1.b, agent.qf2.b], lr=1e-3)
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8))
    batch = {"obs": images, "next_obs": images, "actions": torch.zeros(64, 7),
             "rewards": torch.zeros(64), "dones": torch.zeros(64)}
    for _ in range(updates):
        agent.update(batch)
    with torch.no_grad():
        return float(agent.actor.deterministic(images).abs().mean())


def test_kl_to_the_base_keeps_parrot_near_the_prior_against_a_spurious_q_slope():
    """Adam moves every policy weight ~lr per update along the sign of Q's gradient, however
    small: against a critic with a small slope (0.02) in z and no reward, an entropy-regularized
    z policy with rlkit's 1e-3 mean penalty runs to the edge of its range within 300 updates
    (actions far from the prior's mode), while PARROT's KL(pi || N(0, I)) holds the mean where
    the slope pays for it, about slope / alpha = 0.2."""
    runaway = _mean_after_chasing_a_spurious_slope(1e-3, regularizer="entropy")
    held = _mean_after_chasing_a_spurious_slope(1e-3, regularizer="kl_base")
    print(f"|z mean| after 300 updates: entropy -> {runaway:.2f}, kl_base -> {held:.2f}")
    assert runaway > 2.0
    assert 0.1 < held < 0.3


def test_kl_tuning_moves_alpha_towards_the_target_kl():
    """With regularizer kl_base and automatic tuning, alpha falls while the policy's KL to
    N(0, I) is below target_kl (at the start it is 0) and rises while it is above."""
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8))
    batch = {"obs": images, "next_obs": images, "actions": torch.zeros(64, 7),
             "rewards": torch.zeros(64), "dones": torch.zeros(64)}
    for target, falls in ((2.0, True), (-1.0, False)):
        agent = make_agent(tiny_config("parrot", init_alpha=0.1, target_kl=target), seed=0)
        for _ in range(20):
            agent.update(batch)
        assert (agent.alpha < 0.099) if falls else (agent.alpha > 0.101), (target, agent.alpha)


def test_without_the_critic_regularizer_q_learns_the_task_return_alone():
    """A policy away from N(0, I) (KL > 0) on transitions with no reward: with the soft value
    (critic_regularizer, SAC's default) Q learns the negative of the discounted KL penalty,
    -gamma / (1 - gamma) * alpha * KL ~ -7.9 at gamma 0.5; without it Q's target is the reward
    alone and Q goes to 0 (a little below: the min of two critics)."""
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8))
    batch = {"obs": images, "next_obs": images, "actions": torch.zeros(64, 7),
             "rewards": torch.zeros(64), "dones": torch.zeros(64)}
    q_means = {}
    for soft in (True, False):
        agent = make_agent(tiny_config("parrot", init_alpha=1.0, autotune_alpha=False,
                                       critic_regularizer=soft, policy_lr=0.0, gamma=0.5),
                           seed=0)
        with torch.no_grad():  # move the policy's mean off 0 in every dim: KL = 7 * 1.5^2 / 2
            agent.actor.head[-1].bias[:7] = 1.5
        for _ in range(400):
            out = agent.update(batch)
        assert out["kl_base"] > 5.0
        q_means[soft] = out["q_mean"]
    assert q_means[True] < -3.0 and abs(q_means[False]) < 0.2, q_means  # 0, less min-of-two bias
