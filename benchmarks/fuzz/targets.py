"""Fuzz targets: a seed corpus, a structured mutator, and the public API that consumes the result.

Consumers go through public entry points only (runtime.load, runtime.msformat.reader.read_ms, the
`toolkit inspect` command, converters.convert, runtime.images.load_rgb, the dataset scan,
runtime.metadata.ModelMeta.load, runtime.Classifier), so the harness keeps working while internals
move. A consumer runs every step it can: a typed error in one step (say the conversion) does not
stop an independent step (loading the source in onnxruntime); any other exception ends the case.
"""
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import image_mutators, meta_mutators, ms_mutators, onnx_mutators
from .bytes_ops import byte_mutation

MAX_FEED_ELEMENTS = 1 << 22       # the harness itself never builds a bigger zero input
MAX_FEED_DIM = 4096


class Steps:
    """Run named steps; typed errors are remembered and re-raised at the end, others propagate."""

    def __init__(self, stage):
        self.stage = stage
        self.typed = None

    def run(self, name, fn, *args):
        from runtime.errors import ToolkitError
        self.stage(name)
        try:
            return fn(*args)
        except ToolkitError as e:
            if self.typed is None:
                self.typed = (name, e)
            return None

    def finish(self):
        if self.typed is not None:
            self.stage(self.typed[0])
            raise self.typed[1]


def zero_feed(engine):
    """Zeros for every input (dynamic dims -> 1), or None when the model asks for an absurd input."""
    feed = []
    for spec in engine.inputs():
        shape = [1 if d is None else d for d in spec.shape]
        if any(d < 0 or d > MAX_FEED_DIM for d in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_FEED_ELEMENTS:
            return None
        feed.append(np.zeros(shape, np.dtype(spec.dtype)))
    return feed


def load_and_run(path):
    import runtime
    engine = runtime.load(path, threads=1)
    feed = zero_feed(engine)
    if feed is not None:
        engine.run(feed)
    return engine


def _inspect(path):
    """The `toolkit inspect --json` command's code path, output discarded."""
    from toolkit.commands.inspect import inspect
    inspect.main(args=[path, "--json"], prog_name="toolkit inspect", standalone_mode=False)


def consume_ms(path, case_dir, stage, variant):
    from runtime.msformat.reader import read_ms
    steps = Steps(stage)
    model = steps.run("read", read_ms, path)
    if model is not None:
        steps.run("inspect", _inspect, path)
        steps.run("load+run", load_and_run, path)
    steps.finish()


CONVERT_VARIANTS = ("fp32", "fp16", "fp32 NCHW input", "int8 weights", "fp32 + verify 1",
                    "int8 weights asymmetric")


def _options(variant):
    from converters import ConvertOptions
    return [ConvertOptions(), ConvertOptions(fp16=True), ConvertOptions(input_format="NCHW"),
            ConvertOptions(quant="weight", min_quant_weight_size=0, min_quant_weight_channel=0),
            ConvertOptions(verify=1), ConvertOptions(quant="weight", symmetric=False,
                                                     min_quant_weight_size=0, min_quant_weight_channel=0)][variant]


def _convert_then_run(path, case_dir, steps, with_source_engine, variant):
    from converters import convert
    out = os.path.join(case_dir, "converted.ms")
    opts = _options(variant % len(CONVERT_VARIANTS))
    if with_source_engine:
        steps.run("load+run source", load_and_run, path)
    result = steps.run("convert", convert, path, out, opts)
    if result is not None:
        steps.run("load+run converted", load_and_run, out)
    steps.finish()


def consume_onnx(path, case_dir, stage, variant):
    _convert_then_run(path, case_dir, Steps(stage), True, variant)


def consume_mindir(path, case_dir, stage, variant):
    _convert_then_run(path, case_dir, Steps(stage), False, variant)


def consume_image(path, case_dir, stage, variant):
    import runtime.images
    from toolkit.data.folder import scan_dataset
    steps = Steps(stage)
    with open(path, "rb") as f:
        data = f.read()
    steps.run("load_rgb path", runtime.images.load_rgb, path)
    steps.run("load_rgb bytes", runtime.images.load_rgb, data)
    root = os.path.join(case_dir, "dataset")
    os.makedirs(os.path.join(root, "a"))
    os.makedirs(os.path.join(root, "b"))
    os.link(path, os.path.join(root, "a", "img" + os.path.splitext(path)[1]))
    import cv2
    cv2.imwrite(os.path.join(root, "b", "good.png"), np.full((8, 8, 3), 100, np.uint8))
    steps.run("scan_dataset", scan_dataset, root, 0.0, 0, 1)
    steps.finish()


def consume_meta(path, case_dir, stage, variant, model_path):
    import runtime
    from runtime.metadata import ModelMeta
    steps = Steps(stage)
    meta = steps.run("ModelMeta.load", ModelMeta.load, path)
    if meta is not None:
        clf = steps.run("Classifier", runtime.Classifier, model_path, "auto", "cpu", 1, 5, path)
        if clf is not None:
            picture = np.tile(np.arange(24, dtype=np.uint8)[:, None, None] * 10, (1, 20, 3))
            steps.run("predict", clf.predict, picture, "RGB")
    steps.finish()


@dataclass
class Target:
    name: str
    description: str
    suffixes: tuple
    mutator: Callable
    consumer: Callable
    corpus: object = None

    def mutate(self, rng, corpus):
        names = corpus.names(self.suffixes)
        if not names:
            raise RuntimeError(f"the {self.name} corpus is empty")
        name = rng.choice(names)
        ops = [f"seed {name}"]
        data = self.mutator(rng, corpus.seeds[name], ops)
        suffix = os.path.splitext(name)[1]
        return suffix, data, ops

    def variant(self, rng):
        """How the consumer runs this case (converter options), drawn from the case's rng."""
        if self.name in ("onnx", "mindir"):
            k = rng.randrange(len(CONVERT_VARIANTS))
            return k, f"convert {CONVERT_VARIANTS[k]}"
        return 0, None

    def consume(self, path, case_dir, stage, variant=0):
        if self.name == "meta":
            return consume_meta(path, case_dir, stage, variant, self.corpus.path("model.ms"))
        return self.consumer(path, case_dir, stage, variant)


def mind_ir_pb2():
    """MindSpore's MindIR protobuf module, through the project's one loader (no MindSpore start)."""
    from runtime.mindir_info import mind_ir_pb2 as loader
    return loader()


def _mutate_mindir(rng, data, ops):
    from . import proto_mutators
    if rng.random() < 0.15:
        return byte_mutation(rng, data, ops)
    model = mind_ir_pb2().ModelProto()
    model.ParseFromString(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.2:
            return proto_mutators.wire_string_mutation(rng, model, ops)
        proto_mutators.field_mutation(
            rng, model, ops, pick=lambda p: any(k in p for k in ("dims", "raw_data", "attribute", "input",
                                                                 "output", "op_type", "data_type")))
    return model.SerializeToString()


TARGETS = {
    "ms": Target("ms", ".ms flatbuffers: read, toolkit inspect, runtime.load + run", (".ms",),
                 ms_mutators.mutate_ms, consume_ms),
    "onnx": Target("onnx", "ONNX protos: runtime.load + run, converters.convert, load + run of the .ms",
                   (".onnx",), onnx_mutators.mutate_onnx, consume_onnx),
    "mindir": Target("mindir", "MINDIR protos: converters.convert, runtime.load + run of the .ms",
                     (".mindir",), _mutate_mindir, consume_mindir),
    "image": Target("image", "encoded images: runtime.images.load_rgb (path, bytes), scan_dataset",
                    (".jpg", ".png", ".bmp", ".ppm", ".pgm"), image_mutators.mutate_image, consume_image),
    "meta": Target("meta", "metadata JSON: ModelMeta.load, runtime.Classifier + predict", (".json",),
                   meta_mutators.mutate_meta, None),
}


def preload():
    """Import what the consumers need once, in the dispatcher, so each forked case starts warm.
    Nothing here starts a framework thread pool (no session, no decode)."""
    import cv2  # noqa: F401
    import onnx  # noqa: F401
    import runtime.engines.ort_session  # noqa: F401
    import runtime  # noqa: F401
    import runtime.classifier  # noqa: F401
    import runtime.images  # noqa: F401
    from runtime.engines import ms_engine, ort_engine  # noqa: F401
    import converters  # noqa: F401
    from converters.frontends import onnx_frontend, mindir  # noqa: F401
    from toolkit.commands import inspect  # noqa: F401
    from toolkit.data import folder  # noqa: F401
    try:
        mind_ir_pb2()
    except Exception:  # reported by the mindir cases themselves
        pass
    import runtime.engines.ms_onnx  # noqa: F401
