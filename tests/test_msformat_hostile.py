"""Hostile `.ms` files: each attack class gets a typed ModelFormatError naming the file and the
element at fault, within the read/decode budget of runtime/msformat/budget.py.

Classes: (1) amplification - many offsets pointing at one table, data vector or string;
(2) allocation from declared sizes - compressed tensors whose dims dwarf their bytes;
(3) silent acceptance - two producers of a tensor, numBits outside 1..32, enums outside the schema,
indices out of range, cycles (refused by the reader and by the writer); (4) `toolkit inspect`'s
verdict comes from a real load. Memory is measured in a subprocess under RLIMIT_AS.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import flatbuffers
import numpy as np
import pytest

from runtime.errors import ModelFormatError
from runtime.msformat import budget
from runtime.msformat.builder import make_tensor, single_node_model
from runtime.msformat.model import MsNode, MsSubGraph, QuantParam
from runtime.msformat.reader import read_ms, read_ms_bytes
from runtime.msformat.weights import WeightError, const_array, decode
from runtime.msformat.writer import model_to_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RLIMIT_AS_BYTES = 768 << 20           # python + numpy take ~100-130 MB of address space alone
MIB = 1 << 20


# -- raw FlatBuffers: offsets repeated at will (our writer never does that) -------------------------

def _vector_of(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _tensor_table(b, data=None, dims=None, name=None, data_type=43):
    b.StartObject(13)
    b.PrependInt32Slot(1, data_type, 0)
    for slot, off in ((2, dims), (6, data), (9, name)):
        if off is not None:
            b.PrependUOffsetTRelativeSlot(slot, off, 0)
    return b.EndObject()


def _finish(b, tensors):
    ins = b.CreateNumpyVector(np.array([0], "<u4"))
    outs = b.CreateNumpyVector(np.array([0], "<u4"))
    b.StartObject(11)
    b.PrependUOffsetTRelativeSlot(3, ins, 0)
    b.PrependUOffsetTRelativeSlot(4, outs, 0)
    b.PrependUOffsetTRelativeSlot(7, tensors, 0)
    b.Finish(b.EndObject(), file_identifier=b"MSL2")
    return bytes(b.Output())


def _one_mib_of_float32(b):
    data = b.CreateNumpyVector(np.arange(MIB // 4, dtype="<f4").view(np.uint8))
    dims = b.CreateNumpyVector(np.array([MIB // 4], "<i4"))
    return data, dims


def shared_tensor_table(refs=250_000):
    """~2 MB: allTensors holds `refs` offsets to ONE tensor table owning 1 MiB of float32."""
    b = flatbuffers.Builder(4 * MIB)
    data, dims = _one_mib_of_float32(b)
    t = _tensor_table(b, data, dims)
    return _finish(b, _vector_of(b, [t] * refs))


def shared_data_vector(tensors):
    """`tensors` distinct tensor tables whose `data` all point at one 1 MiB vector."""
    b = flatbuffers.Builder(4 * MIB)
    data, dims = _one_mib_of_float32(b)
    return _finish(b, _vector_of(b, [_tensor_table(b, data, dims) for _ in range(tensors)]))


def shared_name_string(tensors=60_000):
    """Distinct (data-less) tensor tables that all name themselves with one 1 MiB string."""
    b = flatbuffers.Builder(4 * MIB)
    name = b.CreateString("n" * MIB)
    return _finish(b, _vector_of(b, [_tensor_table(b, name=name) for _ in range(tensors)]))


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path_or_bytes, *needles, element_prefix=None):
    start = time.perf_counter()
    with pytest.raises(ModelFormatError) as info:
        if isinstance(path_or_bytes, (bytes, bytearray)):
            read_ms_bytes(path_or_bytes, source="hostile.ms")
        else:
            read_ms(path_or_bytes)
    elapsed = time.perf_counter() - start
    err = info.value
    source = "hostile.ms" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    assert err.path == source and str(err).startswith(source)
    for needle in needles:
        assert needle in str(err), str(err)
    if element_prefix is not None:
        assert err.element is not None and err.element.startswith(element_prefix), err.element
    return err, elapsed


# -- (1) amplification ------------------------------------------------------------------------------

def test_shared_tensor_table_is_refused_by_the_read_budget(tmp_path):
    data = shared_tensor_table()
    assert len(data) < 2.1 * MIB
    path = _write(tmp_path, "amplified.ms", data)
    err, elapsed = _refused(path, "read budget", element_prefix="tensor ")
    assert elapsed < 10


def test_shared_name_string_is_refused_by_the_read_budget():
    data = shared_name_string()
    err, elapsed = _refused(data, "read budget", "Tensor.name", element_prefix="tensor ")
    assert elapsed < 10


def test_data_shared_by_many_tensors_is_refused_by_the_decode_budget():
    """Reading is cheap (the data is referenced, not copied), but loading would materialise
    60,000 MiB: the reader refuses from the dims, naming the first tensor past the budget."""
    data = shared_data_vector(60_000)
    err, elapsed = _refused(data, "decode budget", element_prefix="tensor ")
    allowance = budget.decode_allowance(len(data))
    first_past = allowance // MIB          # tensors 0.. fit; this one passes the allowance
    assert err.element == f"tensor {first_past}"
    assert elapsed < 10


def test_shared_data_is_referenced_not_copied():
    model = read_ms_bytes(shared_data_vector(4), source="shared.ms")
    views = [np.frombuffer(t.data, np.uint8) for t in model.tensors]
    assert all(np.shares_memory(views[0], v) for v in views[1:])
    arrays = [const_array(t) for t in model.tensors]
    assert all(np.shares_memory(arrays[0], a) for a in arrays[1:])      # float32: zero-copy too
    np.testing.assert_array_equal(arrays[3], np.arange(MIB // 4, dtype=np.float32))


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from runtime.errors import ModelFormatError
    from runtime.msformat.reader import read_ms
    from runtime.msformat.weights import WeightError, const_array
    start = time.perf_counter()
    try:
        model = read_ms(sys.argv[1])
        for t in model.tensors:          # what load does with every constant
            if t.is_const:
                const_array(t, model.version)
        outcome = "read and decoded"
    except ModelFormatError as e:
        outcome = "ModelFormatError: " + str(e)[:300]
    except MemoryError:
        outcome = "MemoryError"
    # VmHWM is this process's own peak: ru_maxrss survives exec, so it would report the parent's
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                      "peak_rss_mb": int(hwm) / 1024}))
""")


def measure(path, limit=RLIMIT_AS_BYTES, timeout=120):
    """Read + decode `path` in a fresh interpreter under RLIMIT_AS: its outcome, time, peak RSS."""
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(limit)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hostile_files(tmp_path):
    files = {"shared_tensor_table.ms": shared_tensor_table(),
             "shared_data_vector.ms": shared_data_vector(60_000),
             "shared_name_string.ms": shared_name_string(),
             "indexing_2e38_elements.ms": compressed_file(1, (1 << 19, 1 << 19)),
             "sparse_2e38_elements.ms": compressed_file(2, (1 << 19, 1 << 19)),
             "indexing_within_budget.ms": compressed_file(1, (2048, 2048))}
    return {name: _write(tmp_path, name, data) for name, data in files.items()}


@pytest.mark.parametrize("name", ["shared_tensor_table.ms", "shared_data_vector.ms",
                                  "shared_name_string.ms", "indexing_2e38_elements.ms",
                                  "sparse_2e38_elements.ms", "indexing_within_budget.ms"])
def test_hostile_files_read_in_bounded_memory_and_time(tmp_path, name):
    path = hostile_files(tmp_path)[name]
    result = measure(path)
    assert result["outcome"] != "MemoryError", result
    if name == "indexing_within_budget.ms":
        assert result["outcome"] == "read and decoded", result
    else:
        assert result["outcome"].startswith("ModelFormatError: " + str(path)), result
    assert result["seconds"] < 20, result
    assert result["peak_rss_mb"] < 400, result


# -- (2) allocation from declared sizes -------------------------------------------------------------

def _msb(values, width):
    return [(int(v) >> (width - 1 - k)) & 1 for v in values for k in range(width)]


def _pack(bits, size=None):
    bits = bits + [0] * (-len(bits) % 8)
    out = np.packbits(np.array(bits, np.uint8)).tobytes()
    return out if size is None else out + b"\0" * (size - len(out))


def _one_value_stream(kind):
    """A valid stream whose every element is one value: 8-bit INDEXING needs 0 bits per element,
    SPARSE with no non-zeros needs none either, whatever the dims say."""
    table = _msb([1], 8) + _msb([128 + 3], 8)                  # one unique value: 3
    if kind == 1:
        return _pack(table, 500)
    return _pack(_msb([4], 8) + _msb([0], 32) + table, 500)    # coor bits 4, 0 non-zeros


def compressed_tensor(kind, dims, data=None):
    t = make_tensor("w", np.zeros(1, np.int8))
    t.dims, t.weight_quant_compress_type = tuple(dims), kind
    t.data = data if data is not None else _one_value_stream(kind)
    t.quant_params = [QuantParam(scale=0.1, inited=True, num_bits=8)]
    return t


def compressed_file(kind, dims, data=None):
    """A ~1.1 KB FullConnection model whose weight (tensor 1) is a compressed stream."""
    x = np.ones((1, 4), np.float32)
    model, _ = single_node_model("FullConnection", {}, [("x", x), ("t", compressed_tensor(
        kind, dims, data))], [(1, 4)], quant_type=4)
    return model_to_bytes(model, check=False)


@pytest.mark.parametrize("kind", [1, 2], ids=["INDEXING", "SPARSE"])
@pytest.mark.parametrize("dims,needle", [((1 << 14, 1 << 14), "decode budget"),     # 1 GiB float32
                                          ((1 << 19, 1 << 19), "a constant may decode to")])
def test_compressed_dims_past_the_decode_budget_are_refused_at_read(kind, dims, needle):
    data = compressed_file(kind, dims)
    assert len(data) < 1200
    err, elapsed = _refused(data, needle, element_prefix="tensor 1 ('w')")
    assert elapsed < 1


def test_compressed_stream_too_short_for_its_dims_is_refused_at_read():
    stream = _pack(_msb([200], 8) + _msb(range(200), 8))      # 200 values: 8-bit indices
    data = compressed_file(1, (64, 64), stream + b"\0" * 100)  # 4096 indices need 4 KiB
    _refused(data, "compressed stream ends early", element_prefix="tensor 1 ('w')")


def test_sparse_with_more_non_zeros_than_elements_is_refused_at_read():
    stream = _pack(_msb([4], 8) + _msb([10_000], 32) + _msb([1], 8) + _msb([131], 8), 200)
    _refused(compressed_file(2, (8, 8), stream), "10000 non-zeros for 64 elements",
             element_prefix="tensor 1 ('w')")


def test_decoder_refuses_huge_dims_before_allocating():
    """An in-memory tensor (never through the reader) still cannot make decode allocate 8 TiB."""
    start = time.perf_counter()
    with pytest.raises(WeightError, match="'w'.*more than"):
        decode(compressed_tensor(1, (1 << 21, 1 << 21)))
    assert time.perf_counter() - start < 1


def test_within_budget_compressed_tensor_decodes():
    model = read_ms_bytes(compressed_file(1, (256, 256)))
    w = const_array(model.tensors[1])
    assert w.shape == (256, 256) and np.allclose(w, 0.3)


# -- (3) silent acceptance --------------------------------------------------------------------------

def _add_model():
    x = np.ones((1, 4), np.float32)
    model, _ = single_node_model("AddFusion", {}, [("x", x), ("x", x)], [(1, 4)])
    return model


def _refused_everywhere(model, *needles, element):
    """The reader refuses the crafted bytes and the writer refuses to write the model."""
    err, _ = _refused(model_to_bytes(model, check=False), *needles)
    assert err.element == element
    with pytest.raises(ModelFormatError) as info:
        model_to_bytes(model)
    assert info.value.element == element and all(n in str(info.value) for n in needles)


def test_two_nodes_writing_one_tensor():
    model = _add_model()
    model.nodes.append(MsNode("second", "AddFusion", {}, inputs=[0, 1], outputs=[2]))
    _refused_everywhere(model, "written by two nodes", "'AddFusion_node'", "'second'",
                        element="tensor 2 ('out0')")


def test_node_writing_a_constant():
    x = np.ones((1, 4), np.float32)
    model, _ = single_node_model("AddFusion", {}, [("x", x), ("c", x)], [(1, 4)])
    model.nodes[0].outputs = [1]
    _refused_everywhere(model, "writes tensor 1, which is a constant",
                        element="node 'AddFusion_node'")


@pytest.mark.parametrize("num_bits", [0, -3, 33, 64])
def test_num_bits_outside_1_to_32(num_bits):
    x = np.ones((2, 4), np.float32)
    w = make_tensor("w", np.ones((3, 4), np.int8), quant=[QuantParam(scale=0.5, num_bits=num_bits)])
    model, _ = single_node_model("FullConnection", {}, [("x", x), ("t", w)], [(2, 3)], quant_type=4)
    _refused_everywhere(model, f"numBits is {num_bits}", element="tensor 1 ('w')")


def test_per_channel_quant_params_must_match_a_dimension():
    x = np.ones((2, 4), np.float32)
    w = make_tensor("w", np.ones((3, 4), np.int8),
                    quant=[QuantParam(scale=0.5, inited=True) for _ in range(5)])
    model, _ = single_node_model("FullConnection", {}, [("x", x), ("t", w)], [(2, 3)], quant_type=4)
    _refused_everywhere(model, "5 per-channel quantParams", element="tensor 1 ('w')")


@pytest.mark.parametrize("field,value,needle,element", [
    ("format", 99, "format 99", "tensor 0 ('in0')"),
    ("weight_quant_compress_type", 9, "weightQuantCompressType 9", "tensor 0 ('in0')"),
    ("quant_type", 42, "quantType 42", "node 'AddFusion_node'"),
])
def test_enum_values_outside_the_schema(field, value, needle, element):
    model = _add_model()
    setattr(model.nodes[0] if field == "quant_type" else model.tensors[0], field, value)
    _refused_everywhere(model, needle, element=element)


def test_indices_name_their_element():
    model = _add_model()
    model.outputs = [2, 77]
    _refused_everywhere(model, "tensor index 77 out of range", element="graph output 1")
    model = _add_model()
    model.nodes[0].outputs = [2, 90]
    _refused_everywhere(model, "output tensor index 90", element="node 'AddFusion_node'")
    model = _add_model()
    model.subgraphs = [MsSubGraph("main", [0], [2], [0], [0, 1, 2]),
                       MsSubGraph("body", [0], [2], [5], [0])]
    _refused_everywhere(model, "nodeIndices[0] = 5 out of range (1 nodes)",
                        element="subgraph 'body'")


def test_cycle_names_a_node_on_it():
    model = _add_model()
    model.nodes[0].inputs = [0, 3]
    model.tensors.append(make_tensor("loop_out", shape=(1, 4)))
    model.nodes.append(MsNode("loop", "AddFusion", {}, inputs=[2, 0], outputs=[3]))
    err, _ = _refused(model_to_bytes(model, check=False), "cycle", element_prefix="node ")
    assert err.element in ("node 'loop'", "node 'AddFusion_node'")


def test_corrupt_table_names_the_tensor(golden_dir):
    """A tensor table whose vtable offset points outside the file: the error says which tensor."""
    with open(os.path.join(golden_dir, "two_add_operators.ms"), "rb") as f:
        data = bytearray(f.read())
    from runtime.msformat.flatview import Buffer
    root = Buffer(bytes(data)).root()
    vec = root.field(7, 4)
    vec += int.from_bytes(data[vec:vec + 4], "little")
    entry = vec + 4 + 4 * 3                                   # allTensors[3]
    table = entry + int.from_bytes(data[entry:entry + 4], "little")
    data[table:table + 4] = (-(1 << 30)).to_bytes(4, "little", signed=True)
    _refused(bytes(data), "vtable", element_prefix="tensor 3")


# -- (4) inspect's verdict is a real load -----------------------------------------------------------

def _inspect(*args):
    from click.testing import CliRunner
    from toolkit.cli import main
    return CliRunner().invoke(main, ["inspect", *args])


def _fse_model_file(tmp_path):
    """Every op is translatable, but the weight is FSE-compressed, which the engine cannot decode:
    an op-table check says "can execute", a real load does not."""
    w = make_tensor("fse_weight", np.ones((3, 8), np.int8), quant=[QuantParam(scale=0.1, inited=True)])
    w.data, w.weight_quant_compress_type = b"\x00" * 5, 3
    model, _ = single_node_model("FullConnection", {}, [("x", np.ones((1, 8), np.float32)),
                                                        ("t", w)], [(1, 3)], quant_type=4)
    return _write(tmp_path, "fse.ms", model_to_bytes(model))


def test_inspect_says_cannot_execute_what_load_refuses(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = _fse_model_file(tmp_path)
    result = _inspect(str(path))
    assert result.exit_code == 0, result.output
    assert "can execute every node" not in result.output
    assert "cannot execute fse_weight" in result.output and "FSE" in result.output
    info = json.loads(_inspect("--json", str(path)).output)
    assert info["ms_engine"]["status"] == "unsupported"
    assert info["ms_engine_unsupported"][0]["node"] == "fse_weight"


def test_inspect_says_it_cannot_check_without_the_engine(tmp_path, monkeypatch, golden_dir):
    import runtime.engines
    real = runtime.engines.availability.is_importable
    monkeypatch.setattr(runtime.engines.availability, "is_importable", lambda name: name != "onnx" and real(name))
    result = _inspect(os.path.join(golden_dir, "two_add_operators.ms"))
    assert result.exit_code == 0, result.output
    assert "ms-engine:  cannot check" in result.output and "onnx" in result.output
    assert "can execute" not in result.output


def test_inspect_refuses_a_hostile_file_by_name(tmp_path):
    path = _write(tmp_path, "amplified.ms", shared_tensor_table())
    result = _inspect(str(path))
    assert result.exit_code != 0
    assert str(path) in result.output and "read budget" in result.output
    assert "Traceback" not in result.output
