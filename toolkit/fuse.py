"""BatchNorm folding for inference: conv(x) -> BN  ==  conv'(x) + b'.

w' = w * gamma / sqrt(var + eps),  b' = beta + (b - mean) * gamma / sqrt(var + eps)  (b = 0 without bias).
Pairs are found structurally (a Conv2d directly followed by a BatchNorm2d inside a SequentialCell, as in
MobileNetV2) and from cells that name them (`fold_pairs()`, as ResNet's `conv1`/`bn1` attributes, whose
order a SequentialCell cannot express); the result's names match `toolkit.models.build(..., fused=True)`.
Exporters (MINDIR, ONNX) do not fold BatchNorm themselves (platform-facts.md).
"""
import numpy as np

from runtime.errors import ToolkitError
from runtime.mindspore_import import from_mindspore


def _conv_bn_pairs(net):
    nn = from_mindspore("mindspore", "nn")
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.SequentialCell):
            children = list(cell.cell_list)
            for conv, bn in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    yield conv, bn
        if hasattr(cell, "fold_pairs"):
            yield from cell.fold_pairs()


def fuse_bn_params(net):
    """All parameters of the fused variant of `net` as {name: float32 ndarray} (BN statistics folded)."""
    params = {p.name: p.asnumpy().astype(np.float32) for p in net.get_parameters()}
    pairs = list(_conv_bn_pairs(net))
    if not pairs:
        raise ToolkitError("no Conv2d followed by BatchNorm2d found: nothing to fold")
    for conv, bn in pairs:
        gamma, beta = bn.gamma.asnumpy(), bn.beta.asnumpy()
        mean, var = bn.moving_mean.asnumpy(), bn.moving_variance.asnumpy()
        scale = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + bn.eps))
        w = conv.weight.asnumpy().astype(np.float64)
        b = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else 0.0
        bias_name = conv.weight.name[:-len("weight")] + "bias"
        params[conv.weight.name] = (w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        params[bias_name] = (beta + (b - mean) * scale).astype(np.float32)
        for p in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance):
            params.pop(p.name, None)
    return params


def count_batchnorm(net):
    """Number of BatchNorm cells in a network (0 for a fused one)."""
    nn = from_mindspore("mindspore", "nn")
    return sum(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
