"""The arithmetics the `.ms` engine offers for fully quantized (int8-activation) models.

  "fast"   (default) onnxruntime's fused u8s8 kernels (QLinearConv): one float requantization per
           layer. Within 1 LSB of the official kernels per layer; the int8 speed-up (the reason a
           user quantizes). On a deep network the LSBs compound: mnv2s_fq8 ends at cosine 0.995
           with the official output, same top-1.
  "exact"  the official MindSpore Lite runtime's fixed-point arithmetic (nnacl's
           MultiplyByQuantizedMultiplier), on integer accumulators: reproduces the official outputs
           (mnv2s_fq8 and tiny_cnn_fq8 to float rounding), at a fraction of fp32 speed.

Declared here, apart from the translator (runtime/engines/ms_onnx/int8.py), so that the engine table
and `runtime.load` can name them without importing onnx.
"""
INT8_MODES = ("fast", "exact")
DEFAULT_INT8_MODE = "fast"


def check_mode(mode):
    """`mode`, or ValueError naming the choices (None means the default)."""
    mode = DEFAULT_INT8_MODE if mode is None else mode
    if mode not in INT8_MODES:
        raise ValueError(f"int8 arithmetic {mode!r}: use one of {', '.join(INT8_MODES)}")
    return mode
