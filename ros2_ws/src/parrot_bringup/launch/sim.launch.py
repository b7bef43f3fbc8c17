"""The sim stack: PyBullet twin + a driver (scripted or policy) + optional recorder.

One description, two runners: `ros2 launch parrot_bringup sim.launch.py driver:=policy` on a
full ROS 2 install (generate_launch_description below), and `parrot launch sim driver:=policy`
on a pip-only install (parrot_bringup/launcher.py reads ARGUMENTS/NODES from this file).
Parameters come from one YAML (default: the package's config/sim.yaml) with a section per
node name. For collection use config/collect.yaml (lock-step, exits after `episodes`).
"""

# name -> (default, description). A default of "" for params_file means config/DEFAULT_PARAMS.
ARGUMENTS = {
    "params_file": ("", "parameter YAML, a section per node (default: config/sim.yaml)"),
    "driver": ("scripted", "what commands the twin: scripted | policy | none"),
    "record": ("false", "true: also run the recorder (bags of images/commands/episodes)"),
}
DEFAULT_PARAMS = "sim.yaml"

# The nodes. "if": (argument, value) runs the node only when the argument has that value;
# "shutdown_on_exit": the whole launch stops when this node exits (the twin exits after
# `episodes` when `exit_when_done` is set); "optional": skipped if its module is missing.
NODES = [
    {"name": "sim_twin", "executable": "sim_twin", "shutdown_on_exit": True},
    {"name": "scripted", "executable": "scripted", "if": ("driver", "scripted")},
    {"name": "policy", "executable": "policy", "if": ("driver", "policy")},
    {"name": "recorder", "executable": "recorder", "if": ("record", "true")},
]


def generate_launch_description():
    import importlib.util
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, Shutdown
    from launch.conditions import LaunchConfigurationEquals
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    share = get_package_share_directory("parrot_bringup")
    actions = []
    for name, (default, doc) in ARGUMENTS.items():
        if name == "params_file" and not default:
            default = os.path.join(share, "config", DEFAULT_PARAMS)
        actions.append(DeclareLaunchArgument(name, default_value=default, description=doc))
    for spec in NODES:
        if spec.get("optional") and importlib.util.find_spec(
                f"parrot_bringup.{spec['executable']}") is None:
            continue
        kwargs = {}
        if "if" in spec:
            kwargs["condition"] = LaunchConfigurationEquals(*spec["if"])
        if spec.get("shutdown_on_exit"):
            kwargs["on_exit"] = [Shutdown(reason=f"{spec['name']} exited")]
        actions.append(Node(package="parrot_bringup", executable=spec["executable"],
                            name=spec["name"], output="screen",
                            parameters=[LaunchConfiguration("params_file")], **kwargs))
    return LaunchDescription(actions)
