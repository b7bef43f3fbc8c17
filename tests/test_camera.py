"""One camera file for both worlds: the twin renders the models' view from it, and a full
camera frame cropped and resized by it gives the same framing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parrot_core.camera import (DEFAULT_CAMERA, CameraError, CameraModel, load_camera,
                                model_view, quaternion_from_rotation)

REPO_CAMERA_FILE = "ros2_ws/src/parrot_bringup/config/camera.yaml"


def test_the_shipped_camera_file_is_the_twins_default_camera():
    """config/camera.yaml (a ROS calibration YAML plus mount and model_fov_deg) loads as
    DEFAULT_CAMERA, and the twin's camera looks from where the twin always looked."""
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    cam = load_camera(repo / REPO_CAMERA_FILE)
    assert cam.width == 640 and cam.height == 480 and cam.model_fov_deg == 29.0
    np.testing.assert_allclose(cam.position, DEFAULT_CAMERA.position, atol=1e-6)
    np.testing.assert_allclose(cam.orientation, DEFAULT_CAMERA.orientation, atol=1e-6)
    eye, ahead, up = DEFAULT_CAMERA.look_at()
    np.testing.assert_allclose(eye, [0.39 + 0.62 * math.sqrt(0.5), 0.0, 0.02 + 0.62 * math.sqrt(0.5)])
    np.testing.assert_allclose(ahead - eye, [-math.sqrt(0.5), 0.0, -math.sqrt(0.5)], atol=1e-9)
    assert up[2] > 0  # the image's up points up


def test_quaternion_round_trips_through_rotation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
        cam = CameraModel(640, 480, 600, 600, 320, 240, (0, 0, 1), tuple(q))
        back = np.asarray(quaternion_from_rotation(cam.rotation()))
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9


def test_a_camera_that_cannot_hold_the_models_view_or_a_frame_of_another_size_is_refused(tmp_path):
    """A lens narrower than model_fov_deg, a non-unit quaternion, a file missing the mount and
    a frame of another size are CameraErrors that say what is wrong."""
    with pytest.raises(CameraError, match="more than the 640x480 image holds"):
        CameraModel(640, 480, 1500, 1500, 320, 240, (0, 0, 1), (0, 0, 0, 1))
    with pytest.raises(CameraError, match="unit quaternion"):
        CameraModel(640, 480, 600, 600, 320, 240, (0, 0, 1), (0, 0, 0, 2))
    f = tmp_path / "cam.yaml"
    f.write_text("image_width: 640\nimage_height: 480\ncamera_matrix: {data: [600,0,320,0,600,240,0,0,1]}\n")
    with pytest.raises(CameraError, match=r"cam.yaml: .*mount"):
        load_camera(f)
    with pytest.raises(CameraError, match="frame is 1280x720, the camera file says 640x480"):
        model_view(np.zeros((720, 1280, 3), np.uint8), DEFAULT_CAMERA, (48, 48))


def centroids(seg: np.ndarray, scale_x: float, scale_y: float) -> dict:
    """Body id -> (u, v) centre of its pixels, in 48x48 observation pixels."""
    out = {}
    for body in np.unique(seg):
        if body >= 0:
            ys, xs = np.nonzero(seg == body)
            out[int(body)] = np.array([(xs.mean() + 0.5) * scale_x, (ys.mean() + 0.5) * scale_y])
    return out


@pytest.mark.parametrize("seed", [3, 11])
def test_a_full_camera_frame_cropped_by_the_camera_file_frames_the_scene_as_the_twin(seed):
    """The twin's full 640x480 frame (the camera's intrinsics), put through model_view, shows
    every body where the twin's 48x48 observation shows it (centres within 1 px, colours within
    a few levels on average); squeezing the whole frame to 48x48 instead, as a plain resize
    would, moves them by several pixels."""
    pytest.importorskip("pybullet")
    import cv2
    import pybullet as p

    from sim.env import CAMERA_FAR_M, CAMERA_NEAR_M, EnvConfig, ParrotEnv
    env = ParrotEnv(EnvConfig())
    try:
        obs, _ = env.reset(seed=seed)
        cam = env.camera
        frame = env.render_camera_frame()
        assert frame.shape == (480, 640, 3)
        view = model_view(frame, cam, (48, 48))
        assert np.abs(view.astype(int) - obs).mean() < 8
        squeezed = cv2.resize(frame, (48, 48), interpolation=cv2.INTER_AREA)
        assert np.abs(squeezed.astype(int) - obs).mean() > 15

        proj = p.computeProjectionMatrix(*cam.frustum(CAMERA_NEAR_M), CAMERA_NEAR_M, CAMERA_FAR_M)
        seg = np.asarray(p.getCameraImage(cam.width, cam.height, env._view, proj,
                                          renderer=p.ER_TINY_RENDERER, shadow=0,
                                          physicsClientId=env.client)[4]).reshape(480, 640)
        u0, v0, side = cam.crop_box()
        twin = centroids(env.segmentation(), 1.0, 1.0)
        cropped = centroids(seg[v0:v0 + side, u0:u0 + side], 48 / side, 48 / side)
        whole = centroids(seg, 48 / 640, 48 / 480)
        assert len(twin) >= 4  # arm and objects in view
        for body, centre in twin.items():
            assert np.abs(cropped[body] - centre).max() < 1.0, body
        assert max(np.abs(whole[b] - c).max() for b, c in twin.items()) > 2.0
    finally:
        env.close()


def test_table_camera_looks_at_the_scene_from_where_it_is_told():
    """table_camera(elevation, distance, azimuth): the eye sits that far from the target,
    that many degrees up, and looks at it with the image's up pointing up."""
    from parrot_core.camera import table_camera
    target = np.array([0.39, 0.0, 0.02])
    for elevation, azimuth in ((45.0, 0.0), (60.0, 0.0), (55.0, 90.0)):
        cam = table_camera(elevation, 0.6, azimuth)
        eye, ahead, up = cam.look_at()
        assert np.linalg.norm(eye - target) == pytest.approx(0.6)
        assert math.degrees(math.asin((eye - target)[2] / 0.6)) == pytest.approx(elevation)
        np.testing.assert_allclose(ahead - eye, (target - eye) / 0.6, atol=1e-9)
        assert up[2] > 0


def test_views_match_within_a_millimetre_and_a_tenth_of_a_degree():
    """Datasets and priors record the camera's view; a twin with another mount or field of
    view is refused with both views named, and a prior that recorded none is not checked."""
    from parrot_core.camera import check_view, same_view, table_camera
    view = table_camera(45.0, 0.62).view_record()
    assert same_view(view, DEFAULT_CAMERA.view_record())
    nudged = dict(view, position=[view["position"][0] + 5e-4, *view["position"][1:]])
    assert same_view(view, nudged)
    assert not same_view(view, table_camera(45.5, 0.62).view_record())  # 0.5 deg of aim
    assert not same_view(view, dict(view, model_fov_deg=30.0))
    check_view(view, DEFAULT_CAMERA, "the prior P")
    check_view(None, table_camera(60.0, 0.5), "an old prior")
    with pytest.raises(CameraError, match=r"the prior P was trained on images from a camera at "
                                          r"\(0\.828, 0\.000, 0\.458\) m .* pass --camera-file"):
        check_view(view, table_camera(60.0, 0.58), "the prior P")
