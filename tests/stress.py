"""`make test-stress`: the timing-sensitive tests, several times, on a deliberately loaded machine.

    python tests/stress.py [--runs 5] [--parallel 2] [--hogs 1] [--marker ros] [-- PYTEST_ARGS]

Busy-loop processes (`--hogs`) take CPU for the whole session while `--runs` pytest runs of
the tests marked `--marker` go `--parallel` at a time, each on its own ROS domains
(PARROT_TEST_DOMAIN_BASE, see tests/ros_helpers.domain_id) and its own temp directory. It
prints every test that failed with how often, the flake rate, and writes
`<out>/summary.json`; the exit status is 1 if any test failed. Logs of failed runs stay in
`<out>/run<i>/`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_helpers import DOMAINS_PER_RUN, MAX_DOMAIN  # noqa: E402


def burn() -> None:
    while True:
        pass


def pytest_command(i: int, out: Path, marker: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker,
            f"--junitxml={out / f'run{i}.xml'}", f"--basetemp={out / f'run{i}'}", *extra]


def run_env(slot: int) -> dict:
    env = dict(os.environ)
    env["PARROT_TEST_DOMAIN_BASE"] = str(1 + slot * DOMAINS_PER_RUN)
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    return env


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed / failed / skipped, from one run's JUnit XML."""
    if not junit.exists():
        return {}
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        result[name] = ("failed" if tags & {"failure", "error"} else
                        "skipped" if "skipped" in tags else "passed")
    return result


def run_all(args, out: Path) -> list[dict]:
    """Start the runs, `parallel` at a time, each in a free domain slot; collect outcomes."""
    todo, running, done = list(range(args.runs)), {}, []
    free_slots = list(range(args.parallel))
    while todo or running:
        while todo and free_slots:
            i, slot = todo.pop(0), free_slots.pop(0)
            log = open(out / f"run{i}.log", "w")
            proc = subprocess.Popen(pytest_command(i, out, args.marker, args.pytest_args),
                                    cwd=REPO, env=run_env(slot), stdout=log,
                                    stderr=subprocess.STDOUT)
            running[i] = (proc, slot, log, time.monotonic())
            print(f"run {i}: started (domains {1 + slot * DOMAINS_PER_RUN}..)", flush=True)
        for i, (proc, slot, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            free_slots.append(slot)
            del running[i]
            tests = outcomes(out / f"run{i}.xml")
            failed = sorted(t for t, o in tests.items() if o == "failed")
            done.append({"run": i, "returncode": proc.returncode, "tests": len(tests),
                         "failed": failed, "seconds": round(time.monotonic() - t0, 1)})
            print(f"run {i}: rc {proc.returncode}, {len(tests)} tests, {len(failed)} failed "
                  f"in {done[-1]['seconds']} s" + "".join(f"\n  FAILED {t}" for t in failed),
                  flush=True)
        time.sleep(0.5)  # polling the child processes, not waiting on a test condition
    return sorted(done, key=lambda r: r["run"])


def summarize(runs: list[dict], args) -> dict:
    failures: dict[str, int] = {}
    for r in runs:
        for t in r["failed"]:
            failures[t] = failures.get(t, 0) + 1
    broken = [r["run"] for r in runs if r["returncode"] not in (0,) and not r["failed"]]
    executed = sum(r["tests"] for r in runs)
    return {"runs": args.runs, "parallel": args.parallel, "hogs": args.hogs,
            "marker": args.marker, "cores": os.cpu_count(), "tests_executed": executed,
            "test_failures": sum(failures.values()),
            "flake_rate": round(sum(failures.values()) / executed, 4) if executed else None,
            "failed_runs": sum(1 for r in runs if r["returncode"] != 0),
            "runs_without_report": broken, "failures": failures, "per_run": runs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="test-stress", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pytest runs in all")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    parser.add_argument("--hogs", type=int, default=1, help="busy-loop processes beside them")
    parser.add_argument("--marker", default="ros", help="pytest -m expression to run")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "stress",
                        help="logs, JUnit files and summary.json")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.parallel < 1 or args.hogs < 0:
        parser.error("--runs and --parallel must be >= 1, --hogs >= 0")
    slots = (MAX_DOMAIN - 1) // DOMAINS_PER_RUN
    if args.parallel > slots:
        parser.error(f"--parallel {args.parallel}: at most {slots} runs fit in ROS domains "
                     f"1..{MAX_DOMAIN} at {DOMAINS_PER_RUN} domains a run")
    args.out.mkdir(parents=True, exist_ok=True)
    hogs = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    t0 = time.monotonic()
    try:
        runs = run_all(args, args.out)
    finally:
        for h in hogs:
            h.terminate()
    summary = summarize(runs, args)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{args.runs} runs of -m '{args.marker}' ({args.parallel} at a time, {args.hogs} "
          f"CPU hog(s), {os.cpu_count()} cores) in {summary['wall_s']} s: "
          f"{summary['test_failures']} test failures in {summary['tests_executed']} executed "
          f"(flake rate {summary['flake_rate']}), {summary['failed_runs']} failed runs")
    for t, n in sorted(summary["failures"].items(), key=lambda kv: -kv[1]):
        print(f"  {n}/{args.runs}  {t}")
    print(f"summary: {args.out / 'summary.json'}")
    return 1 if summary["failed_runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
