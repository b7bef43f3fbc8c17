"""Are a grasp policy's failures the scene's or the policy's? Runs exported PARROT policies
on the same held-out scenes three ways and prints per-scene agreement:

- each export alone (its mean z, as `parrot eval-policy` runs it);
- the first export with a small Gaussian perturbation of its z (`--noise`, fixed per scene and step):
  how many scenes flip when the policy barely changes (the twin's own sensitivity);
- the average of all the exports' z (one policy from several seeds' runs).

    .venv/bin/python experiments/policy_noise_probe.py runs/rl_b20k/export-grasp-awac-mc-b20k-s{0,1,2} \
        --prior models/prior_xarm6_48px --episodes 100 --seed 20000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from parrot_core.arm_state import state_from_info  # noqa: E402
from parrot_core.intervals import wilson_interval  # noqa: E402
from parrot_core.onnx_policy import OnnxPolicy  # noqa: E402
from parrot_core.onnx_prior import OnnxPrior  # noqa: E402
from sim.env import EnvConfig, ParrotEnv  # noqa: E402
from sim.eval_policy import run_episodes  # noqa: E402


def successes(env, prior, z_of, episodes: int, seed: int) -> np.ndarray:
    """Per scene: did acting with prior.forward(z_of(images, states)) grasp within 25 steps."""
    def act(obs, info):
        images, states = obs[None], state_from_info(info)[None]
        return prior.forward(z_of(images, states), images, states)[0]
    return np.array([r["success"] for r in run_episodes(env, act, episodes, seed, progress=False)])


def line(name: str, ok: np.ndarray) -> str:
    lo, hi = wilson_interval(int(ok.sum()), len(ok))
    return f"{name:40s} {ok.sum():3d} / {len(ok)} ({ok.mean():.1%}, CI {lo:.1%}-{hi:.1%})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exports", nargs="+", help="`parrot export-policy` directories (PARROT, grasp)")
    ap.add_argument("--prior", required=True)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20000)
    ap.add_argument("--noise", type=float, default=0.05, help="std of the perturbation of z")
    ap.add_argument("--out", help="per-scene results (JSON)")
    args = ap.parse_args()
    prior = OnnxPrior(args.prior)
    policies = [OnnxPolicy(e) for e in args.exports]
    env = ParrotEnv(EnvConfig(task="grasp", objects="heldout"))
    rows = {}
    for path, policy in zip(args.exports, policies):
        rows[Path(path).name] = successes(env, prior, policy, args.episodes, args.seed)

    def perturbed(images, states):  # the same draw for a scene and step, whatever ran before
        noise = np.random.default_rng((env.seed, env.t)).standard_normal((1, 7))
        return policies[0](images, states) + np.float32(args.noise) * noise.astype(np.float32)
    rows[f"first, z + N(0, {args.noise}^2)"] = successes(env, prior, perturbed, args.episodes, args.seed)
    rows["average of the exports' z"] = successes(
        env, prior, lambda x, s: np.mean([p(x, s) for p in policies], axis=0), args.episodes, args.seed)
    env.close()
    for name, ok in rows.items():
        print(line(name, ok))
    names = list(rows)
    alone = np.array([rows[n] for n in names[:len(policies)]])
    print(f"exports alone: all succeed on {alone.all(0).mean():.1%} of scenes, all fail on "
          f"{(~alone).all(0).mean():.1%} (independent failures would give "
          f"{np.prod(alone.mean(1)):.1%} / {np.prod(1 - alone.mean(1)):.1%})")
    flips = rows[names[len(policies)]] != rows[names[0]]
    print(f"the first export perturbed by {args.noise}: {flips.sum()} of {args.episodes} scenes flip")
    if args.out:
        Path(args.out).write_text(json.dumps({n: ok.tolist() for n, ok in rows.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
