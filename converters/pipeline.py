"""`convert()`: source file -> IR -> passes -> MsModel -> (fp16 | int8 weights) -> verify -> write.

Two backends make the `.ms` bytes, chosen in one place (`BACKENDS`, by `ConvertOptions.backend`):
"ours" (the steps above, pure Python) and "converter_lite" (the official program, found by
runtime.official.discovery, driven by converters.official_converter). Everything after the bytes
exist (metadata, `--verify` with its official-runtime check, `--golden`, the atomic write of model
and metadata as one unit) is the same code for both.

Nothing is written unless everything succeeded (including verification when asked), and then the
`.ms` and its own metadata sidecar (`OUT.ms.json`, bound to the file by its sha256) are replaced as
one unit by runtime.metadata.save_model.

Every failure is a ToolkitError naming the source file: each step runs inside `_stage`, which fills
the source (and, for serialisation and verification, the output) into a ConversionError raised
without them, and turns any other exception escaping a front end, pass or the lowering (a bug)
into a ConversionError that names the file and the step instead of a library traceback.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

from contextlib import contextmanager

import numpy as np

from runtime.errors import MetadataError, ModelFormatError, ToolkitError
from runtime.atomic import atomic_write_bytes
from runtime.metadata import ModelMeta, check_classes, find_meta, resize_for, save_model, sidecar_path

from .errors import ConversionError, VerificationFailed
from .frontends import load_source
from .lower import lower
from .passes import run_pipeline
from .calibrate import METHODS as CALIB_METHODS
from .quantize import DEFAULT_MIN_CHANNELS, DEFAULT_MIN_SIZE, quantize_weights, weights_to_fp16

log = logging.getLogger(__name__)

# --verify feeds random or real batches of the model's declared input shape; a model declaring a
# huge batch (2^30) would make that an allocation of terabytes. Verification refuses beyond this.
MAX_VERIFY_INPUT_ELEMENTS = 1 << 24          # 64 MiB of float32 per verification batch


@dataclass
class ConvertOptions:
    fp16: bool = False
    quant: Optional[str] = None               # None, "weight" (int8 weights) or "full" (int8 activations)
    symmetric: Optional[bool] = None          # weight quantization: None = the backend's default
                                              # (ours: symmetric, zero point 0); False = asymmetric
    min_quant_weight_size: int = DEFAULT_MIN_SIZE
    min_quant_weight_channel: int = DEFAULT_MIN_CHANNELS
    input_shape: Optional[Tuple[int, ...]] = None    # source layout (NCHW for image models)
    input_name: Optional[str] = None          # checked against the model's input when given
    input_format: str = "NHWC"                # layout of the .ms input
    verify: int = 0                           # number of verification inputs (0: no verification)
    images: Optional[str] = None              # folder of verification images
    backend: str = "ours"                     # one of BACKENDS
    converter: Optional[str] = None           # explicit converter_lite path (else discovery)
    benchmark: Optional[str] = None           # explicit benchmark path for --verify's official check
    official_check: bool = True               # --verify also compares with the official runtime
    golden: Optional[str] = None              # folder for the board's benchmark files
    # --quant full (converters/full_quant.py): calibration like converter_lite's [full_quant_param]
    calib: Optional[str] = None               # image folder (ImageFolder or flat) to calibrate on
    calib_count: int = 100                    # calibration images used (spread over every class)
    calib_method: str = "minmax"              # activation ranges: "minmax" or "percentile"
    calib_percentile: float = 99.99           # "percentile": the clipping percentile of each tail
    per_channel: bool = True                  # weights: one scale per output channel (else per tensor)
    bias_correction: bool = True              # fold the mean quantization error of each layer into its bias
    skip_quant: Tuple[str, ...] = ()          # node names that stay float
    # --verify gates (None: the precision's default threshold)
    min_agreement: Optional[float] = None     # top-1 agreement with the source, 0..1
    min_cosine: Optional[float] = None        # mean cosine similarity of the outputs with the source
    progress: Optional[Callable[[int, int], None]] = field(default=None, repr=False)  # calibration (done, total)

    @property
    def precision(self):
        return {"weight": "int8", "full": "int8-full"}.get(self.quant) or ("fp16" if self.fp16 else "fp32")


@dataclass
class ConvertResult:
    source: str
    output: str
    sidecar: str
    sidecar_origin: str                       # "copied from PATH" or "generated"
    precision: str
    seconds: dict = field(default_factory=dict)
    op_counts: dict = field(default_factory=dict)
    file_bytes: int = 0
    parameters: int = 0
    quantized_tensors: int = 0
    verify: Optional[object] = None
    backend: str = "ours"
    tool_command: Optional[Tuple[str, ...]] = None    # converter_lite's command line, when it was used
    golden: Optional[object] = None                   # converters.golden.GoldenData
    golden_commands: Tuple[str, ...] = ()
    full_quant: Optional[object] = None               # converters.full_quant.FullQuantReport


def _check_options(o):
    if o.backend not in BACKENDS:
        raise ConversionError(f"backend {o.backend!r}: use one of {', '.join(BACKENDS)}")
    if o.quant not in (None, "weight", "full"):
        raise ConversionError(f"quantization {o.quant!r}: use 'weight' or 'full'")
    if o.quant and o.fp16:
        raise ConversionError(f"--fp16 and --quant {o.quant} are exclusive")
    if o.quant == "full" and not o.calib:
        raise ConversionError("--quant full needs calibration images: --calib DIR")
    if o.quant != "full" and (o.calib or o.skip_quant):
        raise ConversionError("--calib and --skip-quant belong to --quant full")
    if o.calib_method not in CALIB_METHODS:
        raise ConversionError(f"calibration method {o.calib_method!r}: use one of {', '.join(CALIB_METHODS)}")
    if not 50.0 < o.calib_percentile <= 100.0:
        raise ConversionError(f"calibration percentile {o.calib_percentile}: use a value in (50, 100]")
    if o.calib_count < 1:
        raise ConversionError(f"calibration image count {o.calib_count}: use at least 1")
    if o.input_format not in ("NHWC", "NCHW"):
        raise ConversionError(f"input format {o.input_format!r}: use NHWC or NCHW")


def _source_meta(source):
    """(the source model's metadata or None, where it came from) via runtime.metadata.find_meta."""
    meta, where = find_meta(source)
    if meta is not None:
        return meta, f"copied from {where}, with the .ms input's layout and name"
    return None, "generated (the source has no metadata; class names are unknown)"


def _meta_for_output(meta, model, options, source="<source model>", output="<output>"):
    """The metadata of the `.ms`: the source's, with the input layout/size of the converted model."""
    t = model.tensors[model.inputs[0]]
    dims = tuple(t.dims)
    hw = ((dims[1], dims[2]) if options.input_format == "NHWC" else (dims[2], dims[3])) \
        if len(dims) == 4 else (None, None)
    generated = meta is None
    if generated:       # invent image metadata only for what is plainly an image batch (N, 3, S, S)
        channels = (dims[3] if options.input_format == "NHWC" else dims[1]) if len(dims) == 4 else None
        if channels != 3 or hw[0] != hw[1]:
            return None
    meta = meta or ModelMeta()
    out_dims = tuple(model.tensors[model.outputs[0]].dims)
    if meta.class_names and not out_dims:
        raise MetadataError(f"the metadata names {len(meta.class_names)} classes but the model "
                            f"outputs {list(out_dims)}")
    check_classes(meta, out_dims[-1] if out_dims else None, output, f"copied from {source}")
    size = hw[0] if len(dims) == 4 and hw[0] == hw[1] else meta.image_size
    changes = {"image_size": size, "layout": options.input_format, "input_name": t.name}
    if size != meta.image_size:
        changes["resize"] = resize_for(size)
    try:
        return meta.replace(**changes)
    except MetadataError as e:
        if generated:       # nothing to carry over, and the input is no image batch metadata describes
            log.debug("%s: no metadata written (%s)", output, e)
            return None
        raise ConversionError(f"metadata for the converted model is invalid: {e}") from None


@contextmanager
def _stage(name, source, output=None):
    """Run one conversion step; every error leaving it names the source file (and the step)."""
    try:
        yield
    except ConversionError as e:
        e.stage = e.stage or name
        raise e.locate(path=source, output=output)
    except ModelFormatError as e:
        if e.path == "<model to write>":         # the .ms writer's check of the model it was given
            raise ConversionError(f"the converted model is invalid (a converter bug, please report "
                                  f"it): {e.problem}", path=source, output=output,
                                  element=e.element, stage=name) from None
        raise
    except ToolkitError:
        raise
    except OSError as e:      # the file system said no (permissions, disk full): not a bug
        raise ConversionError(f"{name}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else ""),
                              path=source, output=output, stage=name) from None
    except MemoryError:
        raise ConversionError(f"{name} ran out of memory; the model declares tensors too large to "
                              "convert here", path=source, output=output, stage=name) from None
    except Exception as e:  # a library error escaping the converter is a bug: say so, with context
        raise ConversionError(f"{name} failed unexpectedly (a converter bug, please report it): "
                              f"{type(e).__name__}: {e}", path=source, output=output,
                              stage=name) from e


def _check_verifiable(model, source, output):
    dims = tuple(model.tensors[model.inputs[0]].dims)
    count = 1
    for d in dims:
        count *= int(d)
    if count > MAX_VERIFY_INPUT_ELEMENTS:
        raise ConversionError(f"--verify: the model input {list(dims)} holds {count} elements per "
                              f"batch, more than the {MAX_VERIFY_INPUT_ELEMENTS} verification "
                              "allows; give --input-shape with a smaller batch", path=source,
                              output=output, element=f"input {model.tensors[model.inputs[0]].name!r}")


@dataclass
class _Built:
    """What a backend made: the `.ms` bytes and their model, before metadata, checks and writing."""
    data: bytes
    model: object                  # runtime.msformat.model.MsModel
    source_format: str
    parameters: int
    quantized: int
    tool_command: Optional[Tuple[str, ...]] = None
    float_data: Optional[bytes] = None          # --quant full: the float .ms it was made from
    full_quant: Optional[object] = None         # --quant full: converters.full_quant.FullQuantReport


def _build_ours(source, output, options, seconds):
    from runtime.msformat.writer import model_to_bytes
    t = time.perf_counter()
    with _stage("front end", source):
        graph = load_source(source)
    seconds["parse"] = time.perf_counter() - t
    t = time.perf_counter()
    with _stage("passes", source):
        run_pipeline(graph, options)
    seconds["passes"] = time.perf_counter() - t
    t = time.perf_counter()
    with _stage("lowering", source):
        model, weights = lower(graph)
        stored = {t.name for t in model.tensors if t.is_const}
        params = sum(int(a.size) for name, a in graph.consts.items()
                     if a.dtype.kind == "f" and name in stored)
    quantized = 0
    float_data = full = None
    if options.quant == "full":
        float_data = model_to_bytes(model)
        model, full, seconds["calibrate"] = _full_quant(model, source, options)
        quantized = len(full.int8_nodes)
    with _stage("weight compression", source):
        if options.fp16:
            quantized = weights_to_fp16(model, weights)
        elif options.quant == "weight":
            quantized = quantize_weights(model, weights, options.symmetric is not False,
                                         options.min_quant_weight_size,
                                         options.min_quant_weight_channel).quantized
    with _stage("serialisation", source, output):
        data = model_to_bytes(model)
    seconds["lower_and_serialize"] = time.perf_counter() - t
    return _Built(data, model, graph.source_format, params, quantized, float_data=float_data,
                  full_quant=full)


def _full_quant(model, source, options):
    """(full-integer model, FullQuantReport, calibration seconds): calibrate the float model on
    options.calib, preprocessed by the source's metadata, then quantize (converters.full_quant)."""
    from .calibrate import calibrate, calibration_images
    from .full_quant import candidates, check_skip_names, quantize_full
    with _stage("calibration", source):
        check_skip_names(model, options.skip_quant, source)
        files = calibration_images(options.calib, options.calib_count, source)
        meta, _ = _source_meta(source)
        why = candidates(model, set(options.skip_quant))
        wanted = [i for k, w in why.items() if w is None
                  for i in (model.nodes[k].inputs[0], model.nodes[k].outputs[0])]
        t = time.perf_counter()
        stats = calibrate(model, meta, files, options.input_format, wanted, source, options.progress)
        took = time.perf_counter() - t
    with _stage("full-integer quantization", source):
        quantized, report = quantize_full(model, stats, options, source)
    report.calibration_images, report.method = len(files), options.calib_method
    return quantized, report, took


def _build_converter_lite(source, output, options, seconds):
    from runtime.formats import format_of_path
    from runtime.msformat.model import TYPE_FLOAT16, TYPE_FLOAT32
    from runtime.msformat.reader import read_ms_bytes
    from . import official_converter
    fmt = format_of_path(source)
    fmt = fmt.name if fmt is not None else None
    problems = official_converter.unsupported(options)
    if problems:            # before looking for the tool: these fail with any converter_lite
        raise ConversionError("options converter_lite cannot honour: " + "; ".join(problems),
                              path=source)
    tool = official_converter.located(options.converter)
    with _stage("converter_lite", source, output):
        done = official_converter.run_converter(tool, source, fmt, options)
    seconds["converter_lite"] = done.seconds
    with _stage("reading converter_lite's output", source, output):
        model = read_ms_bytes(done.data, source=f"{output} (converter_lite output)")
        official_converter.check_input_layout(model, options, source)
    consts = [t for t in model.tensors if t.is_const and t.dims]
    params = sum(int(np.prod(t.dims)) for t in consts
                 if t.data_type in (TYPE_FLOAT32, TYPE_FLOAT16) or t.quant_params)
    if options.fp16:
        quantized = sum(1 for t in consts if t.data_type == TYPE_FLOAT16)
    elif options.quant == "weight":
        quantized = sum(1 for t in consts if t.quant_params and t.data_type != TYPE_FLOAT32)
    else:
        quantized = 0
    return _Built(done.data, model, fmt, params, quantized, done.command)


# The one place the backend is chosen.
BACKENDS = {"ours": _build_ours, "converter_lite": _build_converter_lite}


def convert(source, output, options=None):
    options = options or ConvertOptions()
    _check_options(options)
    source, output = os.fspath(source), os.fspath(output)
    if not os.path.isfile(source):
        raise ModelFormatError(source, "no such file")
    if not output.endswith(".ms"):
        raise ConversionError(f"output {output!r} must end in .ms", path=source)
    if os.path.abspath(output) == os.path.abspath(source) or (
            os.path.exists(output) and os.path.samefile(output, source)):
        raise ConversionError(f"{output} is the source file itself; choose another output name",
                              path=source)
    t0 = time.perf_counter()
    seconds = {}
    built = BACKENDS[options.backend](source, output, options, seconds)
    data, model = built.data, built.model
    meta, origin = _source_meta(source)
    with _stage("metadata", source, output):
        meta = _meta_for_output(meta, model, options, source, output)
    report = None
    golden = None
    if options.verify or options.golden:
        _check_verifiable(model, source, output)
    if options.verify:
        from .verify import verify_bytes
        t = time.perf_counter()
        with _stage("verification", source, output):
            report = verify_bytes(data, output, source_path=source, source_format=built.source_format,
                                  meta=meta, precision=options.precision, n=options.verify,
                                  images=options.images, input_layout=options.input_format,
                                  official=options.official_check, benchmark=options.benchmark,
                                  min_agreement=options.min_agreement, min_cosine=options.min_cosine,
                                  float_ms=built.float_data)
        seconds["verify"] = time.perf_counter() - t
        if not report.passed:
            raise VerificationFailed(report, report.problems)
    if options.golden:
        from . import golden as golden_mod
        from .verify import with_model_file
        t = time.perf_counter()
        with _stage("golden data", source, output):
            golden = with_model_file(data, output, golden_mod.compute, source_path=source,
                                     source_format=built.source_format, meta=meta,
                                     n=options.verify or golden_mod.DEFAULT_SAMPLES,
                                     images=options.images, input_layout=options.input_format)
        seconds["golden"] = time.perf_counter() - t
    with _stage("writing", source, output):
        if meta is None:
            side = None
            origin = (f"none: the input {list(model.tensors[model.inputs[0]].dims)} is not an image "
                      "batch (give metadata with `toolkit predict --meta` if it is one)")
            atomic_write_bytes(output, data)
            if os.path.isfile(sidecar_path(output)):      # it described an earlier file of this name
                os.unlink(sidecar_path(output))
        else:
            side = save_model(output, data, meta)
    commands = ()
    if golden is not None:
        from . import golden as golden_mod
        with _stage("writing golden data", source, output):
            commands = tuple(golden_mod.write(options.golden, golden, output, options.precision))
    seconds["total"] = time.perf_counter() - t0
    counts = {}
    for n in model.nodes:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return ConvertResult(source, output, side, origin, options.precision, seconds, counts,
                         len(data), built.parameters, built.quantized, report, options.backend,
                         built.tool_command, golden, commands, built.full_quant)
