"""`parrot eval-policy`: an exported policy in the twin, on fixed seeds, before it goes to the arm.

    parrot eval-policy --policy EXPORT_DIR --task grasp --objects heldout --episodes 100 --seed 20000
    parrot eval-policy --policy EXPORT_DIR --prior PRIOR_EXPORT ...   # prior in another directory

Runs exactly what robot compute runs: `policy.onnx` on onnxruntime (no torch) and, for a PARROT
policy (it outputs z), the prior export it was trained with (`prior_forward.onnx` beside it by
default; the pairing is checked by weights hash). The deterministic (mean) output acts; each
episode `i` is the scene of seed `S + i`. Prints the success rate with its 95% Wilson interval
and writes the per-episode results as JSON with `--out`. `--ray [ADDRESS]` spreads the
episodes over Ray workers in chunks (a local instance, or a cluster where every node has the
exports at the same paths); the results are those of a local run, episode for episode.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from parrot_core.arm_state import state_from_info
from parrot_core.camera import check_view, twin_camera
from parrot_core.intervals import wilson_interval
from sim.env import EnvConfig, ParrotEnv, add_scene_arguments, scene_config


class EvalPolicyError(RuntimeError):
    """An evaluation that cannot run as asked."""


def load_exports(policy_dir, prior_dir=None):
    """(OnnxPolicy, OnnxPrior or None): the policy export and, when it outputs z, the prior it
    was trained with (checked by weights hash)."""
    from parrot_core.onnx_policy import OnnxPolicy
    policy = OnnxPolicy(policy_dir)
    prior = None
    if policy.outputs == "z":
        from parrot_core.onnx_prior import OnnxPrior
        prior_dir = Path(prior_dir or policy_dir)
        if not (prior_dir / "prior_meta.json").exists():
            raise EvalPolicyError(f"{policy_dir}: this {policy.algo} policy outputs z and {prior_dir} "
                                  f"holds no prior export; pass --prior PRIOR_EXPORT_DIR")
        prior = OnnxPrior(prior_dir)
        policy.check_prior(prior)
    return policy, prior


def exported_actor(policy, prior):
    """(obs (H, W, 3) uint8, env info) -> action (7,) of loaded exports (load_exports); the
    info's arm state feeds a model conditioned on it."""
    return lambda obs, info: policy.act(obs[None], prior, state_from_info(info)[None])[0]


def load_actor(policy_dir, prior_dir=None):
    """(OnnxPolicy, exported_actor) from the export directories (onnxruntime only)."""
    policy, prior = load_exports(policy_dir, prior_dir)
    return policy, exported_actor(policy, prior)


def run_episodes(env: ParrotEnv, act, episodes: int, seed: int, progress: bool = True) -> list[dict]:
    results = []
    for i in tqdm(range(episodes), desc="eval-policy", unit="ep", disable=not progress):
        obs, info = env.reset(seed=seed + i)
        done, success, steps = False, False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs, info))
            success |= bool(info["success"])
            steps += 1
            done = terminated or truncated
        results.append({"seed": seed + i, "success": success, "steps": steps,
                        "objects": list(info["object_names"])})
    return results


def add_arguments(parser) -> None:
    parser.add_argument("--policy", required=True, help="`parrot export-policy` directory")
    parser.add_argument("--prior", help="prior export (default: the policy's directory)")
    parser.add_argument("--task", required=True, help="twin task whose success is counted")
    parser.add_argument("--objects", default="heldout", choices=["train", "heldout"])
    add_scene_arguments(parser)
    parser.add_argument("--episodes", type=int, default=100, help="fixed-seed episodes")
    parser.add_argument("--seed", type=int, default=20_000, help="first scene seed")
    parser.add_argument("--max-steps", type=int, default=25, help="steps per episode")
    parser.add_argument("--out", help="write per-episode results and the summary here (JSON)")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="run the episodes as Ray tasks (local instance or the cluster at ADDRESS)")
    parser.add_argument("--workers", type=int, default=2, help="with --ray local: CPUs to use")
    parser.add_argument("--no-progress", action="store_true")


RAY_CHUNK = 20  # episodes per Ray task


def env_config(args, size) -> EnvConfig:
    return EnvConfig(task=args.task, objects=args.objects, image_size=size,
                     max_steps=args.max_steps, **scene_config(args))


def evaluate_chunk(policy_dir, prior_dir, config: EnvConfig, episodes: int, seed: int,
                   progress: bool = False) -> list[dict]:
    """Episodes seed .. seed + episodes - 1 in a fresh env: what one Ray task runs."""
    _, act = load_actor(policy_dir, prior_dir)
    env = ParrotEnv(config)
    try:
        return run_episodes(env, act, episodes, seed, progress)
    finally:
        env.close()


def success_summary(results: list[dict]) -> dict:
    """Episodes, successes, rate and its 95% Wilson interval of run_episodes' results."""
    k, n = sum(r["success"] for r in results), len(results)
    return {"episodes": n, "successes": k, "success_rate": k / n,
            "interval95": list(wilson_interval(k, n))}


def run_on_ray(args, config: EnvConfig) -> list[dict]:
    from sim.ray_collect import connect
    ray = connect(args.ray, args.workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(evaluate_chunk)
        policy, prior = str(Path(args.policy).resolve()), args.prior and str(Path(args.prior).resolve())
        pending = [task.remote(policy, prior, config, min(RAY_CHUNK, args.episodes - i), args.seed + i)
                   for i in range(0, args.episodes, RAY_CHUNK)]
        results = []
        with tqdm(total=args.episodes, desc="eval-policy (ray)", unit="ep",
                  disable=args.no_progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                chunk = ray.get(done[0])
                results += chunk
                bar.update(len(chunk))
        return sorted(results, key=lambda r: r["seed"])
    finally:
        if args.ray == "local":
            ray.shutdown()


def main(args) -> int:
    if args.episodes < 1:
        raise EvalPolicyError(f"--episodes must be >= 1, got {args.episodes}")
    policy, act = load_actor(args.policy, args.prior)
    config = env_config(args, tuple(policy.meta["image_size"]))
    check_view(policy.meta.get("camera_view"), twin_camera(config.camera_file),
               f"the policy {args.policy}")
    t0 = time.perf_counter()
    if args.ray:
        results = run_on_ray(args, config)
    else:
        env = ParrotEnv(config)
        try:
            results = run_episodes(env, act, args.episodes, args.seed, not args.no_progress)
        finally:
            env.close()
    rate = success_summary(results)
    k, n, (lo, hi) = rate["successes"], rate["episodes"], rate["interval95"]
    summary = {"policy": str(args.policy), "algo": policy.algo, "task": args.task,
               "objects": args.objects, "num_objects": args.num_objects,
               "target_object": args.target_object, "seed": args.seed, **rate,
               "wall_s": round(time.perf_counter() - t0, 1)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**summary, "episodes_detail": results}, indent=2))
    print(f"{args.task} with {args.num_objects} {args.objects} object(s), {n} episodes "
          f"(seeds {args.seed}..{args.seed + n - 1}), {policy.algo} policy {args.policy}:")
    print(f"  success {k}/{n} = {k / n:.1%} (95% CI {lo:.1%}-{hi:.1%}) in {summary['wall_s']} s")
    return 0
