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
Every pass raises ConversionError instead of leaving a graph it could not handle; `run_pipeline`
stops at the first failing pass, names it in the error, and turns any other exception escaping a
pass (a bug: IndexError, KeyError, MemoryError ...) into a ConversionError saying so, never a
library traceback.
"""
from runtime.errors import ToolkitError

from ..errors import ConversionError
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
        try:
            fn(graph, options)
            graph.prune()
        except ConversionError as e:
            e.stage = e.stage or f"pass {name}"
            raise
        except ToolkitError:
            raise
        except MemoryError:
            raise ConversionError(f"pass {name} ran out of memory; the model's tensors are too large "
                                  "to convert here", stage=f"pass {name}") from None
        except Exception as e:  # a bug in the pass: say so, with the pass and the original error
            raise ConversionError(f"pass {name} failed unexpectedly (a converter bug, please "
                                  f"report it): {type(e).__name__}: {e}", stage=f"pass {name}") from e
        if log:
            log(name, graph)
    return graph
