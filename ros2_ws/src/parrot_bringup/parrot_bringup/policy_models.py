"""The models behind the `policy` node, without ROS: the ONNX prior and/or SAC policy of one
mode, checked to belong together. `parrot replay` runs the same object over a recorded bag, so
the dry run computes exactly what the node would publish."""

from __future__ import annotations

import numpy as np

MODES = ("policy", "prior", "off")


class PolicyConfigError(RuntimeError):
    """The node cannot run in the requested mode (missing or unloadable model)."""


class Models:
    """The ONNX prior and/or SAC policy of one mode, with its input size."""

    def __init__(self, mode: str, prior_dir: str, policy_dir: str, seed: int, threads: int = 1,
                 keep_warm_hz: float = 0.0):
        self.mode = mode
        self.prior = self.policy = None
        self.keep_warm = None  # parrot_core.keep_warm.KeepWarm once the first image came
        self.keep_warm_hz = float(keep_warm_hz)
        self._last_inputs = None
        self.rng = np.random.default_rng(seed)
        self.image_size = None
        if mode == "off":
            return
        if mode == "policy":
            if not policy_dir:
                raise PolicyConfigError("mode 'policy' needs the `policy_dir` parameter")
            from parrot_core.onnx_policy import OnnxPolicy
            self.policy = OnnxPolicy(policy_dir, threads=threads)
        if mode == "prior" or (self.policy is not None and self.policy.outputs == "z"):
            if not prior_dir:
                raise PolicyConfigError(f"mode {mode!r} needs the `prior_dir` parameter"
                                        + (" (the policy acts in z)" if mode == "policy" else ""))
            from parrot_core.onnx_prior import OnnxPrior
            self.prior = OnnxPrior(prior_dir, threads=threads)
        if self.policy is not None:
            if self.prior is not None:
                self.policy.check_prior(self.prior)
                if tuple(self.policy.image_size) != tuple(self.prior.image_size):
                    raise PolicyConfigError(
                        f"policy takes {tuple(self.policy.image_size)} images, prior "
                        f"{tuple(self.prior.image_size)}: export them from the same setup")
            self.image_size = tuple(int(s) for s in self.policy.image_size)
        else:
            self.image_size = tuple(int(s) for s in self.prior.image_size)

    @property
    def needs_arm_state(self) -> bool:
        return any(m is not None and m.state_dim > 0 for m in (self.prior, self.policy))

    def view(self, frame: np.ndarray, camera=None) -> np.ndarray:
        """A camera frame -> the models' input image: cropped to the models' field of view by
        the camera file (parrot_core.camera.CameraModel) when there is one, then resized with
        INTER_AREA; without one the whole frame is resized (the twin's own images)."""
        from parrot_core.camera import model_image
        return model_image(frame, self.image_size, camera)

    def __call__(self, image: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        batch = image[None]
        states = None if state is None else state[None]
        if self.mode == "prior":
            action = self.prior.sample(batch, self.rng, states)[0]
        else:
            action = self.policy.act(batch, self.prior, states)[0]
        self._warm_with(batch, states)
        return action

    def _warm_with(self, batch, states) -> None:
        """Keep-warm (keep_warm_hz > 0) runs the models on the newest input between frames."""
        if self.keep_warm_hz <= 0:
            return
        self._last_inputs = (batch, states)
        if self.keep_warm is None:
            from parrot_core.keep_warm import KeepWarm
            self.keep_warm = KeepWarm(self._warm_up, 1.0 / self.keep_warm_hz)
        self.keep_warm.touch()

    def _warm_up(self) -> None:
        batch, states = self._last_inputs
        if self.mode == "prior":  # never the seeded sampler: z = 0 through the same graph
            self.prior.forward(np.zeros((1, 7), np.float32), batch, states)
        else:
            self.policy.act(batch, self.prior, states)

    def close(self) -> None:
        if self.keep_warm is not None:
            self.keep_warm.close()
            self.keep_warm = None
