"""Shared helpers of the front ends: building IR nodes while resolving aliases and tuples, and
the checks every untrusted source file goes through before a handler reads it (strings that are
UTF-8, attribute values of the right kind, tensor sizes bounded by the file size)."""
import numpy as np

from runtime.errors import ModelFormatError

from ..errors import ConversionError
from ..ir import Graph, make_node


def _repeated(fd):
    """Whether a field is repeated (`label` is gone from newer protobuf, `is_repeated` is new)."""
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return fd.label == fd.LABEL_REPEATED


def first_non_utf8(message, where=""):
    """The field path of the first string field of protobuf `message` that is not valid UTF-8.

    Python protobuf (upb) hands such proto2 `string` fields back as `bytes`; the front ends check
    once, here, so no handler ever meets a bytes name. Returns None when every string is text.
    """
    from google.protobuf.descriptor import FieldDescriptor
    for fd, value in message.ListFields():
        path = f"{where}.{fd.name}" if where else fd.name
        repeated = _repeated(fd)
        if fd.type == FieldDescriptor.TYPE_STRING:
            values = value if repeated else [value]
            for i, v in enumerate(values):
                if isinstance(v, bytes):
                    return f"{path}[{i}]" if repeated else path
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if repeated else [value]
            if fd.message_type.GetOptions().map_entry:
                items = value.values() if hasattr(value, "values") else []
            for i, item in enumerate(items):
                label = item.name if isinstance(getattr(item, "name", None), str) and item.name else i
                found = first_non_utf8(item, f"{path}[{label}]")
                if found:
                    return found
    return None


def check_utf8(message, path):
    bad = first_non_utf8(message)
    if bad:
        raise ModelFormatError(path, "holds a string that is not valid UTF-8; the file is corrupt",
                               element=bad)


def as_int(value, what):
    """`value` as a python int (numpy ints, 0-d arrays, 1-element tuples too), else ConversionError."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ConversionError(f"{what} must be an integer, got {value!r}")


def as_ints(value, what):
    """`value` (an int or a sequence of ints) as a tuple of python ints, else ConversionError."""
    if isinstance(value, np.ndarray):
        if value.ndim > 1 or value.size > 64:
            raise ConversionError(f"{what} must be a short list of integers, got shape {list(value.shape)}")
        value = tuple(value.reshape(-1).tolist())
    if not isinstance(value, (tuple, list)):
        value = (value,)
    return tuple(as_int(v, what) for v in value)


def as_float(value, what):
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    raise ConversionError(f"{what} must be a number, got {value!r}")


def check_tensor_size(path, element, dims, itemsize, file_size, raw_bytes=None, values=None):
    """Refuse a tensor whose declared size cannot be backed by the file, before allocating it.

    element: names the tensor ("initializer 'w'"); raw_bytes: length of its raw data (must match
    exactly); values: number of typed values given.
    Every stored element takes at least one byte of the file, so more elements than file bytes is
    a lie whatever the encoding.
    """
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ModelFormatError(path, f"negative dims {list(dims)}", element=element)
    count = int(np.prod(dims, dtype=object)) if dims else 1
    need = count * itemsize
    if raw_bytes is not None and raw_bytes != need:
        raise ModelFormatError(path, f"{raw_bytes} data bytes for shape {list(dims)} (expected "
                               f"{need}); the weights are corrupt", element=element)
    if values is not None and values != count:
        raise ModelFormatError(path, f"{values} values for shape {list(dims)} ({count} elements); "
                               "the weights are corrupt", element=element)
    if count > file_size and raw_bytes is None:
        raise ModelFormatError(path, f"declares {count} elements but the file has only {file_size} "
                               "bytes; the weights are corrupt", element=element)
    return dims, count


class FrontendContext:
    """What a handler sees: value lookup (following aliases), constants, and `emit`."""

    def __init__(self, path, source_format):
        self.path = str(path)
        self.graph = Graph(nodes=[], inputs=[], outputs=[], consts={}, source_format=source_format)
        self.aliases = {}       # value -> value it stands for (Identity, Load, Depend ...)
        self.tuples = {}        # value -> tuple of values (MakeTuple, multi-output ops)
        self.scalars = {}       # constant non-tensor values (python ints, floats, tuples ...)

    def resolve(self, name):
        seen = set()
        while name in self.aliases:
            if name in seen:
                raise ModelFormatError(self.path, "alias cycle", element=f"value {name!r}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def alias(self, out, value):
        self.aliases[out] = value

    def tuple_of(self, name):
        name = self.resolve(name)
        if name not in self.tuples:
            raise ConversionError(f"{name} is not a tuple", path=self.path)
        return self.tuples[name]

    def scalar(self, name, what="attribute"):
        """A constant python value given as a node input (MindIR ValueNodes, ONNX constants)."""
        name = self.resolve(name)
        if name in self.scalars:
            return self.scalars[name]
        if name in self.graph.consts:
            arr = self.graph.consts[name]
            if arr.size > 1 << 16:
                raise ConversionError(f"{what} {name} is a {list(arr.shape)} tensor, not a "
                                      "small constant", path=self.path)
            return arr.item() if arr.ndim == 0 else tuple(arr.reshape(-1).tolist())
        raise ConversionError(f"{what} {name} must be a constant", path=self.path)

    def value(self, name):
        """A tensor value name; constant scalars/tuples used as data become graph constants."""
        name = self.resolve(name)
        if name in self.scalars and name not in self.graph.consts:
            v = self.scalars[name]
            try:
                arr = np.asarray(v, dtype=np.float32 if isinstance(v, float) or (
                    isinstance(v, tuple) and any(isinstance(x, float) for x in v)) else np.int64)
            except (TypeError, ValueError, OverflowError):
                raise ConversionError(f"constant {name!r} ({v!r}) is not numeric data",
                                      path=self.path) from None
            self.graph.consts[name] = arr
        return name

    def emit(self, name, op, inputs, outputs, **attrs):
        node = make_node(name, op, [self.value(v) for v in inputs], outputs, **attrs)
        self.graph.nodes.append(node)
        return node
