"""MINDIR through MindSpore itself (`mindspore.load` + `nn.GraphCell`): the reference engine.

Slow on CPU compared with onnxruntime (see shared/docs/platform-facts.md) but exact: it runs the
graph MindSpore exported, with zero difference from the network. MindSpore is imported only when
this engine is constructed. The device is process-wide in MindSpore, so asking for a device that is
absent, or different from the one this process already uses, raises instead of running elsewhere.
"""
from .devices import available_devices, probe
from ..errors import EngineUnavailableError, ModelFormatError, ToolkitError
from ..mindir_info import mindir_io
from ..mindspore_import import import_mindspore
from .base import Engine, check_device

_THREADS_SET = None          # MindSpore's CPU thread count can be set once per process
MS_TARGETS = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}


def process_device():
    """The device this process's MindSpore runs on (or will run on), as an ENGINES device name."""
    ms = import_mindspore()
    target = ms.get_context("device_target")
    names = {v: k for k, v in MS_TARGETS.items()}
    if target not in names:
        raise EngineUnavailableError(f"MindSpore device target {target!r}", list(MS_TARGETS),
                                     "not a device this project knows")
    return names[target]


def select_device(device, device_id=None, what=None):
    """Put this process's MindSpore on `device`, or raise if it already runs elsewhere.

    MindSpore's device is process-wide and fixed once a kernel has run, so re-setting the same
    target is skipped (it raises after initialisation) and a different one is an error, never a
    silent switch.
    """
    ms = import_mindspore()
    what = what or f"MindSpore on {device}"
    target = MS_TARGETS[device]
    current = ms.get_context("device_target")
    current_id = ms.get_context("device_id")
    if current == target and (device_id is None or device == "cpu" or current_id == device_id):
        return
    try:
        ms.set_device(target, device_id if device != "cpu" else None)
    except Exception as e:
        raise EngineUnavailableError(what, [current.lower()],
                                     f"this process already runs MindSpore on {current}: {e}") from None
    if ms.get_context("device_target") != target:
        raise EngineUnavailableError(what, [ms.get_context("device_target").lower()],
                                     "MindSpore kept its previous device")


class MindSporeEngine(Engine):
    name = "mindspore"

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)      # refuses devices the ENGINES entry lacks
        check_device(self.name, device, available_devices(self.name),
                     probe(self.name, device)[1] or "not present on this machine")
        ms = import_mindspore()
        self._ms = ms
        self._select_device(device)
        if threads:
            self._set_threads(int(threads))
        self._inputs, self._outputs = mindir_io(self.path)
        try:
            graph = ms.load(self.path)
            self.cell = ms.nn.GraphCell(graph)
        except Exception as e:  # MindSpore raises RuntimeError/ValueError with long C++ traces
            raise ModelFormatError(path, f"MindSpore cannot load it: {str(e).strip().splitlines()[0]}") from None

    def _select_device(self, device):
        # The execution mode is left alone: GraphCell runs in either mode, and the process may be
        # training in PYNATIVE at the same time.
        select_device(device, what=f"device {device!r} for engine {self.name}")

    def _set_threads(self, threads):
        global _THREADS_SET
        if _THREADS_SET == threads:
            return
        if _THREADS_SET is not None:
            raise ToolkitError(f"MindSpore already runs with {_THREADS_SET} CPU threads in this "
                               f"process and cannot change to {threads} (a process-wide setting)")
        try:
            self._ms.device_context.cpu.op_tuning.threads_num(threads)
        except Exception as e:  # e.g. set earlier by other code in this process
            raise ToolkitError(f"MindSpore cannot use {threads} threads in this process: {e}") from None
        _THREADS_SET = threads

    def run(self, feed):
        feed = self._normalize_feed(feed)
        args = [self._ms.Tensor(feed[s.name]) for s in self._inputs]
        try:
            out = self.cell(*args)
        except Exception as e:
            raise ToolkitError(f"{self.path}: MindSpore failed: {str(e).strip().splitlines()[0]}") from None
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {spec.name: o.asnumpy() for spec, o in zip(self._outputs, outs)}
