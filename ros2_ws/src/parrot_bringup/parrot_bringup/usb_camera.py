"""`usb_camera` node: OpenCV VideoCapture -> sensor_msgs/Image rgb8 on `camera/image_raw`.

`device`: a device index ("0"), a device path ("/dev/video2") or a video file; a file is
played at `rate_hz` and, with `loop: true`, restarted at its end (handy for bench tests and
replays). Images are stamped with the node clock at capture (the stamp the policy copies
into its command, and the bridge's stale-image guard measures against), converted BGR -> RGB,
optionally resized to `width` x `height` (0 = as captured) with cv2.INTER_AREA, and published
with the sensor-data QoS (best effort, keep last 5; `image_qos: reliable` for lock-step use).

A device that cannot be opened, or gives no first frame, is a CameraError naming the device
and what to check: the node exits with code 1 instead of publishing nothing.
"""

from __future__ import annotations

import os

import cv2
from rclpy.node import Node
from sensor_msgs.msg import Image

from parrot_bringup import interfaces as itf
from parrot_bringup.node_runtime import IMAGE_QOS, Param, declare, run_node

PARAMS = {
    "device": Param("0", "camera index (e.g. 0), device path or video file"),
    "rate_hz": Param(30.0, "publish rate (Hz)", (0.1, 240.0)),
    "width": Param(0, "published image width (0: as captured)", (0, 8192)),
    "height": Param(0, "published image height (0: as captured)", (0, 8192)),
    "loop": Param(True, "video files: restart at the end (else exit)"),
    "frame_id": Param(itf.DEFAULT_CAMERA_FRAME, "frame_id of the images"),
    "image_qos": IMAGE_QOS,
    "topic": Param(itf.TOPIC_IMAGE, "image topic"),
    "capture_width": Param(0, "ask the device for this capture width (0: its default)",
                           (0, 8192)),
    "capture_height": Param(0, "ask the device for this capture height (0: its default)",
                            (0, 8192)),
}


class CameraError(RuntimeError):
    """The camera device or file cannot be opened or read."""


def open_capture(device: str) -> tuple[cv2.VideoCapture, bool]:
    """Open an index, a /dev path or a file; returns (capture, is_file)."""
    dev = str(device).strip()
    is_file = False
    if dev.isdigit():
        cap = cv2.VideoCapture(int(dev))
        what = f"camera index {dev}"
    else:
        is_file = os.path.isfile(dev) and not dev.startswith("/dev/")
        if not is_file and not os.path.exists(dev):
            raise CameraError(f"camera device {dev!r}: no such file or device "
                              "(give an index like 0, a path like /dev/video0, or a video file)")
        cap = cv2.VideoCapture(dev)
        what = f"video file {dev}" if is_file else f"camera device {dev}"
    if not cap.isOpened():
        cap.release()
        raise CameraError(f"cannot open {what} with OpenCV VideoCapture "
                          "(unplugged? in use by another process? permission on /dev/video*?)")
    return cap, is_file


class UsbCamera(Node):
    def __init__(self, name: str = "usb_camera", **kwargs):
        super().__init__(name, **kwargs)
        self.p = declare(self, PARAMS)
        self.cap, self.is_file = open_capture(self.p["device"])
        if int(self.p["capture_width"]) > 0:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.p["capture_width"]))
        if int(self.p["capture_height"]) > 0:
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.p["capture_height"]))
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.cap.release()
            raise CameraError(f"{self.p['device']!r} opened but gave no frame")
        self._first = frame
        self.pub = self.create_publisher(Image, self.p["topic"], itf.image_qos(self.p["image_qos"]))
        self.published = 0
        self.finished = False
        self.exit_code = 0
        self.timer = self.create_timer(1.0 / float(self.p["rate_hz"]), self._tick)
        self.get_logger().info(
            f"{'file' if self.is_file else 'device'} {self.p['device']}: "
            f"{frame.shape[1]}x{frame.shape[0]} at {self.p['rate_hz']} Hz -> {self.p['topic']}")

    def _read(self):
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self.cap.read()
        if ok:
            return frame
        if self.is_file and self.p["loop"]:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
            if ok:
                return frame
        return None

    def _tick(self) -> None:
        stamp_ns = self.get_clock().now().nanoseconds
        frame = self._read()
        if frame is None:
            if self.is_file:
                self.get_logger().info(f"end of {self.p['device']} after {self.published} images")
            else:
                self.get_logger().error(f"camera {self.p['device']} stopped giving frames")
                self.exit_code = 1
            self.finished = True
            return
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        w, h = int(self.p["width"]), int(self.p["height"])
        if w > 0 and h > 0:
            rgb = itf.resize_for_model(rgb, (h, w))
        self.pub.publish(itf.numpy_to_image(rgb, stamp_ns, self.p["frame_id"]))
        self.published += 1

    def close(self) -> None:
        self.cap.release()


def main(argv=None) -> int:
    try:
        return run_node(UsbCamera, argv)
    except CameraError as e:
        print(f"usb_camera: error: {e}", flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
