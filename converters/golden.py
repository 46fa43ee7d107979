"""`toolkit convert ... --golden DIR`: the files to check the converted `.ms` on the board.

For each verification input (the same inputs `--verify` uses, real images with `--images`), DIR gets
`sampleK_input0.bin` (raw, in the `.ms` input layout and dtype, for `benchmark --inDataFile`) and
`sampleK.out` (the calibration file, official text format, for `benchmark --benchmarkDataFile`),
computed by the SOURCE model: the reference is the framework the model came from, not our engine.
Tensor names are the `.ms` output names in order, as the official tool requires. `README.txt` and
`run_benchmark.sh` give the exact `benchmark` line per sample.

The accuracy threshold written into those lines is the official metric (mean relative error, percent)
that the project's engine reaches on the same `.ms` and inputs, doubled, and at least the tool's
default 0.5%: fp32 files pass at the default, fp16 / int8-weight files get the headroom their
rounding needs, and a board that computes something else still fails.
"""
import math
import os
import shlex
from dataclasses import dataclass, field
from typing import List

import numpy as np

from runtime.atomic import atomic_write_text
from runtime.engines.batching import run_batched
from runtime.errors import ToolkitError
from runtime.official import golden_data

from .errors import ConversionError

DEFAULT_THRESHOLD_PCT = 0.5          # benchmark's own default --accuracyThreshold
HEADROOM = 2.0
MAX_SAMPLES = 32
DEFAULT_SAMPLES = 8                  # as `--verify` without a number


@dataclass
class GoldenData:
    """What `--golden` computed, before anything is written."""
    samples: List[List[np.ndarray]]                  # per sample: the .ms inputs, .ms layout and dtype
    references: List[List[tuple]]                    # per sample: (.ms output name, source output)
    ours_bias_pct: float                             # the official metric, our engine vs the source
    threshold_pct: float
    inputs: str                                      # "random" or the image folder
    capped_from: int = 0                             # >0: asked for this many, wrote MAX_SAMPLES
    files: List[str] = field(default_factory=list)


def threshold_for(bias_pct):
    """Twice the measured bias (rounded up to 2 significant digits), at least the default 0.5%."""
    want = HEADROOM * float(bias_pct)
    if not math.isfinite(want):
        raise ConversionError(f"our engine's mean bias against the source is {bias_pct}; no sensible "
                              "accuracy threshold can be written")
    if want <= DEFAULT_THRESHOLD_PCT:
        return DEFAULT_THRESHOLD_PCT
    digits = 1 - int(math.floor(math.log10(want)))
    return math.ceil(want * 10 ** digits) / 10 ** digits


def compute(ms_path, source_path, source_format, meta, n, images, input_layout, seed=0) -> GoldenData:
    """Run the source on the verification inputs; pair its outputs with the `.ms` output names."""
    import runtime
    from .verify import SOURCE_RUNNERS, model_inputs, to_ms_layout
    engine = runtime.load(ms_path, engine="ms-engine")
    specs, outs = engine.inputs(), engine.outputs()
    if len(specs) != 1:
        raise ConversionError(f"--golden supports models with one input; this one takes {len(specs)}")
    capped = n if n > MAX_SAMPLES else 0
    n = min(n, MAX_SAMPLES)
    batches, desc, image = model_inputs(specs[0].shape, meta, n, images, input_layout, source_path, seed)
    source = SOURCE_RUNNERS[source_format](source_path)
    src_outs = source.outputs()
    if len(src_outs) != len(outs):
        raise ConversionError(f"the source has {len(src_outs)} output(s), the .ms {len(outs)}; the "
                              "calibration file needs one reference per .ms output")
    dtype = np.dtype(specs[0].dtype or "float32")
    samples, refs, biases = [], [], []
    for batch in batches:
        feed = to_ms_layout(batch, image, input_layout).astype(dtype, copy=False)
        pairs = []
        for so, mo in zip(src_outs, outs):
            try:
                ref = np.asarray(run_batched(source, batch, output=so.name), np.float32)
            except ToolkitError as e:
                raise ConversionError(f"{source_path}: the source model cannot run on input "
                                      f"{list(batch.shape)}: {e}") from None
            pairs.append((mo.name, ref))
        ours = engine.run([feed])
        per = []
        for name, ref in pairs:
            got = np.asarray(ours[name], np.float32)
            if got.size != ref.size:
                raise ConversionError(f".ms output {name!r} has {got.size} values, the source's "
                                      f"{ref.size}")
            per.append(golden_data.mean_bias(got.ravel(), ref.ravel()))
        biases.append(float(np.mean(per)) * 100)
        samples.append([feed])
        refs.append([(name, ref.reshape(np.asarray(ours[name]).shape)) for name, ref in pairs])
    worst = max(biases) if biases else 0.0
    return GoldenData(samples, refs, worst, threshold_for(worst), desc, capped)


def board_command(model_rel, inputs_rel, calib_rel, threshold_pct):
    return ("benchmark " + " ".join(shlex.quote(a) for a in (
        f"--modelFile={model_rel}", "--inDataFile=" + ",".join(inputs_rel),
        f"--benchmarkDataFile={calib_rel}", f"--accuracyThreshold={threshold_pct:g}")))


def write(folder, golden: GoldenData, ms_path, precision) -> List[str]:
    """Write the files of `golden` into `folder`; returns the benchmark command lines (run in folder)."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    model_rel = os.path.relpath(os.path.abspath(ms_path), os.path.abspath(folder))
    commands, written = [], []
    for k, (inputs, refs) in enumerate(zip(golden.samples, golden.references)):
        bins = golden_data.write_input_bins(inputs, folder, stem=f"sample{k}_input")
        calib = golden_data.write_calibration(os.path.join(folder, f"sample{k}.out"), refs)
        written += bins + [calib]
        commands.append(board_command(model_rel, [os.path.basename(b) for b in bins],
                                      os.path.basename(calib), golden.threshold_pct))
    capped = (f"\n(--verify asked for {golden.capped_from} inputs; the first {MAX_SAMPLES} were "
              "written.)\n" if golden.capped_from else "")
    readme = f"""Golden data for {os.path.basename(ms_path)} ({precision}), for the official MindSpore Lite benchmark.

Inputs: {len(golden.samples)} {golden.inputs} sample(s), in the .ms input layout and dtype
(sampleK_input0.bin, raw). References: sampleK.out, benchmark's calibration format, computed by the
SOURCE model; tensor names are the .ms output names in order.{capped}
Accuracy threshold {golden.threshold_pct:g}% (benchmark's mean bias, percent): twice the
{golden.ours_bias_pct:.4g}% the project's .ms engine reaches on the same inputs, at least 0.5%.

On the board: copy {os.path.basename(ms_path)} and this folder keeping their relative place
(--modelFile below is relative to this folder), cd into this folder, and run each line (or
`sh run_benchmark.sh`, which stops at the first failure); every run must end with
"Run Benchmark ... Success.":

""" + "\n".join(commands) + "\n"
    script = ("#!/bin/sh\n# Run from this folder; BENCHMARK=path/to/benchmark to choose the program.\n"
              "set -e\nBENCHMARK=${BENCHMARK:-benchmark}\n"
              + "".join('"$BENCHMARK"' + c[len("benchmark"):] + "\n" for c in commands))
    for name, text in (("README.txt", readme), ("run_benchmark.sh", script)):
        path = os.path.join(folder, name)
        atomic_write_text(path, text)
        written.append(path)
    os.chmod(os.path.join(folder, "run_benchmark.sh"), 0o755)
    golden.files = written
    return commands
