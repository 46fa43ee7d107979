"""The runtime's OpenCV preprocessing equals MindSpore's eval pipeline exactly (max abs diff 0.0).

Reference: `mindspore.dataset.ImageFolderDataset` + Decode / Resize(resize) / CenterCrop(size) /
Normalize(mean, std) / HWC2CHW, the pipeline training evaluates with. Inputs are real photographs
nobody here made (matplotlib's and scikit-image's sample data), at their odd native sizes, plus
odd-sized crops of them re-encoded as JPEG (one carrying an EXIF rotation tag, one CMYK), 16-bit
PNGs, a palette PNG, grayscale and RGBA files.
"""
import importlib.util
import io
import os

import cv2
import numpy as np
import pytest

from runtime.metadata import ModelMeta
from runtime.preprocess import Preprocessor

pytestmark = pytest.mark.mindspore


def _data_dir(package, *parts):
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), *parts)
    return path if os.path.isdir(path) else None


MPL = _data_dir("matplotlib", "mpl-data", "sample_data")
SKIMAGE = _data_dir("skimage", "data")
# (folder, file): real photographs and images with odd sizes / channel layouts
REAL = [(MPL, "grace_hopper.jpg"), (MPL, "Minduka_Present_Blue_Pack.png"), (MPL, "logo2.png"),
        (SKIMAGE, "chelsea.png"), (SKIMAGE, "coffee.png"), (SKIMAGE, "rocket.jpg"),
        (SKIMAGE, "hubble_deep_field.jpg"), (SKIMAGE, "camera.png"), (SKIMAGE, "logo.png"),
        (SKIMAGE, "retina.jpg")]


def _derived(photo_path):
    """Odd kinds made from a real photo: (name, encoded bytes)."""
    from PIL import Image as PILImage
    rgb = cv2.cvtColor(cv2.imread(photo_path), cv2.COLOR_BGR2RGB)
    crop = rgb[7:7 + 251, 3:3 + 333]
    out = []
    pil = PILImage.fromarray(crop)
    exif = PILImage.Exif()
    exif[0x0112] = 6                                   # "rotate 90 CW" tag: training ignores it
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    out.append(("exif_rotated_333x251.jpg", buf.getvalue()))
    buf = io.BytesIO()
    pil.convert("L").save(buf, "JPEG", quality=85)
    out.append(("gray_333x251.jpg", buf.getvalue()))
    buf = io.BytesIO()
    pil.convert("CMYK").save(buf, "JPEG", quality=90)
    out.append(("cmyk_333x251.jpg", buf.getvalue()))
    buf = io.BytesIO()
    pil.convert("P", palette=PILImage.ADAPTIVE, colors=64).save(buf, "PNG", transparency=0)
    out.append(("palette_trns_333x251.png", buf.getvalue()))
    tall = rgb[:301, :97]
    out.append(("tall_97x301.png", cv2.imencode(".png", tall[..., ::-1])[1].tobytes()))
    wide16 = (crop[:129].astype(np.uint16) * 257 + np.arange(333, dtype=np.uint16)[None, :, None])
    out.append(("rgb16_333x129.png", cv2.imencode(".png", wide16[..., ::-1])[1].tobytes()))
    gray16 = (cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 256 + 77)
    out.append(("gray16_333x251.png", cv2.imencode(".png", gray16)[1].tobytes()))
    rgba = np.dstack([crop, np.linspace(0, 255, crop.shape[1], dtype=np.uint8)[None].repeat(251, 0)])
    out.append(("rgba_333x251.png", cv2.imencode(".png", rgba[..., [2, 1, 0, 3]])[1].tobytes()))
    return out


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """ImageFolder layout with one image per class folder, so the label names the file."""
    root = tmp_path_factory.mktemp("parity")
    files = []
    for folder, name in REAL:
        if folder and os.path.isfile(os.path.join(folder, name)):
            files.append((name, open(os.path.join(folder, name), "rb").read()))
    if MPL is None or len(files) < 3:
        pytest.skip("sample photographs not found (matplotlib sample_data / scikit-image data)")
    files += _derived(os.path.join(MPL, "grace_hopper.jpg"))
    paths = []
    for i, (name, data) in enumerate(files):
        d = root / f"c{i:03d}"
        d.mkdir()
        (d / name).write_bytes(data)
        paths.append(str(d / name))
    return str(root), paths


def mindspore_eval(root, meta):
    import mindspore.dataset as ds
    import mindspore.dataset.vision as vision
    data = ds.ImageFolderDataset(root, shuffle=False, extensions=[".jpg", ".png"])
    data = data.map([vision.Decode(), vision.Resize(meta.resize), vision.CenterCrop(meta.image_size),
                     vision.Normalize(list(meta.mean), list(meta.std)), vision.HWC2CHW()],
                    input_columns="image")
    return {int(row["label"]): row["image"] for row in data.create_dict_iterator(output_numpy=True)}


@pytest.mark.parametrize("resize,size", [(256, 224), (73, 64)])
def test_equals_mindspore_eval_pipeline_exactly(image_folder, resize, size):
    root, paths = image_folder
    meta = ModelMeta(image_size=size, resize=resize)
    reference = mindspore_eval(root, meta)
    assert sorted(reference) == list(range(len(paths)))
    pre = Preprocessor(meta)
    for label, path in enumerate(paths):
        ours = pre(path)
        assert ours.shape == reference[label].shape == (3, size, size), path
        assert ours.dtype == reference[label].dtype == np.float32
        assert float(np.abs(ours - reference[label]).max()) == 0.0, path


def test_nhwc_layout_is_the_transpose_of_the_mindspore_output(image_folder):
    root, paths = image_folder
    meta = ModelMeta(image_size=64, resize=73)
    reference = mindspore_eval(root, meta)
    nhwc = Preprocessor(meta, layout="NHWC")(paths[0])
    assert float(np.abs(nhwc - reference[0].transpose(1, 2, 0)).max()) == 0.0
