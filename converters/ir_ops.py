"""Shape rules and a numpy reference implementation of every IR op.

The shape rules drive shape inference (SAME padding, `--input-shape`); the numpy kernels drive
constant folding and let tests check that each pass keeps the graph's function unchanged.
Image ops read `format` ("NCHW" until the layout pass sets "NHWC").
"""
import numpy as np

from .errors import ConversionError
from .ir import ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_TANH
from .registry import registrar

SHAPE_RULES = {}
KERNELS = {}


shape_rule = registrar(SHAPE_RULES, "shape rule")
kernel = registrar(KERNELS, "kernel")


def _nchw(shape, node):
    return shape if node.attrs.get("format", "NCHW") == "NCHW" else (shape[0], shape[3], shape[1], shape[2])


def _from_nchw(shape, node):
    return shape if node.attrs.get("format", "NCHW") == "NCHW" else (shape[0], shape[2], shape[3], shape[1])


def window_out(size, k, s, d, p0, p1, ceil=False):
    eff = (k - 1) * d + 1
    num = size + p0 + p1 - eff
    out = (-(-num // s) if ceil else num // s) + 1
    if out <= 0:
        raise ConversionError(f"window {k}x stride {s} does not fit an input of size {size}")
    return out


def same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_pads(node, in_shape):
    """Explicit (t, b, l, r) pads for a conv/pool node given its input shape (NCHW order)."""
    a = node.attrs
    if a["pad_mode"] == "valid":
        return (0, 0, 0, 0)
    if a["pad_mode"] == "same":
        d = a.get("dilation", (1, 1))
        t, b = same_pads(in_shape[2], a["kernel"][0], a["stride"][0], d[0])
        left, r = same_pads(in_shape[3], a["kernel"][1], a["stride"][1], d[1])
        return (t, b, left, r)
    return tuple(a["pads"])


@shape_rule("Conv2D")
def _conv_shape(node, shapes, consts):
    x = _nchw(shapes[0], node)
    w = shapes[1]
    out_c = w[0]
    t, b, left, r = resolve_pads(node, x)
    d = node.attrs["dilation"]
    oh = window_out(x[2], node.attrs["kernel"][0], node.attrs["stride"][0], d[0], t, b)
    ow = window_out(x[3], node.attrs["kernel"][1], node.attrs["stride"][1], d[1], left, r)
    return [_from_nchw((x[0], out_c, oh, ow), node)]


@shape_rule("MaxPool", "AvgPool")
def _pool_shape(node, shapes, consts):
    x = _nchw(shapes[0], node)
    t, b, left, r = resolve_pads(node, x)
    c = node.attrs.get("ceil_mode", False)
    oh = window_out(x[2], node.attrs["kernel"][0], node.attrs["stride"][0], 1, t, b, c)
    ow = window_out(x[3], node.attrs["kernel"][1], node.attrs["stride"][1], 1, left, r, c)
    return [_from_nchw((x[0], x[1], oh, ow), node)]


@shape_rule("GlobalAvgPool")
def _gap_shape(node, shapes, consts):
    x = _nchw(shapes[0], node)
    return [_from_nchw((x[0], x[1], 1, 1), node)]


@shape_rule("BatchNorm", "Activation", "BiasAdd", "Identity")
def _same_shape(node, shapes, consts):
    return [shapes[0]]


@shape_rule("Softmax")
def _softmax_shape(node, shapes, consts):
    rank = len(shapes[0])
    if node.attrs.get("flattens_from_axis") and node.attrs["axis"] % rank != rank - 1:
        raise ConversionError(f"{node.name}: ONNX opset < 13 Softmax over axis {node.attrs['axis']} "
                              f"of a rank-{rank} tensor (flattening semantics) is not supported")
    return [shapes[0]]


@shape_rule("Add", "Sub", "Mul", "Div")
def _broadcast_shape(node, shapes, consts):
    try:
        return [tuple(np.broadcast_shapes(shapes[0], shapes[1]))]
    except ValueError:
        raise ConversionError(f"{node.name}: shapes {shapes[0]} and {shapes[1]} do not broadcast")


@shape_rule("MatMul")
def _matmul_shape(node, shapes, consts):
    a, b = shapes[0], shapes[1]
    if len(a) != 2 or len(b) != 2:
        raise ConversionError(f"{node.name}: only 2-D MatMul is supported, got {a} x {b}")
    m, k = (a[1], a[0]) if node.attrs["transpose_a"] else a
    k2, n = (b[1], b[0]) if node.attrs["transpose_b"] else b
    if k != k2:
        raise ConversionError(f"{node.name}: MatMul inner sizes {k} and {k2} differ")
    return [(m, n)]


@shape_rule("ReduceMean")
def _reduce_shape(node, shapes, consts):
    x = shapes[0]
    axes = {a % len(x) for a in node.attrs["axes"]}
    if node.attrs["keep_dims"]:
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


@shape_rule("Reshape")
def _reshape_shape(node, shapes, consts):
    if node.inputs[1] not in consts:
        raise ConversionError(f"{node.name}: Reshape needs a constant shape")
    x = shapes[0]
    target = [int(v) for v in consts[node.inputs[1]].reshape(-1)]
    target = [x[i] if v == 0 else v for i, v in enumerate(target)]
    total = int(np.prod(x))
    if target.count(-1) == 1:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = total // max(known, 1)
    if int(np.prod(target)) != total:
        raise ConversionError(f"{node.name}: cannot reshape {x} to {target}")
    return [tuple(target)]


@shape_rule("Flatten")
def _flatten_shape(node, shapes, consts):
    x, ax = shapes[0], node.attrs["axis"]
    return [(int(np.prod(x[:ax])), int(np.prod(x[ax:])))]


@shape_rule("Transpose")
def _transpose_shape(node, shapes, consts):
    return [tuple(shapes[0][p] for p in node.attrs["perm"])]


@shape_rule("Concat")
def _concat_shape(node, shapes, consts):
    ax = node.attrs["axis"] % len(shapes[0])
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    return [tuple(out)]


# ---- numpy kernels ------------------------------------------------------------------------------

def _conv_nchw(x, w, b, node, pads):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    g = node.attrs["group"]
    sh, sw = node.attrs["stride"]
    dh, dw = node.attrs["dilation"]
    t, bt, left, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bt), (left, r)))
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    og = o // g
    for gi in range(g):
        xs = xp[:, gi * cg:(gi + 1) * cg]
        ws = w[gi * og:(gi + 1) * og].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * oh:sh, j * dw:j * dw + sw * ow:sw]
                out[:, gi * og:(gi + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def _to_nchw(x, node):
    return x if node.attrs.get("format", "NCHW") == "NCHW" else x.transpose(0, 3, 1, 2)


def _back(x, node):
    return x if node.attrs.get("format", "NCHW") == "NCHW" else x.transpose(0, 2, 3, 1)


def apply_activation(y, act, node=None):
    if act == 0:
        return y
    if act == ACT_RELU:
        return np.maximum(y, 0)
    if act == ACT_RELU6:
        return np.clip(y, 0, 6)
    if act == ACT_SIGMOID:
        return 1 / (1 + np.exp(-y))
    if act == ACT_TANH:
        return np.tanh(y)
    raise ConversionError(f"activation type {act} has no reference kernel")


@kernel("Conv2D")
def _conv(node, x, w, b=None):
    x = _to_nchw(x, node)
    if node.attrs.get("format", "NCHW") == "NHWC":
        w = w.transpose(0, 3, 1, 2)          # OHWI -> OIHW
    y = _conv_nchw(x, w, b, node, resolve_pads(node, x.shape))
    return _back(apply_activation(y, node.attrs.get("activation", 0)), node)


@kernel("BatchNorm")
def _bn(node, x, s, b, m, v):
    x = _to_nchw(x, node)
    k = (s / np.sqrt(v + node.attrs["epsilon"])).reshape(1, -1, 1, 1)
    return _back((x - m.reshape(1, -1, 1, 1)) * k + b.reshape(1, -1, 1, 1), node)


@kernel("Activation")
def _act(node, x):
    return apply_activation(x, node.attrs["type"])


@kernel("Add", "Sub", "Mul", "Div")
def _binary(node, a, b):
    f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[node.op]
    return apply_activation(f(a, b), node.attrs.get("activation", 0))


@kernel("BiasAdd")
def _bias_add(node, x, b):
    shape = [1] * x.ndim
    shape[node.attrs["axis"] % x.ndim] = -1
    return x + b.reshape(shape)


@kernel("MatMul")
def _matmul(node, a, b, bias=None):
    a = a.T if node.attrs["transpose_a"] else a
    b = b.T if node.attrs["transpose_b"] else b
    y = a.astype(np.float64) @ b.astype(np.float64)
    if bias is not None:
        y = y + bias
    return apply_activation(y.astype(np.float32), node.attrs.get("activation", 0))


@kernel("ReduceMean")
def _reduce_mean(node, x):
    return x.mean(axis=tuple(node.attrs["axes"]), keepdims=node.attrs["keep_dims"])


@kernel("GlobalAvgPool")
def _gap(node, x):
    return _back(_to_nchw(x, node).mean(axis=(2, 3), keepdims=True), node)


@kernel("MaxPool", "AvgPool")
def _pool(node, x):
    x = _to_nchw(x, node).astype(np.float64)
    t, b, left, r = resolve_pads(node, x.shape)
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["stride"]
    oh = window_out(x.shape[2], kh, sh, 1, t, b, node.attrs.get("ceil_mode", False))
    ow = window_out(x.shape[3], kw, sw, 1, left, r, node.attrs.get("ceil_mode", False))
    fill = -np.inf if node.op == "MaxPool" else 0.0
    eb, er = max(0, (oh - 1) * sh + kh - x.shape[2] - t), max(0, (ow - 1) * sw + kw - x.shape[3] - left)
    xp = np.pad(x, ((0, 0), (0, 0), (t, eb), (left, er)), constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:]), ((t, eb), (left, er)))
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            if node.op == "MaxPool":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                cnt = kh * kw if node.attrs.get("count_include_pad") else \
                    ones[i * sh:i * sh + kh, j * sw:j * sw + kw].sum()
                out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return _back(out.astype(np.float32), node)


@kernel("Reshape")
def _reshape(node, x, shape):
    target = [x.shape[i] if v == 0 else v for i, v in enumerate(int(s) for s in shape.reshape(-1))]
    return x.reshape(target)


@kernel("Flatten")
def _flatten(node, x):
    ax = node.attrs["axis"]
    return x.reshape(int(np.prod(x.shape[:ax])), -1)


@kernel("Transpose")
def _transpose(node, x):
    return x.transpose(node.attrs["perm"])


@kernel("Softmax")
def _softmax(node, x):
    e = np.exp(x - x.max(axis=node.attrs["axis"], keepdims=True))
    return e / e.sum(axis=node.attrs["axis"], keepdims=True)


@kernel("Concat")
def _concat(node, *xs):
    return np.concatenate(xs, axis=node.attrs["axis"])


@kernel("Identity")
def _identity(node, x):
    return x


def infer_shapes(graph):
    """Fill graph.shapes for every value from the input shapes and constants."""
    for name, arr in graph.consts.items():
        graph.shapes[name] = tuple(arr.shape)
    for node in graph.nodes:
        missing = [v for v in node.inputs if v not in graph.shapes]
        if missing:
            raise ConversionError(f"{node.name}: inputs {missing} are not produced by any node")
        rule = SHAPE_RULES.get(node.op)
        if rule is None:
            raise ConversionError(f"{node.name}: no shape rule for IR op {node.op}")
        outs = rule(node, [graph.shapes[v] for v in node.inputs], graph.consts)
        for name, shape in zip(node.outputs, outs):
            graph.shapes[name] = tuple(int(d) for d in shape)


def run_graph(graph, feed):
    """Evaluate the IR with numpy. feed: {input name: array}. Returns {output name: array}."""
    env = dict(graph.consts)
    env.update(feed)
    for node in graph.nodes:
        outs = KERNELS[node.op](node, *[env[v] for v in node.inputs])
        env[node.outputs[0]] = outs
    return {o: env[o] for o in graph.outputs}
