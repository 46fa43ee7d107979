"""Fuzzing the reader: mutated or truncated real files give a model or ModelFormatError, nothing
else, quickly (hypothesis, bounded examples, per-example deadline)."""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import ModelFormatError
from runtime.msformat.reader import read_ms_bytes

FILES = ["two_add_operators.ms", "parallel.ms", "lenet_tod_infer.ms"]


@pytest.fixture(scope="module")
def originals(golden_dir):
    out = {}
    for name in FILES:
        with open(os.path.join(golden_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def _check(data):
    try:
        read_ms_bytes(data, source="fuzz.ms")
    except ModelFormatError:
        pass


mutation = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                    min_size=1, max_size=8)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), flips=mutation, cut=st.floats(0, 1))
def test_mutated_and_truncated_bytes(originals, name, flips, cut):
    data = bytearray(originals[name])
    for where, value in flips:
        data[int(where * len(data))] = value
    _check(bytes(data))
    _check(bytes(data[:int(cut * len(data))]))


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), where=st.floats(0, 1, exclude_max=True),
       word=st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x10000]))
def test_corrupted_offsets_and_lengths(originals, name, where, word):
    """Overwrite an aligned 32-bit word (offsets, lengths, indices) with extreme values."""
    data = bytearray(originals[name])
    pos = int(where * (len(data) - 4)) & ~3
    data[pos:pos + 4] = word.to_bytes(4, "little")
    _check(bytes(data))
