"""Run an array of any length through an engine in chunks, the one place padding is written.

A model whose input batch is fixed (e.g. exported at batch 8) takes exactly that many samples per
call: the short last chunk is padded with zeros and the padded rows are stripped from the result.
A model with a dynamic batch gets chunks of at most `max_batch`. Callers: runtime.Classifier,
`toolkit eval`, feature extraction, `toolkit convert --verify` and `toolkit bench --data`.
"""
import numpy as np

from ..errors import ToolkitError

MAX_BATCH = 32


def fixed_batch(spec):
    """The input's fixed batch size, or None when the batch dimension is dynamic (or absent)."""
    return spec.shape[0] if spec.shape and spec.shape[0] is not None else None


def run_batched(engine, array, max_batch=MAX_BATCH, output=None, lock=None) -> np.ndarray:
    """The engine's output for every row of `array`, as one array of len(array) rows.

    The engine must take a single input. `output` names the output to return (default: the
    first); `lock`, if given, is held around every engine.run() call (engines that are not
    thread-safe, see runtime.formats.EngineEntry.thread_safe).
    """
    specs = engine.inputs()
    if len(specs) != 1:
        raise ToolkitError(f"{engine.path}: batched running needs a model with one input, this one "
                           f"takes {len(specs)}")
    spec = specs[0]
    array = np.asarray(array)
    if array.ndim != len(spec.shape):
        raise ToolkitError(f"{engine.path}: input {spec.name!r} expects shape {list(spec.shape)}, "
                           f"got {list(array.shape)}")
    fixed = fixed_batch(spec)
    step = fixed or int(max_batch)
    if step < 1:
        raise ValueError(f"max_batch must be at least 1, not {max_batch}")
    parts = []
    for start in range(0, len(array), step):
        chunk = array[start:start + step]
        n = len(chunk)
        if fixed is not None and n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n,) + chunk.shape[1:], chunk.dtype)])
        if lock is None:
            result = engine.run({spec.name: chunk})
        else:
            with lock:
                result = engine.run({spec.name: chunk})
        if output is not None and output not in result:
            raise ToolkitError(f"{engine.path}: no output {output!r}; outputs: {', '.join(result)}")
        out = np.asarray(result[output] if output is not None else next(iter(result.values())))
        if len(out) != len(chunk):
            raise ToolkitError(f"{engine.path}: {len(chunk)} input rows gave {len(out)} output rows; "
                               "the model's first output is not batched")
        parts.append(out[:n])
    if parts:
        return np.concatenate(parts)
    outs = engine.outputs()
    tail = tuple(outs[0].shape[1:]) if outs and outs[0].shape else ()
    return np.zeros((0,) + tuple(d or 0 for d in tail), np.float32)
