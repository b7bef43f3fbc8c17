"""Shared plumbing of the node executables: init, spin, clean shutdown on SIGINT/SIGTERM.

Each node module defines its Node subclass and ``main(argv=None)`` that calls
``run_node(NodeClass, argv)``; argv is the usual ``--ros-args ...`` tail, so
``python -m parrot_bringup.sim_twin --ros-args --params-file config/sim.yaml`` and the
ament entry point ``sim_twin`` behave the same.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Any

from parrot_bringup.interfaces import DEFAULT_COMMAND_FRAME, IMAGE_QOS_KINDS


def run_node(node_cls, argv=None, executor_threads: int = 0, on_start=None) -> int:
    """Run one node until Ctrl-C / SIGTERM (or its `finished`); `on_start(node)` runs once it
    exists, before spinning (e.g. a lifecycle node's autostart transitions)."""
    import rclpy
    import rclpy.signals
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, \
        SingleThreadedExecutor

    from parrot_bringup.dds_profile import use_parrot_profile

    use_parrot_profile()  # before the first participant: large images across processes
    argv = list(sys.argv if argv is None else [sys.argv[0], *argv])
    rclpy.init(args=argv, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = None

    def _stop(signum, frame):  # SIGTERM from a launcher == Ctrl-C: finish cleanly
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = 0
    try:
        node = node_cls()
        if on_start is not None:
            on_start(node)
        executor = MultiThreadedExecutor(executor_threads) if executor_threads else \
            SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=0.1)
        code = int(getattr(node, "exit_code", 0))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


@dataclass(frozen=True)
class Param:
    """One ROS parameter of a node: its default, what it means, and what values it accepts.

    ``range`` (inclusive, numbers only) becomes the descriptor's floating-point or integer
    range, so ROS itself refuses an out-of-range value from a YAML file or `ros2 param set`;
    ``choices`` (strings) are listed in the descriptor's constraints (the node checks them
    where it uses the value, with its own error)."""

    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()

    def descriptor(self, name: str):
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
        d = ParameterDescriptor(name=name, description=self.description)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
                raise TypeError(f"parameter {name}: a range needs a number default")
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                             to_value=float(hi), step=0.0)]
        return d


# Parameters several nodes declare alike: one definition each.
IMAGE_QOS = Param("sensor", "image QoS: sensor (best effort) or reliable (lock-step collection)",
                  choices=IMAGE_QOS_KINDS)
COMMAND_FRAME = Param(DEFAULT_COMMAND_FRAME, "frame_id of the published commands")


def declare(node, params: dict) -> dict:
    """Declare parameters (Param, or a bare default) with their descriptors; return the
    current values as a dict."""
    for name, spec in params.items():
        if isinstance(spec, Param):
            node.declare_parameter(name, spec.default, spec.descriptor(name))
        else:
            node.declare_parameter(name, spec)
    return {name: node.get_parameter(name).value for name in params}


def described(defaults: dict, docs: dict) -> dict:
    """Params from plain defaults and {name: (description, range or None)} (e.g. the
    safety.* parameters, whose defaults and documentation live in parrot_core.safety)."""
    return {name: Param(value, *docs[name]) for name, value in defaults.items()}
