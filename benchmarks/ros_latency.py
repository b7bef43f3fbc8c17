"""Image-to-command latency across processes over ROS 2 (Fast DDS), at 10 and 30 Hz.

This process publishes 48x48 rgb8 camera images (sensor-data QoS, like a camera driver) at
each rate; the `policy` node runs in a second process (mode `prior`: random z through the
ONNX prior on onnxruntime, 1 thread, torch blocked) and answers each image with a twist +
gripper command stamped with the image's stamp. Latency = receive time of the twist here -
the image stamp (same host clock): serialization, DDS transport both ways, the node's
conversion/resize, inference and message building. Reports median and p99 in ms, and
commands lost (images without an answer), in benchmarks/results/ros_latency.json, with where
the time goes inside the policy node (its per-image stages, logged when it stops): arrival
(DDS + executor), decode, model, publish; the rest of the total is the command's way back.

    python benchmarks/ros_latency.py                 # random full-size prior (default config)
    python benchmarks/ros_latency.py --prior EXPORT  # an existing `parrot export` directory

Two node configurations in one run, one after the other: mode `prior` (the prior's graph per
image), and mode `policy` with a distilled student (`parrot distill-policy`; it observes the arm
state, sent before each image as the bridge does) and keep-warm at the rate deploy-bundle sets.
Latency does not depend on the weights, so random-init models of the default configs are
exported to a temp dir (needs torch here; the node never imports it).
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

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "ros_latency.json"


def export_random_prior(out_dir: Path) -> Path:
    import torch

    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(0)
    export_prior(ConditionalRealNVP(PriorConfig()), out_dir, exporter="torchscript")
    return out_dir


def measure(node, executor, pub, got, rate: float, seconds: float, warmup: float,
            state_pub=None) -> dict:
    """``state_pub``: for a state-conditioned prior, each image's arm state goes out first,
    as the twin and the hardware bridge send it."""
    from parrot_bringup import interfaces as itf
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(8)]
    sent: list[int] = []
    got.clear()
    period = 1.0 / rate
    t_start = time.monotonic()
    next_t = t_start
    i = 0
    while time.monotonic() - t_start < warmup + seconds:
        now = time.monotonic()
        if now >= next_t:
            stamp = node.get_clock().now().nanoseconds
            if state_pub is not None:
                state_pub.publish(itf.arm_state_msg([0.40, 0.0, 0.20, 0.0], stamp))
            pub.publish(itf.numpy_to_image(frames[i % len(frames)], stamp))
            if now - t_start >= warmup:
                sent.append(stamp)
            i += 1
            next_t += period
        executor.spin_once(timeout_sec=max(0.0, min(0.002, next_t - time.monotonic())))
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.01)
    lat = np.array([got[s] - s for s in sent if s in got], dtype=np.float64) / 1e6
    return {"rate_hz": rate, "sent": len(sent), "answered": int(lat.size),
            "lost": len(sent) - int(lat.size),
            "median_ms": round(float(np.median(lat)), 3) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
            "max_ms": round(float(lat.max()), 3) if lat.size else None}


def node_stages(log: str) -> dict | None:
    """The policy node's per-image stage times from its shutdown log line."""
    from parrot_bringup.policy import STAGES_LOG
    for line in log.splitlines():
        if STAGES_LOG in line:
            return json.loads(line.split(STAGES_LOG, 1)[1])
    return None


def export_random_student(out_dir: Path) -> Path:
    import torch

    from parrot_core.student import StudentPolicy, export_student
    torch.manual_seed(0)
    export_student(StudentPolicy(), out_dir, {"algo": "bench"}, {"benchmark": True})
    return out_dir


def run_policy_node(name: str, params: list[str], needs_state: bool, args, tmp: Path) -> dict:
    """Start the policy node with ``params``, measure every rate, stop it; its report."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState

    from parrot_bringup import interfaces as itf

    log_path = tmp / f"policy_{name}.log"
    log = open(log_path, "w")
    ros_params = [a for p in params + ["threads:=1"] for a in ("-p", p)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.modules['torch'] = None\n"
         "from parrot_bringup.policy import main; sys.exit(main(sys.argv[1:]))",
         "--ros-args", *ros_params],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    rclpy.init()
    node = rclpy.create_node("latency_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    got: dict[int, int] = {}
    node.create_subscription(
        TwistStamped, itf.TOPIC_TWIST,
        lambda m: got.setdefault(itf.stamp_to_ns(m.header.stamp), node.get_clock().now().nanoseconds),
        itf.command_qos())
    pub = node.create_publisher(Image, itf.TOPIC_IMAGE, itf.image_qos("sensor"))
    state_pub = (node.create_publisher(JointState, itf.TOPIC_ARM_STATE, itf.state_qos())
                 if needs_state else None)
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 or node.count_publishers(itf.TOPIC_TWIST) == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("policy node did not come up: " + log_path.read_text())
            executor.spin_once(timeout_sec=0.1)
        results = [measure(node, executor, pub, got, r, args.seconds, args.warmup, state_pub)
                   for r in args.rates]
    finally:
        proc.terminate()
        proc.wait(10)
        node.destroy_node()
        rclpy.shutdown()
    return {"node_parameters": params, "results": results,
            # over every answered image of the run, all rates
            "policy_node_stages_ms": node_stages(log_path.read_text())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", help="existing prior export directory")
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per rate")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    domain = 1 + (os.getpid() * 13) % 100
    os.environ.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    tmp = tempfile.TemporaryDirectory()
    prior = Path(args.prior) if args.prior else export_random_prior(Path(tmp.name) / "prior")
    student = export_random_student(Path(tmp.name) / "student")
    from parrot_core.keep_warm import STUDENT_HZ
    from parrot_core.onnx_prior import read_meta
    configs = {
        "prior": (["mode:=prior", f"prior_dir:={prior}"], bool(read_meta(prior)["state_dim"])),
        "student_keep_warm": (["mode:=policy", f"policy_dir:={student}",
                               f"keep_warm_hz:={STUDENT_HZ}"], True),
    }
    runs = {name: run_policy_node(name, params, needs_state, args, Path(tmp.name))
            for name, (params, needs_state) in configs.items()}
    report = {
        "benchmark": "ros_latency",
        "what": "image publish -> twist received, across processes (policy node: mode prior, "
                "then a distilled student with keep-warm, as deploy-bundle sets it)",
        "image": "48x48 rgb8, sensor-data QoS", "rmw": "rmw_fastrtps_cpp",
        "prior": str(args.prior) if args.prior else "random-init default PriorConfig (48x48)",
        "student": "random-init default StudentConfig (48x48, observes the arm state)",
        "onnxruntime_threads": 1,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
                 "python": platform.python_version()},
        "command": "python benchmarks/ros_latency.py " + " ".join(sys.argv[1:]),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for name, run in runs.items():
        for r in run["results"]:
            print(f"{name:<18} {r['rate_hz']:>4.0f} Hz: median {r['median_ms']} ms, p99 "
                  f"{r['p99_ms']} ms ({r['answered']}/{r['sent']} answered)")
        stages = run["policy_node_stages_ms"]
        if stages:
            print(f"{'':<18} inside the policy node (median / p99 ms): " + ", ".join(
                f"{k} {v['median']} / {v['p99']}" for k, v in stages.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
