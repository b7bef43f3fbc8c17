"""Deploy-bundle latency: policy inference (onnxruntime, 1 thread) at a real 30 Hz, and
end-to-end camera -> policy -> hardware_bridge latency across processes.

1. inference: in a subprocess that blocks torch, the bundle's policy + prior (PARROT: z from
   the policy, a = prior(z; image)) run batch-1 on a fresh image every 1/30 s (sleeping to
   the next tick like a control loop, so caches and the CPU cool down between calls as they
   do on the robot). Reported: model only, and model + OpenCV resize of a 640x480 frame.
2. end to end: `usb_camera` (an MJPG file of the twin camera's own 640x480 frames at 30 Hz)
   -> `policy` (the bundle's YAML) -> `hardware_bridge` (servo output, safety filter,
   activated) -> a fake arm in this process that publishes joint_states. Latency = the bridge's
   publish time of the arm command - the camera's grab stamp (the bridge reports median/p99
   in /diagnostics), plus the camera -> policy-command part measured here, and the share of
   frames that became a command. Two routes in one run: the models' view published by the
   camera (`model_view_topic`) and the full frames to the policy node (hardware.yaml's
   default). Per-step limits are widened so a random policy is not stopped by them (stops
   would not be commands).

    python benchmarks/bundle_latency.py                  # random-init 48x48 prior + policy
    python benchmarks/bundle_latency.py --student        # ... a distilled student instead
    python benchmarks/bundle_latency.py --bundle DIR     # an existing deploy bundle

Writes benchmarks/results/bundle_latency.json (bundle_latency_student.json with --student).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pacing import Pacer  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bundle_latency.json"
RATE_HZ = 30.0


def make_bundle(out: Path, student: bool = False) -> Path:
    """A bundle as deployed: a random-init paper-size prior conditioned on the arm state and a
    PARROT policy on its features, fused with it into one graph (export-policy --fuse-prior),
    or (``student``) a random-init distilled student beside that prior."""
    from fused_policy_latency import make_exports, make_student

    from parrot_core.bundle import deploy_bundle
    prior_dir, fused_dir, _ = make_exports(out / "exports")
    policy_dir = make_student(out / "student")[0] if student else fused_dir
    deploy_bundle(prior_dir, out / "bundle", policy_dir=policy_dir)
    return out / "bundle"


def measure_inference(bundle: Path, seconds: float) -> dict:
    """Runs in a subprocess with torch blocked."""
    sys.modules["torch"] = None  # any torch import on this path fails loudly
    import cv2

    import yaml

    from parrot_bringup.policy_models import Models
    params = yaml.safe_load((bundle / "config" / "hardware.yaml").read_text())
    node = params["policy"]["ros__parameters"]
    keep_warm_hz = float(node.get("keep_warm_hz", 0.0))
    # the policy node's own models object, with the bundle's mode and keep-warm
    models = Models(node["mode"], str(bundle / "prior"),
                    str(bundle / "policy") if node["mode"] == "policy" else "", seed=0,
                    threads=1, keep_warm_hz=keep_warm_hz)
    policy = models.policy
    h, w = models.image_size
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 480, 640, 3), dtype=np.uint8)
    state = np.float32([0.40, 0.0, 0.20, 0.0])  # read by models that observe the arm state

    def act(img):
        return models(img, state)

    for i in range(10):
        act(cv2.resize(frames[i % 8], (w, h), interpolation=cv2.INTER_AREA))
    model_ms, total_ms = [], []
    pacer = Pacer(int(seconds * RATE_HZ), RATE_HZ)
    for i in pacer:
        t0 = time.perf_counter()
        img = cv2.resize(frames[i % 8], (w, h), interpolation=cv2.INTER_AREA)
        t1 = time.perf_counter()
        act(img)
        t2 = time.perf_counter()
        model_ms.append((t2 - t1) * 1e3)
        total_ms.append((t2 - t0) * 1e3)
    models.close()
    kind = ("prior sample" if policy is None else "distilled student" if policy.algo == "student"
            else "policy (fused with its prior)" if policy.outputs == "action"
            else "policy + prior (PARROT)")
    return {"rate_hz": RATE_HZ, "steps": pacer.n, "late_ticks": pacer.late, "image_size": [h, w],
            "model": kind, "keep_warm_hz": keep_warm_hz,
            "model_ms": _stats(model_ms), "resize_640x480_plus_model_ms": _stats(total_ms),
            "torch_imported": False}


def _stats(xs) -> dict:
    xs = np.asarray(xs)
    return {"median": round(float(np.median(xs)), 3), "p99": round(float(np.percentile(xs, 99)), 3),
            "max": round(float(xs.max()), 3), "n": int(xs.size)}


def twin_camera_video(path: Path, frames: int = 60) -> Path:
    """An MJPG file of the twin camera's full 640x480 frames over scripted grasps: what a real
    camera shows (a noise video would make the MJPG decode several times slower)."""
    import cv2

    from sim.env import EnvConfig, ParrotEnv
    from sim.scripted import ScriptedPolicy, policy_rng
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), RATE_HZ, (640, 480))
    with ParrotEnv(EnvConfig(task="grasp", terminate_on_success=False)) as env:
        for seed in range(frames // 20):
            _, info = env.reset(seed=seed)
            policy = ScriptedPolicy("grasp", policy_rng(seed))
            for _ in range(20):
                wr.write(cv2.cvtColor(env.render_camera_frame(), cv2.COLOR_RGB2BGR))
                _, _, _, _, info = env.step(policy.act(info))
    wr.release()
    return path


ROUTES = {  # the policy's (and the bridge's) image topic
    "model_view": "camera/model_view",  # usb_camera crops + resizes; 7 KB crosses
    "full_frames": "camera/image_raw",  # 921 KB frames cross; the policy node resizes (default)
}


def measure_end_to_end(bundle: Path, seconds: float, tmp: Path, video: Path, route: str) -> dict:
    import yaml
    sys.path.insert(0, str(ROOT / "tests"))
    from hardware_fakes import FakeArm, domain_for, ros_env, stop_process
    from parrot_bringup.recorder import header_stamp_ns

    from parrot_bringup import interfaces as itf
    params = yaml.safe_load((bundle / "config" / "hardware.yaml").read_text())
    params["usb_camera"]["ros__parameters"].update(
        device=str(video), rate_hz=RATE_HZ, loop=True,
        model_view_topic=ROUTES["model_view"] if route == "model_view" else "")
    params["policy"]["ros__parameters"].update(control_rate_hz=RATE_HZ, image_topic=ROUTES[route])
    br = params["hardware_bridge"]["ros__parameters"]
    br.update(autostart="activate", control_rate_hz=RATE_HZ, diagnostics_period_s=0.5,
              image_topic=ROUTES[route])
    br["safety"].update(max_translation_m=0.06, max_rotation_rad=0.3)
    pfile = tmp / "bench.yaml"
    pfile.write_text(yaml.safe_dump(params))
    domain = domain_for(f"bundle_latency_bench:{route}")
    env = ros_env(domain)
    procs = [subprocess.Popen([sys.executable, "-m", f"parrot_bringup.{n}", "--ros-args", "-r",
                               f"__node:={n}", "--params-file", str(pfile)], env=env, cwd=ROOT,
                              stdout=open(tmp / f"{n}.log", "wb"), stderr=subprocess.STDOUT)
             for n in ("hardware_bridge", "policy", "usb_camera")]
    # joint states at xarm_ros2's controller_manager update_rate (150 Hz): a state-conditioned
    # policy answers an image once the bridge has an arm state stamped at or after it
    arm = FakeArm(domain, control_rate_hz=RATE_HZ, joint_states_hz=150.0)
    arm.publish_images = False  # the usb_camera node is the camera
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image
    cmd_lat, cmd_stamps, frame_stamps = [], set(), []

    def on_command(m):
        stamp = itf.stamp_to_ns(m.header.stamp)
        cmd_lat.append((arm.now_ns() - stamp) / 1e6)
        cmd_stamps.add(stamp)
    arm.node.create_subscription(TwistStamped, itf.TOPIC_TWIST, on_command, itf.command_qos())
    # every frame's stamp (raw: never deserialized here), to count the frames answered
    arm.node.create_subscription(Image, itf.TOPIC_IMAGE,
                                 lambda b: frame_stamps.append(header_stamp_ns(b)),
                                 itf.image_qos("sensor"), raw=True)
    try:
        start = time.monotonic()
        while time.monotonic() - start < 30 and not arm.snapshot(arm.twists):
            time.sleep(0.1)
        if not arm.snapshot(arm.twists):
            logs = {n: (tmp / f"{n}.log").read_text()[-1500:] for n in
                    ("hardware_bridge", "policy", "usb_camera")}
            raise RuntimeError(f"no arm command within 30 s: {logs}")
        arm.clear()
        cmd_lat.clear()
        first_frame = len(frame_stamps)
        time.sleep(seconds)
        last_frame = len(frame_stamps)
        time.sleep(0.5)  # the last frames' commands in flight (a benchmark, not a test)
        twists = arm.snapshot(arm.twists)
        diags = arm.snapshot(arm.diags)
        counted = frame_stamps[first_frame:last_frame]
        answered = sum(f in cmd_stamps for f in counted)
    finally:
        arm.close()
        for p in procs:
            stop_process(p)
    last = {kv.key: kv.value for kv in diags[-1][1].status[0].values}
    return {
        "route": route, "policy_image_topic": ROUTES[route],
        "frames": len(counted), "frames_answered": answered,
        "frames_answered_share": round(answered / max(len(counted), 1), 4),
        "seconds": seconds, "arm_commands": len(twists),
        "arm_command_rate_hz": round(len(twists) / seconds, 2),
        "camera_to_policy_command_ms": _stats(cmd_lat),
        "camera_to_bridge_output_ms": {
            "median": float(last.get("latency_ms.median", "nan")),
            "p99": float(last.get("latency_ms.p99", "nan")),
            "n": int(last.get("latency_ms.n", 0)), "includes_warmup": True},
        "bridge_stops": {k[len("stops."):]: int(v) for k, v in last.items()
                         if k.startswith("stops.")},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--student", action="store_true",
                    help="without --bundle: deploy a distilled student instead of the fused graph")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--_inference", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._inference:
        print(json.dumps(measure_inference(Path(args._inference), args.seconds)))
        return 0
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bundle = Path(args.bundle) if args.bundle else make_bundle(tmp, args.student)
        r = subprocess.run([sys.executable, __file__, "--_inference", str(bundle),
                            "--seconds", str(args.seconds)], capture_output=True, text=True,
                           check=True, cwd=ROOT)
        inference = json.loads(r.stdout.strip().splitlines()[-1])
        video = twin_camera_video(tmp / "camera.avi")
        e2e = {route: measure_end_to_end(bundle, args.seconds, tmp, video, route)
               for route in ROUTES}
    result = {
        "benchmark": "bundle_latency",
        "bundle": args.bundle or ("random-init paper-size prior (48x48, arm state) + " + (
            "random-init distilled student (keep-warm as deploy-bundle sets it)" if args.student
            else "untrained PARROT policy on its features, fused (one graph)")),
        "onnxruntime_threads": 1,
        "inference_30hz": inference,
        "end_to_end_30hz": e2e,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
                 "python": platform.python_version()},
        "command": "python benchmarks/bundle_latency.py " + " ".join(argv or sys.argv[1:]),
    }
    out = RESULTS.with_name("bundle_latency_student.json") if args.student else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
