"""`parrot export` (parrot_core.export) and the torch-free runtime (parrot_core.onnx_prior).

One tiny prior is trained (a few steps, 16x16 images) and exported once per module through
the real CLI with the fast legacy exporter; one test repeats the export with the default
torch.export-based exporter (~10 s) and checks its parity too. Error tests work on copies.
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
from parrot_core.action_space import scaling_metadata
from parrot_core.dataset import DatasetWriter, Episode
from parrot_core.export import export_prior, parity_error, weights_sha256
from parrot_core.files import sha256_file
from parrot_core.onnx_prior import (FORWARD_FILE, INVERSE_FILE, META_FILE, OnnxPrior, PriorError,
                                    PriorInputError, PriorLoadError, PriorMetadataError)
from parrot_core.train_prior import load_prior

torch.set_num_threads(1)
SIZE = 16


VIEW = {"position": [0.7, 0.0, 0.5], "orientation": [0.674, 0.674, -0.213, -0.213],
        "model_fov_deg": 29.0}  # a camera view the dataset records


def _write_dataset(root, n_episodes: int = 6, steps: int = 20) -> None:
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root, (SIZE, SIZE), worker=0, run_id="test", camera_view=VIEW)
    for e in range(n_episodes):
        img = rng.integers(0, 256, (steps, SIZE, SIZE, 3), dtype=np.uint8)
        act = np.clip(0.5 * rng.standard_normal((steps, 7)), -1, 1).astype(np.float32)
        writer.write_episode(Episode(img, act, attrs={"task": "grasp", "seed": e}))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run dir, export dir) of a tiny prior trained for 10 steps and exported by `parrot export`."""
    root = tmp_path_factory.mktemp("prior")
    _write_dataset(root / "data")
    rc = parrot(["train-prior", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--steps", "10", "--eval-every", "10", "--batch-size", "32", "--lr", "1e-2",
                 "--encoder-hidden", "32", "--feature-dim", "16", "--coupling-hidden", "32,32",
                 "--threads", "1", "--no-progress"])
    assert rc == 0
    assert parrot(["export", "--prior", str(root / "run"), "--out", str(root / "export"),
                   "--exporter", "torchscript"]) == 0
    return root / "run", root / "export"


@pytest.fixture
def export_copy(exported, tmp_path):
    dst = tmp_path / "export"
    shutil.copytree(exported[1], dst)
    return dst


def _inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 7)).astype(np.float32),
            rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8))


def test_onnx_matches_torch_on_100_random_inputs(exported):
    """ONNX forward action and inverse (z, log_det) agree with torch to <= 1e-4 on 100 random
    inputs (a trained, non-identity flow), at batch 1 and batch 100 alike (dynamic batch axis)."""
    run, export = exported
    model = load_prior(run)
    z, img = _inputs(100)
    with torch.no_grad():
        a_torch = model(torch.from_numpy(z), torch.from_numpy(img)).numpy()
    assert np.abs(a_torch - np.tanh(z)).max() > 1e-2  # the couplings are not the identity
    errors = parity_error(model, export, n=100, seed=0)
    assert max(errors.values()) <= 1e-4, errors
    prior = OnnxPrior(export)
    assert np.abs(prior.forward(z[:1], img[:1]) - a_torch[:1]).max() <= 1e-4


def test_default_dynamo_export_matches_torch_on_100_random_inputs(exported, tmp_path):
    """The default exporter (torch.export, dynamo=True, batch-2 example inputs) gives graphs with
    a dynamic batch axis that match torch to <= 1e-4 on 100 random inputs and at batch 1."""
    model = load_prior(exported[0])
    meta = export_prior(model, tmp_path / "dynamo")
    assert meta["exporter"] == "dynamo"
    errors = parity_error(model, tmp_path / "dynamo", n=100, seed=2)
    assert max(errors.values()) <= 1e-4, errors
    z, img = _inputs(1, seed=4)
    with torch.no_grad():
        a_torch = model(torch.from_numpy(z), torch.from_numpy(img)).numpy()
    assert np.abs(OnnxPrior(tmp_path / "dynamo").forward(z, img) - a_torch).max() <= 1e-4


def test_metadata_records_size_scaling_versions_and_hashes(exported):
    """prior_meta.json: image size, action scaling, versions, sha256 of weights and of each graph,
    the graphs' input/output names and shapes, and the camera view of the training images
    (from the dataset, through the run)."""
    from parrot_core.onnx_prior import trained_camera_view
    run, export = exported
    meta = json.loads((export / META_FILE).read_text())
    assert meta["camera_view"] == VIEW == trained_camera_view(run) == trained_camera_view(export)
    assert meta["image_size"] == [SIZE, SIZE]
    assert meta["action_scaling"] == scaling_metadata()
    assert meta["weights_sha256"] == weights_sha256(load_prior(run))
    assert {"torch", "onnx", "onnxruntime", "parrot"} <= set(meta["versions"])
    for name in (FORWARD_FILE, INVERSE_FILE):
        assert meta["files"][name]["sha256"] == sha256_file(export / name)
    fwd = meta["files"][FORWARD_FILE]
    assert [i["name"] for i in fwd["inputs"]] == ["z", "image"]
    assert fwd["inputs"][1] == {"name": "image", "dtype": "uint8", "shape": ["batch", SIZE, SIZE, 3]}
    assert [o["name"] for o in meta["files"][INVERSE_FILE]["outputs"]] == ["z", "log_det"]


def test_runtime_round_trip_log_prob_and_sample(exported):
    """OnnxPrior: inverse(forward(z)) == z, log_prob is finite, sample() is seeded and in (-1, 1)."""
    prior = OnnxPrior(exported[1])
    z, img = _inputs(8, seed=1)
    a = prior.forward(z, img)
    z_back, log_det = prior.inverse(a, img)
    assert a.dtype == np.float32 and a.shape == (8, 7) and log_det.shape == (8,)
    assert np.abs(z_back - z).max() < 1e-4
    assert np.isfinite(prior.log_prob(a, img)).all()
    s1 = prior.sample(img, np.random.default_rng(3))
    assert np.array_equal(s1, prior.sample(img, np.random.default_rng(3)))
    assert s1.shape == (8, 7) and np.abs(s1).max() < 1.0


def test_missing_and_corrupt_files_are_clear_errors(export_copy, tmp_path):
    """Missing dir/meta/graph, a graph that fails its sha256, a corrupt graph whose hash was
    updated, and unreadable metadata each raise PriorLoadError naming the file."""
    with pytest.raises(PriorLoadError, match="no such"):
        OnnxPrior(tmp_path / "nope")

    broken = tmp_path / "no_forward"
    shutil.copytree(export_copy, broken)
    (broken / FORWARD_FILE).unlink()
    with pytest.raises(PriorLoadError, match=f"{FORWARD_FILE}: missing"):
        OnnxPrior(broken)

    data = bytearray((export_copy / INVERSE_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (export_copy / INVERSE_FILE).write_bytes(bytes(data))
    with pytest.raises(PriorLoadError, match="sha256"):
        OnnxPrior(export_copy)

    (export_copy / INVERSE_FILE).write_bytes(b"garbage, not onnx")
    meta = json.loads((export_copy / META_FILE).read_text())
    meta["files"][INVERSE_FILE]["sha256"] = sha256_file(export_copy / INVERSE_FILE)
    (export_copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(PriorLoadError, match="onnxruntime cannot load"):
        OnnxPrior(export_copy)

    (export_copy / META_FILE).write_text("{truncated")
    with pytest.raises(PriorLoadError, match="corrupt metadata"):
        OnnxPrior(export_copy)
    (export_copy / META_FILE).unlink()
    with pytest.raises(PriorLoadError, match=f"{META_FILE}: missing"):
        OnnxPrior(export_copy)


def test_metadata_mismatch_is_a_clear_error(export_copy):
    """Metadata whose image size disagrees with the graphs, or whose action scaling differs from
    this Parrot's, raises PriorMetadataError."""
    path = export_copy / META_FILE
    original = path.read_text()
    meta = json.loads(original)
    meta["image_size"] = [48, 48]
    path.write_text(json.dumps(meta))
    with pytest.raises(PriorMetadataError, match="image size"):
        OnnxPrior(export_copy)
    meta = json.loads(original)
    meta["action_scaling"]["pos_scale_m"] = 0.2
    path.write_text(json.dumps(meta))
    with pytest.raises(PriorMetadataError, match="action scaling"):
        OnnxPrior(export_copy)


def test_wrong_inputs_are_clear_errors(exported):
    """Float images, a wrong image size, a missing batch axis, wrong z shapes, mismatched batches
    and NaN raise PriorInputError (a ValueError) instead of reaching onnxruntime."""
    prior = OnnxPrior(exported[1])
    z, img = _inputs(2)
    cases = [
        ((z, img.astype(np.float32)), "uint8"),
        ((z, np.zeros((2, 48, 48, 3), np.uint8)), r"\(B, 16, 16, 3\)"),
        ((z[:1], img[0]), "batch axis"),
        ((z[:, :6], img), r"\(B, 7\)"),
        ((z[:1], img), "batch 1 but images have batch 2"),
        ((np.full_like(z, np.nan), img), "NaN"),
    ]
    for (zz, ii), message in cases:
        with pytest.raises(PriorInputError, match=message):
            prior.forward(zz, ii)
    with pytest.raises(PriorInputError):
        prior.inverse(z.astype(str), img)
    assert issubclass(PriorInputError, ValueError) and issubclass(PriorLoadError, PriorError)


def test_onnx_prior_never_imports_torch(exported):
    """Loading and running OnnxPrior (and importing parrot_core) leaves torch out of sys.modules."""
    code = (
        "import sys, numpy as np\n"
        "from parrot_core.onnx_prior import OnnxPrior\n"
        f"p = OnnxPrior({str(exported[1])!r})\n"
        f"a = p.forward(np.zeros((1, 7), np.float32), np.zeros((1, {SIZE}, {SIZE}, 3), np.uint8))\n"
        "p.inverse(a, np.zeros((1, 16, 16, 3), np.uint8))\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cli_reports_a_missing_run_in_one_line(tmp_path, capsys):
    """`parrot export --prior MISSING` exits 1 with one `parrot export: error: ...` line."""
    rc = parrot(["export", "--prior", str(tmp_path / "missing"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("parrot export: error:")


def test_train_prior_fine_tunes_from_an_export_dir(exported, tmp_path):
    """--init-from EXPORT_DIR (what models/ ships: no checkpoint) starts from the exported
    weights: on the same data and split, the fine-tune's step-0 validation NLL is the exported
    run's best."""
    from parrot_core.train_prior import read_metrics

    run, export = exported
    rc = parrot(["train-prior", "--data", str(run.parent / "data"), "--out", str(tmp_path / "ft"),
                 "--init-from", str(export), "--steps", "2", "--eval-every", "2",
                 "--batch-size", "32", "--threads", "1", "--no-progress"])
    assert rc == 0
    best = min(r["val_nll"] for r in read_metrics(run))
    first = read_metrics(tmp_path / "ft")[0]
    assert first["step"] == 0 and abs(first["val_nll"] - best) < 1e-4
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["train"]["init_from"] == str(export.resolve())


@pytest.mark.parametrize("name", ["prior_xarm6_48px", "prior_xarm6_48px_pick_place"])
def test_shipped_prior_loads_and_round_trips(name):
    """The priors shipped in models/ (used by `make demo` and the README's RL commands) pass
    the hash and signature checks, read the arm state, invert their own samples, and rebuild
    on torch from the export alone (what RL on their features loads)."""
    from pathlib import Path

    from parrot_core.export import load_exported_prior
    from parrot_core.onnx_prior import OnnxPrior

    path = Path(__file__).resolve().parent.parent / "models" / name
    prior = OnnxPrior(path)
    assert prior.state_dim == 4
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    z = np.random.default_rng(1).standard_normal((4, 7)).astype(np.float32) * 0.5
    states = np.float32([[0.40, 0.0, 0.20, 0.0], [0.35, 0.05, 0.05, 0.0], [0.45, -0.05, 0.03, 1.0],
                         [0.38, 0.02, 0.12, 1.0]])
    actions = prior.forward(z, images, states)
    assert actions.shape == (4, 7) and np.all(np.abs(actions) < 1)
    z_back, _ = prior.inverse(actions, images, states)
    assert np.allclose(z_back, z, atol=1e-3)
    model = load_exported_prior(path)
    with torch.no_grad():
        again = model(torch.from_numpy(z), torch.from_numpy(images), torch.from_numpy(states))
    assert np.abs(again.numpy() - actions).max() < 1e-4


def test_arm_state_prior_exports_with_a_state_input(tmp_path):
    """A prior conditioned on the arm state exports graphs with a third input `state` (B, 4)
    (both exporters), matches torch to <= 1e-4 on random states, records state_dim in its
    metadata, and refuses a call without states or with states of the wrong shape."""
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(0)
    model = ConditionalRealNVP(PriorConfig(image_size=SIZE, encoder_hidden=(32,), feature_dim=16,
                                           coupling_hidden=(32, 32), state_dim=4))
    with torch.no_grad():
        for layer in model.couplings:
            torch.nn.init.normal_(layer.net[-1].weight, std=0.2)
    model.set_state_normalization([0.4, 0.0, 0.1, 0.5], [0.05, 0.05, 0.05, 0.5])
    for exporter in ("torchscript", "dynamo"):
        out = tmp_path / exporter
        meta = export_prior(model, out, exporter=exporter)
        assert meta["state_dim"] == 4 and meta["state_names"][2] == "tcp_z_m"
        assert max(parity_error(model, out, n=50, seed=2).values()) <= 1e-4
    prior = OnnxPrior(out)
    z, img = _inputs(3)
    states = np.tile(np.float32([0.4, 0.0, 0.1, 0.0]), (3, 1))
    low, high = states.copy(), states.copy()
    high[:, 2] = 0.2
    assert not np.allclose(prior.forward(z, img, low), prior.forward(z, img, high))
    with pytest.raises(PriorInputError, match="conditioned on the arm state"):
        prior.forward(z, img)
    with pytest.raises(PriorInputError, match=r"states must have shape \(B, 4\)"):
        prior.forward(z, img, states[:, :3])
    with pytest.raises(PriorInputError, match="NaN"):
        prior.forward(z, img, np.full((3, 4), np.nan, np.float32))


def test_keypoint_prior_exports_and_matches_torch(tmp_path):
    """A prior with spatial-softmax keypoints (and the arm state) exports with the same graph
    inputs, records the keypoints in its metadata and matches torch to <= 1e-4 with both
    exporters (the keypoint columns set non-zero, so the spatial softmax is exercised)."""
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(0)
    model = ConditionalRealNVP(PriorConfig(image_size=SIZE, encoder_hidden=(32,), feature_dim=16,
                                           coupling_hidden=(32, 32), state_dim=4, keypoints=3))
    with torch.no_grad():
        for layer in model.couplings:
            torch.nn.init.normal_(layer.net[-1].weight, std=0.2)
            layer.net[0].weight[:, 16:22].normal_(std=1.0)  # the keypoint columns
    model.set_state_normalization([0.4, 0.0, 0.1, 0.5], [0.05, 0.05, 0.05, 0.5])
    for exporter in ("torchscript", "dynamo"):
        out = tmp_path / exporter
        meta = export_prior(model, out, exporter=exporter)
        assert meta["prior_config"]["keypoints"] == 3
        assert max(parity_error(model, out, n=50, seed=2).values()) <= 1e-4
