"""`parrot collect`: scripted data collection in the twin (paper Alg. 1/2), in K processes.

    parrot collect --task grasp|pick_place|mixed --episodes N --workers K --out DIR \
        [--objects train] [--seed S] [--image-size 48] [--noise 0.1] [--max-steps 25] [--resume]
        [--retries N] [--misaim P]

Episode ``i`` uses seed ``S + i`` for the scene and ``policy_rng(S + i)`` for the policy, so
the dataset does not depend on K. ``mixed`` alternates grasp (even i) and pick_place (odd i).
Every episode runs the full ``max_steps`` and is kept only if the task is achieved at the
last step (the paper's success filter). Each worker writes through its own DatasetWriter
(shared run id, distinct worker index): a kill loses at most the episodes in flight and a
rerun appends. `--resume` attempts only the seeds S .. S+N-1 that no earlier run in DIR
attempted, so an interrupted collection finishes with the dataset an uninterrupted one
writes. Held-out objects are refused: they never enter training data.
With `--ray [ADDRESS]` the episodes run as Ray tasks (sim/ray_collect.py) and this process
writes what they return: the same dataset, on one machine or a cluster.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from parrot_core.arm_state import state_from_info
from parrot_core.camera import twin_camera
from parrot_core.dataset import DatasetWriter, Episode
from sim.dagger import dagger_episode, dagger_learners
from sim.scripted import retry_options_error
from sim.tasks import TASKS

COLLECT_TASKS = (*TASKS, "mixed")  # mixed: grasp and pick_place episodes alternating


class CollectError(ValueError):
    """Bad `parrot collect` request."""


def episode_task(task: str, index: int) -> str:
    if task == "mixed":
        return "grasp" if index % 2 == 0 else "pick_place"
    return task


def collect_episode(env, policy, seed: int):
    """Run one episode of ``policy`` in ``env`` from ``seed``; return (Episode, success).

    images[t] is the observation the policy acted on at step t and states[t] the arm state it
    was taken in. Success is the env's ``info["success"]`` after the last step. The caller
    resets ``policy``'s rng (see sim.scripted.policy_rng) if it wants seed-determined noise.
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    images, actions, rewards, states = [], [], [], []
    done = False
    while not done:
        a = policy.act(info)
        images.append(obs)
        states.append(state_from_info(info))
        actions.append(a)
        obs, r, terminated, truncated, info = env.step(a)
        rewards.append(r)
        done = terminated or truncated
    success = bool(info["success"])
    episode = Episode(
        np.stack(images), np.stack(actions), np.asarray(rewards, np.float32),
        attrs={"task": env.config.task, "objects": list(info["object_names"]),
               "object_pool": env.config.objects, "seed": int(seed), "success": success,
               "source": "scripted", "target_object": info["target_object"] or "",
               "steps": len(actions), "demo_start": int(getattr(policy, "demo_start", 0))},
        states=np.stack(states))
    return episode, success


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the parent dies (kill -9 included)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def collect_indices(indices: list, args: dict, parent: int | None = None):
    """Yield (task, seed, episode, success) for episode indices, one env per task. The same
    index gives the same episode in any process, here or on a Ray worker."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from sim.env import EnvConfig, ParrotEnv
    from sim.scripted import make_scripted_policy, policy_rng

    envs, learners = {}, None
    try:
        for i in indices:
            if parent is not None and os.getppid() != parent:  # orphaned: stop
                return
            task = episode_task(args["task"], i)
            if task not in envs:
                envs[task] = ParrotEnv(EnvConfig(task=task, objects=args["objects"],
                                                 image_size=args["image_size"],
                                                 max_steps=args["max_steps"],
                                                 terminate_on_success=False,
                                                 camera_file=args["camera_file"],
                                                 randomize=args["randomize"]))
            seed = args["seed"] + i
            policy = make_scripted_policy(task, policy_rng(seed), noise_std=args["noise"],
                                          retries=args.get("retries", 0),
                                          misaim=args.get("misaim", 0.0))
            if args.get("dagger"):
                if learners is None:
                    learners = dagger_learners(args["dagger"])
                name, make_learner = learners[(i // 2) % 2]  # mixed alternates tasks by parity
                episode = dagger_episode(envs[task], make_learner(seed), policy, seed, name)
                yield task, seed, episode, True  # labelled by the scripted policy: all kept
                continue
            episode, success = collect_episode(envs[task], policy, seed)
            yield task, seed, episode, success
    finally:
        for env in envs.values():
            env.close()


def _worker(worker: int, indices: list, args: dict, queue) -> None:
    _die_with_parent()
    writer = DatasetWriter(args["out"], (args["image_size"], args["image_size"]), worker=worker,
                           run_id=args["run_id"], camera_view=args["camera_view"])
    try:
        for task, seed, episode, success in collect_indices(indices, args, os.getppid()):
            if success:
                writer.write_episode(episode)
            writer.record_attempt(success, task, seed)
            queue.put((worker, task, success))
    finally:
        queue.put((worker, None, None))


def add_arguments(parser) -> None:
    parser.add_argument("--task", required=True, choices=COLLECT_TASKS)
    parser.add_argument("--episodes", type=int, required=True, help="episodes to attempt")
    parser.add_argument("--workers", type=int, default=1, help="collection processes")
    parser.add_argument("--out", required=True, help="dataset directory (created or appended to)")
    parser.add_argument("--objects", default="train", help="object pool (only train is allowed)")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed S + i")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--max-steps", type=int, default=25)
    parser.add_argument("--noise", type=float, default=0.1, help="std of the N(0, s) action noise")
    parser.add_argument("--retries", type=int, default=0, metavar="N",
                        help="after a missed grasp, open and try again up to N times")
    parser.add_argument("--misaim", type=float, default=0.0, metavar="P",
                        help="fraction of episodes whose first grasp aims 3-5 cm off the object "
                             "(recoveries to learn from; needs --retries; the steps up to that "
                             "close are stored as no demonstration)")
    parser.add_argument("--camera-file", metavar="YAML",
                        help="the arm camera's file: collect its view (default: the twin's camera)")
    parser.add_argument("--randomize", action="store_true",
                        help="domain randomization (colours, light, camera jitter, blur, noise)")
    parser.add_argument("--dagger", metavar="PRIOR",
                        help="DAgger: this prior (export dir or run) acts, random z and its mode "
                             "in turn, and the scripted policy labels each state of its reach; "
                             "every episode is kept (sim/dagger.py)")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="collect as Ray tasks: on a local Ray instance of --workers CPUs, "
                             "or on the cluster at ADDRESS (`ray start --head`; 'auto' finds it)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the seeds an earlier run in --out already attempted")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_collection(task, episodes, workers, out, objects="train", seed=0, image_size=48,
                   max_steps=25, noise=0.1, progress=True, resume=False,
                   camera_file=None, randomize=False, ray_address=None, dagger=None,
                   retries=0, misaim=0.0) -> dict:
    """Collect and return {task: {"attempted", "kept"}} (also printed by the CLI)."""
    if objects != "train":
        raise CollectError(f"--objects {objects}: only the train pool may be collected; held-out "
                           "objects are for evaluation and never enter training data")
    if task not in COLLECT_TASKS:
        raise CollectError(f"unknown task {task!r}; choose one of {COLLECT_TASKS}")
    if episodes < 1 or workers < 1:
        raise CollectError("--episodes and --workers must be >= 1")
    error = retry_options_error(retries, misaim, flag="--")
    if error:  # before any worker starts
        raise CollectError(error)
    if dagger is not None and not (Path(dagger) / "prior_meta.json").exists() \
            and not (Path(dagger) / "config.json").exists():
        raise CollectError(f"--dagger {dagger}: not a prior export dir (prior_meta.json) or "
                           "training run (config.json)")
    todo = list(range(episodes))
    if resume and (Path(out) / "dataset.json").exists():
        from parrot_core.dataset import attempted_seeds
        done = attempted_seeds(out)
        todo = [i for i in todo if seed + i not in done]
        print(f"resuming {out}: {episodes - len(todo)} of {episodes} episodes already attempted",
              file=sys.stderr)
    if not todo:
        return {}
    workers = min(workers, len(todo))
    args = {"task": task, "objects": objects, "image_size": image_size, "max_steps": max_steps,
            "seed": seed, "noise": noise, "out": str(out), "camera_file": camera_file,
            "randomize": randomize, "dagger": None if dagger is None else str(dagger),
            "retries": int(retries), "misaim": float(misaim),
            "run_id": time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]}
    args["camera_view"] = twin_camera(camera_file).view_record()
    DatasetWriter(out, (image_size, image_size), worker=0, run_id=args["run_id"],
                  camera_view=args["camera_view"])  # header check
    if ray_address is not None:
        from sim.ray_collect import collect_on_ray
        return collect_on_ray(todo, args, ray_address, workers, progress)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(k, todo[k::workers], args, queue), daemon=True)
             for k in range(workers)]
    for proc in procs:
        proc.start()
    from tqdm import tqdm

    counts: dict = {}
    finished = 0
    bar = tqdm(total=len(todo), desc=f"collect {task}", unit="ep", disable=not progress,
               file=sys.stderr)
    try:
        while finished < workers:
            try:
                worker, t, success = queue.get(timeout=5.0)
            except Exception:  # queue.Empty: check the workers are alive
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise CollectError(f"collection worker exited with code {dead[0].exitcode}")
                continue
            if t is None:
                finished += 1
                continue
            c = counts.setdefault(t, {"attempted": 0, "kept": 0})
            c["attempted"] += 1
            c["kept"] += int(success)
            bar.update(1)
            bar.set_postfix({k: f"{v['kept']}/{v['attempted']}" for k, v in counts.items()})
    finally:
        bar.close()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise CollectError(f"a collection worker failed (exit code {bad[0]})")
    return counts


def main(args) -> int:
    t0 = time.perf_counter()
    counts = run_collection(args.task, args.episodes, args.workers, args.out, objects=args.objects,
                            seed=args.seed, image_size=args.image_size, max_steps=args.max_steps,
                            noise=args.noise, progress=not args.no_progress,
                            resume=args.resume, camera_file=args.camera_file,
                            randomize=args.randomize, ray_address=args.ray, dagger=args.dagger,
                            retries=args.retries, misaim=args.misaim)
    dt = time.perf_counter() - t0
    total = sum(c["attempted"] for c in counts.values())
    if total == 0:
        print(f"{args.out}: every episode was already attempted; nothing to collect")
        return 0
    print(f"collected into {args.out} in {dt:.1f} s ({total / dt:.2f} trajectories/s, "
          f"{args.workers} workers)")
    for task, c in sorted(counts.items()):
        rate = c["kept"] / c["attempted"] if c["attempted"] else 0.0
        print(f"  {task:16s} kept/attempted = {c['kept']}/{c['attempted']} ({rate:.1%})")
    return 0
