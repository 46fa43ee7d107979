"""ResNet-50 (ModelZoo, `--arch resnet50`): runtime, conversion and transfer figures in one run.

    MSLITE_HOME=$(../shared/mslite/build.sh) python benchmarks/bench_resnet50.py \
        [--runs 40] [--out benchmarks/reports/resnet50]

1. Runtime, 224 px, batch 1, 1 and 2 threads: the BatchNorm-folded network exported to ONNX and
   converted to fp32 `.ms`; our engine against onnxruntime on the ONNX, interleaved in one process
   (benchmarks.bench_ms_engine.measure; goal <= 1.10x), and the official `benchmark` on the same `.ms`
   (its average over --runs loops; our figures are medians).
2. Conversion time (wall, `converters.convert` from that ONNX) and file size for fp32, fp16 and int8
   weights. Full int8 is not measured: it does not exist on this branch (issue 10).
3. Transfer on generated data (`toolkit.data.synthetic`), the registry's small ResNet-50 (width 0.25,
   all 50 layers) at 64 px, CPU: a backbone pre-trained from scratch on other classes, then
   `train-head --mode head` against `--mode finetune` from it on the same data. Fine-tuning counts the
   epochs (and their time) until its val accuracy first reaches head mode's best.
Weights in 1 and 2 are random (no pretrained weights can be downloaded here): latency and size do not
depend on their values. Writes resnet50.json and resnet50.md atomically into --out.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PRECISIONS = {"fp32": {}, "fp16": {"fp16": True}, "int8_weights": {"quant": "weight"}}


def export_resnet50(folder, size=224, classes=1000):
    """The fused (BatchNorm-folded) ResNet-50 as ONNX, exported the way `toolkit export` writes it."""
    from runtime.mindspore_import import import_mindspore
    from runtime.formats import FORMATS_BY_NAME
    from toolkit.export import write_model
    from toolkit.models import build
    ms = import_mindspore()
    net = build("resnet50", classes, fused=True)
    net.set_train(False)
    path = os.path.join(folder, "resnet50.onnx")
    write_model(net, ms.Tensor(np.zeros((1, 3, size, size), np.float32)), FORMATS_BY_NAME["onnx"], path)
    return path


def convert_all(onnx_path, folder):
    from converters import ConvertOptions, convert
    out = {"onnx_bytes": os.path.getsize(onnx_path)}
    for name, opts in PRECISIONS.items():
        path = os.path.join(folder, f"resnet50_{name}.ms")
        t0 = time.perf_counter()
        result = convert(onnx_path, path, ConvertOptions(**opts))
        out[name] = {"path": path, "seconds": time.perf_counter() - t0, "bytes": os.path.getsize(path),
                     "stages_s": result.seconds, "op_counts": result.op_counts}
    return out


def runtime_figures(ms_path, onnx_path, runs):
    from benchmarks.bench_ms_engine import measure
    from runtime.official import benchmark_cli, discovery
    tool, why = discovery.probe(discovery.BENCHMARK)
    rows = []
    for threads in (1, 2):
        r = measure(ms_path, onnx_path, threads, runs, warmup=5)
        if tool is not None:
            t = benchmark_cli.performance(tool, ms_path, threads=threads, loops=runs, warmup=5,
                                          timeout=600)
            r.update(official_avg_ms=t.avg_ms, official_min_ms=t.min_ms,
                     ratio_ms_over_official=r["ms_median_ms"] / t.avg_ms)
        else:
            r["official_absent"] = str(why)
        rows.append(r)
    return rows


def _train(args, log_path):
    cmd = [sys.executable, "-m", "toolkit.cli", "-q", "train-head", *[str(a) for a in args]]
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    return time.perf_counter() - t0


def _history(run):
    with open(os.path.join(run, "history.csv")) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def transfer_figures(folder, images, size, head_epochs, finetune_epochs, pretrain_epochs):
    from toolkit.data.synthetic import make_dataset
    small = ["--arch", "resnet50", "--width", "0.25", "--image-size", size, "--batch-size", 16,
             "--seed", 0]
    pre_data, data = os.path.join(folder, "pre_data"), os.path.join(folder, "data")
    make_dataset(pre_data, classes=4, per_class=images, size=size, seed=1, variant=0)
    make_dataset(data, classes=3, per_class=images, size=size, seed=2, variant=1)
    pre = os.path.join(folder, "pre")
    pre_s = _train([pre_data, "--out", pre, "--mode", "scratch", "--epochs", pretrain_epochs,
                    "--lr-max", 0.05, *small], os.path.join(folder, "pre.log"))
    ckpt = os.path.join(pre, "best.ckpt")
    out = {"pretrain": {"seconds": pre_s, "epochs": pretrain_epochs, "images": 4 * images,
                        "val_acc": max(r["val_acc"] for r in _history(pre))}}
    head = os.path.join(folder, "head")
    head_s = _train([data, "--out", head, "--mode", "head", "--pretrained", ckpt, "--epochs", head_epochs,
                     "--lr-max", 0.5, *small], os.path.join(folder, "head.log"))
    target = max(r["val_acc"] for r in _history(head))
    out["head"] = {"seconds": head_s, "epochs": head_epochs, "best_val_acc": target}
    ft = os.path.join(folder, "finetune")
    ft_s = _train([data, "--out", ft, "--mode", "finetune", "--pretrained", ckpt, "--epochs",
                   finetune_epochs, "--lr-max", 0.02, *small], os.path.join(folder, "finetune.log"))
    hist = _history(ft)
    reached = next((i for i, r in enumerate(hist) if r["val_acc"] >= target), None)
    out["finetune"] = {
        "seconds": ft_s, "epochs": finetune_epochs, "best_val_acc": max(r["val_acc"] for r in hist),
        "epochs_to_head_accuracy": None if reached is None else reached + 1,
        "train_seconds_to_head_accuracy": None if reached is None else
        sum(r["epoch_time_s"] for r in hist[:reached + 1]),
        "train_seconds_all_epochs": sum(r["epoch_time_s"] for r in hist)}
    out["data"] = {"classes": 3, "per_class": images, "size": size}
    return out


def markdown(r):
    lines = ["# ResNet-50 (`--arch resnet50`): runtime, conversion, transfer", "",
             f"Command: `{r['command']}`. One run on this machine; compare ratios within it.", "",
             "## Runtime, 224 px, batch 1 (fp32 `.ms`, BatchNorm folded)", "",
             "| threads | .ms in our engine, median ms | ONNX in onnxruntime, median ms | ours / ort "
             "(goal <= 1.10) | official `benchmark`, avg ms | ours / official |",
             "|---:|---:|---:|---:|---:|---:|"]
    for x in r["runtime"]:
        off = (f"{x['official_avg_ms']:.2f} | {x['ratio_ms_over_official']:.3f}" if "official_avg_ms" in x
               else "not run | -")
        lines.append(f"| {x['threads']} | {x['ms_median_ms']:.2f} | {x['onnx_median_ms']:.2f} | "
                     f"{x['ratio_ms_over_onnx']:.3f} | {off} |")
    lines += ["", f"Max |ours - onnxruntime| on the logits: {r['runtime'][0]['max_abs_output_diff']:.3g} "
              f"(largest logit {r['runtime'][0]['max_abs_onnx_output']:.3g}); {r['runtime'][0]['runs']} "
              "runs each.", "", "## Conversion from the ONNX (ours)", "",
              "| precision | seconds | bytes | vs ONNX |", "|---|---:|---:|---:|"]
    c = r["convert"]
    for name in PRECISIONS:
        lines.append(f"| {name} | {c[name]['seconds']:.2f} | {c[name]['bytes']:,} | "
                     f"{c[name]['bytes'] / c['onnx_bytes']:.3f} |")
    lines += [f"| (ONNX source) | - | {c['onnx_bytes']:,} | 1 |", "",
              "Full int8: not measured, it does not exist on this branch (issue 10).", ""]
    t = r.get("transfer")
    if t:
        ft, hd = t["finetune"], t["head"]
        lines += ["## Transfer: head mode against fine-tuning, same data", "",
                  f"Generated data, {t['data']['classes']} classes x {t['data']['per_class']} images "
                  f"(80/20 train/val), {t['data']['size']} px; the registry's small ResNet-50 (width 0.25,"
                  f" all 50 layers); backbone pre-trained from scratch on 4 other classes "
                  f"({t['pretrain']['epochs']} epochs, {t['pretrain']['seconds']:.0f} s, val acc "
                  f"{t['pretrain']['val_acc']:.2f}).", "",
                  "| mode | epochs | wall s (process) | best val acc | epochs / train s to head's accuracy |",
                  "|---|---:|---:|---:|---:|",
                  f"| head (cached features) | {hd['epochs']} | {hd['seconds']:.1f} | "
                  f"{hd['best_val_acc']:.3f} | - |",
                  f"| finetune (whole network) | {ft['epochs']} | {ft['seconds']:.1f} | "
                  f"{ft['best_val_acc']:.3f} | "
                  + (f"{ft['epochs_to_head_accuracy']} / {ft['train_seconds_to_head_accuracy']:.1f}"
                     if ft["epochs_to_head_accuracy"] else "not reached") + " |", ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "reports", "resnet50"))
    p.add_argument("--images", type=int, default=30, help="per class, transfer part")
    p.add_argument("--size", type=int, default=64, help="image size, transfer part")
    p.add_argument("--head-epochs", type=int, default=10)
    p.add_argument("--finetune-epochs", type=int, default=6)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--skip-transfer", action="store_true")
    a = p.parse_args(argv)
    from runtime.atomic import atomic_write_text
    report = {"command": "python benchmarks/bench_resnet50.py " + " ".join(argv or sys.argv[1:])}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_resnet50(tmp)
        report["convert"] = convert_all(onnx_path, tmp)
        report["runtime"] = runtime_figures(report["convert"]["fp32"]["path"], onnx_path, a.runs)
        if not a.skip_transfer:
            report["transfer"] = transfer_figures(tmp, a.images, a.size, a.head_epochs,
                                                  a.finetune_epochs, a.pretrain_epochs)
    os.makedirs(a.out, exist_ok=True)
    atomic_write_text(os.path.join(a.out, "resnet50.json"), json.dumps(report, indent=2, default=str))
    atomic_write_text(os.path.join(a.out, "resnet50.md"), markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
