"""`parrot export-policy` and the torch-free runtime (parrot_core.onnx_policy).

One tiny PARROT run (8x8 images, 40 env steps, so the policy head has moved off zero) and
one tiny SAC run are trained per module and exported with the default exporter.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from parrot_cli.main import main as parrot
from parrot_core.action_transform import IdentityTransform, PriorTransform
from parrot_core.export_policy import PolicyExportError, export_policy, load_actor
from parrot_core.onnx_policy import (META_FILE, POLICY_FILE, OnnxPolicy, PolicyError, PolicyInputError,
                                     PolicyLoadError)
from parrot_core.rl_loop import LoopConfig, make_agent, train
from rl_toy import ColorSignEnv, negating_prior, tiny_config

torch.set_num_threads(1)


def _tiny_run(root, algo, **cfg):
    agent = make_agent(tiny_config(algo, learning_starts=10, batch_size=16, hidden_sizes=(32,), **cfg),
                       seed=0)
    transform = PriorTransform(negating_prior(), source="stand-in", sha256="ab" * 32) if algo == "parrot" \
        else IdentityTransform()
    train(agent, lambda: ColorSignEnv(), transform, root, LoopConfig(total_steps=40, eval_every=40,
                                                                      eval_episodes=2, progress=False),
          run_meta={"algo": algo, "task": "toy", "objects": "heldout", "seed": 0})
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_policy")
    run = _tiny_run(root / "run", "parrot")
    assert parrot(["export-policy", str(run), "--out", str(root / "export")]) == 0
    return run, root / "export"


def test_onnx_matches_torch_and_meta_describes_it(exported):
    """policy.onnx reproduces the torch deterministic output (max abs err < 1e-5) for batch 1
    and 5 (dynamic batch axis); the metadata says PARROT, outputs z, the image size, hashes."""
    run, out = exported
    actor, _, _ = load_actor(run)
    policy = OnnxPolicy(out)
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = actor.deterministic(torch.from_numpy(images)).numpy()
    assert np.abs(ref).max() > 1e-3  # a trained (non-zero) head, so parity is not vacuous
    assert np.abs(policy(images) - ref).max() < 1e-5
    assert np.abs(policy(images[:1]) - ref[:1]).max() < 1e-5
    meta = json.loads((out / META_FILE).read_text())
    assert (meta["algo"], meta["outputs"], meta["image_size"], meta["env_step"]) == ("parrot", "z", [8, 8], 40)
    assert meta["prior"]["weights_sha256"] == "ab" * 32 and len(meta["files"][POLICY_FILE]["sha256"]) == 64


def test_runtime_needs_no_torch(exported):
    """onnx_policy loads and runs in a process where importing torch is impossible."""
    _, out = exported
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from parrot_core.onnx_policy import OnnxPolicy\n"
        f"p = OnnxPolicy({str(out)!r})\n"
        "z = p(np.zeros((2, 8, 8, 3), np.uint8))\n"
        "assert z.shape == (2, 7) and z.dtype == np.float32\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_z_policy_needs_its_prior(exported):
    """A z-output policy refuses to produce actions without a prior, or with a prior whose
    weights_sha256 differs from the one it was trained on; with the right one it calls forward."""
    _, out = exported
    policy = OnnxPolicy(out)
    img = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(PolicyError, match="outputs z"):
        policy.act(img)

    class FakePrior:
        def __init__(self, sha):
            self.meta = {"weights_sha256": sha}

        def forward(self, z, images, states=None):  # OnnxPrior.forward's signature
            return -np.tanh(z)

    with pytest.raises(PolicyLoadError, match="trained on prior weights"):
        policy.act(img, FakePrior("cd" * 32))
    assert np.allclose(policy.act(img, FakePrior("ab" * 32)), -np.tanh(policy(img)))


def test_missing_tampered_and_mismatched_files_are_clear_errors(exported, tmp_path):
    """Missing dir / metadata / graph, a modified graph, wrong image shapes, and exporting
    beside a different prior each raise a one-line error naming the problem."""
    run, out = exported
    with pytest.raises(PolicyLoadError, match="no such"):
        OnnxPolicy(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / POLICY_FILE).write_bytes((broken / POLICY_FILE).read_bytes() + b"x")
    with pytest.raises(PolicyLoadError, match="sha256"):
        OnnxPolicy(broken)
    (broken / POLICY_FILE).unlink()
    with pytest.raises(PolicyLoadError, match="missing"):
        OnnxPolicy(broken)
    (broken / META_FILE).unlink()
    with pytest.raises(PolicyLoadError, match="policy_meta.json: missing"):
        OnnxPolicy(broken)
    policy = OnnxPolicy(out)
    with pytest.raises(PolicyInputError, match="uint8"):
        policy(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(PolicyInputError, match=r"\(B, 8, 8, 3\)"):
        policy(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(PolicyInputError, match=r"add a batch axis"):  # as OnnxPrior says
        policy(np.zeros((8, 8, 3), np.uint8))
    beside = tmp_path / "beside_prior"
    beside.mkdir()
    (beside / "prior_meta.json").write_text(json.dumps({"weights_sha256": "ef" * 32}))
    with pytest.raises(PolicyExportError, match="matching prior"):
        export_policy(run, beside)
    with pytest.raises(PolicyExportError, match="no such run"):
        export_policy(tmp_path / "norun", tmp_path / "x")
    assert parrot(["export-policy", str(tmp_path / "norun"), "--out", str(tmp_path / "x")]) == 1


def test_baseline_policy_outputs_actions(tmp_path):
    """A SAC run exports an action-output policy (legacy exporter here) whose act() needs no prior."""
    run = _tiny_run(tmp_path / "run", "sac")
    meta = export_policy(run, tmp_path / "export", exporter="torchscript")
    assert meta["outputs"] == "action" and meta["prior"] is None
    policy = OnnxPolicy(tmp_path / "export")
    a = policy.act(np.zeros((3, 8, 8, 3), np.uint8))
    assert a.shape == (3, 7) and np.all(np.abs(a) <= 1.0)


def test_a_run_that_holds_its_actions_is_refused(tmp_path):
    """A run trained with --hold-steps 2 would act differently when exported (one action per
    image): export-policy refuses it with an error that names the hold, and writes nothing."""
    run = _tiny_run(tmp_path / "run", "sac", hold_steps=2)
    with pytest.raises(PolicyExportError, match="holds each action for 2 env steps"):
        export_policy(run, tmp_path / "export")
    assert not (tmp_path / "export").exists()
