"""`parrot select-prior`: pick a prior checkpoint by rollouts in the twin, not by NLL.

    parrot select-prior RUN [--task grasp] [--num-objects 3] [--episodes 100] [--seed 50000]

A lower validation NLL has not meant more grasps (docs/RESULTS.md), so this command runs
each of RUN/snapshots/*.pt (`parrot train-prior --snapshot-every N`) on the same fixed-seed
scenes of *train* objects, with random z and with the mode (z = 0), and keeps the one with
the most successes of the two together. Held-out objects stay for the final evaluation
(`parrot prior-viz`), so choosing here does not leak into that figure.

Writes RUN/selection.json (every candidate's counts) and RUN/selected.pt (a copy of the
chosen snapshot, which `parrot export --prior RUN/selected.pt` exports). Snapshots already
evaluated with the same scenes are read back from selection.json, so the command can run
again while training adds snapshots.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from parrot_core.files import atomic_replace, atomic_write_text
from parrot_core.intervals import wilson_interval
from sim.env import EnvConfig, ParrotEnv, add_scene_arguments, scene_config
from sim.prior_viz import explore, load_prior_forward, prior_mode, prior_sampler

SELECTION, SELECTED, SNAPSHOTS = "selection.json", "selected.pt", "snapshots"


class SelectionError(RuntimeError):
    """A run without snapshots, or bad options."""


def add_arguments(parser) -> None:
    parser.add_argument("run", help="a `parrot train-prior` run trained with --snapshot-every")
    parser.add_argument("--task", default="grasp", help="twin task whose success is counted")
    add_scene_arguments(parser)
    parser.add_argument("--episodes", type=int, default=100, help="scenes per snapshot and policy")
    parser.add_argument("--seed", type=int, default=50_000,
                        help="first scene seed (train objects; keep it apart from evaluation seeds)")
    parser.add_argument("--no-progress", action="store_true")


def scenes_key(args) -> dict:
    """What makes two evaluations comparable: a cached count is reused only if this matches."""
    return {"task": args.task, "objects": "train", "num_objects": args.num_objects,
            "target_object": args.target_object, "episodes": args.episodes, "seed": args.seed,
            "camera_file": args.camera_file, "randomize": args.randomize,
            "randomize_scale": args.randomize_scale}


def evaluate_snapshot(env: ParrotEnv, path: Path, episodes: int, seed: int) -> dict:
    forward = load_prior_forward(path)
    rng = np.random.default_rng(seed)
    random_z = explore(env, prior_sampler(forward, rng), "random z", episodes, seed, progress=False)
    mode = explore(env, prior_mode(forward), "mode", episodes, seed, progress=False)
    return {"random_z": int(sum(random_z.successes)), "mode": int(sum(mode.successes))}


def main(args) -> int:
    run = Path(args.run)
    snapshots = sorted((run / SNAPSHOTS).glob("step_*.pt"))
    if not snapshots:
        raise SelectionError(f"{run}: no {SNAPSHOTS}/step_*.pt; train with "
                             f"`parrot train-prior --snapshot-every N`")
    if args.episodes < 1:
        raise SelectionError(f"--episodes must be >= 1, got {args.episodes}")
    key = scenes_key(args)
    cached = {}
    if (run / SELECTION).exists():
        previous = json.loads((run / SELECTION).read_text())
        if previous.get("scenes") == key:
            cached = {c["snapshot"]: c for c in previous["candidates"]}

    env = ParrotEnv(EnvConfig(task=args.task, objects="train", **scene_config(args)))
    candidates = []
    try:
        for path in tqdm(snapshots, desc="select-prior", disable=args.no_progress):
            if path.name not in cached:
                counts = evaluate_snapshot(env, path, args.episodes, args.seed)
                cached[path.name] = {"snapshot": path.name,
                                     "step": int(path.stem.split("_")[1]), **counts}
            candidates.append(cached[path.name])
            write_selection(run, key, candidates)  # a kill loses at most one snapshot's work
    finally:
        env.close()
    chosen = max(candidates, key=lambda c: (c["random_z"] + c["mode"], c["step"]))
    with atomic_replace(run / SELECTED) as tmp:
        shutil.copyfile(run / SNAPSHOTS / chosen["snapshot"], tmp)
    write_selection(run, key, candidates, chosen["snapshot"])
    print_table(args, candidates, chosen)
    return 0


def write_selection(run: Path, key: dict, candidates: list[dict], chosen: str | None = None) -> None:
    atomic_write_text(run / SELECTION, json.dumps(
        {"scenes": key, "score": "random_z + mode successes", "candidates": candidates,
         "chosen": chosen}, indent=2))


def print_table(args, candidates: list[dict], chosen: dict) -> None:
    n = args.episodes
    print(f"{args.task}, {args.num_objects} train object(s), {n} scenes from seed {args.seed}:")
    print(f"  {'step':>8}  {'random z':>22}  {'mode (z = 0)':>22}")
    for c in candidates:
        cells = []
        for k in ("random_z", "mode"):
            lo, hi = wilson_interval(c[k], n)
            cells.append(f"{c[k] / n:6.1%} ({lo:.0%}-{hi:.0%})")
        mark = "  <- selected" if c is chosen else ""
        print(f"  {c['step']:>8}  {cells[0]:>22}  {cells[1]:>22}{mark}")
    print(f"  wrote {Path(args.run) / SELECTED} (export it with "
          f"`parrot export --prior {Path(args.run) / SELECTED} --out DIR`)")
