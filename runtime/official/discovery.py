"""Find the official MindSpore Lite tools: an explicit path, then MSLITE_HOME, then PATH.

The order is most specific first: an option the user typed beats an environment variable, which beats
whatever happens to be on PATH. `MSLITE_HOME` is the root of an unpacked release package
(`mindspore-lite-2.0.0-linux-x64/`), whose layout is fixed: `tools/converter/converter/converter_lite`,
`tools/benchmark/benchmark`, with their shared libraries in `tools/converter/lib` and `runtime/lib`
(added to LD_LIBRARY_PATH for the child, since the release binaries carry no rpath). A folder holding
both programs (the stand-ins' bin folder) also works as MSLITE_HOME.

A program found on PATH is checked by its `--help` text, because `benchmark` is a common name: a
`benchmark` that does not list `--modelFile` is not MindSpore Lite's and is not used.

When a tool is absent, `find_tool` raises OfficialToolUnavailableError saying where it looked and how
to get it, and `warn_absent_once` lets each caller that can carry on without it say so once per process.
"""
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ..errors import EngineUnavailableError

CONVERTER = "converter_lite"
BENCHMARK = "benchmark"
TOOLS = (CONVERTER, BENCHMARK)
HOME_ENV = "MSLITE_HOME"
# Per-tool override, like an explicit option but from the environment (CI, wrappers).
TOOL_ENV = {CONVERTER: "MSLITE_CONVERTER", BENCHMARK: "MSLITE_BENCHMARK"}
# Release package layout (mindspore-lite-<v>-linux-x64): program and its library folders.
RELEASE_LAYOUT = {
    CONVERTER: (os.path.join("tools", "converter", "converter", "converter_lite"),
                (os.path.join("tools", "converter", "lib"), os.path.join("runtime", "lib"))),
    BENCHMARK: (os.path.join("tools", "benchmark", "benchmark"), (os.path.join("runtime", "lib"),)),
}
# A flag every genuine tool lists in --help; distinguishes MindSpore Lite's benchmark from others.
SIGNATURE_FLAG = {CONVERTER: "--fmk", BENCHMARK: "--modelFile"}
HOW_TO_GET = ("install the MindSpore Lite release package and set MSLITE_HOME to its folder, put "
              "converter_lite/benchmark on PATH, or build the stand-ins with "
              "`BIN=$(../shared/mslite/build.sh)` and set MSLITE_HOME=$BIN")
HELP_TIMEOUT_S = 20


class OfficialToolUnavailableError(EngineUnavailableError):
    """An official MindSpore Lite program was asked for and is not found (or is not the real one)."""

    def __init__(self, tool, looked, reason=""):
        self.tool = tool
        self.looked = list(looked)
        detail = "; ".join(self.looked) if self.looked else "nowhere"
        why = f"{reason}; " if reason else ""
        super().__init__(f"the official MindSpore Lite tool {tool!r}", [])
        # The engine error's "available: none" says nothing here: where we looked is the useful part.
        Exception.__init__(self, f"the official MindSpore Lite tool {tool!r} is not available "
                                 f"({why}looked in: {detail}; {HOW_TO_GET})")


@dataclass(frozen=True)
class OfficialTool:
    """One located program: where it is, how it was found, and the environment it runs in."""
    name: str
    path: str
    found_by: str                       # "option", "MSLITE_CONVERTER"/"MSLITE_BENCHMARK", "MSLITE_HOME", "PATH"
    lib_dirs: Tuple[str, ...] = ()      # prepended to LD_LIBRARY_PATH for the child
    help_text: str = field(default="", compare=False, repr=False)

    def env(self, base=None) -> Dict[str, str]:
        """The child environment: LD_LIBRARY_PATH for a release package, and glog at errors only
        (GLOG_v=3; the library's INFO/WARNING lines are not ours to print) unless the caller set it."""
        env = dict(os.environ if base is None else base)
        if self.lib_dirs:
            parts = list(self.lib_dirs) + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
            env["LD_LIBRARY_PATH"] = os.pathsep.join(parts)
        env.setdefault("GLOG_v", "3")
        return env

    def supports(self, flag) -> bool:
        """Whether `--help` lists `flag` (e.g. "--outputDataFile", "--timeProfiling")."""
        return f"{flag}=" in self.help_text or f"{flag} " in self.help_text


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _help(path, lib_dirs):
    env = OfficialTool("?", path, "?", tuple(lib_dirs)).env()
    try:
        proc = subprocess.run([path, "--help"], capture_output=True, text=True, errors="replace",
                              timeout=HELP_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{path} --help failed: {e}"
    return proc.stdout + proc.stderr, None


def _candidates(name, explicit, environ):
    """(path, found_by, lib_dirs) in the order they are tried."""
    if explicit:
        yield os.path.abspath(os.path.expanduser(explicit)), "option", ()
    override = environ.get(TOOL_ENV[name])
    if override:
        yield os.path.abspath(os.path.expanduser(override)), TOOL_ENV[name], ()
    home = environ.get(HOME_ENV)
    if home:
        home = os.path.abspath(os.path.expanduser(home))
        rel, libs = RELEASE_LAYOUT[name]
        yield os.path.join(home, rel), HOME_ENV, tuple(os.path.join(home, d) for d in libs)
        yield os.path.join(home, name), HOME_ENV, ()        # a plain bin folder (the stand-ins)
    on_path = shutil.which(name, path=environ.get("PATH", os.defpath))
    if on_path:
        yield os.path.abspath(on_path), "PATH", ()


def find_tool(name, explicit: Optional[str] = None, environ=None) -> OfficialTool:
    """Locate `name` ("converter_lite" or "benchmark"). An explicit path that is wrong is an error
    even when the tool exists elsewhere: the user asked for that one."""
    if name not in TOOLS:
        raise ValueError(f"unknown official tool {name!r}; known: {', '.join(TOOLS)}")
    environ = os.environ if environ is None else environ
    looked = []
    for path, found_by, libs in _candidates(name, explicit, environ):
        if not _executable(path):
            looked.append(f"{found_by} ({path}: no executable file)")
            if found_by in ("option", TOOL_ENV[name]):
                raise OfficialToolUnavailableError(name, looked)
            continue
        text, problem = _help(path, libs)
        if text is None or SIGNATURE_FLAG[name] not in text:
            looked.append(f"{found_by} ({path}: " +
                          (problem or f"--help does not list {SIGNATURE_FLAG[name]}; not MindSpore "
                                      "Lite's program") + ")")
            if found_by in ("option", TOOL_ENV[name]):
                raise OfficialToolUnavailableError(name, looked)
            continue
        return OfficialTool(name, path, found_by, libs, text)
    if not looked:
        looked = [f"option (not given)", f"{TOOL_ENV[name]} (not set)", f"{HOME_ENV} (not set)",
                  "PATH (not found)"]
    raise OfficialToolUnavailableError(name, looked)


@functools.lru_cache(maxsize=None)
def _cached(name, explicit, home, override, path_var):
    env = {"PATH": path_var}
    if home:
        env[HOME_ENV] = home
    if override:
        env[TOOL_ENV[name]] = override
    return find_tool(name, explicit, env)


def locate(name, explicit=None) -> OfficialTool:
    """find_tool, cached per process for the current environment (each lookup runs `--help`)."""
    return _cached(name, explicit, os.environ.get(HOME_ENV), os.environ.get(TOOL_ENV[name]),
                   os.environ.get("PATH", os.defpath))


_WARNED = set()


def warn_absent_once(name, what_is_skipped, error: OfficialToolUnavailableError, stream=None):
    """Say once per process and use that `name` is absent, and what is not done because of it."""
    key = (name, what_is_skipped)
    if key in _WARNED:
        return
    _WARNED.add(key)
    print(f"note: {what_is_skipped} skipped: {error}", file=stream or sys.stderr)


def probe(name, explicit=None):
    """(tool or None, reason): for callers that report absence instead of raising."""
    try:
        return locate(name, explicit), ""
    except OfficialToolUnavailableError as e:
        return None, str(e)
