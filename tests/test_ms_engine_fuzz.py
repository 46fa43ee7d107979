"""Fuzzing the engine: models that still parse after mutation either build (and run) or fail with
a typed ToolkitError (format, unsupported op) - never another exception."""
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
