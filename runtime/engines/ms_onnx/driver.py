"""Translate an MsModel: keep the nodes the graph outputs need (the rest, e.g. the training half of an
on-device training graph, is pruned), check each has a handler, decode their constants, walk them in dependency
order, and assemble the ONNX model.

Every failure is typed: ops without a handler and attributes without an ONNX form are collected
into one UnsupportedOpsError (the user sees all of them at once); a malformed node raises
ModelFormatError naming the file and the node, including any exception a handler did not expect.
"""
import math
import re

import numpy as np

import onnx
from onnx import TensorProto, helper, shape_inference

from ...errors import InputShapeError, ModelFormatError, ToolkitError, UnsupportedOpsError
from ...msformat.model import TYPE_INT8, TYPE_UINT8, TYPEID_TO_NUMPY, MsModel
from ...msformat.weights import CorruptWeightError, WeightError, const_array
from . import checks, int8, ops_extra, ops_int8, ops_nn, ops_tensor  # noqa: F401  (they fill HANDLERS)
from .base import HANDLERS, NP_TO_ONNX, OPSET, Context, NotTranslatable, node_element
from .int8 import is_full_quant_node  # noqa: F401  (also part of this module's API)
from .ops_int8 import INT8_HANDLERS



def _unique_names(model, indices, fallback):
    names, seen = [], set()
    for k, idx in enumerate(indices):
        name = model.tensors[idx].name or f"{fallback}{k}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def needed_nodes(model):
    """Indices of the nodes the graph outputs depend on, in file order. The rest (the training half
    of an on-device training file, dead branches) is pruned: never checked, decoded or translated."""
    produced_by = {o: k for k, n in enumerate(model.nodes) for o in n.outputs}
    needed, stack = set(), [produced_by[i] for i in model.outputs if i in produced_by]
    while stack:
        k = stack.pop()
        if k in needed:
            continue
        needed.add(k)
        stack.extend(produced_by[i] for i in model.nodes[k].inputs
                     if i in produced_by and produced_by[i] not in needed)
    return sorted(needed)


def unsupported_nodes(model, handlers=None, nodes=None, int8_handlers=None):
    """(node name, op) for every node without a handler, and for fully quantized nodes whose op has
    no integer kernel (int8 activations are never run by a float handler); Custom nodes say their
    vendor type. `nodes` (indices) restricts the check, e.g. to needed_nodes(model); by default
    every node is checked."""
    handlers = HANDLERS if handlers is None else handlers
    int8_handlers = INT8_HANDLERS if int8_handlers is None else int8_handlers
    found = []
    for node in (model.nodes if nodes is None else [model.nodes[k] for k in nodes]):
        if is_full_quant_node(model, node):
            if node.op_type not in int8_handlers:
                found.append((node.name, f"{node.op_type} (fully quantized, int8 activations: "
                                         "no integer kernel)"))
        elif node.op_type not in handlers:
            detail = node.op_type
            if node.op_type == "Custom" and node.attrs.get("type"):
                detail = f"Custom:{node.attrs['type']}"
            found.append((node.name, detail))
    return found


def topological_order(model, nodes=None):
    """Node indices in dependency order; `nodes` restricts the walk to those (and what they read)."""
    produced_by = {o: k for k, n in enumerate(model.nodes) for o in n.outputs}
    order, done, visiting = [], set(), set()
    for start in (range(len(model.nodes)) if nodes is None else nodes):
        stack = [(start, False)]
        while stack:
            k, expanded = stack.pop()
            if k in done:
                continue
            if expanded:
                visiting.discard(k)
                done.add(k)
                order.append(k)
                continue
            visiting.add(k)
            stack.append((k, True))
            for i in model.nodes[k].inputs:
                p = produced_by.get(i)
                if p is not None and p not in done and p not in visiting:
                    stack.append((p, False))
    return order


def _decode_constants(ctx, model, source, problems, nodes):
    """ctx.consts for every constant a translated node (indices `nodes`) or the graph output reads;
    the first consumer decides the per-channel axis of a weight-quantized tensor."""
    consumers = [(model.nodes[n], k, idx) for n in nodes for k, idx in enumerate(model.nodes[n].inputs)]
    consumers += [(None, 0, idx) for idx in model.outputs]     # constants that are graph outputs
    for node, k, idx in consumers:
        t = model.tensors[idx]
        if t.is_const and idx not in ctx.consts and idx not in model.inputs:
            try:
                ctx.consts[idx] = const_array(t, model.version, node, k)
            except CorruptWeightError as e:
                raise ModelFormatError(source, f"the weights are corrupt: {e}",
                                       element=f"tensor {idx} ({t.name!r})") from None
            except WeightError as e:
                problems.append((t.name or f"tensor {idx}", str(e)))
                ctx.values[idx] = {"logical": ctx.fresh("undecodable")}
            except ToolkitError:
                raise
            except Exception as e:     # a decoder that did not expect these bytes
                raise ModelFormatError(source, f"constant cannot be decoded: {type(e).__name__}: "
                                               f"{e}", element=f"tensor {idx} ({t.name!r})") from None


def _run_handler(fn, ctx, node, source):
    """One handler call; anything but the two typed outcomes becomes ModelFormatError for the node."""
    try:
        fn(ctx, node)
    except (NotTranslatable, ToolkitError):
        raise
    except RecursionError:
        raise ModelFormatError(source, "nesting too deep to translate",
                               element=node_element(node)) from None
    except Exception as e:     # attributes no handler check anticipated: still this node's fault
        raise ModelFormatError(source, f"malformed attributes or operands "
                                       f"({type(e).__name__}: {e})", element=node_element(node)) from None


def requested_shapes(model, source, in_names, input_shapes):
    """{graph input index: dims} for the inputs whose requested shape differs from the stored one.
    `input_shapes` maps input names to shapes of the stored rank, every dim a positive integer."""
    if not input_shapes:
        return {}
    if not isinstance(input_shapes, dict):
        raise InputShapeError(source, f"input_shapes must map input names to shapes, not "
                                      f"{type(input_shapes).__name__}")
    unknown = sorted(set(input_shapes) - set(in_names), key=str)
    if unknown:
        raise InputShapeError(source, f"input_shapes names {unknown} are not inputs of the model "
                                      f"(inputs: {in_names})")
    out = {}
    for name, idx in zip(in_names, model.inputs):
        if name not in input_shapes:
            continue
        stored = tuple(model.tensors[idx].dims)
        value = input_shapes[name]
        try:
            dims = tuple(value)
            if any(isinstance(d, bool) or int(d) != d for d in dims):
                raise TypeError
            dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError, OverflowError):
            raise InputShapeError(source, f"shape {value!r} is not a sequence of integers",
                                  element=f"input {name!r}") from None
        if len(dims) != len(stored) or any(d <= 0 for d in dims):
            raise InputShapeError(source, f"shape {list(dims)} must have the stored rank "
                                          f"{len(stored)} ({list(stored)}) and positive dims",
                                  element=f"input {name!r}")
        if math.prod(dims) > checks.MAX_ELEMENTS:
            raise InputShapeError(source, f"shape {list(dims)} holds more than "
                                          f"{checks.MAX_ELEMENTS} elements", element=f"input {name!r}")
        if dims != stored:
            out[idx] = dims
    return out


_PROPAGATED_CONST = 4096       # integer initializers up to this size take part in data propagation


def _value_type(ctx, name):
    """(elem type, dims or None) of an ONNX value built so far."""
    if name in ctx.inferred:
        return ctx.inferred[name]
    proto = ctx.init_protos.get(name)
    if proto is not None:
        return proto.data_type, tuple(proto.dims)
    return TensorProto.FLOAT, None


ORIGIN_NAME = re.compile(r"^ms(\d+)\.(\d+)$")


def name_nodes_of(ctx, k, start):
    """Name the ONNX nodes translated for `.ms` node k `ms<k>.<j>`: a profile of the translated graph
    (toolkit bench --profile) is then reported by the `.ms` node names (origin_of)."""
    for j, onnx_node in enumerate(ctx.nodes[start:]):
        onnx_node.name = f"ms{k}.{j}"


def origin_of(onnx_node_name):
    """The `.ms` node index an ONNX node of the translated graph came from, or None (a node that
    onnxruntime's optimizer made keeps the name of the node it started from, when it does)."""
    m = ORIGIN_NAME.match(onnx_node_name or "")
    return int(m.group(1)) if m else None


def _infer_new_nodes(ctx, node, start):
    """Shape inference (strict, with data propagation) over the ONNX nodes translated for `node`,
    from the types of the values they read: records their output shapes in ctx.inferred, so the
    next handlers see the resized dims. A contradiction is this node's InputShapeError."""
    new = ctx.nodes[start:]
    produced = {o for n in new for o in n.output}
    inputs, inits, seen = [], [], set()
    for n in new:
        for name in n.input:
            if not name or name in produced or name in seen:
                continue
            seen.add(name)
            proto = ctx.init_protos.get(name)
            if proto is not None and proto.data_type == TensorProto.INT64 and \
                    math.prod(proto.dims) <= _PROPAGATED_CONST:
                inits.append(proto)
                continue
            elem, dims = _value_type(ctx, name)
            inputs.append(helper.make_tensor_value_info(name, elem, None if dims is None else
                                                        [d if d is not None else None for d in dims]))
    graph = helper.make_graph(new, "step", inputs, [], inits)
    mini = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    mini.ir_version = 8
    try:
        done = shape_inference.infer_shapes(mini, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ctx.shape_conflict(problem) from None
    for vi in done.graph.value_info:
        t = vi.type.tensor_type
        dims = None
        if t.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        ctx.inferred[vi.name] = (t.elem_type or TensorProto.FLOAT, dims)


def _output_shape(ctx, idx):
    dims = ctx.dims(idx)
    return [d if d >= 0 else None for d in dims] if dims else None


def _int8_in(ctx, name):
    """An int8 graph input (fed as int8) as the uint8 q + 128 every int8 value travels as."""
    wide = ctx.add("Add", [ctx.add("Cast", [name], to=TensorProto.INT16), ctx.init(np.int16(int8.SHIFT))])
    return ctx.add("Cast", [wide], to=TensorProto.UINT8)


def _int8_out(ctx, name):
    wide = ctx.add("Sub", [ctx.add("Cast", [name], to=TensorProto.INT16), ctx.init(np.int16(int8.SHIFT))])
    return ctx.add("Cast", [wide], to=TensorProto.INT8)


def _exposed(ctx, model, idx):
    """A tensor as an extra float32 output (per-layer comparison, calibration): int8 ones dequantized."""
    name = ctx.value(idx, "logical", "an exposed tensor")
    if int8.is_int8(model, idx):
        scale, zp = int8.activation_quant(ctx, idx)
        return int8.dequantize(ctx, name, scale, zp)
    return name


def translate(model: MsModel, source="<model>", handlers=None, input_shapes=None,
              int8_mode=int8.DEFAULT_INT8_MODE, expose=(), int8_handlers=None):
    """(onnx.ModelProto, input names, output names).

    Raises UnsupportedOpsError listing every unsupported node, ModelFormatError for a malformed
    one. `handlers` replaces the HANDLERS table (tests inject failing handlers this way).
    `input_shapes` ({input name: shape}) translates for other input shapes than the stored ones,
    like the official Model.resize: every dim the handlers read is then inferred from the requested
    shapes, and the graph's outputs carry their inferred shapes; InputShapeError names the input or
    the node that cannot take them.
    `int8_mode` ("exact" or "fast", see int8.py) is the arithmetic of fully quantized nodes, which
    `int8_handlers` (default INT8_HANDLERS) translate.
    `expose` (tensor indices) adds those tensors as extra float32 outputs named after them (after
    the graph outputs; int8 ones dequantized), for per-layer comparison and calibration.
    """
    handlers = HANDLERS if handlers is None else handlers
    int8_mode = int8.check_mode(int8_mode)
    if model.subgraphs:
        raise UnsupportedOpsError([(sg.name, "extra subgraph (control flow)")
                                   for sg in model.subgraphs[1:]], path=source)
    needed = needed_nodes(model)
    int8_handlers = INT8_HANDLERS if int8_handlers is None else int8_handlers
    missing = unsupported_nodes(model, handlers, needed, int8_handlers)
    if missing:
        raise UnsupportedOpsError(missing, path=source)
    in_names = _unique_names(model, model.inputs, "input")
    out_names = _unique_names(model, model.outputs, "output")
    resized = requested_shapes(model, source, in_names, input_shapes)
    expose = [i for i in dict.fromkeys(expose) if i not in model.outputs]
    extra_names = _unique_names(model, expose, "exposed") if expose else []
    ctx = Context(model, source, reserved=in_names + out_names + extra_names, input_shapes=resized)
    ctx.int8_mode = int8_mode
    problems = []
    _decode_constants(ctx, model, source, problems, needed)
    graph_inputs = []
    for name, idx in zip(in_names, model.inputs):
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type))
        if elem is None:
            raise UnsupportedOpsError([(name, f"graph input of data type {t.data_type}")], path=source)
        shape = [d if d >= 0 else None for d in ctx.dims(idx)]
        graph_inputs.append(helper.make_tensor_value_info(name, elem, shape))
        ctx.inferred[name] = (elem, tuple(shape))
        ctx.values[idx] = {"logical": _int8_in(ctx, name) if t.data_type == TYPE_INT8 else name}
    for k in topological_order(model, needed):
        node = model.nodes[k]
        ctx.node = node
        start = len(ctx.nodes)
        try:
            table = int8_handlers if is_full_quant_node(model, node) else handlers
            _run_handler(table[node.op_type], ctx, node, source)
            name_nodes_of(ctx, k, start)
            if resized and not problems:
                _infer_new_nodes(ctx, node, start)
        except NotTranslatable as e:
            problems.append((node.name, f"{node.op_type}: {e}"))
            for o in node.outputs:
                ctx.values[o] = {"logical": ctx.fresh("failed"), "nchw": ctx.fresh("failed")}
    if problems:
        raise UnsupportedOpsError(problems, path=source)
    graph_outputs = []
    for name, idx in zip(out_names, model.outputs):
        value = ctx.value(idx)
        if int8.is_int8(model, idx) and model.tensors[idx].data_type == TYPE_INT8:
            value = _int8_out(ctx, value)
        ctx.nodes.append(helper.make_node("Identity", [value], [name]))
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type), TensorProto.FLOAT)
        shape = _output_shape(ctx, idx) if resized else None
        graph_outputs.append(helper.make_tensor_value_info(name, elem, shape))
    for name, idx in zip(extra_names, expose):
        ctx.node = None
        ctx.nodes.append(helper.make_node("Identity", [_exposed(ctx, model, idx)], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        out_names = out_names + [name]
    graph = helper.make_graph(ctx.nodes, "ms_model", graph_inputs, graph_outputs, ctx.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ms-edge-toolkit")
    proto.ir_version = 8
    return proto, in_names, out_names
