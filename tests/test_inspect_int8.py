"""`toolkit inspect` on full-integer files: which nodes run on integer kernels, which stay float.

The counts are the README's for the official converter's files (../shared/golden/ms-official):
tiny_cnn_fq8 has 4 QUANT_ALL nodes and 4 + 4 casts; mnv2s_fq8 has 54 QUANT_ALL nodes (52 conv,
1 MatMul, 1 Transpose), 29 casts, and 10 Add + 1 ReduceMean that stay float.
"""
import json
import os

import pytest
from click.testing import CliRunner

from toolkit.cli import main

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "golden", "ms-official")


def inspect(*args):
    path = os.path.join(GOLDEN, args[-1])
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found (shared/ must sit beside the checkout)")
    result = CliRunner().invoke(main, ["inspect", *args[:-1], path])
    assert result.exit_code == 0, result.output
    return result.output


def test_tiny_cnn_int8_and_float_nodes_by_name():
    info = json.loads(inspect("--json", "tiny_cnn_fq8.ms"))
    k = info["int8_kernels"]
    assert k["int8"] == ["conv1", "conv2", "pool2_post", "fc"]
    assert k["float"] == ["pool1", "pool2", "flatten", "softmax"]
    assert len(k["casts"]) == 8 and all("_dtype_cast_" in n for n in k["casts"])
    assert info["ms_engine"]["status"] == "ok"


def test_mnv2s_counts_and_text():
    k = json.loads(inspect("--json", "mnv2s_fq8.ms"))["int8_kernels"]
    assert (len(k["int8"]), len(k["float"]), len(k["casts"])) == (54, 11, 29)
    text = inspect("tiny_cnn_fq8.ms")
    assert "can execute every node" in text
    assert "int8 kernels: 4 node(s) run on integer kernels, 4 stay float, 8 QuantDTypeCast" in text
    assert "  int8: conv1, conv2, pool2_post, fc" in text


def test_a_float_file_has_no_int8_section():
    assert "int8_kernels" not in json.loads(inspect("--json", "tiny_cnn_fp32.ms"))
    assert "int8 kernels" not in inspect("tiny_cnn_fp32.ms")
