"""Fuzzing the engine: models that still parse after mutation either build (and run) or fail with
a typed ToolkitError (format, unsupported op) - never another exception."""
import copy
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.engines.ms_engine import MsEngine
from runtime.errors import ToolkitError
from runtime.msformat.reader import read_ms_bytes


@pytest.fixture(scope="module")
def parallel_bytes(golden_dir):
    with open(os.path.join(golden_dir, "parallel.ms"), "rb") as f:
        return f.read()


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_mutated_models_fail_only_with_typed_errors(parallel_bytes, flips):
    data = bytearray(parallel_bytes)
    for where, value in flips:
        data[int(where * len(data))] = value
    try:
        model = read_ms_bytes(bytes(data), source="fuzz.ms")
        engine = MsEngine.from_model(model)
        feed = [np.zeros([d or 1 for d in s.shape], s.dtype) for s in engine.inputs()
                if all(d is None or 0 <= d <= 64 for d in s.shape)]
        if len(feed) == len(engine.inputs()):
            engine.run(feed)
    except ToolkitError:
        pass


HOSTILE_INTS = (0, -1, -2, 2, 3, 65, 1 << 20, 2 ** 31 - 1, -2 ** 31, 2 ** 62)


def _one_node_models():
    from runtime.msformat.builder import single_node_model
    from runtime.msformat.writer import model_to_bytes
    from test_ms_engine_ops import CASES
    out = []
    for c in CASES:
        model, _ = single_node_model(c.op, c.attrs, c.inputs, [np.shape(e) for e in c.expected],
                                     out_dtypes=[np.asarray(e).dtype for e in c.expected])
        out.append(model_to_bytes(model))
    return out


ONE_NODE = _one_node_models()


def _mutate(model, key_pick, slot, value):
    """Set one integer attribute (or one entry of an integer-list attribute) to `value`."""
    node = model.nodes[0]
    keys = sorted(k for k, v in node.attrs.items() if isinstance(v, (int, list, tuple))
                  and not isinstance(v, bool))
    if not keys:
        return False
    key = keys[key_pick % len(keys)]
    old = node.attrs[key]
    if isinstance(old, int):
        node.attrs[key] = value
    elif old and all(isinstance(v, int) for v in old):
        new = list(old)
        new[slot % len(new)] = value
        node.attrs[key] = new
    else:
        node.attrs[key] = [value]
    return True


@settings(max_examples=150, deadline=5000)
@given(case=st.integers(0, len(ONE_NODE) - 1), key_pick=st.integers(0, 50), slot=st.integers(0, 8),
       value=st.sampled_from(HOSTILE_INTS), dim_slot=st.integers(-1, 8),
       dim_value=st.sampled_from(HOSTILE_INTS))
def test_hostile_attribute_values_fail_only_with_typed_errors(case, key_pick, slot, value,
                                                             dim_slot, dim_value):
    """Every handler's attribute parsing: a wild value (zero, negative, 2**62, ...) in any integer
    attribute, optionally with a wild dimension on a tensor, builds or raises a ToolkitError."""
    model = read_ms_bytes(ONE_NODE[case], source="fuzz.ms")
    _mutate(model, key_pick, slot, value)
    if dim_slot >= 0:
        t = model.tensors[dim_slot % len(model.tensors)]
        if t.dims:
            dims = list(t.dims)
            dims[slot % len(dims)] = dim_value
            t.dims = tuple(dims)
    try:
        engine = MsEngine.from_model(model)
        feed = [np.zeros([d or 1 for d in s.shape], s.dtype) for s in engine.inputs()
                if all(d is None or 0 <= d <= 64 for d in s.shape)]
        if len(feed) == len(engine.inputs()):
            engine.run(feed)
    except ToolkitError:
        pass


def _attribute_mutations():
    """(case index, key, slot or None, value): every integer attribute (and every entry of an
    integer-list attribute) of every one-node case, set to every hostile value."""
    for k, data in enumerate(ONE_NODE):
        for key, v in sorted(read_ms_bytes(data).nodes[0].attrs.items()):
            if isinstance(v, bool) or not isinstance(v, (int, list, tuple)):
                continue
            if isinstance(v, (list, tuple)) and not all(isinstance(x, int) for x in v):
                continue
            for slot in ([None] if isinstance(v, int) else range(len(v)) or [None]):
                for value in HOSTILE_INTS:
                    yield k, key, slot, value


def test_every_hostile_attribute_is_refused_by_an_explicit_check_or_translates():
    """Exhaustive over the handlers' integer attributes, translation only (about a second): no
    raw exception, and no refusal left to the driver's catch-all wrapper either: each wrong value
    is named by the handler's own validation."""
    from runtime.engines.ms_onnx import translate
    from runtime.errors import ModelFormatError
    models = [read_ms_bytes(data) for data in ONE_NODE]
    generic, tried = [], 0
    for k, key, slot, value in _attribute_mutations():
        model = copy.deepcopy(models[k])
        attrs = model.nodes[0].attrs
        if slot is None:
            attrs[key] = value if isinstance(attrs[key], int) else [value]
        else:
            attrs[key] = [value if i == slot else x for i, x in enumerate(attrs[key])]
        tried += 1
        try:
            translate(model, "fuzz.ms")
        except ModelFormatError as e:
            if "malformed attributes or operands" in e.problem:
                generic.append(f"{model.nodes[0].op_type}.{key}={attrs[key]}: {e.problem}")
        except ToolkitError:
            pass
    assert tried > 2000
    assert generic == []
