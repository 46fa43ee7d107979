"""runtime.mindir_info, the one MINDIR reader: what it refuses so that MindSpore's loader never sees it."""
import os
import subprocess
import sys

import pytest

from runtime.errors import ModelFormatError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("mindspore")


def _with_empty_tensors_attribute(golden_dir, tmp_path, kind="TENSORS"):
    from runtime.mindir_info import mind_ir_pb2, read_model
    pb = mind_ir_pb2()
    model = read_model(os.path.join(golden_dir, "relu.mindir"))
    attr = model.graph.node[0].attribute.add()
    attr.name, attr.type = "shape", pb.AttributeProto.AttributeType.Value(kind)
    path = tmp_path / f"empty_{kind.lower()}.mindir"
    path.write_bytes(model.SerializeToString())
    return path


# Each kind aborted MindSpore's loader when empty (TENSORS: fuzz case mindir:1:75, SCALAR: mindir:2:90).
@pytest.mark.parametrize("kind", ["TENSORS", "TENSOR", "SCALAR"])
def test_an_empty_tensors_attribute_is_refused_naming_node_and_attribute(golden_dir, tmp_path, kind):
    from runtime.mindir_info import read_model
    path = _with_empty_tensors_attribute(golden_dir, tmp_path, kind)
    with pytest.raises(ModelFormatError, match=rf"attribute 'shape' of type {kind} holds no tensor") as e:
        read_model(path)
    assert str(path) in str(e.value) and "node " in str(e.value)


@pytest.mark.parametrize("kind", ["TENSORS", "SCALAR"])
def test_the_mindspore_engine_refuses_it_instead_of_aborting(golden_dir, tmp_path, kind):
    # MindSpore's C++ loader indexes tensors(0) unchecked: without the check the process dies (SIGABRT).
    path = _with_empty_tensors_attribute(golden_dir, tmp_path, kind)
    code = ("import runtime, sys\n"
            "from runtime.errors import ModelFormatError\n"
            "try:\n    runtime.load(sys.argv[1], engine='mindspore')\n"
            "except ModelFormatError as e:\n    print('typed:', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "typed:" in r.stdout and "holds no tensor" in r.stdout
