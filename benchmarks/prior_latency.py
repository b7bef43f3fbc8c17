"""Batch-1 latency of the prior's forward pass (z, image -> action) on one CPU thread.

Measures, in one run and on the same weights:
  onnx           OnnxPrior (onnxruntime, intra-op spinning off: the runtime default)
  onnx_spinning  OnnxPrior with spinning on, to show what the setting buys
  torch_eager    the torch module under inference_mode, torch.set_num_threads(1)
each back-to-back (calls in a tight loop) and at a real control rate (default 30 Hz: one
call per tick, sleeping in between, as the policy node does). Reports median and p99 in
milliseconds and writes benchmarks/results/prior_latency.json.

    python benchmarks/prior_latency.py                  # random full-size (48x48) prior
    python benchmarks/prior_latency.py --prior RUN      # a trained run (exported to a temp dir)
    python benchmarks/prior_latency.py --export DIR     # an existing export (torch side: same
                                                        # architecture, random weights)

Latency does not depend on the weights, so with no arguments a randomly initialised prior of
the default PriorConfig is exported and timed. Timings include OnnxPrior's input checks and,
for torch, the numpy <-> tensor conversions: what a node pays per call.
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


def _stats(ns: list[int]) -> dict:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return {"n": int(ms.size), "median_ms": round(float(np.median(ms)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4), "mean_ms": round(float(ms.mean()), 4),
            "max_ms": round(float(ms.max()), 4)}


def back_to_back(fn, n: int, warmup: int = 50) -> dict:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return _stats(out)


def at_rate(fn, n: int, rate_hz: float, warmup: int = 20) -> dict:
    for _ in range(warmup):
        fn()
    out, pacer = [], Pacer(n, rate_hz)
    for _ in pacer:
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return {**_stats(out), "rate_hz": rate_hz, "ticks_late": pacer.late}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prior", help="train-prior run dir (exported to a temp dir first)")
    src.add_argument("--export", help="existing export dir (torch side: same config, random weights)")
    p.add_argument("--n-back", type=int, default=2000, help="back-to-back calls per variant")
    p.add_argument("--n-rate", type=int, default=300, help="calls at --rate per variant")
    p.add_argument("--rate", type=float, default=30.0, help="control rate in Hz")
    p.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"])
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "prior_latency.json"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import onnxruntime

    from parrot_core.export import export_prior
    from parrot_core.flow import ConditionalRealNVP, PriorConfig
    from parrot_core.onnx_prior import OnnxPrior, read_meta
    from parrot_core.train_prior import load_prior

    tmp = tempfile.TemporaryDirectory(prefix="prior_latency_")
    if args.export:
        export_dir = Path(args.export)
        model = ConditionalRealNVP(PriorConfig.from_dict(read_meta(export_dir)["prior_config"])).eval()
        source = f"export {export_dir}"
    else:
        if args.prior:
            model = load_prior(args.prior)
            source = f"run {args.prior}"
        else:
            torch.manual_seed(0)
            model = ConditionalRealNVP(PriorConfig()).eval()
            source = "random PriorConfig() (untrained; latency does not depend on weights)"
        export_dir = Path(tmp.name)
        print(f"exporting ({args.exporter}) ...", file=sys.stderr)
        export_prior(model, export_dir, exporter=args.exporter)

    h, w = model.image_size
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 7)).astype(np.float32)
    image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    state = np.float32([[0.40, 0.0, 0.20, 0.0]]) if model.state_dim else None
    state_t = None if state is None else torch.from_numpy(state)

    onnx_prior = OnnxPrior(export_dir, threads=1, spinning=False)
    onnx_spin = OnnxPrior(export_dir, threads=1, spinning=True)

    def torch_call():
        with torch.inference_mode():
            return model(torch.from_numpy(z), torch.from_numpy(image), state_t).numpy()

    variants = {
        "onnx": lambda: onnx_prior.forward(z, image, state),
        "onnx_spinning": lambda: onnx_spin.forward(z, image, state),
        "torch_eager": torch_call,
    }
    err = float(np.abs(variants["onnx"]() - torch_call()).max()) if not args.export else None

    load_before = os.getloadavg()
    results = {}
    for name, fn in variants.items():
        print(f"{name}: back-to-back x{args.n_back} ...", file=sys.stderr)
        results[name] = {"back_to_back": back_to_back(fn, args.n_back)}
    for name, fn in variants.items():
        print(f"{name}: {args.rate:g} Hz x{args.n_rate} ...", file=sys.stderr)
        results[name]["at_rate"] = at_rate(fn, args.n_rate, args.rate)
    load_after = os.getloadavg()

    report = {
        "benchmark": "prior_latency",
        "what": "prior forward (z, image -> action), batch 1, one thread",
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "source": source,
        "image_size": [h, w],
        "prior_config": model.config.to_dict(),
        "onnx_vs_torch_max_abs_err": err,
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": load_after, "python": platform.python_version()},
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"prior forward, batch 1, 1 thread, image {h}x{w}  (loadavg {load_before[0]:.1f} -> {load_after[0]:.1f})")
    print(f"{'variant':<15}{'b2b median':>12}{'b2b p99':>10}{f'{args.rate:g}Hz median':>14}{f'{args.rate:g}Hz p99':>11}  (ms)")
    for name, r in results.items():
        b, a = r["back_to_back"], r["at_rate"]
        print(f"{name:<15}{b['median_ms']:>12.3f}{b['p99_ms']:>10.3f}{a['median_ms']:>14.3f}{a['p99_ms']:>11.3f}")
    print(f"-> {out}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
