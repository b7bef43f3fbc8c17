"""`parrot render-scene`: a PNG of a twin scene for a person to look at.

    parrot render-scene --task pick_place --seed 0 --out scene.png [--size 256] [--steps 0]

Left: the fixed camera at ``--size`` pixels. Right: the policy's observation at
``--image-size`` (default 48) scaled up with nearest-neighbour, so what the prior sees is
visible pixel by pixel. ``--steps N`` first runs N steps of the scripted policy (seeded
like collection) so the arm is shown mid-task.

    parrot render-scene --stats [--scenes 200] [--seed 0] [--image-size 48]

prints, for the train and held-out pools, how large objects appear in the observation and
whether the gripper hides them at the start pose (sim/scene_stats.py); no PNG.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sim.tasks import TASKS


class RenderSceneError(ValueError):
    """Bad `parrot render-scene` request."""


def add_arguments(parser) -> None:
    parser.add_argument("--task", default="pick_place",
                        choices=tuple(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="PNG path to write (required unless --stats)")
    parser.add_argument("--size", type=int, default=256, help="side of the person's view (px)")
    parser.add_argument("--image-size", type=int, default=48, help="observation size (px)")
    parser.add_argument("--objects", default="train", choices=["train", "heldout"])
    parser.add_argument("--steps", type=int, default=0, help="scripted steps to run first")
    parser.add_argument("--stats", action="store_true",
                        help="print object size / occlusion figures over --scenes scenes per pool")
    parser.add_argument("--scenes", type=int, default=200, help="scenes per pool for --stats")
    parser.add_argument("--camera-file", metavar="YAML",
                        help="render this camera's view (parrot_core/camera.py; default: the twin's)")


def render_scene(task="pick_place", seed=0, size=256, image_size=48, objects="train", steps=0,
                 camera_file=None):
    """Return (person_view, observation) uint8 RGB arrays."""
    from sim.env import EnvConfig, ParrotEnv
    from sim.scripted import make_scripted_policy, policy_rng

    if size < 16 or image_size < 8:
        raise RenderSceneError("--size must be >= 16 and --image-size >= 8")
    with ParrotEnv(EnvConfig(task=task, objects=objects, image_size=image_size,
                             max_steps=max(steps, 1), terminate_on_success=False,
                             camera_file=camera_file)) as env:
        obs, info = env.reset(seed=seed)
        policy = make_scripted_policy(task, policy_rng(seed))
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(policy.act(info))
            if terminated or truncated:
                break
        return env.render_obs((size, size)), obs


def print_stats(scenes: int, seed: int, image_size: int, camera_file=None) -> None:
    import time

    from sim.scene_stats import format_table, pool_stats

    if image_size < 8:
        raise RenderSceneError("--image-size must be >= 8")
    t0 = time.perf_counter()
    rows = [pool_stats(pool, scenes, seed, image_size, camera_file) for pool in ("train", "heldout")]
    print(f"objects in the {image_size}x{image_size} observation at the start pose, "
          f"seeds {seed}..{seed + scenes - 1} per pool "
          "(width = sqrt(mask area), bbox = longer side of the mask's box, in px):")
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.1f} s)")


def main(args) -> int:
    if args.stats:
        print_stats(args.scenes, args.seed, args.image_size, args.camera_file)
        return 0
    if not args.out:
        raise RenderSceneError("--out is required (or pass --stats)")
    big, obs = render_scene(args.task, args.seed, args.size, args.image_size, args.objects, args.steps,
                            args.camera_file)
    small = cv2.resize(obs, (args.size, args.size), interpolation=cv2.INTER_NEAREST)
    gap = np.full((args.size, 8, 3), 255, np.uint8)
    canvas = np.concatenate([big, gap, small], axis=1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas[:, :, ::-1]):
        raise RenderSceneError(f"could not write {out}")
    print(f"wrote {out} ({canvas.shape[1]}x{canvas.shape[0]}: {args.size}px view | "
          f"{args.image_size}x{args.image_size} observation)")
    return 0
