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
    "record": ("false", "true: also the recorder and the operator's episodes (teleop recording)"),
}
DEFAULT_PARAMS = "hardware.yaml"

NODES = [
    {"name": "usb_camera", "executable": "usb_camera", "if": ("camera", "usb")},
    {"name": "policy", "executable": "policy"},
    # "lifecycle": a managed node (ros2 launch starts it as launch_ros LifecycleNode)
    {"name": "hardware_bridge", "executable": "hardware_bridge", "lifecycle": True},
    {"name": "episodes", "executable": "episodes", "if": ("record", "true")},
    {"name": "recorder", "executable": "recorder", "if": ("record", "true")},
]


def generate_launch_description():
    from parrot_bringup.launch_description import build
    return build(ARGUMENTS, DEFAULT_PARAMS, NODES)
