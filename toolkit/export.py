"""Export a run's network to MINDIR, ONNX or AIR, with its metadata, atomically.

The metadata belongs to the written file (runtime.metadata.save_model): inside it for ONNX
(metadata_props), else in its own sidecar `OUT.mindir.json` bound to the file by its sha256, so
`model.mindir` and `model.onnx` can sit in one folder.

Every export builds a fresh network from the run folder (MindSpore cannot export the same network to
ONNX twice in one process). With fuse_bn the BatchNorm-folded variant is exported, so the file has no
BatchNorm node (exporters do not fold it themselves). The written file is read back and checked:
BatchNorm count, and (verify=True) its outputs against the network on a random batch.
"""
import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from runtime.errors import EngineUnavailableError, ToolkitError
from runtime.formats import DEVICES, FORMATS_BY_NAME
from runtime.atomic import remove_stale_temps, temp_for
from runtime.metadata import resize_for, save_model
from runtime.mindspore_import import from_mindspore, import_mindspore

from .run_dir import RunDir

log = logging.getLogger(__name__)
INPUT_NAME = "input"
VERIFY_TOL = 1e-4          # relative to the largest output magnitude


class ExportError(ToolkitError):
    """The network cannot be exported as asked, or the written file is wrong."""


@dataclass
class ExportResult:
    path: str
    meta_path: str
    meta: object
    batchnorm_nodes: int
    max_rel_diff: Optional[float]      # exported model vs network; None when not verified


def _exportable(fmt_name):
    fmt = FORMATS_BY_NAME.get(fmt_name)
    if fmt is None or not fmt.exportable:
        known = ", ".join(n for n, f in FORMATS_BY_NAME.items() if f.exportable)
        raise ExportError(f"cannot export to {fmt_name!r}; exportable formats: {known}")
    if fmt.needs_ascend:
        from runtime.engines.devices import probe
        ok, reason = probe("mindspore", "ascend")
        if not ok:
            have = [d for d in DEVICES if probe("mindspore", d)[0]]
            raise EngineUnavailableError(f"{fmt.name.upper()} export (needs an Ascend device)", have,
                                         f"{reason}; export mindir or onnx here and convert on the device")
    return fmt


def with_softmax(net):
    """`net` followed by softmax over classes; auto_prefix=False keeps the parameter names."""
    nn, ops = from_mindspore("mindspore", "nn", "ops")

    class WithSoftmax(nn.Cell):
        def __init__(self, inner):
            super().__init__(auto_prefix=False)
            self.inner = inner

        def construct(self, x):
            return ops.softmax(self.inner(x), axis=-1)
    return WithSoftmax(net)


def build_export_network(run, fuse_bn=True):
    """A fresh network with the run's weights: fused.ckpt, or best.ckpt folded on the fly."""
    if not fuse_bn:
        return run.build_network("best")[0]
    if os.path.isfile(run.fused_ckpt):
        return run.build_network("fused")[0]
    from toolkit import models
    from toolkit.checkpoints import load_exact
    from toolkit.fuse import fuse_bn_params
    log.info("%s not found: folding BatchNorm of %s", run.fused_ckpt, run.best_ckpt)
    net, meta = run.build_network("best")
    fused = models.build(meta.arch, meta.num_classes, width=meta.width, fused=True)
    load_exact(fused, fuse_bn_params(net))
    fused.set_train(False)
    return fused


def write_model(net, x, fmt, tmp):
    """ms export of `net` for input `x` to `tmp` (which must end with fmt.suffix); input named INPUT_NAME
    for ONNX."""
    ms = import_mindspore()
    if fmt.name == "onnx" and hasattr(ms, "onnx") and hasattr(ms.onnx, "export"):
        ms.onnx.export(net, x, file_name=tmp, input_names=[INPUT_NAME])
    else:
        ms.export(net, x, file_name=tmp, file_format=fmt.name.upper())


def batchnorm_nodes(path):
    """Number of BatchNorm nodes in a written MINDIR or ONNX file."""
    return sum("batchnorm" in op.lower() for op in graph_ops(path))


def graph_ops(path):
    """Op type of every node of a MINDIR or ONNX file (read back from the file itself)."""
    if path.endswith(".onnx"):
        import onnx
        return [n.op_type for n in onnx.load(path, load_external_data=False).graph.node]
    from runtime.mindir_info import mindir_ops
    return mindir_ops(path)


def _input_name(path):
    if path.endswith(".onnx"):
        import onnx
        return onnx.load(path, load_external_data=False).graph.input[0].name
    if path.endswith(".mindir"):
        from runtime.mindir_info import mindir_io
        return mindir_io(path)[0][0].name
    return None


def run_exported(path, x):
    """Outputs of an exported MINDIR or ONNX file for input `x`, through runtime.load: MINDIR on the
    "mindspore" engine where this process's MindSpore runs, ONNX on "onnxruntime" on the CPU."""
    import runtime
    from runtime.engines.batching import run_batched
    if path.endswith(".onnx"):
        engine = runtime.load(path, engine="onnxruntime", device="cpu")
    else:
        from runtime.engines.mindspore_engine import process_device
        engine = runtime.load(path, engine="mindspore", device=process_device())
    return run_batched(engine, x)


def default_name(fmt, softmax=False, fuse_bn=True):
    """`model.onnx`, `model_softmax_bn.mindir`: one name per variant; the format is the suffix (each
    file carries its own metadata, so `model.mindir` and `model.onnx` coexist)."""
    return f"model{'_softmax' if softmax else ''}{'' if fuse_bn else '_bn'}{fmt.suffix}"


def export_run(run_dir, fmt="mindir", fuse_bn=True, softmax=False, batch_size=1, image_size=None,
               out=None, verify=True):
    """Export RUN_DIR's best network; returns ExportResult. See the module docstring."""
    ms = import_mindspore()
    fmt = _exportable(fmt)
    run = RunDir(run_dir)
    meta = run.load_meta()
    image_size = image_size or meta.image_size
    if batch_size < 1 or not 8 <= image_size <= 8192:
        raise ExportError(f"bad batch size {batch_size} or image size {image_size}")
    out = os.fspath(out) if out else os.path.join(run.export_dir, default_name(fmt, softmax, fuse_bn))
    if os.path.isdir(out):
        out = os.path.join(out, default_name(fmt, softmax, fuse_bn))
    if not out.endswith(fmt.suffix):
        raise ExportError(f"{out}: the output of a {fmt.name} export must end with {fmt.suffix}")
    net = build_export_network(run, fuse_bn)
    if softmax:
        net = with_softmax(net)
    net.set_train(False)
    x = np.random.default_rng(0).normal(0, 1, (batch_size, 3, image_size, image_size)).astype(np.float32)
    remove_stale_temps(out)                    # left by an export killed mid-write
    tmp = temp_for(out, suffix=fmt.suffix)     # MindSpore wants the format's suffix
    try:
        write_model(net, ms.Tensor(x), fmt, tmp)
        n_bn = batchnorm_nodes(tmp) if fmt.name in ("mindir", "onnx") else 0
        if fuse_bn and n_bn:
            raise ExportError(f"fused export still has {n_bn} BatchNorm node(s)")
        diff = None
        if verify and fmt.name in ("mindir", "onnx"):
            want = net(ms.Tensor(x)).asnumpy()
            got = run_exported(tmp, x)
            diff = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
            if diff > VERIFY_TOL:
                raise ExportError(f"exported {fmt.name} differs from the network: {diff:.2e} relative")
        input_name = _input_name(tmp)
        out_meta = meta.replace(image_size=image_size, resize=resize_for(image_size),
                                softmax=bool(softmax), input_name=input_name)
        with open(tmp, "rb") as f:
            model_bytes = f.read()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta_path = save_model(out, model_bytes, out_meta)
    return ExportResult(out, meta_path, out_meta, n_bn, diff)
