"""Twin throughput: env steps/s with 48x48 rendering on one core, and scripted collection
trajectories/s with 1 and 2 worker processes.

    .venv/bin/python benchmarks/sim_throughput.py [--steps 2000] [--episodes 40]

Writes benchmarks/results/sim_throughput.json and prints a table. Steps/s are given per
wall-clock second and per CPU second of this process: on a shared machine the CPU figure is
what one free core would do. "with resets" includes reset() every 25 steps (scene rebuild);
the scripted policy drives the arm so grasps and contacts are exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from parrot_core.files import atomic_write_text  # noqa: E402


def bench_env(steps: int, image_size: int = 48) -> dict:
    from sim.env import EnvConfig, ParrotEnv
    from sim.scripted import make_scripted_policy, policy_rng

    env = ParrotEnv(EnvConfig(task="pick_place", image_size=image_size, terminate_on_success=False))
    obs, info = env.reset(seed=0)
    policy = make_scripted_policy("pick_place", policy_rng(0))
    seed, done = 0, 0
    t_reset = c_reset = 0.0
    w0, c0 = time.perf_counter(), time.process_time()
    while done < steps:
        obs, _, terminated, truncated, info = env.step(policy.act(info))
        done += 1
        if terminated or truncated:
            seed += 1
            w, c = time.perf_counter(), time.process_time()
            obs, info = env.reset(seed=seed)
            policy = make_scripted_policy("pick_place", policy_rng(seed))
            t_reset += time.perf_counter() - w
            c_reset += time.process_time() - c
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = 300
    w, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        env.render_obs()
    render_ms = (time.process_time() - c) / n * 1e3
    env.close()
    return {
        "steps": steps, "episodes_reset": seed,
        "steps_per_s_wall": steps / wall, "steps_per_s_cpu": steps / cpu,
        "steps_per_s_cpu_excl_reset": steps / (cpu - c_reset),
        "reset_ms_cpu": c_reset / max(seed, 1) * 1e3,
        "render_ms_cpu": render_ms,
    }


def bench_collect(episodes: int, workers: int) -> dict:
    from sim.collect import run_collection

    with tempfile.TemporaryDirectory() as d:
        w0 = time.perf_counter()
        counts = run_collection("mixed", episodes, workers, Path(d) / "ds", seed=0, progress=False)
        wall = time.perf_counter() - w0
    return {"workers": workers, "episodes": episodes, "wall_s": wall,
            "trajectories_per_s": episodes / wall,
            "kept": {k: v["kept"] for k, v in counts.items()},
            "attempted": {k: v["attempted"] for k, v in counts.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sim_throughput.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})  # one core for the env measurement
    env = bench_env(args.steps)
    os.sched_setaffinity(0, set(cores))
    collect = [bench_collect(args.episodes, k) for k in (1, 2)]
    load = os.getloadavg()
    result = {"env_48x48_one_core": env, "collection": collect,
              "machine": {"cpus_available": len(cores), "loadavg_1m": load[0],
                          "python": platform.python_version(), "platform": platform.platform()},
              "command": "python benchmarks/sim_throughput.py " + " ".join(sys.argv[1:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"{'measurement':44s} {'value':>10s}")
    print(f"{'env steps/s, 48x48, 1 core (wall)':44s} {env['steps_per_s_wall']:10.1f}")
    print(f"{'env steps/s, 48x48, 1 core (CPU time)':44s} {env['steps_per_s_cpu']:10.1f}")
    print(f"{'  same, excluding reset() (CPU time)':44s} {env['steps_per_s_cpu_excl_reset']:10.1f}")
    print(f"{'  reset() ms (CPU)':44s} {env['reset_ms_cpu']:10.2f}")
    print(f"{'  render 48x48 ms (CPU)':44s} {env['render_ms_cpu']:10.2f}")
    for c in collect:
        print(f"{'collection trajectories/s, %d worker(s)' % c['workers']:44s} "
              f"{c['trajectories_per_s']:10.2f}")
    print(f"(load average {load[0]:.2f} on {len(cores)} cpus; wrote {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
