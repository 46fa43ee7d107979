"""The run folder's derived checkpoints describe the best network: head.ckpt is its head,
fused.ckpt gives the same outputs within 1e-4 relative, fp16 variants load back into fp32."""
import os

import numpy as np
import pytest
from runtime.mindspore_import import import_mindspore


pytestmark = pytest.mark.mindspore


def _outputs(out, which, images):
    ms = import_mindspore()

    from toolkit.run_dir import RunDir
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)      # a few images: no graph compile needed
    try:
        net, _ = RunDir(out).build_network(which)
        return net(ms.Tensor(images)).asnumpy()
    finally:
        ms.set_context(mode=previous)


@pytest.fixture(scope="module")
def val_images(tiny_data):
    from toolkit.data.folder import scan_dataset
    from runtime.metadata import ModelMeta, resize_for
    from toolkit.data.pipeline import eval_batches
    meta = ModelMeta(image_size=32, resize=resize_for(32))
    return next(eval_batches(scan_dataset(tiny_data).val, meta, 8))[0]


def test_head_ckpt_is_the_best_networks_head(head_run):
    from toolkit.checkpoints import load_params
    out, _ = head_run
    best, head = load_params(os.path.join(out, "best.ckpt")), load_params(os.path.join(out, "head.ckpt"))
    assert sorted(head) == ["head.1.bias", "head.1.weight"]
    assert all(np.array_equal(head[k], best[k]) for k in head)


def test_training_changed_the_head_not_the_frozen_backbone(head_run, pretrained_ckpt):
    from toolkit.checkpoints import load_params
    out, _ = head_run
    best, start = load_params(os.path.join(out, "best.ckpt")), load_params(pretrained_ckpt)
    assert all(np.array_equal(best[k], start[k]) for k in best if not k.startswith("head."))


def test_fused_checkpoint_gives_the_same_outputs(head_run, val_images):
    out, _ = head_run
    ref = _outputs(out, "best", val_images)
    fused = _outputs(out, "fused", val_images)
    rel = np.abs(fused - ref).max() / np.abs(ref).max()
    assert rel <= 1e-4, f"fused vs best: {rel:.2e} relative"


@pytest.mark.slow
def test_fp16_checkpoint_loads_into_fp32_network(head_run, val_images):
    out, _ = head_run
    ref = _outputs(out, "best", val_images)
    half = _outputs(out, "best_fp16", val_images)
    assert half.dtype == np.float32
    assert np.abs(half - ref).max() / np.abs(ref).max() <= 1e-2
