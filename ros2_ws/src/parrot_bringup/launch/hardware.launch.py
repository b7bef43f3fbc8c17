"""The hardware stack: camera -> policy -> hardware_bridge (safety filter inside) -> the arm.

`ros2 launch parrot_bringup hardware.launch.py` on a full ROS 2 install, or
`parrot launch hardware` on a pip-only install (both read NODES below). Parameters: one YAML
with a section per node (config/hardware.yaml, or a deploy bundle's config/hardware.yaml).

The camera is our `usb_camera` node (OpenCV VideoCapture), or, with `camera:=external`, any
ROS camera driver publishing sensor_msgs/Image (rgb8/bgr8) on `camera/image_raw`.
`hardware_bridge` is a lifecycle node: with `autostart: configure` (default) it comes up
inactive and moves nothing until activated
(`python -m parrot_bringup.lifecycle_ctl hardware_bridge activate`, or `ros2 lifecycle set`).
The arm side (ros2_control, MoveIt Servo or a joint trajectory controller, the gripper's
forward command controller) is the arm vendor's launch, started separately.
"""

ARGUMENTS = {
    "params_file": ("", "parameter YAML, a section per node (default: config/hardware.yaml)"),
    "camera": ("usb", "usb: start our usb_camera node | external: a camera driver you run"),
}
DEFAULT_PARAMS = "hardware.yaml"

NODES = [
    {"name": "usb_camera", "executable": "usb_camera", "if": ("camera", "usb")},
    {"name": "policy", "executable": "policy"},
    # "lifecycle": a managed node (ros2 launch starts it as launch_ros LifecycleNode)
    {"name": "hardware_bridge", "executable": "hardware_bridge", "lifecycle": True},
]


def generate_launch_description():
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
    for name, (default, doc) in ARGUMENTS.items():
        if name == "params_file" and not default:
            default = os.path.join(share, "config", DEFAULT_PARAMS)
        actions.append(DeclareLaunchArgument(name, default_value=default, description=doc))
    for spec in NODES:
        if spec.get("optional") and importlib.util.find_spec(
                f"parrot_bringup.{spec['executable']}") is None:
            actions.append(LogInfo(msg=f"{spec['name']}: not available yet, skipped"))
            continue
        kwargs = {"on_exit": [Shutdown()]} if spec.get("shutdown_on_exit") else {}
        if "if" in spec:
            kwargs["condition"] = LaunchConfigurationEquals(*spec["if"])
        cls = Node
        if spec.get("lifecycle"):
            cls, kwargs["namespace"] = LifecycleNode, ""
        actions.append(cls(package="parrot_bringup", executable=spec["executable"],
                           name=spec["name"], output="screen",
                           parameters=[LaunchConfiguration("params_file")], **kwargs))
    return LaunchDescription(actions)
