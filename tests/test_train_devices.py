"""Mixed precision and devices: what cannot be honoured is refused clearly, never replaced."""
import pytest

from train_fixtures import TINY, invoke, run_cli_ok

pytestmark = pytest.mark.mindspore


def test_amp_o3_on_cpu_is_refused_with_the_reason(tiny_data, tmp_path):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", "--amp", "O3", *TINY)
    assert result.exit_code == 2
    assert "O3 is not supported on cpu" in result.output and "GPU and Ascend" in result.output


def test_amp_o1_is_not_offered(tiny_data, tmp_path):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", "--amp", "O1", *TINY)
    assert result.exit_code == 2 and "O1" in result.output


def _params(path):
    from toolkit.checkpoints import load_params
    return load_params(path)


def test_amp_o2_on_cpu_trains_and_keeps_names_and_fp32_weights(tiny_data, pretrained_ckpt, tmp_path,
                                                               shared_cache):
    import numpy as np
    out = tmp_path / "o2"
    result = run_cli_ok(tiny_data, "--out", out, "--mode", "head", "--pretrained", pretrained_ckpt,
                        *TINY, "--epochs", "1", "--batch-size", "4", "--amp", "O2",
                        "--cache-dir", shared_cache)
    assert "loss" in result.output
    params = _params(out / "best.ckpt")
    from toolkit.models import build
    expected = {p.name for p in build("mobilenet_v2", 2, width=0.35).get_parameters()}
    assert set(params) == expected, "AMP must not rename parameters"
    assert all(v.dtype == np.float32 for v in params.values())
    with open(out / "config.json") as f:
        assert '"loss_scale": 1024.0' in f.read()


@pytest.mark.parametrize("device", ["gpu", "ascend"])
def test_absent_device_names_what_is_available(device, tiny_data, tmp_path):
    from runtime.engines.devices import probe
    if probe("mindspore", device)[0]:
        pytest.skip(f"{device} is present here")
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", "--device", device, *TINY)
    assert result.exit_code == 1
    assert f"MindSpore training on {device} is not available" in result.output
    assert "available: cpu" in result.output
