"""`parrot train-rl` argument handling and the BC+SAC path (on the toy env, no PyBullet)."""

from __future__ import annotations

import json

import numpy as np
import torch

import sim.train_rl as train_rl
from parrot_cli.main import main as parrot
from parrot_core.dataset import DatasetWriter, Episode
from parrot_core.rl_loop import read_metrics
from rl_toy import BLUE, RED, ColorSignEnv

torch.set_num_threads(1)
SMALL = ["--image-size", "8", "--channels", "4", "--hidden", "32", "--batch-size", "32",
         "--learning-starts", "20", "--eval-every", "30", "--eval-episodes", "10", "--no-progress",
         "--observation", "image"]


def write_color_dataset(root) -> None:
    """Two 20-step episodes in prior-dataset format: red images carry a[0] ~ +0.8, blue ~ -0.8
    (noise 0.1 on every dim), so cloning them solves ColorSignEnv."""
    writer = DatasetWriter(root, (8, 8), run_id="t")
    for red in (True, False):
        images = np.empty((20, 8, 8, 3), np.uint8)
        images[:] = RED if red else BLUE
        actions = np.random.default_rng(int(red)).normal(0, 0.1, (20, 7)).astype(np.float32)
        actions[:, 0] += 0.8 if red else -0.8
        writer.write_episode(Episode(images, actions, attrs={"task": "grasp", "success": True}))


def test_bc_sac_clones_the_dataset_before_rl(tmp_path, monkeypatch):
    """bc-sac behaviour-clones (image -> action) pairs from a prior-format dataset before any env
    step: on data where red images carry a[0] ~ +0.8 and blue ~ -0.8 (noise 0.1 on every dim),
    the step-0 evaluation already succeeds, and the bc row is in metrics.jsonl."""
    env_args = []
    monkeypatch.setattr(train_rl, "make_env_factory",
                        lambda *a, **kw: env_args.append(kw) or (lambda: ColorSignEnv()))
    write_color_dataset(tmp_path / "data")
    code = parrot(["train-rl", "--task", "grasp", "--algo", "bc-sac", "--data", str(tmp_path / "data"),
                   "--bc-steps", "400", "--steps", "30", "--lr", "1e-3", "--mean-reg", "0.05", "--num-objects", "1", "--out", str(tmp_path / "run"), *SMALL])
    assert code == 0
    rows = read_metrics(tmp_path / "run")
    assert rows[0]["kind"] == "bc" and rows[0]["bc_steps"] == 400
    first_eval = next(r for r in rows if r["kind"] == "eval")
    assert first_eval["env_step"] == 0 and first_eval["eval_success"] >= 0.8
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["run"]["algo"] == "bc-sac" and cfg["sac"]["distribution"] == "tanh"
    assert cfg["sac"]["mean_reg"] == 0.05
    assert cfg["run"]["num_objects"] == 1 and env_args[0]["num_objects"] == 1  # reaches the twin


def test_argument_errors_are_one_line(tmp_path, capsys):
    """parrot without --prior, sac with --prior on images, sac on prior features without
    --prior, bc-sac without --data, critics on the prior's action without the prior's
    features, a bad --prior path and
    --device cuda on a machine without CUDA exit 1 with `parrot train-rl: error: ...`."""
    base = ["train-rl", "--task", "grasp", "--steps", "10", "--out", str(tmp_path / "r"), *SMALL]
    assert parrot(base + ["--algo", "parrot"]) == 1
    assert "needs --prior" in capsys.readouterr().err
    assert parrot(base + ["--algo", "sac", "--prior", str(tmp_path)]) == 1
    assert "only used by" in capsys.readouterr().err
    assert parrot(base + ["--algo", "sac", "--observation", "prior-features"]) == 1
    assert "needs --prior" in capsys.readouterr().err  # the features come from a prior
    assert parrot(base + ["--algo", "bc-sac"]) == 1
    assert "needs --data" in capsys.readouterr().err
    assert parrot(base + ["--algo", "sac", "--critic-input", "action"]) == 1
    assert "--critic-input action needs --algo parrot" in capsys.readouterr().err
    assert parrot(base + ["--algo", "parrot", "--prior", str(tmp_path / "missing")]) == 1
    assert "prior directory not found" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert parrot(base + ["--algo", "sac", "--device", "cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err


def test_a_prior_from_another_camera_is_refused_before_training(tmp_path, capsys):
    """train-rl in a twin whose camera is not the one the prior's images came from: one line
    naming the prior, exit 1, no run written."""
    from parrot_core.camera import table_camera
    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    model = ConditionalRealNVP(PriorConfig(image_size=48, coupling_hidden=(16, 16),
                                           encoder_hidden=(16,), feature_dim=8, conv_channels=4))
    export_prior(model, tmp_path / "prior", exporter="torchscript",
                 camera_view=table_camera(60.0, 0.58).view_record())
    assert parrot(["train-rl", "--task", "grasp", "--steps", "10", "--out", str(tmp_path / "r"),
                   *SMALL, "--algo", "parrot", "--prior", str(tmp_path / "prior")]) == 1
    assert f"the prior {tmp_path / 'prior'} was trained on images from" in capsys.readouterr().err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def tensorboard_scalars(log_dir) -> dict:
    """{tag: [(step, value), ...]} of every scalar in a TensorBoard log directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logs_every_evaluation_beside_metrics_jsonl(tmp_path, monkeypatch):
    """--tensorboard writes OUT/tensorboard with one point per metrics.jsonl evaluation row
    (same step, same value); without it no log directory appears."""
    monkeypatch.setattr(train_rl, "make_env_factory", lambda *a, **kw: (lambda: ColorSignEnv()))
    run = ["train-rl", "--task", "grasp", "--algo", "sac", "--steps", "60", *SMALL]
    assert parrot([*run, "--out", str(tmp_path / "tb"), "--tensorboard"]) == 0
    evals = [r for r in read_metrics(tmp_path / "tb") if r["kind"] == "eval"]
    scalars = tensorboard_scalars(tmp_path / "tb" / "tensorboard")
    assert [s for s, _ in scalars["rl/eval_success"]] == [r["env_step"] for r in evals]
    assert np.allclose([v for _, v in scalars["rl/eval_success"]], [r["eval_success"] for r in evals])
    assert "rl/q_loss" in scalars and "rl/alpha" in scalars
    assert parrot([*run, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "tensorboard").exists()


def test_sac_option_defaults_are_sacconfigs():
    """Every SAC option of `parrot train-rl` defaults to the SACConfig field it sets (one source
    of each default), and building the options imports no torch (a fresh interpreter)."""
    import argparse
    import subprocess
    import sys

    from parrot_core.sac_config import SACConfig
    from sim.train_rl import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--task", "grasp", "--algo", "parrot", "--steps", "1", "--out", "x"])
    d = SACConfig()
    option_of_field = {"batch_size": "batch_size", "conv_channels": "channels", "policy_lr": "lr",
                       "q_lr": "lr", "alpha_lr": "lr", "gamma": "gamma", "n_step": "n_step",
                       "learning_starts": "learning_starts", "updates_per_step": "updates_per_step",
                       "target_update_period": "target_update_period", "tau": "tau",
                       "buffer_size": "buffer_size", "init_alpha": "init_alpha",
                       "mean_reg": "mean_reg", "target_kl": "target_kl",
                       "policy_update": "policy_update", "awac_lambda": "awac_lambda",
                       "awac_value_samples": "awac_value_samples", "hold_steps": "hold_steps",
                       "critic_estimate": "critic_estimate", "awac_advantage": "awac_advantage",
                       "critic_input": "critic_input", "actor_ema": "actor_ema",
                       "critic_layer_norm": "critic_layer_norm",
                       "critic_regularizer": "critic_regularizer",
                       "bootstrap_time_limit": "bootstrap_time_limit"}
    differ = {f: (getattr(d, f), getattr(args, o)) for f, o in option_of_field.items()
              if getattr(d, f) != getattr(args, o)}
    assert not differ, differ
    code = ("import argparse, sys; from sim.train_rl import add_arguments; "
            "add_arguments(argparse.ArgumentParser()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_bc_alone_with_zero_steps_clones_and_evaluates_once(tmp_path, monkeypatch):
    """`--algo bc-sac --steps 0`: BC runs, the initial policy (BC alone) is evaluated once at
    env step 0, and no environment step is trained."""
    monkeypatch.setattr(train_rl, "make_env_factory", lambda *a, **kw: (lambda: ColorSignEnv()))
    write_color_dataset(tmp_path / "data")
    assert parrot(["train-rl", "--task", "grasp", "--algo", "bc-sac", "--data", str(tmp_path / "data"),
                   "--bc-steps", "300", "--steps", "0", "--lr", "1e-3", "--out", str(tmp_path / "run"),
                   *SMALL]) == 0
    rows = read_metrics(tmp_path / "run")
    assert [r["kind"] for r in rows] == ["bc", "eval"] and rows[1]["env_step"] == 0
    assert rows[1]["eval_success"] >= 0.8


def test_policy_lr_sets_the_policys_learning_rate_alone(tmp_path, monkeypatch):
    """`--policy-lr` overrides `--lr` for the policy only: the critics and alpha keep `--lr`, and
    the agent's optimizers (saved in the checkpoint) use those rates."""
    monkeypatch.setattr(train_rl, "make_env_factory", lambda *a, **kw: (lambda: ColorSignEnv()))
    assert parrot(["train-rl", "--task", "grasp", "--algo", "sac", "--steps", "30", "--lr", "2e-4",
                   "--policy-lr", "1e-3", "--out", str(tmp_path / "run"), *SMALL]) == 0
    sac = json.loads((tmp_path / "run" / "config.json").read_text())["sac"]
    assert (sac["policy_lr"], sac["q_lr"], sac["alpha_lr"]) == (1e-3, 2e-4, 2e-4)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["agent"]
    assert state["actor_opt"]["param_groups"][0]["lr"] == 1e-3
    assert state["q_opt"]["param_groups"][0]["lr"] == 2e-4


def test_resuming_a_finished_bc_sac_run_does_not_load_the_dataset(tmp_path, monkeypatch, capsys):
    """A grid rerun resumes every finished run: bc-sac must not read its (large) dataset just to
    find there is nothing to do. Pinned by removing the dataset before the resume."""
    import shutil
    monkeypatch.setattr(train_rl, "make_env_factory", lambda *a, **kw: (lambda: ColorSignEnv()))
    write_color_dataset(tmp_path / "data")
    args = ["train-rl", "--task", "grasp", "--algo", "bc-sac", "--data", str(tmp_path / "data"),
            "--bc-steps", "50", "--steps", "0", "--out", str(tmp_path / "run"), *SMALL]
    assert parrot(args) == 0
    shutil.rmtree(tmp_path / "data")
    assert parrot(args + ["--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().out
