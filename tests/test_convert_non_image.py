"""Models that are not image classifiers convert and verify too: no metadata is invented for them."""
import os

import numpy as np
import pytest

from converters import convert
from converters.pipeline import ConvertOptions
from runtime.metadata import find_meta, sidecar_path
from test_convert_hostile import _write, mlp


def test_an_mlp_converts_verifies_and_gets_no_invented_metadata(tmp_path):
    src = _write(tmp_path, "mlp", mlp())
    out = tmp_path / "mlp.ms"
    result = convert(src, out, ConvertOptions(verify=4))
    assert result.verify.passed and result.verify.inputs == "random normal"
    assert result.verify.max_abs_diff < 1e-5
    assert result.sidecar is None and "not an image batch" in result.sidecar_origin
    assert not os.path.exists(sidecar_path(out)) and find_meta(out)[0] is None


def test_a_stale_sidecar_of_the_output_name_is_removed(tmp_path):
    out = tmp_path / "mlp.ms"
    stale = sidecar_path(out)
    with open(stale, "w") as f:
        f.write("{}")
    convert(_write(tmp_path, "mlp", mlp()), out)
    assert not os.path.exists(stale)


def test_the_official_mindspore_1x_relu_mindir_converts_and_matches(golden_dir, tmp_path):
    pytest.importorskip("mindspore")
    out = tmp_path / "relu.ms"
    result = convert(os.path.join(golden_dir, "relu.mindir"), out, ConvertOptions(verify=4))
    assert result.verify.passed and result.verify.max_abs_diff == 0.0
    import runtime
    eng = runtime.load(out)
    x = np.array([-1.0, 2.0, -3.0, 4.0], np.float32).reshape(eng.inputs()[0].shape)
    y = next(iter(eng.run([x]).values()))
    np.testing.assert_array_equal(y.reshape(-1), [0.0, 2.0, 0.0, 4.0])
