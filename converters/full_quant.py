"""Full-integer (int8 activations) quantization of a lowered float MsModel, the official way.

The conventions are those of the official 2.0 converter's FULL_QUANT files
(../shared/golden/ms-official/README.md), so the official runtime runs our files:

  * int8 nodes (quantType QUANT_ALL): Conv2DFusion (depthwise too) and MatMulFusion with a constant
    2-D weight read transposed ([out, in]), the ops the official CPU target quantizes. Every other op
    stays float32 (AddFusion, pools, ReduceFusion, Reshape, Softmax, ...), as the official converter
    leaves them, and `--skip-quant NAME` keeps a named node float.
  * activations: int8, one asymmetric QuantParam per tensor from the calibrated range [lo, hi]
    (holding 0): scale = (hi - lo) / 255, zeroPoint = round(-128 - lo / scale).
  * weights: int8 symmetric narrow range [-127, 127], zeroPoint 0, one QuantParam per output channel
    (axis 0) with scale max|w_c| / 127 of the BN-folded weight (per tensor with per_channel=False).
  * bias: int32, scale s_x * s_w[c], zeroPoint 0, numBits 32; with bias correction the mean error the
    int8 weights make on the calibration data is taken out of it first.
  * QuantDTypeCast (src_t/dst_t 43/32 and 32/43) at every float/int8 boundary, named
    `<consumer>_dtype_cast_<k>_pre` (`Return_dtype_cast_<k>_pre` for a graph output); an int8 node's
    output keeps the float model's tensor name (per-layer comparison matches names), except a graph
    output, which stays float under its name while its int8 producer becomes `<name>_int8`.
  * graph inputs and outputs stay float32. Other QuantParam fields keep their schema defaults
    (`inited` false, as in official files).

Where this differs from the official converter: the layout Transpose it inserts (and quantizes) does
not exist in our lowering, and its bias correction is computed here analytically (the weight error
times the calibrated per-channel input mean) rather than from a second calibration pass.
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from runtime.msformat.model import (TYPE_FLOAT32, TYPE_INT8, TYPE_INT32, MsNode, MsTensor,
                                    QuantParam)

from .errors import ConversionError

QUANT_ALL = 5
CAST_ATTRS = {"to_int8": {"src_t": 43, "dst_t": 32, "axis": 0},
              "to_float": {"src_t": 32, "dst_t": 43, "axis": 0}}
MIN_SCALE = 1e-9                  # an all-zero tensor still gets a valid (positive) scale

# Why an op stays float (what `--quant full` reports); ops absent here stay float for the last reason.
FLOAT_REASONS = {
    "AddFusion": "no int8 kernel in the official CPU runtime (its converter leaves Add float)",
    "ReduceFusion": "no int8 kernel in the official CPU runtime",
    "AvgPoolFusion": "no int8 kernel in the official CPU runtime",
    "MaxPoolFusion": "no int8 kernel in the official CPU runtime",
    "Softmax": "float by the official convention",
}
OTHER_REASON = "no integer path in the official CPU runtime"


@dataclass
class FullQuantReport:
    int8_nodes: List[str] = field(default_factory=list)
    float_nodes: List[Tuple[str, str, str]] = field(default_factory=list)   # (name, op, why)
    casts: int = 0
    calibration_images: int = 0
    method: str = "minmax"

    def lines(self):
        out = [f"full int8: {len(self.int8_nodes)} node(s) on int8 kernels, "
               f"{len(self.float_nodes)} float, {self.casts} QuantDTypeCast(s)"]
        by_op = {}
        for name, op, why in self.float_nodes:
            by_op.setdefault((op, why), []).append(name)
        for (op, why), names in sorted(by_op.items()):
            shown = ", ".join(names[:4]) + (f", ... ({len(names)})" if len(names) > 4 else "")
            out.append(f"  stays float: {op} x{len(names)} ({why}): {shown}")
        return out


def activation_param(lo, hi):
    scale = max((hi - lo) / 255.0, MIN_SCALE)
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QuantParam(scale=float(scale), zero_point=zp, num_bits=8)


def weight_params(w, per_channel):
    """(int8 weight, scales per output channel) symmetric narrow range."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) if per_channel else \
        np.full(w.shape[0], float(np.abs(w).max()))
    scales = np.where(flat > 0, flat / 127.0, 1.0)
    q = np.clip(np.round(w / scales.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return q, scales


def _array(t):
    return np.frombuffer(bytes(t.data), "<f4").reshape(t.dims)


def candidates(model, skip=()):
    """{node index: why it cannot be int8, or None when it can} for every node."""
    out = {}
    for k, n in enumerate(model.nodes):
        why = None
        if n.name in skip:
            why = "--skip-quant"
        elif n.op_type == "Conv2DFusion":
            w = model.tensors[n.inputs[1]] if len(n.inputs) > 1 else None
            if w is None or not w.is_const or w.data_type != TYPE_FLOAT32 or len(w.dims) != 4:
                why = "weight is not a constant float32 [O, kh, kw, I] tensor"
        elif n.op_type == "MatMulFusion":
            w = model.tensors[n.inputs[1]] if len(n.inputs) > 1 else None
            if w is None or not w.is_const or w.data_type != TYPE_FLOAT32 or len(w.dims) != 2:
                why = "weight is not a constant float32 2-D tensor"
            elif not n.attrs.get("transpose_b") or n.attrs.get("transpose_a"):
                why = "only the [N, K] x [out, K]^T form has an int8 kernel"
            elif len(model.tensors[n.inputs[0]].dims) != 2:
                why = "input is not 2-D"
        else:
            why = FLOAT_REASONS.get(n.op_type, OTHER_REASON)
        if why is None and len(n.inputs) > 2 and not model.tensors[n.inputs[2]].is_const:
            why = "bias is not a constant"
        if why is None and model.tensors[n.inputs[0]].data_type != TYPE_FLOAT32:
            why = "input is not float32"
        out[k] = why
    return out


def check_skip_names(model, skip, source):
    names = {n.name for n in model.nodes}
    unknown = [s for s in skip if s not in names]
    if unknown:
        quantizable = [n.name for n in model.nodes if n.op_type in ("Conv2DFusion", "MatMulFusion")]
        raise ConversionError(f"--skip-quant {', '.join(map(repr, unknown))}: no node of that name; "
                              f"quantizable nodes: {', '.join(quantizable[:12])}"
                              + (" ..." if len(quantizable) > 12 else ""), path=source)


def _bias_error(w, wq, scales, means, group):
    """Mean output error of each channel caused by the int8 weight: sum (w_q s - w) * mean(x)."""
    err = wq.astype(np.float64) * scales.reshape((-1,) + (1,) * (w.ndim - 1)) - w
    if means is None:
        return np.zeros(w.shape[0])
    if w.ndim == 2:                                        # [out, K]
        return err @ means
    per_group_in = w.shape[3]
    out_per_group = w.shape[0] // max(group, 1)
    total = err.sum(axis=(1, 2))                           # [O, I/g]
    result = np.empty(w.shape[0])
    for o in range(w.shape[0]):
        g = o // out_per_group
        result[o] = total[o] @ means[g * per_group_in:(g + 1) * per_group_in]
    return result


def quantize_node(model, node, s_x, stats_in, options):
    """Make `node`'s weight int8 and its bias int32 (in place); returns nothing."""
    wt = model.tensors[node.inputs[1]]
    w = _array(wt).astype(np.float64)
    wq, scales = weight_params(w, options.per_channel)
    out = w.shape[0]
    if len(node.inputs) > 2:
        bias = _array(model.tensors[node.inputs[2]]).astype(np.float64).reshape(-1)
        bt = model.tensors[node.inputs[2]]
    else:
        bias = np.zeros(out)
        bt = MsTensor(name=f"{node.name}.bias_int32", dims=(out,), format=wt.format)
        model.tensors.append(bt)
        node.inputs.append(len(model.tensors) - 1)
    if options.bias_correction:
        means = stats_in.channel_means() if stats_in is not None else None
        if means is not None and means.shape[0] == (w.shape[1] if w.ndim == 2 else
                                                    w.shape[3] * max(node.attrs.get("group", 1), 1)):
            bias = bias - _bias_error(w, wq, scales, means, max(node.attrs.get("group", 1), 1))
    bias_scale = s_x * scales
    bq = np.clip(np.round(bias / bias_scale), -2 ** 31, 2 ** 31 - 1).astype("<i4")
    wt.data, wt.data_type = wq.tobytes(), TYPE_INT8
    wt.quant_params = [QuantParam(scale=float(s), zero_point=0, num_bits=8) for s in scales]
    bt.data, bt.data_type = bq.tobytes(), TYPE_INT32
    bt.quant_params = [QuantParam(scale=float(s), zero_point=0, num_bits=32) for s in bias_scale]
    node.quant_type = QUANT_ALL


def quantize_full(model, stats: Dict, options, source="<model>"):
    """A full-integer copy of the float `model` from calibration `stats` ({tensor: TensorStats});
    returns (model, FullQuantReport)."""
    check_skip_names(model, options.skip_quant, source)
    model = copy.deepcopy(model)
    why = candidates(model, set(options.skip_quant))
    int8_set = {k for k, w in why.items() if w is None}
    report = FullQuantReport()
    if not int8_set:
        raise ConversionError("--quant full: no node can run in int8 (only Conv2DFusion and "
                              "MatMulFusion with constant weights can)", path=source)

    def param(idx):
        st = stats.get(idx)
        if st is None or not np.isfinite(st.lo):
            raise ConversionError(f"calibration saw no values for tensor {model.tensors[idx].name!r}",
                                  path=source)
        return activation_param(*st.range(options.calib_method, options.calib_percentile))

    int8_tensors = set()
    for k in sorted(int8_set):
        node = model.nodes[k]
        s_x = param(node.inputs[0]).scale
        quantize_node(model, node, s_x, stats.get(node.inputs[0]), options)
        int8_tensors.add(node.outputs[0])
    # quantParams on every activation that crosses a boundary (the float ones too, like official files)
    for k, node in enumerate(model.nodes):
        for idx in ([node.inputs[0]] if k in int8_set else []) + ([node.outputs[0]] if k in int8_set else []):
            model.tensors[idx].quant_params = [param(idx)]
    for idx in int8_tensors:
        model.tensors[idx].data_type = TYPE_INT8

    def new_tensor(name, like, dtype):
        t = MsTensor(name=name, dims=tuple(like.dims), format=like.format, data_type=dtype,
                     quant_params=[copy.copy(q) for q in like.quant_params])
        model.tensors.append(t)
        return len(model.tensors) - 1

    def cast(name, src, dst, direction):
        report.casts += 1
        return MsNode(name=name, op_type="QuantDTypeCast", attrs=dict(CAST_ATTRS[direction]),
                      inputs=[src], outputs=[dst])

    nodes = []
    for k, node in enumerate(model.nodes):
        for j, idx in enumerate(node.inputs):
            t = model.tensors[idx]
            if t.is_const:
                continue
            wants_int8 = k in int8_set and j == 0
            if wants_int8 and idx not in int8_tensors:
                if not t.quant_params:
                    t.quant_params = [param(idx)]
                q = new_tensor(f"{node.name}_dtype_cast_{j + 1}_pre", t, TYPE_INT8)
                nodes.append(cast(model.tensors[q].name, idx, q, "to_int8"))
                node.inputs[j] = q
            elif not wants_int8 and idx in int8_tensors:
                f = new_tensor(f"{node.name}_dtype_cast_{j + 1}_pre", t, TYPE_FLOAT32)
                nodes.append(cast(model.tensors[f].name, idx, f, "to_float"))
                node.inputs[j] = f
        nodes.append(node)
        if k in int8_set:
            report.int8_nodes.append(node.name)
        else:
            report.float_nodes.append((node.name, node.op_type, why[k]))
    for j, idx in enumerate(model.outputs):
        if idx in int8_tensors:           # the float output keeps its index and name
            t = model.tensors[idx]
            q = new_tensor(f"{t.name}_int8", t, TYPE_INT8)
            for n in nodes:
                n.outputs = [q if o == idx else o for o in n.outputs]
                n.inputs = [q if i == idx else i for i in n.inputs]
            t.data_type = TYPE_FLOAT32
            nodes.append(cast(f"Return_dtype_cast_{j + 1}_pre", q, idx, "to_float"))
    model.nodes = nodes
    return model, report
