"""The official MindSpore Lite tools for tests: found like users find them, or built from ../shared.

`scripts/test.sh` builds the stand-ins (`../shared/mslite/build.sh`) before pytest and exports
MSLITE_STANDIN_BIN, or MSLITE_BUILD_ERROR with build.sh's message when the build failed. Run
directly under pytest, the fixture builds them itself once per session. Tests that need the tools
skip only when the build failed, and the skip carries build.sh's message; the run's summary says
which tools the official-tool tests used (conftest's pytest_terminal_summary).
"""
import os
import subprocess

import pytest

from runtime.official import discovery

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_SH = os.path.join(os.path.dirname(ROOT), "shared", "mslite", "build.sh")
STATUS = {}          # what the session used, for the terminal summary


def _build():
    """(bin folder, None) or (None, why)."""
    if os.environ.get("MSLITE_STANDIN_BIN"):
        return os.environ["MSLITE_STANDIN_BIN"], None
    if os.environ.get("MSLITE_BUILD_ERROR"):
        return None, os.environ["MSLITE_BUILD_ERROR"]
    if not os.path.isfile(BUILD_SH):
        return None, f"{BUILD_SH} not found (shared/ must sit beside the checkout)"
    try:
        proc = subprocess.run(["bash", BUILD_SH], capture_output=True, text=True, timeout=900,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"build.sh could not run: {e}"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        return None, f"build.sh exited {proc.returncode}: {tail}"
    return lines[-1], None


def prepare():
    """Called once at pytest start (conftest.pytest_configure): use the official tools a user would
    find (PATH, MSLITE_HOME), else the stand-ins, exported as MSLITE_HOME so that every test, and
    runtime.load(engine="mslite-benchmark"), finds them through the same discovery as users do."""
    tools = {}
    for name in discovery.TOOLS:
        tool, _ = discovery.probe(name)
        if tool is None:
            bin_dir, why = _build()
            if bin_dir is None:
                STATUS["error"] = why
                return
            os.environ[discovery.HOME_ENV] = bin_dir
            tools = {n: discovery.locate(n) for n in discovery.TOOLS}
            break
        tools[name] = tool
    STATUS["tools"] = {n: f"{t.path} ({t.found_by})" for n, t in tools.items()}
    STATUS["objects"] = tools


@pytest.fixture(scope="session")
def official_tools():
    """{"converter_lite": OfficialTool, "benchmark": OfficialTool}; skips with build.sh's message."""
    if "objects" not in STATUS:
        pytest.skip(f"official MindSpore Lite tools unavailable: {STATUS.get('error', 'not prepared')}")
    return STATUS["objects"]


@pytest.fixture(scope="session")
def official_benchmark(official_tools):
    return official_tools[discovery.BENCHMARK]


@pytest.fixture(scope="session")
def official_converter(official_tools):
    return official_tools[discovery.CONVERTER]


def summary_lines():
    if "error" in STATUS:
        return [f"official MindSpore Lite tools: UNAVAILABLE, their tests skipped: {STATUS['error']}"]
    if "tools" in STATUS:
        return ["official MindSpore Lite tools used: " +
                ", ".join(f"{n} = {p}" for n, p in STATUS["tools"].items())]
    return []


@pytest.fixture
def no_tools(tmp_path, monkeypatch):
    """An environment where discovery finds no official tool (and no explicit path is given)."""
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for var in (discovery.HOME_ENV, *discovery.TOOL_ENV.values()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(discovery, "_WARNED", set())
    return empty
