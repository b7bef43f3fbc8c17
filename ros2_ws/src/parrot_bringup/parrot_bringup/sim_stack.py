"""`parrot sim`: the whole sim stack composed in one process (one single-threaded executor).

Runs the nodes the `sim` launch description lists (launch/sim.launch.py: twin + driver +
optional recorder) as Node objects in one process instead of one process each, plus a small
monitor that counts episode successes and measures image-to-command latency (command
receive time minus the stamp of the image it answers). Parameters come from the same YAML
(`--params-file`, default config/sim.yaml) with the command-line options below on top.
Prints a summary (and writes it as JSON with --summary) when the twin is done (`--episodes`)
or on Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

NODE_CLASSES = {
    "sim_twin": ("parrot_bringup.sim_twin", "SimTwinNode"),
    "scripted": ("parrot_bringup.scripted", "ScriptedNode"),
    "policy": ("parrot_bringup.policy", "PolicyNode"),
    "recorder": ("parrot_bringup.recorder", "RecorderNode"),
    "teleop": ("parrot_bringup.teleop", "TeleopNode"),
}


class SimStackError(RuntimeError):
    pass


def add_arguments(parser) -> None:
    parser.add_argument("--driver", choices=("scripted", "policy", "none"), default="scripted")
    parser.add_argument("--mode", choices=("policy", "prior", "off"),
                        help="policy node mode (with --driver policy)")
    parser.add_argument("--prior", help="prior export directory (policy node prior_dir)")
    parser.add_argument("--policy", help="policy export directory (policy node policy_dir)")
    parser.add_argument("--record", metavar="DIR", help="also record bags into DIR")
    parser.add_argument("--params-file", help="parameter YAML (default: config/sim.yaml)")
    parser.add_argument("--task", help="twin task")
    parser.add_argument("--objects", choices=("train", "heldout"))
    parser.add_argument("--episodes", type=int, default=3, help="0 = until Ctrl-C")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--rate", type=float, help="control rate (Hz) of every node")
    parser.add_argument("--lockstep", action="store_true", help="twin steps once per command")
    parser.add_argument("--timeout", type=float, default=0, help="stop after this many seconds")
    parser.add_argument("--summary", help="write the summary JSON here")


def _overrides(args) -> dict[str, dict]:
    o: dict[str, dict] = {k: {} for k in NODE_CLASSES}
    tw = o["sim_twin"]
    tw["episodes"] = args.episodes
    tw["exit_when_done"] = args.episodes > 0
    tw["start_when_matched"] = True
    # wait for the nodes that must not miss the first image: the policy, a ready recorder
    tw["min_image_subscribers"] = int(args.driver == "policy")
    tw["min_recorders"] = int(bool(args.record))
    if args.task:
        tw["task"] = args.task
    if args.objects:
        tw["objects"] = args.objects
    if args.seed is not None:
        tw["seed"] = args.seed
        o["policy"]["seed"] = args.seed
    if args.lockstep:
        tw["lockstep"] = True
        tw["image_qos"] = o["recorder"]["image_qos"] = "reliable"
    if args.rate:
        for k in ("sim_twin", "scripted", "policy", "teleop"):
            o[k]["control_rate_hz"] = float(args.rate)
    if args.mode:
        o["policy"]["mode"] = args.mode
    if args.prior:
        o["policy"]["prior_dir"] = str(Path(args.prior).resolve())
    if args.policy:
        o["policy"]["policy_dir"] = str(Path(args.policy).resolve())
        o["policy"].setdefault("mode", "policy")
    if args.record:
        o["recorder"]["out_dir"] = str(Path(args.record).resolve())
    return o


def main(args) -> int:
    import importlib

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from parrot_bringup import launcher

    path = launcher.find_launch_file("sim")
    module = launcher.load_description(path)
    launch_args = {"driver": args.driver, "record": "true" if args.record else "false"}
    if args.params_file:
        launch_args["params_file"] = args.params_file
    resolved, specs = launcher.resolve(module, path, launch_args)
    overrides = _overrides(args)

    from parrot_bringup.dds_profile import use_parrot_profile
    use_parrot_profile()
    rclpy.init(args=["parrot-sim", "--ros-args", "--params-file",
                     str(Path(resolved["params_file"]).resolve())])
    nodes = []
    try:
        for spec in specs:
            mod_name, cls_name = NODE_CLASSES[spec["executable"]]
            cls = getattr(importlib.import_module(mod_name), cls_name)
            params = [Parameter(k, value=v) for k, v in overrides[spec["executable"]].items()]
            nodes.append(cls(name=spec["name"], parameter_overrides=params))
        monitor = Monitor()
        executor = SingleThreadedExecutor()
        for n in [*nodes, monitor]:
            executor.add_node(n)
        twin = next(n for n in nodes if n.get_name() == "sim_twin")
        t0 = time.monotonic()
        try:
            while rclpy.ok() and not twin.finished:
                executor.spin_once(timeout_sec=0.1)
                if args.timeout and time.monotonic() - t0 > args.timeout:
                    break
        except KeyboardInterrupt:
            pass
        summary = monitor.summary()
        summary["wall_s"] = round(time.monotonic() - t0, 2)
    finally:
        for n in nodes:
            close = getattr(n, "close", None)
            if close:
                close()
            n.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    print(f"episodes: {summary['episodes']}, successes: {summary['successes']}"
          f" ({summary['success_rate']:.0%})" if summary["episodes"] else "episodes: 0")
    lat = summary["latency_ms"]
    if lat["n"]:
        print(f"image-to-command latency: median {lat['median']:.2f} ms, "
              f"p99 {lat['p99']:.2f} ms over {lat['n']} commands")
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=2))
    return 0


class Monitor:
    """Counts episode results and measures image -> command latency (in-process clock)."""

    def __new__(cls):
        from geometry_msgs.msg import TwistStamped
        from rclpy.node import Node
        from std_msgs.msg import String

        from parrot_bringup import interfaces as itf

        class _Monitor(Node):
            def __init__(self):
                super().__init__("parrot_monitor")
                self.results: dict[int, bool] = {}
                self.lat_ms: list[float] = []
                self.seen: set[int] = set()
                self.create_subscription(String, itf.TOPIC_EPISODE_EVENT, self._ev,
                                         itf.event_qos())
                self.create_subscription(TwistStamped, itf.TOPIC_TWIST, self._cmd,
                                         itf.command_qos())

            def _ev(self, msg):
                ev = itf.EpisodeEvent.from_payload(itf.parse_json_msg(msg))
                if ev.kind == "end":
                    self.results[ev.episode] = bool(ev.fields.get("success"))

            def _cmd(self, msg):
                ns = itf.stamp_to_ns(msg.header.stamp)
                if ns in self.seen:
                    return
                self.seen.add(ns)
                self.lat_ms.append((self.get_clock().now().nanoseconds - ns) / 1e6)

            def summary(self) -> dict:
                lat = np.array(self.lat_ms)
                n = len(self.results)
                ok = sum(self.results.values())
                return {"episodes": n, "successes": ok, "success_rate": ok / n if n else 0.0,
                        "latency_ms": {"n": int(lat.size),
                                       "median": float(np.median(lat)) if lat.size else None,
                                       "p99": float(np.percentile(lat, 99)) if lat.size else None}}

        return _Monitor()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="parrot sim")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
