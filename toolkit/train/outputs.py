"""The files a finished run leaves: head.ckpt, fused.ckpt, fp16 variants and model.json.

All are derived from best.ckpt, so they describe the network that had the best val accuracy.
"""
import os

from runtime.metadata import ModelMeta, resize_for


def model_meta(cfg, class_names):
    return ModelMeta(arch=cfg.arch, width=float(cfg.width), image_size=int(cfg.image_size),
                     resize=resize_for(cfg.image_size), class_names=tuple(class_names))


def finalize(run, net, head_prefix, save_fp16):
    """Write the derived checkpoints from best.ckpt; returns {kind: path}."""
    from toolkit.checkpoints import load_exact, load_params, save_params
    from toolkit.fuse import fuse_bn_params
    best = load_params(run.best_ckpt)
    load_exact(net, best)
    written = {"best": run.best_ckpt}
    head = {k: v for k, v in best.items() if k.startswith(head_prefix)}
    written["head"] = save_params(head, run.head_ckpt)
    fused = fuse_bn_params(net)
    written["fused"] = save_params(fused, run.fused_ckpt)
    if save_fp16:
        written["best_fp16"] = save_params(best, run.best_fp16_ckpt, fp16=True)
        written["fused_fp16"] = save_params(fused, run.fused_fp16_ckpt, fp16=True)
    else:
        for stale in (run.best_fp16_ckpt, run.fused_fp16_ckpt):
            if os.path.exists(stale):
                os.unlink(stale)
    return written
