"""TensorBoard logs beside a run's own metric files (`--tensorboard`): RUN/tensorboard/.

Optional: it needs the `tensorboard` package (`pip install tensorboard`, the `tensorboard`
extra), which the robot-compute bundle never installs. `metrics.jsonl` stays
the source that `plot-curves` and the resume logic read; these logs are for looking.

    tensorboard --logdir runs/      # every run under runs/, one curve each
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LOG_DIR = "tensorboard"


class TensorBoardUnavailable(RuntimeError):
    """--tensorboard without the tensorboard package installed."""


class TensorBoardLog:
    """Scalars and histograms into RUN/tensorboard; every method is a no-op when disabled."""

    def __init__(self, run_dir, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch's writer imports the tensorboard package
            raise TensorBoardUnavailable(
                "--tensorboard needs the tensorboard package: pip install tensorboard "
                "(or pip install 'parrot[tensorboard]')") from e
        self.writer = SummaryWriter(str(Path(run_dir) / LOG_DIR))

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        """Every finite number in ``values`` as ``prefix/name`` (strings and NaN are skipped)."""
        if self.writer is None:
            return
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def histograms(self, step: int, columns: np.ndarray, names: list[str], prefix: str) -> None:
        """One histogram per column of ``columns`` (N, len(names))."""
        if self.writer is None:
            return
        for i, name in enumerate(names):
            self.writer.add_histogram(f"{prefix}/{name}", np.asarray(columns)[:, i], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
