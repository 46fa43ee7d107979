"""Prove a conversion numerically: run the source model and the `.ms` on the same inputs.

The source runs on its own framework through runtime.load (MINDIR on the "mindspore" engine, ONNX on
"onnxruntime"), so the device rule and typed errors are the runtime's; the `.ms` runs on the project's
`.ms` engine. Both go through runtime.engines.batching.run_batched. Thresholds (from the issue):
fp32 -> max |diff| <= 1e-4 x the source output's range; fp16 / int8 weights -> top-1 agreement
>= 99%. Inputs are random images (uniform pixels, normalised with the model's metadata) or real
images from a folder, preprocessed by runtime.preprocess from the same metadata.

The `.ms` is also checked against the official MindSpore Lite runtime whenever its `benchmark`
program is found (runtime.official.discovery): the same inputs, in the `.ms` input layout, go through
the project's engine and through `benchmark`, and the report gives top-1 agreement and max abs
difference between the two (`--outputDataFile`, which the stand-ins have). A release `benchmark`
lacks that flag: then the project engine's outputs become a calibration file and the report gives the
official tool's own mean bias (`--benchmarkDataFile`), saying which comparison was made. When no
`benchmark` is found the report says so, with how to get it (and stderr says it once per process).
"""
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from runtime.engines.batching import run_batched
from runtime.errors import ToolkitError
from runtime.official import benchmark_cli, discovery, golden_data

from .errors import ConversionError
from .registry import registrar

FP32_RELATIVE_TOLERANCE = 1e-4
MIN_TOP1_AGREEMENT = 0.99
# Our engine against the official runtime, on the same .ms: both compute in float32 from the same
# stored weights, so the difference is summation order only.
OFFICIAL_RELATIVE_TOLERANCE = 1e-4            # max |ours - official| <= this x our output range
OFFICIAL_BIAS_THRESHOLD_PCT = 0.5             # benchmark's default --accuracyThreshold (percent)
OFFICIAL_WHAT = "--verify's check against the official MindSpore Lite runtime"
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
class OfficialCheck:
    """The `.ms` on the project's engine against the official runtime (`benchmark`), same inputs."""
    status: str                       # "outputs" (--outputDataFile), "calibration" (--benchmarkDataFile), "absent"
    tool: str = ""                    # the benchmark used, and how it was found
    samples: int = 0
    max_abs_diff: Optional[float] = None       # "outputs" only
    top1_agreement: Optional[float] = None     # "outputs" only
    mean_bias_pct: Optional[float] = None      # "calibration": the tool's "Mean bias of all nodes/tensors"
    thresholds: dict = field(default_factory=dict)
    passed: Optional[bool] = None     # None when absent (nothing was checked)
    note: str = ""

    def line(self):
        if self.status == "absent":
            return f"  official runtime  NOT CHECKED: {self.note}"
        verdict = "PASS" if self.passed else "FAIL"
        if self.status == "outputs":
            return (f"  official runtime  {verdict}: max abs diff {self.max_abs_diff:.3e}, top-1 agreement "
                    f"{self.top1_agreement * 100:.1f}% vs our engine, {self.samples} batch(es) "
                    f"(benchmark --outputDataFile: {self.tool})")
        return (f"  official runtime  {verdict}: mean bias {self.mean_bias_pct:.4g}% vs our engine's "
                f"outputs (threshold {self.thresholds.get('accuracy_threshold_pct')}%), "
                f"{self.samples} batch(es) (benchmark --benchmarkDataFile, this benchmark has no "
                f"--outputDataFile so max diff and top-1 cannot be read: {self.tool})")


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
    official: Optional[OfficialCheck] = None

    def lines(self):
        official = [self.official.line()] if self.official is not None else []
        return [f"verify ({self.precision}, {self.samples} {self.inputs} input(s)):",
                f"  max abs diff      {self.max_abs_diff:.3e}  (output range {self.output_range:.3g}, "
                f"relative {self.max_abs_diff / max(self.output_range, 1e-30):.2e})",
                f"  cosine similarity {self.cosine_similarity:.6f}",
                f"  top-1 agreement   {self.top1_agreement * 100:.1f}%", *official,
                "  result            " + ("PASS" if self.passed else "FAIL: " + "; ".join(self.problems))]

    def to_dict(self):
        return asdict(self)


def verification_inputs(meta, shape_nchw, n, images, seed=0):
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


def model_inputs(ms_shape, meta, n, images, input_layout, source_path, seed=0):
    """The verification inputs for a `.ms` input of `ms_shape`: (NCHW-for-images batches of the
    `.ms` batch size, description, whether it is an image batch). The same inputs serve `--verify`,
    its official cross-check and `--golden`."""
    shape = tuple(ms_shape)
    if any(d is None for d in shape):
        raise ConversionError(f"verification needs a static input shape, got {shape}")
    image = len(shape) == 4
    nchw = shape if input_layout == "NCHW" or not image else (shape[0], shape[3], shape[1], shape[2])
    if image and meta is not None:
        batches, desc = verification_inputs(meta, nchw, n, images, seed)
    elif images:
        raise ConversionError(f"{source_path}: --images needs an image model with metadata; this one "
                              f"takes {list(shape)}" + ("" if image else " (not an image batch)"))
    else:           # no image semantics: standard-normal tensors exercise every input value range
        rng = np.random.default_rng(seed)
        batches, desc = [rng.standard_normal(nchw).astype(np.float32) for _ in range(n)], "random normal"
    return batches, desc, image


def to_ms_layout(x, image, input_layout):
    """NCHW verification arrays in the `.ms` input layout."""
    return x if input_layout == "NCHW" or not image else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def official_benchmark(explicit=None):
    """(the official benchmark, None) or (None, OfficialToolUnavailableError). An explicit path that
    is wrong raises: the user asked for that program."""
    if explicit:
        return discovery.locate(discovery.BENCHMARK, explicit), None
    try:
        return discovery.locate(discovery.BENCHMARK), None
    except discovery.OfficialToolUnavailableError as e:
        return None, e


def official_check(ms_path, engine, feeds: Sequence[np.ndarray], ours: np.ndarray, benchmark=None,
                   stream=None) -> OfficialCheck:
    """Run the `.ms` on the official runtime for each batch in `feeds` (the `.ms` input layout) and
    compare with `ours` (our engine's first output for the same rows, concatenated)."""
    tool, absent = official_benchmark(benchmark)
    if tool is None:
        discovery.warn_absent_once(discovery.BENCHMARK, OFFICIAL_WHAT, absent, stream=stream)
        return OfficialCheck("absent", note=f"official benchmark not found: {absent}")
    where = f"{tool.path} ({tool.found_by})"
    first = engine.outputs()[0].name
    if tool.supports("--outputDataFile"):
        got = []
        for feed in feeds:
            outs = dict(benchmark_cli.run_outputs(tool, ms_path, [feed]))
            if first not in outs:
                raise ConversionError(f"{ms_path}: the official runtime has no output {first!r}; its "
                                      f"outputs: {', '.join(outs)}")
            got.append(outs[first].reshape((len(feed),) + ours.shape[1:]))
        off = np.concatenate(got).astype(np.float64)
        diff = float(np.abs(off - ours).max())
        span = float(ours.max() - ours.min())
        top1 = float(np.mean(off.reshape(len(off), -1).argmax(1) == ours.reshape(len(ours), -1).argmax(1)))
        thresholds = {"max_abs_diff_relative_to_range": OFFICIAL_RELATIVE_TOLERANCE,
                      "min_top1_agreement": MIN_TOP1_AGREEMENT}
        passed = (diff <= OFFICIAL_RELATIVE_TOLERANCE * max(span, 1e-12) and top1 >= MIN_TOP1_AGREEMENT
                  and bool(np.isfinite(off).all()))
        return OfficialCheck("outputs", where, len(feeds), max_abs_diff=diff, top1_agreement=top1,
                             thresholds=thresholds, passed=passed)
    import tempfile as _tempfile
    biases, passed = [], True
    with _tempfile.TemporaryDirectory(prefix="verify-official-") as work:
        for k, feed in enumerate(feeds):
            outs = engine.run([feed])         # every output, in the model's order, as the tool wants
            calib = golden_data.write_calibration(os.path.join(work, f"ours{k}.out"),
                                                  [(o.name, outs[o.name]) for o in engine.outputs()])
            files = golden_data.write_input_bins([feed], work, stem=f"in{k}_")
            acc = benchmark_cli.check_accuracy(tool, ms_path, files, calib, OFFICIAL_BIAS_THRESHOLD_PCT)
            biases.append(acc.mean_bias_pct)
            passed = passed and acc.passed
    return OfficialCheck("calibration", where, len(feeds), mean_bias_pct=float(max(biases)),
                         thresholds={"accuracy_threshold_pct": OFFICIAL_BIAS_THRESHOLD_PCT},
                         passed=passed, note="largest mean bias over the batches")


def verify(source_path, source_format, ms_path, meta, precision="fp32", n=8, images=None,
           input_layout="NHWC", seed=0, official=True, benchmark=None):
    """Compare source and `.ms` outputs; returns a VerifyReport (the caller decides to fail).
    official: also compare our engine with the official runtime (`benchmark`, found by discovery or
    the explicit path `benchmark`) on the same inputs."""
    import runtime
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(precision)
    engine = runtime.load(ms_path, engine="ms-engine")
    spec = engine.inputs()[0]
    try:
        batches, desc, image = model_inputs(spec.shape, meta, n, images, input_layout, source_path, seed)
    except ConversionError as e:
        raise e.locate(output=ms_path)
    x = np.concatenate(batches)
    source = SOURCE_RUNNERS[source_format](source_path)
    try:
        a = np.asarray(run_batched(source, x), np.float64)
    except ToolkitError as e:
        raise ConversionError(f"{source_path}: the source model cannot run on input "
                              f"{list(batches[0].shape)}: {e}") from None
    feed = to_ms_layout(x, image, input_layout)
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
    check = None
    if official:
        feeds = [to_ms_layout(batch, image, input_layout) for batch in batches]
        try:
            check = official_check(ms_path, engine, feeds, b, benchmark)
        except benchmark_cli.OfficialToolError as e:      # it ran and failed: the .ms is at fault
            raise ConversionError("--verify's check against the official runtime: "
                                  + str(e).replace(f"{e.model}: ", "", 1)) from None
        if check.passed is False:
            if check.status == "outputs":
                problems.append(f"official runtime differs from our engine: max abs diff "
                                f"{check.max_abs_diff:.3e} (limit {OFFICIAL_RELATIVE_TOLERANCE:g} x range), "
                                f"top-1 agreement {check.top1_agreement * 100:.1f}%")
            else:
                problems.append(f"official runtime differs from our engine: mean bias "
                                f"{check.mean_bias_pct:.4g}% > {OFFICIAL_BIAS_THRESHOLD_PCT}%")
    return VerifyReport(precision, len(a), desc, diff, rng_, cos, top1, thresholds,
                        passed=not problems, problems=problems, official=check)


def with_model_file(data, out_name, fn, **kwargs):
    """Call fn(ms_path, **kwargs) with serialised `.ms` bytes in a temporary file of their own, before
    they are written to their final place."""
    with tempfile.TemporaryDirectory(prefix="convert-verify-") as d:
        path = os.path.join(d, os.path.basename(out_name) or "model.ms")
        if not path.endswith(".ms"):
            path += ".ms"
        with open(path, "wb") as f:
            f.write(data)
        return fn(path, **kwargs)


def verify_bytes(data, out_name, **kwargs):
    """Verify serialised `.ms` bytes before they are written to their final place."""
    return with_model_file(data, out_name, lambda path, **kw: verify(ms_path=path, **kw), **kwargs)
