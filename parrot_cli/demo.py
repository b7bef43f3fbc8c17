"""`make demo`: a small end-to-end Parrot run on the sim twin, in a few minutes on 2 cores.

1. scripted collection (paper Algorithms 1 and 2) into a prior dataset
2. prior training (a small flow on image and arm state, briefly) and ONNX export
3. random exploration with and without the prior on held-out objects (paper Figure 5), with
   the demo's own prior and with the shipped one (models/prior_xarm6_48px, trained longer on
   more data as README says: the demo's prior is too brief to grasp much)
4. the ROS 2 sim stack: twin + policy node running the shipped ONNX prior over Fast DDS,
   printing successes and the measured image-to-command latency

Every step is a `parrot` command printed before it runs, so each can be rerun by hand.
Outputs go to demo_out/ (deleted and rebuilt on each run).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(os.environ.get("PARROT_DEMO_OUT", "demo_out"))
EPISODES = int(os.environ.get("PARROT_DEMO_EPISODES", "300"))
PRIOR_STEPS = int(os.environ.get("PARROT_DEMO_PRIOR_STEPS", "600"))
SHIPPED_PRIOR = Path(__file__).resolve().parent.parent / "models" / "prior_xarm6_48px"


def parrot(*args: str) -> None:
    cmd = [sys.executable, "-m", "parrot_cli", *args]
    print(f"\n$ parrot {shlex.join(args)}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def main() -> int:
    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    if OUT.exists():
        shutil.rmtree(OUT)
    data, run, export = OUT / "data", OUT / "prior_run", OUT / "prior_onnx"
    t0 = time.time()
    parrot("collect", "--task", "mixed", "--episodes", str(EPISODES), "--workers", "2",
           "--out", str(data))
    parrot("dataset", "info", str(data))
    parrot("train-prior", "--data", str(data), "--out", str(run), "--steps", str(PRIOR_STEPS),
           "--eval-every", str(max(PRIOR_STEPS // 4, 1)), "--lr", "1e-3", "--batch-size", "128",
           "--encoder-hidden", "256", "--coupling-hidden", "128,128", "--feature-dim", "64",
           "--arm-state")
    parrot("export", "--prior", str(run), "--out", str(export), "--exporter", "torchscript")
    parrot("prior-viz", "--prior", str(export), "--task", "grasp", "--objects", "heldout",
           "--episodes", "20", "--reach-episodes", "10",
           "--out", str(OUT / "prior_viz_demo_prior.png"), "--no-progress")
    parrot("prior-viz", "--prior", str(SHIPPED_PRIOR), "--task", "grasp", "--objects",
           "heldout", "--episodes", "40", "--reach-episodes", "20",
           "--out", str(OUT / "prior_viz.png"), "--no-progress")
    parrot("sim", "--driver", "policy", "--mode", "prior", "--prior", str(SHIPPED_PRIOR),
           "--task", "grasp", "--objects", "heldout", "--episodes", "8",
           "--summary", str(OUT / "sim_summary.json"))
    print(f"\nDemo finished in {time.time() - t0:.0f} s. Outputs in {OUT}/: dataset, prior run "
          f"(metrics.jsonl), ONNX export, prior_viz*.png, sim_summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
