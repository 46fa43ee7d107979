"""`toolkit export`: the written model, reloaded independently, gives the network's outputs."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

ms = pytest.importorskip("mindspore")
pytest.importorskip("onnxruntime")

from _runfolder import make_run, rel_diff  # noqa: E402
from runtime.errors import EngineUnavailableError  # noqa: E402
from runtime.metadata import ModelMeta, find_meta, sidecar_path  # noqa: E402
from toolkit import export as export_mod  # noqa: E402
from toolkit.cli import main  # noqa: E402
from toolkit.export import ExportError, batchnorm_nodes, export_run  # noqa: E402

CLASSES = ["ant", "bee", "cat"]
TOL = 1e-4                                   # relative to the largest logit


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("run")), CLASSES, image_size=32)


def _reload(path, x):
    """Run an exported file through the official loaders, not through toolkit code."""
    if path.endswith(".mindir"):
        return ms.nn.GraphCell(ms.load(path))(ms.Tensor(x)).asnumpy()
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_fused_export_reloads_to_the_network_outputs_without_batchnorm(run, fmt, tmp_path):
    rundir, net = run
    result = export_run(rundir.path, fmt, out=str(tmp_path / f"m.{fmt}"))
    own = [] if fmt == "onnx" else [f"m.{fmt}.json"]          # ONNX carries its metadata inside
    assert result.path == str(tmp_path / f"m.{fmt}") and sorted(os.listdir(tmp_path)) == [f"m.{fmt}"] + own
    assert batchnorm_nodes(result.path) == 0 and result.max_rel_diff <= TOL
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    assert rel_diff(net(ms.Tensor(x)).asnumpy(), _reload(result.path, x)) <= TOL
    meta, source = find_meta(result.path)
    assert source == (f"{result.path} (metadata_props key 'ms_edge_toolkit.meta')" if fmt == "onnx"
                      else sidecar_path(result.path)) and result.meta_path == source
    assert list(meta.class_names) == CLASSES and not meta.softmax and meta.image_size == 32
    assert meta.input_name == result.meta.input_name


def test_unfused_onnx_with_softmax_batch_and_size_options(run, tmp_path):
    """Also a second ONNX export in the same process (fresh network each time)."""
    rundir, net = run
    result = export_run(rundir.path, "onnx", fuse_bn=False, softmax=True, batch_size=2, image_size=48,
                        out=str(tmp_path))
    assert result.path == str(tmp_path / "model_softmax_bn.onnx") and batchnorm_nodes(result.path) == 52
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 48, 48)).astype(np.float32)
    probs = _reload(result.path, x)
    logits = net(ms.Tensor(x)).asnumpy()
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    meta = find_meta(result.path)[0]
    assert meta == result.meta and meta.softmax and meta.image_size == 48 and meta.resize == 54 and meta.input_name == "input"


@pytest.mark.slow
def test_unfused_mindir_keeps_batchnorm_and_matches(run, tmp_path):
    rundir, net = run
    result = export_run(rundir.path, "mindir", fuse_bn=False, out=str(tmp_path / "bn.mindir"))
    assert batchnorm_nodes(result.path) == 52
    x = np.random.default_rng(3).normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    assert rel_diff(net(ms.Tensor(x)).asnumpy(), _reload(result.path, x)) <= TOL


def test_air_is_refused_off_ascend_with_what_is_available(run):
    from runtime.engines.devices import probe
    if probe("mindspore", "ascend")[0]:
        pytest.skip("an Ascend device is present")
    with pytest.raises(EngineUnavailableError, match=r"AIR export .*Ascend.*available: cpu"):
        export_run(run[0].path, "air")


def test_failed_export_leaves_no_file(run, tmp_path, monkeypatch):
    def broken(net, x, fmt, tmp):
        open(tmp, "wb").write(b"half a model")
        raise RuntimeError("killed")
    monkeypatch.setattr(export_mod, "write_model", broken)
    with pytest.raises(RuntimeError, match="killed"):
        export_run(run[0].path, "onnx", out=str(tmp_path / "m.onnx"))
    assert os.listdir(tmp_path) == []


def test_bad_output_paths_are_refused(run):
    target = os.path.join(run[0].path, "m.mindir")
    with pytest.raises(ExportError, match="must end with .onnx"):
        export_run(run[0].path, "onnx", out=target)
    assert not os.path.exists(target)


def test_same_stem_exports_sit_beside_the_run_metadata_and_clean_leftovers(run, tmp_path):
    """model.onnx and model.mindir in the run folder itself: each has its own metadata, the run's
    model.json is untouched, and a temporary left by a killed export is removed by the next one."""
    rundir = run[0]
    before = open(rundir.model_json).read()
    leftover = os.path.join(rundir.path, ".model.mindir.k1ll3d00.tmp.mindir")
    open(leftover, "wb").write(b"half a model")
    onnx_out = export_run(rundir.path, "onnx", out=os.path.join(rundir.path, "model.onnx"), verify=False)
    mindir_out = export_run(rundir.path, "mindir", out=os.path.join(rundir.path, "model.mindir"), verify=False)
    assert open(rundir.model_json).read() == before and not os.path.exists(leftover)
    assert find_meta(onnx_out.path)[0] == onnx_out.meta and find_meta(mindir_out.path)[0] == mindir_out.meta
    assert os.path.isfile(rundir.path + "/model.mindir.json") and not os.path.exists(rundir.path + "/model.onnx.json")
    for p in (onnx_out.path, mindir_out.path, mindir_out.meta_path):
        os.unlink(p)


def test_cli_exports_and_reports(run, tmp_path):
    result = CliRunner().invoke(main, ["export", run[0].path, "--format", "onnx", "--no-verify",
                                       "--out", str(tmp_path / "cli.onnx")])
    assert result.exit_code == 0, result.output
    assert "BatchNorm nodes: 0" in result.output and "3 classes, output logits" in result.output
    bad = CliRunner().invoke(main, ["export", run[0].path, "--format", "onnx", "--out", str(tmp_path / "x.ms")])
    assert bad.exit_code == 2 and "must end with .onnx" in bad.output
    assert CliRunner().invoke(main, ["export", run[0].path, "--format", "ms"]).exit_code == 2
