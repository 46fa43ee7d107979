"""Pure-Python converter from MINDIR and ONNX to MindSpore Lite `.ms`.

    from converters import convert, ConvertOptions
    result = convert("model.mindir", "model.ms", ConvertOptions(fp16=True, verify=8))

Layers: front ends (converters.frontends) -> one IR (converters.ir) -> ordered passes
(converters.passes.PIPELINE) -> lowering to MsModel (converters.lower) -> weight compression
(converters.quantize) -> verification (converters.verify) -> atomic write.
"""
from .errors import ConversionError, VerificationFailed  # noqa: F401
from .pipeline import ConvertOptions, ConvertResult, convert  # noqa: F401
