"""The flow prior (parrot_core.flow) and its training CLI (parrot_core.train_prior).

Small models and 16x16 images throughout, one torch thread: the whole file runs in a
few seconds on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from parrot_core.action_space import gripper_as_target_state, to_metric
from parrot_core.dataset import DatasetError, DatasetWriter, Episode
from parrot_core.flow import ACTION_CLAMP, ConditionalRealNVP, PriorConfig, coupling_masks
from parrot_core.onnx_prior import PriorLoadError
from parrot_core.train_prior import (PriorTrainingError, add_arguments, batch_indices, load_prior,
                                     weighted_batch_indices,
                                     main, read_metrics, split_episodes)

torch.set_num_threads(1)

SMALL = dict(image_size=16, encoder_hidden=(32,), feature_dim=16, coupling_hidden=(32, 32))


def random_flow(seed: int = 0, **overrides) -> ConditionalRealNVP:
    """A small flow whose couplings are far from the identity (the last layers start at 0)."""
    torch.manual_seed(seed)
    model = ConditionalRealNVP(PriorConfig(**{**SMALL, **overrides}))
    with torch.no_grad():
        for layer in model.couplings:
            torch.nn.init.normal_(layer.net[-1].weight, std=0.2)
            torch.nn.init.normal_(layer.net[-1].bias, std=0.2)
    return model.eval()


def images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def write_dataset(root, n_episodes: int = 12, steps: int = 20, size: int = 16, seed: int = 0) -> None:
    """Two scene kinds (red/blue); the action mean flips with the colour; gripper exactly +-1."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, (size, size), worker=0, run_id="test")
    for e in range(n_episodes):
        kind = e % 2
        img = np.zeros((steps, size, size, 3), np.uint8)
        img[..., 2 * kind] = 200
        img += rng.integers(0, 30, img.shape, dtype=np.uint8)
        mean = np.array([0.6, -0.3, 0.2, 0.0, 0.0, 0.1, 1.0]) * (1 if kind else -1)
        act = np.clip(mean + 0.05 * rng.standard_normal((steps, 7)), -1, 1).astype(np.float32)
        act[:, 6] = 1.0 if kind else -1.0
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": e}))


def train_args(data, out, **kw) -> argparse.Namespace:
    """parrot train-prior arguments for a tiny model; kw adds flags (True -> bare flag)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--data", str(data), "--out", str(out), "--batch-size", "32", "--lr", "3e-3",
            "--encoder-hidden", "32", "--feature-dim", "16", "--coupling-hidden", "32,32",
            "--no-progress", "--threads", "1"]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else [flag, str(v)]
    return parser.parse_args(argv)


# ---- the flow ----------------------------------------------------------------------------

def test_round_trip_inverse_of_forward_is_identity():
    """inverse(forward(z)) == z within 1e-4 (float32) and the two log-dets cancel, wherever
    |forward(z)| < 0.999; beyond the clamp, inverse maps to the clamped action instead."""
    model = random_flow()
    z = torch.randn(256, 7, generator=torch.Generator().manual_seed(1))
    img = images(256)
    with torch.no_grad():
        a, ld_fwd = model.forward_with_logdet(z, img)
        z_back, ld_inv = model.inverse(a, img)
        inside = (a.abs() < ACTION_CLAMP).all(dim=1)
        assert inside.float().mean() > 0.95
        assert (z_back - z)[inside].abs().max() < 1e-4
        assert (ld_fwd + ld_inv)[inside].abs().max() < 1e-3
        assert not torch.allclose(a, torch.tanh(z), atol=1e-2)  # the couplings do something
        if (~inside).any():  # saturated rows come back as the clamped action
            again = model(z_back[~inside], img[~inside])
            assert torch.allclose(again, a[~inside].clamp(-ACTION_CLAMP, ACTION_CLAMP), atol=1e-4)


def test_log_prob_is_change_of_variables_with_numeric_jacobian():
    """log p(a|s) == log N(f^-1(a)) + log|det d f^-1/da|, the det taken from autograd's Jacobian."""
    model = random_flow(seed=2).double()
    img = images(2, seed=3)
    actions = torch.tensor([[0.3, -0.7, 0.1, 0.9, -0.2, 0.5, -0.95],
                            [-0.5, 0.2, 0.8, -0.1, 0.0, -0.6, 0.4]], dtype=torch.float64)
    with torch.no_grad():
        lp = model.log_prob(actions, img)
    for i in range(2):
        inv = lambda a: model.inverse(a[None], img[i:i + 1])[0][0]  # noqa: E731
        jac = torch.autograd.functional.jacobian(inv, actions[i])
        z = inv(actions[i]).detach()
        expected = -0.5 * (z @ z) - 3.5 * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert abs(float(lp[i]) - float(expected)) < 1e-6
        with torch.no_grad():
            _, log_det = model.inverse(actions[i:i + 1], img[i:i + 1])
        assert abs(float(log_det[0]) - float(torch.linalg.slogdet(jac)[1])) < 1e-6


def test_actions_bounded_scales_bounded_and_edges_finite():
    """Huge z still gives |a| <= 1 and finite log-dets; a = +-1 (clamped) has finite z and log p;
    each coupling's log-scale stays in [-1, 1] even with huge weights."""
    model = random_flow()
    with torch.no_grad():
        for layer in model.couplings:
            layer.net[-1].weight.mul_(1000.0)
        img = images(4)
        a, ld = model.forward_with_logdet(100.0 * torch.randn(4, 7), img)
        assert torch.isfinite(a).all() and torch.isfinite(ld).all() and a.abs().max() <= 1.0
        edges = torch.tensor([[1.0] * 7, [-1.0] * 7, [1.0, -1.0] * 3 + [1.0], [0.0] * 7])
        z, log_det = model.inverse(edges, img)
        assert torch.isfinite(z).all() and torch.isfinite(model.log_prob(edges, img)).all()
        log_scale, _ = model.couplings[0]._scale_shift(torch.randn(4, 7), model.encoder(img))
        assert log_scale.abs().max() <= 1.0


def test_coupling_masks_alternate_and_cover_every_dim():
    """Layers alternate complementary halves, so each of the 7 dims is transformed twice."""
    masks = coupling_masks(7, 4)
    assert torch.equal(masks[0], 1 - masks[1]) and torch.equal(masks[0], masks[2])
    assert torch.equal((1 - masks).sum(0), torch.full((7,), 2.0))


def test_sample_shapes_and_range():
    """sample(): one image -> (n, 7), a batch -> (B, n, 7), all in (-1, 1), seeded draws repeat."""
    model = random_flow()
    img = images(3)
    with torch.no_grad():
        one = model.sample(img[0], n=5, generator=torch.Generator().manual_seed(0))
        again = model.sample(img[0], n=5, generator=torch.Generator().manual_seed(0))
        many = model.sample(img, n=2)
    assert one.shape == (5, 7) and many.shape == (3, 2, 7)
    assert torch.equal(one, again) and many.abs().max() < 1.0


# ---- training ----------------------------------------------------------------------------

def test_split_is_by_episode_and_batches_depend_only_on_seed_and_step():
    """Val holds whole episodes disjoint from train; the batch at step k is a function of (seed, k)."""
    names = [f"e{i}.h5" for i in range(10)]
    train, val = split_episodes(names, 0.2, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == names
    assert split_episodes(names, 0.2, seed=0) == (train, val)
    assert split_episodes(names[:2], 0.01, seed=0)[1]  # at least one val episode when asked
    assert np.array_equal(batch_indices(7, 100, 32, 0), batch_indices(7, 100, 32, 0))
    assert not np.array_equal(batch_indices(7, 100, 32, 0), batch_indices(8, 100, 32, 0))


def test_train_prior_lowers_val_nll_and_resume_matches_uninterrupted(tmp_path):
    """train-prior lowers held-out NLL; stopping at 15 steps and resuming to 30 gives the same
    step count, metrics rows and weights as 30 uninterrupted steps; a second run into the same
    --out without --resume is refused; load_prior returns an eval-mode model."""
    data = tmp_path / "data"
    write_dataset(data)
    assert main(train_args(data, tmp_path / "a", steps=30, eval_every=15)) == 0
    rows = read_metrics(tmp_path / "a")
    assert [r["step"] for r in rows] == [0, 15, 30]
    assert rows[-1]["val_nll"] < rows[0]["val_nll"] - 1.0

    assert main(train_args(data, tmp_path / "b", steps=15, eval_every=15)) == 0
    assert main(train_args(data, tmp_path / "b", steps=30, eval_every=15, resume=True)) == 0
    rows_b = read_metrics(tmp_path / "b")
    assert [r["step"] for r in rows_b] == [0, 15, 30]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 30
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5), k

    with pytest.raises(PriorTrainingError, match="--resume"):
        main(train_args(data, tmp_path / "a", steps=30))
    model = load_prior(tmp_path / "a")
    assert not model.training and model.checkpoint_info["step"] == 30


def test_ema_weights_are_evaluated_snapshotted_and_resumed(tmp_path):
    """With --ema-decay the saved snapshots and best.pt hold the moving average, not the
    trained weights; a resumed run continues the same average as an uninterrupted one; each
    snapshot loads as a prior; a snapshot period off the evaluation grid is refused."""
    data = tmp_path / "data"
    write_dataset(data)
    flags = dict(eval_every=15, ema_decay=0.9, snapshot_every=15)
    assert main(train_args(data, tmp_path / "a", steps=30, **flags)) == 0
    snapshots = sorted(p.name for p in (tmp_path / "a" / "snapshots").iterdir())
    assert snapshots == ["step_0000000.pt", "step_0000015.pt", "step_0000030.pt"]
    last = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    final = torch.load(tmp_path / "a" / "snapshots" / "step_0000030.pt", weights_only=True)
    key = next(k for k in last["model"] if k.endswith("weight"))
    assert not torch.allclose(final["model"][key], last["model"][key])  # an average, not the last
    assert torch.allclose(final["model"][key], last["ema"]["module." + key])

    assert main(train_args(data, tmp_path / "b", steps=15, **flags)) == 0
    assert main(train_args(data, tmp_path / "b", steps=30, resume=True, **flags)) == 0
    resumed = torch.load(tmp_path / "b" / "snapshots" / "step_0000030.pt", weights_only=True)
    for k in final["model"]:
        assert torch.allclose(final["model"][k], resumed["model"][k], atol=1e-5), k
    assert load_prior(tmp_path / "a" / "snapshots" / "step_0000015.pt").checkpoint_info["step"] == 15

    with pytest.raises(PriorTrainingError, match="multiple of --eval-every"):
        main(train_args(data, tmp_path / "c", steps=30, eval_every=15, snapshot_every=20))


def test_weighted_batches_draw_each_source_by_its_weight():
    """Weights 0,1 take every row from the second source; 1,3 about a quarter from the first;
    the batch at a step is the same on every call (resumable)."""
    rows_of = [np.arange(0, 100), np.arange(100, 400)]
    only_second = np.concatenate([weighted_batch_indices(s, rows_of, [0, 1], 64, 0) for s in range(20)])
    assert only_second.min() >= 100
    mixed = np.concatenate([weighted_batch_indices(s, rows_of, [1, 3], 64, 0) for s in range(200)])
    assert abs(np.mean(mixed < 100) - 0.25) < 0.02
    assert np.array_equal(weighted_batch_indices(7, rows_of, [1, 3], 64, 0),
                          weighted_batch_indices(7, rows_of, [1, 3], 64, 0))


def test_train_prior_mixes_datasets_each_with_its_own_validation_nll(tmp_path):
    """Two datasets train one prior: each is split on its own (validation episodes from both),
    metrics.jsonl has each one's validation NLL, config.json names both with their weights, and
    a resumed weighted run matches an uninterrupted one. Bad weights and datasets of different
    image sizes are refused by name."""
    write_dataset(tmp_path / "twin", seed=0)
    write_dataset(tmp_path / "real", n_episodes=6, seed=1)
    data = [str(tmp_path / "twin"), str(tmp_path / "real")]

    def args(out, **kw):
        a = train_args(data[0], out, data_weights="1,1", eval_every=10, **kw)
        a.data = data
        return a

    assert main(args(tmp_path / "a", steps=20)) == 0
    rows = read_metrics(tmp_path / "a")
    assert {"val_nll_0", "val_nll_1"} <= set(rows[0])
    assert rows[-1]["val_nll_1"] < rows[0]["val_nll_1"]
    ckpt = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert {r.split(":")[0] for r in ckpt["split"]["val"]} == {"0", "1"}
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert len(config["train"]["data"]) == 2 and config["train"]["data_weights"] == [1.0, 1.0]

    assert main(args(tmp_path / "b", steps=10)) == 0
    assert main(args(tmp_path / "b", steps=20, resume=True)) == 0
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for k in ckpt["model"]:
        assert torch.allclose(ckpt["model"][k], b["model"][k], atol=1e-5), k

    with pytest.raises(PriorTrainingError, match="--data-weights needs one weight"):
        bad = train_args(data[0], tmp_path / "c", data_weights="1,1,1", steps=2)
        bad.data = data
        main(bad)
    write_dataset(tmp_path / "big", n_episodes=2, size=24)
    with pytest.raises(PriorTrainingError, match="different sizes"):
        bad = train_args(data[0], tmp_path / "d", steps=2)
        bad.data = [data[0], str(tmp_path / "big")]
        main(bad)


def test_load_prior_errors_are_clear(tmp_path):
    """A missing run dir, an empty one and a corrupt checkpoint raise PriorLoadError."""
    with pytest.raises(PriorLoadError, match="no such"):
        load_prior(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PriorLoadError, match="best.pt"):
        load_prior(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PriorLoadError, match="corrupt"):
        load_prior(tmp_path / "bad")


def test_train_prior_tasks_trains_on_that_tasks_episodes_only(tmp_path):
    """--tasks pick_place keeps only the pick_place episodes (the split and config say so,
    and a resume keeps the run's filter); a task with no episodes is a clear error."""
    data = tmp_path / "data"
    write_dataset(data)
    writer = DatasetWriter(data, (16, 16), worker=1, run_id="pp")
    for e in range(4):
        img = np.full((20, 16, 16, 3), 90, np.uint8)
        act = np.zeros((20, 7), np.float32)
        writer.write_episode(Episode(img, act, attrs={"task": "pick_place", "seed": 100 + e}))
    assert main(train_args(data, tmp_path / "pp", steps=4, eval_every=2, tasks="pick_place")) == 0
    config = json.loads((tmp_path / "pp" / "config.json").read_text())
    assert config["dataset"]["episodes"] == 4 and config["train"]["tasks"] == ["pick_place"]
    assert main(train_args(data, tmp_path / "pp", steps=6, eval_every=2, resume=True)) == 0
    config = json.loads((tmp_path / "pp" / "config.json").read_text())
    assert config["dataset"]["episodes"] == 4
    with pytest.raises(PriorTrainingError, match="no episodes of task lift"):
        main(train_args(data, tmp_path / "lift", steps=2, tasks="lift"))


def test_init_from_fine_tunes_from_another_runs_weights(tmp_path):
    """--init-from RUN starts from RUN's best weights and model config: the new run's step-0
    NLL is the old run's best on the same held-out split (the 'before' of a fine-tune), and
    the model flags of the command line are ignored."""
    data = tmp_path / "data"
    write_dataset(data)
    assert main(train_args(data, tmp_path / "a", steps=30, eval_every=15)) == 0
    best_a = min(r["val_nll"] for r in read_metrics(tmp_path / "a") if r["step"] > 0)
    args = train_args(data, tmp_path / "b", steps=10, eval_every=10, init_from=tmp_path / "a")
    args.coupling_hidden = (8,)  # ignored: the init run's config wins
    assert main(args) == 0
    rows = read_metrics(tmp_path / "b")
    assert rows[0]["step"] == 0 and abs(rows[0]["val_nll"] - best_a) < 1e-4
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["prior"]["coupling_hidden"] == [32, 32]
    assert config["train"]["init_from"].endswith("best.pt")


def test_steps_before_demo_start_are_not_learnt(tmp_path):
    """An episode's steps before its demo_start attr (a scripted deliberate miss) are left out
    of training and validation; a demo_start outside the episode is refused by name."""
    data = tmp_path / "data"
    write_dataset(data, n_episodes=6, steps=20)
    writer = DatasetWriter(data, (16, 16), worker=1, run_id="miss")
    rng = np.random.default_rng(1)
    for e in range(6):
        act = np.clip(rng.standard_normal((20, 7)), -1, 1).astype(np.float32)
        img = rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": 100 + e,
                                                      "demo_start": 15}))
    assert main(train_args(data, tmp_path / "run", steps=2, eval_every=2)) == 0
    counts = json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]
    assert counts["train_steps"] + counts["val_steps"] == 6 * 20 + 6 * 5
    writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": 200, "demo_start": 20}))
    with pytest.raises(DatasetError, match="demo_start must be an integer step in"):
        main(train_args(data, tmp_path / "bad", steps=2, eval_every=2, val_fraction=0.0))


# ---- conditioning on the arm state -------------------------------------------------------

def write_state_dataset(root, n_episodes: int = 12, steps: int = 20, size: int = 16,
                        seed: int = 0) -> None:
    """Identical images; dx grows with the arm state's height and the gripper action is +1 when
    it is high, -1 when low: only a prior that reads the state can predict them."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, (size, size), worker=0, run_id="state")
    for e in range(n_episodes):
        img = np.full((steps, size, size, 3), 120, np.uint8)
        states = np.zeros((steps, 4), np.float32)
        states[:, :2] = rng.uniform(0.3, 0.5, (steps, 2))
        states[:, 2] = rng.uniform(0.02, 0.2, steps)
        act = np.clip(0.05 * rng.standard_normal((steps, 7)), -1, 1).astype(np.float32)
        act[:, 0] += 8.0 * (states[:, 2] - 0.11)
        act[:, 6] = np.where(states[:, 2] > 0.11, 1.0, -1.0)
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": e}, states=states))


def test_widened_prior_computes_the_image_only_flow_until_trained():
    """widen_prior with the arm state gives a prior whose actions are the image-only prior's
    whatever the state (zero weights on the new inputs), and which refuses a missing state."""
    from parrot_core.train_prior import widen_prior
    model = random_flow()
    wide = widen_prior(model, state_dim=4).eval()
    z, img = torch.randn(8, 7), images(8)
    with torch.no_grad():
        a = model(z, img)
        assert torch.allclose(wide(z, img, torch.randn(8, 4)), a, atol=1e-6)
        assert torch.allclose(wide(z, img, 10 * torch.randn(8, 4)), a, atol=1e-6)
    with pytest.raises(ValueError, match="arm state"):
        wide(z, img)
    with pytest.raises(ValueError, match=r"state must be \(8, 4\)"):
        wide(z, img, torch.zeros(8, 3))


def test_widening_a_state_prior_with_keypoints_keeps_its_flow_and_state_columns():
    """Keypoints are inserted between the features and the arm state: the widened prior still
    computes the old flow for every state (the state's columns moved with it), and its
    conditioning grows by 2 per keypoint."""
    from parrot_core.train_prior import widen_prior
    model = random_flow(state_dim=4)
    with torch.no_grad():  # a state that matters, so misplaced columns would show
        for layer in model.couplings:
            layer.net[0].weight[:, 16:20].normal_(std=0.5)
    wide = widen_prior(model, keypoints=3).eval()
    assert wide.config.keypoints == 3 and wide.config.condition_dim == 16 + 6 + 4
    z, img, state = torch.randn(8, 7), images(8), torch.randn(8, 4)
    with torch.no_grad():
        assert torch.allclose(wide(z, img, state), model(z, img, state), atol=1e-6)
        assert wide.condition(img, state).shape == (8, 26)
    with pytest.raises(PriorTrainingError, match="already has 3 keypoints"):
        widen_prior(wide, keypoints=5)


def test_spatial_softmax_reads_out_where_a_map_peaks():
    """Each keypoint is the expected (x, y) of its channel's softmax in [-1, 1]: a sharp peak
    at column 6, row 1 of an 8x4 map reads as x = 2*6/7 - 1, y = 2*1/3 - 1; a flat map as 0."""
    from parrot_core.encoders import spatial_softmax_xy
    maps = torch.zeros(1, 2, 4, 8)
    maps[0, 0, 1, 6] = 50.0
    xy = spatial_softmax_xy(maps)[0]
    assert torch.allclose(xy[:2], torch.tensor([2 * 6 / 7 - 1, 2 / 3 - 1]), atol=1e-4)
    assert torch.allclose(xy[2:], torch.zeros(2), atol=1e-6)


def write_dot_dataset(root, n_episodes: int = 24, steps: int = 10, size: int = 16,
                      seed: int = 0) -> None:
    """One bright dot per image at a random place; the action's dx/dy point at it."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, (size, size), worker=0, run_id="dots")
    for e in range(n_episodes):
        img = np.full((steps, size, size, 3), 40, np.uint8)
        act = np.clip(0.03 * rng.standard_normal((steps, 7)), -1, 1).astype(np.float32)
        for t in range(steps):
            r, c = rng.integers(1, size - 1, 2)
            img[t, r, c] = 255
            act[t, 0], act[t, 1] = (c - size / 2) / size, (r - size / 2) / size
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": e}))


def test_keypoint_prior_trains_and_reloads_with_its_keypoints(tmp_path):
    """--keypoints K trains a prior whose conditioning has 2K keypoint coordinates, saves K in
    its config, and reloads to the same function; widening an image-only run with
    --init-from starts exactly at that run's validation NLL."""
    data = tmp_path / "data"
    write_dot_dataset(data)
    assert main(train_args(data, tmp_path / "kp", steps=40, eval_every=20, keypoints=4)) == 0
    model = load_prior(tmp_path / "kp")
    assert model.config.keypoints == 4 and model.config.condition_dim == 16 + 8
    config = json.loads((tmp_path / "kp" / "config.json").read_text())
    assert config["prior"]["keypoints"] == 4
    assert main(train_args(data, tmp_path / "img", steps=40, eval_every=20)) == 0
    best = min(r["val_nll"] for r in read_metrics(tmp_path / "img") if r["step"] > 0)
    assert main(train_args(data, tmp_path / "wide", steps=20, eval_every=20, keypoints=4,
                           init_from=tmp_path / "img")) == 0
    assert abs(read_metrics(tmp_path / "wide")[0]["val_nll"] - best) < 1e-4


def test_arm_state_prior_learns_what_the_image_cannot_show(tmp_path):
    """--arm-state trains on the episodes' states: the actions that depend only on the state's
    height are predicted (val NLL far below the image-only prior's), the state
    normalization comes from the data and is saved with the weights; a dataset without states
    is a clear error."""
    data = tmp_path / "data"
    write_state_dataset(data)
    assert main(train_args(data, tmp_path / "img", steps=120, eval_every=60)) == 0
    assert main(train_args(data, tmp_path / "st", steps=120, eval_every=60, arm_state=True)) == 0
    image_only = read_metrics(tmp_path / "img")[-1]["val_nll"]
    with_state = read_metrics(tmp_path / "st")[-1]["val_nll"]
    assert with_state < image_only - 1.0, (with_state, image_only)
    model = load_prior(tmp_path / "st")
    assert model.state_dim == 4 and 0.02 < float(model.state_mean[2]) < 0.2
    with torch.no_grad():
        low = model(torch.zeros(1, 7), images(1), torch.tensor([[0.4, 0.4, 0.03, 0.0]]))
        high = model(torch.zeros(1, 7), images(1), torch.tensor([[0.4, 0.4, 0.19, 0.0]]))
    assert float(low[0, 6]) < -0.5 < 0.5 < float(high[0, 6])
    assert float(low[0, 0]) < -0.4 and float(high[0, 0]) > 0.4
    write_dataset(tmp_path / "plain")
    with pytest.raises(PriorTrainingError, match="no arm states"):
        main(train_args(tmp_path / "plain", tmp_path / "bad", steps=2, arm_state=True))


def test_init_from_an_image_only_prior_with_arm_state_widens_it(tmp_path):
    """--init-from an image-only run with --arm-state starts from exactly that prior (the
    step-0 val NLL is its best on the same split) and then learns from the state."""
    data = tmp_path / "data"
    write_state_dataset(data)
    assert main(train_args(data, tmp_path / "img", steps=60, eval_every=30)) == 0
    best = min(r["val_nll"] for r in read_metrics(tmp_path / "img") if r["step"] > 0)
    assert main(train_args(data, tmp_path / "st", steps=120, eval_every=60, arm_state=True,
                           init_from=tmp_path / "img")) == 0
    rows = read_metrics(tmp_path / "st")
    assert abs(rows[0]["val_nll"] - best) < 1e-4
    assert rows[-1]["val_nll"] < best - 1.0
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert config["prior"]["state_dim"] == 4 and config["train"]["init_from"].endswith("best.pt")


def test_init_from_a_state_prior_keeps_its_state_normalization(tmp_path):
    """Fine-tuning a state-conditioned prior on other data keeps the normalization it was
    trained with (recomputing it from the new data would change the prior before any step):
    the new run's weights carry the old mean/std."""
    write_state_dataset(tmp_path / "a")
    assert main(train_args(tmp_path / "a", tmp_path / "run_a", steps=40, eval_every=40,
                           arm_state=True)) == 0
    old = load_prior(tmp_path / "run_a")
    write_state_dataset(tmp_path / "b", seed=7)  # other states, other mean/std
    assert main(train_args(tmp_path / "b", tmp_path / "run_b", steps=1, eval_every=1,
                           lr=1e-9, init_from=tmp_path / "run_a")) == 0
    new = load_prior(tmp_path / "run_b")
    assert torch.equal(new.state_mean, old.state_mean) and torch.equal(new.state_std, old.state_std)


# ---- the gripper channel as a target state ----------------------------------------------
def test_gripper_target_state_relabels_holds_and_replays_the_same_commands():
    """A hold while open becomes 1 - |g|, a hold while closed -(1 - |g|); open and close
    commands are kept, and every relabelled step gives the twin the same gripper command
    (hold and open/close are the same when the gripper is already in that state)."""
    g = np.array([0.05, -0.1, -0.9, 0.02, -0.08, 0.7, -0.03, 0.0], np.float32)
    actions = np.zeros((len(g), 7), np.float32)
    actions[:, 6] = g
    out = gripper_as_target_state(actions)
    np.testing.assert_allclose(out[:, 6], [0.95, 0.9, -0.9, -0.98, -0.92, 0.7, 0.97, 1.0], atol=1e-6)
    np.testing.assert_array_equal(out[:, :6], actions[:, :6])
    closed = closed_relabelled = False
    for before, after in zip(actions, out):
        for a, state in ((before, "orig"), (after, "relabelled")):
            cmd = to_metric(a)[2]
            if state == "orig":
                closed = (cmd == -1) or (closed and cmd != 1)
            else:
                closed_relabelled = (cmd == -1) or (closed_relabelled and cmd != 1)
        assert closed == closed_relabelled
    assert gripper_as_target_state(actions[:2], start_closed=True)[0, 6] == pytest.approx(-0.95)
    with pytest.raises(ValueError, match=r"\(T, 7\)"):
        gripper_as_target_state(np.zeros((3, 6)))


def write_hold_dataset(root, n_episodes: int = 8, steps: int = 20, size: int = 16) -> None:
    """Every step holds the (open) gripper: the gripper channel is 0 +- 0.05."""
    rng = np.random.default_rng(3)
    writer = DatasetWriter(root, (size, size), worker=0, run_id="hold")
    for e in range(n_episodes):
        img = rng.integers(0, 255, (steps, size, size, 3), dtype=np.uint8)
        act = (0.05 * rng.standard_normal((steps, 7))).astype(np.float32)
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": e}))


@pytest.mark.parametrize("labels, opens", [("target-state", True), ("as-recorded", False)])
def test_train_prior_learns_the_gripper_channel_as_chosen(tmp_path, labels, opens):
    """--gripper-labels target-state (the default) learns a hold while open as open (> +0.5),
    as-recorded learns it as a hold (|g| < 0.5); the choice is saved with the run."""
    write_hold_dataset(tmp_path / "data")
    assert main(train_args(tmp_path / "data", tmp_path / "run", steps=150, eval_every=150,
                           gripper_labels=labels)) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["gripper_labels"] == labels
    model = load_prior(tmp_path / "run")
    with torch.no_grad():
        mode = model.forward(torch.zeros(8, 7), images(8))
    assert bool(torch.all(mode[:, 6] > 0.5)) == opens
    assert bool(torch.all(mode[:, 6].abs() < 0.5)) == (not opens)


def test_train_prior_tensorboard_logs_nll_and_prior_samples(tmp_path):
    """--tensorboard logs each metrics.jsonl row's NLLs (same steps) and a histogram of prior
    samples per action dimension to OUT/tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    write_dataset(tmp_path / "data")
    assert main(train_args(tmp_path / "data", tmp_path / "run", steps=20, eval_every=10,
                           tensorboard=True)) == 0
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    rows = read_metrics(tmp_path / "run")
    assert [e.step for e in acc.Scalars("prior/val_nll")] == [r["step"] for r in rows] == [0, 10, 20]
    assert np.allclose([e.value for e in acc.Scalars("prior/val_nll")], [r["val_nll"] for r in rows])
    assert {"prior_samples/dx", "prior_samples/gripper"} <= set(acc.Tags()["histograms"])
