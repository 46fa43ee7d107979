"""Start a data-parallel job through MindSpore's launcher `msrun`, and watch it so that it never hangs.

`launch()` runs, on each host,

    msrun --worker_num=N --local_worker_num=L --master_addr=A --master_port=P --node_rank=K
          --log_dir=DIR --join=True --cluster_time_out=T --tail_worker_log=R SCRIPT ARGS...

msrun starts a scheduler (on the master host) and L workers, each running `python SCRIPT ARGS` with its
rank in the environment, and writes `DIR/worker_<rank>.log` and `DIR/scheduler.log`; we add
`DIR/msrun.log`. Every rank's log is kept.

What msrun does not do, and this module adds:
- the master port is checked before starting (a port in use is a clear error, not a 10-minute
  "cluster not built" timeout);
- a dying worker makes the run fail with *that rank's* error: the rank is found from the pid msrun
  reports, and the tail of its log is shown;
- msrun waits for the scheduler after a worker died; the scheduler only notices after its heartbeat or
  cluster timeout (30 s to minutes), so after `grace_s` the scheduler is stopped;
- an optional overall `timeout` stops every process of the job.

Semantics of the training commands built on this: `--batch-size` is per device (global batch = batch
size x workers); the learning rate is not scaled unless the caller applies
`toolkit.distributed.context.scaled_learning_rate(lr, workers, "linear")`.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from .backends import ROLE_SCHEDULER, ROLE_WORKER, launch_environment
from .errors import DistributedError

__all__ = ["launch", "inside_worker", "worker_script_path", "find_msrun", "free_port",
           "check_port_free", "msrun_command", "DistributedError"]

DEFAULT_LOG_DIR = "msrun_logs"
# msrun's own report of a worker exiting non-zero (mindspore/parallel/cluster/process_entity/_api.py).
_WORKER_FAILED = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
_NOISE = re.compile(r"^\[(WARNING|INFO|DEBUG)\] ")
TAIL_LINES = 25


def inside_worker() -> bool:
    """True in every process msrun started (workers and the scheduler): do not launch again there.

    In the scheduler process `init_data_parallel()` runs MindSpore's scheduler and never returns, so
    commands must call it before doing any work of their own.
    """
    return os.environ.get("MS_ROLE") in (ROLE_WORKER, ROLE_SCHEDULER)


def worker_script_path() -> str:
    """The script msrun runs in each process to execute `toolkit <command> ...`."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "toolkit_worker.py")


def find_msrun() -> str:
    """msrun of the running interpreter's environment (next to sys.executable), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "msrun")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("msrun")
    if found:
        return found
    raise DistributedError(f"msrun not found next to {sys.executable} nor on PATH; it comes with the "
                           f"mindspore package (pip install 'ms-edge-toolkit[train]')")


def free_port(addr="127.0.0.1") -> int:
    """A port the OS says is free on `addr` now (a later bind can still race; check_port_free again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def check_port_free(addr, port):
    """Raise DistributedError if `port` is taken on `addr`; silent when `addr` is not this host's."""
    if not 1024 <= int(port) <= 65535:
        raise DistributedError(f"master port {port} is outside 1024..65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT leftovers do not count
        try:
            s.bind((addr, int(port)))
        except OSError as e:
            import errno
            if e.errno == errno.EADDRINUSE:
                raise DistributedError(f"master port {port} on {addr} is already in use; choose another "
                                       f"with --master-port or leave it unset to pick a free one") from None
            if e.errno == errno.EADDRNOTAVAIL:
                return   # the master is another host; its own launcher checks there
            raise DistributedError(f"cannot check master address {addr}:{port}: {e}") from None


def _layout(workers, local_workers, node_rank):
    if workers < 1:
        raise DistributedError(f"workers must be >= 1, got {workers}")
    local = workers if local_workers is None else local_workers
    if not 1 <= local <= workers:
        raise DistributedError(f"local workers must be in 1..{workers}, got {local}")
    if workers % local:
        raise DistributedError(f"{workers} workers cannot be split evenly into hosts of {local} local workers")
    nodes = workers // local
    if not 0 <= node_rank < nodes:
        raise DistributedError(f"node rank must be in 0..{nodes - 1} for {workers} workers with {local} "
                               f"per host, got {node_rank}")
    return local


def msrun_command(script_args, workers, local_workers, master_addr, master_port, node_rank, log_dir,
                  join=True, cluster_timeout=120, rank_table=None):
    """The msrun argument list (no checks beyond the worker layout)."""
    local = _layout(workers, local_workers, node_rank)
    script_args = [str(a) for a in script_args]
    if not script_args:
        raise DistributedError("nothing to launch: script_args is empty")
    return [find_msrun(), f"--worker_num={workers}", f"--local_worker_num={local}",
            f"--master_addr={master_addr}", f"--master_port={master_port}", f"--node_rank={node_rank}",
            f"--log_dir={log_dir}", f"--join={join}", f"--cluster_time_out={int(cluster_timeout)}",
            f"--tail_worker_log={node_rank * local}",
            *([f"--rank_table_file={os.path.abspath(rank_table)}"] if rank_table is not None else []),
            *script_args]


def _python_dir(log_dir):
    """A folder whose `python` is this interpreter: msrun starts workers as plain `python SCRIPT`."""
    here = os.path.dirname(sys.executable)
    candidate = os.path.join(here, "python")
    if os.path.exists(candidate) and os.path.realpath(candidate) == os.path.realpath(sys.executable):
        return here
    shim = os.path.join(os.path.abspath(log_dir), ".python")
    os.makedirs(shim, exist_ok=True)
    link = os.path.join(shim, "python")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(sys.executable, link)
    return shim


def _log_tail(path, lines=TAIL_LINES):
    """Last lines of a log without MindSpore's WARNING/INFO chatter; reads at most 256 KiB."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - (256 << 10)))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    kept = [ln for ln in text.splitlines() if ln.strip() and not _NOISE.match(ln)]
    return "\n".join(kept[-lines:]) or "(log is empty)"


def _exit_text(code):
    code = int(code)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Watcher:
    """Follows msrun's output and its child processes (pid -> role, rank) while the job runs."""

    def __init__(self, proc, log_path, stream):
        self.proc = proc
        self.failures = []      # (pid, exit code) in the order msrun reported them
        self.procs = {}         # pid -> (role, rank) of scheduler and workers
        self._log = open(log_path, "w", encoding="utf-8")
        self._stream = stream
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, ""):
            if self._log.closed:     # a leftover holder of msrun's stdout outlived the job
                return
            self._log.write(line)
            self._log.flush()
            if self._stream and not _NOISE.match(line):
                sys.stdout.write(line)
                sys.stdout.flush()
            m = _WORKER_FAILED.search(line)
            if m:
                self.failures.append((int(m.group(1)), int(m.group(2))))

    def poll_children(self):
        import psutil   # installed with mindspore, whose msrun we are running
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            if child.pid in self.procs:
                continue
            try:
                if os.path.basename(child.exe()) == "tail":   # msrun's log tailer, not a rank
                    continue
                env = child.environ()
            except psutil.Error:
                continue
            role = env.get("MS_ROLE")
            if role in (ROLE_WORKER, ROLE_SCHEDULER):
                self.procs[child.pid] = (role, env.get("RANK_ID"))
        return children

    def close(self):
        self._reader.join(timeout=5)
        self._log.close()


def _stop(pids, wait_s=5.0):
    """SIGTERM then SIGKILL the given processes of this job (only ones we found under our msrun)."""
    import psutil

    def running(p):
        try:    # a zombie is dead; its parent (msrun, maybe frozen) has just not reaped it yet
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.terminate()
            procs.append(p)
        except psutil.Error:
            pass
    deadline = time.monotonic() + wait_s
    while any(running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in procs:
        if running(p):
            try:
                p.kill()
            except psutil.Error:
                pass


def _abort(proc):
    """Stop msrun and everything under it: freeze msrun (so it spawns nothing more), stop its
    descendants, then kill it."""
    import psutil
    try:
        msrun = psutil.Process(proc.pid)
        msrun.suspend()
        kids = msrun.children(recursive=True)
    except psutil.Error:
        kids = []
    _stop([k.pid for k in kids])
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def launch(script_args, workers, local_workers=None, master_addr="127.0.0.1", master_port=None, node_rank=0,
           log_dir=DEFAULT_LOG_DIR, join=True, *, device="cpu", visible_devices=None, rank_table=None,
           env=None, cluster_timeout=120, grace_s=5.0, timeout=None, stream=True) -> int:
    """Run `script_args` (a script path then its arguments) in `workers` processes through msrun.

    Returns 0 when every rank exited 0. Raises DistributedError naming the failed rank with the tail of
    its log, or the scheduler's, or saying the job ran past `timeout` seconds (then everything is
    stopped). With join=False msrun returns once the processes are spawned and nothing is watched.
    `device` selects the backend's environment (see backends.py); `visible_devices` and `rank_table`
    are passed to the backend that understands them. `stream` echoes msrun's console (which tails the
    first local rank's log) to stdout, without MindSpore's WARNING/INFO lines (msrun.log keeps them).
    `master_port=None` picks a free port on a single host; a multi-host run must name one.
    A job that hangs without failing (e.g. ranks running different numbers of steps, so one waits in
    an all-reduce forever) is only stopped by `timeout`.
    """
    local = _layout(workers, local_workers, node_rank)
    extra_env = launch_environment(device, local, visible_devices, rank_table, env)
    if rank_table is not None:
        from .ranktable import read_rank_table, validate_rank_table
        size = validate_rank_table(read_rank_table(rank_table), str(rank_table))
        if size != workers:
            raise DistributedError(f"{rank_table} lists {size} ranks but {workers} workers were asked for")
    if master_port is None:
        if local != workers:
            raise DistributedError("a multi-host run needs an explicit master port, the same on every host")
        master_port = free_port(master_addr)
    check_port_free(master_addr, master_port)
    log_dir = os.path.abspath(log_dir)
    os.makedirs(log_dir, exist_ok=True)
    cmd = msrun_command(script_args, workers, local, master_addr, master_port, node_rank, log_dir, join,
                        cluster_timeout, rank_table)
    full_env = dict(os.environ)
    full_env.update(extra_env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env["PATH"] = _python_dir(log_dir) + os.pathsep + full_env.get("PATH", "")

    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace")
    watcher = _Watcher(proc, os.path.join(log_dir, "msrun.log"), stream)
    started = time.monotonic()
    failed_at = None
    timed_out = False
    try:
        while proc.poll() is None:
            watcher.poll_children()
            now = time.monotonic()
            if watcher.failures and failed_at is None:
                failed_at = now
            if failed_at is not None and now - failed_at > grace_s:
                # msrun already killed the workers; it now waits for a scheduler that waits for them.
                _stop([pid for pid, (role, _) in watcher.procs.items() if role == ROLE_SCHEDULER])
                failed_at = float("inf")
            if timeout is not None and now - started > timeout:
                timed_out = True
                _abort(proc)
                break
            time.sleep(0.05 if now - started < 10 else 0.2)   # catch fast-dying workers' ranks
    except BaseException:
        _abort(proc)
        raise
    finally:
        watcher.close()
    rc = proc.returncode
    ranks = range(node_rank * local, node_rank * local + local)
    if timed_out:
        raise DistributedError(f"distributed run stopped after {timeout:.0f} s timeout; logs in {log_dir}\n"
                               + _tails(log_dir, ranks))
    if rc == 0 and not watcher.failures:
        return 0
    raise DistributedError(_failure_message(log_dir, watcher, rc, ranks))


def _rank_log(log_dir, rank):
    return os.path.join(log_dir, f"worker_{rank}.log")


def _failure_message(log_dir, watcher, rc, ranks):
    for pid, code in watcher.failures:
        role, rank = watcher.procs.get(pid, (ROLE_WORKER, None))
        if rank is None and role == ROLE_WORKER:
            rank = _rank_with_traceback(log_dir, ranks)
        if rank is not None:
            log = _rank_log(log_dir, rank)
            return (f"rank {rank} failed ({_exit_text(code)}, pid {pid}); all logs in {log_dir}\n"
                    f"--- last lines of {log} ---\n{_log_tail(log)}")
        return (f"a worker failed ({_exit_text(code)}, pid {pid}; it exited before its rank could be "
                f"read); all logs in {log_dir}\n" + _tails(log_dir, ranks))
    sched = os.path.join(log_dir, "scheduler.log")
    return (f"msrun failed ({_exit_text(rc)}) without a worker error; logs in {log_dir}\n"
            f"--- last lines of {sched} ---\n{_log_tail(sched)}\n"
            f"--- last lines of msrun.log ---\n{_log_tail(os.path.join(log_dir, 'msrun.log'), 10)}")


def _rank_with_traceback(log_dir, ranks):
    """The one rank whose log ends in a Python traceback, for a worker that died before its rank
    could be read from its environment (fast failures on a loaded machine); None if not exactly one."""
    hits = [r for r in ranks if "Traceback (most recent call last)" in
            _log_tail(_rank_log(log_dir, r), TAIL_LINES * 4)]
    return hits[0] if len(hits) == 1 else None


def _tails(log_dir, ranks, lines=10):
    """Tails of this host's worker logs, in rank order."""
    parts = [f"--- last lines of {_rank_log(log_dir, r)} ---\n{_log_tail(_rank_log(log_dir, r), lines)}"
             for r in ranks if os.path.exists(_rank_log(log_dir, r))]
    return "\n".join(parts) or "(no worker log was written)"
