"""One camera description for the twin and the arm: its mount, its intrinsics, and the square
view the models see.

The file is a ROS camera calibration YAML (the keys `camera_calibration` writes and
camera_info_manager reads: image_width, image_height, camera_matrix, ...) with two more:

    mount:
      position: [x, y, z]          # optical centre in the arm's base frame, metres
      orientation: [x, y, z, w]    # optical frame (z forward, x right, y down) in the base frame
    model_fov_deg: 29.0            # field of view of the square image the models take

Both worlds produce the models' image from it the same way:
- the twin renders a square view from the mount with `model_fov_deg` (sim/env.py);
- a real frame (width x height) is cropped to the square of that field of view around the
  principal point, then resized with INTER_AREA (`model_view`): no aspect-ratio distortion.
A square crop spans 2 fy tan(fov / 2) pixels; a camera whose image cannot hold it is refused.
Distortion coefficients are not applied: give the nodes rectified frames (image_proc), or a
camera whose distortion is small over the crop.
`DEFAULT_CAMERA` is the twin's camera (a 640x480 camera with the intrinsics of a RealSense
D435's colour stream), and `config/camera.yaml` of parrot_bringup holds the same numbers.

No ROS and no PyBullet here: the robot's computer crops with numpy and OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parrot_core.safety import quaternion_from_rotation, quaternion_matrix


class CameraError(ValueError):
    """A camera file that cannot be used, or a frame that does not fit the camera."""


@dataclass(frozen=True)
class CameraModel:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]  # x, y, z, w
    model_fov_deg: float = 29.0

    def __post_init__(self):
        if self.width < 1 or self.height < 1 or not (self.fx > 0 and self.fy > 0):
            raise CameraError(f"camera needs a positive size and focal lengths, got "
                              f"{self.width}x{self.height}, fx {self.fx}, fy {self.fy}")
        if not 0.0 < self.model_fov_deg < 180.0:
            raise CameraError(f"model_fov_deg must be in (0, 180), got {self.model_fov_deg}")
        q = np.asarray(self.orientation, float)
        if q.shape != (4,) or abs(np.linalg.norm(q) - 1.0) > 1e-3:
            raise CameraError(f"mount orientation must be a unit quaternion [x, y, z, w], "
                              f"got {list(self.orientation)}")
        u0, v0, side = self.crop_box()
        if u0 < 0 or v0 < 0 or u0 + side > self.width or v0 + side > self.height:
            raise CameraError(
                f"the models' {self.model_fov_deg} deg view needs a {side} px square around "
                f"({self.cx:.0f}, {self.cy:.0f}), more than the {self.width}x{self.height} "
                f"image holds: a wider lens, or a smaller model_fov_deg (and re-collect)")

    def crop_box(self) -> tuple[int, int, int]:
        """(left, top, side) in pixels of the square the models see, centred on the principal
        point; rounded to whole pixels (at most half a pixel of the full frame off)."""
        side = int(round(2.0 * self.fy * math.tan(math.radians(self.model_fov_deg) / 2.0)))
        return int(round(self.cx - side / 2.0)), int(round(self.cy - side / 2.0)), side

    def rotation(self) -> np.ndarray:
        """3x3 rotation of the optical frame in the base frame (columns: x right, y down, z forward)."""
        q = np.asarray(self.orientation, float)
        return quaternion_matrix(q / np.linalg.norm(q))

    def look_at(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(eye, a point straight ahead, up vector) in the base frame, as renderers take them."""
        r = self.rotation()
        eye = np.asarray(self.position, float)
        return eye, eye + r[:, 2], -r[:, 1]

    def frustum(self, near: float) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) at `near` of the full frame, for an OpenGL projection."""
        return (-self.cx * near / self.fx, (self.width - self.cx) * near / self.fx,
                -(self.height - self.cy) * near / self.fy, self.cy * near / self.fy)

    def view_record(self) -> dict:
        """What fixes the models' image of a scene (mount and field of view; not the lens's
        resolution): stored with datasets and priors so a twin can be checked against it."""
        return {"position": [float(v) for v in self.position],
                "orientation": [float(v) for v in self.orientation],
                "model_fov_deg": float(self.model_fov_deg)}

    def to_yaml_dict(self, name: str = "parrot_camera") -> dict:
        return {
            "image_width": self.width, "image_height": self.height, "camera_name": name,
            "camera_matrix": {"rows": 3, "cols": 3,
                              "data": [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]},
            "distortion_model": "plumb_bob",
            "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
            "mount": {"position": [float(v) for v in self.position],
                      "orientation": [float(v) for v in self.orientation]},
            "model_fov_deg": self.model_fov_deg,
        }


def table_camera(elevation_deg: float, distance_m: float, azimuth_deg: float = 0.0,
                 target=(0.39, 0.0, 0.02), model_fov_deg: float = 29.0) -> CameraModel:
    """A 640x480 camera (RealSense D435 colour intrinsics) looking at ``target`` from
    ``distance_m``, ``elevation_deg`` down from the horizontal. Azimuth 0: in front of the
    robot (+x) looking back at it; 90: on its left (+y)."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    back = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    forward = -back  # from the eye to the target
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return CameraModel(
        width=640, height=480, fx=615.0, fy=615.0, cx=320.0, cy=240.0,
        position=tuple(float(v) for v in np.asarray(target, float) + distance_m * back),
        orientation=quaternion_from_rotation(np.stack([right, down, forward], axis=1)),
        model_fov_deg=model_fov_deg)


# The twin's camera: 0.62 m from a point 2 cm above the middle of the spawn region, in front of
# the robot and looking back at it 45 deg down (reasons in docs/ARCHITECTURE.md, figures from
# `parrot render-scene --stats`).
# Written out rather than table_camera(45.0, 0.62), which differs in the last bit (sin 45 deg
# is one ulp below sqrt(0.5)) and so renders a rare pixel differently from the shipped data.
_S = math.sqrt(0.5)
DEFAULT_CAMERA = CameraModel(
    width=640, height=480, fx=615.0, fy=615.0, cx=320.0, cy=240.0,
    position=(0.39 + 0.62 * _S, 0.0, 0.02 + 0.62 * _S),
    orientation=quaternion_from_rotation(np.array([[0.0, _S, -_S], [1.0, 0.0, 0.0],
                                                   [0.0, -_S, -_S]])),
    model_fov_deg=29.0)


def load_camera(path) -> CameraModel:
    """A camera file (see the module docstring) -> CameraModel; CameraError names what is wrong."""
    import yaml
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise CameraError(f"{path}: cannot read the camera file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise CameraError(f"{path}: not YAML ({e})") from None
    try:
        k = [float(v) for v in doc["camera_matrix"]["data"]]
        mount = doc["mount"]
        if len(k) != 9:
            raise CameraError(f"{path}: camera_matrix.data needs 9 numbers, got {len(k)}")
        return CameraModel(width=int(doc["image_width"]), height=int(doc["image_height"]),
                           fx=k[0], fy=k[4], cx=k[2], cy=k[5],
                           position=tuple(float(v) for v in mount["position"]),
                           orientation=tuple(float(v) for v in mount["orientation"]),
                           model_fov_deg=float(doc.get("model_fov_deg", 29.0)))
    except (KeyError, TypeError) as e:
        raise CameraError(f"{path}: a camera file needs image_width, image_height, "
                          f"camera_matrix.data and mount.position/orientation (missing {e})") from None
    except CameraError as e:
        raise CameraError(f"{path}: {e}") from None


def same_view(a: dict, b: dict, tol_m: float = 1e-3, tol_deg: float = 0.1) -> bool:
    """Two view records (CameraModel.view_record) within 1 mm, 0.1 deg of aim and of FOV."""
    qa, qb = np.asarray(a["orientation"], float), np.asarray(b["orientation"], float)
    angle = math.degrees(2.0 * math.acos(min(1.0, abs(float(qa @ qb)))))
    return (np.linalg.norm(np.subtract(a["position"], b["position"])) <= tol_m
            and angle <= tol_deg and abs(a["model_fov_deg"] - b["model_fov_deg"]) <= tol_deg)


def describe_view(view: dict) -> str:
    x, y, z = view["position"]
    return f"a camera at ({x:.3f}, {y:.3f}, {z:.3f}) m with a {view['model_fov_deg']:g} deg view"


def check_view(trained_on: dict | None, camera: CameraModel, what: str) -> None:
    """Refuse to run ``what`` (a prior or policy) in a twin that renders from another camera
    than its training images came from: its success there would be silently meaningless.
    ``trained_on`` None (an older export that did not record it): nothing to check."""
    if trained_on is None or same_view(trained_on, camera.view_record()):
        return
    raise CameraError(
        f"{what} was trained on images from {describe_view(trained_on)}, but this twin renders "
        f"from {describe_view(camera.view_record())}: pass --camera-file with the camera its "
        f"data was collected with")


def optional_camera(path) -> CameraModel | None:
    """The camera of a `--camera-file` / `camera_file` option: None when the option is empty."""
    return load_camera(path) if path else None


def twin_camera(path) -> CameraModel:
    """The camera the twin renders from for a `--camera-file` option: the file's, else
    DEFAULT_CAMERA."""
    return optional_camera(path) or DEFAULT_CAMERA


def resize_for_model(img: np.ndarray, size) -> np.ndarray:
    """OpenCV INTER_AREA resize to (H, W) as ARCHITECTURE.md prescribes; no-op if equal."""
    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return img
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def model_image(frame: np.ndarray, size, camera: CameraModel | None = None) -> np.ndarray:
    """A camera frame -> the models' input image: cropped to the models' field of view by the
    camera file when there is one (model_view), else the whole frame resized (the twin's own
    images). What the policy node, bag2dataset, replay and the LeRobot import all do."""
    if camera is not None:
        return model_view(frame, camera, size)
    return resize_for_model(frame, size)


def model_view(image: np.ndarray, camera: CameraModel, size) -> np.ndarray:
    """A full camera frame (H, W, 3) -> the models' (size) image: the square crop of the models'
    field of view, resized with INTER_AREA. A frame of another size than the camera's is
    refused: cropping it would frame another view."""
    import cv2
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] != (camera.height, camera.width):
        raise CameraError(f"frame is {image.shape[1]}x{image.shape[0]}, the camera file says "
                          f"{camera.width}x{camera.height}")
    u0, v0, side = camera.crop_box()
    crop = np.ascontiguousarray(image[v0:v0 + side, u0:u0 + side])
    if (h, w) == (side, side):
        return crop
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
