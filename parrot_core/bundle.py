"""The robot-compute deploy bundle: `parrot deploy-bundle` writes it, `parrot verify-bundle` checks it.

    parrot deploy-bundle --prior EXPORT [--policy EXPORT] --out bundle/ [--install-dir /opt/parrot/bundle]
    parrot verify-bundle bundle/ [--ros]

A bundle is everything the robot's computer needs besides the Parrot code and its wheels::

    prior/prior_forward.onnx, prior/prior_inverse.onnx, prior/prior_meta.json
    policy/policy.onnx, policy/policy_meta.json      (optional: a prior-only bundle explores)
    config/hardware.yaml   parameters of usb_camera, policy, hardware_bridge (+ its safety.*)
                           with prior_dir/policy_dir pointing at --install-dir
    requirements.txt       pinned wheels for robot compute, no torch and no pybullet: binary
                           wheels on x86_64 and aarch64 (tests/test_bundle.py resolves both)
    requirements-ros-wheels.txt   the ROS 2 pip wheels (x86_64 only); skip it where ROS 2
                           comes from a sourced system install (e.g. a Jetson's apt packages)
    bundle.json            what is in it: image size, action scaling, policy outputs, versions,
                           and reference outputs of a seeded test inference
    manifest.json          sha256 and size of every file above

verify-bundle refuses (BundleError naming the file) a missing, extra or modified file, an
ONNX graph whose inputs/outputs disagree with its metadata, a policy that was not trained on
the bundled prior, and a test inference that is not finite or differs from the reference
outputs recorded at deploy time. The `verify-bundle` command (with its `--ros` round trip of
the test command through rclpy) is parrot_bringup.verify_bundle: no ROS in parrot_core.

This module never imports torch (tests check sys.modules): onnxruntime, numpy, yaml only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from parrot_core.arm_state import random_states
from parrot_core.files import read_format_json, sha256_file

BUNDLE_FORMAT = "parrot-deploy-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
BUNDLE_META = "bundle.json"
PARAMS_FILE = "config/hardware.yaml"
REQUIREMENTS = "requirements.txt"
ROS_WHEEL_REQUIREMENTS = "requirements-ros-wheels.txt"
PRIOR_SUBDIR = "prior"
POLICY_SUBDIR = "policy"
TEST_SEED = 1234
TEST_BATCH = 4
REFERENCE_ATOL = 1e-4

# What robot compute installs (no torch, no pybullet: the bridge's FK/IK is numpy), pinned to
# this environment's versions. Every one has binary wheels for x86_64 and aarch64.
ROBOT_REQUIREMENTS = [
    ("onnxruntime", "inference of the prior/policy"),
    ("numpy", "and the bridge's FK/IK (parrot_bringup/arm_kinematics.py)"),
    ("opencv-python-headless", "camera capture and resizing"),
    ("pyyaml", "parameter files"),
]
# The ROS 2 client and messages as pip wheels (x86_64 only); a system ROS 2 provides them.
ROS_WHEELS = [
    ("ros-rclpy", "ROS 2 client library (pip wheels, Fast DDS)"),
    ("ros-rmw-fastrtps-cpp", ""),
    ("ros-sensor-msgs", ""),
    ("ros-geometry-msgs", ""),
    ("ros-std-msgs", ""),
    ("ros-std-srvs", ""),
    ("ros-diagnostic-msgs", ""),
    ("ros-trajectory-msgs", ""),
]


class BundleError(RuntimeError):
    """A bundle that cannot be written or does not verify; the message names the file."""


def _default_params_file() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here / "ros2_ws" / "src" / "parrot_bringup" / "config" / "hardware.yaml"


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _pinned(requirements) -> list[str]:
    lines = []
    for dist, why in requirements:
        v = _version(dist)
        req = f"{dist}=={v}" if v else dist
        lines.append(f"{req:<40}# {why}" if why else req)
    return lines


def requirements_text() -> str:
    return "\n".join([
        "# Robot compute for a Parrot deploy bundle: inference (onnxruntime), images, parameters,",
        "# the bridge's FK/IK (numpy). No torch, no pybullet; binary wheels for x86_64 and aarch64.",
        f"# ROS 2: {ROS_WHEEL_REQUIREMENTS} (pip wheels, x86_64) or a sourced system install.",
        "# Then the Parrot code itself without dependencies: pip install --no-deps <parrot wheel>",
        *_pinned(ROBOT_REQUIREMENTS)]) + "\n"


def ros_wheel_requirements_text() -> str:
    return "\n".join([
        "# ROS 2 as pip wheels (x86_64 Linux only). Skip this file where ROS 2 comes from a sourced",
        "# system install (source /opt/ros/<distro>/setup.bash before running the nodes).",
        "# With the wheels, AMENT_PREFIX_PATH=<venv> at run time.",
        *_pinned(ROS_WHEELS)]) + "\n"


def installed_size_mb(requirements=ROBOT_REQUIREMENTS + ROS_WHEELS) -> dict:
    """MB on disk of each requirement installed in this environment (its RECORD), and the
    total: what the bundle's requirements cost robot compute, dependencies not counted."""
    sizes = {}
    for dist, _ in requirements:
        try:
            files = importlib_metadata.distribution(dist).files or []
        except importlib_metadata.PackageNotFoundError:
            continue
        sizes[dist] = round(sum((f.size or 0) for f in files) / 1e6, 1)
    return {"packages": sizes, "total": round(sum(sizes.values()), 1)}


def _load_models(prior_dir, policy_dir, threads: int = 1):
    from parrot_core.onnx_prior import OnnxPrior, PriorError
    try:
        prior = OnnxPrior(prior_dir, threads=threads)
    except PriorError as e:
        raise BundleError(f"prior: {e}") from e
    policy = None
    if policy_dir is not None:
        from parrot_core.onnx_policy import OnnxPolicy, PolicyError
        try:
            policy = OnnxPolicy(policy_dir, threads=threads)
            policy.check_prior(prior)
        except PolicyError as e:
            raise BundleError(f"policy: {e}") from e
        if tuple(policy.image_size) != tuple(prior.image_size):
            raise BundleError(f"policy: takes {list(policy.image_size)} images but the prior takes "
                              f"{list(prior.image_size)}: export both from the same setup")
    return prior, policy


def test_inputs(image_size, seed: int = TEST_SEED, batch: int = TEST_BATCH):
    """Seeded (images, z, arm states); the states lie in the twin's workspace."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, *image_size, 3), dtype=np.uint8)
    z = rng.standard_normal((batch, 7)).astype(np.float32)
    return images, z, random_states(rng, batch)


def run_test_inference(prior, policy) -> dict:
    """Seeded inputs -> the outputs every bundle records and verify-bundle reproduces."""
    images, z, states = test_inputs(prior.image_size)
    out = {"prior_forward": prior.forward(z, images, states)}
    if policy is not None:
        out["policy_output"] = policy(images, states)
        out["policy_action"] = policy.act(images, prior, states)
    return out


# ---- deploy ------------------------------------------------------------------------------

def deploy_bundle(prior_dir, out_dir, policy_dir=None, params_file=None, install_dir=None,
                  force: bool = False) -> dict:
    """Write the bundle; returns its bundle.json content."""
    import yaml
    prior_dir = Path(prior_dir)
    policy_dir = Path(policy_dir) if policy_dir else None
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise BundleError(f"{out}: exists and is not empty (use --force to replace it)")
    prior, policy = _load_models(prior_dir, policy_dir)
    from parrot_core.onnx_policy import META_FILE as POLICY_META, POLICY_FILE
    from parrot_core.onnx_prior import FORWARD_FILE, INVERSE_FILE, META_FILE as PRIOR_META
    from parrot_core.action_space import scaling_metadata
    from parrot_core import __version__
    import onnxruntime

    install = Path(install_dir) if install_dir else out.resolve()
    if not install.is_absolute():
        raise BundleError(f"--install-dir {install}: must be an absolute path on robot compute")
    base = Path(params_file) if params_file else _default_params_file()
    params = _bundle_params_dict(base, install, policy is not None)
    if policy is not None and policy.algo == "student":  # small enough to keep warm (benchmarks)
        from parrot_core.keep_warm import STUDENT_HZ
        params["policy"]["ros__parameters"]["keep_warm_hz"] = STUDENT_HZ
    # usb_camera's models' view (model_view_topic), when it is on, is the models' input size
    params["usb_camera"]["ros__parameters"]["model_view_size"] = [int(v) for v in prior.image_size]
    bridge = params["hardware_bridge"]["ros__parameters"]
    needs_state = prior.state_dim or (policy is not None and policy.state_dim)
    if needs_state and bridge.get("arm_state_topic", "parrot/arm/state") == "":
        raise BundleError(f"{base}: hardware_bridge.arm_state_topic is empty, but the prior is "
                          f"conditioned on the arm state the bridge publishes there")
    ref = run_test_inference(prior, policy)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / PRIOR_SUBDIR).mkdir()
        for name in (FORWARD_FILE, INVERSE_FILE, PRIOR_META):
            shutil.copy2(prior_dir / name, tmp / PRIOR_SUBDIR / name)
        if policy is not None:
            (tmp / POLICY_SUBDIR).mkdir()
            for name in (POLICY_FILE, POLICY_META):
                shutil.copy2(policy_dir / name, tmp / POLICY_SUBDIR / name)
        (tmp / "config").mkdir()
        (tmp / PARAMS_FILE).write_text(
            "# Parrot hardware stack parameters, written by `parrot deploy-bundle`.\n"
            "# parrot launch hardware params_file:=<bundle>/config/hardware.yaml\n"
            + yaml.safe_dump(params, sort_keys=False))
        (tmp / REQUIREMENTS).write_text(requirements_text())
        (tmp / ROS_WHEEL_REQUIREMENTS).write_text(ros_wheel_requirements_text())
        meta = {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "parrot": __version__, "onnxruntime": onnxruntime.__version__,
            "image_size": list(prior.image_size),
            "action_scaling": scaling_metadata(),
            "install_dir": str(install),
            "prior": {"dir": PRIOR_SUBDIR, "weights_sha256": prior.meta.get("weights_sha256"),
                      "state_dim": prior.state_dim, "source": prior.meta.get("source", {})},
            "policy": None if policy is None else {
                "dir": POLICY_SUBDIR, "algo": policy.algo, "outputs": policy.outputs,
                "weights_sha256": policy.meta.get("weights_sha256"),
                "prior_weights_sha256": (policy.meta.get("prior") or {}).get("weights_sha256")},
            "test_inference": {"seed": TEST_SEED, "batch": TEST_BATCH, "atol": REFERENCE_ATOL,
                               "outputs": {k: np.asarray(v).tolist() for k, v in ref.items()}},
        }
        (tmp / BUNDLE_META).write_text(json.dumps(meta, indent=2))
        files = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        (tmp / MANIFEST).write_text(json.dumps(
            {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "files": files}, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _bundle_params_dict(base: Path, install: Path, has_policy: bool) -> dict:
    """The base parameter YAML with the bundle's model paths and a complete bridge section."""
    import yaml
    try:
        params = yaml.safe_load(base.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise BundleError(f"{base}: cannot read the parameter YAML ({e})") from e
    if not isinstance(params, dict):
        raise BundleError(f"{base}: not a ROS 2 parameter file (node: ros__parameters: ...)")
    pol = params.setdefault("policy", {}).setdefault("ros__parameters", {})
    pol["prior_dir"] = str(install / PRIOR_SUBDIR)
    pol["policy_dir"] = str(install / POLICY_SUBDIR) if has_policy else ""
    # A prior-only bundle explores through the prior (random z); with a policy it acts.
    pol["mode"] = "policy" if has_policy else "prior"
    params.setdefault("hardware_bridge", {}).setdefault("ros__parameters", {})
    params.setdefault("usb_camera", {}).setdefault("ros__parameters", {})
    return params


# ---- verify ------------------------------------------------------------------------------

def _read_json(path: Path, what: str) -> dict:
    return read_format_json(path, BUNDLE_FORMAT, BUNDLE_VERSION, load_error=BundleError,
                            what=what, missing_hint=what)


def check_hashes(root: Path) -> dict:
    """Every manifest file present with its sha256, and no file outside the manifest."""
    manifest = _read_json(root / MANIFEST, "manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{root / MANIFEST}: lists no files")
    for rel, entry in files.items():
        path = root / rel
        if not path.is_file():
            raise BundleError(f"{path}: missing (listed in {MANIFEST})")
        if path.stat().st_size != entry.get("bytes"):
            raise BundleError(f"{path}: {path.stat().st_size} bytes, manifest says "
                              f"{entry.get('bytes')}: corrupted or modified")
        got = sha256_file(path)
        if got != entry.get("sha256"):
            raise BundleError(f"{path}: sha256 {got[:12]}... does not match the manifest "
                              f"({str(entry.get('sha256'))[:12]}...): corrupted or modified")
    extra = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.name != MANIFEST
                   and p.relative_to(root).as_posix() not in files
                   and "__pycache__" not in p.parts)
    if extra:
        raise BundleError(f"{root / extra[0]}: not in the manifest (files added to the bundle: "
                          f"{extra})")
    return files


def verify_bundle(root, threads: int = 1, log=print) -> dict:
    """Check a bundle; returns a summary. Raises BundleError naming the offending file."""
    root = Path(root)
    torch_before = "torch" in sys.modules  # e.g. verifying from a training process
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory")
    files = check_hashes(root)
    log(f"hashes: {len(files)} files match {MANIFEST}")
    meta = _read_json(root / BUNDLE_META, "bundle metadata")
    from parrot_core.action_space import scaling_metadata
    if meta.get("action_scaling") != scaling_metadata():
        raise BundleError(f"{root / BUNDLE_META}: action scaling {meta.get('action_scaling')} "
                          f"differs from this Parrot's {scaling_metadata()}")
    policy_dir = root / POLICY_SUBDIR if meta.get("policy") else None
    prior, policy = _load_models(root / PRIOR_SUBDIR, policy_dir, threads)
    if list(prior.image_size) != list(meta.get("image_size", [])):
        raise BundleError(f"{root / PRIOR_SUBDIR / 'prior_meta.json'}: image size "
                          f"{list(prior.image_size)}, {BUNDLE_META} says {meta.get('image_size')}")
    if policy is not None and policy.outputs != meta["policy"].get("outputs"):
        raise BundleError(f"{root / POLICY_SUBDIR / 'policy_meta.json'}: outputs "
                          f"{policy.outputs!r}, {BUNDLE_META} says {meta['policy'].get('outputs')!r}")
    log(f"shapes: prior image {prior.image_size[0]}x{prior.image_size[1]} uint8 -> action (B, 7)"
        + (f"; policy ({policy.algo}) -> {policy.outputs} (B, 7)" if policy else "; no policy"))
    got = run_test_inference(prior, policy)
    ref = meta.get("test_inference", {}).get("outputs", {})
    for name, value in got.items():
        value = np.asarray(value)
        where = root / (POLICY_SUBDIR if name.startswith("policy") else PRIOR_SUBDIR)
        if value.shape != (TEST_BATCH, 7) or not np.all(np.isfinite(value)):
            raise BundleError(f"{where}: test inference {name} gave shape {value.shape} or "
                              f"non-finite values")
        if name.endswith("action") or name == "prior_forward":
            if np.any(np.abs(value) > 1.0 + 1e-6):
                raise BundleError(f"{where}: test inference {name} outside [-1, 1]")
        if name in ref:
            err = float(np.max(np.abs(value - np.asarray(ref[name], np.float32))))
            if err > REFERENCE_ATOL:
                raise BundleError(f"{where}: test inference {name} differs from the deploy-time "
                                  f"reference by {err:.2e} (> {REFERENCE_ATOL})")
    images, _, states = test_inputs(prior.image_size, batch=1)
    step = (lambda: policy.act(images, prior, states)) if policy is not None else \
        (lambda: prior.sample(images, np.random.default_rng(0), states))
    for _ in range(5):
        step()
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        action = step()
        times.append((time.perf_counter() - t0) * 1e3)
    summary = {"files": len(files), "image_size": list(prior.image_size),
               "policy": None if policy is None else policy.algo,
               "inference_ms_median": statistics.median(times),
               "test_action": np.asarray(action).reshape(-1, 7)[0].tolist(),
               "torch_imported": "torch" in sys.modules and not torch_before,
               "install_mb": installed_size_mb()}
    log(f"inference: matches the deploy-time reference (atol {REFERENCE_ATOL}); batch-1 "
        f"{'policy + prior' if policy else 'prior sample'} median "
        f"{summary['inference_ms_median']:.2f} ms ({threads} thread)")
    sizes = summary["install_mb"]
    log(f"install: {sizes['total']:.0f} MB for the requirements installed here ("
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sizes["packages"].items(), key=lambda kv: -kv[1])
                    if v >= 1) + "; their dependencies not counted)")
    if summary["torch_imported"]:
        raise BundleError("torch was imported during verification: the runtime path must not "
                          "need it")
    install = meta.get("install_dir")
    if install and Path(install).resolve() != root.resolve():
        log(f"note: {PARAMS_FILE} points the policy at {install}; the bundle is at "
            f"{root.resolve()} (fine if it will be installed there)")
    return summary


# ---- the CLI -----------------------------------------------------------------------------

def add_deploy_bundle_arguments(parser) -> None:
    parser.add_argument("--prior", required=True, help="prior export dir (parrot export)")
    parser.add_argument("--policy", default=None,
                        help="policy export dir (parrot export-policy); omit for a prior-only bundle")
    parser.add_argument("--out", required=True, help="bundle directory to write")
    parser.add_argument("--params", default=None,
                        help="base parameter YAML (default: parrot_bringup config/hardware.yaml)")
    parser.add_argument("--install-dir", default=None,
                        help="absolute path the bundle will have on robot compute (used in the "
                             "parameter YAML; default: --out)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def deploy_bundle_main(args) -> int:
    meta = deploy_bundle(args.prior, args.out, args.policy, args.params, args.install_dir,
                         args.force)
    files = json.loads((Path(args.out) / MANIFEST).read_text())["files"]
    size = sum(f["bytes"] for f in files.values())
    what = f"prior + {meta['policy']['algo']} policy" if meta["policy"] else "prior only"
    print(f"parrot deploy-bundle: {args.out}: {what}, image {meta['image_size'][0]}x"
          f"{meta['image_size'][1]}, {len(files)} files, {size / 1e6:.2f} MB; check it on the "
          f"robot with: parrot verify-bundle {args.out}")
    return 0
