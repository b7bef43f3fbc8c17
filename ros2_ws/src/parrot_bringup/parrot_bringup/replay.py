"""`parrot replay BAG... --policy EXPORT --prior EXPORT`: the dry run before the arm moves.

Runs the exported models offline over recorded bags (teleop or scripted, from the recorder or
`ros2 bag record`), exactly as the `policy` node would run them on each recorded image (the
same `Models`, the same crop and resize: `--camera-file` as the node's `camera_file`), and reports the command it would have sent next to the
recorded one:

- the error per axis (median |replayed - recorded| in action units, and in mm or mrad per step),
- gripper agreement: how often both commands leave the gripper in the same state, followed
  from the recorded commands (so an *open* and a *hold while open* agree),
- how often the arm's safety filter (default SafetyConfig, or --safety-params) would refuse
  the replayed command, by rule. The workspace rule uses the recorded arm state
  (`parrot/arm/state`) when the bag has it; the bag holds no orientation, so the orientation
  limits are not checked.

Episodes are read as `parrot bag2dataset` reads them (start/end markers; a truncated bag up
to its damage), unsuccessful ones included. Writes a JSON summary and a plot of the
recorded and replayed commands of the first episodes (--out).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parrot_bringup import interfaces as itf
from parrot_bringup.bag2dataset import bag_episodes
from parrot_bringup.policy_models import Models
from parrot_core.action_space import ACTION_NAMES, POS_SCALE_M, ROT_SCALE_RAD, to_metric
from parrot_core.camera import optional_camera
from parrot_core.files import atomic_write_text
from parrot_core.safety import (SafetyConfig, SafetyFilter, config_from_parameters,
                                parameter_defaults)


class ReplayError(RuntimeError):
    """No bag, no usable episode, or models that cannot run on the recorded inputs."""


@dataclass
class EpisodeReplay:
    name: str  # "BAG episode K"
    recorded: np.ndarray  # (T, 7) commands in the bag
    replayed: np.ndarray  # (T, 7) what the models command from the same images
    gripper_agrees: np.ndarray  # (T,) bool
    refusals: Counter = field(default_factory=Counter)  # rule -> replayed steps refused


def gripper_states(commands: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The gripper state (True: closed) each command leaves, given the state before it."""
    grip = np.array([to_metric(a)[2] for a in commands])
    return np.where(grip > 0, False, np.where(grip < 0, True, before))


def closed_before(recorded: np.ndarray) -> np.ndarray:
    """The gripper state before each step, followed through the recorded commands from open."""
    after = np.zeros(len(recorded), bool)
    closed = False
    for t, a in enumerate(recorded):
        g = to_metric(a)[2]
        closed = True if g < 0 else (False if g > 0 else closed)
        after[t] = closed
    return np.concatenate([[False], after[:-1]])


def replay_episode(models: Models, ep, name: str, safety: SafetyConfig,
                   camera=None) -> EpisodeReplay:
    """Run the models on every recorded image of one episode; judge each replayed command."""
    if models.needs_arm_state and ep.states is None:
        raise ReplayError(f"{name}: the models need the arm state and the bag has no "
                          f"{itf.TOPIC_ARM_STATE} for every step")
    rate = float(ep.start.get("control_rate_hz", 10.0))
    flt = SafetyFilter(safety, control_rate_hz=rate)
    replayed, refusals = [], Counter()
    for t, image in enumerate(ep.images):
        state = ep.states[t] if ep.states is not None else None
        action = models(models.view(image, camera), state if models.needs_arm_state else None)
        now = t / rate  # images come at the control rate: never stale in a replay
        flt.on_image(now)
        decision = flt.check_command(action, now, image_stamp=now,
                                     ee_pos=None if state is None else state[:3])
        if decision.stopped:
            refusals[decision.stop_reason] += 1
        replayed.append(np.asarray(action, np.float32))
    replayed = np.stack(replayed)
    before = closed_before(ep.actions)
    agrees = gripper_states(replayed, before) == gripper_states(ep.actions, before)
    return EpisodeReplay(name, ep.actions, replayed, agrees, refusals)


def summarize(replays: list[EpisodeReplay]) -> dict:
    recorded = np.concatenate([r.recorded for r in replays])
    replayed = np.concatenate([r.replayed for r in replays])
    err = np.abs(replayed - recorded)
    units = [POS_SCALE_M * 1000] * 3 + [ROT_SCALE_RAD * 1000] * 3
    refusals = sum((r.refusals for r in replays), Counter())
    return {
        "episodes": len(replays), "steps": int(len(recorded)),
        "median_abs_error": {n: float(np.median(err[:, i])) for i, n in enumerate(ACTION_NAMES[:6])},
        "median_abs_error_per_step": {n: float(np.median(err[:, i]) * units[i])
                                      for i, n in enumerate(ACTION_NAMES[:6])},
        "units_per_step": {n: ("mm" if i < 3 else "mrad") for i, n in enumerate(ACTION_NAMES[:6])},
        "gripper_agreement": float(np.mean(np.concatenate([r.gripper_agrees for r in replays]))),
        "safety_refusals": dict(refusals), "refused_steps": int(sum(refusals.values())),
        "per_episode": [{"episode": r.name, "steps": len(r.recorded),
                         "gripper_agreement": float(np.mean(r.gripper_agrees)),
                         "refused_steps": int(sum(r.refusals.values()))} for r in replays],
    }


def plot(replays: list[EpisodeReplay], out: Path, max_episodes: int = 3) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(ACTION_NAMES), 1, figsize=(9, 11), sharex=True)
    offset = 0
    for k, r in enumerate(replays[:max_episodes]):
        t = offset + np.arange(len(r.recorded))
        for i, ax in enumerate(axes):
            ax.plot(t, r.recorded[:, i], color="k", lw=1.2, label="recorded" if k == 0 else None)
            ax.plot(t, r.replayed[:, i], color="tab:orange", lw=1.2,
                    label="replayed" if k == 0 else None)
            ax.axvline(offset, color="0.8", lw=0.8)
        offset += len(r.recorded)
    for i, ax in enumerate(axes):
        ax.set_ylabel(ACTION_NAMES[i])
        ax.set_ylim(-1.05, 1.05)
    axes[0].legend(loc="upper right", ncol=2)
    axes[-1].set_xlabel("step (episodes one after another)")
    fig.suptitle("Recorded commands and what the models would have sent")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def add_arguments(parser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG",
                        help="rosbag2 directory, .mcap file, or a recorder session directory")
    parser.add_argument("--policy", default="", help="policy export (parrot export-policy)")
    parser.add_argument("--prior", default="", help="prior export (parrot export)")
    parser.add_argument("--mode", choices=("policy", "prior"), default=None,
                        help="as the node's `mode` (default: policy if --policy is given)")
    parser.add_argument("--seed", type=int, default=0, help="random z of mode prior")
    parser.add_argument("--camera-file", metavar="YAML",
                        help="as the node's camera_file: crop frames to the models' view first")
    parser.add_argument("--safety-params", metavar="YAML",
                        help="a parameters file whose safety.* entries configure the filter "
                             "(e.g. a bundle's config/hardware.yaml); default: SafetyConfig()")
    parser.add_argument("--out", default="replay.png", help="plot to write (JSON beside it)")


def load_safety(path) -> SafetyConfig:
    if not path:
        return SafetyConfig()
    import yaml
    params = {}  # the file's safety.* entries over the defaults
    for node in (yaml.safe_load(Path(path).read_text()) or {}).values():
        for key, value in ((node or {}).get("ros__parameters") or {}).items():
            if key.startswith("safety."):
                params[key] = value
    if not params:
        raise ReplayError(f"{path}: no safety.* parameters in any node's ros__parameters")
    unknown = sorted(set(params) - set(parameter_defaults()))
    if unknown:
        raise ReplayError(f"{path}: unknown safety parameters {unknown}")
    return config_from_parameters({**parameter_defaults(), **params})


def main(args) -> int:
    mode = args.mode or ("policy" if args.policy else "prior")
    try:
        models = Models(mode, args.prior, args.policy, args.seed)
    except Exception as e:
        raise ReplayError(f"cannot load the models: {e}") from e
    safety = load_safety(args.safety_params)
    camera = optional_camera(args.camera_file)
    report = {"bags": 0, "skipped": []}
    replays = [replay_episode(models, ep, f"{bag} episode {ep.episode}", safety, camera)
               for bag, ep in bag_episodes(args.bags, report)]
    if not replays:
        raise ReplayError("no episode to replay in " + ", ".join(map(str, args.bags)))
    summary = {"mode": mode, "policy": args.policy, "prior": args.prior, **summarize(replays),
               "skipped": report["skipped"]}
    out = Path(args.out)
    plot(replays, out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(summary, indent=2))
    print_summary(summary, out)
    return 0


def print_summary(s: dict, out: Path) -> None:
    print(f"replayed {s['steps']} steps of {s['episodes']} episodes (mode {s['mode']}):")
    for name, err in s["median_abs_error"].items():
        unit = s["units_per_step"][name]
        print(f"  {name:8s} median |replayed - recorded| {err:.3f} "
              f"({s['median_abs_error_per_step'][name]:.1f} {unit}/step)")
    print(f"  gripper: same state after {s['gripper_agreement']:.1%} of steps")
    rules = ", ".join(f"{k} {v}" for k, v in sorted(s["safety_refusals"].items()))
    print(f"  safety filter would refuse {s['refused_steps']}/{s['steps']} replayed commands"
          + (f" ({rules})" if rules else ""))
    print(f"  plot: {out}, summary: {out.with_suffix('.json')}")
