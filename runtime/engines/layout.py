"""The one rule that says whether a 4-D input tensor is NCHW or NHWC.

Engines use it to fill TensorSpec.format when the model itself does not say; the Classifier, the
converter's verifier and `toolkit bench --data` use it to decide how to feed images. One rule, so
that an engine and the code feeding it can never disagree about a tensor.

The rule: a format the model declares wins; otherwise the channel axis is the one of axis 1 and
axis 3 that holds an image channel count (1 or 3) while the other does not. A shape where both or
neither do (e.g. (1, 3, 8, 3)) is ambiguous and gives None: the caller's metadata decides.
"""
import dataclasses
from typing import Optional, Sequence

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_COUNTS = (1, 3)          # grey and colour images


def layout_of_shape(shape: Sequence[Optional[int]]) -> Optional[str]:
    """'NCHW'/'NHWC' when a 4-D shape says so unambiguously, else None."""
    if len(shape) != 4:
        return None
    first, last = shape[1] in CHANNEL_COUNTS, shape[3] in CHANNEL_COUNTS
    if first != last:
        return "NCHW" if first else "NHWC"
    return None


def image_layout(spec) -> Optional[str]:
    """The layout of a TensorSpec: its declared format, else what its shape says, else None."""
    if spec.format in LAYOUTS:
        return spec.format
    return layout_of_shape(spec.shape)


def with_layout(spec):
    """`spec` with `format` filled in by image_layout ('' when it is not a recognisable image)."""
    return dataclasses.replace(spec, format=image_layout(spec) or "")
