"""ament_python package of the Parrot ROS 2 nodes (colcon build on a full ROS 2 install).

The same Python package is also installed by the repository's pyproject.toml (pip-only
installs, `parrot launch` / `parrot sim`); this file is only for colcon.
"""

from glob import glob

from setuptools import setup

PACKAGE = "parrot_bringup"
# executable name -> module (each has main()); launch files refer to these names.
NODES = ["sim_twin", "policy", "scripted", "teleop", "recorder", "episodes", "usb_camera", "hardware_bridge",
         "lifecycle_ctl"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    package_data={PACKAGE: ["fastdds.xml", "urdf/*.urdf"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Parrot",
    maintainer_email="parrot@example.com",
    description="Parrot ROS 2 stack: twin, policy, scripted, teleop, recorder nodes",
    license="MIT",
    entry_points={
        "console_scripts": [f"{n} = {PACKAGE}.{n}:main" for n in NODES]
        + [f"bag2dataset = {PACKAGE}.bag2dataset:cli"],
    },
)
