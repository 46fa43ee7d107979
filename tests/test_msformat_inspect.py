"""`toolkit inspect`: the summary of real files, as text and as JSON."""
import json
import os

from click.testing import CliRunner

from toolkit.cli import main


def run(*args):
    return CliRunner().invoke(main, ["inspect", *args])


def test_inspect_json_of_the_face_model(golden_dir):
    result = run("--json", os.path.join(golden_dir, "ml_face_isface.ms"))
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["version"] == "MindSpore Lite 1.5.0" and info["source_framework"] == "CAFFE"
    assert info["inputs"] == [{"name": "data", "index": info["inputs"][0]["index"],
                               "shape": [1, 48, 48, 3], "dtype": "float32", "format": "NHWC"}]
    assert info["outputs"][0]["shape"] == [1, 2]
    assert info["op_histogram"] == {"Activation": 4, "Conv2DFusion": 4, "MaxPoolFusion": 3,
                                    "FullConnection": 2, "Softmax": 1, "Transpose": 1}
    assert set(info["constant_bytes_by_dtype"]) == {"float32", "int32"}
    assert info["quantization"]["quantized_weight_tensors"] == 0
    assert info["ms_engine_unsupported"] == []


def test_inspect_text_lists_the_sections(golden_dir):
    result = run(os.path.join(golden_dir, "lenet_tod_infer.ms"))
    assert result.exit_code == 0, result.output
    for needle in ("MindSpore Lite 1.5.0", "MINDIR", "inputs0: [2, 32, 32, 1] float32 NHWC",
                   "MatMulFusion   3", "float32  246,736", "QUANT_WEIGHT", "can execute every node"):
        assert needle in result.output


def test_inspect_refuses_a_mindir_with_a_clear_error(golden_dir):
    result = run(os.path.join(golden_dir, "relu.mindir"))
    assert result.exit_code != 0
    assert "relu.mindir" in result.output and "not a MindSpore Lite .ms model" in result.output
    assert "Traceback" not in result.output
