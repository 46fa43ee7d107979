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
# Full int8 quantization (activations calibrated on images) is not built: the .ms engine does not
# execute int8 activations yet, so a converted file could not be verified. Only "weight" is offered.
@click.option("--quant", type=click.Choice(["weight"]),
              help="weight: 8-bit per-channel weights (small tensors stay float).")
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
def convert(model, output, fp16, quant, quant_mode, min_quant_weight_size,
            min_quant_weight_channel, input_shape, input_format, verify, images, backend,
            converter_path, benchmark_path, golden):
    """Convert a MINDIR or ONNX MODEL to a MindSpore Lite .ms file (plus its metadata, OUT.ms.json)."""
    from converters import ConvertOptions
    from converters import convert as run_convert
    from converters.errors import VerificationFailed

    if fp16 and quant:
        raise click.UsageError("--fp16 and --quant are exclusive")
    if quant != "weight" and (quant_mode or min_quant_weight_size is not None
                              or min_quant_weight_channel is not None):
        raise click.UsageError("--quant-mode / --min-quant-weight-* need --quant weight")
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
        backend=backend, converter=converter_path, benchmark=benchmark_path, golden=golden)
    if backend == "converter_lite":
        from converters.official_converter import unsupported
        problems = unsupported(options)
        if problems:
            raise click.UsageError("--backend converter_lite cannot honour " + "; ".join(problems))
    try:
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
    if result.quantized_tensors:
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
