"""Run two models on the same inputs and say where they differ: outputs, and tensor by tensor.

This is the accuracy debugger of the quantization path, in the spirit of MindSpore Lite's
`debug_info_save_path` and TFLite's QuantizationDebugger: model A is the reference (the float `.ms`
or the source `.onnx`), model B the candidate (say the full-int8 `.ms`). With `per_layer`, every
intermediate tensor that both graphs hold under one name is exposed as an extra output and compared,
and the list comes back worst first, so a user can pick `--skip-quant` nodes from its top.

How the graphs are opened:
- `.ms`: `runtime.engines.ms_onnx.translate(..., expose=...)` makes the translated graph also emit
  the chosen tensors (int8 ones dequantized), with the int8 arithmetic asked for ("fast" or "exact").
- `.onnx`: a copy of the graph gets every float node output as an extra graph output. A `.ms`
  tensor is named after the node that made it, and the converter fuses BatchNormalization and
  Relu/Clip into the node before them, so an ONNX node's name also stands for the output of the
  fused chain that follows it (Conv -> BatchNorm -> Relu gives the `.ms` tensor "conv").
Sessions come from runtime.engines.ort_session.create_session, the one place they are made.

Layouts are reconciled by value, not by guessing: every 4-D tensor is brought to NCHW from its
declared layout (a `.ms` tensor's format field; ONNX is NCHW) before shapes are compared. Statistics
are accumulated batch by batch, so exposing every tensor of a large model costs one batch of memory.
"""
import math
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np

from runtime.errors import ToolkitError

# ONNX ops the MindSpore Lite converter folds into the node before them (the tensor keeps that name)
FUSED_FOLLOWERS = ("BatchNormalization", "Relu", "Clip")
ONNX_FLOAT = 1
DEFAULT_SAMPLES = 4


class CompareError(ToolkitError):
    """The two models cannot be compared (no common tensors, different inputs or outputs)."""

    def __init__(self, problem, a=None, b=None):
        where = " vs ".join(p for p in (a, b) if p)
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass
class Diff:
    """How far B's tensor is from A's over every compared sample."""
    name: str
    shape: List[int]
    cosine: float                 # mean over samples of the cosine similarity
    max_abs_error: float
    mean_abs_error: float
    relative_error: Optional[float]   # RMSE / std of A's values (None: A constant, B differs)
    top1_agreement: Optional[float] = None    # outputs of shape [N, classes] only
    position: int = 0             # order of the tensor in A's graph
    dtype_b: str = "float32"      # "int8" when B computes it on integer kernels

    def line(self, width):
        rel = "inf" if self.relative_error is None else f"{self.relative_error:.4f}"
        return (f"  {self.name:<{width}}  {self.cosine:9.6f}  {self.max_abs_error:10.4g}  "
                f"{self.mean_abs_error:10.4g}  {rel:>9}  {self.dtype_b}")


@dataclass
class CompareReport:
    a: str
    b: str
    samples: int
    inputs: str
    int8: str
    outputs: List[Diff]
    layers: Optional[List[Diff]] = None          # worst first; None without per_layer
    skipped: List[dict] = field(default_factory=list)   # common names that could not be compared

    def lines(self, top=None):
        out = [f"compare {self.a} (reference) vs {self.b}: {self.samples} {self.inputs} input(s), "
               f"int8 arithmetic {self.int8!r}"]
        for d in self.outputs:
            agree = "" if d.top1_agreement is None else f", top-1 agreement {d.top1_agreement * 100:.1f}%"
            out.append(f"  output {d.name}: cosine {d.cosine:.6f}, max abs diff {d.max_abs_error:.4g}"
                       f"{agree}")
        if self.layers is not None:
            shown = self.layers if top is None else self.layers[:top]
            width = max([len(d.name) for d in shown] + [6])
            out.append(f"per-layer, worst first ({len(shown)} of {len(self.layers)} common tensors; "
                       "relative = RMSE / std of the reference):")
            out.append(f"  {'tensor':<{width}}  {'cosine':>9}  {'max abs':>10}  {'mean abs':>10}  "
                       f"{'relative':>9}  B dtype")
            out.extend(d.line(width) for d in shown)
            for s in self.skipped:
                out.append(f"  skipped {s['name']}: {s['reason']}")
        return out

    def to_dict(self):
        return asdict(self)


class _Stats:
    """Streaming statistics of B against A for one tensor."""

    def __init__(self):
        self.rows = self.n = 0
        self.cos = self.abs_sum = self.sq_err = self.ref_sum = self.ref_sq = 0.0
        self.max_abs = 0.0
        self.agree = 0
        self.shape = None

    def update(self, ref, got):
        ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        self.shape = list(ref.shape)
        rows = ref.shape[0] if ref.ndim > 1 else 1
        ra, ga = ref.reshape(rows, -1), got.reshape(rows, -1)
        na, nb = np.linalg.norm(ra, axis=1), np.linalg.norm(ga, axis=1)
        cos = np.where((na == 0) & (nb == 0), 1.0, np.sum(ra * ga, 1) / np.maximum(na * nb, 1e-300))
        err = np.abs(ra - ga)
        self.cos += float(cos.sum())
        self.rows += rows
        self.n += ra.size
        self.abs_sum += float(err.sum())
        self.sq_err += float(np.sum(err * err))
        self.ref_sum += float(ra.sum())
        self.ref_sq += float(np.sum(ra * ra))
        self.max_abs = max(self.max_abs, float(err.max()) if err.size else 0.0)
        if not np.isfinite(ga).all():
            self.max_abs = math.inf
        self.agree += int(np.sum(ra.argmax(1) == ga.argmax(1))) if ra.shape[1] > 1 else 0

    def diff(self, name, classifier=False, position=0, dtype_b="float32"):
        mean = self.ref_sum / max(self.n, 1)
        std = math.sqrt(max(self.ref_sq / max(self.n, 1) - mean * mean, 0.0))
        rmse = math.sqrt(self.sq_err / max(self.n, 1))
        rel = (rmse / std) if std > 0 else (0.0 if rmse == 0 else None)
        top1 = self.agree / max(self.rows, 1) if classifier else None
        return Diff(name, self.shape, self.cos / max(self.rows, 1), self.max_abs,
                    self.abs_sum / max(self.n, 1), rel, top1, position, dtype_b)


def _sort_key(d):
    rel = math.inf if d.relative_error is None or math.isnan(d.relative_error) else d.relative_error
    return (-rel, d.cosine, d.position)


@dataclass
class _Tensor:
    """One value a probe can return: its output name, layout ("NHWC", "NCHW" or "") and dtype."""
    output: str
    layout: str
    position: int
    dtype: str = "float32"


class _Probe:
    """A model opened for comparison: its input, its outputs and the tensors it can expose."""

    def __init__(self, path, onnx_bytes, input_name, input_shape, input_layout, outputs, tensors,
                 threads=None, engine="compare"):
        from runtime.engines.ort_session import create_session
        self.path = path
        self.session, _ = create_session(onnx_bytes, "cpu", threads, path, engine)
        self.input_name, self.input_shape, self.input_layout = input_name, input_shape, input_layout
        self.outputs = outputs        # [_Tensor] of the real outputs, in order
        self.tensors = tensors        # comparable name -> _Tensor (intermediates and outputs)

    def canonical_input_shape(self):
        s = self.input_shape
        return tuple(s) if self.input_layout != "NHWC" else (s[0], s[3], s[1], s[2])

    def run(self, x_nchw, wanted):
        """{output name: NCHW-canonical float array} for the real outputs and the `wanted` tensors."""
        from runtime.engines.ort_session import run_session
        x = x_nchw.transpose(0, 2, 3, 1) if self.input_layout == "NHWC" else x_nchw
        names = list(dict.fromkeys([t.output for t in self.outputs] + [t.output for t in wanted]))
        values = run_session(self.session, names, {self.input_name: np.ascontiguousarray(x, np.float32)},
                             f"{self.path}: running the model for compare failed")
        return dict(zip(names, values))


def canonical(value, layout):
    """A value in NCHW when it is a 4-D NHWC tensor, else as it is."""
    value = np.asarray(value)
    return value.transpose(0, 3, 1, 2) if layout == "NHWC" and value.ndim == 4 else value


def _ms_probe(path, int8, per_layer, threads, model=None):
    from runtime.engines.ms_onnx import translate
    from runtime.engines.ms_onnx.driver import is_full_quant_node, needed_nodes, topological_order
    from runtime.msformat.model import FORMAT_NCHW, FORMAT_NHWC, TYPE_INT8, TYPE_UINT8
    from runtime.msformat.reader import read_ms

    model = read_ms(path) if model is None else model
    if len(model.inputs) != 1:
        raise CompareError(f"{path} has {len(model.inputs)} inputs; compare takes single-input models")

    def layout(idx):
        t = model.tensors[idx]
        return {FORMAT_NHWC: "NHWC", FORMAT_NCHW: "NCHW"}.get(t.format, "") if len(t.dims) == 4 else ""

    order, produced = {}, []
    for pos, k in enumerate(topological_order(model, needed_nodes(model))):
        node = model.nodes[k]
        int8_node = is_full_quant_node(model, node)
        for o in node.outputs:
            order[o] = (pos, "int8" if int8_node and model.tensors[o].data_type in (TYPE_INT8, TYPE_UINT8)
                        else "float32")
            produced.append(o)
    expose = [i for i in produced if i not in model.outputs and model.tensors[i].name] if per_layer else []
    proto, ins, outs = translate(model, path, int8_mode=int8, expose=expose)
    real = outs[:len(model.outputs)]
    outputs = [_Tensor(n, layout(i), order.get(i, (0,))[0], order.get(i, (0, "float32"))[1])
               for n, i in zip(real, model.outputs)]
    tensors = {}
    for name, idx in list(zip(outs[len(real):], expose)) + list(zip(real, model.outputs)):
        tname = model.tensors[idx].name or name
        if tname not in tensors:
            pos, dtype = order.get(idx, (0, "float32"))
            tensors[tname] = _Tensor(name, layout(idx), pos, dtype)
    spec_dims = model.tensors[model.inputs[0]].dims
    return _Probe(path, proto.SerializeToString(), ins[0], tuple(d if d >= 0 else None for d in spec_dims),
                  layout(model.inputs[0]), outputs, tensors, threads, "ms-engine")


def _fused_end(node, consumers):
    """The last node of the chain that the MindSpore Lite converter fuses into `node`."""
    while len(node.output) == 1 and len(consumers.get(node.output[0], ())) == 1 \
            and consumers[node.output[0]][0].op_type in FUSED_FOLLOWERS:
        node = consumers[node.output[0]][0]
    return node


def _onnx_probe(path, per_layer, threads):
    import onnx
    from onnx import helper, shape_inference
    from runtime.errors import ModelFormatError
    try:
        model = onnx.load(path)
    except Exception as e:         # protobuf's DecodeError and friends
        raise ModelFormatError(path, f"not a readable ONNX model: {e}") from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise CompareError(f"{path} has {len(inputs)} inputs; compare takes single-input models")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                  for d in inputs[0].type.tensor_type.shape.dim)
    real = [o.name for o in g.output]
    outputs = [_Tensor(n, "NCHW", 0) for n in real]
    tensors = {}
    if per_layer:
        try:
            types = {v.name: v.type.tensor_type.elem_type
                     for v in shape_inference.infer_shapes(model).graph.value_info}
        except Exception:          # shape inference is best effort: unknown types count as float
            types = {}
        consumers = {}
        for node in g.node:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        for pos, node in enumerate(g.node):
            for o in node.output:
                if o and types.get(o, ONNX_FLOAT) == ONNX_FLOAT:
                    tensors.setdefault(o, _Tensor(o, "NCHW", pos))
        for pos, node in enumerate(g.node):          # node names stand for their fused chain's output
            end = _fused_end(node, consumers)
            if node.name and node.name not in tensors and end.output and end.output[0] in tensors:
                tensors[node.name] = _Tensor(end.output[0], "NCHW", pos)
        extra = sorted({t.output for t in tensors.values()} - set(real))
        g.output.extend(helper.make_tensor_value_info(n, ONNX_FLOAT, None) for n in extra)
    for pos, name in enumerate(real):
        tensors.setdefault(name, _Tensor(name, "NCHW", len(g.node) + pos))
    return _Probe(path, model.SerializeToString(), inputs[0].name, shape, "NCHW", outputs, tensors,
                  threads, "onnxruntime")


def open_probe(path, int8="fast", per_layer=False, threads=None):
    """A model file opened for comparison (`.ms` or `.onnx`)."""
    if not os.path.isfile(path):
        raise CompareError(f"{path}: no such model file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".ms":
        return _ms_probe(path, int8, per_layer, threads)
    if ext == ".onnx":
        return _onnx_probe(path, per_layer, threads)
    raise CompareError(f"{path}: compare takes .ms and .onnx models, not {ext or 'a file without suffix'}")


def common_input_shape(a, b):
    """The NCHW-canonical input shape both probes take (a dim one leaves open comes from the other)."""
    sa, sb = a.canonical_input_shape(), b.canonical_input_shape()
    if len(sa) != len(sb) or any(x is not None and y is not None and x != y for x, y in zip(sa, sb)):
        raise CompareError(f"the models take different inputs: {list(a.input_shape)} "
                           f"({a.input_layout or 'no layout'}) and {list(b.input_shape)} "
                           f"({b.input_layout or 'no layout'})", a.path, b.path)
    shape = tuple(x if x is not None else y for x, y in zip(sa, sb))
    if any(d is None for d in shape):
        raise CompareError(f"neither model fixes the input shape {list(shape)}", a.path, b.path)
    return shape


def _pairs(a, b, per_layer):
    """[(name, A tensor, B tensor)] for the tensors both models hold, in A's order."""
    if not per_layer:
        return []
    names = [n for n in a.tensors if n in b.tensors]
    if not names:
        raise CompareError("the models hold no tensor under a common name, so there is no per-layer "
                           "report (are they conversions of the same source?)", a.path, b.path)
    return sorted(((n, a.tensors[n], b.tensors[n]) for n in names), key=lambda p: p[1].position)


def compare_probes(a, b, batches, per_layer=False, progress=None, inputs="random", int8="fast"):
    """CompareReport of probe b against probe a on `batches` (NCHW-canonical arrays)."""
    if len(a.outputs) != len(b.outputs):
        raise CompareError(f"the models have {len(a.outputs)} and {len(b.outputs)} outputs", a.path, b.path)
    pairs = _pairs(a, b, per_layer)
    out_stats = [_Stats() for _ in a.outputs]
    layer_stats = {n: _Stats() for n, _, _ in pairs}
    bad = {}
    rows = 0
    for x in (batches if progress is None else progress(batches)):
        va = a.run(x, [p[1] for p in pairs])
        vb = b.run(x, [p[2] for p in pairs])
        rows += len(x)
        for k, (ta, tb) in enumerate(zip(a.outputs, b.outputs)):
            ra, rb = canonical(va[ta.output], ta.layout), canonical(vb[tb.output], tb.layout)
            if ra.shape != rb.shape:
                raise CompareError(f"output {k} has shape {list(ra.shape)} in one model and "
                                   f"{list(rb.shape)} in the other", a.path, b.path)
            out_stats[k].update(ra, rb)
        for name, ta, tb in pairs:
            if name in bad:
                continue
            ra, rb = canonical(va[ta.output], ta.layout), canonical(vb[tb.output], tb.layout)
            if ra.shape != rb.shape:
                bad[name] = f"shape {list(ra.shape)} in A, {list(rb.shape)} in B (after NCHW reconciliation)"
                continue
            layer_stats[name].update(ra, rb)
    outputs = [s.diff(ta.output, classifier=len(s.shape) == 2 and s.shape[1] > 1)
               for s, ta in zip(out_stats, a.outputs)]
    layers = None
    skipped = [{"name": n, "reason": r} for n, r in bad.items()]
    if per_layer:
        layers = sorted((layer_stats[n].diff(n, position=ta.position, dtype_b=tb.dtype)
                         for n, ta, tb in pairs if n not in bad), key=_sort_key)
        if not layers:
            raise CompareError("no common tensor could be compared: " +
                               "; ".join(f"{s['name']}: {s['reason']}" for s in skipped), a.path, b.path)
    return CompareReport(a.path, b.path, rows, inputs, int8, outputs, layers, skipped)


def _meta_of(paths, spec_shape, images):
    """Metadata for preprocessing: A's, else B's; a default one when images need some and none has."""
    from runtime.engines.base import TensorSpec
    from runtime.metadata import default_meta, find_meta
    for p in paths:
        meta, _ = find_meta(p)
        if meta is not None:
            return meta
    if images and len(spec_shape) == 4:
        return default_meta(TensorSpec("input", spec_shape, "float32", "NCHW"), paths[0])
    return None


def compare(a_path, b_path, n=DEFAULT_SAMPLES, images=None, per_layer=False, int8="fast", seed=0,
            threads=None, progress=None):
    """Compare model b against model a (the reference) on n inputs: random (seeded), or images
    preprocessed by the models' metadata. Returns a CompareReport."""
    from .inputs import model_inputs
    for p in (a_path, b_path):
        if not os.path.isfile(p):
            raise CompareError(f"{p}: no such model file")
    a = open_probe(a_path, int8, per_layer, threads)
    b = open_probe(b_path, int8, per_layer, threads)
    shape = common_input_shape(a, b)
    meta = _meta_of([a_path, b_path], shape, images)
    batches, desc, _ = model_inputs(shape, meta, n, images, "NCHW", a_path, seed)
    return compare_probes(a, b, batches, per_layer, progress, desc, int8)
