"""`parrot distill-policy`: a small student of an exported policy, trained by DAgger in the twin.

    parrot distill-policy --policy models/policy_grasp --prior models/prior_xarm6_48px \\
        --task grasp --out runs/student_grasp [--rounds 5 --episodes 300 --eval-episodes 200]

Round 0 rolls the teacher (the export, on onnxruntime, exactly as `parrot eval-policy` runs it)
out on train-object scenes; every later round rolls the student out on new scenes while the
teacher labels each state it visits (DAgger, Ross et al. 2011). After each round the student is
fitted to all labelled frames so far, and the round is checkpointed in OUT (``--resume``
continues). The student is then exported to OUT (policy.onnx + policy_meta.json, outputs
``action``) and, with ``--eval-episodes``, evaluated on the held-out scenes `parrot eval-policy`
uses, teacher and student on the same seeds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from parrot_core.arm_state import state_from_info
from parrot_core.camera import check_view, twin_camera
from sim.env import EnvConfig, ParrotEnv, add_scene_arguments, scene_config
from sim.eval_policy import evaluate_chunk, exported_actor, load_exports, success_summary

STATE_FILE = "distill_state.pt"
FRAMES_FILE = "distill_frames.npz"
METRICS_FILE = "distill_metrics.jsonl"


class DistillError(RuntimeError):
    """A distillation that cannot run as asked."""


def add_arguments(parser) -> None:
    parser.add_argument("--policy", required=True, help="the teacher: a `parrot export-policy` dir")
    parser.add_argument("--prior", help="the teacher's prior export (default: the policy's dir)")
    parser.add_argument("--task", required=True, help="twin task the scenes are made for")
    parser.add_argument("--objects", default="heldout", choices=["train", "heldout"],
                        help="the evaluation's objects (training rounds always use train objects)")
    add_scene_arguments(parser)
    parser.add_argument("--out", required=True, help="checkpoints and the student's export")
    parser.add_argument("--data", help="a prior dataset whose frames the teacher labels first "
                                       "(wider coverage than its own rollouts)")
    parser.add_argument("--data-tasks", default="", help="comma-separated: only these tasks' episodes")
    parser.add_argument("--data-episodes", type=int, default=2000,
                        help="episodes drawn from --data (seeded by --seed)")
    parser.add_argument("--rounds", type=int, default=5, help="collections: the teacher's, then "
                                                               "the student's")
    parser.add_argument("--episodes", type=int, default=300, help="train-object episodes per round")
    parser.add_argument("--fit-steps", type=int, default=3000, help="Adam steps after each round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=60_000, help="first training scene seed")
    parser.add_argument("--max-steps", type=int, default=25, help="steps per episode")
    parser.add_argument("--eval-episodes", type=int, default=0,
                        help="then held-out episodes for teacher and student (0: none)")
    parser.add_argument("--eval-seed", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--resume", action="store_true", help="continue from OUT's last round")
    parser.add_argument("--no-progress", action="store_true")


def collect_round(env: ParrotEnv, frames, teacher, learner, episodes: int, seed: int,
                  progress: bool) -> float:
    """Roll ``learner`` out (the teacher itself when None), the teacher labelling every state;
    returns the learner's success rate."""
    successes = 0
    name = "teacher" if learner is None else "student"
    for i in tqdm(range(episodes), desc=f"distill ({name} acts)", unit="ep", disable=not progress):
        obs, info = env.reset(seed=seed + i)
        done, success = False, False
        while not done:
            label = teacher(obs, info)
            state = state_from_info(info)
            frames.add(obs, state, label)
            action = label if learner is None else learner(obs, state)
            obs, _, terminated, truncated, info = env.step(action)
            success |= bool(info["success"])
            done = terminated or truncated
        successes += success
    return successes / episodes


def label_dataset(frames, policy, prior, root, tasks: tuple[str, ...], episodes: int,
                  seed: int, progress: bool, batch: int = 256) -> int:
    """Add ``episodes`` random episodes of a prior dataset (with arm states), every frame
    labelled with the teacher's action (its loaded exports); returns the frames added."""
    from parrot_core.dataset import episode_paths, read_episode

    paths = episode_paths(root)
    order = np.random.default_rng(seed).permutation(len(paths))
    added = taken = 0
    with tqdm(total=episodes, desc="distill (labelling --data)", unit="ep",
              disable=not progress) as bar:
        for i in order:
            if taken == episodes:
                break
            ep = read_episode(paths[i])
            if tasks and ep.attrs.get("task") not in tasks:
                continue
            if ep.states is None:
                raise DistillError(f"{paths[i]}: no arm states; the student observes them "
                                   f"(collect with states)")
            if ep.images.shape[1:3] != policy.image_size:
                raise DistillError(f"{paths[i]}: images {ep.images.shape[1:3]}, the policy takes "
                                   f"{policy.image_size}")
            for k in range(0, len(ep.images), batch):
                labels = policy.act(ep.images[k:k + batch], prior, ep.states[k:k + batch])
                for image, state, label in zip(ep.images[k:k + batch], ep.states[k:k + batch], labels):
                    frames.add(image, state, label)
                    added += 1
            taken += 1
            bar.update(1)
    if taken < episodes:
        raise DistillError(f"{root}: only {taken} episodes{' of ' + ','.join(tasks) if tasks else ''}"
                           f", --data-episodes asks for {episodes}")
    return added


def _checked(args) -> None:
    for name in ("rounds", "episodes", "fit_steps", "batch_size"):
        if getattr(args, name) < 1:
            raise DistillError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_episodes < 0:
        raise DistillError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")


def main(args) -> int:
    import torch

    from parrot_core.student import Frames, StudentConfig, StudentPolicy, act_fn, export_student, fit

    _checked(args)
    torch.set_num_threads(max(1, args.threads))
    teacher_policy, teacher_prior = load_exports(args.policy, args.prior)
    teacher = exported_actor(teacher_policy, teacher_prior)
    size = tuple(teacher_policy.meta["image_size"])
    check_view(teacher_policy.meta.get("camera_view"), twin_camera(args.camera_file),
               f"the policy {args.policy}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    student = StudentPolicy(StudentConfig(image_size=size[0]))
    optimizer = torch.optim.Adam(student.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    frames, first_round = Frames(), 0
    if args.resume and (out / STATE_FILE).exists():
        saved = torch.load(out / STATE_FILE, weights_only=False)
        student.load_state_dict(saved["student"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        frames, first_round = Frames.load(out / FRAMES_FILE), saved["next_round"]
        print(f"resuming {out} at round {first_round} ({len(frames)} frames)")
    elif (out / STATE_FILE).exists():
        raise DistillError(f"{out} holds a distillation already; pass --resume or another --out")
    env = ParrotEnv(EnvConfig(task=args.task, objects="train", image_size=size,
                              max_steps=args.max_steps, **scene_config(args)))
    t0 = time.perf_counter()
    if args.data and first_round == 0 and not len(frames):
        n = label_dataset(frames, teacher_policy, teacher_prior, args.data,
                          tuple(t for t in args.data_tasks.split(",") if t), args.data_episodes,
                          args.seed, not args.no_progress)
        print(f"labelled {n} frames of {args.data_episodes} episodes from {args.data}", flush=True)
    try:
        for r in range(first_round, args.rounds):
            learner = None if r == 0 else act_fn(student)
            success = collect_round(env, frames, teacher, learner, args.episodes,
                                    args.seed + r * args.episodes, not args.no_progress)
            loss = fit(student, optimizer, frames, args.fit_steps, args.batch_size, generator)
            row = {"round": r, "acting": "teacher" if r == 0 else "student",
                   "success": success, "frames": len(frames), "loss": loss,
                   "wall_s": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            with open(out / METRICS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")
            frames.save(out / FRAMES_FILE)  # frames first: a state names a round they hold
            torch.save({"student": student.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "next_round": r + 1}, out / STATE_FILE)
    finally:
        env.close()
    info = {"data": args.data, "data_episodes": args.data_episodes if args.data else 0,
            "rounds": args.rounds, "episodes_per_round": args.episodes, "frames": len(frames),
            "fit_steps": args.fit_steps, "train_seed": args.seed, "task": args.task,
            "num_objects": args.num_objects}
    meta = export_student(student, out, teacher_policy.meta, info)
    print(f"parrot distill-policy: {out}: student of {args.policy} ({len(frames)} frames), "
          f"onnxruntime vs torch max abs err {meta['parity_max_abs_err']:.2e}")
    if args.eval_episodes:
        config = EnvConfig(task=args.task, objects=args.objects, image_size=size,
                           max_steps=args.max_steps, **scene_config(args))
        held_out = {who: success_summary(evaluate_chunk(
                        policy_dir, prior_dir, config, args.eval_episodes, args.eval_seed,
                        not args.no_progress))
                    for who, policy_dir, prior_dir in (("teacher", args.policy, args.prior),
                                                       ("student", out, None))}
        for who, e in held_out.items():
            lo, hi = e["interval95"]
            print(f"{who}: {e['successes']}/{e['episodes']} = {e['success_rate']:.1%} "
                  f"(95% CI {lo:.1%}-{hi:.1%}) on {args.objects} scenes from seed {args.eval_seed}")
        (out / "distill_eval.json").write_text(json.dumps(
            {"objects": args.objects, "seed": args.eval_seed, **held_out}, indent=2))
    return 0
