"""Latency statistics and the timing loop, specified on a fake clock (exact values, tolerance 1e-12)."""
import math

import numpy as np
import pytest

from toolkit.bench.stats import LatencyStats, percentile, time_calls


class FakeClock:
    """A clock that only moves when the code under test 'runs' something."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def scripted(clock, durations):
    """A callable that takes the next scripted duration each call, and records calls."""
    it = iter(durations)
    calls = []

    def fn():
        calls.append(1)
        clock.advance(next(it))
    fn.calls = calls
    return fn


def test_stats_of_known_samples_are_exact():
    s = LatencyStats.from_samples([0.004, 0.001, 0.010, 0.002, 0.003])
    assert s.n == 5
    assert s.mean == pytest.approx(0.004, abs=1e-12)
    assert s.std == pytest.approx(math.sqrt(10) * 1e-3, abs=1e-12)   # population std
    assert (s.min, s.max) == (0.001, 0.010)
    assert s.p50 == pytest.approx(0.003, abs=1e-12)
    assert s.p90 == pytest.approx(0.0076, abs=1e-12)     # rank 3.6: 4 + 0.6 * (10 - 4) ms
    assert s.p99 == pytest.approx(0.00976, abs=1e-12)    # rank 3.96
    assert s.throughput(8) == pytest.approx(2000.0)
    ms = s.as_ms()
    assert ms["iters"] == 5 and ms["p90_ms"] == pytest.approx(7.6)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_percentile_matches_numpy_linear(q, n):
    x = sorted(np.random.default_rng(n).exponential(size=n).tolist())
    assert percentile(x, q) == pytest.approx(float(np.percentile(x, q)), rel=1e-12)


def test_single_sample_has_zero_std_and_equal_percentiles():
    s = LatencyStats.from_samples([0.5])
    assert s.std == 0 and s.p50 == s.p99 == s.min == s.max == 0.5


@pytest.mark.parametrize("bad", [[], None])
def test_no_samples_is_an_error(bad):
    with pytest.raises((ValueError, TypeError)):
        LatencyStats.from_samples(bad)


def test_warmup_calls_are_not_timed():
    clock = FakeClock()
    fn = scripted(clock, [5.0, 5.0, 0.001, 0.002, 0.003])
    samples = time_calls(fn, warmup=2, iters=3, clock=clock)
    assert samples == pytest.approx([0.001, 0.002, 0.003], abs=1e-9)
    assert len(fn.calls) == 5


def test_min_time_runs_until_the_timed_sum_reaches_it():
    clock = FakeClock()
    fn = scripted(clock, [0.4] * 10)
    samples = time_calls(fn, min_time=1.0, clock=clock)
    assert len(samples) == 3                      # 0.4 + 0.4 + 0.4 >= 1.0


def test_min_time_still_makes_the_minimum_number_of_calls():
    clock = FakeClock()
    fn = scripted(clock, [5.0] * 10)
    assert len(time_calls(fn, min_time=1.0, clock=clock, min_iters=3)) == 3


def test_a_frozen_clock_cannot_hang_the_loop():
    clock = FakeClock()
    fn = scripted(clock, [0.0] * 100)
    assert len(time_calls(fn, min_time=1.0, clock=clock, max_iters=50)) == 50


@pytest.mark.parametrize("kw", [{}, {"iters": 3, "min_time": 1.0}, {"iters": 0}])
def test_iters_and_min_time_are_exclusive_and_valid(kw):
    with pytest.raises(ValueError):
        time_calls(lambda: None, **kw)
