"""The files the official `benchmark` reads and writes, in its own formats.

- Input files (`--inDataFile`): raw bytes of each input, in the model's input order, dtype and layout.
- The calibration file (`--benchmarkDataFile`), the official text format
  (docs/lite/docs/source_en/tools/benchmark_golden_data.md): per output tensor, a line
  `name ndim d0 d1 ...` and then one line of its values; names must equal the model's output names,
  in order, or the tool refuses the file.
- `.output` files (the golden folder's layout, and the stand-in's `--outputDataFile`): int32 ndim,
  int32 dims, float32 values.

Reading is bounded: a file may hold at most what its own size allows, and the dims must agree.
"""
import os
import struct
from typing import List, Sequence, Tuple

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import ModelFormatError
from ..files import read_regular

MAX_NDIM = 8


def write_input_bins(arrays: Sequence[np.ndarray], folder, stem="input") -> List[str]:
    """Write each input as `folder/stem<i>.bin` (raw bytes, C order); returns the paths in order."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, arr in enumerate(arrays):
        path = os.path.join(folder, f"{stem}{i}.bin")
        atomic_write_bytes(path, np.ascontiguousarray(arr).tobytes())
        paths.append(path)
    return paths


def _format_values(values: np.ndarray) -> str:
    # repr-exact float32 (9 significant digits) so the tool compares what we computed, not a rounding
    return " ".join(np.format_float_positional(v, precision=9, unique=False, trim="-")
                    if np.isfinite(v) else str(v) for v in values.astype(np.float32).ravel())


def calibration_text(outputs: Sequence[Tuple[str, np.ndarray]]) -> str:
    """The `--benchmarkDataFile` text for (name, array) pairs in the model's output order."""
    lines = []
    for name, arr in outputs:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"output name {name!r} cannot be written in the calibration format")
        arr = np.asarray(arr)
        lines.append(" ".join([name, str(arr.ndim)] + [str(d) for d in arr.shape]))
        lines.append(_format_values(arr))
    return "\n".join(lines) + "\n"


def write_calibration(path, outputs: Sequence[Tuple[str, np.ndarray]]) -> str:
    atomic_write_bytes(path, calibration_text(outputs).encode())
    return str(path)


def read_calibration(path, max_bytes=1 << 30) -> List[Tuple[str, np.ndarray]]:
    """Parse a calibration file back into (name, array) pairs (the inverse of write_calibration)."""
    try:
        text = read_regular(path, max_bytes, ModelFormatError, what="calibration file").decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(path, "calibration file is not UTF-8 text") from None
    lines = text.splitlines()
    if len(lines) % 2:
        raise ModelFormatError(path, f"{len(lines)} lines; expected a header and a values line per tensor")
    out = []
    for k in range(0, len(lines), 2):
        head = lines[k].split()
        try:
            ndim = int(head[1])
            dims = [int(d) for d in head[2:2 + ndim]]
            values = np.array([float(v) for v in lines[k + 1].split()], np.float32)
        except (IndexError, ValueError) as e:
            raise ModelFormatError(path, f"malformed tensor entry: {e}", f"line {k + 1}") from None
        if len(head) != 2 + ndim or any(d < 0 for d in dims) or values.size != int(np.prod(dims)):
            raise ModelFormatError(path, f"header {lines[k]!r} does not match its {values.size} values",
                                   f"line {k + 1}")
        out.append((head[0], values.reshape(dims)))
    return out


def read_output_file(path, max_bytes=1 << 30) -> np.ndarray:
    """A `.output` file (int32 ndim, int32 dims, float32 data), checked against its own size."""
    data = read_regular(path, max_bytes, ModelFormatError, what=".output file")
    if len(data) < 4:
        raise ModelFormatError(path, "too short for an .output header")
    (ndim,) = struct.unpack_from("<i", data, 0)
    if not 0 <= ndim <= MAX_NDIM or len(data) < 4 + 4 * ndim:
        raise ModelFormatError(path, f"ndim {ndim} is not in 0..{MAX_NDIM} or the header is truncated")
    dims = list(struct.unpack_from(f"<{ndim}i", data, 4))
    count = int(np.prod(dims)) if dims else 1
    body = len(data) - 4 - 4 * ndim
    if any(d < 0 for d in dims) or body != 4 * count:
        raise ModelFormatError(path, f"dims {dims} need {4 * count} bytes of float32, the file has {body}")
    return np.frombuffer(data, np.float32, count, 4 + 4 * ndim).reshape(dims).copy()



def mean_bias(got, ref) -> float:
    """The official benchmark's per-tensor metric (BenchmarkBase::CompareData), as a fraction: the mean,
    over the elements that miss atol 1e-8 + rtol 1e-5, of |got - ref| / |ref| (the absolute error where
    |ref| < FLT_EPSILON, counted only above 1e-5). 0 when every element is within tolerance."""
    got = np.asarray(got, np.float32).ravel()
    ref = np.asarray(ref, np.float32).ravel()
    if got.size != ref.size:
        raise ValueError(f"{got.size} values against a reference of {ref.size}")
    err = np.abs(got - ref)
    miss = err > np.float32(1e-8) + np.float32(1e-5) * np.abs(ref)
    tiny = np.abs(ref) < np.finfo(np.float32).eps
    rel = miss & ~tiny
    absolute = miss & tiny & (err > np.float32(1e-5))
    count = int(rel.sum() + absolute.sum())
    if count == 0:
        return 0.0
    total = float(np.sum(err[rel] / (np.abs(ref[rel]) + np.finfo(np.float32).tiny), dtype=np.float64)
                  + np.sum(err[absolute], dtype=np.float64))
    mean = total / count
    return 0.0 if mean <= 1e-7 else mean
