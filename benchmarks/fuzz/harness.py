"""Run fuzz cases one forked process each, under a memory cap and a wall timeout, and classify them.

Why a fork per case: a crash (signal), a hang or a runaway allocation must fail only that case, and
memory must be attributable to one case. The dispatcher (this process) imports the libraries once
and never runs a model itself, so it holds no onnxruntime/OpenCV thread pools when it forks; each
child builds its mutated input, consumes it through the project's public API, reports one JSON line
through a pipe and exits with os._exit.

Limits of a child (documented in benchmarks/README.md, section "Fuzzing"):
- address space: RLIMIT_AS = the child's size at fork + `mem_mb` (default 2048 MiB), so an
  allocation beyond the budget fails inside the case instead of swapping the machine;
- resident memory: a case whose peak RSS grows more than `rss_mb` (default 1024 MiB) above its size
  at fork is classed `memory` even if it completed;
- wall time: `timeout` seconds (default 60), then the case's process group is killed (`hang`);
- no core files (RLIMIT_CORE 0); stdout/stderr go to the case's log, kept for cases that failed.

Outcome classes: `ran` (consumed, no error), `typed` (a runtime.errors.ToolkitError subclass),
`other-exception` (anything else, with type and frames), `crash` (killed by a signal, or exited
without reporting), `hang` (timeout), `memory` (MemoryError, an allocation failure reported by a
library, or RSS over budget). `harness-error` means the mutator itself failed: a bug here, not in
the project; it is counted apart and never blamed on the code under test.
"""
import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

OUTCOMES = ("ran", "typed", "other-exception", "crash", "hang", "memory")
ACCEPTED = ("ran", "typed")
HARNESS_ERROR = "harness-error"
DEFAULT_MEM_MB = 2048
DEFAULT_RSS_MB = 1024
DEFAULT_TIMEOUT = 60.0
# Messages by which libraries report a failed allocation (OpenCV, onnxruntime, C++ new, numpy).
_ALLOC_WORDS = ("insufficient memory", "failed to allocate", "bad_alloc", "out of memory",
                "unable to allocate", "cannot allocate memory")
_PROJECT_DIRS = ("runtime", "converters", "toolkit")


def case_id(target, seed, index):
    return f"{target}:{seed}:{index}"


def parse_case_id(text):
    target, seed, index = text.split(":")
    return target, int(seed), int(index)


def case_rng(target, seed, index):
    """The random source of one case: depends on (target, seed, index) only, never on the count,
    the order of execution or the number of jobs."""
    return random.Random(f"fuzz/{target}/{seed}/{index}")


@dataclass
class Limits:
    mem_mb: int = DEFAULT_MEM_MB
    rss_mb: int = DEFAULT_RSS_MB
    timeout: float = DEFAULT_TIMEOUT


@dataclass
class Result:
    case: str
    outcome: str
    seconds: float = 0.0
    peak_rss_kb: int = 0
    rss_growth_kb: int = 0
    stage: str = ""
    error_type: str = ""
    message: str = ""
    frame: str = ""               # where the exception was raised
    project_frame: str = ""       # the innermost frame in runtime/, converters/ or toolkit/
    mutation: List[str] = field(default_factory=list)
    names_file: Optional[bool] = None     # typed errors: does the message name the input file?
    kept: str = ""                # folder holding the input and log of a failed case

    def to_dict(self):
        return dict(self.__dict__)


def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def thread_count():
    return _status_kb("Threads")


def _frames(tb):
    entries = traceback.extract_tb(tb)
    if not entries:
        return "", ""
    fmt = lambda e: f"{os.path.relpath(e.filename) if e.filename.startswith(os.getcwd()) else e.filename}:{e.lineno} in {e.name}"  # noqa: E731
    project = ""
    for e in entries:
        rel = os.path.relpath(e.filename, os.getcwd())
        if rel.split(os.sep)[0] in _PROJECT_DIRS:
            project = fmt(e)
    return fmt(entries[-1]), project


def _is_alloc_failure(exc):
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, MemoryError):
            return True
        text = str(exc).lower()
        if any(w in text for w in _ALLOC_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _send(wfd, obj):
    if wfd is None:
        return
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(wfd, data):]


class Stage:
    """Mutable label of what a consumer is doing, so a failure says at which step it happened.
    Each change is also sent to the dispatcher at once, so a crash still names its step."""

    def __init__(self, wfd=None):
        self.name = "start"
        self.wfd = wfd

    def __call__(self, name):
        self.name = name
        _send(self.wfd, {"stage": name})


def _child_main(target, corpus, seed, index, case_dir, limits, wfd):
    """Body of the forked child. Never returns."""
    from runtime.errors import ToolkitError
    report = {"start_rss_kb": _status_kb("VmRSS")}
    try:
        os.setpgid(0, 0)
        log = os.open(os.path.join(case_dir, "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        import faulthandler
        faulthandler.enable(file=sys.stderr)     # a crash leaves its Python stack in the case log
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        vm = _status_kb("VmSize") * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + limits.mem_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        rng = case_rng(target.name, seed, index)
        try:
            suffix, data, ops = target.mutate(rng, corpus)
            variant, how = target.variant(rng)
            if how:
                ops.append(how)
        except Exception as e:
            traceback.print_exc()
            report.update(outcome=HARNESS_ERROR, error_type=type(e).__name__, message=str(e)[:500],
                          frame=_frames(e.__traceback__)[0])
            raise SystemExit
        path = os.path.join(case_dir, "input" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        report["mutation"] = ops
        _send(wfd, {"mutation": ops, "start_rss_kb": report["start_rss_kb"]})
        print(f"case {case_id(target.name, seed, index)}: {'; '.join(ops)}", flush=True)
        stage = Stage(wfd)
        t0 = time.perf_counter()
        try:
            target.consume(path, case_dir, stage, variant)
            report["outcome"] = "ran"
        except BaseException as e:  # classify everything, including SystemExit from a library
            report["outcome"] = ("memory" if _is_alloc_failure(e) else
                                 "typed" if isinstance(e, ToolkitError) else "other-exception")
            report["error_type"] = f"{type(e).__module__}.{type(e).__qualname__}"
            report["message"] = str(e)[:500]
            report["frame"], report["project_frame"] = _frames(e.__traceback__)
            if report["outcome"] == "typed":
                text = str(e)
                report["names_file"] = path in text or os.path.basename(path) in text
            traceback.print_exc()
        report["seconds"] = time.perf_counter() - t0
        report["stage"] = stage.name
    except SystemExit:
        pass
    except BaseException as e:  # the harness itself failed in the child
        report.setdefault("outcome", HARNESS_ERROR)
        report.setdefault("message", f"{type(e).__name__}: {e}"[:500])
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _send(wfd, report)
        finally:
            os._exit(0)


@dataclass
class _Running:
    pid: int
    rfd: int
    index: int
    case_dir: str
    deadline: float
    started: float
    base_rss_kb: int
    buf: bytes = b""


def _finish(target, seed, run: _Running, status, rusage, limits, timed_out, keep_dir):
    cid = case_id(target.name, seed, run.index)
    report = {}
    for line in run.buf.decode(errors="replace").splitlines():   # progress lines, then the result
        try:
            report.update(json.loads(line))
        except ValueError:
            pass
    peak = rusage.ru_maxrss
    start = report.get("start_rss_kb", run.base_rss_kb)
    res = Result(cid, "crash", seconds=time.monotonic() - run.started, peak_rss_kb=peak,
                 rss_growth_kb=max(0, peak - start))
    if timed_out:
        res.outcome, res.message = "hang", f"no result after {limits.timeout:.0f} s; killed"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        res.outcome = "crash"
        res.error_type = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        res.message = f"killed by signal {res.error_type}"
    elif "outcome" not in report:
        res.outcome = "crash"
        res.message = f"exited with status {os.WEXITSTATUS(status)} without reporting a result"
    else:
        res.outcome = report["outcome"]
        for key in ("error_type", "message", "frame", "project_frame", "names_file"):
            if key in report:
                setattr(res, key, report[key])
        res.seconds = report.get("seconds", res.seconds)
    res.stage = report.get("stage", "")
    res.mutation = report.get("mutation", [])
    if res.outcome in ACCEPTED and res.rss_growth_kb > limits.rss_mb * 1024:
        res.message = (f"peak RSS grew {res.rss_growth_kb // 1024} MiB, over the {limits.rss_mb} MiB "
                       f"budget (after: {res.outcome} {res.message})")
        res.outcome = "memory"
    if res.outcome in ACCEPTED and not keep_dir:
        shutil.rmtree(run.case_dir, ignore_errors=True)
    else:
        res.kept = run.case_dir
    return res


def _spawn(target, corpus, seed, index, root, limits):
    case_dir = tempfile.mkdtemp(prefix=f"{target.name}-{seed}-{index}-", dir=root)
    rfd, wfd = os.pipe()
    base = _status_kb("VmRSS")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child_main(target, corpus, seed, index, case_dir, limits, wfd)
    os.close(wfd)
    now = time.monotonic()
    return _Running(pid, rfd, index, case_dir, now + limits.timeout, now, base)


def _kill(pid):
    for how in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            how()
        except (ProcessLookupError, PermissionError):
            pass


def run_cases(target, corpus, seed, indices, root, limits=None, jobs=1, keep_all=False,
              on_result=None):
    """Run the cases `indices` of `target` with up to `jobs` children at a time; list of Result in
    index order. `root` receives one folder per case (removed for ran/typed unless keep_all)."""
    limits = limits or Limits()
    os.makedirs(root, exist_ok=True)
    pending = list(indices)
    running: Dict[int, _Running] = {}
    results = {}
    while pending or running:
        while pending and len(running) < max(1, jobs):
            run = _spawn(target, corpus, seed, pending.pop(0), root, limits)
            running[run.rfd] = run
        now = time.monotonic()
        wait = max(0.0, min(r.deadline for r in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], min(wait, 1.0))
        done = []
        for fd in ready:
            run = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                run.buf += chunk
            else:
                done.append((run, False))
        now = time.monotonic()
        for run in running.values():
            if now > run.deadline and all(run is not d for d, _ in done):
                _kill(run.pid)
                done.append((run, True))
        for run, timed_out in done:
            _, status, rusage = os.wait4(run.pid, 0)
            os.close(run.rfd)
            del running[run.rfd]
            res = _finish(target, seed, run, status, rusage, limits, timed_out, keep_all)
            results[run.index] = res
            if on_result:
                on_result(res)
    return [results[i] for i in sorted(results)]
