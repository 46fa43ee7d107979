"""Helpers shared by the checkpoint, export and eval tests: tiny networks and run folders."""
import numpy as np

from runtime.metadata import ModelMeta, resize_for


def randomize(net, seed=0):
    """Non-trivial weights and BatchNorm statistics, so folding and loading are really exercised."""
    from mindspore import Tensor
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        shape, kind = p.shape, p.name.rsplit(".", 1)[1]
        if kind == "gamma":
            v = rng.uniform(0.5, 1.5, shape)
        elif kind == "moving_variance":
            v = rng.uniform(0.5, 2.0, shape)
        elif kind in ("beta", "moving_mean", "bias"):
            v = rng.normal(0, 0.1, shape)
        else:
            v = p.asnumpy() * rng.uniform(0.8, 1.2, shape)
        p.set_data(Tensor(v.astype(p.asnumpy().dtype)))
    return net


def make_run(path, class_names, width=None, image_size=32, seed=0, fused=True, arch="mobilenet_v2"):
    """A run folder as train-head leaves it (best.ckpt, fused.ckpt, head.ckpt, model.json, config.json).

    width None: the registry's test width for `arch` (small, same topology)."""
    import json
    from toolkit.checkpoints import save_params
    from toolkit.fuse import fuse_bn_params
    from toolkit.models import ARCHS, build
    from toolkit.run_dir import RunDir
    width = ARCHS[arch].test_width if width is None else width
    run = RunDir(path).create()
    net = randomize(build(arch, len(class_names), width=width), seed)
    save_params(net, run.best_ckpt)
    save_params(net.head, run.head_ckpt)
    if fused:
        save_params(fuse_bn_params(net), run.fused_ckpt)
    ModelMeta(arch=arch, width=width, image_size=image_size, resize=resize_for(image_size),
              class_names=list(class_names)).save(run.model_json)
    with open(run.config_json, "w") as f:
        json.dump({"arch": arch, "width": width, "image_size": image_size, "seed": seed}, f)
    net.set_train(False)
    return run, net


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
