"""Validated reading of node attributes and constant operands: every handler parses through these.

A `.ms` file is untrusted input. A value that no valid model holds (stride 0, a pad of a million
pixels, an axis beyond the rank, a permutation with a repeat) raises ModelFormatError naming the file
and the node, instead of a ZeroDivisionError here or an 8 GB allocation inside onnxruntime later.
Values that are valid but have no ONNX form stay NotTranslatable (they are unsupported, not wrong).

Caps, where the input size cannot bound a value (dynamic dims):
  MAX_WINDOW    kernel size, stride, dilation, block size, LRN size: at most 4096 per axis
  MAX_PAD       one pad of a conv/pool/Pad when the padded axis has no known size: 1024
  MAX_ELEMENTS  elements of a tensor an attribute makes the graph create (padded input, Tile,
                BroadcastTo, Resize, Reshape target): 2**28 (1 GiB of float32)
"""
import math

import numpy as np

MAX_WINDOW = 4096
MAX_PAD = 1024
MAX_ELEMENTS = 1 << 28


def as_int(ctx, value, what):
    """int(value), or ModelFormatError for NaN, infinities, non-integral floats and non-numbers."""
    try:
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ctx.malformed(f"{what} {value!r} is not an integer") from None


def int_list(ctx, values, what):
    if values is None:
        return []
    if isinstance(values, np.ndarray):
        values = values.reshape(-1)
    elif np.ndim(values) == 0:
        values = [values]
    try:
        return [as_int(ctx, v, what) for v in values]
    except TypeError:
        raise ctx.malformed(f"{what} {values!r} is not a list of integers") from None


def const_ints(ctx, i, what):
    """The node's i-th input as a list of ints; it must be a constant (else NotTranslatable)."""
    value = ctx.need_const(i, what)
    if not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)):
        raise ctx.malformed(f"{what} (input {i}) has data type {value.dtype}, not integers")
    return int_list(ctx, value.reshape(-1), what)


def scalar(ctx, value, what):
    """A constant that must hold exactly one element."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ctx.malformed(f"{what} holds {arr.size} values, expected one (shape {arr.shape})")
    return arr.reshape(())


def in_range(ctx, value, what, lo, hi):
    value = as_int(ctx, value, what)
    if not lo <= value <= hi:
        raise ctx.malformed(f"{what} {value} is outside [{lo}, {hi}]")
    return value


def axis(ctx, value, rank, what="axis"):
    """A (possibly negative) axis of a rank-`rank` tensor, normalised to [0, rank). With rank None
    (unknown) the axis passes as written, for onnxruntime to check against the real rank."""
    value = as_int(ctx, value, what)
    if rank is None:
        return value
    if not -rank <= value < rank:
        raise ctx.malformed(f"{what} {value} is out of range for a tensor of rank {rank}")
    return value + rank if value < 0 else value


def axes(ctx, values, rank, what="axes"):
    """Distinct axes, normalised to [0, rank)."""
    out = [axis(ctx, v, rank, what) for v in int_list(ctx, values, what)]
    if len(set(out)) != len(out):
        raise ctx.malformed(f"{what} {list(values)} repeat an axis")
    return out


def perm(ctx, values, rank):
    values = int_list(ctx, values, "perm")
    if sorted(values) != list(range(len(values))) or (rank is not None and len(values) != rank):
        raise ctx.malformed(f"perm {values} is not a permutation of the {rank} axes of the input")
    return values


def window(ctx, values, what, lo=1, hi=MAX_WINDOW):
    """Kernel sizes, strides, dilations: every entry in [lo, hi]."""
    for v in values:
        if not lo <= v <= hi:
            raise ctx.malformed(f"{what} {list(values)}: {v} is outside [{lo}, {hi}]")
    return list(values)


def pads(ctx, values, sizes, what, floor=0):
    """Pads (one per entry of `sizes`, the padded axes' lengths or None): non-negative, each at most
    max(axis length, MAX_PAD) where the length is known, MAX_PAD where it is not."""
    for v, size in zip(values, sizes):
        bound = max(size, MAX_PAD) if size is not None and size > 0 else MAX_PAD
        if not floor <= v <= bound:
            raise ctx.malformed(f"{what} {list(values)}: {v} is outside [{floor}, {bound}]")
    return list(values)


def elements(ctx, shape, what):
    """Refuse a tensor of more than MAX_ELEMENTS elements (shape of non-negative ints)."""
    n = math.prod(int(d) for d in shape)
    if n > MAX_ELEMENTS:
        raise ctx.malformed(f"{what} of shape {list(shape)} would hold {n} elements "
                            f"(more than {MAX_ELEMENTS})")
    return n


def shape(ctx, values, what, allow_unknown=False):
    """A target shape: non-negative dims (one -1 if allow_unknown; 0 copies a dim in Reshape),
    holding at most MAX_ELEMENTS elements."""
    values = int_list(ctx, values, what)
    low = -1 if allow_unknown else 0
    if any(v < low for v in values) or values.count(-1) > 1:
        raise ctx.malformed(f"{what} {values} has a negative dimension"
                            + (" (or more than one -1)" if allow_unknown else ""))
    elements(ctx, [v for v in values if v > 0], what)
    return values
