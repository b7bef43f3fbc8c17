"""One metrics format for every training run: `RUN/metrics.jsonl`, one JSON object per line.

`parrot train-prior` writes a row per evaluation (step, epoch, train_nll, val_nll, ...) and
`parrot train-rl` rows of kind "eval", "train" and "bc"; plots, TensorBoard and the tests read
them back with `read_rows`. Appending a line is what a crash can tear, so a torn last line is
skipped on reading, and `--resume` keeps only the rows up to the checkpoint it resumes from
(`keep_rows`, an atomic rewrite). Prior runs made before 2026-11-27 (sixth session) wrote
`metrics.csv`; `read_rows` still reads those.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

from parrot_core.files import atomic_write_text

METRICS = "metrics.jsonl"
LEGACY_CSV = "metrics.csv"


def append_row(run_dir, row: dict) -> None:
    with (Path(run_dir) / METRICS).open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(run_dir) -> list[dict]:
    """Every row of the run, oldest first ([] before the first evaluation)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    if not path.exists():
        legacy = run_dir / LEGACY_CSV
        if legacy.exists():
            with legacy.open() as f:
                return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash
                continue
    return rows


def keep_rows(run_dir, keep: Callable[[dict], bool]) -> None:
    """Drop the rows `keep` refuses (those written after the checkpoint a run resumes from)."""
    rows = [r for r in read_rows(run_dir) if keep(r)]
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
