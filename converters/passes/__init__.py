"""The ordered pass pipeline over the IR.

Why this order:
1. annotate_shapes first: every later pass (and SAME padding) needs shapes.
2. remove_identities before anything pattern-matches, so producers are adjacent to consumers.
3. fold_constants next: Casts/Reshapes of constants and constant sub-graphs disappear, so weights
   are plain constants when BatchNorm folding and bias merging look for them.
4. merge_bias before fold_batchnorm: MindSpore exports a conv with bias as Conv2D + BiasAdd and then
   the BatchNorm, so the BiasAdd must be inside the conv for the BatchNorm to see its conv. It also
   turns Dense (MatMul + BiasAdd) into one MatMul with bias.
5. fold_batchnorm before fuse_activation: the ReLU follows the BatchNorm, so the BatchNorm has to be
   gone for the ReLU to see the conv as its producer.
6. fuse_activation before to_nhwc: fusion is layout-independent and leaves fewer nodes to rewrite.
7. to_nhwc last (it re-annotates shapes): it inserts Transposes only where an op cannot run in NHWC,
   and no earlier pattern has to know about them.
Every pass raises ConversionError instead of leaving a graph it could not handle.
"""
from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fuse_activation import fuse_activation
from .layout import to_nhwc
from .merge_bias import merge_bias
from .remove_identities import remove_identities
from .shapes import annotate_shapes

PIPELINE = (
    ("annotate_shapes", annotate_shapes),
    ("remove_identities", remove_identities),
    ("fold_constants", fold_constants),
    ("merge_bias", merge_bias),
    ("fold_batchnorm", fold_batchnorm),
    ("fuse_activation", fuse_activation),
    ("to_nhwc", to_nhwc),
)
PASSES = dict(PIPELINE)


def run_pipeline(graph, options=None, log=None):
    """Run every pass in order; `log(name, graph)` is called after each one."""
    for name, fn in PIPELINE:
        fn(graph, options)
        graph.prune()
        if log:
            log(name, graph)
    return graph
