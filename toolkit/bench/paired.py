"""Paired comparison: two rows timed in one fresh process, in alternating blocks.

Serial rows on a shared machine drift with the background load by more than the 5-10% a goal like
"Classifier <= 1.05x raw engine" needs to resolve. Here both contenders see the same moments: blocks of
calls alternate A, B, B, A, ... and the first call of every block is dropped (a thread pool that was
idle or still spinning from the other contender's block would otherwise bias it). Blocks last about
0.1 s (1 to 6 timed calls), so slow swings of the background load fall on both. Both get the same
random input.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from .measure import APIS, BenchSettings, check_device, load_meta, plan_feeds
from .plan import RowSpec
from .stats import LatencyStats

BLOCK_CALLS = 6          # most timed calls per block, after the dropped first one
BLOCK_SECONDS = 0.1      # aim: short blocks, so slow swings of the background load hit both alike


def block_size(call_seconds):
    """Timed calls per block: about BLOCK_SECONDS of work, between 1 and BLOCK_CALLS."""
    if call_seconds <= 0:
        return BLOCK_CALLS
    return max(1, min(BLOCK_CALLS, int(BLOCK_SECONDS / call_seconds)))


def interleaved_samples(calls, min_time, clock=time.perf_counter, block=BLOCK_CALLS, min_blocks=8,
                        max_blocks=10_000):
    """{name: [seconds]} from alternating blocks (order A B B A A B ...).

    Stops after `min_blocks` blocks each once the timed calls add up to `min_time` per contender on
    average: contenders of equal speed get about `min_time` each; a much faster one still gets a sample
    per block instead of stretching the run until its own sum reaches `min_time`.
    """
    names = list(calls)
    samples = {n: [] for n in names}
    blocks = 0
    while blocks < max_blocks:
        order = names if blocks % 2 == 0 else names[::-1]
        for name in order:
            fn = calls[name]
            fn()                                  # dropped: the switch-over call
            for _ in range(block):
                t0 = clock()
                fn()
                samples[name].append(clock() - t0)
        blocks += 1
        if blocks >= min_blocks and sum(map(sum, samples.values())) >= min_time * len(names):
            break
    return samples


def _prepare(spec, seed):
    adapter = APIS[spec.api]
    obj = adapter.load(spec)
    engine = adapter.engine(obj)
    check_device(engine, spec)
    mode, feeds = plan_feeds(engine.inputs(), spec.batch, load_meta(spec.model), seed)
    return adapter.make_call(obj, feeds), mode, engine


def compare_here(spec_a, spec_b, settings):
    """Result dict of the paired comparison, measured in this process."""
    call_a, mode_a, eng_a = _prepare(spec_a, settings.seed)
    call_b, mode_b, eng_b = _prepare(spec_b, settings.seed)
    slowest = 0.0
    for _ in range(max(1, settings.warmup)):
        slowest = 0.0
        for call in (call_a, call_b):
            t0 = time.perf_counter()
            call()
            slowest = max(slowest, time.perf_counter() - t0)
    check_device(eng_a, spec_a)
    check_device(eng_b, spec_b)
    samples = interleaved_samples({"a": call_a, "b": call_b}, settings.min_time or 1.0,
                                  block=block_size(slowest))
    sa, sb = LatencyStats.from_samples(samples["a"]), LatencyStats.from_samples(samples["b"])
    return {"a": spec_a.label, "b": spec_b.label, "a_mode": mode_a, "b_mode": mode_b,
            "a_stats": sa.as_ms(), "b_stats": sb.as_ms(),
            "ratio_p50": sa.p50 / sb.p50, "ratio_mean": sa.mean / sb.mean, "ratio_min": sa.min / sb.min}


def compare(spec_a, spec_b, settings, timeout=600):
    """Paired comparison of two rows in a fresh subprocess; {'error': ...} when it cannot run."""
    if (spec_a.threads, spec_a.batch) != (spec_b.threads, spec_b.batch):
        raise ValueError("paired rows must use the same batch and thread count")
    result = _compare_subprocess(spec_a, spec_b, settings, timeout)
    result.update(batch=spec_a.batch, threads=spec_a.threads)
    return result


def _compare_subprocess(spec_a, spec_b, settings, timeout):
    from .isolation import worker_env
    with tempfile.TemporaryDirectory(prefix="toolkit-paired-") as tmp:
        job, result = os.path.join(tmp, "job.json"), os.path.join(tmp, "result.json")
        with open(job, "w") as f:
            json.dump({"a": spec_a.to_dict(), "b": spec_b.to_dict(), "settings": settings.to_dict()}, f)
        try:
            proc = subprocess.run([sys.executable, "-m", "toolkit.bench.paired", job, result],
                                  env=worker_env(spec_a.threads), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"a": spec_a.label, "b": spec_b.label, "error": f"timed out after {timeout} s"}
        if not os.path.isfile(result):
            tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            return {"a": spec_a.label, "b": spec_b.label,
                    "error": f"exit status {proc.returncode}: {tail[0]}"}
        with open(result) as f:
            return json.load(f)


def main(argv):
    from runtime.atomic import atomic_write_text
    job_path, result_path = argv
    with open(job_path) as f:
        job = json.load(f)
    a, b = RowSpec.from_dict(job["a"]), RowSpec.from_dict(job["b"])
    try:
        out = compare_here(a, b, BenchSettings.from_dict(job["settings"]))
    except Exception as e:  # reported as the comparison's error, never a traceback
        out = {"a": a.label, "b": b.label, "error": f"{type(e).__name__}: {e}"}
    atomic_write_text(result_path, json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
