"""SAC on the frozen prior's features (parrot_core.prior_features): what it observes, that it
learns, and that its export takes the image (and arm state) like every other policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from parrot_core.action_transform import IdentityTransform
from parrot_core.flow import ConditionalRealNVP, PriorConfig
from parrot_core.prior_features import PriorFeatures
from parrot_core.rl_loop import LoopConfig, make_agent, read_metrics, train
from rl_toy import ColorSignEnv, StateToyEnv, tiny_config

torch.set_num_threads(1)


def tiny_prior(state_dim: int = 0, seed: int = 0) -> ConditionalRealNVP:
    torch.manual_seed(seed)
    prior = ConditionalRealNVP(PriorConfig(image_size=8, conv_channels=4, encoder_hidden=(16,),
                                           feature_dim=8, coupling_hidden=(16,), state_dim=state_dim))
    with torch.no_grad():  # a random encoder barely tells red from blue: make it (a trained one does)
        prior.encoder.mlp[-1].weight.mul_(30.0)
    if state_dim:
        prior.set_state_normalization([0.4, 0.0, 0.15, 0.5], [0.1, 0.1, 0.1, 0.5])
    return prior.eval()


def test_features_are_what_the_prior_is_conditioned_on():
    """features(obs, info) is the prior's condition(image, state) for that step: the encoder's
    output and the normalized arm state; batch() gives the same rows; a state-conditioned
    prior's features refuse to be computed without states."""
    prior = tiny_prior(state_dim=4)
    features = PriorFeatures(prior)
    img = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    infos = [{"ee_pos": [0.4, 0.01 * k, 0.1], "gripper_closed": k == 2} for k in range(3)]
    states = np.float32([[0.4, 0.01 * k, 0.1, float(k == 2)] for k in range(3)])
    rows = np.stack([features(img[k], infos[k]) for k in range(3)])
    with torch.no_grad():
        ref = prior.condition(torch.from_numpy(img), torch.from_numpy(states)).numpy()
    assert rows.shape == (3, 12) and rows.dtype == np.float32
    assert np.allclose(rows, ref, atol=1e-6) and np.allclose(features.batch(img, states), ref, atol=1e-6)
    assert np.allclose(rows[:, -4:], (states - [0.4, 0.0, 0.15, 0.5]) / [0.1, 0.1, 0.1, 0.5], atol=1e-5)
    with pytest.raises(ValueError, match="arm state"):
        features.batch(img)


def test_action_of_is_the_priors_action_from_its_features():
    """action_of(features, z), the map critics on the action read (critic_input='action'), is the
    prior's forward(z, image, state) for the image and state those features came from."""
    prior = tiny_prior(state_dim=4)
    features = PriorFeatures(prior)
    img = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
    states = torch.tensor([[0.4, 0.01 * k, 0.1, float(k == 2)] for k in range(3)])
    z = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 7)), dtype=torch.float32)
    with torch.no_grad():
        feats = torch.as_tensor(features.batch(img.numpy(), states.numpy()))
        assert torch.allclose(features.action_of(feats, z), prior(z, img, states), atol=1e-6)


def test_sac_on_prior_features_learns_and_exports_image_to_action(tmp_path):
    """SAC whose replay holds the frozen features (float32 vectors, not images) learns the toy
    task; the checkpoint carries the feature weights, so `export-policy` writes a graph from
    the image to the action that matches torch and solves the task on onnxruntime alone."""
    from parrot_core.export_policy import export_policy
    from parrot_core.onnx_policy import OnnxPolicy
    features = PriorFeatures(tiny_prior())
    agent = make_agent(tiny_config("sac", obs_dim=features.dim), seed=0)
    loop = LoopConfig(total_steps=500, seed=0, eval_every=250, eval_episodes=20, progress=False)
    train(agent, lambda: ColorSignEnv(), IdentityTransform(), tmp_path / "run", loop,
          run_meta={"algo": "sac"}, observe=features)
    rows = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    assert rows[-1]["eval_success"] >= 0.9, rows
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["image_shape"] == (features.dim,) and ckpt["obs_dtype"] == "float32"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["observation"] == {"name": "prior_features", "dim": 8, "state_dim": 0}

    meta = export_policy(tmp_path / "run", tmp_path / "export", exporter="torchscript")
    assert meta["observation"] == "prior_features" and meta["parity_max_abs_err"] <= 1e-4
    policy = OnnxPolicy(tmp_path / "export")
    env = ColorSignEnv()
    hits = 0
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        _, reward, *_ = env.step(policy.act(obs[None])[0])
        hits += reward
    assert hits >= 18


def test_a_policy_on_state_features_exports_with_a_state_input(tmp_path):
    """A run on a state-conditioned prior's features exports policy.onnx with inputs
    (image, state); the runtime refuses a call without states."""
    from parrot_core.export_policy import export_policy
    from parrot_core.onnx_policy import OnnxPolicy, PolicyInputError

    features = PriorFeatures(tiny_prior(state_dim=4))
    agent = make_agent(tiny_config("sac", obs_dim=features.dim), seed=0)
    train(agent, lambda: StateToyEnv(), IdentityTransform(), tmp_path / "run",
          LoopConfig(total_steps=20, eval_every=20, eval_episodes=1, progress=False),
          run_meta={"algo": "sac"}, observe=features)
    meta = export_policy(tmp_path / "run", tmp_path / "export", exporter="torchscript")
    assert meta["state_dim"] == 4 and [i["name"] for i in meta["files"]["policy.onnx"]["inputs"]] == \
        ["image", "state"]
    policy = OnnxPolicy(tmp_path / "export")
    img = np.zeros((2, 8, 8, 3), np.uint8)
    assert policy(img, np.float32([[0.4, 0, 0.1, 0], [0.4, 0, 0.1, 1]])).shape == (2, 7)
    with pytest.raises(PolicyInputError, match="observes the arm state"):
        policy(img)
    with pytest.raises(PolicyInputError, match=r"states must have shape \(B, 4\)"):
        policy(img[:1], np.float32([0.4, 0, 0.1, 0]))  # batched, like OnnxPrior's states


def test_fused_export_is_the_policy_then_the_prior_in_one_graph(tmp_path):
    """`export-policy --fuse-prior`: one graph image, state -> action equal (<= 1e-4) to the
    separate exports chained (the policy's z through OnnxPrior.forward), marked fused with
    outputs "action" so it runs without the prior; a different prior is refused."""
    from parrot_core.action_transform import PriorTransform
    from parrot_core.export import export_prior, weights_sha256
    from parrot_core.export_policy import PolicyExportError, export_policy
    from parrot_core.onnx_policy import OnnxPolicy
    from parrot_core.onnx_prior import OnnxPrior

    prior = tiny_prior(state_dim=4)
    with torch.no_grad():  # couplings away from the identity, so the flow matters
        for layer in prior.couplings:  # (non-zero biases: torchscript dedups equal constants)
            layer.net[-1].weight.normal_(0, 0.3)
            layer.net[-1].bias.normal_(0, 0.1)
    export_prior(prior, tmp_path / "prior", exporter="torchscript")
    features = PriorFeatures(prior)
    agent = make_agent(tiny_config("parrot", obs_dim=features.dim), seed=0)
    train(agent, lambda: StateToyEnv(), PriorTransform(prior, "tiny", weights_sha256(prior)),
          tmp_path / "run", LoopConfig(total_steps=150, eval_every=150, eval_episodes=1,
                                       progress=False),
          run_meta={"algo": "parrot"}, observe=features)
    export_policy(tmp_path / "run", tmp_path / "prior", exporter="torchscript")
    meta = export_policy(tmp_path / "run", tmp_path / "fused", exporter="torchscript",
                         fuse_prior=tmp_path / "prior")
    assert meta["fused_prior"] and meta["outputs"] == "action"
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    states = np.float32([[0.4, 0.02 * k, 0.1, k % 2] for k in range(5)])
    separate = OnnxPolicy(tmp_path / "prior").act(img, OnnxPrior(tmp_path / "prior"), states)
    fused = OnnxPolicy(tmp_path / "fused").act(img, None, states)
    assert np.abs(fused - separate).max() <= 1e-4 and np.abs(separate).max() > 1e-2
    other = tiny_prior(state_dim=4, seed=1)
    with torch.no_grad():
        for layer in other.couplings:
            layer.net[-1].weight.normal_(0, 0.3)
            layer.net[-1].bias.normal_(0, 0.1)
    export_prior(other, tmp_path / "other", exporter="torchscript")
    with pytest.raises(PolicyExportError, match="trained on"):
        export_policy(tmp_path / "run", tmp_path / "bad", exporter="torchscript",
                      fuse_prior=tmp_path / "other")
