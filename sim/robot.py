"""The UFACTORY xArm6 with its gripper, in PyBullet, drawn with primitive shapes.

Kinematics, joint limits and inertias come from pybullet_data's
``xarm/xarm6_with_gripper.urdf``; only the meshes are replaced. TinyRenderer's cost is in
triangles and the stock meshes have ~90k of them (22.7 ms per 48x48 image), so
``sim/assets/xarm6_lowpoly.urdf`` draws each arm link as a joint housing (cylinder) plus a
bone (box) to the next joint, and the gripper as boxes. The same primitives serve as
collision shapes. ``python -m sim.robot`` regenerates the asset from pybullet_data.

The gripper is a four-bar linkage written as six ``mimic`` joints, which PyBullet ignores.
Here the two outer knuckles are motor-driven and each finger is tied to its knuckle by a
gear constraint (ratio -1), so the pads stay parallel even when a knuckle stalls on an
object. The inner knuckles carry no collision shape and simply follow by position control.
Only the finger pads touch objects.

End-effector control: ``set_ee_target(pos, orn)`` runs PyBullet's IK for the tool centre
point (link ``tcp``, between the finger pads) and sends the joint targets to position
motors; the caller steps the simulation.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet as p

ASSET_DIR = Path(__file__).resolve().parent / "assets"
LOWPOLY_URDF = ASSET_DIR / "xarm6_lowpoly.urdf"

ARM_JOINTS = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6"]
# drive joints (motors) and the joints that follow them
GRIPPER_DRIVEN = ["drive_joint", "right_outer_knuckle_joint"]
GRIPPER_FOLLOW = ["left_inner_knuckle_joint", "right_inner_knuckle_joint"]
GRIPPER_GEARS = [("drive_joint", "left_finger_joint"),
                 ("right_outer_knuckle_joint", "right_finger_joint")]
GRIPPER_OPEN = 0.0
GRIPPER_CLOSED = 0.85  # joint limit; the pads touch at about 0.85
TCP_LINK = "tcp"
# TCP: between the finger pads, 0.145 m along the flange axis.
TCP_OFFSET_Z = 0.145
# Home: TCP 0.40 m in front of the base, 0.20 m above the table, pointing down.
HOME_POS = (0.40, 0.0, 0.20)
DOWN_EULER = (np.pi, 0.0, 0.0)
# A comfortable elbow-up configuration the IK null space is pulled towards.
REST_POSE = [0.0, -0.2, -1.2, 0.0, 1.4, 0.0]

WHITE = "0.80 0.82 0.86 1"
GREY = "0.45 0.47 0.52 1"
DARK = "0.20 0.20 0.22 1"

# Low-poly shapes per link, in the link frame: (kind, size, xyz, rpy, rgba, collide)
# cylinder size = (radius, length) along local z after rpy; box size = full extents.
_SHAPES = {
    "link_base": [("cylinder", (0.065, 0.155), (0, 0, 0.0775), (0, 0, 0), WHITE, True)],
    "link1": [("cylinder", (0.048, 0.16), (0, 0, -0.032), (0, 0, 0), WHITE, True)],
    "link2": [("cylinder", (0.048, 0.12), (0, 0, 0.025), (0, 0, 0), WHITE, True),
              ("box", (0.065, 0.29, 0.07), (0.027, -0.142, 0.04), (0, 0, -0.185), WHITE, True),
              ("cylinder", (0.045, 0.10), (0.0535, -0.2845, 0.04), (0, 0, 0), GREY, True)],
    "link3": [("box", (0.07, 0.17, 0.07), (0.06, 0.085, 0.0), (0, 0, -0.4), WHITE, True)],
    "link4": [("cylinder", (0.042, 0.21), (0, 0, -0.068), (0, 0, 0), WHITE, True)],
    "link5": [("cylinder", (0.0375, 0.09), (0, 0, 0.01), (0, 0, 0), GREY, True),
              ("box", (0.07, 0.06, 0.075), (0.06, 0.03, 0.0), (0, 0, 0), WHITE, True)],
    "link6": [("cylinder", (0.0375, 0.028), (0, 0, -0.014), (0, 0, 0), DARK, True)],
    "xarm_gripper_base_link": [("box", (0.075, 0.09, 0.10), (0, 0, 0.047), (0, 0, 0), GREY, True)],
    "left_outer_knuckle": [("box", (0.012, 0.012, 0.056), (0, 0.0177, 0.021),
                            (-0.70, 0, 0), DARK, False)],
    "right_outer_knuckle": [("box", (0.012, 0.012, 0.056), (0, -0.0177, 0.021),
                             (0.70, 0, 0), DARK, False)],
    "left_inner_knuckle": [("box", (0.012, 0.012, 0.06), (0, 0.0177, 0.021),
                            (-0.70, 0, 0), DARK, False)],
    "right_inner_knuckle": [("box", (0.012, 0.012, 0.06), (0, -0.0177, 0.021),
                             (0.70, 0, 0), DARK, False)],
    # pads: the inner 14 mm of the finger, over its lower 45 mm
    "left_finger": [("box", (0.032, 0.014, 0.050), (0, -0.019, 0.036), (0, 0, 0), DARK, True)],
    "right_finger": [("box", (0.032, 0.014, 0.050), (0, 0.019, 0.036), (0, 0, 0), DARK, True)],
}


def generate_lowpoly_urdf(out_path=LOWPOLY_URDF) -> Path:
    """Write the primitive-shape xArm6+gripper URDF derived from pybullet_data's."""
    import pybullet_data

    src = Path(pybullet_data.getDataPath()) / "xarm" / "xarm6_with_gripper.urdf"
    tree = ET.parse(src)
    robot = tree.getroot()
    for tag in ("gazebo", "transmission", "material"):
        for el in robot.findall(tag):
            robot.remove(el)
    for link in robot.findall("link"):
        for el in link.findall("visual") + link.findall("collision"):
            link.remove(el)
        for kind, size, xyz, rpy, rgba, collide in _SHAPES.get(link.get("name"), []):
            for tag in ("visual", "collision") if collide else ("visual",):
                el = ET.SubElement(link, tag)
                ET.SubElement(el, "origin", xyz=" ".join(map(str, xyz)), rpy=" ".join(map(str, rpy)))
                geom = ET.SubElement(el, "geometry")
                if kind == "box":
                    ET.SubElement(geom, "box", size=" ".join(map(str, size)))
                else:
                    ET.SubElement(geom, "cylinder", radius=str(size[0]), length=str(size[1]))
                if tag == "visual":
                    mat = ET.SubElement(el, "material", name=f"m_{link.get('name')}_{len(link)}")
                    ET.SubElement(mat, "color", rgba=rgba)
    for joint in robot.findall("joint"):
        for el in joint.findall("mimic"):
            joint.remove(el)
    tcp = ET.SubElement(robot, "link", name=TCP_LINK)
    inertial = ET.SubElement(tcp, "inertial")
    ET.SubElement(inertial, "mass", value="0.001")
    ET.SubElement(inertial, "inertia", ixx="1e-7", ixy="0", ixz="0", iyy="1e-7", iyz="0", izz="1e-7")
    j = ET.SubElement(robot, "joint", name="tcp_joint", type="fixed")
    ET.SubElement(j, "parent", link="xarm_gripper_base_link")
    ET.SubElement(j, "child", link=TCP_LINK)
    ET.SubElement(j, "origin", xyz=f"0 0 {TCP_OFFSET_Z}", rpy="0 0 0")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(tree)
    header = ("<?xml version=\"1.0\"?>\n<!-- Generated by `python -m sim.robot` from pybullet_data "
              "xarm/xarm6_with_gripper.urdf: meshes replaced by primitives. Do not edit. -->\n")
    out_path.write_text(header + ET.tostring(robot, encoding="unicode") + "\n")
    return out_path


class XArm:
    """One xArm6 + gripper in a PyBullet client; base at ``base_pos`` on the table."""

    def __init__(self, client: int, base_pos=(0.0, 0.0, 0.0), urdf=LOWPOLY_URDF):
        self.client = client
        self.id = p.loadURDF(str(urdf), base_pos, useFixedBase=True,
                             flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES, physicsClientId=client)
        self._joint = {}
        for j in range(p.getNumJoints(self.id, physicsClientId=client)):
            info = p.getJointInfo(self.id, j, physicsClientId=client)
            self._joint[info[1].decode()] = j
            self._joint.setdefault("link:" + info[12].decode(), j)
        self.arm = [self._joint[n] for n in ARM_JOINTS]
        self.tcp = self._joint["link:" + TCP_LINK]
        info = [p.getJointInfo(self.id, j, physicsClientId=client) for j in self.arm]
        self.lower = [i[8] for i in info]
        self.upper = [i[9] for i in info]
        self.ranges = [u - l for l, u in zip(self.lower, self.upper)]
        self.gripper_closed = False
        c = dict(physicsClientId=client)
        for n in GRIPPER_FOLLOW + [g[1] for g in GRIPPER_GEARS]:  # free the followers
            p.setJointMotorControl2(self.id, self._joint[n], p.VELOCITY_CONTROL, force=0, **c)
        for parent, child in GRIPPER_GEARS:
            cid = p.createConstraint(self.id, self._joint[parent], self.id, self._joint[child],
                                     jointType=p.JOINT_GEAR, jointAxis=[1, 0, 0],
                                     parentFramePosition=[0, 0, 0], childFramePosition=[0, 0, 0], **c)
            p.changeConstraint(cid, gearRatio=-1, maxForce=200, erp=0.8, **c)
        for link in [self._joint["link:" + n] for n in ("left_finger", "right_finger")]:
            p.changeDynamics(self.id, link, lateralFriction=1.5, spinningFriction=0.003,
                             frictionAnchor=True, **c)

    # ---- state ----
    def reset(self, joint_positions, gripper_open: bool = True) -> None:
        c = dict(physicsClientId=self.client)
        for j, q in zip(self.arm, joint_positions):
            p.resetJointState(self.id, j, q, 0.0, **c)
        g = GRIPPER_OPEN if gripper_open else GRIPPER_CLOSED
        for n in GRIPPER_DRIVEN + GRIPPER_FOLLOW + [x[1] for x in GRIPPER_GEARS]:
            p.resetJointState(self.id, self._joint[n], g, 0.0, **c)
        self.command_joints(joint_positions)
        self.set_gripper(closed=not gripper_open)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and orientation quaternion (x, y, z, w), world frame."""
        s = p.getLinkState(self.id, self.tcp, computeForwardKinematics=True,
                           physicsClientId=self.client)
        return np.array(s[4]), np.array(s[5])

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in p.getJointStates(self.id, self.arm, physicsClientId=self.client)])

    def gripper_angle(self) -> float:
        return p.getJointState(self.id, self._joint["drive_joint"], physicsClientId=self.client)[0]

    def finger_links(self) -> list[int]:
        return [self._joint["link:left_finger"], self._joint["link:right_finger"]]

    # ---- control ----
    def solve_ik(self, pos, orn, iterations: int = 30) -> list[float]:
        q = p.calculateInverseKinematics(
            self.id, self.tcp, pos, orn, lowerLimits=self.lower, upperLimits=self.upper,
            jointRanges=self.ranges, restPoses=REST_POSE, maxNumIterations=iterations,
            residualThreshold=1e-4, physicsClientId=self.client)
        return list(q[:6])

    def command_joints(self, q) -> None:
        p.setJointMotorControlArray(self.id, self.arm, p.POSITION_CONTROL, targetPositions=q,
                                    forces=[200.0] * 6, positionGains=[0.3] * 6,
                                    physicsClientId=self.client)

    def set_ee_target(self, pos, orn) -> list[float]:
        q = self.solve_ik(pos, orn)
        self.command_joints(q)
        return q

    def set_gripper(self, closed: bool) -> None:
        self.gripper_closed = bool(closed)
        target = GRIPPER_CLOSED if closed else GRIPPER_OPEN
        c = dict(physicsClientId=self.client)
        for n in GRIPPER_DRIVEN:
            p.setJointMotorControl2(self.id, self._joint[n], p.POSITION_CONTROL, targetPosition=target,
                                    force=40.0, maxVelocity=10.0, **c)
        for n in GRIPPER_FOLLOW:
            p.setJointMotorControl2(self.id, self._joint[n], p.POSITION_CONTROL, targetPosition=target,
                                    force=2.0, maxVelocity=10.0, **c)


def home_joint_positions(client: int, robot: XArm, pos=HOME_POS, euler=DOWN_EULER) -> list[float]:
    """Joint angles that put the TCP at ``pos`` pointing down (iterated IK on a reset arm)."""
    orn = p.getQuaternionFromEuler(euler)
    q = list(REST_POSE)
    for _ in range(20):
        robot.reset(q)
        q = robot.solve_ik(pos, orn, iterations=100)
    robot.reset(q)
    return q


if __name__ == "__main__":
    print("wrote", generate_lowpoly_urdf())
    print("triangles are primitives; file size", os.path.getsize(LOWPOLY_URDF), "bytes")
