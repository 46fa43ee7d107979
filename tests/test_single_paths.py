"""Images are decoded in ONE module: runtime/images.py (training, evaluation and the device share it).

The source tree (everything but tests/, which decode independently on purpose, as references) is
parsed, import aliases are resolved, and every call of an image decoder outside runtime/images.py
is listed as file:line. A second decoder is how training and the device came to see different
pixels (CMYK, truncated JPEGs) and how a hostile file skipped the header checks.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ("runtime", "converters", "toolkit", "benchmarks", "scripts")
THE_DECODER = os.path.join("runtime", "images.py")
# fully qualified callables that decode an image file or encoded bytes
DECODERS = {"cv2.imdecode", "cv2.imread", "cv2.imreadmulti", "cv2.imdecodemulti", "cv2.imcount",
            "PIL.Image.open", "matplotlib.pyplot.imread", "matplotlib.image.imread",
            "imageio.imread", "imageio.v2.imread", "imageio.v3.imread", "skimage.io.imread",
            "mindspore.dataset.vision.Decode", "mindspore.dataset.vision.c_transforms.Decode",
            "mindspore.dataset.vision.py_transforms.Decode"}


def _aliases(tree):
    """Local name -> qualified name for every import in the module (any scope)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def decoder_calls(source, filename="<source>"):
    """[(line, qualified name)] of the image-decoder calls in `source`."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name is None:
                continue
            head, _, rest = name.partition(".")
            qualified = aliases.get(head, head) + ("." + rest if rest else "")
            if qualified in DECODERS:
                found.append((node.lineno, qualified))
    return found


def _source_files():
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for f in sorted(filenames):
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def test_images_are_decoded_only_in_runtime_images():
    offenders = []
    scanned = 0
    for path in _source_files():
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            calls = decoder_calls(f.read(), rel)
        scanned += 1
        if rel != THE_DECODER:
            offenders += [f"{rel}:{line}: {name}" for line, name in calls]
    assert scanned > 50, "the source tree was not found"
    assert not offenders, "images decoded outside runtime/images.py (call runtime.images.load_rgb):\n" + \
        "\n".join(offenders)


def test_the_one_decoder_is_seen_by_the_scan():
    with open(os.path.join(ROOT, THE_DECODER), encoding="utf-8") as f:
        names = {name for _, name in decoder_calls(f.read())}
    assert {"cv2.imdecode", "PIL.Image.open"} <= names


@pytest.mark.parametrize("code,expected", [
    ("import cv2\ncv2.imread('x')", "cv2.imread"),
    ("import cv2 as cv\ndef f(b):\n    return cv.imdecode(b, 1)", "cv2.imdecode"),
    ("from cv2 import imdecode as dec\ndec(b, 1)", "cv2.imdecode"),
    ("from PIL import Image\nImage.open('x')", "PIL.Image.open"),
    ("import PIL.Image\nPIL.Image.open('x')", "PIL.Image.open"),
    ("from PIL import Image as I\nwith I.open('x') as im: pass", "PIL.Image.open"),
    ("import matplotlib.pyplot as plt\nplt.imread('x')", "matplotlib.pyplot.imread"),
    ("from mindspore.dataset import vision\nvision.Decode()", "mindspore.dataset.vision.Decode"),
])
def test_the_scan_finds_decoders_under_any_alias(code, expected):
    assert [name for _, name in decoder_calls(code)] == [expected]


def test_the_scan_ignores_encoders_and_unrelated_open():
    code = "import cv2\nfrom PIL import Image\ncv2.imwrite('x', a)\ncv2.imencode('.png', a)\nopen('x')\n" \
           "Image.fromarray(a)\nimport io\nio.open('x')"
    assert decoder_calls(code) == []
