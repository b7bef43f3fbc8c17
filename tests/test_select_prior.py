"""`parrot select-prior`: snapshots are judged by rollouts on train-object scenes, the one
with the most successes is copied to RUN/selected.pt, and counts already measured are reused."""

import json

import pytest

pytest.importorskip("pybullet")
import torch  # noqa: E402

import sim.select_prior as select_prior  # noqa: E402
from parrot_cli.main import main as parrot  # noqa: E402
from parrot_core.flow import ConditionalRealNVP, PriorConfig  # noqa: E402
from parrot_core.train_prior import CKPT_FORMAT, CKPT_VERSION, load_prior  # noqa: E402


def write_snapshot(run, step: int) -> None:
    """A tiny random-init 48 px prior saved as train-prior saves a snapshot."""
    torch.manual_seed(step)
    config = PriorConfig(image_size=48, coupling_hidden=(32, 32), encoder_hidden=(32,),
                         feature_dim=16, conv_channels=8)
    path = run / "snapshots" / f"step_{step:07d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "config": config.to_dict(),
                "model": ConditionalRealNVP(config).state_dict(), "step": step}, path)


def test_select_prior_rolls_out_every_snapshot_and_keeps_a_loadable_copy(tmp_path, capsys):
    """Two real snapshots, two scenes each: both are counted (random z and mode, 0..2 each),
    selection.json names the chosen one, and selected.pt loads as that step's prior."""
    run = tmp_path / "run"
    for step in (500, 1000):
        write_snapshot(run, step)
    assert parrot(["select-prior", str(run), "--episodes", "2", "--no-progress"]) == 0
    selection = json.loads((run / "selection.json").read_text())
    assert [c["step"] for c in selection["candidates"]] == [500, 1000]
    for c in selection["candidates"]:
        assert 0 <= c["random_z"] <= 2 and 0 <= c["mode"] <= 2
    assert selection["scenes"]["objects"] == "train"
    chosen_step = int(selection["chosen"].split("_")[1].split(".")[0])
    assert load_prior(run / "selected.pt").checkpoint_info["step"] == chosen_step
    assert "<- selected" in capsys.readouterr().out


def test_select_prior_picks_the_most_successes_and_reuses_measured_counts(tmp_path, monkeypatch):
    """The score is random-z + mode successes (a tie goes to the later step); a second call
    with the same scenes rolls out only the snapshot added since, other scenes redo all."""
    run = tmp_path / "run"
    for step in (500, 1000, 1500):
        write_snapshot(run, step)
    counts = {500: (30, 40), 1000: (45, 40), 1500: (40, 45)}
    rolled = []

    def fake_evaluate(env, path, episodes, seed):
        step = int(path.stem.split("_")[1])
        rolled.append(step)
        return {"random_z": counts[step][0], "mode": counts[step][1]}

    monkeypatch.setattr(select_prior, "evaluate_snapshot", fake_evaluate)
    assert parrot(["select-prior", str(run), "--no-progress"]) == 0
    assert json.loads((run / "selection.json").read_text())["chosen"] == "step_0001500.pt"
    assert rolled == [500, 1000, 1500]

    write_snapshot(run, 2000)
    counts[2000] = (50, 45)
    assert parrot(["select-prior", str(run), "--no-progress"]) == 0
    assert rolled == [500, 1000, 1500, 2000]  # only the new one
    assert json.loads((run / "selection.json").read_text())["chosen"] == "step_0002000.pt"
    assert (run / "selected.pt").read_bytes() == (run / "snapshots" / "step_0002000.pt").read_bytes()

    assert parrot(["select-prior", str(run), "--seed", "7", "--no-progress"]) == 0
    assert rolled[4:] == [500, 1000, 1500, 2000]  # other scenes: nothing reused


def test_select_prior_names_a_run_without_snapshots(tmp_path, capsys):
    """A run trained without --snapshot-every is a one-line error naming the flag."""
    (tmp_path / "run").mkdir()
    assert parrot(["select-prior", str(tmp_path / "run"), "--no-progress"]) == 1
    assert "--snapshot-every" in capsys.readouterr().err
