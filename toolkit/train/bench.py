"""Head-mode transfer against the ModelZoo recipe, on the same data in the same process.

ModelZoo recipe (mobilenetv2 `train.py` on CPU): the backbone runs in MindSpore on every batch of
eval-transformed images and each batch's 7x7x1280 feature maps are saved as .npy; the head (global
pooling + Dense) is then trained on those maps, one saved batch per step in shuffled batch order.
Ours: the backbone exported to ONNX and run by onnxruntime after a parity check against MindSpore,
pooled 1280-d vectors cached, the Dense trained on them. Both use the same eval transform, backbone
weights, optimizer, schedule, epochs and seed; each is timed end to end from the decoded dataset index.
"""
import os
import random
import tempfile
import time

import numpy as np

from runtime.mindspore_import import import_mindspore

from .config import TrainConfig
from .loop import no_progress
from .outputs import model_meta


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else float("nan")


def run_ours(cfg, net, index, workdir, progress=no_progress):
    from .features import pooled_features
    from .setup import seed_everything
    from .tasks import TASKS
    t0 = time.perf_counter()
    arrays, info = pooled_features(cfg, net, index, workdir, progress)
    t1 = time.perf_counter()
    task = TASKS["features"](cfg, net, arrays)
    for epoch in range(cfg.epochs):
        seed_everything(cfg.seed, epoch)
        task.start_epoch()
        for x, y in task.batches(epoch):
            task.step(x, y)
    acc = task.evaluate()
    t2 = time.perf_counter()
    parity = info.get("parity", {})
    return {"total_s": round(t2 - t0, 3), "extract_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3),
            "val_acc": acc, "engine": info.get("engine"), "cache": info.get("cache"),
            "parity_max_abs_diff": parity.get("max_abs_diff"), "parity_images": parity.get("images")}


def _zoo_maps(backbone, samples, meta, batch_size, folder, tag):
    """MindSpore backbone on each batch; saves maps and labels per batch like the ModelZoo."""
    ms = import_mindspore()

    from toolkit.data.pipeline import eval_batches
    paths = []
    for i, (images, labels) in enumerate(eval_batches(samples, meta, batch_size)):
        n = len(images)
        if n < batch_size:      # pad: one compiled graph (the recipe drops the remainder instead)
            images = np.concatenate([images, np.zeros((batch_size - n,) + images.shape[1:], np.float32)])
        maps = backbone(ms.Tensor(images)).asnumpy()[:n]
        fp, lp = (os.path.join(folder, f"{tag}_{kind}_{i}.npy") for kind in ("feature", "label"))
        np.save(fp, maps)
        np.save(lp, labels)
        paths.append((fp, lp))
    return paths


def run_modelzoo(cfg, net, index, workdir):
    ms = import_mindspore()

    from toolkit import models
    from toolkit.checkpoints import assign, params_of

    from .amp import build_train_step
    from .schedule import cosine_with_warmup
    from .setup import make_loss, make_optimizer, seed_everything

    # A separate network with the same weights, so the two methods cannot share state.
    zoo = models.build(cfg.arch, index.num_classes, width=cfg.width)
    assign(zoo, params_of(net))
    zoo.set_train(False)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        meta = model_meta(cfg, index.classes)
        train_paths = _zoo_maps(zoo.backbone, index.train, meta, cfg.batch_size, folder, "train")
        val_paths = _zoo_maps(zoo.backbone, index.val, meta, cfg.batch_size, folder, "val")
        t1 = time.perf_counter()
        map_shape = list(np.load(train_paths[0][0]).shape[1:])
        head = zoo.head
        steps = len(train_paths)
        opt = make_optimizer(head.trainable_params(),
                             cosine_with_warmup(cfg.lr_max, cfg.lr_end, cfg.warmup_epochs, cfg.epochs,
                                                steps), cfg)
        step = build_train_step(head, make_loss(cfg.label_smoothing), opt, cfg.amp, cfg.loss_scale,
                                cfg.device)
        step.set_train(True)
        for epoch in range(cfg.epochs):
            seed_everything(cfg.seed, epoch)
            order = list(range(steps))
            random.shuffle(order)
            for i in order:
                fp, lp = train_paths[i]
                step(ms.Tensor(np.load(fp)), ms.Tensor(np.load(lp)))
        head.set_train(False)
        logits, labels = [], []
        for fp, lp in val_paths:
            logits.append(head(ms.Tensor(np.load(fp))).asnumpy())
            labels.append(np.load(lp))
        acc = _accuracy(np.concatenate(logits), np.concatenate(labels)) if logits else float("nan")
    t2 = time.perf_counter()
    return {"total_s": round(t2 - t0, 3), "extract_s": round(t1 - t0, 3), "train_s": round(t2 - t1, 3),
            "val_acc": acc, "engine": "mindspore", "feature_map_shape": map_shape}


def warm_up():
    """Pay MindSpore's once-per-process start-up (kernel libraries, first compile) before timing,
    so neither method is charged for it."""
    ms = import_mindspore()
    dense = ms.nn.Dense(4, 2)
    dense(ms.Tensor(np.zeros((1, 4), np.float32))).asnumpy()


def bench_head_mode(data, image_size=224, batch_size=32, epochs=10, width=1.0, pretrained=None,
                    seed=0, lr_max=0.05, workdir=None, progress=no_progress):
    """Both methods on DATA; returns a JSON-able dict with times, accuracies and the speed-up.
    Ours runs first and cannot profit from anything the recipe leaves behind (no shared cache)."""
    from toolkit.data.folder import scan_dataset

    from .modes import MODES
    from .setup import build_network, training_context
    cfg = TrainConfig(data=os.path.abspath(data), out="", mode="head", pretrained=pretrained,
                      width=width, image_size=image_size, batch_size=batch_size, epochs=epochs,
                      seed=seed, lr_max=lr_max).resolved()
    with training_context(cfg.device), tempfile.TemporaryDirectory(dir=workdir) as tmp:
        index = scan_dataset(cfg.data, seed=seed)
        net, _ = build_network(cfg, index.num_classes, MODES["head"])
        warm_up()
        ours = run_ours(cfg, net, index, tmp, progress)
        zoo = run_modelzoo(cfg, net, index, tmp)
    speedup = zoo["total_s"] / ours["total_s"] if ours["total_s"] > 0 else None
    return {"dataset": cfg.data, "classes": index.num_classes, "train_images": len(index.train),
            "val_images": len(index.val), "image_size": image_size, "width": width,
            "batch_size": batch_size, "epochs": epochs, "seed": seed,
            "backbone": pretrained or "random initialisation (ModelZoo init)",
            "ours": ours, "modelzoo": zoo,
            "speedup_end_to_end": round(speedup, 2) if speedup else None,
            "val_acc_diff_points": round(100 * (ours["val_acc"] - zoo["val_acc"]), 3)}
