"""Runtime latency suite: MobileNetV2 (width 1.0, 224 px) across every engine and device, in one run.

    python benchmarks/bench_runtime.py                 # full suite, about 5 minutes on 2 cores
    python benchmarks/bench_runtime.py --quick         # batch 1 and 1 thread only, short timing

Steps: export the network (random init; no weights can be downloaded) to MINDIR and ONNX at each batch
size; convert the MINDIR to `.ms` (fp32, fp16, int8 weights) with `toolkit convert`; count the model's
FLOPs and measure the machine's peak FLOP rate; run every row of `toolkit bench` isolated in its own
process (plus the runtime.Classifier rows); write JSON, Markdown and a PNG chart into
benchmarks/reports/ with the goal ratios and the physical limit.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from runtime.metadata import ModelMeta, save_model  # noqa: E402
from runtime.mindspore_import import import_mindspore  # noqa: E402
from toolkit.bench import environment  # noqa: E402
from toolkit.bench.flops import count_flops, peak_flop_rate  # noqa: E402
from toolkit.bench.harness import run_plan  # noqa: E402
from toolkit.bench.measure import BenchSettings  # noqa: E402
from toolkit.bench.plan import plan_rows  # noqa: E402
from toolkit.bench.reports import WRITERS, format_table  # noqa: E402
from toolkit.bench.paired import compare  # noqa: E402
from toolkit.bench.suite import (add_limits, goal_ratios, limits_markdown, paired_specs,  # noqa: E402
                                 ratios_markdown)

PRECISIONS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--quant", "weight"]}
NUM_CLASSES = 1000
IMAGE_SIZE = 224


def export_models(folder, batches, width=1.0):
    """Run in a child process (imports MindSpore): model_b{B}.mindir/.onnx with metadata, same weights."""
    ms = import_mindspore()
    import numpy as np
    from toolkit.models import build
    ms.set_seed(0)
    np.random.seed(0)
    reference = build("mobilenet_v2", NUM_CLASSES, width=width)
    reference.set_train(False)
    params = {p.name: p for p in reference.get_parameters()}
    meta = ModelMeta(arch="mobilenet_v2", width=width, image_size=IMAGE_SIZE, resize=256)
    for b in batches:
        x = ms.Tensor(np.zeros((b, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32))
        for fmt in ("MINDIR", "ONNX"):
            # A second ONNX export of one network object fails in MindSpore: always a fresh network.
            net = build("mobilenet_v2", NUM_CLASSES, width=width)
            net.set_train(False)
            ms.load_param_into_net(net, params)
            base = os.path.join(folder, f"model_b{b}")
            ms.export(net, x, file_name=base, file_format=fmt)
            path = base + "." + fmt.lower()
            with open(path, "rb") as f:            # metadata inside the ONNX, model_bN.mindir.json
                save_model(path, f.read(), meta)


def ensure_models(work, batches, log):
    missing = [b for b in batches
               if not all(os.path.isfile(os.path.join(work, f"model_b{b}{s}")) for s in (".mindir", ".onnx"))]
    if missing:
        log(f"exporting MobileNetV2 for batch {missing} (MindSpore, in a child process)")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--export-only", work,
                        "--batch", ",".join(map(str, missing))], check=True)
        log(f"  exported in {time.perf_counter() - t0:.1f} s")


def convert_models(work, batches, source, log):
    """{(batch, precision): path or None}, and {(batch, precision): failure reason}."""
    made, failures = {}, {}
    for b in batches:
        src = os.path.join(work, f"model_b{b}.{source}")
        for prec, flags in PRECISIONS.items():
            out = os.path.join(work, f"model_b{b}_{prec}.ms")
            if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(src):
                made[b, prec] = out
                continue
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "-q", "convert", src, "-o", out] + flags,
                                  capture_output=True, text=True)
            if proc.returncode == 0 and os.path.isfile(out):
                made[b, prec] = out
                log(f"converted {os.path.basename(src)} -> {os.path.basename(out)} in "
                    f"{time.perf_counter() - t0:.1f} s")
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                failures[b, prec] = f"toolkit convert {' '.join(flags) or '(fp32)'} failed: {tail[0]}"
                log(failures[b, prec])
    return made, failures


def plan(work, batches, threads, devices, made):
    """Every row of the suite, in report order."""
    specs = []
    for b in batches:
        models = [os.path.join(work, f"model_b{b}.mindir"), os.path.join(work, f"model_b{b}.onnx")]
        models += [made[b, p] for p in PRECISIONS if (b, p) in made]
        specs += plan_rows(models, devices=devices, batches=[b], threads=threads)
        clf_models = [os.path.join(work, f"model_b{b}.onnx")] + ([made[b, "fp32"]] if (b, "fp32") in made else [])
        specs += plan_rows(clf_models, engines=["onnxruntime"] + (["ms-engine"] if len(clf_models) > 1 else []),
                           devices=["cpu"], batches=[b], threads=threads, api="classifier")
    return specs


def failed_conversion_rows(failures, work, threads):
    """Rows for the .ms files that could not be made: failed, with the converter's reason."""
    from toolkit.bench.measure import empty_result
    from toolkit.bench.plan import RowSpec
    rows = []
    for (b, prec), reason in failures.items():
        for t in threads:
            spec = RowSpec(os.path.join(work, f"model_b{b}_{prec}.ms"), "ms-engine", "cpu", b, t)
            row = empty_result(spec)
            row.update(status="failed", reason=reason, label=spec.label)
            rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "reports"), help="report folder")
    ap.add_argument("--name", default="runtime", help="report file stem (runtime.json, runtime.md, runtime.png)")
    ap.add_argument("--work", default=None, help="model folder, kept and reused (default: a temporary one)")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--devices", default="cpu,gpu,ascend")
    ap.add_argument("--min-time", type=float, default=1.5, help="seconds timed per fast row")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--paired-time", type=float, default=2.5,
                    help="seconds timed per contender in each paired comparison")
    ap.add_argument("--graphcell-iters", type=int, default=5, help="timed calls per MindSpore GraphCell row")
    ap.add_argument("--convert-from", choices=("mindir", "onnx"), default="mindir")
    ap.add_argument("--quick", action="store_true", help="batch 1, 1 thread, 0.5 s per row")
    ap.add_argument("--export-only", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    batches = [int(v) for v in args.batch.split(",")]
    if args.export_only:
        export_models(args.export_only, batches)
        return 0
    threads = [int(v) for v in args.threads.split(",")]
    devices = args.devices.split(",")
    if args.quick:
        batches, threads, args.min_time, args.graphcell_iters, args.paired_time = [1], [1], 0.5, 3, 1.0
    log = lambda msg: print(f"[bench_runtime] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    load_start = environment.load_average()
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-runtime-")
        args.work = tmp.name
    os.makedirs(args.work, exist_ok=True)
    try:
        ensure_models(args.work, batches, log)
        made, failures = convert_models(args.work, batches, args.convert_from, log)
        flops, by_op = count_flops(os.path.join(args.work, f"model_b{batches[0]}.onnx"))
        peaks = {t: peak_flop_rate(t, n=(1024, 2048), repeats=8) for t in threads}
        log(f"model {flops / 1e9:.3f} GFLOPs/image; peak " +
            ", ".join(f"{t} thr {p['flops_per_s'] / 1e9:.1f} GFLOP/s" for t, p in peaks.items()))
        all_specs = plan(args.work, batches, threads, devices, made)
        fast = BenchSettings(warmup=args.warmup, min_time=args.min_time)
        # MindSpore GraphCell (~190 ms a call) gets a fixed, small number of timed calls. Rows run in
        # report order, so the slow GraphCell rows sit among the rows they are compared with.
        slow = BenchSettings(warmup=1, iters=args.graphcell_iters, min_time=None)
        rows = []
        for i, spec in enumerate(all_specs, 1):
            [row] = run_plan([spec], slow if spec.engine == "mindspore" else fast)
            rows.append(row)
            p50 = (f"p50 {row['p50_ms']:.2f} ms" if row.get("p50_ms") else
                   f"avg {row['mean_ms']:.2f} ms (the tool's own)" if row.get("mean_ms") else
                   (row.get("reason") or "")[:90])
            log(f"[{i}/{len(all_specs)}] {spec.label}: {row['status']} {p50}")
        rows += failed_conversion_rows(failures, args.work, threads)
        add_limits(rows, flops, peaks)
        paired = []
        for name, a, b in paired_specs(rows):
            res = compare(a, b, BenchSettings(warmup=args.warmup, min_time=args.paired_time))
            paired.append((name, res))
            log(f"paired {a.label} / {b.label}: " + (f"{res['ratio_p50']:.3f}x" if "ratio_p50" in res
                                                    else res.get("error", "")))
        ratios = goal_ratios(rows, [(n, r) for n, r in paired if "ratio_p50" in r])
        wall = time.perf_counter() - t_start
        overheads = [r["overhead_s"] for r in rows if r.get("overhead_s")]
        settings = {"fast_rows": fast.to_dict(), "graphcell_rows": slow.to_dict(), "batches": batches,
                    "threads": threads, "devices": devices, "convert_from": args.convert_from,
                    "paired_time_s": args.paired_time,
                    "suite_wall_s": round(wall, 1), "load_average_at_start": load_start,
                    "mean_isolation_overhead_s": round(sum(overheads) / len(overheads), 3) if overheads else None}
        errors = [f"- {r['a']} vs {r['b']}: {r['error']}" for _, r in paired if "error" in r]
        failed_pairs = ["Paired comparisons that could not run:\n\n" + "\n".join(errors)] if errors else []
        extra_md = "\n\n".join([ratios_markdown(ratios)] + failed_pairs +
                                 [limits_markdown(rows, flops, peaks),
                                "## Reproduce\n\n`python benchmarks/bench_runtime.py" +
                                (" --quick" if args.quick else "") + "`"])
        env = environment.collect()
        base = os.path.join(args.out, args.name)
        extra = {"flops_per_image": flops, "flops_by_op": by_op, "paired": [r for _, r in paired],
                 "peak": {str(k): v for k, v in peaks.items()}, "ratios": [r.to_dict() for r in ratios]}
        WRITERS["json"](base + ".json", rows, environment=env, settings=settings, extra=extra)
        WRITERS["markdown"](base + ".md", rows, environment=env, settings={
            k: v for k, v in settings.items() if not isinstance(v, dict)}, markdown_extra=extra_md)
        WRITERS["plot"](base + ".png", rows)
        print(format_table(rows))
        print()
        print(ratios_markdown(ratios))
        log(f"wrote {base}.json, {base}.md, {base}.png in {wall:.0f} s")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
