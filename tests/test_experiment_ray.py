"""The RL experiment on Ray: the grid's runs as Ray tasks, gathered into the same summary and
curves as a local run, and resumed (not redone) when the experiment is run again."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytest.importorskip("pybullet")
from ros_helpers import REPO  # noqa: E402


def run_experiment(out, data) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "experiments" / "parrot_vs_baselines.py"), "--prior",
         str(REPO / "models" / "prior_xarm6_48px"), "--data", str(data), "--out", str(out),
         "--tasks", "grasp", "--algos", "parrot", "--seeds", "0", "--steps", "40",
         "--eval-every", "20", "--eval-episodes", "1", "--learning-starts", "10", "--ray"],
        capture_output=True, text=True, timeout=600, cwd=str(out.parent))


def test_the_grid_runs_as_ray_tasks_and_resumes(tmp_path):
    out = tmp_path / "rl"
    first = run_experiment(out, tmp_path / "unused")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grasp/parrot"]["seeds"] == 1 and summary["grasp/parrot"]["evals"] == 3
    assert (out / "curves_eval_success.png").exists()
    assert "grasp-parrot-s0: exit 0" in first.stdout

    again = run_experiment(out, tmp_path / "unused")
    assert again.returncode == 0, again.stdout + again.stderr
    commands = [ln for ln in (out / "grasp-parrot-s0.log").read_text().splitlines()
                if ln.startswith("$ ")]
    assert len(commands) == 2 and "--resume" in commands[1]  # continued, not started over
    assert json.loads((out / "summary.json").read_text()) == summary
