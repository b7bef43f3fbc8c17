"""Run an exported SAC policy with onnxruntime only (robot compute, the `policy` node).

This module must not import torch, even indirectly (tests check it in a subprocess): it
imports numpy, onnxruntime, ``parrot_core.action_space`` and ``parrot_core.onnx_prior``.

An export directory (written by ``parrot export-policy``, see ``parrot_core.export_policy``)::

    policy.onnx         image uint8 (B, H, W, 3) RGB [, state float32 (B, 4): the arm state, for a
                        policy that observes a state-conditioned prior's features] -> z (B, 7)
                        for PARROT, or action (B, 7) for the baselines: the deterministic
                        (mean) output, tanh-squashed and scaled (the float conversion is inside
                        the graph)
    policy_meta.json    algo, what the output is ("z" | "action"), image size, action scale,
                        sha256 of policy.onnx and of the actor weights, the prior's
                        weights_sha256 the policy was trained with (PARROT), source run

For PARROT the output is z: the action is ``OnnxPrior.forward(z, images)`` of the same prior
(``OnnxPolicy.act`` does it and checks the pairing by weights_sha256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from parrot_core.action_space import ACTION_DIM, scaling_metadata
from parrot_core.files import read_format_json, sha256_file
from parrot_core.onnx_prior import STATE_INPUT, checked_images, checked_vectors, \
    make_session_options

META_FORMAT = "parrot-policy-onnx"
META_VERSION = 1
POLICY_FILE = "policy.onnx"
META_FILE = "policy_meta.json"
INPUT_NAME = "image"
OUTPUT_KINDS = ("z", "action")  # the graph's output is named after what it is


class PolicyError(RuntimeError):
    """Base class of every error about an exported policy."""


class PolicyLoadError(PolicyError):
    """A policy export that is missing, incomplete, corrupt, fails its hash, or does not pair
    with the given prior."""


class PolicyInputError(PolicyError, ValueError):
    """Images of the wrong dtype or shape."""


def read_policy_meta(export_dir) -> dict:
    """Parse and sanity-check policy_meta.json (no onnxruntime involved)."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise PolicyLoadError(f"{export_dir}: no such policy export directory")
    path = export_dir / META_FILE
    meta = read_format_json(path, META_FORMAT, META_VERSION, load_error=PolicyLoadError,
                            missing_hint="not a `parrot export-policy` directory, or an "
                                         "interrupted export")
    for key in ("algo", "outputs", "image_size", "action_dim", "files", "action_scaling"):
        if key not in meta:
            raise PolicyLoadError(f"{path}: missing field {key!r}")
    if meta["outputs"] not in OUTPUT_KINDS:
        raise PolicyLoadError(f"{path}: outputs {meta['outputs']!r} is not one of {OUTPUT_KINDS}")
    if meta["action_dim"] != ACTION_DIM:
        raise PolicyLoadError(f"{path}: action_dim {meta['action_dim']}, this Parrot uses {ACTION_DIM}")
    if meta["action_scaling"] != scaling_metadata():
        raise PolicyLoadError(f"{path}: trained with action scaling {meta['action_scaling']}, this Parrot "
                              f"uses {scaling_metadata()}; its actions would command different motions")
    size = meta["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise PolicyLoadError(f"{path}: bad image_size {size!r}")
    if POLICY_FILE not in meta["files"] or "sha256" not in meta["files"][POLICY_FILE]:
        raise PolicyLoadError(f"{path}: no sha256 recorded for {POLICY_FILE}")
    return meta


class OnnxPolicy:
    """The exported policy on onnxruntime.

    ``policy(images)`` -> ``(B, 7)`` float32: z (``outputs == "z"``) or the action.
    ``policy.act(images, prior)`` -> actions, through ``prior.forward`` when the output is z.
    """

    def __init__(self, export_dir, threads: int = 1, providers: list[str] | None = None):
        self.export_dir = Path(export_dir)
        self.meta = read_policy_meta(self.export_dir)
        self.algo = self.meta["algo"]
        self.outputs = self.meta["outputs"]
        self.image_size = tuple(self.meta["image_size"])
        self.image_shape = (*self.image_size, 3)
        self.state_dim = int(self.meta.get("state_dim", 0))
        path = self.export_dir / POLICY_FILE
        if not path.exists():
            raise PolicyLoadError(f"{path}: missing (metadata present but the graph is not)")
        want = self.meta["files"][POLICY_FILE]["sha256"]
        got = sha256_file(path)
        if got != want:
            raise PolicyLoadError(f"{path}: sha256 {got[:12]}... does not match policy_meta.json "
                                  f"({want[:12]}...); the file was changed or the export is mixed up")
        try:
            self._session = ort.InferenceSession(str(path), make_session_options(threads),
                                                 providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise PolicyLoadError(f"{path}: onnxruntime cannot load it ({e})") from e
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        want = [INPUT_NAME, STATE_INPUT] if self.state_dim else [INPUT_NAME]
        if inputs != want or outputs != [self.outputs]:
            raise PolicyLoadError(f"{path}: graph has inputs {inputs} / outputs {outputs}, metadata says "
                                  f"{want} / [{self.outputs!r}]")

    def _images(self, images) -> np.ndarray:
        return checked_images(images, self.image_shape, PolicyInputError)

    def _states(self, states, batch: int) -> np.ndarray:
        if states is None:
            raise PolicyInputError(f"{self.export_dir}: this policy observes the arm state; pass "
                                   f"states (B, {self.state_dim}) with the images")
        return checked_vectors(states, "states", batch, self.state_dim, PolicyInputError)

    def __call__(self, images, states=None) -> np.ndarray:
        """images uint8 (B, H, W, 3) [, arm states (B, 4) when the policy
        observes them; ignored otherwise] -> (B, 7) float32 z or action."""
        x = self._images(images)
        feed = {INPUT_NAME: x}
        if self.state_dim:
            feed[STATE_INPUT] = self._states(states, len(x))
        return self._session.run(None, feed)[0].astype(np.float32)

    def check_prior(self, prior) -> None:
        """Raise PolicyLoadError unless ``prior`` (an OnnxPrior) is the one this policy trained with."""
        want = (self.meta.get("prior") or {}).get("weights_sha256")
        got = getattr(prior, "meta", {}).get("weights_sha256")
        if self.outputs == "z" and want and got != want:
            raise PolicyLoadError(f"{self.export_dir}: the policy was trained on prior weights {want[:12]}..., "
                                  f"the given prior is {str(got)[:12]}...; export both from the same runs")

    def act(self, images, prior=None, states=None) -> np.ndarray:
        """images [, arm states] -> actions (B, 7): the output itself, or
        prior.forward(z, images, states) for PARROT (states: for a state-conditioned prior)."""
        x = self._images(images)
        out = self(x, states)
        if self.outputs == "action":
            return out
        if prior is None:
            raise PolicyError(f"{self.export_dir}: this {self.algo} policy outputs z; pass the prior "
                              f"(OnnxPrior) to turn z into actions")
        self.check_prior(prior)
        return np.asarray(prior.forward(out, x, states), np.float32)
