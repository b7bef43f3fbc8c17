"""`parrot plot-curves`: grouping runs by task and algo, mean +- std over seeds."""

from __future__ import annotations

import json

import pytest

from parrot_cli.main import main as parrot
from parrot_core.plot_curves import PlotCurvesError


def _fake_run(root, algo, task, seed, successes, steps=(0, 100, 200)):
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"run": {"algo": algo, "task": task, "objects": "heldout",
                                                          "seed": seed}}))
    rows = [{"kind": "bc", "env_step": 0}] + [{"kind": "eval", "env_step": s, "eval_success": v}
                                              for s, v in zip(steps, successes)]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_groups_by_task_and_algo_with_mean_and_std(tmp_path):
    """Runs found under a parent dir are grouped per (task, objects) panel and algo; the
    summary JSON gives the final success mean/std over seeds; a PNG is written."""
    _fake_run(tmp_path / "runs/g/parrot/s0", "parrot", "grasp", 0, [0.0, 0.5, 1.0])
    _fake_run(tmp_path / "runs/g/parrot/s1", "parrot", "grasp", 1, [0.0, 0.3, 0.5])
    _fake_run(tmp_path / "runs/g/sac/s0", "sac", "grasp", 0, [0.0, 0.0, 0.1])
    _fake_run(tmp_path / "runs/p/sac/s0", "sac", "pick_place", 0, [0.0, 0.0], steps=(0, 150))
    out = tmp_path / "curves.png"
    assert parrot(["plot-curves", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert out.stat().st_size > 5000 and out.read_bytes()[:4] == b"\x89PNG"
    s = json.loads(out.with_suffix(".json").read_text())
    assert set(s) == {"grasp/heldout", "pick_place/heldout"}
    g = s["grasp/heldout"]["parrot"]
    assert g["n"] == 2 and g["final_step"] == 200
    assert g["final_mean"] == pytest.approx(0.75) and g["final_std"] == pytest.approx(0.25)


def test_no_runs_is_an_error(tmp_path):
    """An empty directory is a one-line error (exit 1), not a blank plot."""
    with pytest.raises(PlotCurvesError):
        from parrot_core.plot_curves import find_runs
        find_runs([tmp_path])
    assert parrot(["plot-curves", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 1


def test_flat_summaries_plot_like_the_runs_they_summarize(tmp_path):
    """experiments/results keeps runs as NAME.config.json + NAME.metrics.jsonl: found under a
    directory or named directly, they give the same groups as the run directories."""
    _fake_run(tmp_path / "runs/parrot-s0", "parrot", "grasp", 0, [0.0, 0.5, 1.0])
    _fake_run(tmp_path / "runs/parrot-s1", "parrot", "grasp", 1, [0.0, 0.3, 0.5])
    flat = tmp_path / "results"
    flat.mkdir()
    for name in ("parrot-s0", "parrot-s1"):
        for part in ("config.json", "metrics.jsonl"):
            (flat / f"{name}.{part}").write_bytes((tmp_path / "runs" / name / part).read_bytes())
    (flat / "orphan.config.json").write_text("{}")  # no metrics beside it: not a run
    outs = {}
    for key, args in {"dirs": [str(tmp_path / "runs")], "found": [str(flat)],
                      "named": [str(flat / "parrot-s0"), str(flat / "parrot-s1")]}.items():
        outs[key] = tmp_path / f"{key}.png"
        assert parrot(["plot-curves", *args, "--out", str(outs[key])]) == 0
    summaries = [json.loads(o.with_suffix(".json").read_text()) for o in outs.values()]
    assert summaries[0] == summaries[1] == summaries[2]
    assert summaries[0]["grasp/heldout"]["parrot"]["final_mean"] == pytest.approx(0.75)
    assert parrot(["plot-curves", str(flat / "missing"), "--out", str(tmp_path / "m.png")]) == 1
