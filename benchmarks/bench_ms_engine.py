"""MobileNetV2 latency: a `.ms` through MsEngine against the same network as ONNX in onnxruntime.

    python -m benchmarks.bench_ms_engine --ms mnv2.ms --onnx mnv2.onnx --threads 2 --json out.json
    python -m benchmarks.bench_ms_engine --make-onnx DIR      # export MobileNetV2 224 ONNX first

Both sessions run in one process, interleaved run by run so machine noise hits both alike; the
report gives medians and their ratio (goal: .ms <= 1.10x ONNX). Load time of the `.ms` is measured
cold (reader + translation + session). Peak memory is the peak RSS of a child process that only
loads and runs the `.ms`.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def export_onnx(folder, classes=1000, size=224):
    """MobileNetV2 (ModelZoo layout) exported to ONNX with MindSpore; returns the path."""
    from runtime.mindspore_import import import_mindspore
    ms = import_mindspore()
    from toolkit.models import build
    net = build("mobilenet_v2", classes)
    net.set_train(False)
    path = os.path.join(folder, "mobilenet_v2.onnx")
    os.makedirs(folder, exist_ok=True)
    x = ms.Tensor(np.zeros((1, 3, size, size), np.float32))
    ms.export(net, x, file_name=path[:-len(".onnx")], file_format="ONNX")
    return path


def _feed_for(spec, base):
    """The NCHW base input in the layout the engine's input declares."""
    if len(spec.shape) == 4 and spec.shape[-1] == base.shape[1] and spec.shape[1] != base.shape[1]:
        return np.ascontiguousarray(base.transpose(0, 2, 3, 1))
    return base


def load_ms_cold(path, threads):
    """(engine, seconds, phases) with the per-process translation cache emptied first."""
    from runtime.engines import ms_engine
    from runtime.msformat.reader import read_ms
    from runtime.engines.ms_onnx import translate
    ms_engine._CACHE.clear()
    t0 = time.perf_counter()
    engine = ms_engine.MsEngine(path, threads=threads)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = read_ms(path)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    translate(model, path)
    t_translate = time.perf_counter() - t0
    return engine, total, {"read_s": t_read, "translate_s": t_translate}


def measure(ms_path, onnx_path, threads, runs, warmup):
    from runtime.engines.ort_engine import OnnxRuntimeEngine
    ms_eng, load_s, phases = load_ms_cold(ms_path, threads)
    onnx_eng = OnnxRuntimeEngine(onnx_path, threads=threads)
    spec = onnx_eng.inputs()[0]
    shape = [d or 1 for d in spec.shape]
    base = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    feeds = {"ms": [_feed_for(ms_eng.inputs()[0], base)], "onnx": [_feed_for(spec, base)]}
    engines = {"ms": ms_eng, "onnx": onnx_eng}
    for _ in range(warmup):
        for k in engines:
            engines[k].run(feeds[k])
    times = {"ms": [], "onnx": []}
    for i in range(runs):
        order = ("ms", "onnx") if i % 2 == 0 else ("onnx", "ms")
        for k in order:
            t0 = time.perf_counter()
            engines[k].run(feeds[k])
            times[k].append(time.perf_counter() - t0)
    out_ms = next(iter(ms_eng.run(feeds["ms"]).values()))
    out_onnx = next(iter(onnx_eng.run(feeds["onnx"]).values()))
    diff = float(np.abs(out_ms.reshape(-1) - out_onnx.reshape(-1)).max()) \
        if out_ms.size == out_onnx.size else None
    scale = float(np.abs(out_onnx).max())
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {
        "ms_file": ms_path, "onnx_file": onnx_path, "threads": threads, "runs": runs,
        "ms_median_ms": med["ms"], "onnx_median_ms": med["onnx"],
        "ratio_ms_over_onnx": med["ms"] / med["onnx"],
        "ms_p90_ms": float(np.percentile(times["ms"], 90) * 1000),
        "onnx_p90_ms": float(np.percentile(times["onnx"], 90) * 1000),
        "ms_load_s": load_s, **{f"ms_{k}": v for k, v in phases.items()},
        "max_abs_output_diff": diff, "max_abs_onnx_output": scale,
    }


def peak_memory(ms_path, threads, runs=10):
    """Peak RSS (MiB) of a fresh process that loads the .ms and runs it `runs` times."""
    code = ("import resource,sys,numpy as np\n"
            "from runtime.engines.ms_engine import MsEngine\n"
            "base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"e=MsEngine({ms_path!r}, threads={threads!r})\n"
            "s=e.inputs()[0]; x=np.zeros([d or 1 for d in s.shape], s.dtype)\n"
            f"[e.run([x]) for _ in range({runs})]\n"
            "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak = (int(v) for v in out.stdout.split()[-2:])
    return {"ms_peak_rss_mib": peak / 1024, "ms_rss_before_load_mib": before / 1024}


def table(r):
    rows = [("ONNX in onnxruntime", f"{r['onnx_median_ms']:.2f}", f"{r['onnx_p90_ms']:.2f}"),
            (".ms through MsEngine", f"{r['ms_median_ms']:.2f}", f"{r['ms_p90_ms']:.2f}")]
    lines = [f"{'engine':<24}{'median ms':>11}{'p90 ms':>9}"]
    lines += [f"{a:<24}{b:>11}{c:>9}" for a, b, c in rows]
    lines.append(f"ratio .ms / ONNX: {r['ratio_ms_over_onnx']:.3f} (goal <= 1.10), threads {r['threads']}, "
                 f"{r['runs']} runs")
    lines.append(f".ms load (cold): {r['ms_load_s']:.3f} s (read {r['ms_read_s']:.3f} s, translate "
                 f"{r['ms_translate_s']:.3f} s); peak RSS {r.get('ms_peak_rss_mib', float('nan')):.0f} MiB; "
                 f"output max |diff| {r['max_abs_output_diff']} (max |output| {r['max_abs_onnx_output']:.3g})")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ms", help="MobileNetV2 .ms (from `toolkit convert`)")
    p.add_argument("--onnx", help="the same network as ONNX")
    p.add_argument("--make-onnx", metavar="DIR", help="export MobileNetV2 224 ONNX into DIR and exit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="write the results here (atomically)")
    args = p.parse_args(argv)
    if args.make_onnx:
        print(export_onnx(args.make_onnx))
        return 0
    if not (args.ms and args.onnx):
        p.error("--ms and --onnx are both required (make the ONNX with --make-onnx DIR, the .ms with "
                "`toolkit convert`)")
    result = measure(args.ms, args.onnx, args.threads, args.runs, args.warmup)
    result.update(peak_memory(args.ms, args.threads))
    result["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(table(result))
    if args.json:
        from runtime.atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
