"""Where a mode's training steps come from: cached feature vectors or images through the network.

A task exposes the same small surface to the loop (`steps_per_epoch`, `batches(epoch)`, `step`,
`evaluate`, `state_cell`, `lrs`), so the loop, checkpoints and resume logic are shared by all modes.
"""
import logging

import numpy as np

from runtime.errors import ToolkitError
from runtime.registry import registrar
from runtime.mindspore_import import from_mindspore

from . import amp
from .outputs import model_meta
from .schedule import cosine_with_warmup
from .setup import make_loss, make_optimizer

log = logging.getLogger(__name__)

VAL_CACHE_BYTES = 512 * 1024 * 1024      # keep preprocessed val images in memory up to this size
TASKS = {}


task = registrar(TASKS, "training task")


def classifier_of(net):
    """The last Dense of the head: the part head mode trains on pooled features."""
    nn = from_mindspore("mindspore", "nn")
    dense = [c for _, c in net.head.cells_and_names() if isinstance(c, nn.Dense)]
    if not dense:
        raise ToolkitError(f"{type(net.head).__name__} has no Dense classifier to train")
    return dense[-1]


def _train_cell(trainable, params, steps_per_epoch, cfg, replicas=1):
    """The train step and its per-step learning rates; `replicas` data-parallel copies of the step
    scale lr-max and lr-end by cfg.lr_scaling (toolkit.distributed.context.LR_SCALING)."""
    from toolkit.distributed.context import scaled_learning_rate
    lr_max, lr_end = (scaled_learning_rate(lr, replicas, cfg.lr_scaling) for lr in (cfg.lr_max, cfg.lr_end))
    lrs = cosine_with_warmup(lr_max, lr_end, cfg.warmup_epochs, cfg.epochs, steps_per_epoch)
    opt = make_optimizer(params, lrs, cfg)
    cell = amp.build_train_step(trainable, make_loss(cfg.label_smoothing), opt, cfg.amp,
                                cfg.loss_scale, cfg.device)
    return cell, lrs


@task("features")
class FeatureTask:
    """Head mode: the Dense head on cached pooled features (see features.py for the cache)."""

    def __init__(self, cfg, net, arrays, shard=None):
        Tensor = from_mindspore("mindspore", "Tensor")
        self.Tensor = Tensor
        self.cfg, self.net = cfg, net
        self.dense = classifier_of(net)
        self.train_x, self.train_y = arrays["train_x"], arrays["train_y"].astype(np.int32)
        self.val_x, self.val_y = arrays["val_x"], arrays["val_y"].astype(np.int32)
        n = len(self.train_x)
        if n == 0:
            raise ToolkitError("no training images")
        self.batch = min(cfg.batch_size, n)
        self.steps_per_epoch = n // self.batch
        self.state_cell, self.lrs = _train_cell(self.dense, self.dense.trainable_params(),
                                                self.steps_per_epoch, cfg)

    def batches(self, epoch):
        order = np.random.default_rng([int(self.cfg.seed), int(epoch)]).permutation(len(self.train_x))
        for i in range(self.steps_per_epoch):
            idx = order[i * self.batch:(i + 1) * self.batch]
            yield self.Tensor(self.train_x[idx]), self.Tensor(self.train_y[idx])

    def start_epoch(self):
        self.state_cell.set_train(True)

    def step(self, x, y):
        return float(self.state_cell(x, y).asnumpy())

    def evaluate(self):
        """Top-1 on the cached val vectors, computed from the fp32 weights that best.ckpt stores."""
        if not len(self.val_x):
            return None
        w = self.dense.weight.asnumpy().astype(np.float32)
        b = self.dense.bias.asnumpy().astype(np.float32) if self.dense.has_bias else 0.0
        pred = np.argmax(self.val_x @ w.T + b, axis=1)
        return float(np.mean(pred == self.val_y))


@task("network")
class NetworkTask:
    """incremental, finetune, scratch: images through the network with the train augmentation."""

    def __init__(self, cfg, net, index, spec, shard=None):
        Tensor = from_mindspore("mindspore", "Tensor")
        self.Tensor = Tensor
        self.cfg, self.net, self.spec, self.index = cfg, net, spec, index
        self.shard = shard or {}
        self.steps_per_epoch = self._loader(0).get_dataset_size()
        if self.steps_per_epoch < 1:
            raise ToolkitError("the training split gives no complete batch")
        self.state_cell, self.lrs = _train_cell(net, net.trainable_params(), self.steps_per_epoch, cfg,
                                                replicas=cfg.workers)
        self._val = None

    def _loader(self, epoch):
        from toolkit.data.pipeline import make_loader
        meta = model_meta(self.cfg, self.index.classes)
        return make_loader(self.index.train, meta, self.cfg.batch_size, train=True,
                           seed=int(self.cfg.seed) * 10007 + int(epoch),
                           num_workers=self.cfg.num_workers, **self.shard)

    def batches(self, epoch):
        for image, label in self._loader(epoch).create_tuple_iterator(num_epochs=1):
            yield image, label

    def start_epoch(self):
        self.state_cell.set_train(True)
        if self.spec.freeze_backbone:       # frozen means BatchNorm statistics too
            self.net.backbone.set_train(False)

    def step(self, x, y):
        return float(self.state_cell(x, y).asnumpy())

    def _val_batches(self):
        from toolkit.data.pipeline import eval_batches
        if self._val is not None:
            return self._val
        meta = model_meta(self.cfg, self.index.classes)
        batches = eval_batches(self.index.val, meta, self.cfg.batch_size)
        size = len(self.index.val) * 3 * self.cfg.image_size ** 2 * 4
        if size <= VAL_CACHE_BYTES:
            self._val = list(batches)
            return self._val
        return batches

    def evaluate(self):
        if not self.index.val:
            return None
        self.net.set_train(False)
        correct = total = 0
        for images, labels in self._val_batches():
            n = len(images)
            if n < self.cfg.batch_size:     # pad: one compiled graph for every batch
                pad = np.zeros((self.cfg.batch_size - n,) + images.shape[1:], images.dtype)
                images = np.concatenate([images, pad])
            logits = self.net(self.Tensor(images)).asnumpy()[:n]
            correct += int(np.sum(np.argmax(logits, axis=1) == labels))
            total += n
        return correct / total
