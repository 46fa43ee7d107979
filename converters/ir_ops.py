"""Shape rules and a numpy reference implementation of every IR op.

The shape rules drive shape inference (SAME padding, `--input-shape`); the numpy kernels drive
constant folding and let tests check that each pass keeps the graph's function unchanged.
Image ops read `format` ("NCHW" until the layout pass sets "NHWC").
"""
import numpy as np

from .errors import ConversionError
from .ir import ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_TANH, MAX_RANK
from .registry import registrar

SHAPE_RULES = {}
KERNELS = {}


shape_rule = registrar(SHAPE_RULES, "shape rule")
kernel = registrar(KERNELS, "kernel")


MAX_ELEMENTS = (1 << 31) - 1      # MindSpore Lite counts tensor elements in int32
FOLD_BUDGET = 1 << 24             # constant folding materialises at most this many elements per value


def _rank(shape, want, what="input"):
    if len(shape) != want:
        raise ConversionError(f"{what} has shape {list(shape)}; a rank-{want} tensor is needed")


def _axis(axis, rank, what="axis", allow_end=False):
    """`axis` normalised to [0, rank) (or [0, rank] with allow_end), else ConversionError."""
    top = rank + 1 if allow_end else rank
    if not -top <= axis < top:
        raise ConversionError(f"{what} {axis} is out of range for a rank-{rank} tensor")
    return axis % top if axis < 0 else axis


def _nchw(shape, node):
    _rank(shape, 4, "image input")
    return shape if node.attrs.get("format", "NCHW") == "NCHW" else (shape[0], shape[3], shape[1], shape[2])


def _from_nchw(shape, node):
    return shape if node.attrs.get("format", "NCHW") == "NCHW" else (shape[0], shape[2], shape[3], shape[1])


def window_out(size, k, s, d, p0, p1, ceil=False):
    if k < 1 or s < 1 or d < 1 or p0 < 0 or p1 < 0:
        raise ConversionError(f"window {k}, stride {s}, dilation {d}, pads {p0},{p1}: kernel, "
                              "stride and dilation must be >= 1 and pads >= 0")
    eff = (k - 1) * d + 1
    num = size + p0 + p1 - eff
    out = (-(-num // s) if ceil else num // s) + 1
    if num < 0 or out <= 0:
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
    _rank(w, 4, "weight")
    g = node.attrs["group"]
    out_c = w[0]
    in_c = w[3] if node.attrs.get("format", "NCHW") == "NHWC" else w[1]
    if in_c * g != x[1] or out_c % g:
        raise ConversionError(f"weight {list(w)} with group {g} does not fit an input with {x[1]} "
                              "channels")
    if tuple(w[2:] if node.attrs.get("format", "NCHW") == "NCHW" else w[1:3]) != tuple(node.attrs["kernel"]):
        raise ConversionError(f"kernel {list(node.attrs['kernel'])} differs from the weight's "
                              f"{list(w)}")
    if len(shapes) > 2 and tuple(shapes[2]) not in ((out_c,),):
        raise ConversionError(f"bias shape {list(shapes[2])} does not match {out_c} output channels")
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


@shape_rule("Activation", "Identity")
def _same_shape(node, shapes, consts):
    return [shapes[0]]


@shape_rule("BatchNorm")
def _bn_shape(node, shapes, consts):
    x = shapes[0]
    if len(x) < 2:
        raise ConversionError(f"input {list(x)} has no channel axis")
    c = x[3] if node.attrs.get("format", "NCHW") == "NHWC" else x[1]
    for name, s in zip(("scale", "bias", "mean", "variance"), shapes[1:]):
        if tuple(s) != (c,):
            raise ConversionError(f"{name} has shape {list(s)}; {c} channels need ({c},)")
    return [x]


@shape_rule("BiasAdd")
def _bias_add_shape(node, shapes, consts):
    x = shapes[0]
    if len(x) < 2:
        raise ConversionError(f"input {list(x)} has no channel axis")
    ax = _axis(node.attrs["axis"], len(x))
    if tuple(shapes[1]) != (x[ax],):
        raise ConversionError(f"bias {list(shapes[1])} does not match axis {ax} of {list(x)}")
    return [x]


@shape_rule("Softmax")
def _softmax_shape(node, shapes, consts):
    rank = len(shapes[0])
    axis = _axis(node.attrs["axis"], rank)
    if node.attrs.get("flattens_from_axis") and axis != rank - 1:
        raise ConversionError(f"ONNX opset < 13 Softmax over axis {node.attrs['axis']} "
                              f"of a rank-{rank} tensor (flattening semantics) is not supported")
    return [shapes[0]]


@shape_rule("Add", "Sub", "Mul", "Div")
def _broadcast_shape(node, shapes, consts):
    try:
        return [tuple(np.broadcast_shapes(shapes[0], shapes[1]))]
    except ValueError:
        raise ConversionError(f"shapes {list(shapes[0])} and {list(shapes[1])} do not broadcast") from None


@shape_rule("MatMul")
def _matmul_shape(node, shapes, consts):
    a, b = shapes[0], shapes[1]
    if len(a) != 2 or len(b) != 2:
        raise ConversionError(f"only 2-D MatMul is supported, got {list(a)} x {list(b)}")
    m, k = (a[1], a[0]) if node.attrs["transpose_a"] else a
    k2, n = (b[1], b[0]) if node.attrs["transpose_b"] else b
    if k != k2:
        raise ConversionError(f"MatMul inner sizes {k} and {k2} differ")
    if len(shapes) > 2 and (len(shapes[2]) > 2 or int(np.prod(shapes[2], dtype=object)) != n):
        raise ConversionError(f"bias {list(shapes[2])} does not match {n} outputs")
    return [(m, n)]


@shape_rule("ReduceMean")
def _reduce_shape(node, shapes, consts):
    x = shapes[0]
    if not x:
        raise ConversionError("cannot reduce a scalar")
    axes = [_axis(a, len(x), "ReduceMean axis") for a in node.attrs["axes"]]
    if not axes or len(set(axes)) != len(axes):
        raise ConversionError(f"axes {list(node.attrs['axes'])} must be distinct and not empty")
    axes = set(axes)
    if node.attrs["keep_dims"]:
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


@shape_rule("Reshape")
def _reshape_shape(node, shapes, consts):
    if node.inputs[1] not in consts:
        raise ConversionError("Reshape needs a constant shape")
    x = shapes[0]
    spec = consts[node.inputs[1]]
    if spec.dtype.kind not in "iu" or spec.ndim > 1 or spec.size > MAX_RANK:
        raise ConversionError(f"Reshape shape must be a 1-D integer list of at most {MAX_RANK} "
                              f"values, got {spec.dtype} {list(spec.shape)}")
    target = [int(v) for v in spec.reshape(-1)]
    if any(v < -1 for v in target) or target.count(-1) > 1:
        raise ConversionError(f"Reshape to {target}: values must be >= 0 with at most one -1")
    if any(v == 0 and i >= len(x) for i, v in enumerate(target)):
        raise ConversionError(f"Reshape to {target}: a 0 copies a dimension {list(x)} does not have")
    target = [x[i] if v == 0 else v for i, v in enumerate(target)]
    total = int(np.prod(x, dtype=object))
    if target.count(-1) == 1:
        known = int(np.prod([v for v in target if v != -1], dtype=object))
        if known == 0 or total % known:
            raise ConversionError(f"cannot reshape {list(x)} to {target}")
        target[target.index(-1)] = total // known
    if int(np.prod(target, dtype=object)) != total:
        raise ConversionError(f"cannot reshape {list(x)} to {target}")
    return [tuple(target)]


@shape_rule("Flatten")
def _flatten_shape(node, shapes, consts):
    x = shapes[0]
    ax = _axis(node.attrs["axis"], len(x), "Flatten axis", allow_end=True)
    return [(int(np.prod(x[:ax], dtype=object)), int(np.prod(x[ax:], dtype=object)))]


@shape_rule("Transpose")
def _transpose_shape(node, shapes, consts):
    perm = node.attrs["perm"]
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ConversionError(f"perm {list(perm)} is not a permutation of the {len(shapes[0])} "
                              f"axes of {list(shapes[0])}")
    return [tuple(shapes[0][p] for p in perm)]


@shape_rule("Concat")
def _concat_shape(node, shapes, consts):
    rank = len(shapes[0])
    if rank == 0:
        raise ConversionError("cannot concatenate scalars")
    ax = _axis(node.attrs["axis"], rank, "Concat axis")
    for s in shapes[1:]:
        if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
            raise ConversionError(f"inputs {[list(s) for s in shapes]} differ outside axis {ax}")
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


def check_shape(shape, what):
    """A known static shape: non-negative int dims, at most MAX_RANK, at most MAX_ELEMENTS."""
    if shape is None:
        raise ConversionError(f"{what} has an unknown shape")
    if len(shape) > MAX_RANK:
        raise ConversionError(f"{what} has rank {len(shape)}; at most {MAX_RANK} is supported")
    if any(int(d) < 1 for d in shape):
        raise ConversionError(f"{what} has shape {list(shape)}; every dimension must be >= 1")
    if int(np.prod([int(d) for d in shape], dtype=object)) > MAX_ELEMENTS:
        raise ConversionError(f"{what} has shape {list(shape)}: more than {MAX_ELEMENTS} elements")
    return tuple(int(d) for d in shape)


# Inputs that must be floating point when they are constants (weights, biases, normalisation
# parameters): an integer tensor there is a corrupt or mistyped file, not something to convert.
_FLOAT_INPUTS = {"Conv2D": (0, 1, 2), "MatMul": (0, 1, 2), "BatchNorm": (0, 1, 2, 3, 4),
                 "BiasAdd": (0, 1)}


def _check_dtypes(node, consts, where):
    for i, v in enumerate(node.inputs):
        arr = consts.get(v)
        if arr is None:
            continue
        if arr.dtype.kind not in "biuf":
            raise ConversionError(f"constant {v!r} has data type {arr.dtype}", element=where)
        if i in _FLOAT_INPUTS.get(node.op, ()) and arr.dtype.kind != "f":
            raise ConversionError(f"constant {v!r} (input {i}) has data type {arr.dtype}; this "
                                  "input must be floating point", element=where)
        if node.op in ("Add", "Sub", "Mul", "Div") and arr.dtype.kind != "f" and arr.size != 1:
            raise ConversionError(f"constant {v!r} (input {i}) has data type {arr.dtype}; only "
                                  "a scalar operand may be an integer", element=where)


def infer_shapes(graph):
    """Fill graph.shapes for every value from the input shapes and constants.

    Nodes must be in topological order (as ONNX requires and MINDIR stores them); every computed
    value is checked against `check_shape`, and every graph output must be produced.
    """
    for name, arr in graph.consts.items():
        graph.shapes[name] = tuple(arr.shape)
    for name in graph.inputs:
        graph.shapes[name] = check_shape(graph.shapes.get(name), f"graph input {name!r}")
    for node in graph.nodes:
        where = f"node {node.name!r} ({node.op})"
        missing = [v for v in node.inputs if v not in graph.shapes]
        if missing:
            raise ConversionError(f"inputs {missing} are not produced by any earlier node (a "
                                  "cycle, or a graph not in topological order)", element=where)
        _check_dtypes(node, graph.consts, where)
        rule = SHAPE_RULES.get(node.op)
        if rule is None:
            raise ConversionError(f"no shape rule for IR op {node.op}", element=where)
        try:
            outs = rule(node, [graph.shapes[v] for v in node.inputs], graph.consts)
        except ConversionError as e:
            raise e.locate(element=where)
        for name, shape in zip(node.outputs, outs):
            try:
                graph.shapes[name] = check_shape(shape, f"output {name!r}")
            except ConversionError as e:
                raise e.locate(element=where)
    for name in graph.outputs:
        if name not in graph.shapes:
            raise ConversionError(f"graph output {name!r} is not produced by any node")


def run_graph(graph, feed):
    """Evaluate the IR with numpy. feed: {input name: array}. Returns {output name: array}."""
    env = dict(graph.consts)
    env.update(feed)
    for node in graph.nodes:
        outs = KERNELS[node.op](node, *[env[v] for v in node.inputs])
        env[node.outputs[0]] = outs
    return {o: env[o] for o in graph.outputs}
