"""The parts of the published MindSpore Lite schema (ops.fbs, ops_types.fbs) this project needs.

Kept as compact tables of our own rather than generated code: the union order gives the primitive
codes, and each op table lists its fields in schema order (field id = position) with a type token
and the schema default. Type tokens: b bool, i8 byte enum, i32 int/Format, i64 long, f float,
s string, [i64] [f] [i32] vectors, vec2d (table Vec2D), [attr] (Custom's Attribute list).
"""

# union PrimitiveType, in schema order; the code of a member is its 1-based position.
PRIMITIVE_NAMES = tuple("""
Abs Activation ActivationGrad Adam AddFusion AdderFusion AddGrad AddN All ApplyMomentum
ArgMaxFusion ArgMinFusion Assert Assign AssignAdd AudioSpectrogram AvgPoolFusion AvgPoolGrad
BatchNorm BatchNormGrad BatchToSpace BatchToSpaceND BiasAdd BinaryCrossEntropy
BinaryCrossEntropyGrad BiasAddGrad BroadcastTo Cast Ceil Clip Concat Attention
Conv2DBackpropFilterFusion Conv2DBackpropInputFusion Conv2DFusion Conv2dTransposeFusion Cos
ConstantOfShape Crop CustomExtractFeatures CustomNormalize CustomPredict DeConv2DGradFilter Depend
DepthToSpace DetectionPostProcess DivFusion DivGrad Dropout DropoutGrad Elu Eltwise Equal
EmbeddingLookupFusion ExpFusion ExpandDims FakeQuantWithMinMaxVars
FakeQuantWithMinMaxVarsPerChannel FftReal FftImag Flatten FlattenGrad Floor FloorDiv FloorMod Fill
FullConnection FusedBatchNorm Gather GatherNd Greater GreaterEqual HashtableLookup InstanceNorm
LayerNormFusion LeakyRelu Less LessEqual Log LogGrad LogicalAnd LogicalNot LogicalOr
LpNormalization LRN LshProjection LSTM L2NormalizeFusion MatMulFusion Maximum MaximumGrad
MaxPoolFusion MaxPoolGrad SwitchLayer Mfcc Minimum MinimumGrad Mod MulFusion MulGrad Neg NegGrad
NotEqual NonMaxSuppression OneHot OnesLike PadFusion PartialFusion PowerGrad PowFusion PriorBox
PReLUFusion QuantDTypeCast Rank Range Reciprocal RealDiv ReduceFusion Reshape Resize
ReverseSequence ReverseV2 Rfft ROIPooling Round Rsqrt ScaleFusion ScatterNd SGD Shape
SigmoidCrossEntropyWithLogits SigmoidCrossEntropyWithLogitsGrad Sin SkipGram SliceFusion
SmoothL1Loss SmoothL1LossGrad Softmax SoftmaxCrossEntropyWithLogits SpaceToBatch SpaceToBatchND
SpaceToDepth SparseSoftmaxCrossEntropyWithLogits SparseToDense Split Sqrt Squeeze Square
SquaredDifference Stack StridedSlice SubFusion SubGrad Switch TensorListFromTensor
TensorListGetItem TensorListReserve TensorListSetItem TensorListStack TileFusion TopKFusion
Transpose Unique UnsortedSegmentSum Unsqueeze Unstack LSTMGrad Where ZerosLike Select
ScatterNdUpdate GRU NonZero InvertPermutation Size RandomStandardNormal CropAndResize Erf
StridedSliceGrad IsFinite LinSpace UniformReal AbsGrad RsqrtGrad SqrtGrad LayerNormGrad ResizeGrad
Splice LogSoftmax Call Custom CumSum SplitWithOverlap GenOP RaggedRange GLU TensorArray
TensorArrayRead TensorArrayWrite Affine AllGather ReduceScatter DynamicQuant LSTMGradData
LSTMGradWeight RandomNormal NLLLoss NLLLossGrad FormatTranspose GatherD GroupNormFusion Log1p
TensorScatterAdd SparseFillEmptyRows SparseReshape SparseSegmentSum ScatterElements Triu Tril
AdamWeightDecay FillV2
""".split())

PRIMITIVE_CODES = {name: i + 1 for i, name in enumerate(PRIMITIVE_NAMES)}

_CONV = ("format:i32=0 kernel_size:[i64] stride:[i64] dilation:[i64] pad_mode:i8 pad_list:[i64] "
         "mode:i64 group:i64 in_channel:i64 out_channel:i64 activation_type:i8=0")
_POOL = ("kernel_size:[i64] strides:[i64] pad:[i64] pad_mode:i8 round_mode:i8 format:i32 global:b "
         "activation_type:i8=0")
_LSTM = ("bidirectional:b has_bias:b input_size:i64 hidden_size:i64 num_layers:i64 "
         "num_directions:i64 dropout:f zoneout_cell:f=0 zoneout_hidden:f=0")
_SLICE_MASKS = "begin_mask:i64 end_mask:i64 ellipsis_mask:i64 new_axis_mask:i64 shrink_axis_mask:i64"
_ACT_ONLY = "activation_type:i8=0"

# op -> its table's fields in schema order. Ops with an empty table map to "".
_OP_TABLES = {
    "Activation": "activation_type:i8=0 alpha:f min_val:f max_val:f approximate:b=false",
    "ActivationGrad": "activation_type:i8 alpha:f",
    "Adam": "use_locking:b use_nesterov:b",
    "AddFusion": _ACT_ONLY,
    "AdderFusion": "format:i32=0 kernel_size:[i64] stride:[i64] dilation:[i64] pad_mode:i8 "
                   "pad_list:[i64] group:i64 in_channel:i64 out_channel:i64 activation_type:i8=0",
    "All": "keep_dims:i64",
    "ApplyMomentum": "use_nesterov:b use_locking:b gradient_scale:f",
    "ArgMaxFusion": "axis:i64 top_k:i64=1 keep_dims:b out_max_value:b",
    "ArgMinFusion": "axis:i64 top_k:i64 keep_dims:b out_max_value:b",
    "Assert": "summarize:i64",
    "AudioSpectrogram": "window_size:i64 stride:i64 mag_square:b",
    "AvgPoolFusion": _POOL,
    "AvgPoolGrad": "kernel_size:[i64] strides:[i64] pad_mode:i8 format:i32",
    "BatchNorm": "epsilon:f format:i32 is_training:b",
    "BatchNormGrad": "epsilon:f is_training:b",
    "BatchToSpace": "block_size:[i64] crops:vec2d",
    "BatchToSpaceND": "block_shape:[i64] crops:vec2d",
    "BiasAdd": "format:i32",
    "BinaryCrossEntropy": "reduction:i8",
    "BinaryCrossEntropyGrad": "reduction:i8=1",
    "BroadcastTo": "shape:[i64]",
    "Clip": "max:f min:f",
    "Concat": "axis:i64",
    "Attention": "head_num:i64 head_size:i64 cross:b scale:f",
    "Conv2DBackpropFilterFusion": _CONV,
    "Conv2DBackpropInputFusion": "format:i32=0 kernel_size:[i64] stride:[i64] dilation:[i64] "
                                 "pad_mode:i8 pad:[i64] pad_list:[i64] mode:i64 group:i64 "
                                 "in_channel:i64 out_channel:i64 activation_type:i8=0",
    "Conv2DFusion": _CONV,
    "Conv2dTransposeFusion": "format:i32=0 kernel_size:[i64] stride:[i64] dilation:[i64] "
                             "pad_mode:i8 pad:[i64] pad_list:[i64] mode:i64 group:i64 "
                             "in_channel:i64 out_channel:i64 activation_type:i8=0 "
                             "output_paddings:[i64]",
    "ConstantOfShape": "data_type:i64 value:[f]",
    "Crop": "axis:i64 offsets:[i64]",
    "CustomPredict": "output_num:i64 weight_threshold:f",
    "DeConv2DGradFilter": "in_channel:i64 out_channel:i64 kernel_size:[i64] pad_mode:i8 "
                          "pad_list:[i64] stride:[i64] dilation:[i64] group:i64 format:i32 "
                          "activation_type:i8",
    "DepthToSpace": "block_size:i64 format:i32=0 mode:s",
    "DetectionPostProcess": "format:i32=0 input_size:i64 scale:[f] nms_iou_threshold:f "
                            "nms_score_threshold:f max_detections:i64 detections_per_class:i64 "
                            "max_classes_per_detection:i64 num_classes:i64 use_regular_nms:b "
                            "out_quantized:b",
    "DivFusion": _ACT_ONLY,
    "Dropout": "keep_prob:f=0.5",
    "DropoutGrad": "keep_prob:f",
    "Elu": "alpha:f",
    "Eltwise": "mode:i8",
    "EmbeddingLookupFusion": "max_norm:f",
    "ExpFusion": "base:f=-1 scale:f=1 shift:f=0",
    "FakeQuantWithMinMaxVars": "num_bits:i64 narrow_range:b",
    "FakeQuantWithMinMaxVarsPerChannel": "num_bits:i64 narrow_range:b",
    "Flatten": "axis:i64=1",
    "FullConnection": "has_bias:b use_axis:b axis:i64 activation_type:i8=0",
    "FusedBatchNorm": "epsilon:f=0.0001 momentum:f=0.9 mode:i64",
    "InstanceNorm": "epsilon:f",
    "LayerNormFusion": "begin_norm_axis:i64 epsilon:f=0.00001 elementwise_affine:b "
                       "begin_params_axis:i64",
    "LeakyRelu": "negative_slope:f",
    "LpNormalization": "axis:i64 p:i64",
    "LRN": "depth_radius:i64 bias:f alpha:f beta:f norm_region:s",
    "LshProjection": "type:i8",
    "LSTM": _LSTM + " proj_size:i64=0",
    "L2NormalizeFusion": "axis:[i64] epsilon:f activation_type:i8=0",
    "MatMulFusion": "transpose_a:b=false transpose_b:b=false activation_type:i8=0",
    "MaximumGrad": "grad_x:b grad_y:b",
    "MaxPoolFusion": _POOL,
    "MaxPoolGrad": "kernel_size:[i64] strides:[i64] pad_mode:i8 format:i32",
    "Mfcc": "freq_upper_limit:f freq_lower_limit:f filter_bank_channel_num:i64 dct_coeff_num:i64",
    "MinimumGrad": "grad_x:b grad_y:b",
    "MulFusion": _ACT_ONLY,
    "NonMaxSuppression": "center_point_box:i64",
    "OneHot": "axis:i64",
    "PadFusion": "paddings:vec2d padding_mode:i8 constant_value:f",
    "PartialFusion": "sub_graph_index:i64",
    "PowerGrad": "power:f scale:f shift:f",
    "PowFusion": "scale:f=1 shift:f=0",
    "PriorBox": "min_sizes:[i64] max_sizes:[i64] aspect_ratios:[f] variances:[f] image_size_w:i64 "
                "image_size_h:i64 step_w:f step_h:f clip:b flip:b offset:f",
    "PReLUFusion": "channel_shared:b",
    "Range": "d_type:i64=0 start:i64=0 limit:i64=0 delta:i64=1",
    "ReduceFusion": "keep_dims:b mode:i8 reduce_to_end:b coeff:f",
    "Resize": "format:i32=0 method:i8 new_height:i64 new_width:i64 preserve_aspect_ratio:b=false "
              "coordinate_transform_mode:i8 cubic_coeff:f exclude_outside:i64 "
              "extrapolation_value:f nearest_mode:i8",
    "ReverseSequence": "seq_dim:i64 batch_dim:i64",
    "ReverseV2": "axis:[i64]",
    "Rfft": "fft_length:i64",
    "ROIPooling": "pooled_h:i64 pooled_w:i64 scale:f",
    "QuantDTypeCast": "src_t:i64 dst_t:i64 axis:i64=0",
    "ScaleFusion": "axis:i64 activation_type:i8=0",
    "SGD": "nesterov:b dampening:f weight_decay:f",
    "SkipGram": "include_all_grams:b max_skip_size:i64 ngram_size:i64",
    "SliceFusion": "axes:[i64]",
    "SmoothL1Loss": "beta:f",
    "SmoothL1LossGrad": "beta:f",
    "Softmax": "axis:[i64]",
    "SpaceToBatch": "block_size:[i64] paddings:vec2d",
    "SpaceToBatchND": "block_shape:[i64] paddings:vec2d",
    "SpaceToDepth": "block_size:i64 format:i32",
    "SparseSoftmaxCrossEntropyWithLogits": "is_grad:b",
    "Split": "output_num:i64 size_splits:[i64] axis:i64",
    "Squeeze": "axis:[i64]",
    "Stack": "axis:i64",
    "StridedSlice": _SLICE_MASKS,
    "SubFusion": _ACT_ONLY,
    "TensorListFromTensor": "element_dtype:i64 shape_type:i64",
    "TensorListGetItem": "element_dtype:i64",
    "TensorListReserve": "element_dtype:i64 shape_type:i64",
    "TensorListSetItem": "element_dtype:i64",
    "TensorListStack": "num_elements:i64 element_dtype:i64",
    "TileFusion": "dims:[i64]",
    "TopKFusion": "sorted:b=true axis:i64 largest:i64",
    "Unsqueeze": "axis:[i64]",
    "Unstack": "axis:i64=0",
    "LSTMGrad": _LSTM,
    "GRU": "bidirectional:b=false",
    "RandomStandardNormal": "seed:i64 seed2:i64",
    "CropAndResize": "method:i8 extrapolation_value:f",
    "StridedSliceGrad": _SLICE_MASKS,
    "UniformReal": "seed:i64 seed2:i64",
    "LayerNormGrad": "begin_norm_axis:i64 begin_params_axis:i64",
    "ResizeGrad": "method:i8 align_corners:b",
    "Splice": "context:[i64] forward_indexes:[i64] output_dim:i64",
    "LogSoftmax": "axis:i64",
    "Call": "is_tail_call:b=true",
    "CumSum": "exclusive:b reverse:b",
    "Custom": "type:s attr:[attr]",
    "SplitWithOverlap": "split_dim:i64 number_split:i64 ratio:[i64] extend_top:[i64] "
                        "extend_bottom:[i64]",
    "GenOP": "activation_type:i8=0 alpha:f min_val:f max_val:f is_training:b format:i32=0 "
             "kernel_size:[i64] stride:[i64] dilation:[i64] pad_mode:i8 pad_list:[i64] mode:i64 "
             "group:i64 in_channel:i64 out_channel:i64 eltwise_mode:i8 has_bias:b use_axis:b "
             "axis:i64 epsilon:f=0.0001 momentum:f=0.9 transpose_a:b=false transpose_b:b=false "
             "pad:[i64] round_mode:i8 global:b channel_shared:b axes:[i64] keep_dims:b "
             "reduce_mode:i8 reduce_to_end:b coeff:f",
    "GLU": "axis:i64=-1",
    "TensorArray": "dynamic_size:b=false identical_element_shapes:b=false element_shape:[i32] "
                   "data_type:i32",
    "Affine": "context:[i64] output_dim:i64 activation_type:i8=0 transpose_a:b=false "
              "transpose_b:b=false",
    "AllGather": "group:s rank_size:i32",
    "ReduceScatter": "group:s mode:i8 rank_size:i32",
    "DynamicQuant": "symmetric:b=false dst_type:i64=32 activation_channel:b=false prefer_axis:i64=0 "
                    "transpose:b=false prefer_axes:[i32]",
    "LSTMGradData": _LSTM,
    "LSTMGradWeight": _LSTM,
    "RandomNormal": "seed:f mean:f scale:f",
    "NLLLoss": "reduction:i8",
    "NLLLossGrad": "reduction:i8",
    "FormatTranspose": "src_format:i32=1 dst_format:i32=1",
    "GroupNormFusion": "num_groups:i64 epsilon:f=1e-5 affine:b=true",
    "ScatterElements": "axis:i64",
    "AdamWeightDecay": "use_locking:b",
}

# Ops whose table is empty in the schema (no fields): attrs stay empty, nothing is flagged.
_EMPTY_TABLES = frozenset("""
Abs AddGrad AddN Assign AssignAdd BiasAddGrad Cast Ceil Cos CustomExtractFeatures CustomNormalize
Depend DivGrad Equal ExpandDims FftReal FftImag FlattenGrad Floor FloorDiv FloorMod Fill Gather
GatherNd Greater GreaterEqual HashtableLookup Less LessEqual Log LogGrad LogicalAnd LogicalNot
LogicalOr Maximum SwitchLayer Minimum Mod MulGrad Neg NegGrad NotEqual OnesLike Rank Reciprocal
RealDiv Reshape Round Rsqrt ScatterNd Shape SigmoidCrossEntropyWithLogits
SigmoidCrossEntropyWithLogitsGrad Sin SoftmaxCrossEntropyWithLogits SparseToDense Sqrt Square
SquaredDifference SubGrad Switch Transpose Unique UnsortedSegmentSum Where ZerosLike Select
ScatterNdUpdate NonZero InvertPermutation Size Erf IsFinite LinSpace AbsGrad RsqrtGrad SqrtGrad
RaggedRange TensorArrayRead TensorArrayWrite GatherD Log1p TensorScatterAdd SparseFillEmptyRows
SparseReshape SparseSegmentSum Triu Tril FillV2
""".split())

SCALAR_TYPES = {"b", "i8", "i32", "i64", "f"}
VECTOR_TYPES = {"[i64]": "i64", "[f]": "f", "[i32]": "i32"}


def _parse_default(typ, text):
    if text is None:
        return "" if typ == "s" else (() if typ.startswith("[") or typ == "vec2d" else
                                      (False if typ == "b" else (0.0 if typ == "f" else 0)))
    if typ == "b":
        return text == "true"
    if typ == "f":
        return float(text)
    return int(text)


def _parse_fields(spec):
    fields = []
    for token in spec.split():
        name, rest = token.split(":", 1)
        typ, _, default = rest.partition("=")
        fields.append((name, typ, _parse_default(typ, default or None)))
    return tuple(fields)


# op name -> ((field_name, type_token, default), ...) in schema order.
OP_FIELDS = {op: _parse_fields(spec) for op, spec in _OP_TABLES.items()}
OP_FIELDS.update({op: () for op in _EMPTY_TABLES})

_unknown = (set(OP_FIELDS) - set(PRIMITIVE_NAMES))
assert not _unknown, f"op tables for ops not in the union: {_unknown}"


def op_defaults(op_type):
    """The schema defaults of an op's fields (what a reader fills in for omitted fields)."""
    return {name: default for name, _, default in OP_FIELDS.get(op_type, ())}


# ops_types.fbs enums used by the engine and `toolkit inspect`.
ACTIVATION_TYPES = {0: "NO_ACTIVATION", 1: "RELU", 2: "SIGMOID", 3: "RELU6", 4: "ELU", 5: "LEAKY_RELU",
                    6: "ABS", 7: "RELU1", 8: "SOFTSIGN", 9: "SOFTPLUS", 10: "TANH", 11: "SELU",
                    12: "HSWISH", 13: "HSIGMOID", 14: "THRESHOLDRELU", 15: "LINEAR", 16: "HARD_TANH",
                    17: "SIGN", 18: "SWISH", 19: "GELU", 20: "FAST_GELU", 21: "UNKNOWN"}
ACT = {v: k for k, v in ACTIVATION_TYPES.items()}
PAD_MODES = {"PAD": 0, "SAME": 1, "VALID": 2}
ROUND_MODES = {"FLOOR": 0, "CEIL": 1}
REDUCE_MODES = {"Mean": 0, "Max": 1, "Min": 2, "Prod": 3, "Sum": 4, "SumSquare": 5, "ASum": 6,
                "All": 7, "L2": 8}
ELTWISE_MODES = {"PROD": 0, "SUM": 1, "MAXIMUM": 2}
PADDING_MODES = {"CONSTANT": 0, "REFLECT": 1, "SYMMETRIC": 2}
QUANT_TYPES = {0: "QUANT_NONE", 1: "AwareTraining", 2: "WeightQuant", 3: "PostTraining",
               4: "QUANT_WEIGHT", 5: "QUANT_ALL", 6: "QUANT_DYNAMIC"}
WEIGHT_COMPRESS_TYPES = {0: "NONE", 1: "INDEXING", 2: "SPARSE", 3: "FSE", 4: "BITPACKING",
                         5: "FSE_INT", 6: "FSE_INFER"}
