"""Converter benchmark: MINDIR -> .ms time, file sizes per precision, and accuracy per precision.

    python -m benchmarks.bench_convert --out reports/convert                 # random MobileNetV2 1.0/224
    python -m benchmarks.bench_convert --model run/export/model.mindir --val data/val --out reports/convert
    python -m benchmarks.bench_convert --backend both --out reports/convert  # + ours vs converter_lite

`--backend both` also converts the same MobileNetV2 exported to MINDIR *and* ONNX with the project's
converter and with the official converter_lite (found by discovery, or `--converter PATH`), fp32, no
verification, and reports the median times and their ratios from that one run (in process through
`converters.convert`, and as the `toolkit convert` command). A backend that cannot convert a source
(the 2.0 converter_lite refuses MindSpore 2.x MINDIR files) is reported with its error, not skipped.

Writes `bench_convert.json` and `bench_convert.md` (atomically) into --out. Time is measured both as
the full `toolkit convert` command (new process, wall clock) and in-process (parse/passes/lower).
Accuracy needs a trained model with its metadata sidecar and an ImageFolder validation set.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from runtime.atomic import atomic_write_text
from runtime.mindspore_import import import_mindspore

PRECISIONS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--quant", "weight"]}


def export_random_mobilenet(folder, width, size, classes, onnx=False):
    """MINDIR (and with `onnx`, ONNX of the same weights) of a random-init MobileNetV2."""
    ms = import_mindspore()
    from toolkit.models import build
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    net = build("mobilenet_v2", classes, width=width)
    net.set_train(False)
    x = ms.Tensor(np.zeros((1, 3, size, size), np.float32))
    ms.export(net, x, file_name=os.path.join(folder, "mobilenet_v2"), file_format="MINDIR")
    if onnx:    # a second export of one network object fails in MindSpore: a fresh net, same weights
        fresh = build("mobilenet_v2", classes, width=width)
        fresh.set_train(False)
        ms.load_param_into_net(fresh, {p.name: p for p in net.get_parameters()})
        ms.export(fresh, x, file_name=os.path.join(folder, "mobilenet_v2"), file_format="ONNX")
    return os.path.join(folder, "mobilenet_v2.mindir")


def compare_backends(sources, work, repeats, converter=None):
    """{format: {backend: {...times or error...}, "ratio_...": x}} for the project's converter and the
    official converter_lite on the same sources (fp32, no verification)."""
    from converters import ConvertOptions, convert
    from runtime.errors import ToolkitError
    from runtime.official import discovery
    tool = discovery.locate(discovery.CONVERTER, converter)
    out = {"converter_lite": f"{tool.path} ({tool.found_by})"}
    for fmt, src in sources.items():
        row = {}
        for backend in ("ours", "converter_lite"):
            dst = os.path.join(work, f"cmp_{fmt}_{backend}.ms")
            opts = ConvertOptions(backend=backend, converter=tool.path if backend != "ours" else None)
            extra = ["--backend", backend] + (["--converter", tool.path] if backend != "ours" else [])
            try:
                runs = [convert(src, dst, opts).seconds for _ in range(repeats)]
                cli = time_cli(src, dst, extra, repeats)
            except (ToolkitError, subprocess.CalledProcessError) as e:
                row[backend] = {"error": str(e)}
                continue
            entry = {"in_process_s": statistics.median(r["total"] for r in runs),
                     "in_process_runs_s": [r["total"] for r in runs],
                     "cli_median_s": statistics.median(cli), "cli_runs_s": cli,
                     "bytes": os.path.getsize(dst)}
            if backend == "converter_lite":
                entry["tool_only_s"] = statistics.median(r["converter_lite"] for r in runs)
            row[backend] = entry
        if all("error" not in row[b] for b in ("ours", "converter_lite")):
            row["ratio_in_process"] = row["converter_lite"]["in_process_s"] / row["ours"]["in_process_s"]
            row["ratio_cli"] = row["converter_lite"]["cli_median_s"] / row["ours"]["cli_median_s"]
        out[fmt] = row
    return out


def trainable_parameters(mindir):
    """Float parameters of the source minus BatchNorm moving statistics (= trainable values)."""
    from converters.frontends.mindir import parse_model_proto
    g = parse_model_proto(mindir).graph
    return sum(int(np.prod(p.dims)) for p in g.parameter
               if p.data_type == 1 and not p.name.endswith(("moving_mean", "moving_variance")))


def stored_float_values(ms_path):
    from runtime.msformat.reader import read_ms
    m = read_ms(ms_path)
    return sum(int(np.prod(t.dims)) if t.dims else 1 for t in m.tensors
               if t.is_const and t.data_type == 43)


def time_cli(src, out, extra, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "toolkit.cli", "-q", "convert", src, "-o", out, *extra],
                       check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return times


def time_in_process(src, out, repeats):
    from converters import ConvertOptions, convert
    runs = [convert(src, out, ConvertOptions()).seconds for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def evaluate(path, val_dir, limit):
    """(top-1 accuracy, predictions) of a .ms model on an ImageFolder, via the .ms engine."""
    import runtime
    from runtime.metadata import find_meta
    from runtime.preprocess import Preprocessor
    meta, _ = find_meta(path)
    if meta is None:
        raise SystemExit(f"{path}: no metadata (accuracy needs the model's preprocessing and labels)")
    eng = runtime.load(path, engine="ms-engine")
    pre = Preprocessor(meta)
    classes = sorted(d for d in os.listdir(val_dir) if os.path.isdir(os.path.join(val_dir, d)))
    if meta.class_names and sorted(meta.class_names) != classes:
        raise SystemExit(f"{val_dir}: classes {classes} differ from the model's {meta.class_names}")
    names = meta.class_names or classes
    preds, labels = [], []
    for c in classes:
        files = sorted(os.listdir(os.path.join(val_dir, c)))
        for f in files:
            x = pre(os.path.join(val_dir, c, f))[None]
            y = next(iter(eng.run([x]).values()))
            preds.append(int(np.argmax(y)))
            labels.append(names.index(c))
    preds, labels = np.array(preds[:limit]), np.array(labels[:limit])
    return float(np.mean(preds == labels)), preds


def markdown_backends_only(r):
    return ["# Converter benchmark", "", f"Source: `{r['source']}` ({r['source_note']})"] + \
        backend_lines(r) + ["", f"Command: `{r['command']}`", ""]


def backend_lines(r):
    lines = []
    if r.get("backends"):
        b = r["backends"]
        lines += ["", "## Backends: ours vs the official converter_lite (fp32, no verification)", "",
                  f"converter_lite: `{b['converter_lite']}`. Medians of {r['repeats']} runs each; "
                  "ratio = converter_lite / ours (above 1: ours is faster). The machine is shared, so "
                  "absolute times move with its load; the ratios come from one run.", "",
                  "| source | backend | in process | `toolkit convert` (wall, incl. Python start) | "
                  "tool alone | .ms bytes |", "|---|---|---|---|---|---|"]
        for fmt in ("mindir", "onnx"):
            for backend in ("ours", "converter_lite"):
                e = b.get(fmt, {}).get(backend)
                if e is None:
                    continue
                if "error" in e:
                    why = e["error"].split("what():", 1)[-1].split(" [command:")[0].strip()
                    lines.append(f"| {fmt} | {backend} | failed: {why[:300]} | | | |")
                    continue
                tool = f"{e['tool_only_s']:.2f} s" if "tool_only_s" in e else ""
                lines.append(f"| {fmt} | {backend} | {e['in_process_s']:.2f} s | {e['cli_median_s']:.2f} s "
                             f"| {tool} | {e['bytes']:,} |")
            if "ratio_in_process" in b.get(fmt, {}):
                lines.append(f"| {fmt} | **ratio** | **{b[fmt]['ratio_in_process']:.2f}x** | "
                             f"**{b[fmt]['ratio_cli']:.2f}x** | | |")
    return lines


def markdown(r):
    lines = ["# Converter benchmark", "", f"Source: `{r['source']}` ({r['source_note']})", "",
             "## Conversion time (fp32, no verification)", "",
             f"- `toolkit convert` command, wall clock incl. Python start: median "
             f"**{r['time']['cli_median_s']:.2f} s** over {len(r['time']['cli_runs_s'])} runs "
             f"(goal < 5 s)",
             "- in process: " + ", ".join(f"{k} {v:.3f} s" for k, v in r['time']['in_process_s'].items()),
             "", "## File sizes", "",
             f"Trainable parameters {r['params']['trainable']:,}; float values stored after "
             f"BatchNorm folding {r['params']['stored']:,}.", "",
             "| precision | bytes | vs fp32 | vs 4 x stored values | vs 4 x trainable |",
             "|---|---|---|---|---|"]
    for p, s in r["sizes"].items():
        lines.append(f"| {p} | {s['bytes']:,} | {s['ratio_to_fp32']:.3f} | "
                     f"{s['ratio_to_4x_stored']:.4f} | {s['ratio_to_4x_trainable']:.4f} |")
    lines += ["", "## Accuracy", ""]
    if r.get("accuracy"):
        lines += [f"Validation set `{r['accuracy']['val_dir']}`, {r['accuracy']['images']} images.", "",
                  "| precision | top-1 | agreement with fp32 |", "|---|---|---|"]
        for p, a in r["accuracy"]["per_precision"].items():
            lines.append(f"| {p} | {a['top1'] * 100:.2f}% | {a['agreement_with_fp32'] * 100:.2f}% |")
    else:
        lines.append("Not measured (no trained model / validation set given).")
    lines += backend_lines(r)
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for bench_convert.json / .md")
    ap.add_argument("--model", help="MINDIR to convert (default: random MobileNetV2 exported here)")
    ap.add_argument("--val", help="ImageFolder validation set for accuracy (needs --model)")
    ap.add_argument("--limit", type=int, default=100000, help="at most this many val images")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", choices=["ours", "both"], default="ours",
                    help="both: also compare with the official converter_lite on MINDIR and ONNX")
    ap.add_argument("--converter", help="path of converter_lite (default: discovery)")
    ap.add_argument("--compare-only", action="store_true",
                    help="with --backend both: only the backend comparison (no sizes, no accuracy)")
    args = ap.parse_args(argv)
    if args.compare_only and args.backend != "both":
        ap.error("--compare-only needs --backend both")
    if args.val and not args.model:
        ap.error("--val needs --model (a trained model)")
    work = tempfile.mkdtemp(prefix="bench_convert-")
    if args.model:
        src, note = args.model, "given"
    else:
        src = export_random_mobilenet(work, args.width, args.size, args.classes,
                                      onnx=args.backend == "both")
        note = f"random-init MobileNetV2 width {args.width}, {args.size} px, {args.classes} classes"
    result = {"source": src, "source_note": note, "repeats": args.repeats,
              "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.bench_convert"]
                                  + (argv or sys.argv[1:]))}
    if args.backend == "both":
        sources = {"mindir": src}
        onnx = os.path.splitext(src)[0] + ".onnx"
        if os.path.isfile(onnx):
            sources["onnx"] = onnx
        result["backends"] = compare_backends(sources, work, args.repeats, args.converter)
    if args.compare_only:
        os.makedirs(args.out, exist_ok=True)
        atomic_write_text(os.path.join(args.out, "bench_convert.json"), json.dumps(result, indent=2) + "\n")
        text = "\n".join(markdown_backends_only(result))
        atomic_write_text(os.path.join(args.out, "bench_convert.md"), text)
        print(text)
        return
    outs = {p: os.path.join(work, f"model_{p}.ms") for p in PRECISIONS}
    cli = time_cli(src, outs["fp32"], [], args.repeats)
    result["time"] = {"cli_runs_s": cli, "cli_median_s": statistics.median(cli),
                      "in_process_s": time_in_process(src, outs["fp32"], args.repeats)}
    for p, extra in PRECISIONS.items():
        if p != "fp32":
            time_cli(src, outs[p], extra, 1)
    trainable, stored = trainable_parameters(src), stored_float_values(outs["fp32"])
    result["params"] = {"trainable": trainable, "stored": stored}
    fp32_bytes = os.path.getsize(outs["fp32"])
    result["sizes"] = {p: {"bytes": os.path.getsize(o), "ratio_to_fp32": os.path.getsize(o) / fp32_bytes,
                           "ratio_to_4x_stored": os.path.getsize(o) / (4 * stored),
                           "ratio_to_4x_trainable": os.path.getsize(o) / (4 * trainable)}
                       for p, o in outs.items()}
    if args.val:
        per, ref = {}, None
        for p in PRECISIONS:
            acc, preds = evaluate(outs[p], args.val, args.limit)
            ref = preds if ref is None else ref
            per[p] = {"top1": acc, "agreement_with_fp32": float(np.mean(preds == ref))}
        result["accuracy"] = {"val_dir": args.val, "images": int(len(ref)), "per_precision": per}
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "bench_convert.json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(os.path.join(args.out, "bench_convert.md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
