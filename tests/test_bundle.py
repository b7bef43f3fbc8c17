"""`parrot deploy-bundle` / `parrot verify-bundle` (parrot_core.bundle).

Pins: a bundle (prior + policy, or prior alone) holds the ONNX files, metadata, the
parameter YAML pointing at them, a torch-free requirements.txt and a sha256 manifest, and
verifies (hashes, shapes, a test inference equal to the deploy-time reference); a
corrupted, missing or added file is refused with an error naming the file; a policy trained
on another prior is refused at deploy time; verification never imports torch; and the
bundle verifies and infers in a FRESH venv holding only onnxruntime, numpy, opencv, pyyaml
and the rclpy wheels (no torch installed), including a command round trip through rclpy.
Tiny models (8x8 images, random prior, 20-step PARROT run) keep it fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from parrot_cli.main import main as parrot
from parrot_core.bundle import (BundleError, MANIFEST, PARAMS_FILE, REQUIREMENTS, ROS_WHEEL_REQUIREMENTS, deploy_bundle,
                                verify_bundle)

ROOT = Path(__file__).resolve().parent.parent


def _prior(seed: int):
    import torch
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(seed)
    return ConditionalRealNVP(PriorConfig(image_size=8, num_layers=2, coupling_hidden=(16,),
                                          conv_channels=4, encoder_hidden=(32,), feature_dim=8))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(prior export, policy export trained on it, another prior's export)."""
    import torch
    from parrot_core.action_transform import PriorTransform
    from parrot_core.export import export_prior, weights_sha256
    from parrot_core.export_policy import export_policy
    from parrot_core.rl_loop import LoopConfig, make_agent, train
    from rl_toy import ColorSignEnv, tiny_config
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bundle_src")
    prior = _prior(0)
    export_prior(prior, root / "prior", exporter="torchscript")
    export_prior(_prior(1), root / "other_prior", exporter="torchscript")
    agent = make_agent(tiny_config("parrot", learning_starts=10, batch_size=16,
                                   hidden_sizes=(32,)), seed=0)
    train(agent, lambda: ColorSignEnv(), PriorTransform(prior, "test", weights_sha256(prior)),
          root / "run", LoopConfig(total_steps=20, eval_every=20, eval_episodes=1,
                                   progress=False),
          run_meta={"algo": "parrot", "task": "toy", "objects": "heldout", "seed": 0})
    export_policy(root / "run", root / "policy", exporter="torchscript")
    return root / "prior", root / "policy", root / "other_prior"


@pytest.fixture(scope="module")
def bundle(exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle_out") / "bundle"
    assert parrot(["deploy-bundle", "--prior", str(exports[0]), "--policy", str(exports[1]),
                   "--out", str(out)]) == 0
    return out


def test_bundle_contents_and_verify(bundle, exports):
    manifest = json.loads((bundle / MANIFEST).read_text())["files"]
    assert set(manifest) == {"prior/prior_forward.onnx", "prior/prior_inverse.onnx",
                             "prior/prior_meta.json", "policy/policy.onnx",
                             "policy/policy_meta.json", PARAMS_FILE, REQUIREMENTS,
                             ROS_WHEEL_REQUIREMENTS, "bundle.json"}
    pkgs = requirement_names(bundle / REQUIREMENTS)
    assert not any(p.startswith(("torch", "pybullet", "ros-")) for p in pkgs)
    assert not {"tensorboard", "pyarrow", "ray"} & set(pkgs)  # training-side extras stay off
    assert {"onnxruntime", "numpy", "opencv-python-headless", "pyyaml"} <= set(pkgs)
    assert {"ros-rclpy", "ros-rmw-fastrtps-cpp"} <= set(requirement_names(bundle / ROS_WHEEL_REQUIREMENTS))
    params = yaml.safe_load((bundle / PARAMS_FILE).read_text())
    pol = params["policy"]["ros__parameters"]
    assert pol["mode"] == "policy" and pol["prior_dir"] == str(bundle.resolve() / "prior")
    assert pol["policy_dir"] == str(bundle.resolve() / "policy")
    assert "safety" in params["hardware_bridge"]["ros__parameters"]
    # the camera's models' view (when turned on) is made at the prior's size
    assert params["usb_camera"]["ros__parameters"]["model_view_size"] == [8, 8]
    assert pol["image_topic"] == params["hardware_bridge"]["ros__parameters"]["image_topic"]
    s = verify_bundle(bundle, log=lambda *a: None)
    assert s["policy"] == "parrot" and s["image_size"] == [8, 8]
    assert np.all(np.abs(s["test_action"]) <= 1)
    assert s["install_mb"]["packages"]["onnxruntime"] > 1 and s["install_mb"]["total"] > 10


def requirement_names(path) -> list[str]:
    lines = [ln.split("#")[0].strip().lower() for ln in path.read_text().splitlines()]
    return [ln.split("==")[0] for ln in lines if ln]


@pytest.mark.parametrize("platform", ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"])
def test_the_bundle_requirements_resolve_to_binary_wheels_on_both_architectures(bundle, tmp_path,
                                                                                platform):
    """pip resolves requirements.txt (with dependencies) for CPython 3.11 on that platform
    from binary wheels only, without installing: robot compute on an ARM board needs no
    compiler and no pybullet."""
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                        "--disable-pip-version-check", "--only-binary=:all:", "--platform", platform,
                        "--python-version", "3.11", "--implementation", "cp",
                        "--target", str(tmp_path / "t"), "--report", str(report),
                        "-r", str(bundle / REQUIREMENTS)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    names = {i["metadata"]["name"].lower() for i in installs}
    assert {"onnxruntime", "numpy", "opencv-python-headless", "pyyaml"} <= names
    wheels = [i["download_info"]["url"].rsplit("/", 1)[-1] for i in installs]
    assert all(w.endswith(".whl") for w in wheels), wheels
    arch = "x86_64" if platform.endswith("x86_64") else "aarch64"
    native = [w for w in wheels if not w.endswith("-none-any.whl")]
    assert native and all(arch in w for w in native), wheels


def test_prior_only_bundle_verifies_and_explores(exports, tmp_path, capsys):
    out = tmp_path / "b"
    assert parrot(["deploy-bundle", "--prior", str(exports[0]), "--out", str(out),
                   "--install-dir", "/opt/parrot/bundle"]) == 0
    pol = yaml.safe_load((out / PARAMS_FILE).read_text())["policy"]["ros__parameters"]
    assert pol["mode"] == "prior" and pol["policy_dir"] == ""
    assert pol["prior_dir"] == "/opt/parrot/bundle/prior"
    assert parrot(["verify-bundle", str(out)]) == 0
    assert "OK" in capsys.readouterr().out


def test_policy_of_another_prior_is_refused(exports, tmp_path):
    with pytest.raises(BundleError, match="policy: .*trained on prior weights"):
        deploy_bundle(exports[2], tmp_path / "b", policy_dir=exports[1])
    assert not (tmp_path / "b").exists()


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, named", [
    (lambda b: _flip_byte(b / "policy" / "policy.onnx"), "policy/policy.onnx"),
    (lambda b: (b / "prior" / "prior_meta.json").unlink(), "prior/prior_meta.json"),
    (lambda b: (b / "prior" / "prior_forward.onnx").write_bytes(b"x"), "prior/prior_forward.onnx"),
    (lambda b: (b / "config" / "extra.yaml").write_text("a: 1\n"), "config/extra.yaml"),
    (lambda b: (b / MANIFEST).write_text("{not json"), MANIFEST),
])
def test_damaged_bundle_is_refused_naming_the_file(bundle, tmp_path, capsys, damage, named):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    damage(b)
    assert parrot(["verify-bundle", str(b)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("parrot verify-bundle: error: ") and named in err, err


def test_verification_never_imports_torch(bundle):
    code = ("import sys; from parrot_cli.main import main; rc = main(['verify-bundle', sys.argv[1]]);"
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'; print('NO_TORCH')")
    r = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "NO_TORCH" in r.stdout, r.stderr


@pytest.mark.slow
@pytest.mark.ros
def test_bundle_runs_in_a_fresh_venv_without_torch(bundle, tmp_path):
    """~40 s: venv + pip install (local index/cache) of the bundle's two requirement files,
    then verify-bundle --ros and the bridge's FK there; a corrupted copy is refused there too."""
    venv = tmp_path / "venv"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    reqs = [ln.split("#")[0].strip() for name in (REQUIREMENTS, ROS_WHEEL_REQUIREMENTS)
            for ln in (bundle / name).read_text().splitlines()]
    reqs = [r for r in reqs if r]
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *reqs], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    install_s = time.monotonic() - t0
    # the Parrot code as `pip install parrot-robot` lays it out (parrot_bringup at top level)
    code = os.pathsep.join([str(ROOT), str(ROOT / "ros2_ws" / "src" / "parrot_bringup")])
    env = dict(os.environ, PYTHONPATH=code, AMENT_PREFIX_PATH=str(venv),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=str(1 + (os.getpid() * 13) % 200))
    env.pop("VIRTUAL_ENV", None)
    r = subprocess.run([str(py), "-c", "import torch"], capture_output=True, env=env)
    assert r.returncode != 0, "torch is importable in the fresh venv"
    r = subprocess.run([str(py), "-m", "parrot_cli.main", "verify-bundle", str(bundle), "--ros"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ros: the test command went through rclpy/DDS" in r.stdout
    assert f"parrot verify-bundle: {bundle}: OK" in r.stdout
    # the bridge's kinematics there: the shipped URDF, numpy only (no pybullet installed)
    r = subprocess.run([str(py), "-c", "from parrot_bringup.arm_kinematics import ArmKinematics; "
                        "print(ArmKinematics().fk([0, -0.5, -0.8, 0, 1.3, 0])[0])"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "[" in r.stdout, r.stderr
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    _flip_byte(bad / "prior" / "prior_inverse.onnx")
    r = subprocess.run([str(py), "-m", "parrot_cli.main", "verify-bundle", str(bad)],
                       capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "prior/prior_inverse.onnx" in r.stderr, r.stderr
    print(f"fresh venv: create + pip install {install_s:.1f} s")


def test_arm_state_prior_bundle_verifies_and_needs_the_bridges_arm_state(tmp_path):
    """A bundle of a prior conditioned on the arm state records state_dim, verifies (its test
    inference feeds seeded arm states), and is refused when the parameter file switches off
    the bridge's arm-state topic that the prior would read."""
    import torch
    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(0)
    prior = ConditionalRealNVP(PriorConfig(image_size=8, num_layers=2, coupling_hidden=(16,),
                                           conv_channels=4, encoder_hidden=(32,), feature_dim=8,
                                           state_dim=4))
    export_prior(prior, tmp_path / "prior", exporter="torchscript")
    meta = deploy_bundle(tmp_path / "prior", tmp_path / "b")
    assert meta["prior"]["state_dim"] == 4
    assert verify_bundle(tmp_path / "b", log=lambda *a: None)["image_size"] == [8, 8]
    params = tmp_path / "hw.yaml"
    params.write_text(yaml.safe_dump({"hardware_bridge": {"ros__parameters": {"arm_state_topic": ""}}}))
    with pytest.raises(BundleError, match="arm_state_topic is empty"):
        deploy_bundle(tmp_path / "prior", tmp_path / "c", params_file=params)


def test_student_bundle_verifies_and_keeps_the_student_warm(tmp_path):
    """A distilled student (outputs action, observes the arm state) bundles beside its
    teacher's prior, verifies, and its policy node parameters switch keep-warm on."""
    import torch
    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    from parrot_core.keep_warm import STUDENT_HZ
    from parrot_core.student import StudentConfig, StudentPolicy, export_student
    torch.manual_seed(0)
    prior = ConditionalRealNVP(PriorConfig(image_size=8, num_layers=2, coupling_hidden=(16,),
                                           conv_channels=4, encoder_hidden=(32,), feature_dim=8,
                                           state_dim=4))
    export_prior(prior, tmp_path / "prior", exporter="torchscript")
    export_student(StudentPolicy(StudentConfig(image_size=8, channels=(4, 4, 4), hidden=8)),
                   tmp_path / "student", {"algo": "parrot"}, {})
    meta = deploy_bundle(tmp_path / "prior", tmp_path / "b", policy_dir=tmp_path / "student")
    assert meta["policy"]["algo"] == "student" and meta["policy"]["outputs"] == "action"
    assert verify_bundle(tmp_path / "b", log=lambda *a: None)["image_size"] == [8, 8]
    params = yaml.safe_load((tmp_path / "b" / PARAMS_FILE).read_text())["policy"]["ros__parameters"]
    assert params["mode"] == "policy" and params["keep_warm_hz"] == STUDENT_HZ
