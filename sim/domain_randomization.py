"""Domain randomization: each episode of the twin looks a little different (opt-in).

What varies, per episode unless noted (RandomizationConfig sets how much):
- colours of the table, the tray and pad, every object, and the arm (each channel scaled);
- the light: direction over the upper hemisphere, colour temperature, ambient / diffuse /
  specular strengths (TinyRenderer's lighting model);
- the camera: its position and aim jittered around the camera file's mount, its field of
  view by a fraction of a degree (a calibration's tolerance);
- the image: Gaussian blur of a random width, and pixel noise drawn anew every step.

The draws come from their own stream, seeded by the scene seed, so a randomized episode has
the same objects, layout and physics as the plain one with that seed (only its look changes),
and the same seed always looks the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from parrot_core.camera import CameraModel


@dataclass(frozen=True)
class RandomizationConfig:
    colour_scale: float = 0.25  # each RGB channel times U(1 - s, 1 + s)
    light: bool = True
    camera_position_m: float = 0.01  # std of the mount's position jitter, per axis
    camera_rotation_deg: float = 1.0  # std of the aim's jitter (two angles)
    fov_deg: float = 0.5  # std of the field-of-view jitter
    max_blur_sigma_px: float = 0.7  # blur sigma ~ U(0, max), at the observation's size
    noise_std: float = 4.0  # per-pixel Gaussian noise, 8-bit levels

    def scaled(self, k: float) -> "RandomizationConfig":
        """Every range k times as wide: k > 1 gives looks a prior trained at k = 1 never saw
        (a stand-in for a real camera beyond the calibration's tolerance)."""
        if not (math.isfinite(k) and k >= 0):
            raise ValueError(f"randomization scale must be a finite number >= 0, got {k}")
        return RandomizationConfig(
            colour_scale=min(self.colour_scale * k, 0.95), light=self.light,
            camera_position_m=self.camera_position_m * k,
            camera_rotation_deg=self.camera_rotation_deg * k, fov_deg=self.fov_deg * k,
            max_blur_sigma_px=self.max_blur_sigma_px * k, noise_std=self.noise_std * k)


@dataclass
class EpisodeLook:
    """How one episode is drawn: what the env applies to bodies, camera and images."""
    colour_scales: dict = field(default_factory=dict)  # "table" | "arm" | body id -> (3,) scale
    light: dict = field(default_factory=dict)  # getCameraImage keyword arguments
    eye: np.ndarray | None = None
    ahead: np.ndarray | None = None
    up: np.ndarray | None = None
    fov_deg: float = 29.0
    blur_sigma_px: float = 0.0
    noise_std: float = 0.0


def look_rng(seed: int) -> np.random.Generator:
    """The randomization's own stream: the scene's draws stay those of the plain env."""
    return np.random.default_rng([int(seed), 0xD0A1])


def draw_look(rng: np.random.Generator, cfg: RandomizationConfig, camera: CameraModel,
              body_ids: list[int]) -> EpisodeLook:
    look = EpisodeLook()
    for key in ["table", "arm", *body_ids]:
        look.colour_scales[key] = rng.uniform(1 - cfg.colour_scale, 1 + cfg.colour_scale, 3)
    if cfg.light:
        azimuth, elevation = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(25), math.radians(90))
        warmth = rng.uniform(-0.15, 0.15)
        look.light = {
            "lightDirection": [math.cos(elevation) * math.cos(azimuth),
                               math.cos(elevation) * math.sin(azimuth), math.sin(elevation)],
            "lightColor": [1.0 + warmth, 1.0, 1.0 - warmth],
            "lightAmbientCoeff": float(rng.uniform(0.45, 0.75)),
            "lightDiffuseCoeff": float(rng.uniform(0.25, 0.55)),
            "lightSpecularCoeff": float(rng.uniform(0.0, 0.1)),
        }
    eye, ahead, up = camera.look_at()
    forward = ahead - eye
    right = np.cross(forward, up)
    tilt = np.radians(rng.normal(0.0, cfg.camera_rotation_deg, 2))
    forward = forward + tilt[0] * right + tilt[1] * up  # small angles: aim moves by these
    look.eye = eye + rng.normal(0.0, cfg.camera_position_m, 3)
    look.ahead = look.eye + forward / np.linalg.norm(forward)
    look.up = up
    look.fov_deg = float(camera.model_fov_deg + rng.normal(0.0, cfg.fov_deg))
    look.blur_sigma_px = float(rng.uniform(0.0, cfg.max_blur_sigma_px))
    look.noise_std = cfg.noise_std
    return look


def scaled_rgba(rgba, scale) -> list[float]:
    return [*(float(np.clip(c * s, 0.0, 1.0)) for c, s in zip(rgba[:3], scale)), float(rgba[3])]


def degrade(image: np.ndarray, look: EpisodeLook, rng: np.random.Generator) -> np.ndarray:
    """Blur (the episode's width) and noise (fresh each call) on a uint8 image."""
    out = image.astype(np.float32)
    if look.blur_sigma_px > 0.05:
        import cv2
        out = cv2.GaussianBlur(out, (0, 0), look.blur_sigma_px)
    if look.noise_std > 0:
        out = out + rng.normal(0.0, look.noise_std, out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
