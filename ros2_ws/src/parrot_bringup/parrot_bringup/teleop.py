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
    t    fine / coarse steps (fine_speed, speed)   space  stop (zero motion)
    Enter  start recording the episode   y  end it: success   x  end it: failure
    z    discard it (the same scene comes again)   n  a new scene
    Ctrl-C quit
Joystick (`joy` topic): axes `joy_axes` map to [dx, dy, dz, droll, dpitch, dyaw] (-1 = unused),
buttons `joy_close`/`joy_open` close/open the gripper. The same keys also arrive as text on
`parrot/teleop/key` (std_msgs/String), for a foot pedal, a GUI or a scripted operator.

Episodes are the operator's when the twin runs with `operator_episodes` (config/teleop.yaml):
a scene waits on view, unrecorded, until Enter; y / x end and label it, z drops it. In a
terminal the node keeps one status line: recording or not, episode, time left, gripper, step
size, and the tally so far, or what it is waiting for.
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
from std_msgs.msg import String
from std_srvs.srv import Trigger

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import COMMAND_FRAME, IMAGE_QOS, Param, declare, run_node
from parrot_core.action_space import POS_SCALE_M

KEYMAP = {  # key -> (action index, sign)
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "l": (3, 1), "j": (3, -1), "i": (4, 1), "k": (4, -1), "u": (5, 1), "o": (5, -1),
}

EPISODE_KEYS = {"\n": itf.SERVICE_EPISODE_START, "\r": itf.SERVICE_EPISODE_START,
                "y": itf.SERVICE_EPISODE_SUCCESS, "x": itf.SERVICE_EPISODE_FAILURE,
                "z": itf.SERVICE_EPISODE_DISCARD, "n": itf.SERVICE_RESET}

PARAMS = {
    "speed": Param(0.6, "|action| of a held key, coarse steps (x 3 cm per step)", (0.0, 1.0)),
    "fine_speed": Param(0.2, "|action| of a held key, fine steps (t toggles)", (0.0, 1.0)),
    "key_hold_s": Param(0.25, "a key counts as held this long after its last repeat (s)",
                        (0.05, 5.0)),
    "keyboard": Param(True, "read the terminal's keyboard"),
    "view_port": Param(0, "serve the live camera at http://localhost:PORT/ (0: off)", (0, 65535)),
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
        self.clients_by_name = {srv: self.create_client(Trigger, srv)
                                for srv in set(EPISODE_KEYS.values())}
        self.create_subscription(String, itf.TOPIC_TELEOP_KEY, self._on_key_msg,
                                 itf.command_qos())  # not latched: an old key never replays
        self.create_subscription(String, itf.TOPIC_EPISODE_EVENT, self._on_event, itf.event_qos())
        self.fine = False
        self.episode = None  # the running episode's start event, None between episodes
        self.tally = {"success": 0, "failure": 0, "discarded": 0}
        self.last_image_at = None
        self._last_status = None
        self.view = None
        if int(self.p["view_port"]):
            from parrot_bringup.camera_view import CameraViewServer
            self.view = CameraViewServer(int(self.p["view_port"]))
            self.get_logger().info(f"camera view at http://localhost:{self.view.port}/")
        self.create_timer(0.5, self._show_status)
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
            self.get_logger().info("Keys" + __doc__.split("Keys")[1].split("Joystick")[0].rstrip())
        elif self.p["keyboard"]:
            self.get_logger().warning("stdin is not a terminal: keyboard off (joystick only)")

    def current_action(self) -> np.ndarray:
        with self.lock:
            now = time.monotonic()
            keys = np.where(self.key_until > now, self.key_sign, 0.0) * self.key_speed()
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
            elif ch == "t":
                self.fine = not self.fine
        if ch in EPISODE_KEYS:
            self.request(EPISODE_KEYS[ch])
        if ch == "\x03":
            self.finished = True

    def _on_key_msg(self, msg) -> None:
        for ch in msg.data:
            self.press(ch if ch in "\r\n" else ch.lower())

    def request(self, service: str) -> None:
        """Ask the twin (or the arm's episode runner) for an episode transition; say why not."""
        client = self.clients_by_name[service]
        if not client.service_is_ready():
            self.get_logger().warning(
                f"{service} is not offered: start the twin with operator_episodes: true "
                f"(config/teleop.yaml)" if service != itf.SERVICE_RESET else
                f"{service} is not offered (is the twin up?)")
            return
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda f: self._answered(service, f))

    def _answered(self, service: str, future) -> None:
        result = future.result()
        if result is None:
            return
        # one severity per call site: rclpy refuses a logging line that changes it
        if result.success:
            self.get_logger().info(f"{service}: {result.message}")
        else:
            self.get_logger().warning(f"{service}: {result.message}")

    def _on_event(self, msg) -> None:
        try:
            event = itf.EpisodeEvent.from_payload(itf.parse_json_msg(msg))
        except itf.InterfaceError:
            return
        if event.kind == "start":
            self.episode = {"episode": event.episode, "at": time.monotonic(),
                            "max_s": event.fields.get("max_steps", 0) / max(self.rate, 1e-9)}
            with self.lock:
                self.gripper = 1.0  # every episode starts with the gripper open
                self.key_until[:] = 0
        else:
            self.episode = None
            kind = ("discarded" if event.fields.get("discarded") else
                    "success" if event.fields.get("success") else "failure")
            self.tally[kind] += 1

    def key_speed(self) -> float:
        """|action| of a held key: fine or coarse steps (t toggles)."""
        return float(self.p["fine_speed"] if self.fine else self.p["speed"])

    def status_line(self) -> str:
        """What the operator needs to know now, in one line."""
        step_mm = self.key_speed() * POS_SCALE_M * 1e3
        gripper = "open" if self.gripper > 0 else "closed"
        tally = (f"{self.tally['success']} ok / {self.tally['failure']} failed / "
                 f"{self.tally['discarded']} discarded")
        if self.last_image_at is None or time.monotonic() - self.last_image_at > 1.0:
            head = f"waiting for camera images on {itf.TOPIC_IMAGE} (is the twin or the arm up?)"
        elif self.episode is None:
            head = "READY: Enter starts recording"
        else:
            left = self.episode["max_s"] - (time.monotonic() - self.episode["at"])
            head = f"REC episode {self.episode['episode']}, {max(left, 0.0):4.1f} s left"
        return (f"{head} | gripper {gripper} | {'fine' if self.fine else 'coarse'} "
                f"{step_mm:.0f} mm/step (t) | {tally}")

    def _show_status(self) -> None:
        line = self.status_line()
        state = line.split(" | ")[0].split(",")[0]  # waiting / READY / REC episode K
        if self._tty is not None:  # one line, rewritten in place
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        elif state != self._last_status:  # no terminal: log each change
            self._last_status = state
            self.get_logger().info(line)

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
        self.last_image_at = time.monotonic()
        if self.view is not None:
            try:
                self.view.update(itf.image_to_numpy(msg))
            except itf.ImageFormatError:
                pass  # the command below still goes out; the view just keeps the last frame
        stamp_ns = itf.stamp_to_ns(msg.header.stamp)
        twist, grip = itf.action_to_msgs(self.current_action(), stamp_ns, self.rate,
                                         self.p["command_frame"])
        self.pub_twist.publish(twist)
        self.pub_grip.publish(grip)

    def close(self):
        self._stop.set()
        if self.view is not None:
            self.view.close()
        if self._tty is not None:
            import termios
            termios.tcsetattr(self._tty[0], termios.TCSADRAIN, self._tty[1])


def main(argv=None) -> int:
    return run_node(TeleopNode, argv)


def add_teleop_arguments(parser) -> None:
    parser.add_argument("--params-file", default="teleop.yaml",
                        help="parameters YAML with a `teleop` section: a path, or a shipped "
                             "file by name (default teleop.yaml)")


def teleop_main(args) -> int:
    """`parrot teleop`: this node in this terminal, with a shipped or given parameters file."""
    from parrot_bringup.launcher import find_params_file
    return main(["--ros-args", "--params-file", str(find_params_file(args.params_file))])


if __name__ == "__main__":
    raise SystemExit(main())
