"""Full-integer `.ms` (`toolkit convert --quant full`): speed, size, calibration time and accuracy.

    python -m benchmarks.bench_full_int8 speed --work DIR [--arch resnet50] [--threads 1 2] [--runs 60]
    python -m benchmarks.bench_full_int8 accuracy --model M.onnx --calib TRAIN --data VAL --work DIR

speed: MobileNetV2 1.0 (or ResNet-50), 224 px, batch 1. The network is the project's builder exported
to ONNX by MindSpore (benchmarks.bench_ms_engine.export_onnx, bench_resnet50.export_resnet50) with seeded weights of realistic scale (conv
N(0, 2/fan_in), dense N(0, 1/fan_in), BatchNorm gamma/var U(0.5, 1.5), beta/mean N(0, 0.1^2); the
random-init export's activations are ~1e-9, which would calibrate to degenerate ranges) and metadata
for 224 px. It is calibrated on 100 generated 224 px images. Rows, timed interleaved run by run in one
process (p50 over --runs): fp32 ONNX in onnxruntime (the peer of the goal), the fp32 `.ms` and the
full-int8 `.ms` in our engine (int8 "fast" and "exact"); then the official `benchmark` on both `.ms`
files (its own clock, its AvgRunTime). Goal: int8 fast / fp32 ONNX <= 0.5.

accuracy: a trained model (the demo's) converted with minmax and with percentile calibration; top-1 of
the float ONNX, of each int8 file in both arithmetics, top-1 agreement, cosine of the logits, on a
labelled ImageFolder. Goals: top-1 drop <= 1 point, cosine >= 0.99.

Reports: WORK/full_int8_{speed,accuracy}.{json,md} (copy them to benchmarks/reports/full_int8/).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def realistic_weights(onnx_path, seed=0):
    """Rewrite the ONNX initializers in place with seeded weights of realistic scale (see above)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(onnx_path)
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in model.graph.initializer}
    def put(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            put(node.input[1], rng.normal(0, np.sqrt(2.0 / np.prod(w.shape[1:])), w.shape))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            put(node.input[1], rng.normal(0, np.sqrt(1.0 / min(w.shape)), w.shape))
            if len(node.input) > 2 and node.input[2] in inits:
                b = numpy_helper.to_array(inits[node.input[2]])
                put(node.input[2], rng.normal(0, 0.1, b.shape))
        elif node.op_type == "BatchNormalization":
            gamma, beta, mean, var = node.input[1:5]
            c = numpy_helper.to_array(inits[gamma]).shape
            put(gamma, rng.uniform(0.5, 1.5, c))
            put(var, rng.uniform(0.5, 1.5, c))
            put(beta, rng.normal(0, 0.1, c))
            put(mean, rng.normal(0, 0.1, c))
    return model.SerializeToString()


def _export(arch, folder, classes, size):
    os.makedirs(folder, exist_ok=True)
    if arch == "resnet50":
        from benchmarks.bench_resnet50 import export_resnet50
        return export_resnet50(folder, size, classes)
    from benchmarks.bench_ms_engine import export_onnx
    return export_onnx(folder, classes, size)


def make_model(work, arch="mobilenet_v2", size=224, classes=1000):
    from runtime.metadata import ModelMeta, resize_for, save_model
    raw = _export(arch, os.path.join(work, "export"), classes, size)
    path = os.path.join(work, f"{arch}.onnx")
    meta = ModelMeta(arch=arch, width=1.0, image_size=size, resize=resize_for(size),
                     class_names=[f"class_{k}" for k in range(classes)])
    save_model(path, realistic_weights(raw), meta)
    return path


def make_images(work, size=224, count=100):
    from toolkit.data.synthetic import make_dataset
    folder = os.path.join(work, "calib")
    if not os.path.isdir(folder):
        make_dataset(folder, classes=10, per_class=count // 10 + 2, size=size, seed=3, val_fraction=0.1)
    return os.path.join(folder, "train")


def _p50(engines, feeds, runs, warmup):
    for _ in range(warmup):
        for k, e in engines.items():
            e.run(feeds[k])
    times = {k: [] for k in engines}
    keys = list(engines)
    for i in range(runs):
        for k in (keys if i % 2 == 0 else keys[::-1]):
            t0 = time.perf_counter()
            engines[k].run(feeds[k])
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def speed(args):
    import runtime
    from converters import ConvertOptions, convert
    from runtime.official import benchmark_cli, discovery
    os.makedirs(args.work, exist_ok=True)
    onnx_path = make_model(args.work, args.arch)
    calib = make_images(args.work, count=args.calib_count)
    fp32 = os.path.join(args.work, f"{args.arch}_fp32.ms")
    int8 = os.path.join(args.work, f"{args.arch}_int8_full.ms")
    convert(onnx_path, fp32)
    t0 = time.perf_counter()
    res = convert(onnx_path, int8, ConvertOptions(quant="full", calib=calib, calib_count=args.calib_count))
    out = {"model": f"{args.arch} 1.0, 224 px, batch 1 (seeded weights)",
           "calibration_images": res.full_quant.calibration_images,
           "calibration_s": res.seconds["calibrate"], "convert_int8_total_s": time.perf_counter() - t0,
           "fp32_ms_bytes": os.path.getsize(fp32), "int8_ms_bytes": os.path.getsize(int8),
           "onnx_bytes": os.path.getsize(onnx_path), "threads": {}}
    out["size_ratio_int8_over_fp32_ms"] = out["int8_ms_bytes"] / out["fp32_ms_bytes"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for threads in args.threads:
        engines = {"fp32 ONNX, onnxruntime": runtime.load(onnx_path, engine="onnxruntime", threads=threads),
                   "fp32 .ms, ms-engine": runtime.load(fp32, engine="ms-engine", threads=threads),
                   "int8 .ms, ms-engine fast": runtime.load(int8, engine="ms-engine", threads=threads, int8="fast"),
                   "int8 .ms, ms-engine exact": runtime.load(int8, engine="ms-engine", threads=threads, int8="exact")}
        feeds = {k: [x if k.startswith("fp32 ONNX") else nhwc] for k in engines}
        row = _p50(engines, feeds, args.runs, args.warmup)
        peer = row["fp32 ONNX, onnxruntime"]
        entry = {"p50_ms": row, "ratio_vs_fp32_onnx": {k: v / peer for k, v in row.items()}}
        try:
            tool = discovery.locate(discovery.BENCHMARK)
            official = {}
            for name, path, loops in (("fp32 .ms, official benchmark", fp32, 50),
                                      ("int8 .ms, official benchmark", int8, args.official_loops)):
                t = benchmark_cli.performance(tool, path, threads=threads, loops=loops, warmup=2)
                official[name] = {"avg_ms": t.avg_ms, "min_ms": t.min_ms, "loops": loops}
            entry["official"] = official
            entry["official_int8_over_ours_fast"] = \
                official["int8 .ms, official benchmark"]["avg_ms"] / row["int8 .ms, ms-engine fast"]
        except discovery.OfficialToolUnavailableError as e:
            entry["official"] = f"not measured: {e}"
        out["threads"][str(threads)] = entry
    return out


def _labelled(folder, class_names):
    from runtime.images import list_images
    files, labels = [], []
    for k, name in enumerate(class_names):
        sub = os.path.join(folder, name)
        for f in list_images([sub]) if os.path.isdir(sub) else []:
            files.append(f)
            labels.append(k)
    if not files:
        raise SystemExit(f"{folder}: no class sub-folders named after the metadata's classes")
    return files, np.array(labels)


def accuracy(args):
    import runtime
    from converters import ConvertOptions, convert
    from runtime.metadata import find_meta
    from runtime.preprocess import Preprocessor
    os.makedirs(args.work, exist_ok=True)
    meta, _ = find_meta(args.model)
    files, labels = _labelled(args.data, meta.class_names)
    nchw = Preprocessor(meta, layout="NCHW")
    xs = [nchw(f)[None] for f in files]
    ref = runtime.load(args.model, engine="onnxruntime")
    logits = np.concatenate([next(iter(ref.run([x]).values())) for x in xs]).reshape(len(xs), -1)
    out = {"model": args.model, "images": len(xs), "float_top1": float(np.mean(logits.argmax(1) == labels)),
           "methods": {}}
    for method in ("minmax", "percentile"):
        path = os.path.join(args.work, f"int8_full_{method}.ms")
        res = convert(args.model, path, ConvertOptions(quant="full", calib=args.calib,
                                                       calib_count=args.calib_count, calib_method=method))
        entry = {"calibration_s": res.seconds["calibrate"], "bytes": os.path.getsize(path)}
        for mode in ("fast", "exact"):
            eng = runtime.load(path, engine="ms-engine", int8=mode)
            q = np.concatenate([next(iter(eng.run([np.ascontiguousarray(x.transpose(0, 2, 3, 1))]).values()))
                                for x in xs]).reshape(len(xs), -1)
            cos = np.sum(q * logits, 1) / np.maximum(np.linalg.norm(q, axis=1) * np.linalg.norm(logits, axis=1), 1e-30)
            top1 = float(np.mean(q.argmax(1) == labels))
            entry[mode] = {"top1": top1, "top1_drop_points": (out["float_top1"] - top1) * 100,
                           "agreement": float(np.mean(q.argmax(1) == logits.argmax(1))),
                           "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
        out["methods"][method] = entry
    return out


def markdown(kind, r):
    lines = [f"# Full-int8 {kind} ({r.get('model')})", ""]
    if kind == "speed":
        lines += [f"calibration: {r['calibration_images']} images in {r['calibration_s']:.2f} s; "
                  f"sizes: fp32 .ms {r['fp32_ms_bytes'] / 1e6:.2f} MB, int8 .ms {r['int8_ms_bytes'] / 1e6:.2f} MB "
                  f"(ratio {r['size_ratio_int8_over_fp32_ms']:.3f}, goal <= 0.3)", "",
                  "| threads | row | p50 ms | vs fp32 ONNX |", "|---|---|---|---|"]
        for t, e in r["threads"].items():
            for k, v in e["p50_ms"].items():
                lines.append(f"| {t} | {k} | {v:.2f} | {e['ratio_vs_fp32_onnx'][k]:.2f}x |")
            if isinstance(e["official"], dict):
                for k, v in e["official"].items():
                    lines.append(f"| {t} | {k} (avg, {v['loops']} loops) | {v['avg_ms']:.2f} | "
                                 f"{v['avg_ms'] / e['p50_ms']['fp32 ONNX, onnxruntime']:.2f}x |")
    else:
        lines += [f"{r['images']} labelled images; float top-1 {r['float_top1'] * 100:.1f}%", "",
                  "| calibration | arithmetic | top-1 | drop (points) | agreement | mean cosine | min cosine |",
                  "|---|---|---|---|---|---|---|"]
        for m, e in r["methods"].items():
            for mode in ("fast", "exact"):
                v = e[mode]
                lines.append(f"| {m} | {mode} | {v['top1'] * 100:.1f}% | {v['top1_drop_points']:.1f} | "
                             f"{v['agreement'] * 100:.1f}% | {v['mean_cosine']:.4f} | {v['min_cosine']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--arch", choices=["mobilenet_v2", "resnet50"], default="mobilenet_v2")
    s.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    s.add_argument("--runs", type=int, default=60)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--official-loops", type=int, default=5)
    a = sub.add_parser("accuracy")
    a.add_argument("--model", required=True, help="a trained float ONNX with metadata")
    a.add_argument("--calib", required=True, help="calibration images (e.g. the training folder)")
    a.add_argument("--data", required=True, help="labelled ImageFolder (e.g. the validation folder)")
    for q in (s, a):
        q.add_argument("--work", required=True)
        q.add_argument("--calib-count", type=int, default=100)
    args = p.parse_args(argv)
    result = speed(args) if args.kind == "speed" else accuracy(args)
    from runtime.atomic import atomic_write_text
    atomic_write_text(os.path.join(args.work, f"full_int8_{args.kind}.json"), json.dumps(result, indent=2) + "\n")
    text = markdown(args.kind, result)
    atomic_write_text(os.path.join(args.work, f"full_int8_{args.kind}.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
