"""PARROT inference on robot compute: the policy and the prior as two graphs, as one fused
graph (`parrot export-policy --fuse-prior`), and as the small student of `parrot
distill-policy` (alone, and with the policy node's keep-warm between frames), each against
torch eager on the same weights.

All are measured in one run, batch 1, one thread, at a real 30 Hz cadence (sleeping to the next
tick like a control loop: onnxruntime is slower after an idle gap than back-to-back), in turn,
repeated in rounds so that load on the host hits all alike. The networks are the shipped sizes
(default PriorConfig with the arm state, the prior-features policy's 128-128 MLP, the default
StudentConfig), random-init: latency does not depend on the weights.

    python benchmarks/fused_policy_latency.py [--seconds 10]

Writes benchmarks/results/fused_policy_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pacing import Pacer  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fused_policy_latency.json"
RATE_HZ = 30.0
ROUNDS = 5


def make_exports(out: Path):
    """(two-graph export dir, fused export dir, torch fused module) of random-init models."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import torch

    from parrot_core.action_transform import PriorTransform
    from parrot_core.export import export_prior, weights_sha256
    from parrot_core.export_policy import _FusedPolicyGraph, export_policy, load_actor
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    from parrot_core.prior_features import PriorFeatures
    from parrot_core.rl_loop import LoopConfig, make_agent, train
    from parrot_core.sac import config_for_algo
    from rl_toy import StateToyEnv

    torch.manual_seed(0)
    torch.set_num_threads(1)
    prior = ConditionalRealNVP(PriorConfig(state_dim=4)).eval()
    with torch.no_grad():  # as trained couplings are (zero ones are folded away by the exporter)
        for layer in prior.couplings:
            layer.net[-1].weight.normal_(0, 0.01)
            layer.net[-1].bias.normal_(0, 0.01)
    prior.set_state_normalization([0.4, 0.0, 0.1, 0.5], [0.1, 0.1, 0.1, 0.5])
    export_prior(prior, out / "two_graphs")
    features = PriorFeatures(prior)
    agent = make_agent(config_for_algo("parrot", obs_dim=features.dim, hidden_sizes=(128, 128),
                                       learning_starts=10_000), seed=0)
    train(agent, lambda: StateToyEnv(image_size=48),
          PriorTransform(prior, "bench", weights_sha256(prior)), out / "run",
          LoopConfig(total_steps=5, eval_every=5, eval_episodes=0, progress=False),
          run_meta={"algo": "parrot", "task": "bench"}, observe=features)
    export_policy(out / "run", out / "two_graphs")
    export_policy(out / "run", out / "fused", fuse_prior=out / "two_graphs")
    actor, _, _ = load_actor(out / "run")
    return out / "two_graphs", out / "fused", _FusedPolicyGraph(prior, actor).eval()


def make_student(out: Path):
    """(student export dir, torch module) of a random-init default-size student."""
    import torch

    from parrot_core.student import StudentPolicy, export_student
    torch.manual_seed(0)
    student = StudentPolicy().eval()
    export_student(student, out, {"algo": "bench"}, {"benchmark": True})
    return out, student


def _stats(xs) -> dict:
    xs = np.asarray(xs)
    return {"median": round(float(np.median(xs)), 3), "p99": round(float(np.percentile(xs, 99)), 3),
            "max": round(float(xs.max()), 3), "n": int(xs.size)}


def measure(two_graphs: Path, fused: Path, torch_graph, student: Path, torch_student,
            seconds: float) -> dict:
    import torch

    from parrot_bringup.policy_models import Models
    from parrot_core.keep_warm import STUDENT_HZ
    from parrot_core.onnx_policy import OnnxPolicy
    from parrot_core.onnx_prior import OnnxPrior
    prior, policy = OnnxPrior(two_graphs, threads=1), OnnxPolicy(two_graphs, threads=1)
    fused_policy, student_policy = OnnxPolicy(fused, threads=1), OnnxPolicy(student, threads=1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    state = np.float32([[0.40, 0.0, 0.20, 0.0]])

    def torch_act(module):
        def act(img):
            with torch.no_grad():
                return module(torch.from_numpy(img), torch.from_numpy(state)).numpy()
        return act

    # the policy node's own models object, keep-warm on as deploy-bundle sets it for a student;
    # made anew for each of its rounds and closed after, so it never warms beside another way
    node = [None]

    def node_models():
        return Models("policy", "", str(student), seed=0, threads=1, keep_warm_hz=STUDENT_HZ)

    def student_warm(img):
        return node[0](img[0], state[0])
    ways = {"two_graphs": lambda img: policy.act(img, prior, state),
            "fused": lambda img: fused_policy.act(img, None, state),
            "torch_eager_fused": torch_act(torch_graph),
            "student": lambda img: student_policy.act(img, None, state),
            "student_keep_warm": student_warm,
            "torch_eager_student": torch_act(torch_student)}
    node[0] = node_models()
    for act in ways.values():  # warm-up
        for i in range(10):
            act(images[i % 8][None])
    node[0].close()
    ref = ways["two_graphs"](images[:1])  # the fused graph and torch agree with it
    agree = {k: float(np.abs(ways[k](images[:1]) - ref).max())
             for k in ("two_graphs", "fused", "torch_eager_fused")}
    agree_student = float(np.abs(ways["student"](images[:1])
                                 - ways["torch_eager_student"](images[:1])).max())
    times: dict[str, list[float]] = {k: [] for k in ways}
    late = 0
    per_round = max(1, int(seconds * RATE_HZ / ROUNDS))
    for _ in range(ROUNDS):
        for name, act in ways.items():
            node[0] = node_models() if name == "student_keep_warm" else None
            try:
                pacer = Pacer(per_round, RATE_HZ)
                for i in pacer:
                    img = images[i % 8][None]
                    t0 = time.perf_counter()
                    act(img)
                    times[name].append((time.perf_counter() - t0) * 1e3)
                late += pacer.late
            finally:
                if node[0] is not None:
                    node[0].close()
    stats = {k: _stats(v) for k, v in times.items()}

    def speedup(slow, fast):
        return round(stats[slow]["p99"] / stats[fast]["p99"], 2)
    return {"rate_hz": RATE_HZ, "late_ticks": late, "keep_warm_hz": STUDENT_HZ,
            "max_abs_diff_vs_two_graphs": agree, "max_abs_diff_student_vs_torch": agree_student,
            "latency_ms": stats,
            "fused_speedup_vs_torch_p99": speedup("torch_eager_fused", "fused"),
            "fused_speedup_vs_two_graphs_p99": speedup("two_graphs", "fused"),
            "student_keep_warm_speedup_vs_torch_p99": speedup("torch_eager_student",
                                                              "student_keep_warm")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per way, over all rounds")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        two_graphs, fused, torch_graph = make_exports(Path(d))
        student, torch_student = make_student(Path(d) / "student")
        result = measure(two_graphs, fused, torch_graph, student, torch_student, args.seconds)
    result = {"benchmark": "fused_policy_latency", "batch": 1, "onnxruntime_threads": 1,
              "torch_threads": 1, **result,
              "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                       "load_avg_1min": round(os.getloadavg()[0], 2),
                       "python": platform.python_version()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    lat = result["latency_ms"]
    print(f"{'way':<20}{'median ms':>10}{'p99 ms':>10}   (batch 1, 1 thread, {RATE_HZ:g} Hz, "
          f"load {result['host']['load_avg_1min']})")
    for name, s in lat.items():
        print(f"{name:<20}{s['median']:>10.3f}{s['p99']:>10.3f}")
    print(f"fused vs torch eager (p99): {result['fused_speedup_vs_torch_p99']}x; vs two graphs: "
          f"{result['fused_speedup_vs_two_graphs_p99']}x; student with keep-warm vs torch eager: "
          f"{result['student_keep_warm_speedup_vs_torch_p99']}x -> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
