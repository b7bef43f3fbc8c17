"""Shared plumbing of the node executables: init, spin, clean shutdown on SIGINT/SIGTERM.

Each node module defines its Node subclass and ``main(argv=None)`` that calls
``run_node(NodeClass, argv)``; argv is the usual ``--ros-args ...`` tail, so
``python -m parrot_bringup.sim_twin --ros-args --params-file config/sim.yaml`` and the
ament entry point ``sim_twin`` behave the same.
"""

from __future__ import annotations

import signal
import sys


def run_node(node_cls, argv=None, executor_threads: int = 0) -> int:
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


def declare(node, params: dict) -> dict:
    """Declare parameters with defaults; return their current values as a dict."""
    for name, default in params.items():
        node.declare_parameter(name, default)
    return {name: node.get_parameter(name).value for name in params}
