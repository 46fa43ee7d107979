"""Which devices each engine can really use on this machine, with the reason when it cannot.

Only the devices an engine's runtime.formats.ENGINES entry lists are probed; any other device is
unsupported by the table itself. Probing imports the engine's framework, so it is done only when
asked (never at `import runtime`). onnxruntime's providers are read through ort_session, the one
module that talks to onnxruntime.
"""
import functools

from ..formats import ENGINES_BY_NAME
from ..mindspore_import import import_mindspore
from .availability import is_importable, program_found


def _ort(device):
    if not is_importable("onnxruntime"):
        return False, "onnxruntime is not installed"
    from .ort_session import PROVIDERS, available_providers
    providers = available_providers()
    want = PROVIDERS.get(device)
    if want is None:
        return False, f"onnxruntime has no execution provider for {device} in runtime.engines.ort_session"
    if want not in providers:
        return False, f"{want} not in onnxruntime providers {providers}"
    return True, ""


def _ms_engine(device):
    # The .ms engine translates to ONNX (needs onnx) and runs on onnxruntime.
    if not is_importable("onnx"):
        return False, "onnx is not installed (the .ms engine builds ONNX graphs)"
    return _ort(device)


def _mindspore(device):
    if not is_importable("mindspore"):
        return False, "mindspore is not installed"
    if device == "cpu":
        return True, ""
    ms = import_mindspore()
    target = {"gpu": "GPU", "ascend": "Ascend"}[device]
    try:
        ok = ms.hal.is_available(target)
    except Exception as e:  # the hal probe itself fails on builds without the backend
        return False, f"MindSpore {target} backend probe failed: {e}"
    return (True, "") if ok else (False, f"MindSpore reports no {target} backend/device")


def _mslite(device):
    if not is_importable("mindspore_lite"):
        return False, "mindspore_lite is not installed (it is not on the package index)"
    # MindSpore Lite accepts GPU/Ascend contexts and silently adds a CPU backup; the engine checks
    # which device really ran after building, so here only the package is probed.
    return True, ""


def _opencv(device):
    return (True, "") if is_importable("cv2") else (False, "opencv is not installed")


def _official_benchmark(device):
    return program_found("benchmark")        # the official tool runs where it is found (CPU)


PROBES = {"onnxruntime": _ort, "ms-engine": _ms_engine, "mindspore": _mindspore,
          "mslite": _mslite, "opencv": _opencv, "mslite-benchmark": _official_benchmark}


@functools.lru_cache(maxsize=None)
def probe(engine, device):
    """(available, reason) for running `engine` on `device` here."""
    entry = ENGINES_BY_NAME.get(engine)
    fn = PROBES.get(engine)
    if entry is None or fn is None:
        return False, f"unknown engine {engine!r}"
    if device not in entry.devices:
        return False, f"engine {engine} supports {', '.join(entry.devices)} only"
    return fn(device)


def available_devices(engine):
    from ..formats import DEVICES
    return [d for d in DEVICES if probe(engine, d)[0]]
