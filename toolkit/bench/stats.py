"""Latency statistics and the timing loop.

The clock is a parameter so the statistics can be checked exactly on a fake clock. Conventions, stated
once: std is the population standard deviation (as TFLite's benchmark_model reports it); percentiles
interpolate linearly between closest ranks (numpy's default, Hyndman-Fan type 7).
"""
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

# Stop a --min-time loop after this many calls even if the clock says no time passed (a broken or
# frozen clock must not hang the bench).
MAX_ITERS = 100_000
# A --min-time loop always makes at least this many timed calls, so percentiles mean something.
MIN_ITERS = 3


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already-sorted samples, linear between closest ranks."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    pos = (len(sorted_samples) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-call latencies, in seconds."""
    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> "LatencyStats":
        if not samples:
            raise ValueError("no latency samples")
        s = sorted(float(x) for x in samples)
        n = len(s)
        mean = math.fsum(s) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in s) / n)
        return cls(n, mean, std, s[0], percentile(s, 50), percentile(s, 90), percentile(s, 99), s[-1])

    def throughput(self, items_per_call: int) -> float:
        """Items per second over the timed calls (items per call / mean latency)."""
        return items_per_call / self.mean if self.mean > 0 else float("inf")

    def as_ms(self) -> dict:
        """Field name -> milliseconds (n stays a count)."""
        d = asdict(self)
        return {("iters" if k == "n" else f"{k}_ms"): (v if k == "n" else v * 1e3) for k, v in d.items()}


def time_calls(fn: Callable[[], object], warmup: int = 0, iters: Optional[int] = None,
               min_time: Optional[float] = None, clock: Callable[[], float] = time.perf_counter,
               min_iters: int = MIN_ITERS, max_iters: int = MAX_ITERS) -> List[float]:
    """Call `fn` `warmup` times untimed, then time each call.

    Exactly `iters` calls, or (with `min_time`) calls until their summed time reaches `min_time`
    seconds and at least `min_iters` were made, capped at `max_iters`.
    """
    if (iters is None) == (min_time is None):
        raise ValueError("give exactly one of iters and min_time")
    if iters is not None and iters < 1:
        raise ValueError("iters must be at least 1")
    for _ in range(warmup):
        fn()
    samples: List[float] = []
    total = 0.0
    while True:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        total += dt
        if iters is not None:
            if len(samples) >= iters:
                break
        elif (total >= min_time and len(samples) >= min_iters) or len(samples) >= max_iters:
            break
    return samples
