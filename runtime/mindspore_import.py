"""The one way the project imports MindSpore: quiet unless asked, and never writing into the cwd.

A MindSpore wheel built with every backend logs, on a machine without CUDA or CANN, warnings such
as `Backend GPU is not available`, `libge_runner.so: cannot open shared object file` (at device
probes) or `mindspore.export(file_format='ONNX') will be deleted` (at export): facts about plugins
this machine does not use, printed in the middle of the toolkit's tables. MindSpore reads its log
level from the environment when it first logs, in Python and in C++ (glog, which is also how the
plugin loader reports a failed dlopen), so it is set here, before the first `import mindspore`:

- `GLOG_v` (MindSpore's level: 0 debug, 1 info, 2 warning, 3 error) is set to QUIET_GLOG_LEVEL
  unless the user set it or verbose output was asked for (`toolkit -v`, `set_verbose(True)`);
- Python warnings raised from mindspore modules are ignored on the same condition;
- `MS_OM_PATH`, the folder where a graph-compilation failure writes `rank_<id>/om/analyze_fail.ir`
  (the current folder by default), points to GRAPH_DUMP_DIR unless the user set it; training
  points it into the run folder (`graph_dumps_in`).

The environment is inherited by subprocesses (msrun workers), so they are as quiet as their parent.
Errors are never hidden: MindSpore raises them as exceptions, which the callers turn into typed
errors. Importing this module imports nothing heavy; `import runtime` stays framework-free.
"""
import contextlib
import importlib
import os
import sys
import tempfile
import threading
import warnings

QUIET_GLOG_LEVEL = "3"          # errors only
GLOG_LEVEL_VAR = "GLOG_v"
GRAPH_DUMP_VAR = "MS_OM_PATH"
GRAPH_DUMP_DIR = os.path.join(tempfile.gettempdir(), "ms-edge-toolkit-graphs")

_lock = threading.Lock()
_verbose = False
_set_by_us = set()              # environment variables this module set (and may take back)
_configured = False


def set_verbose(verbose):
    """Show MindSpore's own warnings (True) or only its errors (False, the default).

    Takes effect for the first import of MindSpore in this process and for every subprocess
    started afterwards; a level the user put in the environment is always kept."""
    global _verbose
    with _lock:
        _verbose = bool(verbose)
        if _verbose and GLOG_LEVEL_VAR in _set_by_us:
            os.environ.pop(GLOG_LEVEL_VAR, None)
            _set_by_us.discard(GLOG_LEVEL_VAR)
        _configure()


def is_verbose():
    return _verbose


def _setdefault_env(name, value):
    if name not in os.environ:
        os.environ[name] = value
        _set_by_us.add(name)


def _configure():
    global _configured
    _configured = True
    if not _verbose:
        _setdefault_env(GLOG_LEVEL_VAR, QUIET_GLOG_LEVEL)
        warnings.filterwarnings("ignore", module=r"mindspore(\.|$)")
    _setdefault_env(GRAPH_DUMP_VAR, GRAPH_DUMP_DIR)


@contextlib.contextmanager
def graph_dumps_in(folder):
    """Within the block, MindSpore's compile-failure dumps (rank_<id>/om/analyze_fail.ir) go to
    `folder` (MindSpore reads MS_OM_PATH when it writes one), unless the user chose MS_OM_PATH."""
    with _lock:
        ours = GRAPH_DUMP_VAR not in os.environ or GRAPH_DUMP_VAR in _set_by_us
        previous = os.environ.get(GRAPH_DUMP_VAR)
        if ours:
            os.environ[GRAPH_DUMP_VAR] = os.fspath(folder)
            _set_by_us.add(GRAPH_DUMP_VAR)
    try:
        yield os.environ[GRAPH_DUMP_VAR]
    finally:
        if ours:
            with _lock:
                if previous is None:
                    os.environ.pop(GRAPH_DUMP_VAR, None)
                else:
                    os.environ[GRAPH_DUMP_VAR] = previous


def import_mindspore(module="mindspore"):
    """The `mindspore` package (or one of its sub-modules, e.g. "mindspore.nn",
    "mindspore.train.mind_ir_pb2"), imported with the log settings above applied first."""
    if module != "mindspore" and not module.startswith("mindspore."):
        raise ValueError(f"{module!r} is not a MindSpore module")
    if not _configured:
        with _lock:
            _configure()
    if module in sys.modules:
        return sys.modules[module]
    return importlib.import_module(module)


def from_mindspore(module, *names):
    """`from <module> import <names>` through import_mindspore: one object for one name, a tuple for
    several (as operator.itemgetter). A name that is a sub-module not imported yet is imported."""
    mod = import_mindspore(module)
    values = []
    for name in names:
        try:
            values.append(getattr(mod, name))
        except AttributeError:
            values.append(import_mindspore(f"{module}.{name}"))
    return values[0] if len(values) == 1 else tuple(values)
