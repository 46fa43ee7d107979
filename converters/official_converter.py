"""The official `converter_lite` as a conversion backend (`toolkit convert --backend converter_lite`).

Driven through its public command line only (`--fmk --modelFile --outputFile --fp16=on
--inputDataFormat --inputShape --configFile`), so a real release package and the stand-ins built
by `../shared/mslite/build.sh` work the same way. It runs in a temporary folder of its own (it writes
its output there, with mode 0400 as the real tool does; we make our copy of the bytes and the folder
goes), success is its exit status 0 *and* its `CONVERT RESULT SUCCESS:0` line, and every failure is a
ConversionError naming the source and quoting the tool's own error lines. What comes back is the `.ms`
bytes: the pipeline then applies the project's metadata, verification and atomic write to them
exactly as to its own converter's output.

Options the tool cannot honour are listed by `unsupported()` (the CLI turns them into usage errors,
the pipeline into a ConversionError): `--quant-mode` (the 2.0 converter's weight quantization has no
symmetric/asymmetric switch) and weight-size thresholds outside its range 0..65535.
"""
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

from runtime.files import read_regular
from runtime.msformat.model import FORMAT_NAMES, FORMAT_NCHW, FORMAT_NHWC

from .errors import ConversionError

SUCCESS_LINE = "CONVERT RESULT SUCCESS:0"
FMK = {"mindir": "MINDIR", "onnx": "ONNX"}
OUTPUT_STEM = "model"
CONFIG_NAME = "weight_quant.cfg"
DEFAULT_TIMEOUT_S = 1800
MAX_QUANT_THRESHOLD = 65535          # the official range of min_quant_weight_size / _channel
MAX_MODEL_BYTES = 4 << 30            # the .ms reader's own limit
ERROR_LINES = 8
# Lines the official libraries log on every successful MINDIR conversion (see ../shared/mslite/README.md)
HARMLESS = ("IsConvNode prim is nullptr", "numa_adapter", "NUMAAdapter")
ERROR_MARKS = ("ERROR", "FAILED", "Failed", "failed", "error", "what():", "INPUT ILLEGAL",
               "not a valid flag", "can only support")
# The real tool's exit codes are the low byte of a negative lite status code.
EXIT_MEANINGS = {168: "-600, invalid flags", 255: "-1, conversion error"}


@dataclass(frozen=True)
class ToolConversion:
    data: bytes
    command: Tuple[str, ...]
    tool_path: str
    found_by: str
    seconds: float
    log: str = field(repr=False, default="")


def unsupported(options):
    """The ConvertOptions converter_lite cannot honour, as `--option: why` strings (empty: none)."""
    problems = []
    if options.quant == "weight" and options.symmetric is not None:
        problems.append("--quant-mode: the official converter's weight quantization has no "
                        "symmetric/asymmetric choice (quant_type=WEIGHT_QUANT picks its own)")
    if options.quant == "weight":
        for flag, value in (("--min-quant-weight-size", options.min_quant_weight_size),
                            ("--min-quant-weight-channel", options.min_quant_weight_channel)):
            if not 0 <= int(value) <= MAX_QUANT_THRESHOLD:
                problems.append(f"{flag} {value}: the official converter takes 0..{MAX_QUANT_THRESHOLD}")
    return problems


def weight_quant_config(options) -> str:
    """The `--configFile` text for `--quant weight` (official keys, [common_quant_param])."""
    return ("[common_quant_param]\n"
            "quant_type=WEIGHT_QUANT\n"
            "bit_num=8\n"
            f"min_quant_weight_size={int(options.min_quant_weight_size)}\n"
            f"min_quant_weight_channel={int(options.min_quant_weight_channel)}\n")


def _source_input_name(source, fmt):
    """The source model's (single) input name, for `--inputShape=name:dims` when none was given."""
    from .frontends import load_source
    graph = load_source(source)
    if len(graph.inputs) != 1:
        raise ConversionError(f"--input-shape without a name needs a model with one input; this one "
                              f"has {len(graph.inputs)} ({', '.join(graph.inputs)}): write NAME:DIMS",
                              path=source)
    return graph.inputs[0]


def command_line(tool_path, source, fmt, options, work):
    """The converter_lite argument list (and the config text, or None) for `options`."""
    args = [tool_path, f"--fmk={FMK[fmt]}", f"--modelFile={os.path.abspath(source)}",
            f"--outputFile={os.path.join(work, OUTPUT_STEM)}",
            f"--inputDataFormat={options.input_format}"]
    if options.fp16:
        args.append("--fp16=on")
    if options.input_shape:
        name = options.input_name or _source_input_name(source, fmt)
        args.append(f"--inputShape={name}:{','.join(str(int(d)) for d in options.input_shape)}")
    config = None
    if options.quant == "weight":
        config = weight_quant_config(options)
        args.append(f"--configFile={os.path.join(work, CONFIG_NAME)}")
    return args, config


def _exit_text(rc):
    if rc < 0:
        try:
            return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"was killed by signal {-rc}"
    meaning = EXIT_MEANINGS.get(rc)
    return f"exited {rc}" + (f" ({meaning})" if meaning else "")


def error_lines(output):
    """The tool's own error lines (the last ERROR_LINES of them), or its last lines if none is marked."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()
             and not any(h in ln for h in HARMLESS)]
    marked = [ln for ln in lines if any(m in ln for m in ERROR_MARKS)]
    return (marked or lines)[-ERROR_LINES:]


HINTS = {
    "can only support the maximum mind ir version":
        "this converter_lite is older than the MindSpore that wrote the MINDIR; export ONNX "
        "(`toolkit export --format onnx`) and convert that, or use --backend ours",
}


def _fail(source, problem, output="", command=()):
    quoted = " | ".join(error_lines(output))
    cmd = " ".join(command)
    hints = [h for k, h in HINTS.items() if k in output]
    return ConversionError(f"official converter_lite {problem}" + (f": {quoted}" if quoted else "")
                           + "".join(f" (hint: {h})" for h in hints)
                           + (f" [command: {cmd}]" if cmd else ""), path=source, stage="converter_lite")


def run_converter(tool, source, fmt, options, timeout=DEFAULT_TIMEOUT_S) -> ToolConversion:
    """Convert `source` (format `fmt`, "mindir" or "onnx") with the located `tool`; the `.ms` bytes."""
    if fmt not in FMK:
        raise ConversionError(f"converter_lite cannot read {fmt!r} here; it takes "
                              + ", ".join(FMK), path=source)
    problems = unsupported(options)
    if problems:
        raise ConversionError("options converter_lite cannot honour: " + "; ".join(problems),
                              path=source)
    with tempfile.TemporaryDirectory(prefix="converter_lite-") as work:
        args, config = command_line(tool.path, source, fmt, options, work)
        if config is not None:
            with open(os.path.join(work, CONFIG_NAME), "w") as f:
                f.write(config)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(args, cwd=work, capture_output=True, text=True, errors="replace",
                                  env=tool.env(), timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, str) else ""
            raise _fail(source, f"did not finish within {timeout} s", out, args) from None
        except OSError as e:
            raise _fail(source, f"could not start ({tool.path}): {e}") from None
        seconds = time.perf_counter() - t0
        both = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise _fail(source, _exit_text(proc.returncode), both, args)
        if SUCCESS_LINE not in proc.stdout:
            raise _fail(source, f"exited 0 without its '{SUCCESS_LINE}' line", both, args)
        out_path = os.path.join(work, OUTPUT_STEM + ".ms")
        if not os.path.isfile(out_path):
            raise _fail(source, f"reported success but wrote no {OUTPUT_STEM}.ms", both, args)
        # the tool writes 0400 (owner read-only): readable by us, but make the temporary ours to
        # remove on any file system, and never carry its mode over (we write the final file ourselves)
        os.chmod(out_path, 0o600)
        data = read_regular(out_path, MAX_MODEL_BYTES,
                            lambda path, problem: _fail(source, f"output {path}: {problem}"),
                            what="converter_lite output")
    return ToolConversion(bytes(data), tuple(args), tool.path, tool.found_by, seconds, both)


def check_input_layout(model, options, source):
    """The tool's `.ms` input must have the layout asked for (`--inputDataFormat`); say so if not."""
    t = model.tensors[model.inputs[0]]
    if len(t.dims) != 4:
        return
    want = FORMAT_NHWC if options.input_format == "NHWC" else FORMAT_NCHW
    if t.format != want:
        raise ConversionError(f"converter_lite wrote input {t.name!r} {list(t.dims)} as "
                              f"{FORMAT_NAMES.get(t.format, t.format)}, not the "
                              f"{options.input_format} asked for with --inputDataFormat",
                              path=source, stage="converter_lite")


def located(explicit: Optional[str]):
    """The converter, found by discovery (explicit path, MSLITE_CONVERTER, MSLITE_HOME, PATH)."""
    from runtime.official import discovery
    return discovery.locate(discovery.CONVERTER, explicit)
