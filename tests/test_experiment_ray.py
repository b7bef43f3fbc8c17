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


def test_every_run_of_the_grid_renders_through_the_given_camera(tmp_path):
    """--camera-file reaches each train-rl command (a prior collected through another camera
    is refused by train-rl without it); without it no run names a camera."""
    import importlib.util
    from types import SimpleNamespace
    spec = importlib.util.spec_from_file_location("pvb", REPO / "experiments" / "parrot_vs_baselines.py")
    pvb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pvb)
    args = SimpleNamespace(out=str(tmp_path), steps=10, eval_every=5, eval_episodes=1,
                           learning_starts=5, updates_per_step=1, target_kl=2.0,
                           priors={"grasp": "P"}, setting="awac-n25", camera_file="cam.yaml",
                           datasets={"grasp": "D"}, bc_steps=1, data_tasks={"grasp": ""})
    for algo in ("parrot", "sac", "bc-sac"):
        cmd = pvb.run_command("grasp", algo, 0, args)
        assert cmd[cmd.index("--camera-file") + 1] == "cam.yaml"
    args.camera_file = None
    assert "--camera-file" not in pvb.run_command("grasp", "parrot", 0, args)
