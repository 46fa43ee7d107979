"""How a row is run: in a fresh Python subprocess (default) or in the current process.

A subprocess per row gives each row an honest peak memory (its own VmHWM), the thread count fixed
before any library starts its pools, and isolation: a crash, a hang or a leaked thread pool ends only
that row. The cost (interpreter start, numpy/runtime imports, IPC) is measured for every row and reported
as `overhead_s`; it is never part of the load or latency figures.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from runtime.registry import registrar

from .measure import empty_result, run_row

RUNNERS = {}


runner = registrar(RUNNERS, "bench runner")


@runner("inprocess")
def run_inprocess(spec, settings, **kw):
    """Measure in this process (peak memory is then the whole process's peak so far)."""
    row = run_row(spec, settings, isolation="inprocess", **kw)
    row["overhead_s"] = None if spec.unavailable else 0.0
    return row


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(threads):
    """The child's environment: thread pools of OpenMP/BLAS libraries pinned to the row's count."""
    env = dict(os.environ)
    if threads:
        env.update({k: str(threads) for k in THREAD_ENV})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@runner("subprocess")
def run_subprocess(spec, settings, python=None, **_):
    """Measure in a fresh `python -m toolkit.bench.worker`; a crash or timeout fails only this row."""
    if spec.unavailable:
        return empty_result(spec)
    with tempfile.TemporaryDirectory(prefix="toolkit-bench-") as tmp:
        job, result = os.path.join(tmp, "job.json"), os.path.join(tmp, "result.json")
        with open(job, "w") as f:
            json.dump({"spec": spec.to_dict(), "settings": settings.to_dict()}, f)
        cmd = [python or sys.executable, "-m", "toolkit.bench.worker", job, result]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=worker_env(spec.threads), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=settings.row_timeout)
        except subprocess.TimeoutExpired:
            return _failed(spec, f"the row exceeded its {settings.row_timeout:g} s limit and was stopped")
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not os.path.isfile(result):
            return _failed(spec, _describe_exit(proc.returncode, proc.stdout))
        with open(result) as f:
            row = json.load(f)
    row["isolation"] = "subprocess"
    row["overhead_s"] = max(0.0, wall - row.pop("_row_s", wall))
    return row


def _failed(spec, reason):
    row = empty_result(spec)
    row.update(status="failed", reason=reason, isolation="subprocess")
    return row


def _describe_exit(code, output):
    tail = " | ".join(line.strip() for line in output.decode("utf-8", "replace").splitlines()[-3:]
                      if line.strip())
    if code is not None and code < 0:
        try:
            what = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"killed by signal {-code}"
    else:
        what = f"exited with status {code} without a result"
    return f"the row's worker process {what}" + (f": {tail}" if tail else "")
