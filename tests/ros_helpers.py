"""Helpers of the tests over real DDS (tests/test_ros_*.py): node processes, a test node.

Every test module gets its own ROS_DOMAIN_ID (from the pid and a per-module salt) and
localhost-only discovery, so modules (and other people's test runs) do not hear each other.
Nodes run as separate processes (`python -m parrot_bringup.<node> --ros-args ...`); the test
talks to them from its own rclpy Context.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# Domains 1..101 only: Fast DDS's ports for a domain d start at 7400 + 250 d, and from
# d = 102 on they fall inside Linux's ephemeral port range, where another socket may hold them.
MAX_DOMAIN = 101
DOMAINS_PER_RUN = 10


def domain_id(key) -> int:
    """A ROS_DOMAIN_ID for one test module (`key`: its name or a small number).

    `PARROT_TEST_DOMAIN_BASE=B` (set by `make test-stress` for each concurrent run) confines a
    run to domains B..B+9, so concurrent runs never share a domain; otherwise the pid spreads
    concurrent runs over 1..101.
    """
    k = zlib.crc32(str(key).encode())
    base = os.environ.get("PARROT_TEST_DOMAIN_BASE")
    if base:
        d = int(base) + k % DOMAINS_PER_RUN
    else:
        d = 1 + (k + os.getpid() * 7) % MAX_DOMAIN
    if not 1 <= d <= MAX_DOMAIN:
        raise ValueError(f"PARROT_TEST_DOMAIN_BASE={base} puts a test on ROS domain {d}; "
                         f"expected a base in 1..{MAX_DOMAIN - DOMAINS_PER_RUN + 1}")
    return d


def ros_env(domain: int) -> dict:
    env = dict(os.environ)
    env.update({
        "AMENT_PREFIX_PATH": env.get("AMENT_PREFIX_PATH") or sys.prefix,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
        "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "OMP_NUM_THREADS": "1",
    })
    return env


def _param(k, v) -> str:
    if isinstance(v, bool):
        v = "true" if v else "false"
    elif isinstance(v, (list, tuple)):
        v = "[" + ",".join(str(x) for x in v) + "]"
    elif isinstance(v, str) and v == "":
        v = "''"
    return f"{k}:={v}"


def start_node(module: str, params: dict, env: dict, log: Path, name: str | None = None,
               prelude: str = "") -> subprocess.Popen:
    """Start parrot_bringup.<module> as a process; stdout+stderr go to `log`."""
    ros_args = ["--ros-args"]
    if name:
        ros_args += ["-r", f"__node:={name}"]
    for k, v in params.items():
        ros_args += ["-p", _param(k, v)]
    code = (f"import sys; {prelude}\nfrom parrot_bringup.{module} import main\n"
            f"sys.exit(main(sys.argv[1:]))")
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-c", code, *ros_args], stdout=out,
                            stderr=subprocess.STDOUT, env=env, cwd=str(REPO))


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class TestNode:
    """An rclpy node in its own Context on the module's domain."""

    __test__ = False

    def __init__(self, domain: int, name: str = "test_driver"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = Node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)

    def spin_until(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(cond())

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def export_tiny_prior(out_dir: Path, image_size: int = 32, state_dim: int = 0) -> Path:
    """A random-init prior (tiny), exported with the prior engineer's `export_prior`;
    ``state_dim=4``: conditioned on the arm state too."""
    import torch

    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    torch.manual_seed(0)
    model = ConditionalRealNVP(PriorConfig(image_size=image_size, coupling_hidden=(32, 32),
                                           encoder_hidden=(32,), feature_dim=16,
                                           conv_channels=8, state_dim=state_dim))
    export_prior(model, out_dir, exporter="torchscript")
    return Path(out_dir)
