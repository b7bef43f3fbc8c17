"""What the env executes for the agent's output: the action itself, or a = f(z; s).

The RL loop only sees an :class:`ActionTransform`: it stores the agent's output (z for
PARROT, the action for the baselines) in the replay buffer and steps the env with
``transform(agent_output, obs, info)`` (info: the env's, whose arm state a prior conditioned
on it reads).

* :class:`IdentityTransform`: SAC and BC+SAC act directly in the [-1, 1] action space.
* :class:`PriorTransform`: PARROT (paper 3.2). The prior is FROZEN: a torch module is put in
  eval mode with ``requires_grad_(False)`` and only ever called under ``torch.no_grad()``;
  an ONNX prior is frozen by construction. Load with :func:`load_prior_transform` from either

  - a training run dir (``parrot_core.train_prior.load_prior(run_dir)``), or
  - an export dir holding ``prior_forward.onnx`` (``parrot_core.onnx_prior.OnnxPrior``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parrot_core.arm_state import state_from_info


class PriorTransformError(RuntimeError):
    """The --prior path is missing or holds neither a prior run nor an ONNX export."""


class ActionTransform:
    """agent output (action_dim,) + current obs (H, W, 3) uint8 [+ env info] -> env action (7,)."""

    name = "identity"
    agent_outputs = "action"  # what the agent's output (and the exported policy) means

    def __call__(self, agent_action: np.ndarray, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "agent_outputs": self.agent_outputs}


class IdentityTransform(ActionTransform):
    def __call__(self, agent_action, obs, info=None):
        return np.asarray(agent_action, np.float32)


class PriorTransform(ActionTransform):
    """a = f(z; s) through a frozen prior (torch module or an object with ``forward(z, images)``
    on numpy arrays, like OnnxPrior)."""

    name = "prior"
    agent_outputs = "z"

    def __init__(self, prior, source: str = "", sha256: str | None = None):
        """``sha256``: the prior's weights_sha256 (as in prior_meta.json), to pair policy and prior."""
        self.source, self.sha256 = str(source), sha256
        self._torch = None
        try:
            import torch
            if isinstance(prior, torch.nn.Module):
                prior.eval()
                prior.requires_grad_(False)
                self._torch = torch
        except ImportError:  # onnxruntime-only install
            pass
        self.prior = prior
        self.state_dim = int(getattr(prior, "state_dim", 0))

    def batch(self, z: np.ndarray, images: np.ndarray, states: np.ndarray | None = None) -> np.ndarray:
        z = np.asarray(z, np.float32)
        images = np.asarray(images, np.uint8)
        if self._torch is not None:
            torch = self._torch
            with torch.no_grad():
                dev = next(self.prior.parameters()).device
                args = [torch.as_tensor(z, device=dev), torch.as_tensor(images, device=dev)]
                if states is not None:
                    args.append(torch.as_tensor(np.asarray(states, np.float32), device=dev))
                out = self.prior.forward(*args)
            return out.cpu().numpy().astype(np.float32)
        args = (z, images) if states is None else (z, images, states)
        return np.asarray(self.prior.forward(*args), np.float32)

    def __call__(self, agent_action, obs, info=None):
        states = None
        if self.state_dim:
            if info is None:
                raise PriorTransformError("this prior is conditioned on the arm state: pass the "
                                          "env's info with the observation")
            states = state_from_info(info)[None]
        return self.batch(np.asarray(agent_action)[None], np.asarray(obs)[None], states)[0]

    def describe(self) -> dict:
        return {**super().describe(), "source": self.source, "weights_sha256": self.sha256}


def load_prior_transform(path, prefer: str = "auto") -> PriorTransform:
    """A frozen PriorTransform from a prior run dir or an ONNX export dir.

    ``prefer``: "auto" (ONNX if ``prior_forward.onnx`` is there, else the torch run),
    "onnx" or "torch".
    """
    root = Path(path)
    if not root.is_dir():
        raise PriorTransformError(f"{root}: prior directory not found")
    has_onnx = (root / "prior_forward.onnx").is_file()
    use_onnx = prefer == "onnx" or (prefer == "auto" and has_onnx)
    if use_onnx:
        if not has_onnx:
            raise PriorTransformError(f"{root}: no prior_forward.onnx (export the prior with `parrot export`)")
        from parrot_core.onnx_prior import OnnxPrior
        try:
            prior = OnnxPrior(root)
        except Exception as e:
            raise PriorTransformError(f"{root}: cannot load the ONNX prior ({e})") from e
        return PriorTransform(prior, source=f"onnx:{root.resolve()}", sha256=prior.meta.get("weights_sha256"))
    try:
        from parrot_core.train_prior import load_prior
    except ImportError as e:  # pragma: no cover - depends on the prior engineer's module
        raise PriorTransformError(f"cannot import parrot_core.train_prior.load_prior: {e}") from e
    try:
        prior = load_prior(root)
    except Exception as e:
        raise PriorTransformError(f"{root}: not a prior training run or ONNX export ({type(e).__name__}: {e})") from e
    from parrot_core.export import weights_sha256
    return PriorTransform(prior, source=f"torch:{root.resolve()}", sha256=weights_sha256(prior))
