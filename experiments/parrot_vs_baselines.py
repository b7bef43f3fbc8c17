"""PARROT vs SAC vs BC+SAC on held-out-object tasks, several seeds (paper Figure 3 style).

Runs every (task, algo, seed) as its own `parrot train-rl` process, `--jobs` at a time,
then draws the curves with `parrot plot-curves`. Rerunning resumes every run from
its checkpoint (a finished one is a no-op), so the experiment can be stopped and continued.

    python experiments/parrot_vs_baselines.py --prior PRIOR_EXPORT --data DATASET --out runs/rl

`--task-prior TASK=DIR` / `--task-data TASK=DIR` give one task its own prior and BC dataset
(the README's pick_place runs use the pick-and-place prior and its collection).

`--ray [ADDRESS]` runs the same commands as Ray tasks (one CPU each, and one GPU each with
`--gpus-per-run 1`), on a local instance of `--jobs` CPUs or on the cluster at ADDRESS; `--out`
must then be a directory every node sees (a shared filesystem), as the runs resume from it and
the summary reads it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Identical for every algo (defaults of `parrot train-rl` otherwise: the prior's frozen features
# as observation, MLPs 128-128, batch 256): the setting that held on both tasks (docs/RESULTS.md,
# "Pick-and-place with AWAC and 25-step returns"). Episodes end at the first success (Q is then a
# success probability), the critics have LayerNorm, targets are 25-step returns (nearly Monte
# Carlo), and the policy re-weights the z it tried by exp(advantage / 0.1) (AWAC) instead of
# following Q's gradient. alpha starts at 1 and soft targets update every step
# (docs/RL_DESIGN.md). `--setting gradient` gives the earlier one (Q's gradient, 1-step targets);
# `--setting awac-mc` also ends the return at the time limit, so every target is Monte Carlo;
# `awac-mc-v8` and `awac-mc-l03-v8` change the AWAC step (docs/RL_DESIGN.md, "The AWAC step");
# `awac-mc-h5*` hold each z for 5 env steps; `awac-mc-ret` weighs z by its return;
# `awac-mc-qa`'s critics see the prior's action; `awac-mc-b20k` and `-b10k` replay only
# recent steps; `awac-mc-b20k-plr1e3`, `-a01` and `-ema` change its policy's learning rate,
# alpha's start and the weights evaluation reads.
GRADIENT = ["--tau", "0.005", "--target-update-period", "1", "--init-alpha", "1.0",
            "--terminate-on-success", "--critic-layer-norm"]


def awac(temperature: str) -> list[str]:
    return [*GRADIENT, "--no-critic-regularizer", "--n-step", "25", "--policy-update", "awac",
            "--awac-lambda", temperature]


MONTE_CARLO = ["--no-time-limit-bootstrap"]
SETTINGS = {
    "awac-n25": awac("0.1"),
    "awac-mc": [*awac("0.1"), *MONTE_CARLO],
    # the advantage's baseline from 8 policy samples, and with it a sharper temperature
    "awac-mc-v8": [*awac("0.1"), *MONTE_CARLO, "--awac-value-samples", "8"],
    "awac-mc-l03-v8": [*awac("0.03"), *MONTE_CARLO, "--awac-value-samples", "8"],
    # z chosen every 5 env steps and held (docs/RL_DESIGN.md, "Holding z for several steps"),
    # one update per decision (the same updates per replayed transition as awac-mc) or per env step
    "awac-mc-h5": [*awac("0.1"), *MONTE_CARLO, "--hold-steps", "5", "--updates-per-step", "0.2"],
    "awac-mc-h5-u1": [*awac("0.1"), *MONTE_CARLO, "--hold-steps", "5"],
    # alpha starts at 0.1: with a fifth of the updates it then falls per env step as awac-mc's
    "awac-mc-h5-a01": [*awac("0.1"), *MONTE_CARLO, "--hold-steps", "5", "--updates-per-step", "0.2",
                       "--init-alpha", "0.1"],
    # the policy's update reads the mean of the two critics instead of their min
    "awac-mc-qmean": [*awac("0.1"), *MONTE_CARLO, "--critic-estimate", "mean"],
    # the advantage reads the replayed return (Monte Carlo here) instead of the critics' Q
    "awac-mc-ret": [*awac("0.1"), *MONTE_CARLO, "--awac-advantage", "return"],
    # the critics see the action the prior maps z to instead of z
    "awac-mc-qa": [*awac("0.1"), *MONTE_CARLO, "--critic-input", "action"],
    # replay keeps the last 20k transitions (about 800 episodes), not all 50k: the AWAC step
    # then stays near the recent policies instead of the mixture of every one since the prior
    "awac-mc-b20k": [*awac("0.1"), *MONTE_CARLO, "--buffer-size", "20000"],
    "awac-mc-b10k": [*awac("0.1"), *MONTE_CARLO, "--buffer-size", "10000"],
    # on b20k: a policy three times as fast (critics and alpha unchanged), or alpha from 0.1
    "awac-mc-b20k-plr1e3": [*awac("0.1"), *MONTE_CARLO, "--buffer-size", "20000", "--policy-lr", "1e-3"],
    "awac-mc-b20k-a01": [*awac("0.1"), *MONTE_CARLO, "--buffer-size", "20000", "--init-alpha", "0.1"],
    # on b20k: evaluation and export read an average of the policy's weights (about 1000 updates)
    "awac-mc-b20k-ema": [*awac("0.1"), *MONTE_CARLO, "--buffer-size", "20000", "--actor-ema", "0.999"],
    "gradient": GRADIENT,
}
TASKS = {  # name -> extra train-rl arguments
    "grasp": ["--task", "grasp"],
    # one held-out object (a different one per episode seed) and the tray, like the paper's
    # "Place Can in Pan": with three objects a random-z episode must also pick the named one
    "pick_place": ["--task", "pick_place", "--num-objects", "1"],
}


def per_task(default: str, overrides: list[str], what: str) -> dict:
    """`--task-prior pick_place=DIR` style overrides on top of one default value."""
    values = {task: default for task in TASKS}
    for item in overrides:
        task, sep, value = item.partition("=")
        if not sep or task not in TASKS:
            raise SystemExit(f"--task-{what} {item!r}: expected TASK=VALUE with TASK in {sorted(TASKS)}")
        values[task] = value
    return values


def run_command(task: str, algo: str, seed: int, args) -> list[str]:
    out = Path(args.out) / f"{task}-{algo}-s{seed}"
    cmd = [sys.executable, "-m", "parrot_cli", "train-rl", *TASKS[task], "--objects", "heldout",
           "--algo", algo, "--seed", str(seed), "--steps", str(args.steps), "--out", str(out),
           "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
           "--learning-starts", str(args.learning_starts),
           "--updates-per-step", str(args.updates_per_step), "--target-kl", str(args.target_kl),
           "--no-progress", "--threads", "1",  # one core per run: --jobs runs side by side
           "--prior", args.priors[task], *SETTINGS[args.setting]]  # every algo: the features
    if args.camera_file:
        cmd += ["--camera-file", args.camera_file]
    if algo == "bc-sac":
        cmd += ["--data", args.datasets[task], "--bc-steps", str(args.bc_steps)]
        if args.data_tasks[task]:
            cmd += ["--data-tasks", args.data_tasks[task]]
    if (out / "metrics.jsonl").exists():  # continue (or no-op when finished)
        cmd.append("--resume")
    return cmd


def run_logged(name: str, cmd: list[str], out: str) -> str:
    """One run as a process, its output appended to OUT/NAME.log."""
    t0 = time.time()
    log = Path(out) / f"{name}.log"
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    return f"{name}: exit {code} in {time.time() - t0:.0f} s (log {log})"


def run_on_ray(jobs: list, args) -> None:
    """The same runs as Ray tasks; each line is printed as its run ends."""
    from sim.ray_collect import connect
    ray = connect(args.ray, args.jobs)
    try:
        task = ray.remote(num_cpus=1, num_gpus=args.gpus_per_run, max_retries=1)(run_logged)
        pending = [task.remote(name, cmd, str(Path(args.out).resolve())) for name, cmd in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            print(ray.get(done[0]), f"({len(pending)} left)", flush=True)
    finally:
        if args.ray == "local":
            ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", required=True, help="prior ONNX export or training run")
    ap.add_argument("--data", required=True, help="prior dataset (for bc-sac)")
    ap.add_argument("--task-prior", action="append", default=[], metavar="TASK=DIR",
                    help="a prior for one task only (e.g. pick_place=runs/prior_pp_onnx)")
    ap.add_argument("--task-data", action="append", default=[], metavar="TASK=DIR",
                    help="that prior's dataset, for bc-sac on that task")
    ap.add_argument("--task-data-tasks", action="append", default=[], metavar="TASK=T1,..",
                    help="the dataset's tasks BC clones for that task (e.g. pick_place=pick_place, "
                         "as its prior was trained; default: all)")
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="awac-n25",
                    help="the RL setting every run shares (see SETTINGS)")
    ap.add_argument("--out", default="runs/rl")
    ap.add_argument("--tasks", default="grasp,pick_place")
    ap.add_argument("--algos", default="parrot,sac,bc-sac")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--eval-every", type=int, default=5000)
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--learning-starts", type=int, default=1000)
    ap.add_argument("--updates-per-step", type=float, default=1.0)
    ap.add_argument("--bc-steps", type=int, default=20_000)
    ap.add_argument("--target-kl", type=float, default=2.0, help="PARROT's KL to N(0, I) (nats)")
    ap.add_argument("--camera-file", metavar="YAML",
                    help="the twin's camera for every run (the one the priors' data was collected with)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="run the grid as Ray tasks (local instance, or the cluster at ADDRESS)")
    ap.add_argument("--gpus-per-run", type=float, default=0.0, help="with --ray: GPUs per run")
    args = ap.parse_args()
    # absolute paths: a run may start on another node or in another directory (--ray)
    args.out = str(Path(args.out).resolve())
    args.priors = {t: str(Path(d).resolve()) for t, d in per_task(args.prior, args.task_prior, "prior").items()}
    args.datasets = {t: str(Path(d).resolve()) for t, d in per_task(args.data, args.task_data, "data").items()}
    args.data_tasks = per_task("", args.task_data_tasks, "data-tasks")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    grid = list(itertools.product(args.tasks.split(","), args.algos.split(","),
                                  [int(s) for s in args.seeds.split(",")]))

    jobs = [(f"{t}-{a}-s{sd}", run_command(t, a, sd, args)) for t, a, sd in grid]
    if args.ray:
        run_on_ray(jobs, args)
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(lambda job: run_logged(*job, args.out), jobs):
                print(line, flush=True)
    runs = [str(Path(args.out) / f"{t}-{a}-s{s}") for t, a, s in grid]
    for metric in ("eval_success", "eval_success_sampled", "train_success"):
        subprocess.run([sys.executable, "-m", "parrot_cli", "plot-curves", *runs, "--metric",
                        metric, "--out", str(Path(args.out) / f"curves_{metric}.png")], check=True)
    summarize(grid, Path(args.out))
    return 0


def summarize(grid, out: Path) -> None:
    """Per task/algo over seeds: the evaluation at step 0 and at the end of the budget (mean,
    std), and run-long means of evaluation and training-episode success (at budgets this
    small single evaluations are noisy, so the run-long averages say more)."""
    table = {}
    for task, algo, seed in grid:
        rows = [json.loads(line) for line in open(out / f"{task}-{algo}-s{seed}" / "metrics.jsonl")]
        evals = [r for r in rows if r.get("kind") == "eval"]
        cell = table.setdefault(f"{task}/{algo}", {"first": [], "final": [], "final_sampled": [],
                                                   "eval": [], "train": []})
        cell["first"].append(evals[0]["eval_success"])
        cell["final"].append(evals[-1]["eval_success"])
        cell["final_sampled"].append(evals[-1].get("eval_success_sampled", float("nan")))
        cell["eval"] += [r["eval_success"] for r in evals]
        cell["train"] += [r["train_success"] for r in evals if "train_success" in r]
    summary = {k: {"eval_success_at_step_0": float(np.mean(v["first"])),
                   "final_eval_success_mean": float(np.mean(v["final"])),
                   "final_eval_success_std": float(np.std(v["final"])),
                   "final_sampled_success_mean": float(np.mean(v["final_sampled"])),
                   "mean_eval_success": float(np.mean(v["eval"])),
                   "mean_train_success": float(np.mean(v["train"])) if v["train"] else 0.0,
                   "seeds": len(v["final"]), "evals": len(v["eval"])} for k, v in table.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{'task/algo':22s} {'eval@0':>7s} {'final eval':>13s} {'sampled':>8s} {'mean eval':>10s} "
          f"{'mean train':>11s}")
    for k, v in summary.items():
        print(f"{k:22s} {v['eval_success_at_step_0']:7.2f} {v['final_eval_success_mean']:6.2f} ± "
              f"{v['final_eval_success_std']:4.2f} {v['final_sampled_success_mean']:8.2f} "
              f"{v['mean_eval_success']:10.3f} {v['mean_train_success']:11.3f}")


if __name__ == "__main__":
    sys.exit(main())
