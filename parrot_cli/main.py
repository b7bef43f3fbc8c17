"""`parrot <command>`: one entry point for every user-facing job.

Each command lives in the module that owns the concept and exposes
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only when
their command runs, so `parrot verify-bundle` on robot compute never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS = {
    "collect": ("sim.collect", "scripted data collection in the twin (paper Alg. 1/2)"),
    "dataset": ("parrot_core.dataset", "inspect a prior dataset"),
    "render-scene": ("sim.render_scene", "write a PNG of a twin scene"),
    "train-prior": ("parrot_core.train_prior", "train the flow prior by maximum likelihood"),
    "export": ("parrot_core.export", "export the prior to ONNX"),
    "prior-viz": ("sim.prior_viz", "random exploration with and without the prior (Fig. 5)"),
    "select-prior": ("sim.select_prior", "pick a prior snapshot by rollouts on train objects"),
    "train-rl": ("sim.train_rl", "SAC on a twin task: parrot | sac | bc-sac"),
    "plot-curves": ("parrot_core.plot_curves", "success vs env steps for several runs"),
    "export-policy": ("parrot_core.export_policy", "export a SAC policy to ONNX"),
    "eval-policy": ("sim.eval_policy", "an exported policy in the twin: success rate with 95% CI"),
    "distill-policy": ("sim.distill_policy", "a small student of an exported policy (DAgger), for robot compute"),
    "bag2dataset": ("parrot_bringup.bag2dataset", "convert ROS 2 bags into a prior dataset"),
    "replay": ("parrot_bringup.replay", "dry run: exported models over a recorded bag vs its commands"),
    "teleop": ("parrot_bringup.teleop", "drive the twin or the arm from this terminal; record episodes"),
    "launch": ("parrot_bringup.launcher", "start a launch file's nodes without ros2 launch"),
    "sim": ("parrot_bringup.sim_stack", "the whole sim stack composed in one process"),
    "deploy-bundle": ("parrot_core.bundle", "write the robot-compute deploy bundle"),
    "verify-bundle": ("parrot_bringup.verify_bundle", "check a deploy bundle's hashes and inference"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="parrot", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"parrot {name}", description=help_text)
    adder = getattr(module, f"add_{name.replace('-', '_')}_arguments", None) or module.add_arguments
    runner = getattr(module, f"{name.replace('-', '_')}_main", None) or module.main
    adder(sub)
    args = sub.parse_args(rest)
    try:
        return int(runner(args) or 0)
    except KeyboardInterrupt:
        print(f"parrot {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing: one clear line, not a traceback
        if getattr(e, "parrot_user_error", False) or type(e).__name__.endswith("Error") and \
                type(e).__module__.startswith(("parrot_core", "sim", "parrot_bringup")):
            print(f"parrot {name}: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
