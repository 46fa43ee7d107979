"""Seed ONNX models built with onnx.helper, and proto-level mutations of them.

Semantic mutators name what they break (an attribute of a node, an initializer's dims against its
data, a node's input count, a Transpose perm, a graph output left dangling, a value's dtype); the
generic reflection mutator (proto_mutators.field_mutation) covers every other field.
"""
import numpy as np

from . import bytes_ops, proto_mutators

OPSET = 13


def _init(name, arr):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inputs, outputs, inits, name):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ms-edge-toolkit fuzz seed")
    model.ir_version = 8
    return model


def conv_net():
    """Conv-BN-ReLU-MaxPool, depthwise Conv-Clip, GlobalAveragePool-Flatten-Gemm-Softmax; 3 classes."""
    from onnx import helper
    r = np.random.default_rng(7)
    f32 = lambda *s: r.standard_normal(s).astype(np.float32) * 0.3  # noqa: E731
    inits = [_init("w1", f32(4, 3, 3, 3)), _init("b1", f32(4)),
             _init("bn_s", np.abs(f32(4)) + 0.5), _init("bn_b", f32(4)), _init("bn_m", f32(4)),
             _init("bn_v", np.abs(f32(4)) + 0.5), _init("w2", f32(4, 1, 3, 3)),
             _init("lo", np.float32(0)), _init("hi", np.float32(6)),
             _init("fc_w", f32(3, 4)), _init("fc_b", f32(3))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="dw", kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1], dilations=[1, 1], group=4),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="relu6"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    return _model(nodes, [("x", [1, 3, 16, 16])], [("y", [1, 3])], inits, "fuzz_conv")


def tensor_ops_net():
    """Transpose/Reshape/Concat/ReduceMean/AveragePool/Add/Mul/Sigmoid on an image input."""
    from onnx import helper
    r = np.random.default_rng(8)
    inits = [_init("shape", np.array([1, 2, 8, 8], np.int64)), _init("k", r.standard_normal((1, 2, 1, 1)).astype(np.float32)),
             _init("w", r.standard_normal((2, 4, 1, 1)).astype(np.float32))]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["t", "shape"], ["rs"], name="reshape"),
        helper.make_node("Mul", ["rs", "k"], ["m"], name="mul"),
        helper.make_node("Sigmoid", ["m"], ["s"], name="sigmoid"),
        helper.make_node("Concat", ["s", "rs"], ["cat"], name="concat", axis=1),
        helper.make_node("AveragePool", ["cat"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["ap", "w"], ["cv"], name="conv1x1", kernel_shape=[1, 1],
                         strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1]),
        helper.make_node("Add", ["cv", "cv"], ["ad"], name="add"),
        helper.make_node("ReduceMean", ["ad"], ["y"], name="mean", axes=[2, 3], keepdims=0),
    ]
    return _model(nodes, [("x", [1, 2, 8, 8])], [("y", [1, 2])], inits, "fuzz_tensor_ops")


def mlp():
    """MatMul-Add-Tanh-Gemm on a flat input (a non-image model)."""
    from onnx import helper
    r = np.random.default_rng(9)
    inits = [_init("w1", r.standard_normal((8, 16)).astype(np.float32)),
             _init("b1", r.standard_normal(16).astype(np.float32)),
             _init("w2", r.standard_normal((16, 3)).astype(np.float32)),
             _init("b2", r.standard_normal(3).astype(np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="matmul"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="bias"),
             helper.make_node("Tanh", ["hb"], ["a"], name="tanh"),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc")]
    return _model(nodes, [("x", [1, 8])], [("y", [1, 3])], inits, "fuzz_mlp")


SEEDS = {"conv_net": conv_net, "tensor_ops": tensor_ops_net, "mlp": mlp}


# ---- semantic mutators --------------------------------------------------------------------------

_INT_ATTR_VALUES = (0, 1, -1, 2, 3, 5, -5, 1 << 20, (1 << 31) - 1, -(1 << 31), (1 << 62))


def _m_attribute(rng, model, ops):
    from onnx import AttributeProto
    nodes = [n for n in model.graph.node if len(n.attribute)]
    if not nodes:
        return _m_input_count(rng, model, ops)
    node = rng.choice(nodes)
    a = rng.choice(node.attribute)
    how = rng.choice(("value", "value", "length", "delete", "retype", "unknown"))
    if how == "delete":
        node.attribute.remove(a)
        ops.append(f"node {node.name}: attribute {a.name} deleted")
    elif how == "unknown":
        node.attribute.add().CopyFrom(_attr("bogus_attr", rng.choice(_INT_ATTR_VALUES)))
        ops.append(f"node {node.name}: unknown attribute added")
    elif how == "retype":
        new = _attr(a.name, rng.choice(([1, 2], 1.5, "x", 3)))
        node.attribute.remove(a)
        node.attribute.add().CopyFrom(new)
        ops.append(f"node {node.name}: attribute {a.name} retyped to {new.type}")
    elif a.type == AttributeProto.INTS:
        vals = list(a.ints)
        if how == "length":
            vals = vals[:-1] if vals and rng.random() < 0.5 else vals + [rng.choice((0, 1, 7))] * rng.randint(1, 4)
        elif vals:
            vals[rng.randrange(len(vals))] = rng.choice(_INT_ATTR_VALUES)
        del a.ints[:]
        a.ints.extend(vals)
        ops.append(f"node {node.name}: {a.name} -> {vals}"[:200])
    elif a.type == AttributeProto.INT:
        a.i = rng.choice(_INT_ATTR_VALUES)
        ops.append(f"node {node.name}: {a.name} -> {a.i}")
    elif a.type == AttributeProto.FLOAT:
        a.f = rng.choice(proto_mutators._FLOATS)
        ops.append(f"node {node.name}: {a.name} -> {a.f}")
    else:
        proto_mutators.field_mutation(rng, a, ops)


def _attr(name, value):
    from onnx import helper
    return helper.make_attribute(name, value)


def _m_perm_axes(rng, model, ops):
    targets = [(n, a) for n in model.graph.node for a in n.attribute if a.name in ("perm", "axes", "axis")]
    if not targets:
        return _m_attribute(rng, model, ops)
    node, a = rng.choice(targets)
    if a.name == "axis":
        a.i = rng.choice((-5, -2, -1, 0, 1, 3, 4, 100))
        ops.append(f"node {node.name}: axis -> {a.i}")
        return
    vals = list(a.ints)
    how = rng.choice(("duplicate", "range", "short", "long", "negative"))
    if how == "duplicate" and len(vals) > 1:
        vals[1] = vals[0]
    elif how == "range":
        vals[rng.randrange(len(vals))] = rng.choice((4, 5, 100, -100))
    elif how == "short":
        vals = vals[:-1]
    elif how == "long":
        vals = vals + [len(vals)]
    else:
        vals = [-v - 1 for v in vals]
    del a.ints[:]
    a.ints.extend(vals)
    ops.append(f"node {node.name}: {a.name} -> {vals}")


def _m_initializer(rng, model, ops):
    inits = list(model.graph.initializer)
    if not inits:
        return _m_attribute(rng, model, ops)
    t = rng.choice(inits)
    how = rng.choice(("dims", "dims", "raw", "dtype", "duplicate", "remove", "rank0"))
    if how == "dims":
        dims = list(t.dims) or [1]
        k = rng.randrange(len(dims))
        dims[k] = rng.choice((0, dims[k] + 1, max(dims[k] - 1, 0), -1, 1 << 31, 1 << 40))
        del t.dims[:]
        t.dims.extend(dims)
        ops.append(f"initializer {t.name}: dims -> {dims} (data unchanged)")
    elif how == "raw":
        raw = t.raw_data
        t.raw_data = raw[:rng.randrange(len(raw))] if raw and rng.random() < 0.6 else raw + bytes(4)
        ops.append(f"initializer {t.name}: raw_data {len(raw)} -> {len(t.raw_data)} bytes")
    elif how == "dtype":
        t.data_type = rng.choice((0, 2, 3, 5, 6, 7, 9, 10, 11, 16, 17, 23, 99))
        ops.append(f"initializer {t.name}: data_type -> {t.data_type}")
    elif how == "duplicate":
        model.graph.initializer.add().CopyFrom(t)
        ops.append(f"initializer {t.name}: duplicated")
    elif how == "remove":
        model.graph.initializer.remove(t)
        ops.append(f"initializer {t.name}: removed (now an undefined input)")
    else:
        del t.dims[:]
        ops.append(f"initializer {t.name}: dims cleared (scalar claim)")


def _m_input_count(rng, model, ops):
    node = rng.choice(model.graph.node)
    how = rng.choice(("drop", "drop", "extra", "undefined", "empty"))
    ins = list(node.input)
    if how == "drop" and ins:
        ins.pop(rng.randrange(len(ins)))
    elif how == "extra":
        ins.append(rng.choice(ins) if ins else "x")
    elif how == "undefined" and ins:
        ins[rng.randrange(len(ins))] = "nowhere"
    else:
        ins = [""] + ins[1:]
    del node.input[:]
    node.input.extend(ins)
    ops.append(f"node {node.name} ({node.op_type}): inputs -> {ins}")


def _m_outputs(rng, model, ops):
    from onnx import TensorProto, helper
    g = model.graph
    how = rng.choice(("dangling", "clear-node-outputs", "duplicate-output", "cycle", "extra-graph-output"))
    node = rng.choice(g.node)
    if how == "dangling":
        g.output[0].name = "never_produced"
    elif how == "clear-node-outputs":
        del node.output[:]
    elif how == "duplicate-output":
        other = rng.choice(g.node)
        del node.output[:]
        node.output.extend(other.output)
    elif how == "cycle" and node.input:
        node.input[0] = node.output[0]
    else:
        produced = [o for n in g.node for o in n.output] or ["never_produced"]
        g.output.add().CopyFrom(helper.make_tensor_value_info(rng.choice(produced),
                                                              TensorProto.FLOAT, None))
    ops.append(f"graph outputs: {how} at node {node.name}")


def _m_value_info(rng, model, ops):
    g = model.graph
    vi = rng.choice(list(g.input) + list(g.output))
    tt = vi.type.tensor_type
    how = rng.choice(("dim", "dim", "rank", "dtype", "symbolic", "no-shape"))
    dims = tt.shape.dim
    if how == "dim" and len(dims):
        d = dims[rng.randrange(len(dims))]
        d.dim_value = rng.choice((0, 1, 2, 5, 1 << 16, 1 << 31, 1 << 40))
    elif how == "rank" and len(dims):
        if rng.random() < 0.5:
            del dims[-1]
        else:
            dims.add().dim_value = 1
    elif how == "dtype":
        tt.elem_type = rng.choice((0, 2, 3, 6, 7, 9, 10, 11, 16, 99))
    elif how == "symbolic" and len(dims):
        dims[rng.randrange(len(dims))].dim_param = "N"
    else:
        tt.ClearField("shape")
    ops.append(f"value {vi.name}: {how} -> {[d.dim_value or d.dim_param for d in tt.shape.dim]} "
               f"elem_type {tt.elem_type}")


def _m_op_type(rng, model, ops):
    node = rng.choice(model.graph.node)
    old = node.op_type
    node.op_type = rng.choice(("Relu", "Conv", "Gemm", "Transpose", "Softmax", "Concat", "Reshape",
                               "MaxPool", "Flatten", "NoSuchOp", "Identity", "Cast"))
    if rng.random() < 0.1:
        node.domain = "com.example"
    ops.append(f"node {node.name}: op {old} -> {node.op_type} domain {node.domain!r}")


def _m_opset(rng, model, ops):
    model.opset_import[0].version = rng.choice((0, 1, 7, 10, 11, 13, 17, 21, 99))
    if rng.random() < 0.3:
        model.ir_version = rng.choice((0, 1, 3, 99))
    ops.append(f"opset {model.opset_import[0].version} ir_version {model.ir_version}")


def _m_field(rng, model, ops):
    proto_mutators.field_mutation(rng, model, ops)


SEMANTIC = (_m_attribute, _m_attribute, _m_perm_axes, _m_initializer, _m_initializer, _m_input_count,
            _m_outputs, _m_value_info, _m_value_info, _m_op_type, _m_opset, _m_field, _m_field)


def mutate_onnx(rng, data, ops):
    import onnx
    r = rng.random()
    if r < 0.85:
        model = onnx.ModelProto()
        model.ParseFromString(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            if not model.graph.node:        # an earlier mutation removed every node
                ops.append("no node left to mutate")
                break
            rng.choice(SEMANTIC)(rng, model, ops)
        if rng.random() < 0.05:
            return proto_mutators.wire_string_mutation(rng, model, ops)
        return model.SerializeToString()
    return bytes_ops.byte_mutation(rng, data, ops)
