"""Where code lives: parrot_core (the flow, SAC, export, the deploy bundle) has no ROS in it.

ROS message conversions and rclpy belong to parrot_bringup (docs/ARCHITECTURE.md), so the
core can be trained, exported and checked on machines without a ROS installation."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "rosidl", "builtin_interfaces", "parrot_bringup")


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in the file names, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_MODULES or top.endswith("_msgs")


def test_parrot_core_imports_no_ros_module():
    """No module of parrot_core imports rclpy, a message package or parrot_bringup, not even
    inside a function (the AST is walked, so a lazy import is found too)."""
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if is_ros(m))
                 for p in sorted((ROOT / "parrot_core").glob("*.py"))}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"ROS imports in parrot_core: {offenders}"


def test_the_check_finds_a_lazy_ros_import(tmp_path):
    """The checker itself: an import of geometry_msgs inside a function is reported."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from geometry_msgs.msg import TwistStamped\n    import numpy\n")
    assert sorted(m for m in imported_modules(module) if is_ros(m)) == ["geometry_msgs.msg"]
