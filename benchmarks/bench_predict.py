"""End-to-end `Classifier.predict` cost, split into decode+preprocess and inference.

    python -m benchmarks.bench_predict [--model M] [--engine E] [--reps 200] [--out bench_predict.json]

Without --model it builds MobileNetV2 (width 1.0, 224 px, 1000 classes, random init: latency does
not depend on the weights) and exports it to ONNX in a child process, so MindSpore never loads
into the measuring process. The image is one 500x375 JPEG cut from matplotlib's grace_hopper.jpg.
Measurements are interleaved round-robin and reported as medians, because the machine is shared.

Reported:
- preprocess: read + decode + resize + crop + normalize of the JPEG (Classifier.preprocess);
- engine: a bare `engine.run` on the preprocessed tensor;
- predict: `Classifier.predict(path)`; overhead = predict - preprocess - engine, also as a share of
  the engine time; tensor_path: Classifier on the preprocessed tensor (softmax, top-k, lock) vs
  the bare run; classifier_own: that same path with the engine answering from a cache, i.e. the
  Classifier's own work measured directly (differences of two noisy medians can mislead);
- import time of `import runtime` over bare Python (subprocesses, medians);
- peak RSS of a fresh process that loads the model and classifies 100 images.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_mobilenet(folder, size=224, classes=1000):
    """Child-process entry: MobileNetV2 1.0 -> folder/model.onnx, its metadata inside."""
    from runtime.mindspore_import import import_mindspore
    ms = import_mindspore()
    import numpy as np
    from runtime.metadata import ModelMeta, resize_for, save_model
    from toolkit.models import build
    net = build("mobilenet_v2", classes, width=1.0)
    net.set_train(False)
    x = ms.Tensor(np.zeros((1, 3, size, size), np.float32))
    ms.export(net, x, file_name=os.path.join(folder, "model"), file_format="ONNX")
    path = os.path.join(folder, "model.onnx")
    with open(path, "rb") as f:
        save_model(path, f.read(), ModelMeta(image_size=size, resize=resize_for(size),
                                             class_names=[f"class_{i}" for i in range(classes)]))


def make_jpeg(path):
    import importlib.util
    import cv2

    from runtime.images import load_rgb
    spec = importlib.util.find_spec("matplotlib")
    photo = load_rgb(os.path.join(os.path.dirname(spec.origin), "mpl-data", "sample_data",
                                  "grace_hopper.jpg"))[..., ::-1]   # 512 x 600, BGR for imwrite
    img = cv2.resize(photo[:384, :512], (500, 375), interpolation=cv2.INTER_AREA)
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def latency(model, engine, image, reps, threads):
    from runtime import Classifier
    clf = Classifier(model, engine=engine, threads=threads)
    x = clf.preprocess(image)[None]
    feed = {clf.engine.inputs()[0].name: x}
    steps = {
        "preprocess": lambda: clf.preprocess(image),
        "engine": lambda: clf.engine.run(feed),
        "tensor_path": lambda: clf.top(clf.probabilities(x)[0]),
        "predict": lambda: clf.predict(image),
    }
    for fn in steps.values():           # warm-up
        for _ in range(5):
            fn()
    samples = {k: [] for k in steps}
    for _ in range(reps):               # interleaved, so load changes hit every step alike
        for k, fn in steps.items():
            samples[k].append(_timed(fn))
    ms = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    overhead = ms["predict"] - ms["preprocess"] - ms["engine"]
    # The Classifier's own work measured directly: the engine answers instantly with its cached
    # output, so what remains is feed dict, lock, reshape, softmax and top-k.
    cached = clf.engine.run(feed)
    clf.engine.run = lambda _feed: cached
    own = [_timed(lambda: clf.top(clf.probabilities(x)[0])) for _ in range(reps)]
    del clf.engine.run
    ms["classifier_own"] = statistics.median(own) * 1e3
    return {
        "engine": clf.engine.name, "device": clf.engine.device, "model": clf.model_path,
        "median_ms": ms,
        "preprocess_share_of_predict": ms["preprocess"] / ms["predict"],
        "overhead_ms": overhead,
        "overhead_vs_engine": overhead / ms["engine"],
        "tensor_path_vs_engine": ms["tensor_path"] / ms["engine"] - 1.0,
        "classifier_own_vs_engine": ms["classifier_own"] / ms["engine"],
    }


def import_time(reps=7):
    def run(code):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - t
    bare = statistics.median(run("pass") for _ in range(reps))
    rt = statistics.median(run("import runtime") for _ in range(reps))
    return {"bare_python_s": bare, "import_runtime_s": rt, "over_bare_s": rt - bare}


PEAK_CODE = """
import resource, sys
from runtime import Classifier
clf = Classifier(sys.argv[1], engine=sys.argv[2])
for _ in range(100):
    clf.predict(sys.argv[3])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory(model, engine, image):
    out = subprocess.run([sys.executable, "-c", PEAK_CODE, model, engine, image], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return {"peak_rss_mib": int(out.stdout.strip().splitlines()[-1]) / 1024, "images": 100}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model file or run folder (default: build MobileNetV2 ONNX)")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bench_predict"))
    ap.add_argument("--out", default="bench_predict.json")
    ap.add_argument("--build-only", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build_only:
        build_mobilenet(args.build_only)
        return 0
    os.makedirs(args.workdir, exist_ok=True)
    model = args.model
    if model is None:
        model = os.path.join(args.workdir, "model.onnx")
        if not os.path.isfile(model):
            subprocess.run([sys.executable, "-m", "benchmarks.bench_predict", "--build-only",
                            args.workdir], check=True, cwd=ROOT)
    image = make_jpeg(os.path.join(args.workdir, "photo_500x375.jpg"))
    report = {"image": image, "reps": args.reps, "threads": args.threads,
              "latency": latency(model, args.engine, image, args.reps, args.threads),
              "import": import_time(),
              "memory": peak_memory(model, args.engine, image)}
    from runtime.atomic import atomic_write_text
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    lat, ms = report["latency"], report["latency"]["median_ms"]
    print(f"{lat['model']} on {lat['engine']} ({lat['device']}), 500x375 JPEG, medians of {args.reps}")
    print(f"{'step':<34}{'ms':>9}")
    for k, label in (("preprocess", "decode + preprocess"), ("engine", "bare engine.run"),
                     ("tensor_path", "Classifier on tensor"), ("predict", "Classifier.predict (total)")):
        print(f"{label:<34}{ms[k]:9.2f}")
    print(f"{'preprocess share of total':<34}{lat['preprocess_share_of_predict']:9.1%}   (goal <= 15%)")
    print(f"{'overhead (total - pre - engine)':<34}{lat['overhead_ms']:9.2f}   "
          f"= {lat['overhead_vs_engine']:.1%} of engine (goal <= 5%)")
    print(f"{'Classifier on tensor vs bare run':<34}{lat['tensor_path_vs_engine']:9.1%}")
    print(f"{'Classifier own work (direct)':<34}{ms['classifier_own']:9.3f}   "
          f"= {lat['classifier_own_vs_engine']:.2%} of engine (goal <= 5%)")
    print(f"{'import runtime over bare python':<34}{report['import']['over_bare_s'] * 1e3:9.1f} ms (goal <= 300)")
    print(f"{'peak RSS, load + 100 predictions':<34}{report['memory']['peak_rss_mib']:9.1f} MiB")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
