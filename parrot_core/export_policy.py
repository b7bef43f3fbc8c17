"""`parrot export-policy RUN --out DIR`: a train-rl run's policy as ONNX + metadata.

Writes ``policy.onnx`` (image uint8 (B, H, W, 3) [, arm state (B, 4) for a run that observed
a state-conditioned prior's features] -> the deterministic z mean (B, 7) for PARROT, or the
action for the baselines; tanh-squashed and scaled; batch axis dynamic; a prior-features run
carries the frozen feature weights inside the graph) and
``policy_meta.json`` (see ``parrot_core.onnx_policy`` for the torch-free loader). Export it
into the prior's export directory so the robot loads the pair from one place; when DIR
already holds a ``prior_meta.json``, its weights_sha256 must match the prior the policy was
trained with. The export is checked against torch with onnxruntime (max abs error <= 1e-4)
before the metadata is written; the metadata is written last.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from parrot_core import __version__
from parrot_core.action_space import ACTION_DIM, scaling_metadata
from parrot_core.arm_state import random_states
from parrot_core.onnx_policy import (INPUT_NAME, META_FILE, META_FORMAT, META_VERSION, POLICY_FILE,
                                     STATE_INPUT, OnnxPolicy)
from parrot_core.prior_features import FeatureModule
from parrot_core.export import write_onnx
from parrot_core.files import atomic_write_text, sha256_file
from parrot_core.rl_loop import CHECKPOINT, read_config
from parrot_core.sac import Actor, SACConfig

DEFAULT_OPSET = 18
PARITY_TOL = 1e-4


class PolicyExportError(RuntimeError):
    """A run that cannot be exported, or an export that does not reproduce torch."""


class _PolicyGraph(torch.nn.Module):
    def __init__(self, actor: Actor):
        super().__init__()
        self.actor = actor

    def forward(self, image):
        return self.actor.deterministic(image)


class _FeaturePolicyGraph(torch.nn.Module):
    """image [, state] -> the frozen prior features -> the actor (prior-features runs)."""

    def __init__(self, features: FeatureModule, actor: Actor):
        super().__init__()
        self.features, self.actor = features, actor

    def forward(self, image, state=None):
        return self.actor.deterministic(self.features(image, state))


class _FusedPolicyGraph(torch.nn.Module):
    """image [, state] -> action: a PARROT policy on the prior's features and the prior itself
    in one graph, sharing one encoder pass (the policy observes exactly the conditioning the
    prior's couplings read: z = policy(cond), a = flow(z; cond))."""

    def __init__(self, prior, actor: Actor):
        super().__init__()
        self.prior, self.actor = prior, actor

    def forward(self, image, state=None):
        cond = self.prior.condition(image, state)
        return self.prior.forward_from_condition(self.actor.deterministic(cond), cond)[0]


def _load_fusable_prior(prior_dir, features: FeatureModule | None, prior_info: dict | None):
    """The torch prior of a run or export dir, checked to be the one the policy observed."""
    from parrot_core.export import weights_sha256
    from parrot_core.prior_features import load_prior_module
    if features is None or prior_info is None:
        raise PolicyExportError("--fuse-prior needs a PARROT run on the prior's features "
                                "(train-rl --algo parrot --observation prior-features)")
    try:
        prior = load_prior_module(prior_dir).eval()
    except Exception as e:
        raise PolicyExportError(f"{prior_dir}: cannot load the prior ({e})") from e
    want, got = prior_info.get("weights_sha256"), weights_sha256(prior)
    if want and got != want:
        raise PolicyExportError(f"{prior_dir}: prior weights {got[:12]}..., the policy was "
                                f"trained on {want[:12]}...")
    mine = prior.state_dict()
    for k, v in features.flow.state_dict().items():
        if not k.startswith("couplings.") and not torch.equal(mine[k], v):
            raise PolicyExportError(f"{prior_dir}: its encoder differs from the features the "
                                    f"policy observed ({k})")
    return prior


def load_actor(run_dir) -> tuple[Actor, dict, dict]:
    """(actor in eval mode, run config.json, checkpoint loop state) from a train-rl run."""
    actor, config, ckpt = _load_run(run_dir)
    return actor, config, ckpt["loop"]


def _load_run(run_dir) -> tuple[Actor, dict, dict]:
    """(actor in eval mode, run config.json, the whole checkpoint) from a train-rl run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PolicyExportError(f"{run_dir}: no such run directory")
    try:
        config = read_config(run_dir)
    except Exception as e:
        raise PolicyExportError(str(e)) from e
    path = run_dir / CHECKPOINT
    if not path.exists():
        raise PolicyExportError(f"{path}: missing (the run has not written a checkpoint yet)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        actor = Actor(SACConfig.from_dict(ckpt["agent"]["config"]))
        # the policy the run evaluated: the average of its weights where it kept one
        actor.load_state_dict(ckpt["agent"].get("eval_actor", ckpt["agent"]["actor"]))
    except Exception as e:
        raise PolicyExportError(f"{path}: cannot load the policy ({type(e).__name__}: {e})") from e
    return actor.eval(), config, ckpt


def _export(module, examples: tuple, path: Path, output_name: str, exporter: str, opset: int) -> None:
    names = [INPUT_NAME, STATE_INPUT][:len(examples)]
    try:
        write_onnx(module, examples, path, names, [output_name], exporter, opset)
    except Exception as e:
        raise PolicyExportError(f"ONNX export failed ({type(e).__name__}: {e})") from e


@torch.no_grad()
def parity_error(graph: torch.nn.Module, export_dir, n: int = 32, seed: int = 0) -> float:
    """Max abs difference between torch and onnxruntime outputs on n random inputs."""
    policy = OnnxPolicy(export_dir)
    rng = np.random.default_rng(seed)
    h, w = policy.image_size
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    states = random_states(rng, n) if policy.state_dim else None
    args = [torch.from_numpy(images)] + ([] if states is None else [torch.from_numpy(states)])
    ref = graph(*args).numpy()
    return float(np.abs(policy(images, states) - ref).max())


def export_policy(run_dir, out_dir, exporter: str = "dynamo", opset: int = DEFAULT_OPSET,
                  fuse_prior=None) -> dict:
    """Write policy.onnx + policy_meta.json for the run's latest checkpoint; return the meta.

    ``fuse_prior`` (a PARROT run on the prior's features; the prior's run or export dir): one
    graph image [, state] -> action with the prior inside, one encoder pass per image."""
    from parrot_core.export import weights_sha256

    run_dir, out = Path(run_dir), Path(out_dir)
    actor, config, ckpt = _load_run(run_dir)
    if actor.cfg.hold_steps != 1:
        raise PolicyExportError(
            f"{run_dir} holds each action for {actor.cfg.hold_steps} env steps; an exported policy "
            f"chooses one for every image, so it would not act as it was trained. Only runs with "
            f"--hold-steps 1 can be exported")
    loop_state = ckpt["loop"]
    transform = config.get("transform", {})
    outputs = transform.get("agent_outputs", "action")
    prior_info = None
    if outputs == "z":
        prior_info = {"source": transform.get("source"), "weights_sha256": transform.get("weights_sha256")}
        prior_meta_path = out / "prior_meta.json"
        if prior_meta_path.exists():
            prior_sha = json.loads(prior_meta_path.read_text()).get("weights_sha256")
            if prior_info["weights_sha256"] and prior_sha != prior_info["weights_sha256"]:
                raise PolicyExportError(
                    f"{out} holds a prior with weights {str(prior_sha)[:12]}..., but {run_dir} was trained on "
                    f"{prior_info['weights_sha256'][:12]}...; export beside the matching prior")
    # the frozen feature module a prior-features run observed through (None: images)
    saved_features = ckpt.get("prior_features")
    features = None if saved_features is None else FeatureModule.from_checkpoint(saved_features)
    if actor.cfg.obs_dim and features is None:
        observed = config.get("observation", {}).get("name", "a vector")
        raise PolicyExportError(f"{run_dir} observes {observed}, which only the twin knows; "
                                f"only image or prior-features runs can be exported")
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # metadata last: a half-done export is incomplete
    if fuse_prior is not None:
        graph = _FusedPolicyGraph(_load_fusable_prior(fuse_prior, features, prior_info), actor).eval()
        outputs = "action"
    if features is not None:
        s = int(features.config.image_size) if isinstance(features.config.image_size, int) else \
            int(features.config.image_size[0])
        if fuse_prior is None:
            graph = _FeaturePolicyGraph(features, actor).eval()
        state_dim = features.state_dim
    else:
        s, graph, state_dim = actor.cfg.image_size, _PolicyGraph(actor).eval(), 0
    gen = torch.Generator().manual_seed(0)
    examples = (torch.randint(0, 256, (2, s, s, 3), dtype=torch.uint8, generator=gen),)
    if state_dim:
        examples += (torch.tensor([[0.4, 0.0, 0.1, 0.0], [0.35, 0.05, 0.2, 1.0]]),)
    _export(graph, examples, out / POLICY_FILE, outputs, exporter, opset)
    run = config.get("run", {})
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "algo": run.get("algo"),
        "task": run.get("task"),
        "objects": run.get("objects"),
        "seed": run.get("seed"),
        "env_step": int(loop_state.get("global_step", 0)),
        "outputs": outputs,
        "observation": "image" if features is None else "prior_features",
        "distribution": actor.cfg.distribution,
        "action_scale": actor.cfg.action_scale,
        "deterministic": "action_scale * tanh(raw mean) (the policy's mean; no sampling)",
        "prior": prior_info,
        "fused_prior": fuse_prior is not None,  # True: the prior is inside policy.onnx
        "camera_view": run.get("camera_view"),  # the twin's view it was trained in
        "weights_sha256": weights_sha256(actor),
        "checkpoint_sha256": sha256_file(run_dir / CHECKPOINT),
        "source": {"run": str(run_dir.resolve())},
        **graph_meta(out, s, state_dim, outputs, exporter, opset),
    }
    return write_checked_meta(graph, out, meta)


def graph_meta(out: Path, image_side: int, state_dim: int, outputs: str, exporter: str,
               opset: int) -> dict:
    """The metadata fields every policy.onnx carries: its interface, hash and tool versions."""
    import onnx
    import onnxruntime

    inputs = [{"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", image_side, image_side, 3]}]
    if state_dim:
        inputs.append({"name": STATE_INPUT, "dtype": "float32", "shape": ["batch", state_dim]})
    return {
        "image_size": [image_side, image_side],
        "image_format": "uint8 RGB, NHWC; float conversion (/255) inside the graph",
        "state_dim": state_dim,
        "action_dim": ACTION_DIM,
        "action_scaling": scaling_metadata(),
        "exporter": exporter,
        "opset": opset,
        "versions": {"parrot": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "files": {POLICY_FILE: {
            "sha256": sha256_file(out / POLICY_FILE),
            "inputs": inputs,
            "outputs": [{"name": outputs, "dtype": "float32", "shape": ["batch", ACTION_DIM]}]}},
    }


def write_checked_meta(graph: torch.nn.Module, out: Path, meta: dict) -> dict:
    """Write policy_meta.json, then check onnxruntime against torch; an export that does not
    reproduce torch loses its metadata again (so nothing loads it)."""
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2))
    err = parity_error(graph, out)
    if err > PARITY_TOL:
        (out / META_FILE).unlink(missing_ok=True)
        raise PolicyExportError(f"exported policy differs from torch: max abs error {err:.2e}")
    meta["parity_max_abs_err"] = err
    return meta


def add_arguments(parser) -> None:
    parser.add_argument("run", help="train-rl run directory (its latest checkpoint is exported)")
    parser.add_argument("--out", required=True, help="export directory; use the prior's export dir for PARROT")
    parser.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--fuse-prior", metavar="PRIOR", default=None,
                        help="PARROT on the prior's features: one graph image [, state] -> action "
                             "with this prior (its run or export dir) inside, one encoder pass")


def main(args) -> int:
    meta = export_policy(args.run, args.out, exporter=args.exporter, opset=args.opset,
                         fuse_prior=args.fuse_prior)
    print(f"parrot export-policy: {args.out}: {POLICY_FILE}, {META_FILE} ({meta['algo']}, outputs "
          f"{meta['outputs']}, step {meta['env_step']}, image {meta['image_size'][0]}x{meta['image_size'][1]}); "
          f"onnxruntime vs torch max abs err {meta['parity_max_abs_err']:.2e}")
    return 0
