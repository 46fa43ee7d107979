"""One way to run a model: every model file executes through runtime.load and the engine API.

- onnxruntime is touched by one module only (runtime/engines/ort_session.py): it creates every
  InferenceSession and owns the device -> execution provider map; a scan of the source tree's syntax
  finds any other `import onnxruntime`, `ort.<anything>`, `InferenceSession(` or provider name.
- MINDIR files are parsed by one module only (runtime/mindir_info.py).
- Each engine fact is declared once, in runtime.formats.ENGINES: asking any engine for a device its
  entry does not list raises EngineUnavailableError naming the entry's devices; thread safety comes
  from the entry; the input layout comes from one rule (runtime.engines.layout).
- Padding to a fixed batch is written once (runtime.engines.batching.run_batched).
"""
import ast
import importlib
import os
import threading

import numpy as np
import pytest

import runtime
from runtime.engines import engine_importable, is_importable
from runtime.engines.base import TensorSpec
from runtime.engines.batching import run_batched
from runtime.engines.layout import image_layout, layout_of_shape
from runtime.errors import EngineUnavailableError, ToolkitError
from runtime.formats import DEVICES, ENGINES, ENGINES_BY_NAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("runtime", "converters", "toolkit", "benchmarks")
ORT_HOME = os.path.join("runtime", "engines", "ort_session.py")
MINDIR_HOME = "runtime/mindir_info.py"
# The fuzzer deserialises protobufs only to mutate and re-serialise them; it never reads a model to
# use it, so it is the one place besides MINDIR_HOME allowed to call ParseFromString.
FUZZER = "benchmarks/fuzz/"


def _sources():
    for pkg in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, pkg)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    yield os.path.relpath(path, ROOT), ast.parse(open(path, encoding="utf-8").read(), path)


def _onnxruntime_uses(tree):
    """(line, what) for every use of onnxruntime in one module's syntax tree."""
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "onnxruntime":
                    aliases.add(a.asname or "onnxruntime")
                    found.append((node.lineno, f"import {a.name}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "onnxruntime":
            found.append((node.lineno, f"from {node.module} import ..."))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "InferenceSession":
                found.append((node.lineno, "InferenceSession"))
            elif isinstance(node.value, ast.Name) and node.value.id in aliases | {"ort"}:
                found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "InferenceSession":
            found.append((node.lineno, "InferenceSession("))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.endswith("ExecutionProvider"):
            found.append((node.lineno, f"provider name {node.value!r}"))
    return found


def test_onnxruntime_is_used_by_ort_session_only():
    offenders, home_uses = [], []
    for rel, tree in _sources():
        uses = _onnxruntime_uses(tree)
        if rel == ORT_HOME:
            home_uses = uses
        else:
            offenders += [f"{rel}:{line}: {what}" for line, what in uses]
    assert not offenders, "onnxruntime used outside " + ORT_HOME + ":\n" + "\n".join(offenders)
    # the scan itself must see the one legitimate home, or it proves nothing
    assert any("InferenceSession" in what for _, what in home_uses)
    assert any("ExecutionProvider" in what for _, what in home_uses)


def test_the_scan_finds_each_kind_of_use():
    code = ("import onnxruntime as rt\nfrom onnxruntime import capi\n"
            "s = rt.InferenceSession('m.onnx', providers=['CUDAExecutionProvider'])\n"
            "print(rt.get_available_providers())\n")
    kinds = {what.split("(")[0].split(" ")[0] for _, what in _onnxruntime_uses(ast.parse(code))}
    assert {"import", "from", "InferenceSession", "rt.get_available_providers", "provider"} <= kinds


def test_mindir_files_are_parsed_in_one_module():
    offenders = []
    for rel, tree in _sources():
        if rel.replace(os.sep, "/") == MINDIR_HOME:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and "mind_ir_pb2" in [a.name for a in node.names] \
                    and not (node.module or "").endswith("mindir_info"):
                offenders.append(f"{rel}:{node.lineno}: imports mind_ir_pb2 from {node.module}")
            elif isinstance(node, ast.Attribute) and node.attr == "ParseFromString" \
                    and not rel.replace(os.sep, "/").startswith(FUZZER):
                offenders.append(f"{rel}:{node.lineno}: ParseFromString")
            elif isinstance(node, ast.Attribute) and node.attr == "GraphCell" \
                    and rel.replace(os.sep, "/") != "runtime/engines/mindspore_engine.py":
                offenders.append(f"{rel}:{node.lineno}: GraphCell outside the mindspore engine")
    assert not offenders, "\n".join(offenders)


def _engine_class(entry):
    # Imported directly (not through runtime.load), so that even an engine whose framework is
    # absent here is asked: the table check comes before any framework import.
    return getattr(importlib.import_module(entry.module), entry.cls)


def _importable_module(entry):
    try:
        return _engine_class(entry)
    except ImportError as e:       # e.g. opencv_engine imports cv2 at module level
        pytest.skip(f"{entry.module} cannot be imported here: {e}")


@pytest.mark.parametrize("name", [e.name for e in ENGINES])
def test_a_device_outside_the_table_is_refused_naming_the_table_devices(name, tmp_path):
    entry = ENGINES_BY_NAME[name]
    cls = _importable_module(entry)
    model = tmp_path / ("m." + entry.formats[0])
    model.write_bytes(b"never read: the device is refused first")
    for device in [d for d in DEVICES if d not in entry.devices] + ["tpu"]:
        with pytest.raises(EngineUnavailableError) as err:
            cls(str(model), device=device)
        message = str(err.value)
        assert f"device {device!r}" in message and name in message
        assert all(d in message for d in entry.devices)
        assert set(err.value.available) <= set(entry.devices)


@pytest.mark.parametrize("name", [e.name for e in ENGINES])
def test_probes_follow_the_table(name):
    from runtime.engines.devices import available_devices, probe
    entry = ENGINES_BY_NAME[name]
    for device in DEVICES:
        if device not in entry.devices:
            ok, reason = probe(name, device)
            assert not ok and all(d in reason for d in entry.devices)
    assert set(available_devices(name)) <= set(entry.devices)


def test_engines_do_not_declare_their_own_devices_or_thread_safety():
    for entry in ENGINES:
        try:
            cls = _engine_class(entry)
        except ImportError:
            continue
        own = {k for k in vars(cls) if k in ("thread_safe", "SUPPORTED", "devices")}
        assert not own, f"{entry.cls} declares {own}; runtime.formats.ENGINES holds these facts"


@pytest.mark.parametrize("engine", ["onnxruntime", "opencv"])
def test_the_classifier_locks_exactly_the_engines_the_table_calls_unsafe(tiny, engine):
    if not engine_importable(ENGINES_BY_NAME[engine]):
        pytest.skip(f"{engine} is not installed")
    clf = runtime.Classifier(tiny.onnx, engine=engine)
    assert clf.engine.thread_safe is ENGINES_BY_NAME[engine].thread_safe
    assert (clf._lock is None) is ENGINES_BY_NAME[engine].thread_safe
    if clf._lock is not None:
        assert isinstance(clf._lock, type(threading.Lock()))


@pytest.mark.parametrize("shape,fmt,want", [
    ((1, 3, 8, 8), "", "NCHW"),
    ((None, 8, 8, 3), "", "NHWC"),
    ((1, 1, 28, 28), "", "NCHW"),            # grey images count as images
    ((1, 8, 8, 3), "NCHW", "NCHW"),          # a declared format wins over the shape
    ((1, 3, 8, 3), "", None),                # ambiguous: the caller's metadata decides
    ((1, 8, 8, 8), "", None),
    ((1, 3), "", None),
])
def test_one_input_layout_rule(shape, fmt, want):
    assert image_layout(TensorSpec("x", shape, "float32", fmt)) == want
    if not fmt:
        assert layout_of_shape(shape) == want


def _matmul_onnx(path, batch):
    import onnx
    from onnx import TensorProto, helper
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


class _Recording:
    """An engine that records the batch of every call it passes on."""

    def __init__(self, engine):
        self.engine, self.path, self.calls = engine, engine.path, []

    def inputs(self):
        return self.engine.inputs()

    def outputs(self):
        return self.engine.outputs()

    def run(self, feed):
        self.calls.append(len(next(iter(feed.values()))))
        return self.engine.run(feed)


@pytest.mark.parametrize("batch,max_batch,calls", [(4, 32, [4, 4, 4]), ("n", 4, [4, 4, 2])])
def test_run_batched_pads_fixed_batches_and_strips_the_padding(tmp_path, batch, max_batch, calls):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    w = _matmul_onnx(tmp_path / "mm.onnx", batch)
    eng = _Recording(runtime.load(str(tmp_path / "mm.onnx"), engine="onnxruntime"))
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = run_batched(eng, x, max_batch=max_batch)
    assert eng.calls == calls                       # fixed batch 4: the last chunk of 2 is padded to 4
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-6)
    assert run_batched(eng, x[:0], max_batch=max_batch).shape == (0, 4)


def test_run_batched_refuses_what_it_cannot_batch(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    _matmul_onnx(tmp_path / "mm.onnx", "n")
    eng = runtime.load(str(tmp_path / "mm.onnx"), engine="onnxruntime")
    with pytest.raises(ToolkitError, match="expects shape"):
        run_batched(eng, np.zeros((2, 3, 1), np.float32))
    with pytest.raises(ToolkitError, match="no output 'z'"):
        run_batched(eng, np.zeros((2, 3), np.float32), output="z")
