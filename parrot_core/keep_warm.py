"""Keep an inference session warm between the frames of a control loop.

Measured on the 2-core development machine (benchmarks/fused_policy_latency.py): a small
graph that takes 0.06 ms back to back takes about 0.6 ms after the 33 ms idle gap between 30 Hz
frames (caches and the core's state go cold). Running it on the last input every 2 ms while no
frame comes brings that to about 0.4 ms, for a few percent of a core. onnxruntime sessions may
run from several threads at once, so a frame never waits for a warm-up to finish."""

from __future__ import annotations

import threading
import time
from typing import Callable

# the rate `parrot deploy-bundle` sets for a distilled student (parrot_core.student): a
# warm-up every 2 ms costs about 3% of a core for a 0.06 ms graph
STUDENT_HZ = 500.0


class KeepWarm:
    """Calls ``run()`` on a daemon thread every ``period_s`` unless ``touch()`` (a real call)
    happened within the period. ``close()`` stops it."""

    def __init__(self, run: Callable[[], object], period_s: float):
        if period_s <= 0:
            raise ValueError(f"keep-warm period must be > 0 s, got {period_s}")
        self._run, self.period_s = run, float(period_s)
        self._last = time.monotonic()
        self._stop = threading.Event()
        self.warmups = 0
        self._thread = threading.Thread(target=self._loop, name="keep-warm", daemon=True)
        self._thread.start()

    def touch(self) -> None:
        self._last = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            if time.monotonic() - self._last >= self.period_s:
                try:
                    self._run()
                except Exception:  # a warm-up is never needed; the next real call reports errors
                    return
                self.warmups += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
