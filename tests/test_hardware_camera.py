"""usb_camera node: OpenCV VideoCapture -> sensor_msgs/Image rgb8, over real DDS.

Pins: a video file (written here with cv2.VideoWriter) is published as rgb8 images of the
requested size, BGR converted to RGB, with increasing stamps, on camera/image_raw with the
sensor-data QoS; the models' view (model_view_topic) is the frame cropped and resized as the
policy node would, with the frame's stamp; a device or file that cannot be opened, or a
configuration that would publish nothing, is a clear error (CameraError in process, exit code
1 and the message from the node executable).
"""

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from hardware_fakes import ROOT, domain_for, ros_env, stop_process
from ros_helpers import stop
from parrot_bringup.usb_camera import CameraError, open_capture

CAMERA_FILE = ROOT / "ros2_ws" / "src" / "parrot_bringup" / "config" / "camera.yaml"


def _video(path, n=10, size=(32, 24)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, :, 2] = 255  # BGR: pure red
        frame[:2, :2] = (i * 20) % 256
        w.write(frame)
    w.release()
    return path


def test_unopenable_devices_are_clear_errors(tmp_path):
    with pytest.raises(CameraError, match="no such file or device"):
        open_capture(str(tmp_path / "missing.avi"))
    bad = tmp_path / "not_a_video.avi"
    bad.write_bytes(b"garbage")
    with pytest.raises(CameraError, match="cannot open video file"):
        open_capture(str(bad))


def test_node_exits_with_a_clear_error_for_a_missing_device(tmp_path):
    r = subprocess.run([sys.executable, "-m", "parrot_bringup.usb_camera", "--ros-args",
                        "-p", f"device:={tmp_path / 'nope.mp4'}"], capture_output=True, text=True,
                       env=ros_env(domain_for(__name__)), cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert "usb_camera: error: camera device" in r.stdout + r.stderr


def test_node_refuses_to_publish_nothing(tmp_path):
    video = _video(tmp_path / "clip.avi")
    r = subprocess.run([sys.executable, "-m", "parrot_bringup.usb_camera", "--ros-args",
                        "-p", f"device:={video}", "-p", "publish_full_frames:=false"],
                       capture_output=True, text=True, env=ros_env(domain_for(__name__)), cwd=ROOT,
                       timeout=60)
    assert r.returncode == 1
    assert "the node would publish nothing" in r.stdout + r.stderr


def test_a_model_view_size_that_is_not_h_w_is_refused_at_start(tmp_path):
    video = _video(tmp_path / "clip.avi")
    r = subprocess.run([sys.executable, "-m", "parrot_bringup.usb_camera", "--ros-args",
                        "-p", f"device:={video}", "-p", "model_view_topic:=camera/model_view",
                        "-p", "model_view_size:=[0, 48]"],
                       capture_output=True, text=True, env=ros_env(domain_for(__name__)), cwd=ROOT,
                       timeout=60)
    assert r.returncode == 1
    assert "model_view_size must be [H, W] with H, W >= 1, got [0, 48]" in r.stdout + r.stderr


def test_a_camera_file_that_does_not_fit_the_frames_is_refused_at_start(tmp_path):
    """The shipped camera file is 640x480; 32x24 frames cannot be cropped by it."""
    video = _video(tmp_path / "clip.avi")
    r = subprocess.run([sys.executable, "-m", "parrot_bringup.usb_camera", "--ros-args",
                        "-p", f"device:={video}", "-p", "model_view_topic:=camera/model_view",
                        "-p", f"camera_file:={CAMERA_FILE}"],
                       capture_output=True, text=True, env=ros_env(domain_for(__name__)), cwd=ROOT,
                       timeout=60)
    assert r.returncode == 1
    assert "usb_camera: error: camera_file:" in r.stdout + r.stderr


@pytest.mark.ros
def test_the_models_view_is_the_frame_cropped_as_the_policy_would_with_its_stamp(tmp_path):
    """640x480 frames with the shipped camera file: each image on the model-view topic equals
    parrot_core.camera.model_image(the full frame of the same stamp, 48x48, the camera)."""
    from sensor_msgs.msg import Image

    from parrot_bringup import interfaces as itf
    from parrot_core.camera import load_camera, model_image
    from ros_helpers import TestNode, start_node

    video = _video(tmp_path / "clip.avi", n=10, size=(640, 480))
    t = TestNode(domain_for(f"{__name__}:view"))
    frames, views = {}, {}
    qos = itf.image_qos("sensor")
    t.node.create_subscription(Image, itf.TOPIC_IMAGE,
                               lambda m: frames.setdefault(itf.stamp_to_ns(m.header.stamp), m), qos)
    t.node.create_subscription(Image, "camera/model_view",
                               lambda m: views.setdefault(itf.stamp_to_ns(m.header.stamp), m), qos)
    camera = start_node("usb_camera", {"device": str(video), "rate_hz": 30.0, "loop": True,
                                       "model_view_topic": "camera/model_view",
                                       "model_view_size": [48, 48],
                                       "camera_file": str(CAMERA_FILE)},
                        ros_env(domain_for(f"{__name__}:view")), tmp_path / "camera.log")
    try:
        assert t.spin_until(lambda: len(frames.keys() & views.keys()) >= 5, 60), (
            (tmp_path / "camera.log").read_text()[-1500:])
    finally:
        t.close()
        stop(camera)
    cam = load_camera(CAMERA_FILE)
    for stamp in sorted(frames.keys() & views.keys())[:5]:
        view = itf.image_to_numpy(views[stamp])
        assert view.shape == (48, 48, 3)
        assert np.array_equal(view, model_image(itf.image_to_numpy(frames[stamp]), (48, 48), cam))


@pytest.mark.ros
def test_video_file_is_published_as_rgb8_with_sensor_qos(tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from parrot_bringup import interfaces as itf

    video = _video(tmp_path / "clip.avi")
    domain = domain_for(__name__)
    proc = subprocess.Popen(
        [sys.executable, "-m", "parrot_bringup.usb_camera", "--ros-args", "-p", f"device:={video}",
         "-p", "rate_hz:=30.0", "-p", "width:=16", "-p", "height:=12"],
        env=ros_env(domain), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("camera_probe", context=ctx)
    got = []
    node.create_subscription(Image, itf.TOPIC_IMAGE, got.append, itf.image_qos("sensor"))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        end = time.monotonic() + 20
        while len(got) < 15 and time.monotonic() < end and proc.poll() is None:
            ex.spin_once(timeout_sec=0.05)
    finally:
        stop_process(proc)
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    assert len(got) >= 15, proc.stdout.read().decode()[-2000:]  # 10 frames, so it looped
    msg = got[-1]
    assert msg.encoding == "rgb8" and (msg.height, msg.width) == (12, 16)
    img = itf.image_to_numpy(msg)
    assert abs(int(img[6, 8, 0]) - 255) <= 3 and img[6, 8, 2] <= 3  # red stays red in RGB
    stamps = [itf.stamp_to_ns(m.header.stamp) for m in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


@pytest.mark.ros
@pytest.mark.parametrize("width,height,route", [(640, 480, "full frames"), (1280, 720, "full frames"),
                                                (1280, 720, "model view")])
def test_full_size_camera_frames_each_get_a_command(tmp_path, width, height, route):
    """A 30 Hz camera at VGA and 720p (921 KB / 2.7 MB per rgb8 frame, above Fast DDS's
    default 512 KB shared-memory segment) -> the policy node in another process: of the
    frames published once the policy answers (the test sees every frame's stamp too),
    nearly all become commands (before the packaged DDS profile: 14% at VGA). Either the
    frames cross processes at full size and the policy node resizes them, or the camera
    publishes the models' view beside them (hardware.yaml) and the policy acts on that."""
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image

    from parrot_bringup import interfaces as itf
    from parrot_bringup.recorder import header_stamp_ns
    from ros_helpers import TestNode, export_tiny_prior, start_node

    window = 90  # frames counted after the first command
    video = _video(tmp_path / "clip.avi", n=30, size=(width, height))
    prior = export_tiny_prior(tmp_path / "prior", image_size=32)
    domain = domain_for(f"{__name__}:{width}:{route}")
    env = ros_env(domain)
    t = TestNode(domain)
    commands, frames = set(), []
    t.node.create_subscription(TwistStamped, itf.TOPIC_TWIST,
                               lambda m: commands.add(itf.stamp_to_ns(m.header.stamp)),
                               itf.command_qos())
    # raw: only the stamp is read, so watching every frame costs the test next to nothing
    t.node.create_subscription(Image, itf.TOPIC_IMAGE, lambda b: frames.append(header_stamp_ns(b)),
                               itf.image_qos("sensor"), raw=True)
    view = {"model_view_topic": "camera/model_view", "model_view_size": [32, 32]}
    policy = start_node("policy", {"mode": "prior", "prior_dir": str(prior), "control_rate_hz": 30.0,
                                   **({"image_topic": "camera/model_view"} if route == "model view"
                                      else {})}, env, tmp_path / "policy.log")
    camera = start_node("usb_camera", {"device": str(video), "rate_hz": 30.0, "loop": True,
                                       **(view if route == "model view" else {})},
                        env, tmp_path / "camera.log")

    def counted():
        first = min(commands) if commands else None
        return [f for f in frames if first is not None and f >= first]
    try:
        assert t.spin_until(lambda: len(counted()) >= window, 60), (
            f"{len(frames)} frames seen, {len(commands)} commands\n" +
            (tmp_path / "camera.log").read_text()[-1000:] + (tmp_path / "policy.log").read_text()[-1000:])
        # the commands of the last counted frames may still be in flight
        t.spin_until(lambda: set(counted()[:window]) <= commands, 2.0)
    finally:
        t.close()
        stop(camera)
        stop(policy)
    seen = counted()[:window]
    answered = [f for f in seen if f in commands]
    print(f"{width}x{height}, {route}: {len(answered)}/{len(seen)} frames answered")
    # the benchmark's target is 99%; 90% here leaves room for a loaded test machine
    assert len(answered) >= 0.9 * len(seen), (len(answered), len(seen))
