"""Seed corpora, built by the project itself (nothing downloaded) plus the golden files beside the
checkout (../shared/golden, when present).

- onnx: small models written with onnx.helper (onnx_mutators.SEEDS), and the golden tiny_cnn.onnx;
- ms: those ONNX seeds converted by `converters.convert` to fp32, fp16 and int8-weight `.ms`, the
  tiny MINDIR converted to `.ms`, and every golden `.ms` (the official converter's files);
- mindir: a tiny network exported by MindSpore (when installed) and the golden relu.mindir;
- image: JPEG (baseline, gray, progressive), PNG (RGB, gray, RGBA, 16-bit), BMP, PPM and PGM files
  encoded by cv2.imencode from a fixed synthetic picture;
- meta: the metadata of the converted conv seed (3 classes) and that `.ms` model, for Classifier.

The corpus is built once per cache key (hash of the seed-building sources and library versions) in
a child process, so the dispatcher never runs a framework itself. Its manifest lists every seed with
its SHA-256, copied into the campaign report, so a replay can check it has the same seeds.
"""
import glob
import hashlib
import json
import os
import shutil

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(os.path.dirname(ROOT), "shared", "golden")
CLASSES = ["cat", "dog", "fox"]


def _versions():
    import importlib.metadata as md
    out = {}
    for pkg in ("onnx", "onnxruntime", "opencv-python-headless", "opencv-python", "mindspore", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def cache_key():
    h = hashlib.sha256()
    for name in ("corpus.py", "onnx_mutators.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    h.update(str(sorted(_golden_files())).encode())
    return h.hexdigest()[:16]


def _golden_files():
    files = sorted(glob.glob(os.path.join(GOLDEN, "ms", "*.ms")) +
                   glob.glob(os.path.join(GOLDEN, "ms-official", "*.ms")))
    return [f for f in files]


def synthetic_picture(h=29, w=37):
    """A fixed colour picture: gradients, a disc and deterministic noise (BGR uint8)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // (h + w)], -1)
    img[(y - h / 2) ** 2 + (x - w / 3) ** 2 < (h / 4) ** 2] = (30, 200, 90)
    img = img + np.random.default_rng(3).integers(0, 24, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _image_seeds(folder):
    import cv2
    pic = synthetic_picture()
    gray = cv2.cvtColor(pic, cv2.COLOR_BGR2GRAY)
    rgba = np.concatenate([pic, np.full(pic.shape[:2] + (1,), 180, np.uint8)], -1)
    items = {
        "color.jpg": (pic, [cv2.IMWRITE_JPEG_QUALITY, 90]),
        "gray.jpg": (gray, []),
        "progressive.jpg": (pic, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "color.png": (pic, []),
        "gray.png": (gray, []),
        "rgba.png": (rgba, []),
        "deep16.png": (pic.astype(np.uint16) * 257, []),
        "color.bmp": (pic, []),
        "gray.bmp": (gray, []),
        "color.ppm": (pic, []),
        "gray.pgm": (gray, []),
    }
    for name, (arr, params) in items.items():
        ok, buf = cv2.imencode(os.path.splitext(name)[1], arr, params)
        assert ok, name
        with open(os.path.join(folder, name), "wb") as f:
            f.write(buf.tobytes())


def _export_mindir(folder):
    """A tiny Conv-BN-ReLU-MaxPool-Flatten-Dense-Softmax net, 1x3x16x16, exported by MindSpore."""
    from runtime.mindspore_import import import_mindspore
    ms = import_mindspore()
    nn = ms.nn
    ms.set_seed(0)

    class Tiny(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1, has_bias=True)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2, 2)
            self.flat = nn.Flatten()
            self.fc = nn.Dense(4 * 8 * 8, 3)
            self.softmax = nn.Softmax()

        def construct(self, x):
            return self.softmax(self.fc(self.flat(self.pool(self.relu(self.bn(self.conv(x)))))))

    net = Tiny()
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32))
    ms.export(net, x, file_name=os.path.join(folder, "tiny_net"), file_format="MINDIR")


def build(folder):
    """Write every corpus under `folder/<target>/` and the manifest. Runs in a child process."""
    import importlib.util
    import onnx
    from converters import ConvertOptions, convert
    from . import onnx_mutators
    log = []
    for t in ("onnx", "ms", "mindir", "image", "meta"):
        os.makedirs(os.path.join(folder, t), exist_ok=True)
    for name, make in onnx_mutators.SEEDS.items():
        onnx.save(make(), os.path.join(folder, "onnx", name + ".onnx"))
    golden_onnx = os.path.join(GOLDEN, "ms-official", "tiny_cnn.onnx")
    if os.path.isfile(golden_onnx):
        shutil.copy(golden_onnx, os.path.join(folder, "onnx", "golden_tiny_cnn.onnx"))
    for src in _golden_files():
        shutil.copy(src, os.path.join(folder, "ms", "golden_" + os.path.basename(src)))
    relu = os.path.join(GOLDEN, "ms", "relu.mindir")
    if os.path.isfile(relu):
        shutil.copy(relu, os.path.join(folder, "mindir", "golden_relu.mindir"))
    if importlib.util.find_spec("mindspore") is not None:
        try:
            _export_mindir(os.path.join(folder, "mindir"))
        except Exception as e:  # the corpus is still usable; the manifest says what is missing
            log.append(f"mindir export failed: {type(e).__name__}: {e}")
    else:
        log.append("mindspore not installed: the mindir corpus holds only the golden relu.mindir")
    precisions = {"fp32": ConvertOptions(),
                  "fp16": ConvertOptions(fp16=True),
                  "int8": ConvertOptions(quant="weight", min_quant_weight_size=0, min_quant_weight_channel=0)}
    scratch = os.path.join(folder, "scratch")
    os.makedirs(scratch, exist_ok=True)
    sources = [os.path.join(folder, "onnx", n + ".onnx") for n in onnx_mutators.SEEDS]
    sources += sorted(glob.glob(os.path.join(folder, "mindir", "tiny_net.mindir")))
    for src in sources:
        stem = os.path.splitext(os.path.basename(src))[0]
        for prec, opts in precisions.items():
            out = os.path.join(scratch, f"{stem}_{prec}.ms")
            try:
                convert(src, out, opts)
                shutil.copy(out, os.path.join(folder, "ms", os.path.basename(out)))
            except Exception as e:
                log.append(f"seed {stem} {prec} does not convert: {type(e).__name__}: {e}")
    conv_ms = os.path.join(scratch, "conv_net_fp32.ms")
    if os.path.isfile(conv_ms):
        shutil.copy(conv_ms, os.path.join(folder, "meta", "model.ms"))
        from runtime.metadata import find_meta
        meta = find_meta(conv_ms)[0].to_dict()       # the converted model's own metadata
        meta["class_names"] = list(CLASSES)
        with open(os.path.join(folder, "meta", "seed_meta.json"), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
    else:
        log.append("no conv_net_fp32.ms: the meta target has no model")
    _image_seeds(os.path.join(folder, "image"))
    shutil.rmtree(scratch, ignore_errors=True)
    manifest = {"log": log, "seeds": {}}
    for t in ("onnx", "ms", "mindir", "image", "meta"):
        manifest["seeds"][t] = {}
        seen = set()
        for path in sorted(glob.glob(os.path.join(folder, t, "*"))):
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if digest in seen and t != "meta":      # e.g. int8 conversion that quantized nothing
                log.append(f"{t}/{os.path.basename(path)} duplicates another seed: dropped")
                os.remove(path)
                continue
            seen.add(digest)
            manifest["seeds"][t][os.path.basename(path)] = digest
    with open(os.path.join(folder, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


class Corpus:
    """The seeds of one target in memory: name -> bytes (the dispatcher reads files only)."""

    def __init__(self, folder, target, manifest):
        self.folder = os.path.join(folder, target)
        self.target = target
        self.hashes = manifest["seeds"].get(target, {})
        self.seeds = {}
        for name in sorted(self.hashes):
            with open(os.path.join(self.folder, name), "rb") as f:
                self.seeds[name] = f.read()

    def path(self, name):
        return os.path.join(self.folder, name)

    def names(self, suffixes=None):
        return [n for n in sorted(self.seeds) if suffixes is None or n.endswith(suffixes)]
