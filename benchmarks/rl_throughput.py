"""RL throughput on CPU: SAC update steps/s and environment steps/s (one torch thread).

    .venv/bin/python benchmarks/rl_throughput.py [--seconds 10] [--threads 1]

Measures, with 48x48 images:
* SAC gradient updates/s (critic + actor + alpha, batch sampled from a filled replay buffer)
  for the default observation, the frozen prior's features (260 floats: 256 image features +
  the arm state; MLPs [128, 128], batch 256: `train-rl`'s default), and for the paper's per-network CNNs on uint8
  images (Figure 7: 16-channel CNNs + MLP [1024, 512, 256], batch 256) and smaller CNN settings;
* policy act() calls/s (one observation, sampling), the frozen prior's forward and its
  feature pass per step;
* ParrotEnv steps/s (random actions, resets included) when sim.env is importable;
* the resulting end-to-end estimate: seconds per 1000 env steps with one update per step.

Writes benchmarks/results/rl_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from parrot_core.sac import ReplayBuffer, config_for_algo
from parrot_core.rl_loop import make_agent

FEATURES_DIM = 256 + 4  # the shipped priors' feature_dim + the arm state
SETTINGS = {  # name -> SACConfig overrides
    "prior_features": dict(obs_dim=FEATURES_DIM, hidden_sizes=(128, 128), batch_size=256),
    "paper": dict(conv_channels=16, hidden_sizes=(1024, 512, 256), batch_size=256),
    "medium": dict(conv_channels=16, hidden_sizes=(256, 256), batch_size=128),
    "small": dict(conv_channels=8, hidden_sizes=(256, 256), batch_size=64),
}


def _timed(fn, seconds: float, min_iters: int = 3) -> tuple[float, int]:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0), n


def bench_updates(name: str, seconds: float) -> dict:
    cfg = config_for_algo("parrot", image_size=48, **SETTINGS[name])
    agent = make_agent(cfg, seed=0)
    rng = np.random.default_rng(0)
    if cfg.obs_dim:
        buf = ReplayBuffer(2000, (cfg.obs_dim,), 7, np.float32)
        make_obs = lambda: rng.standard_normal(cfg.obs_dim).astype(np.float32)  # noqa: E731
    else:
        buf = ReplayBuffer(2000, (48, 48, 3), 7)
        make_obs = lambda: rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)  # noqa: E731
    for _ in range(2000):
        obs = make_obs()
        buf.add(obs, rng.standard_normal(7), float(rng.random() < 0.1), obs, False)
    rate, n = _timed(lambda: agent.update(buf.sample(cfg.batch_size, rng)), seconds)
    obs = make_obs()
    act_rate, _ = _timed(lambda: agent.act(obs), min(seconds, 3.0), 20)
    params = sum(p.numel() for p in agent.actor.parameters()) + 2 * sum(p.numel() for p in agent.qf1.parameters())
    return {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS[name].items()},
            "updates_per_s": round(rate, 2), "timed_updates": n, "act_per_s": round(act_rate, 1),
            "parameters": params}


def bench_prior(seconds: float) -> dict:
    from parrot_core.action_transform import PriorTransform
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    from parrot_core.prior_features import PriorFeatures

    prior = ConditionalRealNVP(PriorConfig(state_dim=4))
    t = PriorTransform(prior)
    features = PriorFeatures(prior)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    z = rng.standard_normal(7).astype(np.float32)
    info = {"ee_pos": [0.4, 0.0, 0.2], "gripper_closed": False}
    rate, _ = _timed(lambda: t(z, img, info), min(seconds, 3.0), 20)
    feature_rate, _ = _timed(lambda: features(img, info), min(seconds, 3.0), 20)
    return {"torch_prior_forward_per_s": round(rate, 1), "features_per_s": round(feature_rate, 1)}


def bench_env(seconds: float, task: str = "grasp") -> dict:
    try:
        from sim.env import EnvConfig, ParrotEnv
    except Exception as e:  # the twin is optional here
        return {"skipped": f"sim.env not importable ({type(e).__name__}: {e})"}
    env = ParrotEnv(EnvConfig(task=task, objects="heldout", image_size=48, max_steps=25))
    rng = np.random.default_rng(0)
    state = {"done": True, "episode": 0, "resets": 0}

    def step():
        if state["done"]:
            env.reset(seed=state["episode"])
            state["episode"] += 1
            state["resets"] += 1
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        state["done"] = term or trunc

    rate, n = _timed(step, seconds)
    t0 = time.perf_counter()
    for i in range(5):
        env.reset(seed=10_000 + i)
    reset_s = (time.perf_counter() - t0) / 5
    env.close()
    return {"task": task, "env_steps_per_s": round(rate, 1), "timed_steps": n, "reset_s": round(reset_s, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="time per measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rl_throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0], "updates": {}}
    for name in SETTINGS:
        result["updates"][name] = r = bench_updates(name, args.seconds)
        print(f"SAC updates ({name}): {r['updates_per_s']:.2f}/s, act {r['act_per_s']:.0f}/s", flush=True)
    result["prior"] = bench_prior(args.seconds)
    print(f"prior forward (torch, batch 1): {result['prior']['torch_prior_forward_per_s']:.0f}/s", flush=True)
    result["env"] = bench_env(args.seconds)
    print(f"env: {result['env']}", flush=True)
    env_rate = result["env"].get("env_steps_per_s")
    if env_rate:
        result["seconds_per_1000_env_steps"] = {}
        for name, r in result["updates"].items():
            per_step = 1 / r["updates_per_s"] + 1 / r["act_per_s"] + 1 / env_rate \
                + 1 / result["prior"]["torch_prior_forward_per_s"]
            if r["config"].get("obs_dim"):  # one feature pass per env step
                per_step += 1 / result["prior"]["features_per_s"]
            result["seconds_per_1000_env_steps"][name] = round(1000 * per_step, 1)
        print(f"estimated s per 1000 env steps (1 update/step, PARROT): {result['seconds_per_1000_env_steps']}")
        result["minutes_per_50k_env_steps"] = {
            k: round(50 * v / 60, 1) for k, v in result["seconds_per_1000_env_steps"].items()}
    result["load_avg_at_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
