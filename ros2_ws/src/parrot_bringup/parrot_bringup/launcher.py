"""`parrot launch NAME [arg:=value ...]`: run a launch file's nodes without `ros2 launch`.

The launch files (launch/NAME.launch.py) describe their nodes as plain data (ARGUMENTS,
DEFAULT_PARAMS, NODES) next to generate_launch_description(); this module reads that data,
so a pip-only install (no `launch`/`launch_ros` wheels) starts the same processes that
`ros2 launch parrot_bringup NAME.launch.py` starts on a full ROS 2 install:
one `python -m parrot_bringup.<executable> --ros-args -r __node:=<name> --params-file <yaml>`
per node, output prefixed with `[name]`. Ctrl-C / SIGTERM stops them all (SIGINT, then
SIGTERM after 5 s, then SIGKILL); a node marked `shutdown_on_exit` stopping stops the rest.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PACKAGE = "parrot_bringup"


class LaunchError(RuntimeError):
    pass


def package_dir() -> Path:
    """Where launch/ and config/ are: the ament share dir if installed, else the source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            share = Path(get_package_share_directory(PACKAGE))
            if (share / "launch").is_dir():
                return share
        except (PackageNotFoundError, LookupError, ValueError):
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parent.parent


def find_params_file(value: str) -> Path:
    """A parameters file: a path as given, or a shipped one by name (`teleop.yaml`), so the
    commands in the README work from any directory."""
    shipped = package_dir() / "config" / value
    if not Path(value).exists() and shipped.exists():
        return shipped
    if not Path(value).exists():
        raise LaunchError(f"params_file {value}: no such file (nor one of that name in "
                          f"{package_dir() / 'config'})")
    return Path(value)


def find_launch_file(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".py" and p.exists():
        return p
    stem = name[: -len(".launch.py")] if name.endswith(".launch.py") else name
    path = package_dir() / "launch" / f"{stem}.launch.py"
    if not path.exists():
        available = sorted(x.name.split(".")[0] for x in (package_dir() / "launch").glob("*.launch.py"))
        raise LaunchError(f"no launch file {stem!r} (available: {', '.join(available)})")
    return path


def load_description(path: Path):
    spec = importlib.util.spec_from_file_location(f"_parrot_launch_{path.stem.split('.')[0]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for attr in ("ARGUMENTS", "NODES"):
        if not hasattr(module, attr):
            raise LaunchError(f"{path}: has no {attr} (not a Parrot launch file)")
    return module


def resolve(module, path: Path, overrides: dict) -> tuple[dict, list[dict]]:
    """Launch arguments after `name:=value` overrides, and the nodes that will run."""
    unknown = set(overrides) - set(module.ARGUMENTS)
    if unknown:
        raise LaunchError(f"unknown launch argument(s) {sorted(unknown)}; "
                          f"{path.name} takes {sorted(module.ARGUMENTS)}")
    args = {k: overrides.get(k, d) for k, (d, _) in module.ARGUMENTS.items()}
    if "params_file" in args:
        args["params_file"] = str(find_params_file(args["params_file"] or module.DEFAULT_PARAMS))
    nodes = []
    for spec in module.NODES:
        cond = spec.get("if")
        if cond and args.get(cond[0]) != cond[1]:
            continue
        if spec.get("optional") and importlib.util.find_spec(
                f"{PACKAGE}.{spec['executable']}") is None:
            print(f"[launch] {spec['name']}: not available yet, skipped", file=sys.stderr)
            continue
        nodes.append(spec)
    return args, nodes


def node_command(spec: dict, args: dict) -> list[str]:
    cmd = [sys.executable, "-m", f"{PACKAGE}.{spec['executable']}", "--ros-args",
           "-r", f"__node:={spec['name']}"]
    if args.get("params_file"):
        cmd += ["--params-file", str(Path(args["params_file"]).resolve())]
    return cmd


def _pump(name: str, stream, out):
    for line in iter(stream.readline, b""):
        out.write(f"[{name}] {line.decode(errors='replace')}")
        out.flush()


def run(name: str, overrides: dict, dry_run: bool = False) -> int:
    path = find_launch_file(name)
    module = load_description(path)
    args, nodes = resolve(module, path, overrides)
    cmds = [(spec, node_command(spec, args)) for spec in nodes]
    if dry_run:
        for spec, cmd in cmds:
            print(" ".join(cmd))
        return 0
    procs = []
    for spec, cmd in cmds:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        threading.Thread(target=_pump, args=(spec["name"], proc.stdout, sys.stdout),
                         daemon=True).start()
        procs.append((spec, proc))
        print(f"[launch] started {spec['name']} (pid {proc.pid})", flush=True)

    stop = {"why": None}

    def _on_signal(signum, frame):
        stop["why"] = signal.Signals(signum).name

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while stop["why"] is None and any(p.poll() is None for _, p in procs):
            for spec, proc in procs:
                if proc.poll() is not None and spec.get("shutdown_on_exit"):
                    stop["why"] = f"{spec['name']} exited ({proc.returncode})"
                    code = proc.returncode
            time.sleep(0.1)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if stop["why"]:
            print(f"[launch] shutting down: {stop['why']}", flush=True)
        shutdown(procs)
    if code == 0:
        failed = [(s["name"], p.returncode) for s, p in procs
                  if p.returncode not in (0, -signal.SIGINT, -signal.SIGTERM)]
        if failed:
            print(f"[launch] exited with errors: {failed}", file=sys.stderr)
            code = 1
    return code


def shutdown(procs, timeout: float = 5.0) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        alive = [p for _, p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(p.poll() is None for p in alive):
            time.sleep(0.05)


def add_arguments(parser) -> None:
    parser.add_argument("name", help="launch file: sim | hardware | path/to/X.launch.py")
    parser.add_argument("launch_args", nargs="*", metavar="ARG:=VALUE",
                        help="launch arguments, e.g. driver:=policy record:=true")
    parser.add_argument("--dry-run", action="store_true", help="print the node commands only")


def main(args) -> int:
    overrides = {}
    for item in args.launch_args:
        if ":=" not in item:
            raise LaunchError(f"launch arguments are NAME:=VALUE, got {item!r}")
        k, v = item.split(":=", 1)
        overrides[k] = v
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    return run(args.name, overrides, args.dry_run)
