"""One metrics format for prior and RL runs: RUN/metrics.jsonl, robust to a crash mid-line."""

from __future__ import annotations

from parrot_core.metrics_log import METRICS, append_row, keep_rows, read_rows


def test_rows_come_back_in_order_and_a_torn_last_line_is_skipped(tmp_path):
    append_row(tmp_path, {"step": 0, "val_nll": -1.5})
    append_row(tmp_path, {"step": 100, "val_nll": -2.0})
    with (tmp_path / METRICS).open("a") as f:
        f.write('{"step": 200, "val_n')  # killed while writing
    assert read_rows(tmp_path) == [{"step": 0, "val_nll": -1.5}, {"step": 100, "val_nll": -2.0}]


def test_resume_keeps_only_the_rows_up_to_its_checkpoint_and_can_append_after(tmp_path):
    for step in (0, 100, 200):
        append_row(tmp_path, {"step": step})
    keep_rows(tmp_path, lambda r: r["step"] <= 100)
    append_row(tmp_path, {"step": 150})
    assert [r["step"] for r in read_rows(tmp_path)] == [0, 100, 150]


def test_a_prior_run_from_before_the_format_change_still_reads(tmp_path):
    """Older prior runs wrote metrics.csv: read as numbers; resuming one writes metrics.jsonl."""
    (tmp_path / "metrics.csv").write_text("step,epoch,val_nll,val_nll_0\n0,0,-1.5,\n500,1.2,-2.5,-2.4\n")
    assert read_rows(tmp_path) == [{"step": 0.0, "epoch": 0.0, "val_nll": -1.5},
                                   {"step": 500.0, "epoch": 1.2, "val_nll": -2.5, "val_nll_0": -2.4}]
    keep_rows(tmp_path, lambda r: r["step"] <= 0)
    assert (tmp_path / METRICS).exists() and read_rows(tmp_path) == [
        {"step": 0.0, "epoch": 0.0, "val_nll": -1.5}]


def test_no_rows_before_the_first_evaluation(tmp_path):
    assert read_rows(tmp_path) == []
