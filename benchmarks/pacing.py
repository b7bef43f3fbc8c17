"""A fixed-rate loop for latency benchmarks: measuring at the real control rate matters
(onnxruntime with idle gaps between calls is slower than back-to-back)."""

from __future__ import annotations

import time


class Pacer:
    """`for i in Pacer(n, rate_hz):` yields i at each tick; `late` counts ticks that were
    already overdue (the previous iteration overran its period)."""

    def __init__(self, n: int, rate_hz: float):
        self.n, self.period, self.late = int(n), 1.0 / rate_hz, 0

    def __iter__(self):
        next_t = time.perf_counter() + self.period
        for i in range(self.n):
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                self.late += 1
            next_t += self.period
            yield i
