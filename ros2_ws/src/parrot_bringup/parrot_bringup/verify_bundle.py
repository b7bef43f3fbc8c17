"""`parrot verify-bundle BUNDLE [--ros]`: check a deploy bundle on robot compute.

The checks without ROS (hashes, metadata, inference against the deploy-time reference, no
torch) are ``parrot_core.bundle.verify_bundle``; ``--ros`` also sends the bundle's test command
through rclpy/DDS, as the policy node would publish it (``interfaces.action_to_msgs`` at the
bundle's control rate), and times its way back.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from parrot_core.bundle import PARAMS_FILE, BundleError, verify_bundle

DEFAULT_CONTROL_RATE_HZ = 10.0  # the policy node's default, when the bundle's YAML has none


def bundle_control_rate_hz(root) -> float:
    """policy.control_rate_hz of the bundle's parameter YAML (the rate twists are scaled by)."""
    import yaml
    params = yaml.safe_load((Path(root) / PARAMS_FILE).read_text()) or {}
    policy = (params.get("policy") or {}).get("ros__parameters") or {}
    return float(policy.get("control_rate_hz", DEFAULT_CONTROL_RATE_HZ))


def ros_roundtrip(action, control_rate_hz: float, timeout_s: float = 10.0) -> float:
    """Publish ``action`` as the policy node's TwistStamped on a private topic and receive it
    back through DDS; returns the round-trip time in ms."""
    try:
        import rclpy
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
    except ImportError as e:
        raise BundleError(f"--ros: rclpy/ROS message wheels not importable ({e}); install the "
                          f"bundle's requirements.txt") from e
    from parrot_bringup.interfaces import action_to_msgs, command_qos

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("parrot_verify_bundle", context=ctx)
    got = []
    topic = f"parrot_verify_bundle_{os.getpid()}/twist"
    try:
        pub = node.create_publisher(TwistStamped, topic, command_qos())
        node.create_subscription(TwistStamped, topic, lambda m: got.append(time.perf_counter()),
                                 command_qos())
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        twist, _ = action_to_msgs(action, node.get_clock().now().nanoseconds, control_rate_hz)
        deadline = time.monotonic() + timeout_s
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        t0 = time.perf_counter()
        pub.publish(twist)
        while not got and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        if not got:
            raise BundleError("--ros: the test command did not come back through DDS")
        return (got[0] - t0) * 1e3
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def add_arguments(parser) -> None:
    parser.add_argument("bundle", help="bundle directory (parrot deploy-bundle)")
    parser.add_argument("--ros", action="store_true",
                        help="also send the test command through rclpy/DDS")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args) -> int:
    log = (lambda *a: None) if args.json else print
    summary = verify_bundle(args.bundle, threads=args.threads, log=log)
    if args.ros:
        action = summary["test_action"]
        summary["ros_roundtrip_ms"] = ros_roundtrip(action, bundle_control_rate_hz(args.bundle))
        log(f"ros: the test command went through rclpy/DDS and back in "
            f"{summary['ros_roundtrip_ms']:.1f} ms")
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"parrot verify-bundle: {args.bundle}: OK")
    return 0
