"""The one place an onnxruntime InferenceSession is created (`.onnx` files and the `.ms` engine's
translated graphs alike), so the device rule is written once: a GPU request needs
CUDAExecutionProvider, and if onnxruntime would run on CPU instead this raises instead of falling back.
"""
from ..errors import EngineUnavailableError, ModelFormatError

PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
             "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def available_providers():
    """onnxruntime's execution providers in this installation (runtime.devices probes with it)."""
    import onnxruntime as ort
    return list(ort.get_available_providers())


def create_session(model, device="cpu", threads=None, source="<model>", engine="onnxruntime"):
    """(InferenceSession, device) for ONNX bytes or a path, on exactly the requested device."""
    import onnxruntime as ort
    want = PROVIDERS.get(device)
    available = available_providers()
    present = [d for d, p in PROVIDERS.items() if p in available]
    if want is None or want not in available:
        raise EngineUnavailableError(f"device {device!r} for {engine}", present,
                                     f"onnxruntime execution providers here: {', '.join(available)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    providers = [want] if device == "cpu" else [want, PROVIDERS["cpu"]]
    try:
        session = ort.InferenceSession(model, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFormatError(source, f"onnxruntime cannot load the model: {e}") from None
    if session.get_providers()[0] != want:
        raise EngineUnavailableError(f"device {device!r} for {engine}", ["cpu"],
                                     f"onnxruntime fell back to {session.get_providers()}")
    return session, device
