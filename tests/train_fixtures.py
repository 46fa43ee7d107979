"""Shared fixtures of the train-head tests: tiny generated datasets, a pretrained checkpoint, a run.

Everything is tiny (width 0.35, 32 px, a few images per class) so one head-mode run takes seconds.
"""
import os

import numpy as np
import pytest

WIDTH = 0.35
SIZE = 32
TINY = ["--width", str(WIDTH), "--image-size", str(SIZE)]


def lively(net, seed=0):
    """Random weights whose pooled features are O(1) (the ModelZoo init makes them ~1e-8), so
    feature comparisons and head training are meaningful."""
    import mindspore as ms

    from _runfolder import randomize
    randomize(net, seed)
    for _, cell in net.cells_and_names():
        if isinstance(cell, ms.nn.Conv2d) and cell.group > 1:
            cell.weight.set_data(ms.Tensor(cell.weight.asnumpy() * np.sqrt(cell.group)))
    return net


_ONCE = {}


def once(name, make):
    """Session fixtures are imported into several test modules, and pytest would run them once per
    module; this keeps one result per process (tmp_path_factory folders live for the session)."""
    if name not in _ONCE:
        _ONCE[name] = make()
    return _ONCE[name]


def invoke(*args):
    from click.testing import CliRunner

    from toolkit.cli import main
    return CliRunner().invoke(main, ["-q", *[str(a) for a in args]], catch_exceptions=False)


def run_cli_ok(*args):
    result = invoke("train-head", *args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """2 classes x 6 images at 40 px (train/ and val/), a different variant than the checkpoint's."""
    def make():
        from toolkit.data.synthetic import make_dataset
        root = tmp_path_factory.mktemp("train_data") / "two"
        make_dataset(str(root), classes=2, per_class=6, size=40, seed=5, variant=1)
        return str(root)
    return once("tiny_data", make)


@pytest.fixture(scope="session")
def pretrained_ckpt(tmp_path_factory):
    """A 3-class width-0.35 checkpoint with ModelZoo names (so its head never fits 2 classes)."""
    def make():
        from toolkit.checkpoints import save_params
        from toolkit.models import build
        path = tmp_path_factory.mktemp("pretrained") / "backbone3.ckpt"
        save_params(lively(build("mobilenet_v2", 3, width=WIDTH)), str(path))
        return str(path)
    return once("pretrained_ckpt", make)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One feature cache for the head-mode runs on tiny_data with pretrained_ckpt (same key)."""
    return once("shared_cache", lambda: str(tmp_path_factory.mktemp("feature_cache")))


@pytest.fixture(scope="session")
def head_run(tmp_path_factory, tiny_data, pretrained_ckpt, shared_cache):
    """A finished head-mode run (2 epochs, fp16 variants) shared by the output tests."""
    def make():
        out = str(tmp_path_factory.mktemp("runs") / "head")
        result = run_cli_ok(tiny_data, "--out", out, "--mode", "head", "--pretrained", pretrained_ckpt,
                            *TINY, "--epochs", "2", "--batch-size", "4", "--save-fp16", "--lr-max",
                            "0.5", "--cache-dir", shared_cache)
        return out, result.output
    return once("head_run", make)


def arch_args(arch):
    """train-head options for a small network of `arch` (its registry test width, 32 px)."""
    from toolkit.models import ARCHS
    return ["--arch", arch, "--width", str(ARCHS[arch].test_width), "--image-size", str(SIZE)]


def modelzoo_checkpoint(arch, path, classes=3):
    """A checkpoint as MindSpore training scripts save it (the tutorial's resnet50.ckpt): ModelZoo
    weight names, a `moments.*` entry per trainable weight, `learning_rate` and `global_step`."""
    from toolkit.checkpoints import save_params
    from toolkit.models import ARCHS, build
    net = lively(build(arch, classes, width=ARCHS[arch].test_width))
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    params.update({"moments." + p.name: np.zeros(p.shape, np.float32) for p in net.trainable_params()})
    params.update({"learning_rate": np.array(0.01, np.float32), "global_step": np.array([125], np.int32)})
    save_params(params, str(path))
    return str(path)


def arch_checkpoint(arch, tmp_path_factory):
    """One ModelZoo-style 3-class checkpoint of `arch` per test session."""
    return once(f"ckpt_{arch}", lambda: modelzoo_checkpoint(
        arch, tmp_path_factory.mktemp("pretrained") / f"{arch}3.ckpt"))


def _registered():
    from toolkit.models import ARCHS
    return sorted(ARCHS)


@pytest.fixture(scope="session", params=_registered())
def arch_ckpt(request, tmp_path_factory):
    """(arch, ModelZoo-style 3-class checkpoint with optimizer state), one per registered arch."""
    return request.param, arch_checkpoint(request.param, tmp_path_factory)


def copy_data(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return str(dst)


def image_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".jpg"))
