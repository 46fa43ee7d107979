"""Evaluate a run on an ImageFolder split: top-1, per-class accuracy, confusion matrix (JSON + PNG).

Images go through `eval_batches` (bit-identical to the MindSpore eval pipeline). The network runs on
one of ENGINES: "mindspore" (the network itself) or "onnxruntime" (the same weights exported to ONNX,
about 57x faster on CPU). onnxruntime is only used after its logits on the first batch have been
checked against MindSpore's (PARITY_TOL); the measured difference is part of the report.
"""
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from runtime.atomic import atomic_path, atomic_write_text
from runtime.errors import EngineUnavailableError, ToolkitError
from runtime.registry import registrar
from runtime.mindspore_import import import_mindspore

from .data.errors import DatasetError
from .data.folder import scan_dataset
from .data.pipeline import eval_batches
from .run_dir import RunDir

log = logging.getLogger(__name__)
PARITY_TOL = 1e-4                  # max |ort - mindspore| / max |mindspore| on the first batch
ENGINES = {}


engine = registrar(ENGINES, "evaluation engine")


@engine("mindspore")
def _mindspore_predictor(net, batch_size, image_size):
    """The network itself (nothing exported): the reference every other engine is checked against."""
    ms = import_mindspore()
    return lambda x: net(ms.Tensor(x)).asnumpy()


@engine("onnxruntime")
def _ort_predictor(net, batch_size, image_size):
    """Export the (fresh) network to ONNX at `batch_size` in a temp folder and run it through
    runtime.load; run_batched pads the short last batch."""
    ms = import_mindspore()

    import runtime
    from runtime.engines.batching import run_batched
    from runtime.formats import FORMATS_BY_NAME
    from .export import write_model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eval.onnx")
        x = ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
        write_model(net, x, FORMATS_BY_NAME["onnx"], path)
        eng = runtime.load(path, engine="onnxruntime", device="cpu")
    return lambda x: run_batched(eng, x)


@dataclass
class EvalResult:
    split: str
    engine: str
    network: str
    class_names: List[str]
    n_images: int
    top1: float
    per_class: Dict[str, Dict[str, float]]
    confusion: List[List[int]]             # rows: true class, columns: predicted class
    parity_max_rel_diff: Optional[float] = None
    skipped: List[List[str]] = field(default_factory=list)

    def lines(self):
        out = [f"top-1 {self.top1 * 100:.2f}% on {self.n_images} {self.split} images "
               f"({self.network} network, {self.engine})"]
        if self.parity_max_rel_diff is not None:
            out.append(f"onnxruntime vs MindSpore on the first batch: max relative difference "
                       f"{self.parity_max_rel_diff:.1e}")
        out += [f"  {name}: {v['accuracy'] * 100:.1f}% of {int(v['count'])}"
                for name, v in self.per_class.items()]
        if self.skipped:
            out.append(f"{len(self.skipped)} unreadable file(s) skipped")
        return out


def _label_map(data_classes, model_classes, root):
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise DatasetError(f"{root}: class folder(s) unknown to the model: {', '.join(unknown)}; "
                           f"model classes: {', '.join(model_classes)}")
    return np.array([model_classes.index(c) for c in data_classes], np.int64)


def _choose_engine(name):
    """The evaluation engine: installed means every package its runtime.formats.ENGINES entry needs."""
    from runtime.engines import engine_importable
    from runtime.formats import ENGINES_BY_NAME

    def installed(e):
        return engine_importable(ENGINES_BY_NAME[e])
    if name == "auto":
        return "onnxruntime" if installed("onnxruntime") else "mindspore"
    if name not in ENGINES:
        raise ToolkitError(f"unknown engine {name!r}; choose from auto, {', '.join(ENGINES)}")
    if not installed(name):
        raise EngineUnavailableError(name, [e for e in ENGINES if installed(e)], "not installed")
    return name


def evaluate_run(data, run_dir, split="val", engine_name="auto", batch_size=32, network="best",
                 progress=None):
    """Evaluate RUN_DIR's network on DATA's split; returns an EvalResult."""
    run = RunDir(run_dir)
    meta = run.load_meta()
    try:
        cfg = run.load_config()
    except ToolkitError:
        cfg = {}
    index = scan_dataset(data, val_fraction=float(cfg.get("val_fraction", 0.2)), seed=int(cfg.get("seed", 0)))
    samples = index.split(split)
    if not samples:
        raise DatasetError(f"{data}: the {split} split has no readable images")
    to_model = _label_map(index.classes, meta.class_names, data)
    name = _choose_engine(engine_name)
    net, _ = run.build_network(network, meta=meta)
    predict = ENGINES[name](net, batch_size, meta.image_size)
    k = meta.num_classes
    confusion = np.zeros((k, k), np.int64)
    parity = None
    batches = eval_batches(samples, meta, batch_size)     # the whole metadata: the device's transform
    n_batches = (len(samples) + batch_size - 1) // batch_size
    for i, (x, labels) in enumerate(progress(batches, n_batches) if progress else batches):
        logits = predict(x)
        if i == 0 and name != "mindspore":
            reference = ENGINES["mindspore"](net, batch_size, meta.image_size)(x)
            parity = float(np.abs(logits - reference).max() / max(np.abs(reference).max(), 1e-12))
            if parity > PARITY_TOL:
                raise ToolkitError(f"{name} disagrees with MindSpore ({parity:.1e} relative > {PARITY_TOL}); "
                                   "use --engine mindspore")
        np.add.at(confusion, (to_model[labels], logits.argmax(1)), 1)
    counts = confusion.sum(1)
    per_class = {c: {"accuracy": float(confusion[j, j] / counts[j]) if counts[j] else 0.0,
                     "count": int(counts[j])} for j, c in enumerate(meta.class_names)}
    return EvalResult(split=split, engine=name, network=network, class_names=list(meta.class_names),
                      n_images=int(counts.sum()), top1=float(np.trace(confusion) / counts.sum()),
                      per_class=per_class, confusion=confusion.tolist(), parity_max_rel_diff=parity,
                      skipped=[list(s) for s in index.skipped])


def write_report(result, out_dir):
    """eval.json and confusion.png in out_dir (atomic); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, png_path = os.path.join(out_dir, "eval.json"), os.path.join(out_dir, "confusion.png")
    atomic_write_text(json_path, json.dumps(asdict(result), indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.array(result.confusion)
    k = len(result.class_names)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * k, 1.5 + 0.6 * k))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), result.class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), result.class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result.split}: top-1 {result.top1 * 100:.1f}% ({result.n_images} images)", fontsize=9)
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return json_path, png_path
