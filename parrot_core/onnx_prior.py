"""Run an exported flow prior with onnxruntime only (robot compute, ROS nodes).

This module must not import torch, even indirectly (tests check ``sys.modules``):
it imports numpy, onnxruntime, ``parrot_core.action_space`` and ``parrot_core.arm_state`` only.

An export directory (written by ``parrot export``, see ``parrot_core.export``)::

    prior_forward.onnx   z (B, 7) float32, image (B, H, W, 3) uint8 [, state (B, 4)] -> action (B, 7)
    prior_inverse.onnx   action (B, 7) float32, image uint8 [, state] -> z (B, 7), log_det (B,)
    prior_meta.json      image size, action scaling, state_dim, versions, sha256 of weights
                         and files, input/output names and shapes

A prior with ``state_dim > 0`` is also conditioned on the arm state (``parrot_core.arm_state``:
TCP position in the base frame, gripper closed) and its graphs take a third input ``state``.

``OnnxPrior(dir)`` checks everything at load time (files present, hashes, metadata that
agrees with the graphs and with this Parrot's action scaling) and every call's inputs,
raising a ``PriorError`` subclass with a one-line reason.

Session options are set for one 30 Hz control loop: one intra-op thread, sequential
execution, and thread-pool spinning off (a spinning pool burns a core between
requests for nothing at 30 Hz and competes with the rest of the stack).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort

from parrot_core.action_space import ACTION_DIM, scaling_metadata
from parrot_core.arm_state import STATE_DIM, STATE_NAMES
from parrot_core.files import read_format_json

META_FORMAT = "parrot-prior-onnx"
META_VERSION = 1
FORWARD_FILE = "prior_forward.onnx"
INVERSE_FILE = "prior_inverse.onnx"
META_FILE = "prior_meta.json"

# Graph signatures every export has; the image shape is filled in from the metadata. A prior
# conditioned on the arm state takes STATE_INPUT after the image.
FORWARD_INPUTS = ("z", "image")
FORWARD_OUTPUTS = ("action",)
INVERSE_INPUTS = ("action", "image")
INVERSE_OUTPUTS = ("z", "log_det")
STATE_INPUT = "state"


def graph_inputs(names: tuple[str, ...], state_dim: int) -> tuple[str, ...]:
    return names + (STATE_INPUT,) if state_dim else names

_LOG_2PI = math.log(2.0 * math.pi)  # flow.LOG_2PI; flow imports torch, robot compute has none
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}


class PriorError(RuntimeError):
    """Base class of every error about an exported prior."""


class PriorLoadError(PriorError):
    """An export directory that is missing, incomplete, corrupt or fails its hashes."""


class PriorMetadataError(PriorLoadError):
    """Metadata that disagrees with the ONNX graphs or with this Parrot (e.g. action scaling)."""


class PriorInputError(PriorError, ValueError):
    """An input of the wrong shape, dtype or with NaN/inf."""


def make_session_options(threads: int = 1, spinning: bool = False) -> ort.SessionOptions:
    """SessionOptions for low-latency batch-1 inference in a control loop."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    flag = "1" if spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", flag)
    so.add_session_config_entry("session.inter_op.allow_spinning", flag)
    so.log_severity_level = 3  # errors only
    return so


def read_meta(export_dir) -> dict:
    """Parse and sanity-check prior_meta.json (no onnxruntime involved)."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise PriorLoadError(f"{export_dir}: no such prior export directory")
    path = export_dir / META_FILE
    meta = read_format_json(path, META_FORMAT, META_VERSION, load_error=PriorLoadError,
                            format_error=PriorMetadataError,
                            missing_hint="not a `parrot export` directory?")
    for key in ("image_size", "action_dim", "latent_dim", "action_scaling", "files"):
        if key not in meta:
            raise PriorMetadataError(f"{path}: missing field {key!r}")
    if meta["action_dim"] != ACTION_DIM or meta["latent_dim"] != ACTION_DIM:
        raise PriorMetadataError(
            f"{path}: action_dim/latent_dim {meta['action_dim']}/{meta['latent_dim']}, "
            f"this Parrot uses {ACTION_DIM}")
    ours = scaling_metadata()
    if meta["action_scaling"] != ours:
        raise PriorMetadataError(
            f"{path}: exported with action scaling {meta['action_scaling']}, this Parrot uses "
            f"{ours}; the prior's actions would command different motions (re-export or retrain)")
    size = meta["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise PriorMetadataError(f"{path}: bad image_size {size!r}")
    state_dim = meta.setdefault("state_dim", 0)  # exports before arm-state conditioning: 0
    if state_dim not in (0, STATE_DIM):
        raise PriorMetadataError(f"{path}: state_dim {state_dim!r}, this Parrot's arm state has "
                                 f"{STATE_DIM} values {STATE_NAMES} (or 0: image only)")
    return meta


def checked_images(images, image_shape: tuple, error: type[Exception]) -> np.ndarray:
    """images as contiguous uint8 (B, H, W, 3) for a graph input; ``error`` naming what is wrong
    otherwise (one (H, W, 3) image is refused with the hint to add the batch axis: the graphs
    and every caller work in batches)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise error(f"images must be uint8 RGB (0..255), got dtype {images.dtype} "
                    f"(the graph does the float conversion)")
    if images.ndim != 4 or images.shape[1:] != tuple(image_shape):
        hint = " (add a batch axis: images[None])" if images.shape == tuple(image_shape) else \
            " (resize with cv2.INTER_AREA to the exported size)"
        raise error(f"images must have shape (B, {image_shape[0]}, {image_shape[1]}, 3), "
                    f"got {images.shape}{hint}")
    return np.ascontiguousarray(images)


def checked_vectors(x, name: str, batch: int, dim: int, error: type[Exception]) -> np.ndarray:
    """x as float32 (batch, dim) for a graph input; ``error`` naming what is wrong otherwise."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise error(f"{name} must be a float array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise error(f"{name} must have shape (B, {dim}), got {x.shape}")
    if x.shape[0] != batch:
        raise error(f"{name} has batch {x.shape[0]} but images have batch {batch}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise error(f"{name} contains NaN or inf")
    return x


class OnnxPrior:
    """The exported prior on onnxruntime: ``forward(z, images[, states])`` and ``inverse``.

    All arrays are numpy and batched: z/actions ``(B, 7)`` (cast to float32), images
    ``uint8 (B, H, W, 3)`` RGB at the exported size (``self.image_size``), states
    ``(B, state_dim)`` arm states. ``states`` is required when ``self.state_dim > 0`` and
    ignored otherwise, so a caller that knows the arm state can always pass it.
    """

    def __init__(self, export_dir, threads: int = 1, spinning: bool = False,
                 providers: list[str] | None = None):
        self.export_dir = Path(export_dir)
        self.meta = read_meta(self.export_dir)
        self.image_size = tuple(self.meta["image_size"])  # (H, W)
        self.image_shape = (*self.image_size, 3)
        self.state_dim = int(self.meta["state_dim"])
        options = make_session_options(threads, spinning)
        providers = providers or ["CPUExecutionProvider"]
        self._forward = self._open(FORWARD_FILE, graph_inputs(FORWARD_INPUTS, self.state_dim),
                                   FORWARD_OUTPUTS, options, providers)
        self._inverse = self._open(INVERSE_FILE, graph_inputs(INVERSE_INPUTS, self.state_dim),
                                   INVERSE_OUTPUTS, options, providers)

    def _open(self, name, inputs, outputs, options, providers) -> ort.InferenceSession:
        path = self.export_dir / name
        if not path.exists():
            raise PriorLoadError(f"{path}: missing (export incomplete? rerun `parrot export`)")
        entry = self.meta["files"].get(name)
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise PriorMetadataError(f"{self.export_dir / META_FILE}: no sha256 recorded for {name}")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise PriorLoadError(
                f"{path}: sha256 {digest[:12]}... does not match prior_meta.json "
                f"({entry['sha256'][:12]}...): file modified or from another export")
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise PriorLoadError(f"{path}: onnxruntime cannot load it ({e})") from e
        self._check_signature(name, session, inputs, outputs, entry)
        return session

    def _check_signature(self, name, session, inputs, outputs, entry) -> None:
        where = f"{self.export_dir / name}"
        got_in = [i.name for i in session.get_inputs()]
        got_out = [o.name for o in session.get_outputs()]
        if got_in != list(inputs) or got_out != list(outputs):
            raise PriorMetadataError(
                f"{where}: graph has inputs {got_in} outputs {got_out}, expected "
                f"{list(inputs)} -> {list(outputs)}")
        declared = {d["name"]: d for d in entry.get("inputs", []) + entry.get("outputs", [])}
        for arg in list(session.get_inputs()) + list(session.get_outputs()):
            dtype = _ORT_DTYPES.get(arg.type, arg.type)
            static = [s if isinstance(s, int) else None for s in arg.shape]
            if arg.name == "image":
                expected = [None, *self.image_shape]
                want_dtype = "uint8"
            elif arg.name == STATE_INPUT:
                expected = [None, self.state_dim]
                want_dtype = "float32"
            else:
                expected = [None, ACTION_DIM] if arg.name != "log_det" else [None]
                want_dtype = "float32"
            if dtype != want_dtype or static != expected:
                raise PriorMetadataError(
                    f"{where}: {arg.name} is {dtype} {arg.shape} in the graph, but prior_meta.json "
                    f"says image size {list(self.image_size)} (expected {want_dtype} "
                    f"{['B', *expected[1:]]})")
            d = declared.get(arg.name)
            if d is not None and (d.get("dtype") != dtype or
                                  [s if isinstance(s, int) else None for s in d.get("shape", [])] != static):
                raise PriorMetadataError(
                    f"{where}: {arg.name} is {dtype} {arg.shape} in the graph, "
                    f"prior_meta.json declares {d.get('dtype')} {d.get('shape')}")

    # ---- input checks ---------------------------------------------------------------

    def _images(self, images) -> np.ndarray:
        return checked_images(images, self.image_shape, PriorInputError)

    def _inputs(self, first_name: str, first, images, states) -> dict:
        """The graph's feed: the checked vector, images and (if conditioned) states."""
        images = self._images(images)
        feed = {first_name: self._vectors(first, "actions" if first_name == "action" else first_name,
                                          len(images)),
                "image": images}
        if self.state_dim:
            if states is None:
                raise PriorInputError(
                    f"{self.export_dir}: this prior is conditioned on the arm state; pass states "
                    f"(B, {self.state_dim}) {STATE_NAMES} with the images")
            feed[STATE_INPUT] = self._vectors(states, "states", len(images), self.state_dim)
        return feed

    @staticmethod
    def _vectors(x, name: str, batch: int, dim: int = ACTION_DIM) -> np.ndarray:
        return checked_vectors(x, name, batch, dim, PriorInputError)

    # ---- inference ------------------------------------------------------------------

    def forward(self, z, images, states=None) -> np.ndarray:
        """z (B, 7), images uint8 (B, H, W, 3) [, states] -> actions float32 (B, 7) in (-1, 1)."""
        return self._forward.run(None, self._inputs("z", z, images, states))[0]

    def inverse(self, actions, images, states=None) -> tuple[np.ndarray, np.ndarray]:
        """actions (B, 7), images [, states] -> (z (B, 7), log_det (B,)), log_det = log|det dz/da|.

        Actions are clamped to +-meta["action_clamp"] inside the graph before atanh.
        """
        z, log_det = self._inverse.run(None, self._inputs("action", actions, images, states))
        return z, log_det

    def log_prob(self, actions, images, states=None) -> np.ndarray:
        """log p(a | s) per row (B,), by change of variables."""
        z, log_det = self.inverse(actions, images, states)
        return -0.5 * np.sum(z * z, axis=1) - 0.5 * ACTION_DIM * _LOG_2PI + log_det

    def sample(self, images, rng: np.random.Generator | None = None, states=None) -> np.ndarray:
        """One action per image for z ~ N(0, I): random exploration through the prior."""
        rng = rng if rng is not None else np.random.default_rng()
        images = self._images(images)
        z = rng.standard_normal((len(images), ACTION_DIM)).astype(np.float32)
        return self.forward(z, images, states)


def trained_camera_view(prior) -> dict | None:
    """The camera view (CameraModel.view_record) a prior's training images came from: an
    export's prior_meta.json, or a `parrot train-prior` run's config.json (for a checkpoint or
    snapshot file, its run's); None when not recorded (priors made before it was)."""
    p = Path(prior)
    if (p / META_FILE).is_file():
        return json.loads((p / META_FILE).read_text()).get("camera_view")
    for run in ([p] if p.is_dir() else [p.parent, p.parent.parent]):
        if (run / "config.json").is_file():
            return json.loads((run / "config.json").read_text()).get("dataset", {}).get("camera_view")
    return None
