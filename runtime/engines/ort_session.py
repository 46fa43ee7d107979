"""The one place an onnxruntime InferenceSession is created (`.onnx` files and the `.ms` engine's
translated graphs alike), so the device rule is written once: a GPU request needs
CUDAExecutionProvider, and if onnxruntime would run on CPU instead this raises instead of falling back.
"""
from ..errors import EngineUnavailableError, ModelFormatError, ToolkitError

PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}
ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
             "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def available_providers():
    """onnxruntime's execution providers in this installation (runtime.engines.devices probes with it)."""
    import onnxruntime as ort
    return list(ort.get_available_providers())


def create_session(model, device="cpu", threads=None, source="<model>", engine="onnxruntime",
                   profile_prefix=None):
    """(InferenceSession, device) for ONNX bytes or a path, on exactly the requested device.
    `profile_prefix`: turn on onnxruntime's profiler (per-node times; `session.end_profiling()`
    returns the JSON file it wrote, named from the prefix)."""
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
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
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


def first_line(text):
    """The first line of an onnxruntime message: the rest is its internal C++ context."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


_QUIET_RUN = []


def run_session(session, names, feed, failure):
    """session.run with onnxruntime's C++ log off (a failed run raises; it need not also print).
    `failure` is the message prefix naming the model, e.g. "m.onnx: onnxruntime failed"."""
    if not _QUIET_RUN:
        import onnxruntime as ort
        opts = ort.RunOptions()
        opts.log_severity_level = 4
        _QUIET_RUN.append(opts)
    try:
        return session.run(names, feed, _QUIET_RUN[0])
    except Exception as e:  # onnxruntime's own error types; say which model failed, in one line
        raise ToolkitError(f"{failure}: {first_line(e)}") from None
