"""`teleop` node: keyboard (in this terminal) or a joystick (sensor_msgs/Joy) -> 7D commands.

Like every other driver it answers camera images: for each image it publishes the command
currently held, stamped with that image's stamp, so the recorder pairs what the operator
did with what the camera showed (`parrot bag2dataset` then makes a `teleop` dataset from
the bag). Run it in its own terminal:
`python -m parrot_bringup.teleop --ros-args --params-file config/sim.yaml`.

Keys (a key counts as held for `key_hold_s` after its last auto-repeat):
    w/s  +x/-x     a/d  +y/-y     r/f  +z/-z
    i/k  +pitch/-pitch   j/l  +roll/-roll   u/o  +yaw/-yaw
    c    close gripper   v    open gripper  (latched until the other key)
    space  stop (zero motion)              n  reset the twin (new episode)
    Ctrl-C quit
Joystick (`joy` topic): axes `joy_axes` map to [dx, dy, dz, droll, dpitch, dyaw] (-1 = unused),
buttons `joy_close`/`joy_open` close/open the gripper.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState, Joy
from std_srvs.srv import Trigger

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import COMMAND_FRAME, IMAGE_QOS, Param, declare, run_node

KEYMAP = {  # key -> (action index, sign)
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "l": (3, 1), "j": (3, -1), "i": (4, 1), "k": (4, -1), "u": (5, 1), "o": (5, -1),
}

PARAMS = {
    "speed": Param(0.6, "|action| of a held key", (0.0, 1.0)),
    "key_hold_s": Param(0.6, "a key counts as held this long after its last repeat (s)",
                        (0.05, 5.0)),
    "keyboard": Param(True, "read the terminal's keyboard"),
    "joy_axes": Param([1, 0, 4, -1, -1, 3], "sensor_msgs/Joy axis index of dx, dy, dz, droll, "
                                            "dpitch, dyaw (-1: unused)"),
    "joy_close": Param(0, "Joy button that closes the gripper", (0, 63)),
    "joy_open": Param(1, "Joy button that opens the gripper", (0, 63)),
    "joy_deadzone": Param(0.1, "|axis| below this counts as 0", (0.0, 1.0)),
    "control_rate_hz": Param(10.0, "command rate (Hz); twist = per-step delta x rate", (0.1, 1000.0)),
    "command_frame": COMMAND_FRAME,
    "image_qos": IMAGE_QOS,
}


class TeleopNode(Node):
    def __init__(self, name: str = "teleop", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.rate = float(self.p["control_rate_hz"])
        self.pub_twist = self.create_publisher(TwistStamped, itf.TOPIC_TWIST, itf.command_qos())
        self.pub_grip = self.create_publisher(JointState, itf.TOPIC_GRIPPER, itf.command_qos())
        self.create_subscription(Image, itf.TOPIC_IMAGE, self._on_image,
                                 itf.image_qos(self.p["image_qos"]))
        self.create_subscription(Joy, itf.TOPIC_JOY, self._on_joy, itf.image_qos("sensor"))
        self.reset_client = self.create_client(Trigger, itf.SERVICE_RESET)
        self.lock = threading.Lock()
        self.key_until = np.zeros(6)  # per axis: monotonic time the key press expires
        self.key_sign = np.zeros(6)
        self.joy = np.zeros(6)
        self.gripper = 1.0  # open
        self.finished = False
        self._stop = threading.Event()
        self._tty = None
        if self.p["keyboard"] and sys.stdin.isatty():
            threading.Thread(target=self._keyboard, daemon=True).start()
            self.get_logger().info(__doc__.split("Keys")[1].split("Joystick")[0])
        elif self.p["keyboard"]:
            self.get_logger().warning("stdin is not a terminal: keyboard off (joystick only)")

    def current_action(self) -> np.ndarray:
        with self.lock:
            now = time.monotonic()
            keys = np.where(self.key_until > now, self.key_sign, 0.0) * float(self.p["speed"])
            move = np.where(np.abs(self.joy) > 0, self.joy, keys)
            return np.concatenate([move, [self.gripper]]).astype(np.float32)

    def press(self, ch: str) -> None:
        with self.lock:
            if ch in KEYMAP:
                i, sign = KEYMAP[ch]
                self.key_sign[i] = sign
                self.key_until[i] = time.monotonic() + float(self.p["key_hold_s"])
            elif ch == "c":
                self.gripper = -1.0
            elif ch == "v":
                self.gripper = 1.0
            elif ch == " ":
                self.key_until[:] = 0
        if ch == "n" and self.reset_client.service_is_ready():
            self.reset_client.call_async(Trigger.Request())
        if ch == "\x03":
            self.finished = True

    def _keyboard(self):
        import termios
        import tty
        fd = sys.stdin.fileno()
        self._tty = (fd, termios.tcgetattr(fd))
        tty.setcbreak(fd)
        try:
            while not self._stop.is_set():
                if select.select([fd], [], [], 0.1)[0]:
                    self.press(os.read(fd, 1).decode(errors="ignore").lower())
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, self._tty[1])

    def _on_joy(self, msg: Joy):
        axes = list(msg.axes)
        v = np.zeros(6)
        for i, ax in enumerate(self.p["joy_axes"]):
            if 0 <= ax < len(axes) and abs(axes[ax]) > float(self.p["joy_deadzone"]):
                v[i] = float(np.clip(axes[ax], -1, 1))
        with self.lock:
            self.joy = v
            buttons = list(msg.buttons)
            if 0 <= self.p["joy_close"] < len(buttons) and buttons[self.p["joy_close"]]:
                self.gripper = -1.0
            if 0 <= self.p["joy_open"] < len(buttons) and buttons[self.p["joy_open"]]:
                self.gripper = 1.0

    def _on_image(self, msg: Image):
        stamp_ns = itf.stamp_to_ns(msg.header.stamp)
        twist, grip = itf.action_to_msgs(self.current_action(), stamp_ns, self.rate,
                                         self.p["command_frame"])
        self.pub_twist.publish(twist)
        self.pub_grip.publish(grip)

    def close(self):
        self._stop.set()
        if self._tty is not None:
            import termios
            termios.tcsetattr(self._tty[0], termios.TCSADRAIN, self._tty[1])


def main(argv=None) -> int:
    return run_node(TeleopNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
