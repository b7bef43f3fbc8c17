"""Turn a Parrot launch file's plain data (ARGUMENTS, DEFAULT_PARAMS, NODES) into a ROS 2
LaunchDescription, for `ros2 launch` on a full ROS 2 install. `parrot launch` reads the same
data without this module (there are no launch/launch_ros wheels)."""

from __future__ import annotations


def build(arguments: dict, default_params: str, nodes: list[dict]):
    import importlib.util
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, LogInfo, Shutdown
    from launch.conditions import LaunchConfigurationEquals
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node

    share = get_package_share_directory("parrot_bringup")
    actions = []
    for name, (default, doc) in arguments.items():
        if name == "params_file" and not default:
            default = os.path.join(share, "config", default_params)
        actions.append(DeclareLaunchArgument(name, default_value=default, description=doc))
    for spec in nodes:
        if spec.get("optional") and importlib.util.find_spec(
                f"parrot_bringup.{spec['executable']}") is None:
            actions.append(LogInfo(msg=f"{spec['name']}: not available, skipped"))
            continue
        kwargs = {}
        if "if" in spec:
            kwargs["condition"] = LaunchConfigurationEquals(*spec["if"])
        if spec.get("shutdown_on_exit"):
            kwargs["on_exit"] = [Shutdown(reason=f"{spec['name']} exited")]
        cls = Node
        if spec.get("lifecycle"):  # a managed node
            cls, kwargs["namespace"] = LifecycleNode, ""
        actions.append(cls(package="parrot_bringup", executable=spec["executable"],
                           name=spec["name"], output="screen",
                           parameters=[LaunchConfiguration("params_file")], **kwargs))
    return LaunchDescription(actions)
