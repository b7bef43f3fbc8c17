"""`parrot plot-curves RUN... --out curves.png`: success rate vs environment steps.

Paper Figure 3 style: one panel per task (and object pool), one line per algorithm, the
mean over seeds with a +-1 std band. RUN may be a train-rl run directory or any directory
above several (searched for ``config.json`` + ``metrics.jsonl``), or a run's flat summary as
experiments/results keeps it (``NAME.config.json`` + ``NAME.metrics.jsonl``, given as NAME or
found under a directory). Runs whose evaluations
fall on different steps are linearly interpolated onto the union of their steps, up to the
shortest run of the group. Also writes ``<out>.json`` with the per-group final success
(mean, std, seeds, steps), the numbers a README table quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ALGO_STYLE = {  # label, colour, line style; legend order as in the paper: ours first. Distinct
    # dashes so curves that coincide (several methods at 0) stay visible.
    "parrot": ("PARROT", "tab:blue", "-"),
    "bc-sac": ("BC+SAC", "tab:orange", "--"),
    "sac": ("SAC", "tab:green", ":"),
}


class PlotCurvesError(RuntimeError):
    """No runs found, or a run without evaluations."""


SUMMARY_CONFIG, SUMMARY_METRICS = ".config.json", ".metrics.jsonl"


def find_runs(paths) -> list[Path]:
    """Run directories (config.json + metrics.jsonl), and the flat summaries that
    experiments/results keeps of runs no longer on disk: NAME.config.json beside
    NAME.metrics.jsonl, returned as the path NAME."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.json").exists():
            runs.append(p)
        elif Path(f"{p}{SUMMARY_CONFIG}").exists():
            runs.append(p)
        elif not p.exists():
            raise PlotCurvesError(f"{p}: no such run directory or summary")
        else:
            runs.extend(c.parent for c in p.rglob("config.json") if (c.parent / "metrics.jsonl").exists())
            runs.extend(Path(str(c)[:-len(SUMMARY_CONFIG)]) for c in p.rglob(f"*{SUMMARY_CONFIG}")
                        if Path(str(c)[:-len(SUMMARY_CONFIG)] + SUMMARY_METRICS).exists())
    if not runs:
        raise PlotCurvesError(f"no train-rl runs (config.json + metrics.jsonl) under {list(map(str, paths))}")
    return sorted(set(runs))


def _read_run(run: Path) -> tuple[dict, list[dict]]:
    """(config, metrics rows) of a run directory or a flat summary."""
    from parrot_core.rl_loop import read_config, read_metrics

    if run.is_dir():
        return read_config(run), read_metrics(run)
    with open(f"{run}{SUMMARY_METRICS}") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return json.loads(Path(f"{run}{SUMMARY_CONFIG}").read_text()), rows


def load_curve(run: Path, metric: str = "eval_success") -> dict:
    config, metrics = _read_run(run)
    cfg = config.get("run", {})
    rows = [r for r in metrics if r.get("kind") == "eval" and metric in r]
    if not rows:
        raise PlotCurvesError(f"{run}: no evaluations with {metric!r} in its metrics yet")
    steps = np.array([r["env_step"] for r in rows], float)
    values = np.array([r[metric] for r in rows], float)
    order = np.argsort(steps, kind="stable")
    return {"run": str(run), "algo": cfg.get("algo", "?"), "task": cfg.get("task", "?"),
            "objects": cfg.get("objects", "?"), "seed": cfg.get("seed"),
            "steps": steps[order], "values": values[order]}


def group_curves(curves: list[dict]) -> dict:
    """{(task, objects): {algo: {"steps", "mean", "std", "n", "seeds", "final_*"}}}."""
    groups: dict = {}
    for c in curves:
        groups.setdefault((c["task"], c["objects"]), {}).setdefault(c["algo"], []).append(c)
    out: dict = {}
    for key, algos in groups.items():
        out[key] = {}
        for algo, cs in algos.items():
            end = min(c["steps"][-1] for c in cs)
            grid = np.unique(np.concatenate([c["steps"][c["steps"] <= end] for c in cs]))
            ys = np.stack([np.interp(grid, c["steps"], c["values"]) for c in cs])
            final = ys[:, -1]
            out[key][algo] = {"steps": grid, "mean": ys.mean(0), "std": ys.std(0), "n": len(cs),
                              "seeds": [c["seed"] for c in cs], "final_step": float(grid[-1]),
                              "final_mean": float(final.mean()), "final_std": float(final.std()),
                              "final_per_seed": [float(v) for v in final]}
    return out


def plot(groups: dict, out: Path, metric: str = "eval_success", title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(groups)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        algos = groups[key]
        for algo in sorted(algos, key=lambda a: list(ALGO_STYLE).index(a) if a in ALGO_STYLE else 99):
            g = algos[algo]
            label, color, dashes = ALGO_STYLE.get(algo, (algo, None, "-."))
            line, = ax.plot(g["steps"], g["mean"], label=f"{label} (n={g['n']})", color=color,
                            ls=dashes, lw=2.2 if dashes == ":" else 1.8)
            ax.fill_between(g["steps"], g["mean"] - g["std"], g["mean"] + g["std"],
                            color=line.get_color(), alpha=0.2, lw=0)
        task, objects = key
        ax.set_title(f"{task} ({objects} objects)")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("success rate" if metric == "eval_success" else metric)
        if metric.endswith("success"):
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def summary(groups: dict) -> dict:
    return {f"{task}/{objects}": {algo: {k: g[k] for k in ("n", "seeds", "final_step", "final_mean",
                                                           "final_std", "final_per_seed")}
                                  for algo, g in algos.items()}
            for (task, objects), algos in sorted(groups.items())}


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", help="train-rl run directories or NAME of NAME.config.json + NAME.metrics.jsonl summaries (or directories above them)")
    parser.add_argument("--out", required=True, help="PNG to write (a JSON summary goes beside it)")
    parser.add_argument("--metric", default="eval_success", help="metrics.jsonl column to plot")
    parser.add_argument("--title")


def main(args) -> int:
    curves = [load_curve(r, args.metric) for r in find_runs(args.runs)]
    groups = group_curves(curves)
    out = Path(args.out)
    plot(groups, out, args.metric, args.title)
    s = summary(groups)
    out.with_suffix(".json").write_text(json.dumps(s, indent=2) + "\n")
    print(f"parrot plot-curves: {out} ({len(curves)} runs); final {args.metric} (mean +- std over seeds):")
    for key, algos in s.items():
        for algo, g in algos.items():
            print(f"  {key:28s} {algo:7s} {g['final_mean']:.2f} +- {g['final_std']:.2f} "
                  f"(n={g['n']}, step {g['final_step']:.0f})")
    return 0
