"""Prove a conversion numerically: run the source model and the `.ms` on the same inputs.

The source runs on its own framework through runtime.load (MINDIR on the "mindspore" engine, ONNX on
"onnxruntime"), so the device rule and typed errors are the runtime's; the `.ms` runs on the project's
`.ms` engine. Both go through runtime.engines.batching.run_batched. Thresholds (from the issue):
fp32 -> max |diff| <= 1e-4 x the source output's range; fp16 / int8 weights -> top-1 agreement
>= 99%. Inputs are random images (uniform pixels, normalised with the model's metadata) or real
images from a folder, preprocessed by runtime.preprocess from the same metadata.
"""
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np

from runtime.engines.batching import run_batched
from runtime.errors import ToolkitError

from .errors import ConversionError
from .registry import registrar

FP32_RELATIVE_TOLERANCE = 1e-4
MIN_TOP1_AGREEMENT = 0.99
SOURCE_RUNNERS = {}


source_runner = registrar(SOURCE_RUNNERS, "source runner")


@source_runner("mindir")
def _mindir_source(path):
    """MINDIR on MindSpore itself, on the device this process's MindSpore already uses."""
    import runtime
    from runtime.engines.mindspore_engine import process_device
    return runtime.load(path, engine="mindspore", device=process_device())


@source_runner("onnx")
def _onnx_source(path):
    import runtime
    return runtime.load(path, engine="onnxruntime", device="cpu")


@dataclass
class VerifyReport:
    precision: str                    # "fp32", "fp16" or "int8"
    samples: int
    inputs: str                       # "random" or the image folder
    max_abs_diff: float
    output_range: float
    cosine_similarity: float
    top1_agreement: float
    thresholds: dict
    passed: bool
    problems: List[str] = field(default_factory=list)

    def lines(self):
        return [f"verify ({self.precision}, {self.samples} {self.inputs} input(s)):",
                f"  max abs diff      {self.max_abs_diff:.3e}  (output range {self.output_range:.3g}, "
                f"relative {self.max_abs_diff / max(self.output_range, 1e-30):.2e})",
                f"  cosine similarity {self.cosine_similarity:.6f}",
                f"  top-1 agreement   {self.top1_agreement * 100:.1f}%",
                "  result            " + ("PASS" if self.passed else "FAIL: " + "; ".join(self.problems))]

    def to_dict(self):
        return asdict(self)


def _inputs(meta, shape_nchw, n, images, seed):
    """(list of NCHW float32 arrays of `shape_nchw`, description)."""
    batch = shape_nchw[0]
    if images:
        from runtime.images import list_images
        from runtime.preprocess import Preprocessor
        files = list_images([images])
        if not files:
            raise ConversionError(f"{images}: no images found for --verify")
        if meta.image_size != shape_nchw[2] or shape_nchw[2] != shape_nchw[3]:
            raise ConversionError(f"model input {list(shape_nchw)} does not match the metadata's "
                                  f"image_size {meta.image_size}")
        pre = Preprocessor(meta, layout="NCHW")
        files = files[:n * batch]
        arrays = [pre(f) for f in files]
        if len(arrays) < batch:
            raise ConversionError(f"{images}: {len(arrays)} image(s), fewer than the batch size {batch}")
        return [np.stack(arrays[i:i + batch]) for i in range(0, len(arrays) - batch + 1, batch)], images
    rng = np.random.default_rng(seed)
    mean = np.asarray(meta.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(meta.std, np.float32).reshape(1, 3, 1, 1)
    out = []
    for _ in range(n):
        pixels = rng.uniform(0, 255, size=shape_nchw).astype(np.float32)
        out.append(((pixels - mean) / std) if shape_nchw[1] == 3 else pixels / 255.0)
    return out, "random"


def verify(source_path, source_format, ms_path, meta, precision="fp32", n=8, images=None,
           input_layout="NHWC", seed=0):
    """Compare source and `.ms` outputs; returns a VerifyReport (the caller decides to fail)."""
    import runtime
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(precision)
    engine = runtime.load(ms_path, engine="ms-engine")
    spec = engine.inputs()[0]
    shape = tuple(spec.shape)
    if any(d is None for d in shape):
        raise ConversionError(f"{ms_path}: verification needs a static input shape, got {shape}")
    image = len(shape) == 4
    nchw = shape if input_layout == "NCHW" or not image else (shape[0], shape[3], shape[1], shape[2])
    if image and meta is not None:
        batches, desc = _inputs(meta, nchw, n, images, seed)
    elif images:
        raise ConversionError(f"{source_path}: --images needs an image model with metadata; this one "
                              f"takes {list(shape)}" + ("" if image else " (not an image batch)"))
    else:           # no image semantics: standard-normal tensors exercise every input value range
        rng = np.random.default_rng(seed)
        batches, desc = [rng.standard_normal(nchw).astype(np.float32) for _ in range(n)], "random normal"
    x = np.concatenate(batches)
    source = SOURCE_RUNNERS[source_format](source_path)
    try:
        a = np.asarray(run_batched(source, x), np.float64)
    except ToolkitError as e:
        raise ConversionError(f"{source_path}: the source model cannot run on input "
                              f"{list(batches[0].shape)}: {e}") from None
    feed = x if input_layout == "NCHW" or not image else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    b = np.asarray(run_batched(engine, feed), np.float64)
    if a.shape != b.shape:
        raise ConversionError(f"output shapes differ: source {a.shape}, .ms {b.shape}")
    diff = float(np.abs(a - b).max())
    rng_ = float(a.max() - a.min())
    af, bf = a.reshape(len(a), -1), b.reshape(len(b), -1)
    na, nb = np.linalg.norm(af, axis=1), np.linalg.norm(bf, axis=1)
    both_zero = (na == 0) & (nb == 0)          # two all-zero outputs agree exactly
    cos = float(np.mean(np.where(both_zero, 1.0, np.sum(af * bf, 1) / np.maximum(na * nb, 1e-30))))
    top1 = float(np.mean(af.argmax(1) == bf.argmax(1)))
    problems = []
    if precision == "fp32":
        thresholds = {"max_abs_diff_relative_to_range": FP32_RELATIVE_TOLERANCE}
        if not diff <= FP32_RELATIVE_TOLERANCE * max(rng_, 1e-12):
            problems.append(f"max abs diff {diff:.3e} > {FP32_RELATIVE_TOLERANCE:g} x output range "
                            f"{rng_:.3g}")
    else:
        thresholds = {"min_top1_agreement": MIN_TOP1_AGREEMENT}
        if not top1 >= MIN_TOP1_AGREEMENT:
            problems.append(f"top-1 agreement {top1 * 100:.1f}% < {MIN_TOP1_AGREEMENT * 100:.0f}%")
    if not np.isfinite(b).all():
        problems.append(".ms output holds NaN or Inf")
    return VerifyReport(precision, len(a), desc, diff, rng_, cos, top1, thresholds,
                        passed=not problems, problems=problems)


def verify_bytes(data, out_name, **kwargs):
    """Verify serialised `.ms` bytes before they are written to their final place."""
    with tempfile.TemporaryDirectory(prefix="convert-verify-") as d:
        path = os.path.join(d, os.path.basename(out_name) or "model.ms")
        if not path.endswith(".ms"):
            path += ".ms"
        with open(path, "wb") as f:
            f.write(data)
        return verify(ms_path=path, **kwargs)
