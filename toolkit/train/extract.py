"""Pooled-feature extraction with the frozen backbone, on the fastest engine available.

On CPU onnxruntime runs MobileNetV2 tens of times faster than MindSpore with the same weights
(platform-facts.md), so the frozen backbone plus global pooling is exported to ONNX and run there,
after a check on a few real images that its features equal MindSpore's within a tolerance.
MindSpore's ONNX export fails on a second export of the same network object in one process, so
every export builds a fresh network and copies the weights into it.

The exported file runs through runtime.load (the "onnxruntime" engine: the device asked for or an
EngineUnavailableError) and runtime.engines.batching.run_batched. The MindSpore extractor is the live
network cell on the training device, not a model file: nothing is exported for it, and it is the
reference the onnxruntime features are checked against.
"""
import logging
import os
import tempfile
import time

import numpy as np

from runtime.errors import EngineUnavailableError, ToolkitError
from runtime.formats import ENGINES_BY_NAME
from runtime.mindspore_import import from_mindspore, import_mindspore

log = logging.getLogger(__name__)

# |ort - mindspore| <= PARITY_ATOL + PARITY_RTOL * max|mindspore| on the check images.
PARITY_ATOL = 1e-6
PARITY_RTOL = 1e-3
PARITY_IMAGES = 4


class FeatureParityError(ToolkitError):
    """onnxruntime's features differ from MindSpore's beyond the tolerance: not used."""


def backbone_arrays(net):
    """{name: float32 ndarray} of every backbone parameter (weights and BN statistics)."""
    return {p.name: p.asnumpy() for p in net.backbone.get_parameters()}


def build_feature_net(arch, width, arrays):
    """A fresh backbone + global-average-pooling cell holding `arrays` (a new object every call)."""
    ms = import_mindspore()
    nn, ops = from_mindspore("mindspore", "nn", "ops")

    from toolkit import models

    class FeatureNet(nn.Cell):
        def __init__(self, backbone):
            super().__init__(auto_prefix=False)
            self.backbone = backbone

        def construct(self, x):
            return ops.mean(self.backbone(x), (2, 3), keep_dims=False)

    fresh = models.build(arch, 1, width=width)
    feature_net = FeatureNet(fresh.backbone)
    params = {p.name: p for p in feature_net.get_parameters()}
    if set(params) != set(arrays):
        missing = sorted(set(arrays) ^ set(params))[:5]
        raise ToolkitError(f"backbone parameters do not match the architecture {arch}: {missing}")
    for name, value in arrays.items():
        params[name].set_data(ms.Tensor(value))
    feature_net.set_train(False)
    return feature_net


def export_onnx(feature_net, image_size, path, batch):
    """Export with a fixed batch dimension: onnxruntime runs a static shape ~25% faster than a
    symbolic one on CPU (measured on MobileNetV2); smaller batches are padded by the extractor."""
    ms = import_mindspore()
    import onnx

    dummy = ms.Tensor(np.zeros((1, 3, image_size, image_size), np.float32))
    base = os.path.splitext(path)[0]
    if hasattr(ms, "onnx") and hasattr(ms.onnx, "export"):
        ms.onnx.export(feature_net, dummy, file_name=base)
    else:
        ms.export(feature_net, dummy, file_name=base, file_format="ONNX")
    model = onnx.load(base + ".onnx")
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = int(batch)
    onnx.save(model, path)
    return path


class OrtExtractor:
    """The exported backbone on the "onnxruntime" engine (runtime.load: the device is the one asked
    for or an EngineUnavailableError, never another); the fixed batch is padded by run_batched."""
    name = "onnxruntime"

    def __init__(self, onnx_path, batch, device="cpu"):
        import runtime
        self.engine = runtime.load(onnx_path, engine="onnxruntime", device=device)
        self.batch = int(batch)

    def __call__(self, batch):
        from runtime.engines.batching import run_batched
        return run_batched(self.engine, np.ascontiguousarray(batch, np.float32), max_batch=self.batch)


class MindSporeExtractor:
    name = "mindspore"

    def __init__(self, feature_net, pynative=False):
        ms = import_mindspore()
        self.ms = ms
        self.net = feature_net
        self.pynative = pynative

    def __call__(self, batch):
        x = self.ms.Tensor(np.ascontiguousarray(batch, np.float32))
        if not self.pynative:
            return self.net(x).asnumpy()
        # A few images: op-by-op is faster than compiling a graph (~3 s for MobileNetV2 on CPU).
        previous = self.ms.get_context("mode")
        self.ms.set_context(mode=self.ms.PYNATIVE_MODE)
        try:
            return self.net(x).asnumpy()
        finally:
            self.ms.set_context(mode=previous)


def check_parity(ort_extractor, ms_extractor, images):
    """Max abs difference of the two engines on `images`; raises beyond the tolerance."""
    got = ort_extractor(images)
    want = ms_extractor(images)
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    limit = PARITY_ATOL + PARITY_RTOL * float(np.max(np.abs(want)) if want.size else 0.0)
    if not np.isfinite(diff) or diff > limit:
        raise FeatureParityError(
            f"onnxruntime features differ from MindSpore's by {diff:.3g} (> {limit:.3g}) on "
            f"{len(images)} images; refusing to extract with onnxruntime (use --extractor mindspore)")
    return {"max_abs_diff": diff, "tolerance": limit, "images": int(len(images))}


def choose_engine(requested, device):
    """'auto' picks onnxruntime on CPU when installed, else MindSpore on the training device."""
    from runtime.engines import engine_importable, is_importable
    # the engine's own packages (its ENGINES entry), plus onnx, which exports the backbone
    have_ort = engine_importable(ENGINES_BY_NAME["onnxruntime"]) and is_importable("onnx")
    if requested == "auto":
        return "onnxruntime" if device == "cpu" and have_ort else "mindspore"
    if requested == "onnxruntime" and not have_ort:
        raise EngineUnavailableError("onnxruntime feature extraction", ["mindspore"],
                                     "onnxruntime or onnx is not installed")
    return requested


def make_extractor(engine, arch, width, arrays, image_size, device, workdir, check_images,
                   batch=32):
    """(extractor, info) where info records the engine, export time and the parity check.

    `workdir` holds the temporary ONNX file (None: the system's temp folder)."""
    info = {"engine": engine}
    ms_net = build_feature_net(arch, width, arrays)
    if engine == "mindspore":
        return MindSporeExtractor(ms_net), info
    t0 = time.perf_counter()
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = export_onnx(build_feature_net(arch, width, arrays), image_size,
                           os.path.join(tmp, "backbone.onnx"), batch)
        # onnxruntime has no Ascend provider (ENGINES lists cpu, gpu): an explicit onnxruntime
        # extraction in an Ascend run uses the host CPU, recorded in info["device"].
        ort_device = device if device in ENGINES_BY_NAME["onnxruntime"].devices else "cpu"
        extractor = OrtExtractor(path, batch, ort_device)
        info["device"] = extractor.engine.device
    info["export_s"] = round(time.perf_counter() - t0, 3)
    if check_images is not None and len(check_images):
        reference = MindSporeExtractor(ms_net, pynative=True)
        info["parity"] = check_parity(extractor, reference, check_images[:PARITY_IMAGES])
        log.info("onnxruntime vs MindSpore features on %d images: max abs diff %.3g",
                 info["parity"]["images"], info["parity"]["max_abs_diff"])
    return extractor, info
