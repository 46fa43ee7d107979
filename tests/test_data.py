"""ImageFolder scanning and bad data: every bad input is skipped and reported, never an epoch crash."""
import os

import cv2
import numpy as np
import pytest

from toolkit.data.errors import DatasetError
from toolkit.data.folder import Sample, scan_dataset
from runtime.errors import ImageError
from runtime.images import load_rgb as read_rgb


def _jpeg(path, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, img)
    return path


def _good_dataset(root, classes=("cat", "dog"), n=4, with_val=True):
    for k, c in enumerate(classes):
        for i in range(n):
            _jpeg(os.path.join(root, "train", c, f"{i}.jpg"), seed=10 * k + i)
        if with_val:
            _jpeg(os.path.join(root, "val", c, "v.jpg"), seed=100 + k)
    return root


# name -> writer(path) producing a file that must be SKIPPED with a reason
def _corrupt(p):
    with open(p, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + os.urandom(300))


def _truncated(p):
    _jpeg(p, 64, 64)
    data = open(p, "rb").read()
    with open(p, "wb") as f:
        f.write(data[:len(data) // 2])


def _text(p):
    with open(p, "w") as f:
        f.write("not an image\n")


def _empty(p):
    open(p, "wb").close()


BAD_FILES = {"corrupt.jpg": _corrupt, "truncated.jpg": _truncated, "notes.txt": _text, "empty.jpg": _empty}

# name -> writer producing an odd but valid image that must be KEPT and decode to uint8 RGB
ODD_IMAGES = {
    "gray.png": lambda p: cv2.imwrite(p, np.full((30, 50), 77, np.uint8)),
    "gray.jpg": lambda p: cv2.imwrite(p, np.full((30, 50), 77, np.uint8)),
    "rgba.png": lambda p: cv2.imwrite(p, np.dstack([np.full((30, 50, 3), 90, np.uint8),
                                                    np.full((30, 50), 10, np.uint8)])),
    "deep16.png": lambda p: cv2.imwrite(p, np.full((30, 50, 3), 40000, np.uint16)),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_is_skipped_and_reported_by_name(tmp_path, name):
    root = _good_dataset(str(tmp_path / "ds"))
    bad = os.path.join(root, "train", "cat", name)
    BAD_FILES[name](bad)
    index = scan_dataset(root)
    assert [p for p, _ in index.skipped] == [bad]
    assert len(index.train) == 8 and bad not in [s.path for s in index.train]
    report = "\n".join(index.report())
    assert "skipped 1 unreadable file(s)" in report and name in report
    with pytest.raises(ImageError):
        read_rgb(bad)


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_images_are_kept_as_8bit_rgb(tmp_path, name):
    root = _good_dataset(str(tmp_path / "ds"))
    path = os.path.join(root, "train", "dog", name)
    ODD_IMAGES[name](path)
    index = scan_dataset(root)
    assert not index.skipped and Sample(path, 1) in index.train
    img = read_rgb(path)
    assert img.dtype == np.uint8 and img.shape == (30, 50, 3)
    expected = {"gray.png": 77, "gray.jpg": 77, "rgba.png": 90, "deep16.png": 40000 >> 8}[name]
    assert np.abs(img.astype(int) - expected).max() <= 1      # jpeg rounding


def test_exif_orientation_is_ignored_like_mindspore_decode(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255
    im = pil.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6                                        # "rotate 90 CW" tag
    path = str(tmp_path / "exif.jpg")
    im.save(path, exif=exif.tobytes(), quality=95)
    assert read_rgb(path).shape == (20, 40, 3)              # stored pixels, not rotated


def test_empty_class_folder_is_kept_with_a_warning(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"))
    os.makedirs(os.path.join(root, "train", "emu"))
    index = scan_dataset(root)
    assert index.classes == ["cat", "dog", "emu"]
    assert any("emu" in w for w in index.warnings)
    assert any("emu: 0 train, 0 val" in line for line in index.report())


def test_classes_are_sorted_folder_names_and_labels_follow_them(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"), classes=("zebra", "ant", "mole"))
    index = scan_dataset(root)
    assert index.classes == ["ant", "mole", "zebra"]
    for s in index.train + index.val:
        assert index.classes[s.label] == os.path.basename(os.path.dirname(s.path))
    assert not index.split_from_train and len(index.val) == 3


def test_without_val_folder_the_split_is_deterministic_and_disjoint(tmp_path):
    root = str(tmp_path / "flat")
    for c in ("a", "b"):
        for i in range(10):
            _jpeg(os.path.join(root, c, f"{i}.jpg"), seed=i)
    one, two = scan_dataset(root, val_fraction=0.3, seed=1), scan_dataset(root, val_fraction=0.3, seed=1)
    other = scan_dataset(root, val_fraction=0.3, seed=2)
    assert one.train == two.train and one.val == two.val
    assert one.split_from_train and len(one.val) == 6 and len(one.train) == 14
    assert not set(one.train) & set(one.val)
    assert set(one.val) != set(other.val)


def test_train_only_folder_is_split(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"), n=5, with_val=False)
    index = scan_dataset(root, val_fraction=0.2)
    assert index.split_from_train and len(index.val) == 2 and len(index.train) == 8


@pytest.mark.parametrize("make, match", [
    (lambda root: None, "not found"),
    (lambda root: os.makedirs(os.path.join(root, "train")), "no class folders"),
    (lambda root: [_text(os.path.join(root, c, "x.jpg")) for c in ("a", "b")
                   if os.makedirs(os.path.join(root, c)) is None], "no readable images"),
], ids=["missing-root", "no-class-folders", "no-readable-images"])
def test_fatal_problems_raise_dataset_error(tmp_path, make, match):
    root = str(tmp_path / "ds")
    make(root)
    with pytest.raises(DatasetError, match=match):
        scan_dataset(root)


def test_a_symlink_loop_in_a_class_folder_is_a_dataset_error_naming_it(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"))
    loop = os.path.join(root, "train", "cat", "loop.jpg")
    os.symlink("loop.jpg", loop)                       # points at itself: ELOOP on every stat
    with pytest.raises(DatasetError) as err:
        scan_dataset(root)
    assert err.value.path == loop and "symbolic link loop" in err.value.problem
    assert str(err.value).startswith(loop + ": ")


def test_a_looping_class_folder_is_a_dataset_error_naming_it(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"))
    loop = os.path.join(root, "train", "emu")
    os.symlink("emu", loop)
    with pytest.raises(DatasetError) as err:
        scan_dataset(root)
    assert err.value.path == loop and "Too many levels of symbolic links" in err.value.problem


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="needs FIFOs and /dev/zero")
def test_special_files_in_a_class_folder_are_skipped_by_name_without_blocking(tmp_path):
    import signal
    root = _good_dataset(str(tmp_path / "ds"))
    folder = os.path.join(root, "train", "cat")
    fifo, zero, dangling = (os.path.join(folder, n) for n in ("pipe.jpg", "zero.jpg", "gone.jpg"))
    os.mkfifo(fifo)
    os.symlink("/dev/zero", zero)
    os.symlink(os.path.join(folder, "nowhere.jpg"), dangling)

    def hang(signum, frame):
        raise TimeoutError("the scan blocked on a special file")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(30)
    try:
        index = scan_dataset(root, workers=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    reasons = dict(index.skipped)
    assert sorted(reasons) == sorted([fifo, zero, dangling]) and len(index.train) == 8
    assert "FIFO" in reasons[fifo] and "character device" in reasons[zero]
    assert "dangling symbolic link" in reasons[dangling]


def test_skipped_files_report_the_decoders_reason(tmp_path):
    root = _good_dataset(str(tmp_path / "ds"))
    bad = os.path.join(root, "train", "cat", "truncated.jpg")
    _truncated(bad)
    index = scan_dataset(root)
    assert index.skipped == [(bad, "truncated JPEG (no end-of-image marker after the image data)")]
