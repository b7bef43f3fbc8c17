"""`parrot distill-policy`: a small student learns an exported policy's actions by DAgger in the
twin, resumes by round, and exports as an action policy that eval-policy and the node load."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pybullet")
import torch  # noqa: E402

from parrot_cli.main import main as parrot  # noqa: E402
from parrot_core.action_transform import PriorTransform  # noqa: E402
from parrot_core.rl_loop import LoopConfig, make_agent, train  # noqa: E402
from parrot_core.student import Frames, StudentConfig, StudentPolicy, export_student, fit  # noqa: E402
from rl_toy import ColorSignEnv, negating_prior, tiny_config  # noqa: E402
from ros_helpers import export_tiny_prior  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny 48x48 PARROT policy on a state-conditioned prior, exported beside it."""
    root = tmp_path_factory.mktemp("distill")
    prior_dir = export_tiny_prior(root / "export", image_size=48, state_dim=4)
    sha = json.loads((prior_dir / "prior_meta.json").read_text())["weights_sha256"]
    agent = make_agent(tiny_config("parrot", image_size=48, learning_starts=10, batch_size=8,
                                   hidden_sizes=(16,)), seed=0)
    train(agent, lambda: ColorSignEnv(image_size=48),
          PriorTransform(negating_prior(), source="tiny", sha256=sha), root / "run",
          LoopConfig(total_steps=12, eval_every=12, eval_episodes=1, progress=False),
          run_meta={"algo": "parrot", "task": "grasp", "objects": "heldout", "seed": 0})
    assert parrot(["export-policy", str(root / "run"), "--out", str(prior_dir),
                   "--exporter", "torchscript"]) == 0
    return prior_dir


def test_student_fits_the_teachers_actions_and_exports_as_an_action_policy(tmp_path):
    """Actions that depend on the image (red / blue) and on the state are learnt (MSE well
    below the actions' variance); the export takes image and state, outputs the action, equals
    torch and names its teacher."""
    from parrot_core.onnx_policy import OnnxPolicy

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = Frames()
    for k in range(256):
        red = k % 2 == 0
        image = np.zeros((48, 48, 3), np.uint8)
        image[..., 0 if red else 2] = 200
        state = np.float32([rng.uniform(0.3, 0.5), rng.uniform(-0.1, 0.1), 0.1, k % 3 == 0])
        action = np.zeros(7, np.float32)
        action[0], action[1] = (0.5 if red else -0.5), 5 * state[1]
        frames.add(image, state, action)
    student = StudentPolicy(StudentConfig(image_size=48))
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    loss = fit(student, opt, frames, 300, 64, torch.Generator().manual_seed(0))
    variance = float(np.stack(frames.actions).var(axis=0).sum() / 7)
    assert loss < 0.05 * variance
    meta = export_student(student, tmp_path / "student", {"algo": "parrot", "weights_sha256": "abc"},
                          {"rounds": 0})
    assert meta["outputs"] == "action" and meta["state_dim"] == 4 and meta["parity_max_abs_err"] < 1e-4
    assert meta["teacher"]["weights_sha256"] == "abc" and meta["algo"] == "student"
    policy = OnnxPolicy(tmp_path / "student")
    got = policy.act(np.stack(frames.images[:2]), None, np.stack(frames.states[:2]))
    assert got[0, 0] > 0.25 and got[1, 0] < -0.25  # red -> +, blue -> -


def test_distill_policy_runs_dagger_rounds_resumes_and_evaluates(teacher, tmp_path, capsys):
    """Round 0: the teacher acts; round 1: the student acts and the teacher labels. Every state
    visited is a labelled frame; --resume adds only the missing round; a second run into the same
    directory without --resume is refused; the export runs in eval-policy."""
    out = tmp_path / "student"
    base = ["distill-policy", "--policy", str(teacher), "--task", "grasp", "--num-objects", "1",
            "--out", str(out), "--episodes", "2", "--fit-steps", "3", "--batch-size", "8",
            "--max-steps", "3", "--no-progress"]
    assert parrot(base + ["--rounds", "2"]) == 0
    rows = [json.loads(line) for line in (out / "distill_metrics.jsonl").read_text().splitlines()]
    assert [(r["round"], r["acting"]) for r in rows] == [(0, "teacher"), (1, "student")]
    assert rows[1]["frames"] == 2 * 2 * 3  # 2 rounds x 2 episodes x 3 steps (no success)
    assert parrot(base + ["--rounds", "2"]) == 1  # would overwrite a distillation
    assert parrot(base + ["--rounds", "3", "--resume", "--eval-episodes", "2"]) == 0
    rows = [json.loads(line) for line in (out / "distill_metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2] and rows[2]["frames"] == 18
    evaluation = json.loads((out / "distill_eval.json").read_text())
    assert evaluation["student"]["episodes"] == evaluation["teacher"]["episodes"] == 2
    assert parrot(["eval-policy", "--policy", str(out), "--task", "grasp", "--episodes", "1",
                   "--num-objects", "1", "--no-progress"]) == 0
    assert "95% CI" in capsys.readouterr().out


def _write_dataset(root, with_states: bool) -> None:
    from parrot_core.dataset import DatasetWriter, Episode

    writer = DatasetWriter(root, (48, 48), run_id="t")
    rng = np.random.default_rng(0)
    for task in ("grasp", "pick_place", "grasp"):
        images = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
        states = np.tile(np.float32([0.4, 0.0, 0.1, 0.0]), (4, 1)) if with_states else None
        writer.write_episode(Episode(images, np.zeros((4, 7), np.float32), states=states,
                                     attrs={"task": task, "success": True}))


def test_distill_policy_labels_dataset_frames_first(teacher, tmp_path):
    """--data: episodes of the chosen task are labelled by the teacher before the rollouts
    (2 grasp episodes x 4 frames, then 1 rollout of 3 steps); a dataset without arm states, or
    with fewer episodes than asked, is refused by name."""
    _write_dataset(tmp_path / "data", with_states=True)
    out = tmp_path / "student"
    base = ["distill-policy", "--policy", str(teacher), "--task", "grasp", "--num-objects", "1",
            "--episodes", "1", "--fit-steps", "2", "--batch-size", "4", "--max-steps", "3",
            "--rounds", "1", "--data-tasks", "grasp", "--no-progress"]
    assert parrot(base + ["--out", str(out), "--data", str(tmp_path / "data"),
                          "--data-episodes", "2"]) == 0
    row = json.loads((out / "distill_metrics.jsonl").read_text())
    assert row["frames"] == 2 * 4 + 3
    assert parrot(base + ["--out", str(tmp_path / "more"), "--data", str(tmp_path / "data"),
                          "--data-episodes", "3"]) == 1
    _write_dataset(tmp_path / "stateless", with_states=False)
    assert parrot(base + ["--out", str(tmp_path / "s"), "--data", str(tmp_path / "stateless"),
                          "--data-episodes", "1"]) == 1


def test_distill_policy_refuses_bad_counts_by_name(teacher, tmp_path, capsys):
    base = ["distill-policy", "--policy", str(teacher), "--task", "grasp", "--out", str(tmp_path / "s")]
    for flag in ("--rounds", "--episodes", "--fit-steps"):
        assert parrot(base + [flag, "0"]) == 1
        assert f"{flag} must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything is written
