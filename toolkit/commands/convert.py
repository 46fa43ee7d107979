"""`toolkit convert MODEL -o OUT.ms`: MINDIR or ONNX to MindSpore Lite, with optional verification.

Options are named after converter_lite's where one exists (--fp16, --input-shape ~ --inputShape,
--input-format ~ --inputDataFormat, --quant weight ~ quant_type=WEIGHT_QUANT with
min_quant_weight_size / min_quant_weight_channel). MindSpore is imported only when a MINDIR is read.

`--backend converter_lite` converts with the official converter_lite instead of the project's
converter (found like every official tool: `--converter PATH`, MSLITE_CONVERTER, MSLITE_HOME, PATH);
metadata, `--verify` and `--golden` then apply to its output exactly as to ours. `--verify` also
compares with the official runtime when `benchmark` is found (`--benchmark PATH` to choose it).
"""
import click

from converters.quantize import DEFAULT_MIN_CHANNELS, DEFAULT_MIN_SIZE

MAX_DIM = 1 << 16


class ShapeType(click.ParamType):
    """`1,3,224,224` (or `name:1,3,224,224` as converter_lite writes it): the source input shape."""

    name = "shape"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        name, _, text = value.rpartition(":")
        try:
            dims = tuple(int(v) for v in text.replace("x", ",").split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers, e.g. 1,3,224,224",
                      param, ctx)
        if not 1 <= len(dims) <= 8 or any(not 1 <= d <= MAX_DIM for d in dims):
            self.fail(f"{value!r}: 1 to 8 dimensions, each between 1 and {MAX_DIM}", param, ctx)
        return (name or None, dims)


@click.command("convert")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .ms file (replaced, with its OUT.ms.json metadata, only after a fully "
                   "successful conversion; may share the source's stem: model.mindir -> model.ms).")
@click.option("--fp16", is_flag=True, help="Store weights as float16 (half the size).")
@click.option("--quant", type=click.Choice(["weight", "full"]),
              help="weight: 8-bit per-channel weights (small tensors stay float); full: int8 weights "
                   "and activations calibrated on --calib images (converter_lite's FULL_QUANT).")
@click.option("--calib", type=click.Path(exists=True, file_okay=False),
              help="--quant full: calibration images (ImageFolder or flat), preprocessed by the "
                   "model's metadata.")
@click.option("--calib-count", type=click.IntRange(1), default=100, show_default=True,
              help="--quant full: calibration images used (spread evenly over the sorted folder, so every class contributes).")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile"]), default="minmax",
              show_default=True, help="--quant full: activation ranges from the extremes (minmax, "
                                      "converter_lite's MAX_MIN) or percentiles (robust to outliers).")
@click.option("--percentile", type=click.FloatRange(50, 100, min_open=True), default=99.99,
              show_default=True, help="--calib-method percentile: the percentile kept of each tail.")
@click.option("--per-channel/--per-tensor", default=True, show_default=True,
              help="--quant full: one weight scale per output channel, or one per tensor.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="--quant full: take the int8 weights' mean error on the calibration data out of the bias.")
@click.option("--skip-quant", multiple=True, metavar="NODE",
              help="--quant full: keep node NODE float (repeatable; `toolkit compare --per-layer` "
                   "lists the worst layers).")
@click.option("--quant-mode", type=click.Choice(["symmetric", "asymmetric"]), default=None,
              help="Weight quantization scheme (default symmetric, zero point 0).")
@click.option("--min-quant-weight-size", type=click.IntRange(0), default=None,
              help=f"Weights with fewer elements stay float (default {DEFAULT_MIN_SIZE}).")
@click.option("--min-quant-weight-channel", type=click.IntRange(0), default=None,
              help=f"Weights with fewer output channels stay float (default {DEFAULT_MIN_CHANNELS}).")
@click.option("--input-shape", type=ShapeType(), default=None,
              help="Source input shape, channel-first for image models, e.g. 1,3,224,224.")
@click.option("--input-format", type=click.Choice(["NHWC", "NCHW"]), default="NHWC",
              show_default=True, help="Layout of the .ms input tensor.")
@click.option("--verify", type=click.IntRange(1, 100000), is_flag=False, flag_value=8, default=None,
              help="Run source and .ms on N inputs (default 8) and fail beyond the thresholds.")
@click.option("--min-agreement", type=click.FloatRange(0, 100), default=None,
              help="--verify fails when top-1 agreement with the source is below this percentage.")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), default=None,
              help="--verify fails when the outputs' mean cosine similarity with the source is below this.")
@click.option("--images", type=click.Path(exists=True, file_okay=False),
              help="Verification / golden images (ImageFolder or a folder of images) instead of random ones.")
@click.option("--backend", type=click.Choice(["ours", "converter_lite"]), default="ours",
              show_default=True,
              help="ours: the project's pure-Python converter; converter_lite: the official MindSpore "
                   "Lite converter (found by --converter, MSLITE_CONVERTER, MSLITE_HOME or PATH).")
@click.option("--converter", "converter_path", type=click.Path(dir_okay=False),
              help="Path of the official converter_lite (implies nothing: use with --backend converter_lite).")
@click.option("--benchmark", "benchmark_path", type=click.Path(dir_okay=False),
              help="Path of the official benchmark for --verify's official-runtime check "
                   "(default: MSLITE_BENCHMARK, MSLITE_HOME, PATH).")
@click.option("--golden", type=click.Path(file_okay=False),
              help="Write the board's check into DIR: input .bin files and the source model's outputs as "
                   "benchmark calibration files, with the exact `benchmark` command lines.")
def convert(model, output, fp16, quant, calib, calib_count, calib_method, percentile, per_channel,
            bias_correction, skip_quant, quant_mode, min_quant_weight_size,
            min_quant_weight_channel, input_shape, input_format, verify, min_agreement, min_cosine,
            images, backend, converter_path, benchmark_path, golden):
    """Convert a MINDIR or ONNX MODEL to a MindSpore Lite .ms file (plus its metadata, OUT.ms.json)."""
    from converters import ConvertOptions
    from converters import convert as run_convert
    from converters.errors import VerificationFailed

    if fp16 and quant:
        raise click.UsageError("--fp16 and --quant are exclusive")
    if quant != "weight" and (quant_mode or min_quant_weight_size is not None
                              or min_quant_weight_channel is not None):
        raise click.UsageError("--quant-mode / --min-quant-weight-* need --quant weight")
    click_ctx = click.get_current_context()
    full_only = [f"--{name.replace('_', '-')}" for name in ("calib", "calib_count", "calib_method",
                                                             "percentile", "per_channel",
                                                             "bias_correction", "skip_quant")
                 if click_ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]
    if quant != "full" and full_only:
        raise click.UsageError(f"{', '.join(full_only)} belong to --quant full")
    if quant == "full" and not calib:
        raise click.UsageError("--quant full needs calibration images: --calib DIR")
    if (min_agreement is not None or min_cosine is not None) and not verify:
        raise click.UsageError("--min-agreement / --min-cosine are --verify's thresholds: add --verify")
    if images and not (verify or golden):
        raise click.UsageError("--images is only used by --verify and --golden")
    if converter_path and backend != "converter_lite":
        raise click.UsageError("--converter is the official converter's path: add --backend converter_lite")
    if benchmark_path and not verify:
        raise click.UsageError("--benchmark is used by --verify's official-runtime check: add --verify")
    if not output.endswith(".ms"):
        raise click.UsageError(f"--output {output!r} must end in .ms")
    options = ConvertOptions(
        fp16=fp16, quant=quant, symmetric=None if quant_mode is None else quant_mode == "symmetric",
        min_quant_weight_size=DEFAULT_MIN_SIZE if min_quant_weight_size is None else min_quant_weight_size,
        min_quant_weight_channel=(DEFAULT_MIN_CHANNELS if min_quant_weight_channel is None
                                  else min_quant_weight_channel),
        input_shape=input_shape[1] if input_shape else None,
        input_name=input_shape[0] if input_shape else None, input_format=input_format, verify=verify or 0, images=images,
        backend=backend, converter=converter_path, benchmark=benchmark_path, golden=golden,
        calib=calib, calib_count=calib_count, calib_method=calib_method, calib_percentile=percentile,
        per_channel=per_channel, bias_correction=bias_correction, skip_quant=tuple(skip_quant),
        min_agreement=None if min_agreement is None else min_agreement / 100.0, min_cosine=min_cosine)
    if backend == "converter_lite":
        from converters.official_converter import unsupported
        problems = unsupported(options)
        if problems:
            raise click.UsageError("--backend converter_lite cannot honour " + "; ".join(problems))
    try:
        if quant == "full":
            result = _with_progress(run_convert, model, output, options)
        else:
            result = run_convert(model, output, options)
    except VerificationFailed as e:
        for line in e.report.lines():
            click.echo(line)
        raise click.ClickException(f"{e}; {output} was not written") from None
    ops = ", ".join(f"{k} {v}" for k, v in sorted(result.op_counts.items()))
    by = " by the official converter_lite" if result.backend == "converter_lite" else ""
    click.echo(f"converted {result.source} -> {result.output}{by} ({result.precision}, "
               f"{result.file_bytes / 1e6:.2f} MB, {result.seconds['total']:.2f} s)")
    if result.tool_command:
        click.echo("  command: " + " ".join(result.tool_command))
    click.echo(f"  ops: {ops}")
    if result.full_quant is not None:
        click.echo(f"  calibration: {result.full_quant.calibration_images} image(s) from {calib}, "
                   f"{calib_method}, {result.seconds.get('calibrate', 0):.2f} s")
        for line in result.full_quant.lines():
            click.echo("  " + line)
    elif result.quantized_tensors:
        click.echo(f"  {result.quantized_tensors} weight tensor(s) stored as {result.precision}")
    click.echo(f"  metadata: {result.sidecar} ({result.sidecar_origin})" if result.sidecar
               else f"  metadata: {result.sidecar_origin}")
    if result.verify is not None:
        for line in result.verify.lines():
            click.echo(line)
    if result.golden is not None:
        click.echo(f"  golden data: {golden} ({len(result.golden_commands)} sample(s) computed by the "
                   f"source model, accuracy threshold {result.golden.threshold_pct:g}%); on the board, "
                   f"from that folder:")
        for line in result.golden_commands[:2]:
            click.echo(f"    {line}")
        if len(result.golden_commands) > 2:
            click.echo(f"    ... ({len(result.golden_commands) - 2} more in {golden}/README.txt)")


def _with_progress(run_convert, model, output, options):
    """Convert with a progress bar over the calibration images (hidden with -q)."""
    from toolkit.cli import progress as progress_bar
    state = {}

    def progress(done, total):
        if "bar" not in state:
            state["bar"] = progress_bar(length=total, label="calibrating")
            state["bar"].__enter__()
        state["bar"].update(done - state.get("done", 0))
        state["done"] = done

    options.progress = progress
    try:
        return run_convert(model, output, options)
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
