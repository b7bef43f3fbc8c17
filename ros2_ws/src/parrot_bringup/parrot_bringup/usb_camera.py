"""`usb_camera` node: OpenCV VideoCapture -> sensor_msgs/Image rgb8 on `camera/image_raw`.

`device`: a device index ("0"), a device path ("/dev/video2") or a video file; a file is
played at `rate_hz` and, with `loop: true`, restarted at its end (handy for bench tests and
replays). Images are stamped with the node clock when the frame is grabbed, before it is
decoded (the stamp the policy copies into its command, and the bridge's stale-image guard
measures against), converted BGR -> RGB, optionally resized to `width` x `height` (0 = as
captured) with cv2.INTER_AREA, and published with the sensor-data QoS (best effort, keep last
5; `image_qos: reliable` for lock-step use).

With `model_view_topic` set, the node also publishes the models' view of each frame there,
with the same stamp: cropped by `camera_file` (as the policy node would crop it) and resized to
`model_view_size`. A policy node on that topic then gets a 7 KB image instead of a 921 KB
frame (VGA) and has nothing to crop or resize (the README's latency table measures both
routes); the full frames stay on `topic` for the recorder (`publish_full_frames: false` drops
them).

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
from parrot_core.camera import CameraError as CameraFileError
from parrot_core.camera import model_image, optional_camera

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
    "model_view_topic": Param("", "also publish the models' view of each frame here ('' = off)"),
    "model_view_size": Param([48, 48], "[H, W] of the models' view (the prior's image size)"),
    "camera_file": Param("", "the camera file (config/camera.yaml form) whose crop makes the "
                             "models' view; '' resizes the whole frame"),
    "publish_full_frames": Param(True, "publish the frames on `topic` (the recorder's)"),
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
        qos = itf.image_qos(self.p["image_qos"])
        self.pub = (self.create_publisher(Image, self.p["topic"], qos)
                    if self.p["publish_full_frames"] else None)
        self.view = self._model_view_settings(frame)
        if self.pub is None and not self.view:
            raise CameraError("publish_full_frames is false and model_view_topic is empty: "
                              "the node would publish nothing")
        self.pub_view = (self.create_publisher(Image, self.p["model_view_topic"], qos)
                         if self.view else None)
        self.published = 0
        self.finished = False
        self.exit_code = 0
        self.timer = self.create_timer(1.0 / float(self.p["rate_hz"]), self._tick)
        self.get_logger().info(
            f"{'file' if self.is_file else 'device'} {self.p['device']}: "
            f"{frame.shape[1]}x{frame.shape[0]} at {self.p['rate_hz']} Hz -> {self.p['topic']}")

    def _model_view_settings(self, frame):
        """(size, camera) of the models' view, or None when `model_view_topic` is off; a camera
        file that does not fit the frames is a CameraError now, not a silent wrong crop."""
        if not self.p["model_view_topic"]:
            return None
        size = [int(v) for v in self.p["model_view_size"]]
        if len(size) != 2 or min(size) < 1:
            raise CameraError(f"model_view_size must be [H, W] with H, W >= 1, got {size}")
        try:
            camera = optional_camera(self.p["camera_file"])
            model_image(frame, size, camera)  # refuses a frame the file does not describe
        except CameraFileError as e:
            raise CameraError(f"camera_file: {e}") from None
        return tuple(size), camera

    def _grab(self) -> bool:
        if self.cap.grab():
            return True
        if self.is_file and self.p["loop"]:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return self.cap.grab()
        return False

    def _read(self):
        """(stamp_ns, BGR frame) or (None, None) at the end. The stamp is taken when the frame
        is grabbed (a device blocks there until its next frame), before the decode."""
        if self._first is not None:
            frame, self._first = self._first, None
            return self.get_clock().now().nanoseconds, frame
        if not self._grab():
            return None, None
        stamp_ns = self.get_clock().now().nanoseconds
        ok, frame = self.cap.retrieve()
        return (stamp_ns, frame) if ok else (None, None)

    def _tick(self) -> None:
        stamp_ns, frame = self._read()
        if frame is None:
            if self.is_file:
                self.get_logger().info(f"end of {self.p['device']} after {self.published} images")
            else:
                self.get_logger().error(f"camera {self.p['device']} stopped giving frames")
                self.exit_code = 1
            self.finished = True
            return
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if self.view:  # first: the policy waits on this one
            size, camera = self.view
            self.pub_view.publish(itf.numpy_to_image(model_image(rgb, size, camera), stamp_ns,
                                                     self.p["frame_id"]))
        if self.pub is not None:
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
