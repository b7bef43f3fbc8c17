"""`parrot eval-policy`: an exported PARROT policy and its prior run in the twin on
onnxruntime alone, on fixed seeds, and the success rate comes with its 95% interval."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("pybullet")
import torch  # noqa: E402

from parrot_cli.main import main as parrot  # noqa: E402
from parrot_core.camera import DEFAULT_CAMERA  # noqa: E402
from parrot_core.action_transform import PriorTransform  # noqa: E402
from parrot_core.rl_loop import LoopConfig, make_agent, train  # noqa: E402
from rl_toy import ColorSignEnv, negating_prior, tiny_config  # noqa: E402
from ros_helpers import REPO, export_tiny_prior  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A tiny 48x48 PARROT policy exported beside the prior export it names."""
    root = tmp_path_factory.mktemp("eval_policy")
    prior_dir = export_tiny_prior(root / "export", image_size=48)
    sha = json.loads((prior_dir / "prior_meta.json").read_text())["weights_sha256"]
    agent = make_agent(tiny_config("parrot", image_size=48, learning_starts=10, batch_size=8,
                                   hidden_sizes=(16,)), seed=0)
    train(agent, lambda: ColorSignEnv(image_size=48), PriorTransform(negating_prior(), source="tiny",
                                                                     sha256=sha),
          root / "run", LoopConfig(total_steps=12, eval_every=12, eval_episodes=1, progress=False),
          run_meta={"algo": "parrot", "task": "grasp", "objects": "heldout", "seed": 0,
                    "camera_view": DEFAULT_CAMERA.view_record()})
    assert parrot(["export-policy", str(root / "run"), "--out", str(prior_dir),
                   "--exporter", "torchscript"]) == 0
    return prior_dir


def test_eval_policy_reports_rate_interval_and_episodes(export, tmp_path, capsys):
    """3 held-out episodes from seed 20000: JSON with one row per seed, a rate that is the
    count over 3, and an interval around it; the same seeds give the same results."""
    out = tmp_path / "eval.json"
    args = ["eval-policy", "--policy", str(export), "--task", "grasp", "--episodes", "3",
            "--seed", "20000", "--out", str(out), "--no-progress"]
    assert parrot(args) == 0
    res = json.loads(out.read_text())
    assert [e["seed"] for e in res["episodes_detail"]] == [20000, 20001, 20002]
    assert res["success_rate"] == res["successes"] / 3
    lo, hi = res["interval95"]
    assert 0.0 <= lo <= res["success_rate"] <= hi <= 1.0 and hi - lo > 0.3
    assert "95% CI" in capsys.readouterr().out
    assert parrot(args[:-3] + ["--out", str(tmp_path / "again.json"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["episodes_detail"] == res["episodes_detail"]


def test_eval_policy_runs_without_torch(export):
    """The robot-compute path: torch cannot be imported, and the evaluation still runs."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from parrot_cli.main import main\n"
            f"sys.exit(main(['eval-policy', '--policy', {str(export)!r}, '--task', 'grasp',"
            " '--episodes', '1', '--no-progress']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "success" in r.stdout


def test_z_policy_without_its_prior_is_a_clear_error(export, tmp_path, capsys):
    """A PARROT policy copied away from its prior names the missing prior, exit code 1."""
    import shutil
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("policy.onnx", "policy_meta.json"):
        shutil.copy(export / name, alone / name)
    assert parrot(["eval-policy", "--policy", str(alone), "--task", "grasp", "--episodes", "1",
                   "--no-progress"]) == 1
    assert "pass --prior" in capsys.readouterr().err


def test_a_policy_trained_through_another_camera_is_refused(export, tmp_path, capsys):
    """export-policy records the twin camera's view of the run; eval-policy in a twin that
    renders from another camera is a one-line error naming it, before any episode."""
    import shutil

    from parrot_core.camera import table_camera
    meta = json.loads((export / "policy_meta.json").read_text())
    assert meta["camera_view"] == DEFAULT_CAMERA.view_record()
    moved = tmp_path / "moved"
    shutil.copytree(export, moved)
    meta["camera_view"] = table_camera(60.0, 0.58).view_record()
    (moved / "policy_meta.json").write_text(json.dumps(meta))
    assert parrot(["eval-policy", "--policy", str(moved), "--task", "grasp", "--episodes", "1",
                   "--no-progress"]) == 1
    assert f"the policy {moved} was trained on images from a camera at" in capsys.readouterr().err


@pytest.mark.parametrize("policy, prior, other, task, objects", [
    ("policy_grasp", "prior_xarm6_48px", "prior_xarm6_48px_pick_place", "grasp", "3"),
    ("policy_pick_place", "prior_xarm6_48px_pick_place", "prior_xarm6_48px", "pick_place", "1"),
])
def test_shipped_policy_runs_with_its_shipped_prior(tmp_path, policy, prior, other, task, objects):
    """models/policy_* name their shipped prior's weights and run with it in the twin: 4
    held-out episodes through `parrot eval-policy`; with the other prior instead the policy is
    refused (a z policy only means something through its own prior)."""
    models = REPO / "models"
    meta = json.loads((models / policy / "policy_meta.json").read_text())
    prior_sha = json.loads((models / prior / "prior_meta.json").read_text())
    assert meta["outputs"] == "z" and meta["task"] == task
    assert meta["prior"]["weights_sha256"] == prior_sha["weights_sha256"]
    out = tmp_path / "eval.json"
    assert parrot(["eval-policy", "--policy", str(models / policy), "--prior", str(models / prior),
                   "--task", task, "--num-objects", objects, "--episodes", "4", "--seed", "20000",
                   "--out", str(out), "--no-progress"]) == 0
    assert len(json.loads(out.read_text())["episodes_detail"]) == 4
    assert parrot(["eval-policy", "--policy", str(models / policy), "--prior", str(models / other),
                   "--task", task, "--num-objects", objects, "--episodes", "1",
                   "--no-progress"]) == 1


def test_eval_policy_on_ray_gives_the_local_results_episode_for_episode(tmp_path):
    """The shipped grasp policy on 4 held-out scenes, locally and spread over a local Ray
    instance: the same success, steps and objects for every seed."""
    pytest.importorskip("ray")
    models = REPO / "models"
    outs = {}
    for mode, extra in (("local", []), ("ray", ["--ray", "--workers", "2"])):
        outs[mode] = tmp_path / f"{mode}.json"
        assert parrot(["eval-policy", "--policy", str(models / "policy_grasp"), "--prior",
                       str(models / "prior_xarm6_48px"), "--task", "grasp", "--episodes", "4",
                       "--seed", "20000", "--out", str(outs[mode]), "--no-progress", *extra]) == 0
    local, ray = (json.loads(outs[m].read_text())["episodes_detail"] for m in ("local", "ray"))
    assert ray == local and [r["seed"] for r in ray] == [20000, 20001, 20002, 20003]
