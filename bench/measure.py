"""Cost of a call: wall-clock and CPU seconds, and the process's peak resident memory while it ran."""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def resident_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; the lifetime peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE_MB
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Cost:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


class _PeakSampler(threading.Thread):
    """Samples the resident size every ``interval`` seconds: ru_maxrss is a lifetime peak, not a per-call one."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak = interval, resident_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, resident_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak, resident_mb())


def measure(fn: Callable[[], Any]) -> tuple[Any, Cost]:
    """Call ``fn()`` and return its result with its wall / CPU seconds and the peak RSS seen meanwhile."""
    sampler = _PeakSampler()
    sampler.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = fn()
    finally:
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        peak = sampler.stop()
    return result, Cost(wall_s=wall, cpu_s=cpu, peak_rss_mb=peak)


def median_cpu_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """The median CPU seconds of ``repeats`` calls of ``fn`` (e.g. one learner fit, the unit costs are given in)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)
