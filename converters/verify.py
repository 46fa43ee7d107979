"""Prove a conversion numerically: run the source model and the `.ms` on the same inputs.

The source runs on its own framework through runtime.load (MINDIR on the "mindspore" engine, ONNX on
"onnxruntime"), so the device rule and typed errors are the runtime's; the `.ms` runs on the project's
`.ms` engine. Both go through runtime.engines.batching.run_batched. Thresholds (from the issue):
fp32 -> max |diff| <= 1e-4 x the source output's range; fp16 / int8 weights -> top-1 agreement
>= 99%; full-integer ("int8-full") -> top-1 agreement >= 90% and cosine >= 0.98, measured on both
int8 arithmetics of the engine ("fast", what a user deploys by default, and "exact", the official
kernels'). `min_agreement` / `min_cosine` replace those defaults (and add gates to the other
precisions), so `--verify` can gate CI. Inputs are random images (uniform pixels, normalised with the
model's metadata) or real images from a folder, preprocessed by runtime.preprocess from the same
metadata; an ImageFolder whose class sub-folders are the metadata's class_names also gives the top-1
accuracy of both models. A full-integer report lists the worst layers (converters.compare, between
the float `.ms` written before quantization and the quantized one), where `--skip-quant` starts.

The `.ms` is also checked against the official MindSpore Lite runtime whenever its `benchmark`
program is found (runtime.official.discovery): the same inputs, in the `.ms` input layout, go through
the project's engine and through `benchmark`, and the report gives top-1 agreement and max abs
difference between the two (`--outputDataFile`, which the stand-ins have). A release `benchmark`
lacks that flag: then the project engine's outputs become a calibration file and the report gives the
official tool's own mean bias (`--benchmarkDataFile`), saying which comparison was made. A
full-integer `.ms` is cross-checked on the engine's "exact" arithmetic, which reproduces the official
kernels, and within output quantization steps instead of the float 1e-4 (OFFICIAL_INT8_STEPS). When no
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
from .inputs import image_files, image_labels, model_inputs, to_ms_layout, verification_inputs  # noqa: F401
from .registry import registrar

FP32_RELATIVE_TOLERANCE = 1e-4
MIN_TOP1_AGREEMENT = 0.99
# Our engine against the official runtime, on the same .ms: both compute in float32 from the same
# stored weights, so the difference is summation order only.
OFFICIAL_RELATIVE_TOLERANCE = 1e-4            # max |ours - official| <= this x our output range
OFFICIAL_BIAS_THRESHOLD_PCT = 0.5             # benchmark's default --accuracyThreshold (percent)
OFFICIAL_WHAT = "--verify's check against the official MindSpore Lite runtime"
FULL_QUANT = "int8-full"
PRECISIONS = ("fp32", "fp16", "int8", FULL_QUANT)
# Full-integer defaults: the bar for a usable PTQ model (a 1-point top-1 drop on real data
# shows as a few points of agreement on random inputs, hence 90%, not 99%).
FULL_MIN_AGREEMENT = 0.90
FULL_MIN_COSINE = 0.98
# Our "exact" int8 arithmetic against the official kernels: both round the same integers, so any
# difference is a few rounding ties; measured in steps of the int8 tensor the output is dequantized from.
OFFICIAL_INT8_STEPS = 3
OFFICIAL_INT8_WITHIN = 0.75                 # share of inputs that must be within the step bound
OFFICIAL_INT8_FALLBACK_RANGE = 1e-2   # output not made by a QuantDTypeCast: this x our output range
WORST_LAYERS = 5
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
            rule = f"; rule: {self.note}" if self.note else ""
            return (f"  official runtime  {verdict}: max abs diff {self.max_abs_diff:.3e}, top-1 agreement "
                    f"{self.top1_agreement * 100:.1f}% vs our engine, {self.samples} batch(es) "
                    f"(benchmark --outputDataFile: {self.tool}){rule}")
        return (f"  official runtime  {verdict}: mean bias {self.mean_bias_pct:.4g}% vs our engine's "
                f"outputs (threshold {self.thresholds.get('accuracy_threshold_pct')}%), "
                f"{self.samples} batch(es) (benchmark --benchmarkDataFile, this benchmark has no "
                f"--outputDataFile so max diff and top-1 cannot be read: {self.tool})")


@dataclass
class VerifyReport:
    precision: str                    # "fp32", "fp16", "int8" (weights) or "int8-full"
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
    # int8-full only: {"fast"|"exact": {"top1_agreement", "cosine_similarity", "max_abs_diff"}}
    modes: dict = field(default_factory=dict)
    # labelled images only: {"labelled", "source", "ms", "ms_exact"} top-1 accuracies; else None
    accuracy: Optional[dict] = None
    worst_layers: Optional[list] = None          # int8-full with the float .ms: compare's Diffs as dicts
    notes: List[str] = field(default_factory=list)

    def lines(self):
        official = [self.official.line()] if self.official is not None else []
        modes = [f"  int8 {mode:<12} top-1 agreement {m['top1_agreement'] * 100:.1f}%, cosine "
                 f"{m['cosine_similarity']:.6f}, max abs diff {m['max_abs_diff']:.3e}"
                 + ("  (what the engine runs by default)" if mode == "fast" else "  (the official kernels)")
                 for mode, m in self.modes.items()]
        acc = []
        if self.accuracy is not None:
            a = self.accuracy
            acc = [f"  top-1 accuracy    source {a['source'] * 100:.1f}%, .ms {a['ms'] * 100:.1f}%"
                   + (f" (exact: {a['ms_exact'] * 100:.1f}%)" if a.get("ms_exact") is not None else "")
                   + f" on {a['labelled']} labelled image(s)"]
        worst = []
        if self.worst_layers:
            worst = ["  worst layers      (float .ms vs this one; relative = RMSE / std)"] + [
                f"    {d['name']}: cosine {d['cosine']:.6f}, relative "
                + ("inf" if d["relative_error"] is None else f"{d['relative_error']:.4f}")
                + f", {d['dtype_b']}" for d in self.worst_layers]
        gates = [f"  gates             " + ", ".join(f"{k} {v:.10g}" for k, v in self.thresholds.items())]
        return [f"verify ({self.precision}, {self.samples} {self.inputs} input(s)):",
                f"  max abs diff      {self.max_abs_diff:.3e}  (output range {self.output_range:.3g}, "
                f"relative {self.max_abs_diff / max(self.output_range, 1e-30):.2e})",
                f"  cosine similarity {self.cosine_similarity:.6f}",
                f"  top-1 agreement   {self.top1_agreement * 100:.1f}%", *modes, *acc, *worst, *official,
                *gates, *[f"  note              {n}" for n in self.notes],
                "  result            " + ("PASS" if self.passed else "FAIL: " + "; ".join(self.problems))]

    def to_dict(self):
        return asdict(self)


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
                   stream=None, limit=None) -> OfficialCheck:
    """Run the `.ms` on the official runtime for each batch in `feeds` (the `.ms` input layout) and
    compare with `ours` (our engine's first output for the same rows, concatenated).
    `limit`: (max abs diff, the rule in words, min top-1 agreement) in place of the float rule
    (1e-4 x our output range, 99% top-1)."""
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
        if limit is None:
            thresholds = {"max_abs_diff_relative_to_range": OFFICIAL_RELATIVE_TOLERANCE,
                          "min_top1_agreement": MIN_TOP1_AGREEMENT}
            bound, min_top1, note = OFFICIAL_RELATIVE_TOLERANCE * max(span, 1e-12), MIN_TOP1_AGREEMENT, ""
        else:
            bound, note, min_top1 = limit
            thresholds = {"max_abs_diff": bound, "min_top1_agreement": min_top1}
        if limit is None:
            within = diff <= bound
        else:
            # int8: the official conv kernels round a few near-ties unlike their own fixed-point
            # rule (README, "Full-integer models"); a deep network can carry one such LSB to the
            # output of an input, so the step bound must hold on OFFICIAL_INT8_WITHIN of the rows
            rows = np.abs(off - ours).reshape(len(off), -1).max(axis=1)
            share = float(np.mean(rows <= bound))
            within = share >= OFFICIAL_INT8_WITHIN
            thresholds["min_share_within"] = OFFICIAL_INT8_WITHIN
            note = f"{note}; {share * 100:.0f}% of the inputs within it (at least {OFFICIAL_INT8_WITHIN:.0%})"
        passed = within and top1 >= min_top1 and bool(np.isfinite(off).all())
        return OfficialCheck("outputs", where, len(feeds), max_abs_diff=diff, top1_agreement=top1,
                             thresholds=thresholds, passed=passed, note=note)
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


def _agreement(a, b):
    """{"max_abs_diff", "cosine_similarity" (mean over rows), "top1_agreement"} of b against a."""
    af, bf = a.reshape(len(a), -1), b.reshape(len(b), -1)
    na, nb = np.linalg.norm(af, axis=1), np.linalg.norm(bf, axis=1)
    both_zero = (na == 0) & (nb == 0)          # two all-zero outputs agree exactly
    cos = float(np.mean(np.where(both_zero, 1.0, np.sum(af * bf, 1) / np.maximum(na * nb, 1e-30))))
    return {"max_abs_diff": float(np.abs(a - b).max()), "cosine_similarity": cos,
            "top1_agreement": float(np.mean(af.argmax(1) == bf.argmax(1)))}


def _gates(precision, min_agreement, min_cosine):
    """The agreement gates of a precision: {"min_top1_agreement", "min_cosine"}, the flags winning."""
    for name, value in (("min_agreement", min_agreement), ("min_cosine", min_cosine)):
        if value is not None and not 0 <= value <= 1:
            raise ConversionError(f"--verify's {name} must be within 0..1, not {value}")
    full = precision == FULL_QUANT
    agreement = min_agreement if min_agreement is not None else (
        FULL_MIN_AGREEMENT if full else MIN_TOP1_AGREEMENT if precision in ("fp16", "int8") else None)
    cosine = min_cosine if min_cosine is not None else (FULL_MIN_COSINE if full else None)
    gates = {}
    if agreement is not None:
        gates["min_top1_agreement"] = agreement
    if cosine is not None:
        gates["min_cosine"] = cosine
    return gates


def _gate_problems(gates, measured, label=""):
    problems = []
    top1, cos = measured["top1_agreement"], measured["cosine_similarity"]
    if "min_top1_agreement" in gates and not top1 >= gates["min_top1_agreement"]:
        problems.append(f"{label}top-1 agreement {top1 * 100:.1f}% < {gates['min_top1_agreement'] * 100:.10g}%")
    if "min_cosine" in gates and not cos >= gates["min_cosine"]:
        problems.append(f"{label}cosine similarity {cos:.6f} < {gates['min_cosine']:.10g}")
    return problems


def int8_output_limit(model, ours):
    """(max abs diff, the rule in words, min top-1) for our "exact" int8 output against the official
    runtime's: OFFICIAL_INT8_STEPS steps of the int8 tensor that the output's QuantDTypeCast
    dequantizes, or a fraction of the output range when a float op makes the output."""
    from runtime.msformat.model import TYPE_INT8, TYPE_UINT8
    out = model.outputs[0]
    producer = next((nd for nd in model.nodes if out in nd.outputs), None)
    if producer is not None and producer.op_type == "QuantDTypeCast" and producer.inputs:
        t = model.tensors[producer.inputs[0]]
        scale = t.quant_params[0].scale if t.quant_params else 0.0
        if t.data_type in (TYPE_INT8, TYPE_UINT8) and np.isfinite(scale) and scale > 0:
            return (OFFICIAL_INT8_STEPS * scale,
                    f"same top-1 on every input and max |diff| <= {OFFICIAL_INT8_STEPS} x {scale:.6g}, the "
                    f"scale of int8 tensor {t.name!r} that the output's QuantDTypeCast dequantizes "
                    "(our engine with int8='exact')", 1.0)
    span = float(ours.max() - ours.min())
    made_by = f"{producer.op_type} {producer.name!r}" if producer is not None else "no node"
    return (OFFICIAL_INT8_FALLBACK_RANGE * max(span, 1e-12),
            f"same top-1 on every input and max |diff| <= {OFFICIAL_INT8_FALLBACK_RANGE:g} x our output "
            f"range {span:.3g} (the output is made by {made_by}, not by a dequantizing QuantDTypeCast; "
            "our engine with int8='exact')", 1.0)


def _accuracy(images, meta, n, batch, outputs):
    """({"labelled", "source", "ms", ...} top-1 accuracies, None) or (None, why not)."""
    labels, why = image_labels(images, image_files(images, n, batch), meta)
    if labels is None:
        return None, f"no top-1 accuracy: {why}"
    rows = len(next(iter(outputs.values())))
    labels = labels[:rows]
    return {"labelled": int(len(labels)), **{k: float(np.mean(v.reshape(rows, -1).argmax(1) == labels))
                                             for k, v in outputs.items()}}, None


def worst_layers(float_ms, ms_path, batches, top=WORST_LAYERS):
    """(the `top` worst layers of ms_path against the float `.ms` bytes, as dicts, None) or
    (None, why there is no per-layer report). `batches`: NCHW-canonical inputs."""
    from .compare import compare_probes, open_probe

    def run(path):
        ref = open_probe(path, per_layer=True)
        return compare_probes(ref, open_probe(ms_path, per_layer=True), batches, per_layer=True)
    try:
        report = with_model_file(float_ms, "float.ms", run)
    except ToolkitError as e:
        return None, f"no per-layer report: {e}"
    return [asdict(d) for d in report.layers[:top]], None


def verify(source_path, source_format, ms_path, meta, precision="fp32", n=8, images=None,
           input_layout="NHWC", seed=0, official=True, benchmark=None, min_agreement=None,
           min_cosine=None, float_ms=None):
    """Compare source and `.ms` outputs; returns a VerifyReport (the caller decides to fail).
    official: also compare our engine with the official runtime (`benchmark`, found by discovery or
    the explicit path `benchmark`) on the same inputs.
    min_agreement / min_cosine: gates in place of the precision's defaults (None: the default).
    float_ms: for "int8-full", the bytes of the float `.ms` before quantization, for the worst layers."""
    import runtime
    if precision not in PRECISIONS:
        raise ValueError(precision)
    full = precision == FULL_QUANT
    gates = _gates(precision, min_agreement, min_cosine)
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
    measured = _agreement(a, b)
    diff, cos, top1 = measured["max_abs_diff"], measured["cosine_similarity"], measured["top1_agreement"]
    rng_ = float(a.max() - a.min())
    problems, notes, modes = [], [], {}
    thresholds = dict(gates)
    if precision == "fp32":
        thresholds["max_abs_diff_relative_to_range"] = FP32_RELATIVE_TOLERANCE
        if not diff <= FP32_RELATIVE_TOLERANCE * max(rng_, 1e-12):
            problems.append(f"max abs diff {diff:.3e} > {FP32_RELATIVE_TOLERANCE:g} x output range "
                            f"{rng_:.3g}")
    outputs = {"source": a, "ms": b}
    exact_engine = c = None
    if full:            # the gates hold wherever the file runs: our default kernels and the official ones
        exact_engine = runtime.load(ms_path, engine="ms-engine", int8="exact")
        c = np.asarray(run_batched(exact_engine, feed), np.float64)
        modes = {"fast": measured, "exact": _agreement(a, c)}
        outputs["ms_exact"] = c
        for mode, m in modes.items():
            problems += _gate_problems(gates, m, f"int8 {mode}: ")
    else:
        problems += _gate_problems(gates, measured)
    for name, out in (("", b), ("'exact' ", c)):
        if out is not None and not np.isfinite(out).all():
            problems.append(f".ms output {name}holds NaN or Inf")
    accuracy = None
    if images:
        accuracy, why = _accuracy(images, meta, n, batches[0].shape[0], outputs)
        if why and full:
            notes.append(why)
    worst = None
    if full:
        if float_ms is None:
            notes.append("no per-layer report: the float .ms before quantization was not given")
        else:
            worst, why = worst_layers(float_ms, ms_path, batches)
            if why:
                notes.append(why)
    check = None
    if official:
        feeds = [to_ms_layout(batch, image, input_layout) for batch in batches]
        limit = int8_output_limit(exact_engine.model, c) if full else None
        try:
            check = official_check(ms_path, exact_engine if full else engine, feeds, c if full else b,
                                   benchmark, limit=limit)
        except benchmark_cli.OfficialToolError as e:      # it ran and failed: the .ms is at fault
            raise ConversionError("--verify's check against the official runtime: "
                                  + str(e).replace(f"{e.model}: ", "", 1)) from None
        if check.passed is False:
            ours = "our engine ('exact' int8)" if full else "our engine"
            if check.status == "outputs":
                bound = (f"{check.thresholds['max_abs_diff']:.3e}" if full
                         else f"{OFFICIAL_RELATIVE_TOLERANCE:g} x range")
                problems.append(f"official runtime differs from {ours}: max abs diff "
                                f"{check.max_abs_diff:.3e} (limit {bound}), "
                                f"top-1 agreement {check.top1_agreement * 100:.1f}%")
            else:
                problems.append(f"official runtime differs from {ours}: mean bias "
                                f"{check.mean_bias_pct:.4g}% > {OFFICIAL_BIAS_THRESHOLD_PCT}%")
    return VerifyReport(precision, len(a), desc, diff, rng_, cos, top1, thresholds,
                        passed=not problems, problems=problems, official=check, modes=modes,
                        accuracy=accuracy, worst_layers=worst, notes=notes)


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
