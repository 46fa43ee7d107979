"""NCHW -> NHWC, the layout MindSpore Lite's CPU kernels and the official converter use.

Image ops (conv, pooling) switch to `format` NHWC and conv weights become [out, kh, kw, in/group].
Layout-neutral ops follow their input; ops with axes get them remapped; every other op gets its
NHWC inputs transposed back to NCHW first, so the graph's function never changes. The graph input
becomes NHWC unless `--input-format NCHW` keeps it (then one Transpose follows it). 4-D graph outputs
are transposed back to NCHW so outputs mean what they meant in the source model.
"""
import numpy as np

from ..errors import ConversionError
from ..ir import make_node
from ..ir_ops import infer_shapes
from ..registry import registrar

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
NCHW_AXIS_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
LAYOUT_RULES = {}


layout_rule = registrar(LAYOUT_RULES, "layout rule")


class _Rewriter:
    def __init__(self, graph):
        self.g = graph
        self.shapes = dict(graph.shapes)      # NCHW shapes, as before the pass
        self.nhwc = set()
        self.cache = {}
        self.out = []

    def rank(self, v):
        return len(self.shapes[v])

    def transposed(self, v, perm):
        key = (v, perm)
        if key not in self.cache:
            name = self.g.fresh(v + (":to_nhwc" if perm == TO_NHWC else ":to_nchw"))
            self.out.append(make_node(name, "Transpose", [v], [name], perm=perm))
            self.cache[key] = name
        return self.cache[key]

    def as_nhwc(self, v):
        if v in self.nhwc or self.rank(v) != 4:
            return v
        if self.g.is_const(v):
            name = self.g.add_const(v + ":nhwc", self.g.consts[v].transpose(TO_NHWC))
            return name
        out = self.transposed(v, TO_NHWC)
        self.nhwc.add(out)
        return out

    def as_nchw(self, v):
        return self.transposed(v, TO_NCHW) if v in self.nhwc else v

    def default(self, node):
        self.out.append(node.with_(inputs=[self.as_nchw(v) for v in node.inputs]))


@layout_rule("Conv2D")
def _conv(rw, node):
    w = node.inputs[1]
    if not rw.g.is_const(w):
        raise ConversionError(f"{node.name}: convolution weights must be constant")
    w_nhwc = rw.g.add_const(w + ":ohwi", np.ascontiguousarray(rw.g.consts[w].transpose(0, 2, 3, 1)))
    ins = [rw.as_nhwc(node.inputs[0]), w_nhwc] + list(node.inputs[2:])
    rw.out.append(node.with_(inputs=ins, attrs={"format": "NHWC"}))
    rw.nhwc.add(node.outputs[0])


@layout_rule("MaxPool", "AvgPool", "GlobalAvgPool", "BatchNorm")
def _image_op(rw, node):
    rw.out.append(node.with_(inputs=[rw.as_nhwc(node.inputs[0])] + list(node.inputs[1:]),
                             attrs={"format": "NHWC"}))
    rw.nhwc.add(node.outputs[0])


@layout_rule("Activation", "Identity")
def _unary(rw, node):
    rw.out.append(node)
    if node.inputs[0] in rw.nhwc:
        rw.nhwc.add(node.outputs[0])


def _const_to_nhwc(rw, v):
    """A constant operand for a binary op on NHWC data, or None if its broadcast would change."""
    c = rw.g.consts[v]
    if c.ndim == 4:
        return rw.g.add_const(v + ":nhwc", c.transpose(TO_NHWC))
    if c.ndim == 3:
        return rw.g.add_const(v + ":nhwc", c.transpose(1, 2, 0))
    if c.size == 1:
        return v
    return None


@layout_rule("Add", "Sub", "Mul", "Div")
def _binary(rw, node):
    if not any(v in rw.nhwc for v in node.inputs):
        return rw.default(node)
    ins = []
    for v in node.inputs:
        if rw.g.is_const(v):
            c = _const_to_nhwc(rw, v)
            if c is None:
                return rw.default(node)
            ins.append(c)
        elif rw.rank(v) == 4:
            ins.append(rw.as_nhwc(v))
        else:
            return rw.default(node)
    rw.out.append(node.with_(inputs=ins))
    rw.nhwc.add(node.outputs[0])


@layout_rule("ReduceMean")
def _reduce(rw, node):
    x = node.inputs[0]
    if x not in rw.nhwc:
        return rw.default(node)
    axes = {a % 4 for a in node.attrs["axes"]}
    if not node.attrs["keep_dims"]:
        if [a for a in (0, 1, 2, 3) if a not in axes] != [a for a in (0, 2, 3, 1) if a not in axes]:
            return rw.default(node)
    rw.out.append(node.with_(attrs={"axes": tuple(sorted(NCHW_AXIS_TO_NHWC[a] for a in axes))}))
    if node.attrs["keep_dims"]:
        rw.nhwc.add(node.outputs[0])


@layout_rule("Softmax")
def _softmax(rw, node):
    if node.inputs[0] not in rw.nhwc:
        return rw.default(node)
    rw.out.append(node.with_(attrs={"axis": NCHW_AXIS_TO_NHWC[node.attrs["axis"] % 4]}))
    rw.nhwc.add(node.outputs[0])


@layout_rule("Concat")
def _concat(rw, node):
    if not any(v in rw.nhwc for v in node.inputs) or any(rw.rank(v) != 4 for v in node.inputs):
        return rw.default(node)
    rw.out.append(node.with_(inputs=[rw.as_nhwc(v) for v in node.inputs],
                             attrs={"axis": NCHW_AXIS_TO_NHWC[node.attrs["axis"] % 4]}))
    rw.nhwc.add(node.outputs[0])


@layout_rule("Reshape", "Flatten")
def _reshape(rw, node):
    x = node.inputs[0]
    # (N, 1, 1, C) and (N, C, 1, 1) hold the same bytes: no transpose needed before a reshape.
    if x in rw.nhwc and rw.shapes[x][2:4] == (1, 1):
        rw.out.append(node)
    else:
        rw.default(node)


def to_nhwc(graph, options=None):
    if graph.layout == "NHWC":
        raise ConversionError("internal: graph is already NHWC")
    input_format = getattr(options, "input_format", "NHWC") if options else "NHWC"
    rw = _Rewriter(graph)
    for name in graph.inputs:
        if len(graph.shapes[name]) == 4 and input_format == "NHWC":
            rw.nhwc.add(name)
            s = graph.shapes[name]
            graph.shapes[name] = (s[0], s[2], s[3], s[1])
    for node in graph.nodes:
        LAYOUT_RULES.get(node.op, _Rewriter.default)(rw, node)
    graph.nodes = rw.out
    outputs = []
    for v in graph.outputs:
        outputs.append(rw.as_nchw(v) if v in rw.nhwc else v)
    graph.nodes = rw.out
    graph.outputs = outputs
    graph.layout = "NHWC"
    graph.nhwc_values = set(rw.nhwc)
    graph.input_layout = input_format
    for name in list(graph.shapes):
        if name not in graph.inputs:
            del graph.shapes[name]
    infer_shapes(graph)
