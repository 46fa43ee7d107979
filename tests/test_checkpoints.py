"""Checkpoint files: atomic fp32/fp16 saving, clear errors, and pretrained loading rules."""
import os

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from _runfolder import randomize  # noqa: E402
from toolkit.checkpoints import (CheckpointError, load_exact, load_params, load_pretrained,  # noqa: E402
                                 params_of, save_params)
from toolkit.models import build  # noqa: E402


def _net(classes=5, seed=0, **kw):
    return randomize(build("mobilenet_v2", classes, width=0.35, **kw), seed)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 'pretrained' 5-class network and its checkpoint."""
    net = _net(5, seed=1)
    path = str(tmp_path_factory.mktemp("ckpt") / "pre.ckpt")
    save_params(net, path)
    return net, path


def _same(a, b, names):
    pa, pb = params_of(a), params_of(b)
    return all(np.array_equal(pa[n], pb[n]) for n in names)


def test_round_trip_is_exact_and_leaves_no_temp_files(source, tmp_path):
    net, path = source
    back = load_params(path)
    assert set(back) == set(params_of(net))
    assert all(np.array_equal(back[k], v) for k, v in params_of(net).items())
    save_params(net, tmp_path / "x.ckpt")
    assert os.listdir(tmp_path) == ["x.ckpt"]


def test_failed_save_keeps_the_old_file_and_no_partial_one(source, tmp_path, monkeypatch):
    net, _ = source
    target = tmp_path / "best.ckpt"
    save_params({"a": np.ones(3, np.float32)}, target)
    before = target.read_bytes()

    def boom(items, name, *a, **k):
        open(name, "wb").write(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(ms, "save_checkpoint", boom)
    with pytest.raises(KeyboardInterrupt):
        save_params(net, target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["best.ckpt"]


def test_fp16_halves_the_file_and_loads_back_into_fp32(source, tmp_path):
    net, path = source
    half = str(tmp_path / "best_fp16.ckpt")
    save_params(net, half, fp16=True)
    ratio = os.path.getsize(half) / os.path.getsize(path)
    assert 0.45 < ratio < 0.55
    assert all(v.dtype == np.float16 for v in load_params(half).values())
    fresh = build("mobilenet_v2", 5, width=0.35)
    load_exact(fresh, half)
    got_all = params_of(fresh)
    for name, want in params_of(net).items():
        got = got_all[name]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)      # fp16 rounding only


@pytest.mark.parametrize("content", [b"garbage" * 10, None], ids=["corrupt", "truncated"])
def test_unreadable_checkpoint_names_the_file(source, tmp_path, content):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content if content is not None else open(source[1], "rb").read()[:5000])
    with pytest.raises(CheckpointError, match="bad.ckpt: not a readable"):
        load_params(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_params(tmp_path / "nope.ckpt")


def test_backbone_mode_loads_backbone_only(source):
    pre, path = source
    net = _net(5, seed=2)
    head_before = params_of(net)["head.1.weight"].copy()
    report = load_pretrained(net, path, mode="backbone")
    backbone = [n for n in params_of(net) if not n.startswith("head.")]
    assert _same(net, pre, backbone) and np.array_equal(params_of(net)["head.1.weight"], head_before)
    assert sorted(k for k, _ in report.skipped) == ["head.1.bias", "head.1.weight"]
    assert report.missing == ["head.1.bias", "head.1.weight"] and len(report.loaded) == len(backbone)


def test_full_mode_with_same_classes_loads_everything(source):
    pre, path = source
    net = _net(5, seed=3)
    report = load_pretrained(net, path, mode="full")
    assert _same(net, pre, params_of(net)) and not report.missing and not report.skipped


def test_full_mode_with_other_class_count_skips_the_head_and_says_so(source):
    _, path = source
    net = _net(3, seed=3)
    report = load_pretrained(net, path, mode="full")
    assert report.missing == ["head.1.bias", "head.1.weight"]
    assert all("class count differs" in reason for _, reason in report.skipped)
    assert "head.1.weight" in "\n".join(report.lines())


@pytest.mark.parametrize("rename", [
    lambda k: k.replace("head.1.", "head.2."),             # ModelZoo head with dropout
    lambda k: k.replace("head.1.", "classifier."),         # other classifier naming
    lambda k: "network." + k,                              # saved from a TrainOneStepCell wrapper
], ids=["dropout-head", "classifier", "wrapper-prefix"])
def test_head_and_wrapper_naming_variants_are_tolerated(source, rename):
    pre, _ = source
    params = {rename(k): v for k, v in params_of(pre).items()}
    params.update({"moments.head.1.weight": np.zeros(1, np.float32), "global_step": np.array([7])})
    net = _net(5, seed=4)
    report = load_pretrained(net, params, mode="full")
    assert _same(net, pre, params_of(net)) and not report.missing
    assert ("global_step", "training state") in report.skipped


def test_foreign_checkpoint_is_refused_listing_unmatched_keys():
    foreign = {f"layer{i}.conv.weight": np.zeros((4, 4, 1, 1), np.float32) for i in range(20)}
    with pytest.raises(CheckpointError, match=r"20 unmatched checkpoint keys, e.g. layer0.conv.weight"):
        load_pretrained(_net(5), foreign, mode="backbone")


def test_other_width_is_refused_with_shape_mismatches(source):
    _, path = source
    with pytest.raises(CheckpointError, match=r"does not fit this network \(BackboneHeadNet\); \d+ shape mismatches, e.g. features"):
        load_pretrained(build("mobilenet_v2", 5, width=0.5), path, mode="backbone")


def test_exact_load_lists_missing_and_unexpected_names(source):
    pre, _ = source
    params = params_of(pre)
    params["extra.weight"] = params.pop("head.1.bias")
    with pytest.raises(CheckpointError, match="missing: head.1.bias; unexpected: extra.weight"):
        load_exact(_net(5), params)


TUTORIAL_LINES = ["Delete parameter from checkpoint:  end_point.weight",
                  "Delete parameter from checkpoint:  end_point.bias",
                  "Delete parameter from checkpoint:  moments.end_point.weight",
                  "Delete parameter from checkpoint:  moments.end_point.bias"]


@pytest.mark.parametrize("mode", ["backbone", "full"])
def test_modelzoo_resnet_checkpoint_with_optimizer_state_reports_like_the_tutorial(mode, tmp_path):
    """The transfer-learning tutorial's resnet50.ckpt: ModelZoo names, moments.*, learning_rate,
    global_step. The head (3 classes, not 2) and its moments are dropped and named as the tutorial
    names them, the rest of the optimizer state is counted, every backbone weight is loaded."""
    from train_fixtures import modelzoo_checkpoint
    path = modelzoo_checkpoint("resnet50", tmp_path / "resnet50.ckpt", classes=3)
    saved = load_params(path)
    net = build("resnet50", 2, width=0.25)
    report = load_pretrained(net, path, mode=mode, head_prefix="end_point.")
    lines = report.lines()
    assert [line.split("  (")[0] for line in lines if line.startswith("Delete")] == TUTORIAL_LINES
    moments = sum(k.startswith("moments.") for k in saved) - 2
    assert f"skipped {moments + 2} optimizer-state key(s): global_step, learning_rate, " \
           f"moments.* ({moments})" in lines
    assert report.missing == ["end_point.bias", "end_point.weight"]
    got = params_of(net)
    assert all(np.array_equal(got[k], saved[k]) for k in report.loaded) and len(report.loaded) == 265


def test_resnet_head_loads_in_full_mode_when_the_class_count_fits(tmp_path):
    from train_fixtures import modelzoo_checkpoint
    path = modelzoo_checkpoint("resnet50", tmp_path / "resnet50.ckpt", classes=3)
    net = build("resnet50", 3, width=0.25)
    report = load_pretrained(net, path, mode="full", head_prefix="end_point.")
    assert not report.missing and np.array_equal(params_of(net)["end_point.weight"],
                                                 load_params(path)["end_point.weight"])


def test_a_mobilenet_checkpoint_does_not_load_into_resnet(source):
    _, path = source
    with pytest.raises(CheckpointError, match=r"pre.ckpt: does not fit .* unmatched checkpoint keys, "
                                              r"e.g. features.0"):
        load_pretrained(build("resnet50", 5, width=0.25), path, head_prefix="end_point.")
