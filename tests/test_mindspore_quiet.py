"""MindSpore's warnings about plugins this machine lacks stay out of the toolkit's output unless -v
asks for them; every import of MindSpore goes through runtime.mindspore_import; a graph that fails
to compile never writes rank_0/om/analyze_fail.ir into the working folder."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lines MindSpore prints on a machine without its GPU/Ascend plugins.
NOISE = ("Backend GPU is not available", "Backend Ascend is not available", "libge_runner.so",
         "cannot open shared object file", "[WARNING] ME(")
MS_ENV = ("GLOG_v", "MS_SUBMODULE_LOG_v", "MS_OM_PATH")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in MS_ENV}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)


def _noise(text):
    return [n for n in NOISE if n in text]


def test_every_mindspore_import_goes_through_the_quiet_import():
    pattern = re.compile(r"^\s*(import|from)\s+mindspore(\.|\s|$)", re.M)
    offenders = []
    for package in ("runtime", "converters", "toolkit", "benchmarks"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py") and name != "mindspore_import.py":
                    path = os.path.join(folder, name)
                    with open(path, encoding="utf-8") as f:
                        if pattern.search(f.read()):
                            offenders.append(os.path.relpath(path, ROOT))
    assert offenders == [], f"import MindSpore through runtime.mindspore_import: {offenders}"


@pytest.mark.mindspore
def test_mindspore_plugin_warnings_only_with_verbose(tmp_path):
    pytest.importorskip("mindspore")
    from toolkit.data.synthetic import make_dataset
    data = tmp_path / "data"
    make_dataset(str(data), classes=2, per_class=2, size=16, seed=0)
    # What MindSpore itself prints here when asked about a device this machine has no plugin for.
    raw = _run(["-c", "import mindspore; mindspore.hal.is_available('Ascend')"], tmp_path)
    command = ["-m", "toolkit.cli", "train-head", str(data), "--out", str(tmp_path / "run"),
               "--device", "ascend", "--mode", "scratch", "--width", "0.35", "--image-size", "16"]
    quiet = _run(command, tmp_path)
    verbose = _run(["-m", "toolkit.cli", "-v"] + command[2:], tmp_path)
    for done in (quiet, verbose):
        assert done.returncode != 0 and "MindSpore training on ascend is not available" in done.stderr
    assert _noise(quiet.stdout + quiet.stderr) == [], quiet.stderr
    assert set(_noise(raw.stderr)) <= set(_noise(verbose.stderr)), "-v shows what MindSpore prints"
    assert not (tmp_path / "run").exists(), "an absent device is refused before the run folder is written"


@pytest.mark.mindspore
def test_the_quiet_defaults_yield_to_the_users_settings(tmp_path):
    pytest.importorskip("mindspore")
    code = ("import os; from runtime.mindspore_import import import_mindspore, GRAPH_DUMP_DIR; "
            "ms = import_mindspore(); print(os.environ['GLOG_v'], os.environ['MS_OM_PATH'] == GRAPH_DUMP_DIR)")
    assert _run(["-c", code], tmp_path).stdout.split() == ["3", "True"]
    env = dict(_env(), GLOG_v="1", MS_OM_PATH=str(tmp_path))
    mine = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert mine.stdout.split() == ["1", "False"], mine.stderr


@pytest.mark.mindspore
def test_a_graph_that_fails_to_compile_dumps_into_the_run_folder_not_the_cwd(tmp_path, monkeypatch):
    from runtime.mindspore_import import from_mindspore
    from toolkit.train.setup import training_context
    Tensor, nn = from_mindspore("mindspore", "Tensor", "nn")
    cwd, logs = tmp_path / "cwd", tmp_path / "run" / "logs"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MS_OM_PATH", raising=False)
    with training_context("cpu", graph_dump_dir=str(logs)):
        with pytest.raises((ValueError, TypeError, RuntimeError)) as e:
            nn.Dense(5, 2)(Tensor(np.ones((2, 3), np.float32)))     # 3 inputs into a Dense of 5
    assert str(logs) in str(e.value)
    assert os.listdir(cwd) == []
    assert (logs / "rank_0" / "om" / "analyze_fail.ir").is_file()
    assert "MS_OM_PATH" not in os.environ, "the setting ends with the training context"
