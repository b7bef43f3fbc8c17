"""`parrot export-policy RUN --out DIR`: a train-rl run's policy as ONNX + metadata.

Writes ``policy.onnx`` (image uint8 (B, H, W, 3) -> the deterministic z mean (B, 7) for
PARROT, or the action for the baselines; tanh-squashed and scaled; batch axis dynamic) and
``policy_meta.json`` (see ``parrot_core.onnx_policy`` for the torch-free loader). Export it
into the prior's export directory so the robot loads the pair from one place; when DIR
already holds a ``prior_meta.json``, its weights_sha256 must match the prior the policy was
trained with. The export is checked against torch with onnxruntime (max abs error <= 1e-4)
before the metadata is written; the metadata is written last.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from parrot_core import __version__
from parrot_core.action_space import ACTION_DIM, scaling_metadata
from parrot_core.onnx_policy import (INPUT_NAME, META_FILE, META_FORMAT, META_VERSION, POLICY_FILE,
                                     OnnxPolicy)
from parrot_core.files import sha256_file
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


def load_actor(run_dir) -> tuple[Actor, dict, dict]:
    """(actor in eval mode, run config.json, checkpoint loop state) from a train-rl run."""
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
        actor.load_state_dict(ckpt["agent"]["actor"])
    except Exception as e:
        raise PolicyExportError(f"{path}: cannot load the policy ({type(e).__name__}: {e})") from e
    return actor.eval(), config, ckpt["loop"]


def _export(module, example, path: Path, output_name: str, exporter: str, opset: int) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT_NAME],
                                  output_names=[output_name], opset_version=opset, dynamo=True,
                                  dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1)}},
                                  external_data=False, verbose=False)
            elif exporter == "torchscript":
                torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT_NAME],
                                  output_names=[output_name], opset_version=opset, dynamo=False,
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}})
            else:
                raise PolicyExportError(f"unknown exporter {exporter!r} (dynamo | torchscript)")
        os.replace(tmp, path)
    except PolicyExportError:
        raise
    except Exception as e:
        raise PolicyExportError(f"ONNX export failed ({type(e).__name__}: {e})") from e
    finally:
        onnx_log.setLevel(level)
        tmp.unlink(missing_ok=True)


@torch.no_grad()
def parity_error(actor: Actor, export_dir, n: int = 32, seed: int = 0) -> float:
    """Max abs difference between torch and onnxruntime outputs on n random images."""
    policy = OnnxPolicy(export_dir)
    rng = np.random.default_rng(seed)
    s = actor.cfg.image_size
    images = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    ref = actor.deterministic(torch.from_numpy(images)).numpy()
    return float(np.abs(policy(images) - ref).max())


def export_policy(run_dir, out_dir, exporter: str = "dynamo", opset: int = DEFAULT_OPSET) -> dict:
    """Write policy.onnx + policy_meta.json for the run's latest checkpoint; return the meta."""
    from parrot_core.export import weights_sha256

    run_dir, out = Path(run_dir), Path(out_dir)
    actor, config, loop_state = load_actor(run_dir)
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
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # metadata last: a half-done export is incomplete
    s = actor.cfg.image_size
    example = torch.randint(0, 256, (2, s, s, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    _export(_PolicyGraph(actor), example, out / POLICY_FILE, outputs, exporter, opset)

    import onnx
    import onnxruntime

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
        "image_size": [s, s],
        "image_format": "uint8 RGB, NHWC; float conversion (/255) inside the graph",
        "action_dim": ACTION_DIM,
        "action_scaling": scaling_metadata(),
        "distribution": actor.cfg.distribution,
        "action_scale": actor.cfg.action_scale,
        "deterministic": "action_scale * tanh(raw mean) (the policy's mean; no sampling)",
        "prior": prior_info,
        "weights_sha256": weights_sha256(actor),
        "checkpoint_sha256": sha256_file(run_dir / CHECKPOINT),
        "source": {"run": str(run_dir.resolve())},
        "exporter": exporter,
        "opset": opset,
        "versions": {"parrot": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "files": {POLICY_FILE: {
            "sha256": sha256_file(out / POLICY_FILE),
            "inputs": [{"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", s, s, 3]}],
            "outputs": [{"name": outputs, "dtype": "float32", "shape": ["batch", ACTION_DIM]}]}},
    }
    tmp = out / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / META_FILE)
    err = parity_error(actor, out)
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


def main(args) -> int:
    meta = export_policy(args.run, args.out, exporter=args.exporter, opset=args.opset)
    print(f"parrot export-policy: {args.out}: {POLICY_FILE}, {META_FILE} ({meta['algo']}, outputs "
          f"{meta['outputs']}, step {meta['env_step']}, image {meta['image_size'][0]}x{meta['image_size'][1]}); "
          f"onnxruntime vs torch max abs err {meta['parity_max_abs_err']:.2e}")
    return 0
