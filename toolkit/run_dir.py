"""The layout of a training run folder, in one place.

RUN_DIR/
  best.ckpt  head.ckpt  fused.ckpt  [best_fp16.ckpt  fused_fp16.ckpt]
  model.json (runtime.metadata.ModelMeta)  config.json (resolved configuration)  history.csv
  state.json (resume point)  checkpoints/ (periodic)  cache/ (feature cache)
  logs/ (per-rank logs of --workers runs; MindSpore's rank_<id>/om/analyze_fail.ir if a graph fails)
Everything else (train, eval, export) finds files through these properties.
"""
import os

from runtime.errors import MetadataError, ToolkitError
from runtime.jsonfile import read_json
from runtime.metadata import ModelMeta

# which -> (checkpoint property, fused network variant)
NETWORKS = {
    "best": ("best_ckpt", False),
    "fused": ("fused_ckpt", True),
    "best_fp16": ("best_fp16_ckpt", False),
    "fused_fp16": ("fused_fp16_ckpt", True),
}


class RunDirError(ToolkitError):
    """A run folder is missing, incomplete or inconsistent."""


class RunDir:
    def __init__(self, path):
        self.path = os.fspath(path)

    def _p(self, *parts):
        return os.path.join(self.path, *parts)

    best_ckpt = property(lambda self: self._p("best.ckpt"))
    head_ckpt = property(lambda self: self._p("head.ckpt"))
    fused_ckpt = property(lambda self: self._p("fused.ckpt"))
    best_fp16_ckpt = property(lambda self: self._p("best_fp16.ckpt"))
    fused_fp16_ckpt = property(lambda self: self._p("fused_fp16.ckpt"))
    model_json = property(lambda self: self._p("model.json"))
    config_json = property(lambda self: self._p("config.json"))
    history_csv = property(lambda self: self._p("history.csv"))
    state_json = property(lambda self: self._p("state.json"))
    cache_dir = property(lambda self: self._p("cache"))
    checkpoints_dir = property(lambda self: self._p("checkpoints"))
    eval_dir = property(lambda self: self._p("eval"))
    export_dir = property(lambda self: self._p("export"))
    logs_dir = property(lambda self: self._p("logs"))

    def __repr__(self):
        return f"RunDir({self.path!r})"

    def create(self):
        """Make the folder and its sub-folders; returns self."""
        for d in (self.path, self.cache_dir, self.checkpoints_dir):
            os.makedirs(d, exist_ok=True)
        return self

    def remove_leftovers(self):
        """Delete the atomic-write temporaries an interrupted run left in the folder and in
        checkpoints/ (the feature cache cleans its own); call it while holding the folder alone."""
        from toolkit.leftovers import remove_atomic_temps, report
        return report(remove_atomic_temps(self.path) + remove_atomic_temps(self.checkpoints_dir))

    def periodic_ckpt(self, epoch):
        return self._p("checkpoints", f"epoch_{epoch:04d}.ckpt")

    def load_meta(self):
        if not os.path.isdir(self.path):
            raise RunDirError(f"{self.path}: run folder not found")
        try:
            return ModelMeta.load(self.model_json)
        except MetadataError as e:
            raise RunDirError(f"{self.path} is not a usable run folder: {e}") from None

    def load_config(self):
        cfg = read_json(self.config_json, RunDirError, what="the run configuration")
        if not isinstance(cfg, dict):
            raise RunDirError(f"{self.config_json}: must be a JSON object")
        return cfg

    def checkpoint(self, which):
        if which not in NETWORKS:
            raise RunDirError(f"unknown network {which!r}; choose from {', '.join(NETWORKS)}")
        return getattr(self, NETWORKS[which][0])

    def build_network(self, which="best", meta=None):
        """(network in eval mode with the run's weights, ModelMeta). Fused kinds build the fused variant."""
        from toolkit import models
        from toolkit.checkpoints import CheckpointError, load_exact, load_params
        meta = meta or self.load_meta()
        ckpt = self.checkpoint(which)
        if not os.path.isfile(ckpt):
            raise RunDirError(f"{ckpt}: not found (has training finished in {self.path}?)")
        if meta.arch not in models.ARCHS:
            raise RunDirError(f"{self.model_json}: unknown arch {meta.arch!r}")
        if meta.num_classes < 1:
            raise RunDirError(f"{self.model_json}: no class names")
        params = load_params(ckpt)
        # A head trained with dropout is named head.2.* (ModelZoo); dropout itself is inert in eval.
        dropout = 0.2 if models.ARCHS[meta.arch].head_prefix + "2.weight" in params else 0.0
        net = models.build(meta.arch, meta.num_classes, width=meta.width, dropout=dropout,
                           fused=NETWORKS[which][1])
        try:
            load_exact(net, params)
        except CheckpointError as e:
            raise RunDirError(f"{ckpt}: {e}") from None
        net.set_train(False)
        return net, meta
