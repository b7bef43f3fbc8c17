"""`parrot train-prior`: fit the flow prior by maximum likelihood (paper 3.1, Appendix D).

    parrot train-prior --data DIR [DIR ...] [--data-weights W,..] --out RUN [--steps N | --epochs E]
                       [--lr 1e-4] [--val-fraction 0.1] [--tasks T,..] [--device auto] [--resume]
                       [--init-from PRIOR_RUN] [--ema-decay 0.999] [--snapshot-every N]

`--init-from` fine-tunes: the new run starts from another run's weights (its best.pt, or a
.pt file) and takes that run's model config; the metrics row at step 0 is the held-out NLL of
those weights on this data, so the row at the end is the "after" of a before/after report
(e.g. a twin prior fine-tuned on a real-arm recording). Several --data directories are mixed
(e.g. twin and real episodes, `--data-weights 1,1` for half of each batch from each); each is
split on its own and gets its own validation NLL column.

What a run directory holds::

    RUN/config.json    model config (PriorConfig), training settings, dataset split summary
    RUN/last.pt        model + Adam state + step + split: what --resume continues from
    RUN/best.pt        model weights with the lowest validation NLL so far
    RUN/metrics.jsonl  one row per evaluation: step, epoch, train_nll, val_nll, ...
    RUN/snapshots/step_NNNNNNN.pt   with --snapshot-every: the evaluated weights at that step,
                       for `parrot select-prior` (which picks by rollouts, not by NLL)

With --ema-decay the evaluated weights (validation NLL, best.pt, snapshots) are an
exponential moving average of the trained ones; last.pt keeps both, so --resume continues
the average.

NLL is in nats per action (mean of -log p(a|s) over steps), on the raw (un-augmented)
images for validation. The validation set is whole episodes (a held-out split by
episode, so near-duplicate consecutive frames never straddle train and val).

Reproducible and resumable: the batch drawn at step k depends only on (seed, k)
(a per-epoch permutation seeded by (seed, epoch)), and so does the augmentation, so a
run that is stopped and resumed with --resume follows the same sequence as one that was
never stopped. On resume the saved settings (seed, batch size, lr, split, model) are
used; --steps/--epochs/--eval-every/--device may change (e.g. to train longer).
Ctrl-C saves RUN/last.pt at the current step before exiting.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from parrot_core import __version__
from parrot_core.action_space import ACTION_NAMES, GRIPPER_LABELS, gripper_as_target_state
from parrot_core.arm_state import STATE_DIM
from parrot_core.camera import same_view
from parrot_core.dataset import (demonstration, episode_paths, read_episode, read_episode_attrs,
                                 read_header)
from parrot_core.device import pick_device
from parrot_core.files import atomic_replace, atomic_write_text
from parrot_core.flow import ConditionalRealNVP, PriorConfig
from parrot_core.metrics_log import append_row, keep_rows, read_rows
from parrot_core.onnx_prior import PriorLoadError
from parrot_core.tensorboard_log import TensorBoardLog

CKPT_FORMAT = "parrot-prior-checkpoint"
CKPT_VERSION = 1
LAST, BEST, CONFIG = "last.pt", "best.pt", "config.json"
SNAPSHOTS = "snapshots"


class PriorTrainingError(RuntimeError):
    """A training run that cannot start or continue (bad run dir, diverged loss, ...)."""


# ---- loading a trained prior -----------------------------------------------------------

def _torch_load(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of a truncated or foreign file
        raise PriorLoadError(f"{path}: corrupt or not a checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise PriorLoadError(f"{path}: not a Parrot prior checkpoint")
    if ckpt.get("version") != CKPT_VERSION:
        raise PriorLoadError(f"{path}: checkpoint version {ckpt.get('version')}, this Parrot reads {CKPT_VERSION}")
    return ckpt


def resolve_checkpoint(run_dir, which: str = "best") -> Path:
    """RUN/best.pt (or last.pt when which='last' or no best exists yet); a .pt path as is."""
    p = Path(run_dir)
    if p.is_file():
        return p
    if not p.is_dir():
        raise PriorLoadError(f"{p}: no such prior run directory")
    order = [BEST, LAST] if which == "best" else [LAST]
    for name in order:
        if (p / name).exists():
            return p / name
    raise PriorLoadError(f"{p}: no {' or '.join(order)} (not a `parrot train-prior` run?)")


def load_prior(run_dir, which: str = "best", device: str = "cpu") -> ConditionalRealNVP:
    """The trained ConditionalRealNVP of a run directory (or .pt file), in eval mode.

    ``which='best'`` (lowest validation NLL, falling back to last) or ``'last'``.
    The checkpoint's step and path are on ``model.checkpoint_info``.
    """
    path = resolve_checkpoint(run_dir, which)
    ckpt = _torch_load(path)
    model = ConditionalRealNVP(PriorConfig.from_dict(ckpt["config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise PriorLoadError(f"{path}: weights do not fit the saved config ({e})") from e
    model.checkpoint_info = {"path": str(path), "step": ckpt.get("step"), "val_nll": ckpt.get("val_nll")}
    return model.to(device).eval()


# ---- data --------------------------------------------------------------------------------

def split_episodes(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) episode file names; val is a seeded random choice of whole episodes."""
    if not 0.0 <= val_fraction < 1.0:
        raise PriorTrainingError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * len(names)))
    if val_fraction > 0 and len(names) >= 2:
        n_val = min(max(n_val, 1), len(names) - 1)
    else:
        n_val = 0
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_val])
    train = sorted(names[i] for i in order[n_val:])
    return train, val


def _episode_actions(episode, gripper_labels: str) -> np.ndarray:
    if gripper_labels == "as-recorded":
        return episode.actions
    start_closed = episode.states is not None and bool(episode.states[0, 3] > 0.5)
    return gripper_as_target_state(episode.actions, start_closed)


def common_camera_view(headers: list[dict]) -> dict | None:
    """The camera view all the datasets' images come from, or None when any dataset does not
    record one or they differ (e.g. twin and real episodes mixed): then nothing is checked."""
    views = [h.get("camera_view") for h in headers]
    if any(v is None for v in views) or any(not same_view(views[0], v) for v in views[1:]):
        return None
    return views[0]


class DataSources:
    """The dataset(s) a run trains on. Several can be mixed, e.g. twin and real episodes,
    each with a sampling weight; each is split into train and validation episodes on its own,
    so every source has a validation part (and its own NLL in metrics.jsonl).

    An episode is named by its file name when there is one dataset (as runs always were),
    and by "K:file name" for the K-th of several."""

    def __init__(self, roots, weights=None):
        self.roots = [Path(r) for r in roots]
        if weights is not None and (len(weights) != len(self.roots) or min(weights) < 0
                                    or sum(weights) <= 0):
            raise PriorTrainingError(f"--data-weights needs one weight >= 0 per --data "
                                     f"({len(self.roots)}), not all 0; got {list(weights)}")
        self.weights = None if weights is None else [float(w) for w in weights]
        headers = [read_header(r) for r in self.roots]
        sizes = {tuple(int(v) for v in h["image_size"]) for h in headers}
        if len(sizes) != 1:
            raise PriorTrainingError(f"--data: the datasets hold images of different sizes "
                                     f"{sorted(sizes)}; convert them to one (bag2dataset "
                                     f"--image-size)")
        self.image_size = sizes.pop()
        self.camera_view = common_camera_view(headers)

    def __len__(self) -> int:
        return len(self.roots)

    def refs(self, tasks: tuple[str, ...]) -> list[str]:
        if len(self.roots) == 1:
            return episodes_of_tasks(self.roots[0], tasks)
        return [f"{k}:{n}" for k, root in enumerate(self.roots) for n in episodes_of_tasks(root, tasks)]

    def source(self, ref: str) -> int:
        return int(ref.split(":", 1)[0]) if len(self.roots) > 1 else 0

    def path(self, ref: str) -> Path:
        name = ref.split(":", 1)[1] if len(self.roots) > 1 else ref
        return self.roots[self.source(ref)] / "episodes" / name

    def split(self, refs: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
        train, val = [], []
        for k in range(len(self.roots)):
            t, v = split_episodes([r for r in refs if self.source(r) == k], val_fraction, seed)
            train += t
            val += v
        return train, val


def _load_split(sources: DataSources, refs: list[str], with_states: bool, gripper_labels: str):
    """(images, actions, states or None, source of each row) of these episodes."""
    if not refs:
        return (torch.zeros(0, 1, 1, 3, dtype=torch.uint8), torch.zeros(0, 7),
                torch.zeros(0, STATE_DIM) if with_states else None, np.zeros(0, np.int64))
    eps = [demonstration(read_episode(sources.path(r))) for r in refs]
    images = torch.from_numpy(np.concatenate([e.images for e in eps]))
    actions = torch.from_numpy(np.concatenate(
        [_episode_actions(e, gripper_labels) for e in eps]).astype(np.float32))
    row_source = np.concatenate([np.full(len(e.actions), sources.source(r)) for r, e in zip(refs, eps)])
    if not with_states:
        return images, actions, None, row_source
    lacking = [r for r, e in zip(refs, eps) if e.states is None]
    if lacking:
        raise PriorTrainingError(f"{sources.path(lacking[0])}: {len(lacking)} episodes have no arm "
                                 f"states; a state-conditioned prior needs data collected with "
                                 f"them (parrot collect writes them)")
    return images, actions, torch.from_numpy(np.concatenate([e.states for e in eps])), row_source


def _load_init(path) -> ConditionalRealNVP:
    """The prior to start from: a run (its best checkpoint) or a `parrot export` dir, so a
    shipped prior (models/, which has no checkpoint) can be fine-tuned too."""
    from parrot_core.prior_features import load_prior_module
    model = load_prior_module(path)
    if not hasattr(model, "checkpoint_info"):
        model.checkpoint_info = {"path": str(Path(path).resolve())}
    return model


def widen_prior(prior: ConditionalRealNVP, state_dim: int | None = None,
                keypoints: int | None = None) -> ConditionalRealNVP:
    """A copy of ``prior`` with more conditioning inputs that computes exactly the same flow.

    Adds the arm state (``state_dim``) and/or encoder keypoints (``keypoints``) where the prior
    has none. The couplings' first layers get zero weights for the new inputs, so fine-tuning
    starts from the given prior and learns how much the new inputs add."""
    old = prior.config
    changes = {}
    if state_dim is not None and state_dim != old.state_dim:
        if old.state_dim:
            raise PriorTrainingError(f"the prior already has a {old.state_dim}-D arm state")
        changes["state_dim"] = state_dim
    if keypoints is not None and keypoints != old.keypoints:
        if old.keypoints:
            raise PriorTrainingError(f"the prior already has {old.keypoints} keypoints")
        changes["keypoints"] = keypoints
    config = PriorConfig.from_dict({**old.to_dict(), **changes})
    model = ConditionalRealNVP(config)
    model.checkpoint_info = getattr(prior, "checkpoint_info", {})
    # column blocks of a coupling's first layer: [features, keypoints, state, x]
    blocks = [(old.feature_dim, old.feature_dim), (2 * old.keypoints, 2 * config.keypoints),
              (old.state_dim, config.state_dim), (old.action_dim, config.action_dim)]
    weights = prior.state_dict()
    for k, target in model.state_dict().items():
        if k not in weights:  # the new keypoint conv and state buffers keep their init
            continue
        source = weights[k]
        if target.shape != source.shape:  # a coupling's first layer
            widened = torch.zeros_like(target)
            src = dst = 0
            for width_old, width_new in blocks:
                widened[:, dst:dst + width_old] = source[:, src:src + width_old]
                src, dst = src + width_old, dst + width_new
            source = widened
        target.copy_(source)
    return model


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Row indices of the batch at ``step``: a function of (seed, step) only (resumable)."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm if n < batch_size else perm[i * batch_size:(i + 1) * batch_size]


def weighted_batch_indices(step: int, rows_of: list[np.ndarray], weights: list[float],
                           batch_size: int, seed: int) -> np.ndarray:
    """A batch whose rows come from each source with probability ~ its weight (rows drawn
    uniformly within it, with replacement): also a function of (seed, step) only."""
    w = np.array([wk if len(rows) else 0.0 for wk, rows in zip(weights, rows_of)])
    rng = np.random.default_rng([seed, step, 1])
    counts = rng.multinomial(batch_size, w / w.sum())
    return np.concatenate([rows[rng.integers(0, len(rows), c)]
                           for rows, c in zip(rows_of, counts) if c])


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to +-pad pixels (edge pixels repeat); uint8 in, uint8 out."""
    b, h, w, _ = images.shape
    shifts = torch.randint(-pad, pad + 1, (b, 2), generator=generator).to(images.device)
    rows = (torch.arange(h, device=images.device)[None] + shifts[:, :1]).clamp(0, h - 1)
    cols = (torch.arange(w, device=images.device)[None] + shifts[:, 1:]).clamp(0, w - 1)
    bi = torch.arange(b, device=images.device)[:, None, None]
    return images[bi, rows[:, :, None], cols[:, None, :]]


@torch.no_grad()
def evaluate_nll(model: ConditionalRealNVP, images: torch.Tensor, actions: torch.Tensor,
                 device: torch.device, batch_size: int = 1024, states=None) -> float:
    """Mean -log p(a|s) in nats over all rows (no augmentation); nan for an empty set."""
    if len(actions) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(actions), batch_size):
        img = images[i:i + batch_size].to(device)
        act = actions[i:i + batch_size].to(device)
        st = None if states is None else states[i:i + batch_size].to(device)
        total += float(-model.log_prob(act, img, st).sum())
    model.train(was_training)
    return total / len(actions)


# ---- the CLI -----------------------------------------------------------------------------

def episodes_of_tasks(root: Path, tasks: tuple[str, ...]) -> list[str]:
    """Episode file names of the dataset, only those whose `task` attr is in `tasks` if given."""
    paths = episode_paths(root)
    return [p.name for p in paths if not tasks or read_episode_attrs(p).get("task") in tasks]


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR",
                        help="dataset directory (parrot collect / bag2dataset); several are "
                             "mixed, e.g. twin and real episodes")
    parser.add_argument("--data-weights", type=lambda t: [float(v) for v in t.split(",")],
                        metavar="W,..", help="with several --data: the share of each in a "
                                             "batch, e.g. 1,3 (default: as many rows as they hold)")
    parser.add_argument("--out", required=True, help="run directory (created)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total gradient steps (default: from --epochs)")
    length.add_argument("--epochs", type=float, default=20.0, help="passes over the training split (default 20)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of EPISODES held out")
    parser.add_argument("--tasks", type=lambda t: tuple(v for v in t.split(",") if v),
                        default=(), help="train on these tasks' episodes only, e.g. pick_place "
                                         "(default: every episode)")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between val NLL / checkpoints")
    parser.add_argument("--ema-decay", type=float, default=0.0, metavar="D",
                        help="evaluate and save an exponential moving average of the weights "
                             "(e.g. 0.999; default 0: the trained weights themselves)")
    parser.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                        help="also keep the evaluated weights every N steps under RUN/snapshots "
                             "(a multiple of --eval-every), for `parrot select-prior`")
    parser.add_argument("--augment", choices=["none", "shift"], default="shift",
                        help="training-image augmentation: random +-2 px shift (default) or none")
    parser.add_argument("--gripper-labels", choices=GRIPPER_LABELS, default=GRIPPER_LABELS[0],
                        help="the gripper channel as the state each command leaves (default: a "
                             "hold while open is learnt as open) or as recorded (a toggle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda if present, else cpu) | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--resume", action="store_true", help="continue RUN from RUN/last.pt")
    parser.add_argument("--init-from", metavar="PRIOR",
                        help="start from this prior's weights and model config (fine-tuning): a "
                             "run (its best.pt) or a `parrot export` dir such as models/prior_xarm6_48px")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also log NLLs and histograms of prior samples to OUT/tensorboard "
                             "(needs the tensorboard package)")
    model = parser.add_argument_group("model (ignored with --resume: the saved config is used)")
    model.add_argument("--arm-state", action="store_true",
                       help="condition the prior on the arm state (TCP position, gripper closed) "
                            "as well as the image; with --init-from an image-only prior, widen it")
    d = PriorConfig()
    model.add_argument("--keypoints", type=int, default=d.keypoints, metavar="K",
                       help="also condition on K spatial-softmax keypoints of the image (x, y "
                            "each); with --init-from a prior without them, widen it (default 0)")
    model.add_argument("--num-layers", type=int, default=d.num_layers)
    model.add_argument("--coupling-hidden", type=_int_list, default=d.coupling_hidden, help="e.g. 256,256")
    model.add_argument("--encoder-hidden", type=_int_list, default=d.encoder_hidden, help="e.g. 1024,512")
    model.add_argument("--feature-dim", type=int, default=d.feature_dim)
    model.add_argument("--conv-channels", type=int, default=d.conv_channels)


def _atomic_save(obj, path: Path) -> None:
    with atomic_replace(path) as tmp:
        torch.save(obj, tmp)


def read_metrics(run_dir) -> list[dict]:
    """The run's metrics rows (parrot_core/metrics_log.py): step, epoch, train_nll, val_nll, ..."""
    return read_rows(run_dir)


@dataclass
class RunPlan:
    """What a run trains and from where: a new run, or the one saved in last.pt."""
    config: PriorConfig
    train_cfg: dict  # the settings saved with the run (seed, batch size, lr, split, ...)
    train_names: list[str]
    val_names: list[str]
    start_step: int = 0
    best_val: float = float("inf")
    ckpt: dict | None = None  # last.pt when resuming
    init: ConditionalRealNVP | None = None  # --init-from weights
    new_normalization: bool = False  # set the arm state's normalization from this data


@dataclass
class Split:
    """One split's rows, as tensors: images, actions, arm states (or None), source index."""
    images: torch.Tensor
    actions: torch.Tensor
    states: torch.Tensor | None
    source: np.ndarray


@dataclass
class Schedule:
    """Which gradient steps run, and when they are evaluated and snapshotted."""
    start_step: int
    total: int
    eval_every: int
    snapshot_every: int
    steps_per_epoch: int


@dataclass
class PriorRun:
    """The model being trained and everything a checkpoint holds."""
    out: Path
    config: PriorConfig
    train_cfg: dict
    split: dict
    model: ConditionalRealNVP
    optimizer: torch.optim.Optimizer
    ema: AveragedModel | None
    device: torch.device
    best_val: float

    @property
    def evaluated(self) -> ConditionalRealNVP:
        """The weights validated and saved: the average of the trained ones, or those."""
        return self.ema.module if self.ema is not None else self.model


def plan_resumed_run(out: Path, sources: DataSources, names: list[str], n_data: int,
                     data: str) -> RunPlan:
    if not (out / LAST).exists():
        raise PriorTrainingError(f"{out}: nothing to resume (no {LAST})")
    ckpt = _torch_load(out / LAST)
    train_cfg = dict(ckpt["train"])
    if len(train_cfg.get("data", [None] * n_data)) != n_data:
        raise PriorTrainingError(f"{out} was trained on {len(train_cfg['data'])} datasets; "
                                 f"--resume needs the same --data ({n_data} given)")
    if len(sources) > 1:  # the saved weights, as the saved seed and lr
        sources.weights = train_cfg.get("data_weights")
    present, saved_val = set(names), set(ckpt["split"]["val"])
    val_names = [n for n in ckpt["split"]["val"] if n in present]
    missing = len(saved_val) - len(val_names)
    if missing:
        print(f"parrot train-prior: warning: {missing} validation episodes are gone from {data}",
              file=sys.stderr)
    return RunPlan(config=PriorConfig.from_dict(ckpt["config"]), train_cfg=train_cfg,
                   train_names=[n for n in names if n not in saved_val], val_names=val_names,
                   start_step=int(ckpt["step"]), best_val=float(ckpt["best_val_nll"]), ckpt=ckpt)


def plan_new_run(args, out: Path, sources: DataSources, names: list[str],
                 tasks: tuple[str, ...]) -> RunPlan:
    if (out / LAST).exists():
        raise PriorTrainingError(f"{out} already holds a run; pass --resume to continue it, "
                                 f"or choose another --out")
    init = _load_init(args.init_from) if args.init_from else None
    # a state-conditioned init keeps the normalization it was trained with
    new_normalization = args.arm_state and (init is None or init.state_dim == 0)
    if init is not None:
        init = widen_prior(init, STATE_DIM if args.arm_state and not init.state_dim else None,
                           args.keypoints or None)
    h, w = sources.image_size
    config = init.config if init is not None else PriorConfig(
        image_size=h if h == w else (h, w), num_layers=args.num_layers,
        coupling_hidden=tuple(args.coupling_hidden), encoder_hidden=tuple(args.encoder_hidden),
        feature_dim=args.feature_dim, conv_channels=args.conv_channels,
        state_dim=STATE_DIM if args.arm_state else 0, keypoints=args.keypoints)
    train_cfg = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "val_fraction": args.val_fraction, "augment": args.augment, "shift_pad": 2,
                 "tasks": list(tasks), "gripper_labels": args.gripper_labels,
                 "init_from": init.checkpoint_info["path"] if init is not None else None,
                 "ema_decay": args.ema_decay,
                 "data": [str(r.resolve()) for r in sources.roots],
                 "data_weights": sources.weights}
    train_names, val_names = sources.split(names, args.val_fraction, args.seed)
    return RunPlan(config=config, train_cfg=train_cfg, train_names=train_names,
                   val_names=val_names, init=init, new_normalization=new_normalization)


def check_plan(plan: RunPlan, args, sources: DataSources, data: str) -> None:
    """Settings that cannot train, refused before any data is loaded."""
    h, w = sources.image_size
    if [h, w] != _config_hw(plan.config):
        raise PriorTrainingError(f"{data}: images are {h}x{w}, the run's model takes "
                                 f"{'x'.join(map(str, _config_hw(plan.config)))}")
    if plan.train_cfg["batch_size"] < 1 or plan.train_cfg["lr"] <= 0:
        raise PriorTrainingError("--batch-size must be >= 1 and --lr > 0")
    ema_decay = float(plan.train_cfg.setdefault("ema_decay", 0.0))
    if not 0.0 <= ema_decay < 1.0:
        raise PriorTrainingError(f"--ema-decay must be in [0, 1), got {ema_decay}")
    snapshot_every = max(0, int(args.snapshot_every))
    if snapshot_every and snapshot_every % max(1, int(args.eval_every)):
        raise PriorTrainingError(f"--snapshot-every {snapshot_every} must be a multiple of "
                                 f"--eval-every {args.eval_every}")


def build_run(plan: RunPlan, out: Path, device: torch.device, train: Split) -> PriorRun:
    """Model, Adam and the weights' average, from the checkpoint, the init or the seed."""
    torch.manual_seed(int(plan.train_cfg["seed"]))
    model = ConditionalRealNVP(plan.config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(plan.train_cfg["lr"]))
    if plan.ckpt is not None:
        model.load_state_dict(plan.ckpt["model"])
        optimizer.load_state_dict(plan.ckpt["optimizer"])
    elif plan.init is not None:
        model.load_state_dict(plan.init.state_dict())
    if plan.new_normalization:  # from this run's training data
        model.set_state_normalization(train.states.mean(0), train.states.std(0))
    ema_decay = float(plan.train_cfg["ema_decay"])
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True) \
        if ema_decay else None
    if ema is not None and plan.ckpt is not None and "ema" in plan.ckpt:
        ema.load_state_dict(plan.ckpt["ema"])
    return PriorRun(out=out, config=plan.config, train_cfg=plan.train_cfg,
                    split={"train": plan.train_names, "val": plan.val_names}, model=model,
                    optimizer=optimizer, ema=ema, device=device, best_val=plan.best_val)


def validate(run: PriorRun, val: Split, n_sources: int) -> tuple[float, dict]:
    """Validation NLL of the evaluated weights, and with several datasets each one's
    (metrics columns val_nll_K); the overall figure is their row-weighted mean, so the
    validation images go through the model once."""
    if n_sources == 1:
        return evaluate_nll(run.evaluated, val.images, val.actions, run.device, states=val.states), {}
    per_source, total, count = {}, 0.0, 0
    for k in range(n_sources):
        rows = torch.from_numpy(np.flatnonzero(val.source == k))
        nll = evaluate_nll(run.evaluated, val.images[rows], val.actions[rows], run.device,
                           states=None if val.states is None else val.states[rows])
        per_source[f"val_nll_{k}"] = round(nll, 6)
        if len(rows):
            total, count = total + nll * len(rows), count + len(rows)
    return (total / count if count else float("nan")), per_source


def save_checkpoint(run: PriorRun, step: int) -> None:
    """last.pt: what --resume continues from."""
    _atomic_save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "model": run.model.state_dict(),
                  "optimizer": run.optimizer.state_dict(), "step": step,
                  "config": run.config.to_dict(), "train": run.train_cfg, "split": run.split,
                  "best_val_nll": run.best_val,
                  **({"ema": run.ema.state_dict()} if run.ema is not None else {})},
                 run.out / LAST)


def save_weights(run: PriorRun, path: Path, step: int, val_nll: float) -> None:
    """The evaluated weights in the format load_prior reads (best.pt, snapshots)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save({"format": CKPT_FORMAT, "version": CKPT_VERSION,
                  "model": run.evaluated.state_dict(), "config": run.config.to_dict(),
                  "step": step, "val_nll": val_nll}, path)


def train_step(run: PriorRun, train: Split, sources: DataSources, rows_of: list[np.ndarray],
               step: int) -> torch.Tensor:
    """One gradient step on the batch of ``step`` (a function of seed and step: resumable)."""
    bs, seed = int(run.train_cfg["batch_size"]), int(run.train_cfg["seed"])
    idx = torch.from_numpy(
        batch_indices(step, len(train.actions), bs, seed) if sources.weights is None
        else weighted_batch_indices(step, rows_of, sources.weights, bs, seed))
    images = train.images[idx].to(run.device, non_blocking=True)
    actions = train.actions[idx].to(run.device, non_blocking=True)
    states = None if train.states is None else train.states[idx].to(run.device)
    if run.train_cfg["augment"] == "shift":
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        images = random_shift(images, int(run.train_cfg.get("shift_pad", 2)), g)
    loss = -run.model.log_prob(actions, images, states).mean()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    return loss.detach()


def write_run_info(run: PriorRun, plan: RunPlan, sources: DataSources, names: list[str],
                   train: Split, val: Split, schedule: Schedule) -> None:
    """RUN/config.json: the model, the training settings and the split's sizes."""
    h, w = sources.image_size
    run_info = {
        "prior": run.config.to_dict(),
        "train": {**run.train_cfg, "steps": schedule.total, "eval_every": schedule.eval_every,
                  "device": str(run.device),
                  "data": (str(sources.roots[0].resolve()) if len(sources) == 1
                           else run.train_cfg["data"])},
        "dataset": {"image_size": [h, w], "episodes": len(names),
                    "train_episodes": len(plan.train_names), "val_episodes": len(plan.val_names),
                    "train_steps": len(train.actions), "val_steps": len(val.actions),
                    "steps_per_epoch": schedule.steps_per_epoch,
                    "camera_view": sources.camera_view},
        "versions": {"parrot": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    atomic_write_text(run.out / CONFIG, json.dumps(run_info, indent=2))


class MetricsLog:
    """metrics.jsonl rows, mirrored to TensorBoard (with histograms of prior samples on
    the same validation images every time) when --tensorboard is on."""

    def __init__(self, run: PriorRun, val: Split, tensorboard: bool):
        self.run = run
        self.tb = TensorBoardLog(run.out, tensorboard)
        self.images, self.states = val.images[:64], None if val.states is None else val.states[:64]

    def row(self, row: dict) -> None:
        append_row(self.run.out, row)
        self.tb.scalars(row["step"], row, "prior")
        if self.tb.writer is not None and len(self.images):
            samples = _prior_samples(self.run.evaluated, self.images, self.states, self.run.device)
            self.tb.histograms(row["step"], samples, list(ACTION_NAMES), "prior_samples")

    def close(self) -> None:
        self.tb.close()


def evaluate_and_save(run: PriorRun, val: Split, n_sources: int, step: int, train_nll: float,
                      snapshot_every: int) -> tuple[float, dict]:
    """At an evaluation step: validate, keep best.pt and the snapshot, write last.pt."""
    if not math.isfinite(train_nll):
        raise PriorTrainingError(f"training diverged at step {step} (NLL {train_nll}); "
                                 f"lower --lr or check the data")
    val_nll, per_source = validate(run, val, n_sources)
    score = val_nll if math.isfinite(val_nll) else train_nll  # no val set: best by train
    if score < run.best_val:
        run.best_val = score
        save_weights(run, run.out / BEST, step, val_nll)
    if snapshot_every and step % snapshot_every == 0:
        save_weights(run, run.out / SNAPSHOTS / f"step_{step:07d}.pt", step, val_nll)
    save_checkpoint(run, step)
    return val_nll, per_source


def train_loop(run: PriorRun, train: Split, val: Split, sources: DataSources,
               schedule: Schedule, log: MetricsLog, progress: bool) -> int:
    """Gradient steps from the schedule's start to its total, evaluating on its grid;
    Ctrl-C saves last.pt first. Returns the step reached."""
    from tqdm import tqdm

    rows_of = [np.flatnonzero(train.source == k) for k in range(len(sources))]
    total = schedule.total
    pbar = tqdm(total=total, initial=schedule.start_step, desc="train-prior", unit="step",
                dynamic_ncols=True, disable=not progress)
    run.model.train()
    step = schedule.start_step
    loss_sum, loss_count = torch.zeros((), device=run.device), 0
    t0 = time.monotonic()
    t_last, step_last = t0, step
    try:
        while step < total:
            loss_sum += train_step(run, train, sources, rows_of, step)
            loss_count += 1
            step += 1
            pbar.update(1)
            if step % schedule.eval_every and step != total:
                continue
            train_nll = float(loss_sum) / loss_count
            val_nll, per_source = evaluate_and_save(run, val, len(sources), step, train_nll,
                                                    schedule.snapshot_every)
            now = time.monotonic()
            log.row({"step": step, "epoch": round(step / schedule.steps_per_epoch, 4),
                     "train_nll": round(train_nll, 6), "val_nll": round(val_nll, 6),
                     "best_val_nll": round(run.best_val, 6),
                     "lr": run.optimizer.param_groups[0]["lr"], "elapsed_s": round(now - t0, 3),
                     "steps_per_s": round((step - step_last) / max(now - t_last, 1e-9), 3),
                     **per_source})
            pbar.set_postfix(train_nll=f"{train_nll:.3f}", val_nll=f"{val_nll:.3f}")
            loss_sum, loss_count = torch.zeros((), device=run.device), 0
            t_last, step_last = now, step
    except KeyboardInterrupt:
        save_checkpoint(run, step)
        pbar.close()
        print(f"parrot train-prior: saved {run.out / LAST} at step {step}; continue with --resume",
              file=sys.stderr)
        raise
    pbar.close()
    return step


def main(args) -> int:
    out = Path(args.out)
    data_dirs = list(args.data)
    sources = DataSources(data_dirs, args.data_weights if len(data_dirs) > 1 else None)
    data = sources.roots[0] if len(sources) == 1 else ", ".join(map(str, sources.roots))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tasks = tuple(args.tasks)
    if args.resume and (out / LAST).exists():  # the run's own task filter, not the CLI's
        tasks = tuple(_torch_load(out / LAST)["train"].get("tasks", ()))
    names = sources.refs(tasks)
    if not names:
        raise PriorTrainingError(f"{data}: dataset has no episodes" +
                                 (f" of task {', '.join(tasks)}" if tasks else ""))
    plan = (plan_resumed_run(out, sources, names, len(data_dirs), data) if args.resume
            else plan_new_run(args, out, sources, names, tasks))
    check_plan(plan, args, sources, data)

    with_states = plan.config.state_dim > 0
    # runs from before the option learnt the gripper as recorded
    gripper_labels = plan.train_cfg.setdefault("gripper_labels", "as-recorded")
    train = Split(*_load_split(sources, plan.train_names, with_states, gripper_labels))
    val = Split(*_load_split(sources, plan.val_names, with_states, gripper_labels))
    if len(train.actions) == 0:
        raise PriorTrainingError(f"{data}: no training steps after the split")
    per_epoch = max(1, len(train.actions) // int(plan.train_cfg["batch_size"]))
    schedule = Schedule(
        start_step=plan.start_step,
        total=int(args.steps) if args.steps is not None else int(math.ceil(args.epochs * per_epoch)),
        eval_every=max(1, int(args.eval_every)), snapshot_every=max(0, int(args.snapshot_every)),
        steps_per_epoch=per_epoch)

    run = build_run(plan, out, device, train)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(run, plan, sources, names, train, val, schedule)
    # rows after the checkpoint we resume from (a kill between the two) are made again
    keep_rows(out, lambda r: args.resume and r["step"] <= plan.start_step)
    if plan.start_step >= schedule.total:
        print(f"parrot train-prior: {out} is already at step {plan.start_step} >= {schedule.total}; "
              f"nothing to do")
        return 0

    log = MetricsLog(run, val, args.tensorboard)
    if plan.start_step == 0:  # the untrained model's val NLL: the baseline the curve starts from
        val0, per_source = validate(run, val, len(sources))
        if schedule.snapshot_every:  # a fine-tune's start is a candidate too: it may stay the best
            save_weights(run, out / SNAPSHOTS / f"step_{0:07d}.pt", 0, val0)
        log.row({"step": 0, "epoch": 0.0, "train_nll": float("nan"), "val_nll": round(val0, 6),
                 "best_val_nll": float("nan"), "lr": run.optimizer.param_groups[0]["lr"],
                 "elapsed_s": 0.0, "steps_per_s": float("nan"), **per_source})
    step = train_loop(run, train, val, sources, schedule, log, progress=not args.no_progress)
    log.close()
    print(f"parrot train-prior: {step} steps, best val NLL {run.best_val:.4f} nats/action -> {out}")
    return 0


@torch.no_grad()
def _prior_samples(model: ConditionalRealNVP, images, states, device) -> np.ndarray:
    """Four actions for random z per image: what random exploration would command there."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(0)
    a = model.sample(images.to(device), n=4, generator=g,
                     state=None if states is None else states.to(device))
    model.train(was_training)
    return a.reshape(-1, a.shape[-1]).cpu().numpy()


def _config_hw(config: PriorConfig) -> list[int]:
    s = config.image_size
    return [s, s] if isinstance(s, int) else [int(s[0]), int(s[1])]
