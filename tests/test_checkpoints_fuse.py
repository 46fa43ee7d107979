"""BatchNorm folding and the run folder: fused.ckpt gives best.ckpt's outputs within 1e-4 relative."""
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from _runfolder import make_run, rel_diff  # noqa: E402
from toolkit.fuse import count_batchnorm, fuse_bn_params  # noqa: E402
from toolkit.run_dir import NETWORKS, RunDir, RunDirError  # noqa: E402

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(str(tmp_path_factory.mktemp("run")), CLASSES)


@pytest.fixture(scope="module")
def batch():
    return ms.Tensor(np.random.default_rng(0).normal(0, 1, (2, 3, 32, 32)).astype(np.float32))


def test_fused_network_matches_original_within_1e4th_relative(run, batch):
    rundir, net = run
    fused, meta = rundir.build_network("fused")
    assert count_batchnorm(fused) == 0 and list(meta.class_names) == CLASSES
    assert rel_diff(net(batch).asnumpy(), fused(batch).asnumpy()) <= 1e-4


def test_fold_formula_on_one_conv(run):
    _, net = run
    params = fuse_bn_params(net)
    conv = net.backbone.features[0].features[0]
    bn = net.backbone.features[0].features[1]
    scale = bn.gamma.asnumpy() / np.sqrt(bn.moving_variance.asnumpy() + bn.eps)
    np.testing.assert_allclose(params["features.0.features.0.weight"],
                               conv.weight.asnumpy() * scale[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(params["features.0.features.0.bias"],
                               bn.beta.asnumpy() - bn.moving_mean.asnumpy() * scale, rtol=1e-5, atol=1e-7)
    assert "features.0.features.1.gamma" not in params


@pytest.mark.parametrize("which", sorted(NETWORKS))
def test_every_run_network_builds_with_the_right_outputs(run, batch, which, tmp_path):
    rundir, net = run
    if which.endswith("fp16"):
        from toolkit.checkpoints import load_params, save_params
        source = rundir.fused_ckpt if which.startswith("fused") else rundir.best_ckpt
        save_params(load_params(source), rundir.checkpoint(which), fp16=True)
    built, _ = rundir.build_network(which)
    tol = 1e-4 if not which.endswith("fp16") else 2e-2          # fp16 weights: rounding only
    assert rel_diff(net(batch).asnumpy(), built(batch).asnumpy()) <= tol


def test_run_folder_errors_are_clear(tmp_path, run):
    with pytest.raises(RunDirError, match="run folder not found"):
        RunDir(tmp_path / "none").load_meta()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="model.json"):
        RunDir(tmp_path / "empty").build_network()
    with pytest.raises(RunDirError, match="unknown network"):
        run[0].checkpoint("worst")
    assert run[0].load_config()["width"] == 0.35


def test_checkpoint_of_another_network_is_refused(tmp_path, run):
    rundir, _ = run
    other, _ = make_run(str(tmp_path / "other"), CLASSES + ["d"])
    import shutil
    shutil.copy(other.best_ckpt, tmp_path / "best.ckpt")
    mixed = RunDir(tmp_path)
    shutil.copy(rundir.model_json, mixed.model_json)
    with pytest.raises(RunDirError, match="shape mismatch: head.1.weight"):
        mixed.build_network("best")
