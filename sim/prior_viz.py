"""`parrot prior-viz`: random exploration with and without the prior (paper Figure 5).

A random policy without the prior draws actions uniformly in [-1, 1]^7; with the prior it
draws z ~ N(0, I) and executes a = f(z; image); the prior's mode runs z = 0 in closed loop.
All run the same fixed-seed scenes (by default held-out objects, which the prior never saw),
and so does a blind reach (scripted motions that never look), the rate a prior must beat to
show it finds objects. The script plots the end-effector paths side by side, prints how often
each succeeds with a 95% interval, and prints the localization figures of
`sim.prior_diagnostics`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from parrot_core.arm_state import state_from_info
from parrot_core.camera import check_view, twin_camera
from parrot_core.intervals import wilson_interval
from parrot_core.onnx_prior import trained_camera_view
from sim.env import EnvConfig, ParrotEnv, add_scene_arguments, scene_config
from sim.prior_diagnostics import first_close_miss, reaching_error, summarize_misses
from sim.scripted import BlindReach


@dataclass
class ExplorationResult:
    name: str
    successes: list[bool]
    paths: list[np.ndarray]  # per episode (T+1, 3) end-effector positions
    objects: list[np.ndarray]  # per episode (num_objects, 3) initial object positions
    close_misses: list  # per episode: (dx, dy) to the nearest object at the first close, or None
    refusals: Counter = field(default_factory=Counter)  # rule -> steps the safety filter refused
    closes: list = field(default_factory=list)  # per episode: how often the gripper closed

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def steps(self) -> int:
        return sum(len(path) - 1 for path in self.paths)


# A sampler maps (observation, info) of one step to its action; info carries the arm state.

BLIND = "blind reach (no image)"


def uniform_sampler(rng: np.random.Generator):
    return lambda obs, info: rng.uniform(-1.0, 1.0, 7).astype(np.float32)


def load_prior_forward(prior_dir):
    """(z, image, arm state) -> action of one step; the state is used only by a prior
    conditioned on it. An export dir runs on onnxruntime, a run on torch."""
    prior_dir = Path(prior_dir)
    if (prior_dir / "prior_meta.json").exists():
        from parrot_core.onnx_prior import OnnxPrior
        prior = OnnxPrior(prior_dir)  # ignores the state unless conditioned on it
        return lambda z, obs, state: prior.forward(z[None], obs[None], state[None])[0]
    import torch

    from parrot_core.train_prior import load_prior
    model = load_prior(prior_dir)

    def forward(z, obs, state):
        state = torch.from_numpy(state[None]) if model.state_dim else None
        with torch.no_grad():
            return model.forward(torch.from_numpy(z[None]), torch.from_numpy(obs[None]),
                                 state).numpy()[0]
    return forward


def blind_sampler(task: str):
    """The scripted motions to where objects spawn on average, never looking (BlindReach)."""
    policy = BlindReach(task)

    def act(obs, info):
        if info["t"] == 0:
            policy.reset()
        return policy.act(info)
    return act


def prior_sampler(forward, rng: np.random.Generator):
    """Random z ~ N(0, I) through the prior, afresh every step."""
    return lambda obs, info: forward(rng.standard_normal(7).astype(np.float32), obs,
                                     state_from_info(info))


def prior_mode(forward):
    """The prior's mode: z = 0."""
    zero = np.zeros(7, np.float32)
    return lambda obs, info: forward(zero, obs, state_from_info(info))


def explore(env: ParrotEnv, sampler, name: str, episodes: int, seed: int,
            progress: bool = True) -> ExplorationResult:
    result = ExplorationResult(name, [], [], [], [])
    for i in tqdm(range(episodes), desc=name, disable=not progress, leave=False):
        obs, info = env.reset(seed=seed + i)
        path = [info["ee_pos"]]
        result.objects.append(np.array([info["object_positions"][n] for n in info["object_names"]]))
        success, done, miss, closes = False, False, None, 0
        while not done:
            action = sampler(obs, info)
            miss = first_close_miss(info, action, miss)
            was_closed = info["gripper_closed"]
            obs, _, terminated, truncated, info = env.step(action)
            closes += int(info["gripper_closed"] and not was_closed)
            if info.get("safety_stop"):
                result.refusals[info["safety_stop"]] += 1
            path.append(info["ee_pos"])
            success |= bool(info["success"])
            done = terminated or truncated
        result.successes.append(success)
        result.paths.append(np.array(path))
        result.close_misses.append(miss)
        result.closes.append(closes)
    return result


def regrasps(result: ExplorationResult) -> dict:
    """Episodes that closed the gripper again after a first close (a retry after a miss, or a
    drop), and how many of them succeeded."""
    again = [ok for ok, n in zip(result.successes, result.closes) if n >= 2]
    return {"episodes": len(result.closes), "closed_again": len(again), "succeeded": int(sum(again))}


def plot(results: list[ExplorationResult], out: Path, max_paths: int = 12) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5.2 * len(results), 5.0))
    for k, res in enumerate(results):
        ax = fig.add_subplot(1, len(results), k + 1, projection="3d")
        colours = plt.cm.viridis(np.linspace(0, 1, max_paths))
        for path, objs, ok, c in zip(res.paths, res.objects, res.successes, colours):
            ax.plot(path[:, 0], path[:, 1], path[:, 2], color=c, lw=1.6 if ok else 0.9,
                    alpha=0.95 if ok else 0.6)
            ax.scatter(*path[0], color=c, marker="o", s=12)
            ax.scatter(objs[:, 0], objs[:, 1], objs[:, 2], color="k", marker="s", s=10, alpha=0.4)
        ax.set_title(f"{res.name}\nsuccess {res.success_rate:.0%} "
                     f"({sum(res.successes)}/{len(res.successes)})")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_zlabel("z (m)")
        ax.set_xlim(0.2, 0.6)
        ax.set_ylim(-0.25, 0.25)
        ax.set_zlim(0.0, 0.35)
        ax.view_init(elev=25, azim=-60)
    fig.suptitle("End-effector paths of random exploration (squares: objects)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def add_arguments(parser) -> None:
    parser.add_argument("--prior", required=True, help="prior export dir (ONNX) or training run dir")
    parser.add_argument("--task", default="grasp", help="twin task whose success is counted")
    parser.add_argument("--objects", default="heldout", choices=["train", "heldout"])
    add_scene_arguments(parser)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=10_000, help="first scene seed")
    parser.add_argument("--reach-episodes", type=int, default=50,
                        help="scripted episodes for the reaching-error figure (0: skip it)")
    parser.add_argument("--out", default="prior_viz.png", help="PNG to write (JSON beside it)")
    parser.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    check_view(trained_camera_view(args.prior), twin_camera(args.camera_file),
               f"the prior {args.prior}")
    rng = np.random.default_rng(args.seed)
    env = ParrotEnv(EnvConfig(task=args.task, objects=args.objects, **scene_config(args)))
    try:
        forward = load_prior_forward(args.prior)
        runs = [("random actions (no prior)", uniform_sampler(rng)),
                ("random z through the prior", prior_sampler(forward, rng)),
                ("prior mode (z = 0)", prior_mode(forward))]
        results = [explore(env, sampler, name, args.episodes, args.seed, not args.no_progress)
                   for name, sampler in runs]
        blind = explore(env, blind_sampler(args.task), BLIND, args.episodes, args.seed,
                        not args.no_progress)
        reach = (reaching_error(env, prior_mode(forward), args.reach_episodes, args.seed)
                 if args.reach_episodes > 0 else None)
    finally:
        env.close()
    out = Path(args.out)
    plot(results, out)
    without, with_prior, mode = results
    ratio = with_prior.success_rate / max(without.success_rate, 1.0 / args.episodes)
    summary = {
        "task": args.task, "objects": args.objects, "episodes": args.episodes, "seed": args.seed,
        "num_objects": args.num_objects, "target_object": args.target_object,
        "camera_file": args.camera_file, "randomize": args.randomize,
        "randomize_scale": args.randomize_scale,
        "success_without_prior": without.success_rate, "success_with_prior": with_prior.success_rate,
        "success_prior_mode": mode.success_rate, "ratio_lower_bound": ratio,
        "success_blind_reach": blind.success_rate,
        "interval95": {r.name: wilson_interval(sum(r.successes), len(r.successes))
                       for r in (*results, blind)},
        "close_miss": {r.name: summarize_misses(r.close_misses) for r in results[1:]},
        "regrasps": {r.name: regrasps(r) for r in results[1:]},
        "reaching_error": reach.as_dict() if reach else None,
        "safety_refusals": {r.name: {"steps": r.steps, **r.refusals} for r in results},
        "prior": str(args.prior), "plot": str(out),
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print_summary(args, [*results, blind], summary, ratio)
    return 0


def print_summary(args, results, summary, ratio) -> None:
    scene = f"{args.num_objects} {args.objects} object(s)" + (
        f", target {args.target_object}" if args.target_object else "") + (
        (", randomized look" + (f" x{args.randomize_scale:g}" if args.randomize_scale != 1 else "")
         if args.randomize else ""))
    print(f"{args.task} with {scene}, {args.episodes} episodes each (seeds {args.seed}..):")
    for label, r in zip(("without prior:", "with prior:", "prior mode:", "blind reach:"), results):
        k, n = sum(r.successes), len(r.successes)
        lo, hi = summary["interval95"][r.name]
        print(f"  {label:15s}{r.success_rate:6.1%} ({k}/{n}, 95% CI {lo:.1%}-{hi:.1%})")
    print(f"  ratio:         >= {ratio:.1f}x (a zero baseline counted as 1/{args.episodes})")
    print("  (blind reach: the scripted motions to the centre of the object region, no image;"
          " well above 0 means the scenes do not test finding the object)")
    for name, m in summary["close_miss"].items():
        if m["closed"]:
            print(f"  {name}: first close {m['median_miss_m'] * 100:.1f} cm sideways from the "
                  f"nearest object (|dx| {m['median_abs_dx_m'] * 100:.1f} / |dy| "
                  f"{m['median_abs_dy_m'] * 100:.1f} cm; median of {m['closed']}/{m['episodes']} "
                  f"episodes that closed; {m['within_2cm']:.0%} within 2 cm)")
        else:
            print(f"  {name}: never closed the gripper")
    for name, g in summary["regrasps"].items():
        print(f"  {name}: closed the gripper again in {g['closed_again']}/{g['episodes']} "
              f"episodes, {g['succeeded']} of them succeeded")
    for r in results[:3]:
        refused = sum(r.refusals.values())
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(r.refusals.items()))
        print(f"  {r.name}: {refused}/{r.steps} steps refused by the arm's safety filter"
              + (f" ({rules})" if rules else ""))
    reach = summary["reaching_error"]
    if reach and reach["steps"]:
        print(f"  reaching error of the prior mode vs scripted, {reach['steps']} steps: median "
              f"|dx| {reach['median_abs_dx']:.3f} ({reach['median_abs_dx_m'] * 1000:.1f} mm/step), "
              f"|dy| {reach['median_abs_dy']:.3f} ({reach['median_abs_dy_m'] * 1000:.1f} mm/step)")
    print(f"  plot:          {args.out}")
