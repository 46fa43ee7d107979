"""Translate a whole MsModel: check every node has a handler, decode the constants, walk the nodes
in dependency order, and assemble the ONNX model.

Every failure is typed: ops without a handler and attributes without an ONNX form are collected
into one UnsupportedOpsError (the user sees all of them at once); a malformed node raises
ModelFormatError naming the file and the node, including any exception a handler did not expect.
"""
from onnx import TensorProto, helper

from ...errors import ModelFormatError, ToolkitError, UnsupportedOpsError
from ...msformat.model import TYPE_INT8, TYPE_UINT8, TYPEID_TO_NUMPY, MsModel
from ...msformat.weights import CorruptWeightError, WeightError, const_array
from . import ops_extra, ops_nn, ops_tensor  # noqa: F401  (importing them fills HANDLERS)
from .base import HANDLERS, NP_TO_ONNX, OPSET, Context, NotTranslatable, node_element

FULL_QUANT_TYPES = (1, 3, 5)      # AwareTraining, PostTraining, QUANT_ALL: int8 activations


def _unique_names(model, indices, fallback):
    names, seen = [], set()
    for k, idx in enumerate(indices):
        name = model.tensors[idx].name or f"{fallback}{k}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def _integer_activations(model, node):
    """A fully quantized node: flagged so, and (trusting the tensors) int8/uint8 activations."""
    if node.quant_type not in FULL_QUANT_TYPES or node.op_type == "QuantDTypeCast":
        return False
    return any(model.tensors[i].data_type in (TYPE_INT8, TYPE_UINT8) and not model.tensors[i].is_const
               for i in node.inputs + node.outputs)


def unsupported_nodes(model, handlers=None):
    """(node name, op) for every node without a handler, and for fully quantized nodes (int8
    activations need integer kernels); Custom nodes say their vendor type."""
    handlers = HANDLERS if handlers is None else handlers
    found = []
    for node in model.nodes:
        if _integer_activations(model, node):
            found.append((node.name, f"{node.op_type} (fully quantized, int8 activations)"))
        elif node.op_type not in handlers:
            detail = node.op_type
            if node.op_type == "Custom" and node.attrs.get("type"):
                detail = f"Custom:{node.attrs['type']}"
            found.append((node.name, detail))
    return found


def topological_order(model):
    produced_by = {o: k for k, n in enumerate(model.nodes) for o in n.outputs}
    order, done, visiting = [], set(), set()
    for start in range(len(model.nodes)):
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


def _decode_constants(ctx, model, source, problems):
    """ctx.consts for every constant a node or the graph output reads; the first consumer decides
    the per-channel axis of a weight-quantized tensor."""
    consumers = [(node, k, idx) for node in model.nodes for k, idx in enumerate(node.inputs)]
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


def translate(model: MsModel, source="<model>", handlers=None):
    """(onnx.ModelProto, input names, output names).

    Raises UnsupportedOpsError listing every unsupported node, ModelFormatError for a malformed
    one. `handlers` replaces the HANDLERS table (tests inject failing handlers this way).
    """
    handlers = HANDLERS if handlers is None else handlers
    if model.subgraphs:
        raise UnsupportedOpsError([(sg.name, "extra subgraph (control flow)")
                                   for sg in model.subgraphs[1:]], path=source)
    missing = unsupported_nodes(model, handlers)
    if missing:
        raise UnsupportedOpsError(missing, path=source)
    in_names = _unique_names(model, model.inputs, "input")
    out_names = _unique_names(model, model.outputs, "output")
    ctx = Context(model, source, reserved=in_names + out_names)
    problems = []
    _decode_constants(ctx, model, source, problems)
    graph_inputs = []
    for name, idx in zip(in_names, model.inputs):
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type))
        if elem is None:
            raise UnsupportedOpsError([(name, f"graph input of data type {t.data_type}")], path=source)
        shape = [d if d >= 0 else None for d in t.dims]
        graph_inputs.append(helper.make_tensor_value_info(name, elem, shape))
        ctx.values[idx] = {"logical": name}
    for k in topological_order(model):
        node = model.nodes[k]
        ctx.node = node
        try:
            _run_handler(handlers[node.op_type], ctx, node, source)
        except NotTranslatable as e:
            problems.append((node.name, f"{node.op_type}: {e}"))
            for o in node.outputs:
                ctx.values[o] = {"logical": ctx.fresh("failed"), "nchw": ctx.fresh("failed")}
    if problems:
        raise UnsupportedOpsError(problems, path=source)
    graph_outputs = []
    for name, idx in zip(out_names, model.outputs):
        ctx.nodes.append(helper.make_node("Identity", [ctx.value(idx)], [name]))
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type), TensorProto.FLOAT)
        graph_outputs.append(helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph(ctx.nodes, "ms_model", graph_inputs, graph_outputs, ctx.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ms-edge-toolkit")
    proto.ir_version = 8
    return proto, in_names, out_names
