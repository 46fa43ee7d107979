"""In-memory model of a MindSpore Lite `.ms` file, independent of FlatBuffers.

The reader fills it (schema defaults applied), the writer serialises it, the converter builds it and
the `.ms` engine executes it. Node attributes are keyed by the schema's field names (ops.fbs,
snake_case, e.g. `kernel_size`, `pad_list`, `activation_type`); enums are ints, vectors tuples.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

# MindSpore TypeId codes used by Tensor.dataType.
TYPE_BOOL, TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPE_INT64, TYPE_UINT8 = 30, 32, 33, 34, 35, 37
TYPE_FLOAT16, TYPE_FLOAT32 = 42, 43
TYPEID_TO_NUMPY = {
    TYPE_BOOL: np.dtype(np.bool_), TYPE_INT8: np.dtype(np.int8), TYPE_INT16: np.dtype(np.int16),
    TYPE_INT32: np.dtype(np.int32), TYPE_INT64: np.dtype(np.int64), TYPE_UINT8: np.dtype(np.uint8),
    38: np.dtype(np.uint16), 39: np.dtype(np.uint32), 40: np.dtype(np.uint64),
    TYPE_FLOAT16: np.dtype(np.float16), TYPE_FLOAT32: np.dtype(np.float32), 44: np.dtype(np.float64),
}
NUMPY_TO_TYPEID = {v: k for k, v in TYPEID_TO_NUMPY.items()}

# Format enum (ops_types.fbs) values seen in converter output.
FORMAT_NCHW, FORMAT_NHWC, FORMAT_KCHW, FORMAT_KHWC = 0, 1, 5, 7
# The whole enum as ops_types.fbs declares it (it has no NDHWC; 18 is NC8HW8).
FORMAT_NAMES = {0: "NCHW", 1: "NHWC", 2: "NHWC4", 3: "HWKC", 4: "HWCK", 5: "KCHW", 6: "CKHW", 7: "KHWC",
                8: "CHWK", 9: "HW", 10: "HW4", 11: "NC", 12: "NC4", 13: "NC4HW4", 14: "NUM_OF_FORMAT",
                15: "NCDHW", 16: "NWC", 17: "NCW", 18: "NC8HW8"}

# Tensor.nodeType values.
NODE_TYPE_CONST, NODE_TYPE_COMPUTED = 0, 2
# CNode.quantType values (QuantType enum in model.fbs).
QUANT_NONE, QUANT_WEIGHT = 0, 4
# Tensor.weightQuantCompressType values (WeightQuantCompressType enum in model.fbs).
COMPRESS_NONE, COMPRESS_INDEXING, COMPRESS_SPARSE, COMPRESS_BITPACKING = 0, 1, 2, 4
# The packed encodings the reader and the weight decoder implement.
COMPRESS_DECODED = (COMPRESS_INDEXING, COMPRESS_SPARSE, COMPRESS_BITPACKING)
# MetaGraph.fmkType values.
FMK_NAMES = {0: "TF", 1: "CAFFE", 2: "ONNX", 3: "MINDIR", 4: "TFLITE", 5: "PYTORCH", 6: "THIRDPARTY"}


@dataclass
class QuantParam:
    scale: float = 1.0
    zero_point: int = 0
    min: float = 0.0
    max: float = 0.0
    narrow_range: bool = True
    num_bits: int = 8
    inited: bool = False
    var_corr: float = 1.0
    mean_corr: float = 0.0
    dst_dtype: int = 32
    round_type: int = 1
    multiplier: int = 1


@dataclass
class MsTensor:
    name: str = ""
    node_type: int = NODE_TYPE_COMPUTED
    data_type: int = TYPE_FLOAT32
    dims: Tuple[int, ...] = ()
    format: int = FORMAT_NCHW
    # raw little-endian bytes of a constant: bytes, or (from the reader) a read-only zero-copy
    # memoryview into the file buffer, so tensors sharing data never copy it
    data: Optional[Union[bytes, memoryview]] = None
    quant_params: List[QuantParam] = field(default_factory=list)
    quant_clusters: List[float] = field(default_factory=list)
    enable_huffman_code: bool = False
    weight_quant_compress_type: int = 0
    ref_count: int = 0
    offset: int = 0
    # ExternalData entries as (check_sum, location, offset, length): data kept in a side file.
    external_data: List[Tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def is_const(self):
        return self.data is not None and len(self.data) > 0

    def __deepcopy__(self, memo):
        """A copy owns its data: a zero-copy view into a file buffer becomes bytes (a memoryview
        cannot be copied or pickled)."""
        import copy
        clone = copy.copy(self)
        memo[id(self)] = clone
        for name, value in vars(self).items():
            if isinstance(value, memoryview):
                value = bytes(value)
            setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    @property
    def numpy_dtype(self):
        return TYPEID_TO_NUMPY.get(self.data_type)


@dataclass
class MsNode:
    name: str
    op_type: str                            # union member name in ops.fbs, e.g. "Conv2DFusion"
    attrs: Dict[str, Any] = field(default_factory=dict)
    inputs: List[int] = field(default_factory=list)
    outputs: List[int] = field(default_factory=list)
    quant_type: int = QUANT_NONE


@dataclass
class MsModel:
    version: str = "MindSpore Lite 2.5.0"
    fmk_type: int = 3
    name: str = ""
    inputs: List[int] = field(default_factory=list)
    outputs: List[int] = field(default_factory=list)
    nodes: List[MsNode] = field(default_factory=list)
    tensors: List[MsTensor] = field(default_factory=list)
    subgraph_name: str = "subgraph_0_main_graph"
    subgraphs: List["MsSubGraph"] = field(default_factory=list)   # only for multi-subgraph files


@dataclass
class MsSubGraph:
    """A SubGraph entry. Only kept on MsModel.subgraphs when a file has more than one (control flow);
    an empty MsModel.subgraphs means the writer's convention: one subgraph listing everything."""
    name: str = ""
    inputs: List[int] = field(default_factory=list)
    outputs: List[int] = field(default_factory=list)
    nodes: List[int] = field(default_factory=list)
    tensors: List[int] = field(default_factory=list)
