"""A tiny MobileNetV2 (width 0.35, 64 px, 3 classes) exported to MINDIR and ONNX, for runtime tests.

Built once per test session. 64 px, not 32: OpenCV DNN 4.10 miscomputes this network at 32 px
(the stride-2 depthwise conv of block 15 on a 2x2 map; onnxruntime and MindSpore agree there). The ONNX export uses a fresh network with the same weights, because a
second ONNX export of one network object fails in MindSpore (platform-facts.md).
"""
import os
from dataclasses import dataclass

import numpy as np
import pytest

from runtime.metadata import ModelMeta

CLASSES = ["cat", "dog", "fox"]
SIZE = 64


@dataclass
class TinyModels:
    folder: str
    mindir: str
    onnx: str
    meta: ModelMeta
    x: np.ndarray          # a fixed NCHW input
    y: np.ndarray          # the MindSpore network's output for x


def calibrate_batchnorm(net):
    """Give a random-init net realistic BatchNorm statistics (one train-mode pass, momentum 1).

    Without it the random depthwise convs shrink activations to ~0 and every image gets the same
    scores, which would make the tests below unable to tell engines or images apart.
    """
    import mindspore as ms
    from mindspore import nn, ops
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.bn_train = ops.BatchNorm(is_training=True, epsilon=cell.eps, momentum=1.0)
    net.set_train(True)
    net(ms.Tensor(np.random.default_rng(1).standard_normal((16, 3, SIZE, SIZE)).astype(np.float32)))
    net.set_train(False)


def build_tiny(folder):
    import mindspore as ms
    from toolkit.models import build
    ms.set_seed(0)
    np.random.seed(0)
    meta = ModelMeta(arch="mobilenet_v2", width=0.35, image_size=SIZE, resize=73,
                     class_names=list(CLASSES))
    net = build("mobilenet_v2", len(CLASSES), width=0.35)
    calibrate_batchnorm(net)
    for p in net.get_parameters():      # sharpen the head so images get distinct, confident labels
        if p.name.startswith("head.") and p.name.endswith("weight"):
            p.set_data(ms.Tensor(p.asnumpy() * 10))
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    y = net(ms.Tensor(x)).asnumpy()
    ms.export(net, ms.Tensor(x), file_name=os.path.join(folder, "model"), file_format="MINDIR")
    fresh = build("mobilenet_v2", len(CLASSES), width=0.35)
    fresh.set_train(False)
    ms.load_param_into_net(fresh, {p.name: p for p in net.get_parameters()})
    ms.export(fresh, ms.Tensor(x), file_name=os.path.join(folder, "model"), file_format="ONNX")
    meta.save(os.path.join(folder, "model.json"))
    return TinyModels(folder, os.path.join(folder, "model.mindir"), os.path.join(folder, "model.onnx"),
                      meta, x, y)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    pytest.importorskip("mindspore", reason="building the tiny test model needs mindspore (train extra)")
    return build_tiny(str(tmp_path_factory.mktemp("tiny_model")))


def class_folder(tmp_path_factory, name, count):
    """A folder holding one class sub-folder `cls` of `count` sample images (an ImageFolder)."""
    folder = tmp_path_factory.mktemp(name)
    (folder / "cls").mkdir()
    sample_images(str(folder / "cls"), count)
    return folder


def sample_images(folder, count=6):
    """`count` distinct small JPEG/PNG files cut from a real photograph, as paths."""
    import importlib.util
    import cv2
    spec = importlib.util.find_spec("matplotlib")
    photo = cv2.imread(os.path.join(os.path.dirname(spec.origin), "mpl-data", "sample_data",
                                    "grace_hopper.jpg"))
    paths = []
    for i in range(count):
        y, x = 40 * i, 25 * i
        crop = photo[y:y + 90 + 7 * i, x:x + 70 + 11 * i]
        if i % 2:
            crop = 255 - crop
        path = os.path.join(folder, f"img{i}.{'png' if i % 3 == 0 else 'jpg'}")
        cv2.imwrite(path, crop)
        paths.append(path)
    return paths
