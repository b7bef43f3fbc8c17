"""`parrot export --prior RUN --out DIR`: the trained prior as two ONNX graphs + metadata.

Writes (see ``parrot_core.onnx_prior`` for the loader, which needs no torch)::

    DIR/prior_forward.onnx  inputs z float32 (B, 7), image uint8 (B, H, W, 3)
                            [, state float32 (B, 4) when the prior is conditioned on it] -> action (B, 7)
    DIR/prior_inverse.onnx  inputs action float32 (B, 7), image uint8 [, state] -> z (B, 7), log_det (B,)
    DIR/prior_meta.json     image size, action scaling, clamp, versions, opset, exporter,
                            sha256 of the weights and of each .onnx file, input/output specs

The batch axis is dynamic. The uint8 -> float conversion is inside the graphs. The
default exporter is torch.export-based (``dynamo=True``, torch's default since 2.9; its
example inputs use batch 2, since a batch-1 example would specialise the axis to 1);
``--exporter torchscript`` uses the legacy exporter (faster to run, deprecated upstream).
Either way the export is checked against torch with onnxruntime before the metadata is
written (max abs error <= 1e-4), and the metadata is written last, so an interrupted
export is detected as incomplete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from parrot_core import __version__
from parrot_core.action_space import ACTION_DIM, scaling_metadata
from parrot_core.flow import ConditionalRealNVP
from parrot_core.files import atomic_replace, atomic_write_text, sha256_file
from parrot_core.arm_state import STATE_NAMES
from parrot_core.onnx_prior import (FORWARD_FILE, FORWARD_INPUTS, FORWARD_OUTPUTS, INVERSE_FILE,
                                    INVERSE_INPUTS, INVERSE_OUTPUTS, META_FILE, META_FORMAT,
                                    META_VERSION, STATE_INPUT, OnnxPrior, graph_inputs)

DEFAULT_OPSET = 18
PARITY_TOL = 1e-4


class PriorExportError(RuntimeError):
    """An export that failed or does not reproduce the torch model."""


class _ForwardGraph(torch.nn.Module):
    def __init__(self, flow: ConditionalRealNVP):
        super().__init__()
        self.flow = flow

    def forward(self, z, image):
        return self.flow(z, image)


class _InverseGraph(torch.nn.Module):
    def __init__(self, flow: ConditionalRealNVP):
        super().__init__()
        self.flow = flow

    def forward(self, action, image):
        return self.flow.inverse(action, image)


class _StateForwardGraph(_ForwardGraph):
    def forward(self, z, image, state):
        return self.flow(z, image, state)


class _StateInverseGraph(_InverseGraph):
    def forward(self, action, image, state):
        return self.flow.inverse(action, image, state)


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names, dtypes, shapes, bytes in name order): the weights' identity."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _spec(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def write_onnx(module, args, path: Path, input_names, output_names, exporter: str,
               opset: int) -> None:
    """Export ``module(*args)`` to the ONNX file ``path`` with a dynamic batch axis (the prior's
    graphs and the policy's; ``export_policy`` uses it too). ``dynamo`` needs example inputs
    with batch >= 2."""
    module = module.eval()
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" notices
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                atomic_replace(path) as tmp:
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1)
                # the wrappers' forward() arguments are named like the graph inputs
                torch.onnx.export(module, args, str(tmp), input_names=list(input_names),
                                  output_names=list(output_names), opset_version=opset, dynamo=True,
                                  dynamic_shapes={n: {0: batch} for n in input_names},
                                  external_data=False, verbose=False)
            elif exporter == "torchscript":
                axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
                torch.onnx.export(module, args, str(tmp), input_names=list(input_names),
                                  output_names=list(output_names), opset_version=opset, dynamo=False,
                                  dynamic_axes=axes)
            else:
                raise PriorExportError(f"unknown exporter {exporter!r} (dynamo | torchscript)")
    finally:
        onnx_log.setLevel(level)


def export_prior(model: ConditionalRealNVP, out_dir, exporter: str = "dynamo",
                 opset: int = DEFAULT_OPSET, source: dict | None = None,
                 check: bool = True, camera_view: dict | None = None) -> dict:
    """Write the two graphs and prior_meta.json for ``model`` into ``out_dir``; return the meta.

    ``source`` (e.g. run dir and step) is stored in the metadata as is; ``camera_view`` (the
    view of the training images, CameraModel.view_record) too, when known.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # metadata last: a half-done export is incomplete
    model = model.to("cpu").eval()
    h, w = model.image_size
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, ACTION_DIM, generator=gen)
    image = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=gen)
    action = torch.tanh(torch.randn(2, ACTION_DIM, generator=gen))
    state_dim = model.state_dim
    if state_dim:
        state = (torch.randn(2, state_dim, generator=gen) * model.state_std + model.state_mean,)
        graphs = (_StateForwardGraph(model), _StateInverseGraph(model))
    else:
        state, graphs = (), (_ForwardGraph(model), _InverseGraph(model))
    try:
        write_onnx(graphs[0], (z, image, *state), out / FORWARD_FILE,
                    graph_inputs(FORWARD_INPUTS, state_dim), FORWARD_OUTPUTS, exporter, opset)
        write_onnx(graphs[1], (action, image, *state), out / INVERSE_FILE,
                    graph_inputs(INVERSE_INPUTS, state_dim), INVERSE_OUTPUTS, exporter, opset)
    except PriorExportError:
        raise
    except Exception as e:
        raise PriorExportError(f"ONNX export failed ({type(e).__name__}: {e})") from e

    import onnx
    import onnxruntime

    img_spec = _spec("image", "uint8", ["batch", h, w, 3])
    vec = lambda n: _spec(n, "float32", ["batch", ACTION_DIM])  # noqa: E731
    state_spec = [_spec(STATE_INPUT, "float32", ["batch", state_dim])] if state_dim else []
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "image_size": [int(h), int(w)],
        "image_format": "uint8 RGB, NHWC; float conversion (/255) inside the graphs",
        "action_dim": ACTION_DIM,
        "latent_dim": ACTION_DIM,
        "action_scaling": scaling_metadata(),
        "state_dim": state_dim,
        "state_names": list(STATE_NAMES) if state_dim else [],
        "state_mean": model.state_mean.tolist() if state_dim else [],
        "state_std": model.state_std.tolist() if state_dim else [],
        "action_clamp": model.action_clamp,
        "squash": "tanh",
        "base_distribution": "standard_normal",
        "prior_config": model.config.to_dict(),
        "weights_sha256": weights_sha256(model),
        "source": source or {},
        "camera_view": camera_view,
        "exporter": exporter,
        "opset": opset,
        "versions": {"parrot": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "files": {
            FORWARD_FILE: {"sha256": sha256_file(out / FORWARD_FILE),
                           "inputs": [vec("z"), img_spec, *state_spec], "outputs": [vec("action")]},
            INVERSE_FILE: {"sha256": sha256_file(out / INVERSE_FILE),
                           "inputs": [vec("action"), img_spec, *state_spec],
                           "outputs": [vec("z"), _spec("log_det", "float32", ["batch"])]},
        },
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2))
    if check:
        err = parity_error(model, out, n=16, seed=1)
        meta_err = {k: float(v) for k, v in err.items()}
        if max(meta_err.values()) > PARITY_TOL:
            (out / META_FILE).unlink(missing_ok=True)
            raise PriorExportError(f"exported graphs differ from torch: max abs errors {meta_err}")
    return meta


@torch.no_grad()
def parity_error(model: ConditionalRealNVP, export_dir, n: int = 100, seed: int = 0) -> dict:
    """Max abs error between torch and onnxruntime on n random inputs (forward and inverse)."""
    prior = OnnxPrior(export_dir, threads=1)
    rng = np.random.default_rng(seed)
    h, w = model.image_size
    z = rng.standard_normal((n, ACTION_DIM)).astype(np.float32)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    actions = rng.uniform(-1.0, 1.0, (n, ACTION_DIM)).astype(np.float32)
    model = model.to("cpu").eval()
    states = None
    if model.state_dim:
        states = (rng.standard_normal((n, model.state_dim)) * model.state_std.numpy()
                  + model.state_mean.numpy()).astype(np.float32)
    states_t = None if states is None else torch.from_numpy(states)
    a_t = model(torch.from_numpy(z), torch.from_numpy(images), states_t).numpy()
    z_t, ld_t = (t.numpy() for t in model.inverse(torch.from_numpy(actions), torch.from_numpy(images),
                                                  states_t))
    z_o, ld_o = prior.inverse(actions, images, states)
    return {
        "forward_action": float(np.abs(prior.forward(z, images, states) - a_t).max()),
        "inverse_z": float(np.abs(z_o - z_t).max()),
        "inverse_log_det": float(np.abs(ld_o - ld_t).max()),
    }


def load_exported_prior(export_dir) -> ConditionalRealNVP:
    """The torch module of a `parrot export` directory, rebuilt from its forward graph's weights.

    For what needs the prior's internals on torch (RL on its frozen image features) when only
    the export is at hand (the shipped models/). The graph's initializers carry the module's
    parameter names; the rebuilt weights must hash to the metadata's weights_sha256, so a
    graph whose weights were renamed or folded is refused rather than half loaded.
    """
    import onnx
    from onnx import numpy_helper

    from parrot_core.flow import PriorConfig
    from parrot_core.onnx_prior import PriorLoadError, read_meta
    export_dir = Path(export_dir)
    meta = read_meta(export_dir)
    model = ConditionalRealNVP(PriorConfig.from_dict(meta["prior_config"]))
    graph = onnx.load(str(export_dir / FORWARD_FILE)).graph
    weights = {init.name.removeprefix("flow."): numpy_helper.to_array(init)
               for init in graph.initializer}
    state = model.state_dict()
    if model.state_dim:
        weights["state_mean"] = np.asarray(meta["state_mean"], np.float32)
        weights["state_std"] = np.asarray(meta["state_std"], np.float32)
    for k, v in state.items():  # the couplings' masks are fixed by the config, not learned
        if k.endswith(".mask"):
            weights[k] = v.numpy()
    missing = [k for k in state if k not in weights]
    if missing:
        raise PriorLoadError(f"{export_dir / FORWARD_FILE}: the graph does not name the weights "
                             f"{missing[:3]}{'...' if len(missing) > 3 else ''}; load the training "
                             f"run instead (parrot train-prior's RUN dir)")
    model.load_state_dict({k: torch.from_numpy(np.array(weights[k])).to(v.dtype)
                           for k, v in state.items()})
    if weights_sha256(model) != meta.get("weights_sha256"):
        raise PriorLoadError(f"{export_dir}: weights rebuilt from {FORWARD_FILE} do not hash to "
                             f"prior_meta.json's weights_sha256; load the training run instead")
    return model.eval()


# ---- the CLI -----------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--prior", required=True, help="prior run directory (parrot train-prior) or .pt")
    parser.add_argument("--out", required=True, help="export directory (created)")
    parser.add_argument("--which", choices=["best", "last"], default="best", help="checkpoint to export")
    parser.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)


def main(args) -> int:
    from parrot_core.onnx_prior import trained_camera_view
    from parrot_core.train_prior import load_prior

    model = load_prior(args.prior, which=args.which)
    info = getattr(model, "checkpoint_info", {})
    meta = export_prior(model, args.out, exporter=args.exporter, opset=args.opset,
                        source={"run": str(Path(args.prior).resolve()), **info},
                        camera_view=trained_camera_view(args.prior))
    err = parity_error(model, args.out, n=100)
    print(f"parrot export: {args.out}: {FORWARD_FILE}, {INVERSE_FILE}, {META_FILE} "
          f"(image {meta['image_size'][0]}x{meta['image_size'][1]}, step {info.get('step')}, "
          f"weights {meta['weights_sha256'][:12]}); onnxruntime vs torch max abs err "
          f"{max(err.values()):.2e} on 100 random inputs")
    return 0
