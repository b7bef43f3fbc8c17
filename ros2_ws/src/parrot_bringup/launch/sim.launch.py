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
    from parrot_bringup.launch_description import build
    return build(ARGUMENTS, DEFAULT_PARAMS, NODES)
