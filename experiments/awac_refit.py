"""Refit a fresh z-policy on a finished RL run's replay buffer with the run's final critics.

An offline probe of the AWAC policy step alone (docs/RESULTS.md, fourteenth session): the data
and the critics stay those of the run, only the advantage's temperature (--awac-lambda) and its
baseline (--awac-value-samples) change, so the exported policies of two refits differ by the
policy extraction and nothing else. The output is a run directory `parrot export-policy` reads.

    python experiments/awac_refit.py RUN OUT --awac-lambda 0.03 --awac-value-samples 8
    parrot export-policy OUT --out OUT/export
    parrot eval-policy --policy OUT/export --prior PRIOR --task grasp --objects heldout \
        --episodes 100 --seed 20000
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from finished_run import load_finished_run
from parrot_core.rl_loop import CHECKPOINT
from parrot_core.sac import Actor


def refit(run: Path, out: Path, awac_lambda: float, value_samples: int, updates: int,
          batch_size: int, seed: int) -> None:
    checkpoint, agent, replay = load_finished_run(run)
    agent.cfg.awac_lambda, agent.cfg.awac_value_samples = awac_lambda, value_samples
    torch.manual_seed(seed)
    agent.actor = Actor(agent.cfg)  # a fresh policy: N(0, I) in z for every image
    optimizer = torch.optim.Adam(agent.actor.parameters(), lr=agent.cfg.policy_lr)
    n = len(replay)
    obs, actions = torch.as_tensor(replay.obs[:n]), torch.as_tensor(replay.actions[:n])
    rng = np.random.default_rng(seed)
    no_alpha = torch.zeros(())  # the runs' alpha was ~0 from 30k steps on: no KL term
    for _ in tqdm(range(updates), desc="awac refit", mininterval=5):
        idx = torch.as_tensor(rng.integers(0, len(obs), batch_size))
        loss = agent.awac_actor_loss(obs[idx], actions[idx], no_alpha)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "config.json", out / "config.json")
    checkpoint["agent"]["actor"] = agent.actor.state_dict()
    checkpoint["agent"]["config"] = agent.cfg.to_dict()
    torch.save(checkpoint, out / CHECKPOINT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished `parrot train-rl --policy-update awac` run")
    ap.add_argument("out", type=Path, help="the refit's run directory (for `parrot export-policy`)")
    ap.add_argument("--awac-lambda", type=float, required=True)
    ap.add_argument("--awac-value-samples", type=int, default=8)
    ap.add_argument("--updates", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    refit(args.run, args.out, args.awac_lambda, args.awac_value_samples, args.updates,
          args.batch_size, args.seed)
    print(f"awac refit: {args.out} (lambda {args.awac_lambda}, {args.awac_value_samples} value samples)")


if __name__ == "__main__":
    main()
