"""The physical limit: a model's FLOPs over the machine's measured peak FLOP rate.

FLOPs are counted from the ONNX graph after shape inference: Conv/ConvTranspose/Gemm/MatMul multiply-
accumulates x 2 (elementwise ops, pooling and BatchNorm are left out; they are a few percent of a CNN).
The peak rate is a large float32 numpy matmul, measured in a fresh process whose BLAS uses exactly the
given number of threads.
"""
import json
import math
import subprocess
import sys

from runtime.errors import ModelFormatError


def _dims(value_info):
    t = value_info.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim]


def count_flops(onnx_path):
    """(FLOPs per image, {op_type: FLOPs per image}) of an ONNX model, by MACs x 2."""
    import onnx
    from onnx import shape_inference
    try:
        model = shape_inference.infer_shapes(onnx.load(onnx_path))
    except Exception as e:  # onnx raises several unrelated types on bad files
        raise ModelFormatError(onnx_path, f"cannot read it as ONNX: {e}") from None
    g = model.graph
    shapes = {v.name: _dims(v) for v in list(g.input) + list(g.value_info) + list(g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    attrs = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # noqa: E731
    inits = {t.name for t in g.initializer}
    batch = next((shapes[i.name][0] for i in g.input if i.name not in inits and shapes.get(i.name)), 1)
    by_op = {}
    for node in g.node:
        macs = _macs(node, shapes, attrs(node))
        if macs is None:
            continue
        if macs < 0:
            raise ModelFormatError(onnx_path, f"node {node.name or node.op_type}: shapes not inferred")
        by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    by_op = {k: v / batch for k, v in by_op.items()}
    return sum(by_op.values()), by_op


def _macs(node, shapes, attrs):
    get = lambda name: shapes.get(name)  # noqa: E731
    if node.op_type == "Conv":
        out, w = get(node.output[0]), get(node.input[1])
        if not out or not w:
            return -1
        return math.prod(out) * math.prod(w[1:])                 # each output: Cin/g * kh * kw MACs
    if node.op_type == "ConvTranspose":
        x, w = get(node.input[0]), get(node.input[1])
        if not x or not w:
            return -1
        return math.prod(x) * math.prod(w[1:])                   # each input: Cout/g * kh * kw MACs
    if node.op_type == "Gemm":
        a, b = get(node.input[0]), get(node.input[1])
        if not a or not b:
            return -1
        m, k = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
        n = b[0] if attrs.get("transB") else b[1]
        return m * n * k
    if node.op_type == "MatMul":
        a, out = get(node.input[0]), get(node.output[0])
        if not a or not out:
            return -1
        return math.prod(out) * a[-1]
    return None


PEAK_SCRIPT = """
import json, sys, time
import numpy as np
sizes, repeats = [int(v) for v in sys.argv[1].split(",")], int(sys.argv[2])
rng = np.random.default_rng(0)
best = None
for n in sizes:
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    for _ in range(repeats):
        t0 = time.perf_counter(); a @ b; dt = time.perf_counter() - t0
        rate = 2.0 * n ** 3 / dt
        if best is None or rate > best["flops_per_s"]:
            best = {"n": n, "best_s": dt, "flops_per_s": rate}
print(json.dumps(best))
"""


def peak_flop_rate(threads, n=(1024, 2048), repeats=5, timeout=300):
    """Best measured float32 FLOP/s of n x n matmuls (each size in `n`, `repeats` times each) with
    `threads` BLAS threads. The best is taken because background load only ever slows a run down."""
    from .isolation import worker_env
    sizes = [n] if isinstance(n, int) else list(n)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, ",".join(map(str, sizes)), str(repeats)],
                         env=worker_env(threads), capture_output=True, text=True, timeout=timeout, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["threads"] = threads
    return result


def limit_ms(flops_per_image, batch, flops_per_s):
    """Lowest possible latency of one call of `batch` images at the peak rate, in ms."""
    return flops_per_image * batch / flops_per_s * 1e3
