"""Generated ImageFolder datasets for the demo and the tests (no download needed).

A class is a (shape, colour) pair drawn on a random textured background at a random position, size and
rotation, so classes differ visibly while images within a class vary. `variant` picks disjoint sets of
classes: the demo pretrains a backbone on variant 0 and transfers a head to variant 1, whose classes the
backbone has never seen. The output is a pure function of the arguments (same bytes for the same
arguments and OpenCV build).
"""
import json
import os
import shutil

import cv2
import numpy as np

from runtime.atomic import atomic_write_text

from .errors import DatasetError

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (235, 215, 40),
           "magenta": (210, 50, 200), "cyan": (40, 210, 220), "orange": (245, 140, 30),
           "white": (245, 245, 245)}
TEXTURES = ("plain", "stripes", "checker", "dots", "noise")
NUM_VARIANTS = 4
MARKER = "dataset.json"


def class_pool(variant):
    """The (shape, colour) classes of one variant, in a fixed order; variants are disjoint."""
    if not 0 <= variant < NUM_VARIANTS:
        raise DatasetError(f"variant must be in 0..{NUM_VARIANTS - 1}, got {variant}")
    combos = [(s, c) for s in SHAPES for c in COLOURS]
    order = np.random.default_rng(20240611).permutation(len(combos))
    return [combos[i] for i in order[variant::NUM_VARIANTS]]


def _background(rng, size):
    base = rng.integers(40, 200)
    tint = rng.integers(-25, 26, size=3)
    bg = np.full((size, size, 3), base, np.float32) + tint
    texture = TEXTURES[rng.integers(len(TEXTURES))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    amp = rng.uniform(15, 40)
    if texture == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(size / 12, size / 4)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        bg += amp * wave[..., None]
    elif texture == "checker":
        cell = max(2, int(rng.uniform(size / 10, size / 4)))
        bg += amp * ((((xx // cell) + (yy // cell)) % 2) * 2 - 1)[..., None]
    elif texture == "dots":
        for _ in range(int(rng.integers(5, 20))):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            shade = tuple(float(base + amp + t) for t in tint)
            cv2.circle(bg, c, max(1, int(rng.uniform(size / 40, size / 15))), shade, -1)
    elif texture == "noise":
        small = rng.normal(0, amp, (max(2, size // 8), max(2, size // 8), 3)).astype(np.float32)
        bg += cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    return bg


def _polygon(shape, centre, radius, angle):
    sides = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}
    if shape in sides:
        n = sides[shape]
        offset = angle + (np.pi / 4 if shape == "square" else 0.0)
        t = offset + np.arange(n) * 2 * np.pi / n
        r = np.full(n, radius) * (np.where(np.arange(n) % 2, 0.6, 1.0) if shape == "diamond" else 1.0)
    elif shape == "star":
        t = angle + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2, radius * 0.45, radius)
    else:  # cross: a 12-point plus sign
        a, b = radius, radius * 0.35
        pts = np.array([(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b),
                        (-a, -b), (-a, b), (-b, b), (-b, a)], np.float64)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return (pts @ rot.T + centre).round().astype(np.int32)
    return np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], 1).round().astype(np.int32)


def render(shape, colour, size, rng):
    """One RGB uint8 image of `shape` in `colour` (jittered) on a random background."""
    img = _background(rng, size)
    radius = rng.uniform(0.2, 0.34) * size
    centre = rng.uniform(0.5 * size - 0.18 * size, 0.5 * size + 0.18 * size, 2)
    col = np.clip(np.array(COLOURS[colour], np.float32) * rng.uniform(0.8, 1.1)
                  + rng.integers(-20, 21, 3), 0, 255)
    col = tuple(float(v) for v in col)
    angle = rng.uniform(0, 2 * np.pi)
    c = tuple(int(v) for v in centre.round())
    if shape == "circle":
        cv2.circle(img, c, int(radius), col, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(img, c, int(radius), col, max(2, int(radius * 0.3)), cv2.LINE_AA)
    else:
        cv2.fillPoly(img, [_polygon(shape, centre, radius, angle)], col, cv2.LINE_AA)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _prepare(out, overwrite):
    if os.path.isdir(out) and os.listdir(out):
        if not (overwrite and os.path.isfile(os.path.join(out, MARKER))):
            raise DatasetError(f"{out}: folder exists and is not empty"
                               + ("" if overwrite else " (use --overwrite to regenerate a generated dataset)")
                               + ("" if not overwrite else " and was not made by make-dataset"))
        for split in ("train", "val"):
            shutil.rmtree(os.path.join(out, split), ignore_errors=True)
    os.makedirs(out, exist_ok=True)


def make_dataset(out, classes, per_class, size, seed, val_fraction=0.2, variant=0, quality=92,
                 overwrite=False, progress=None):
    """Write `out/{train,val}/<class>/<class>_NNNN.jpg`; returns the class names (sorted)."""
    out = os.fspath(out)
    pool = class_pool(variant)
    if not 1 <= classes <= len(pool):
        raise DatasetError(f"--classes must be 1..{len(pool)} for one variant, got {classes}")
    if per_class < 1 or not 8 <= size <= 4096 or not 0 <= val_fraction < 1:
        raise DatasetError("need per_class >= 1, 8 <= size <= 4096 and 0 <= val_fraction < 1")
    _prepare(out, overwrite)
    specs = pool[:classes]
    names = [f"{colour}_{shape}" for shape, colour in specs]
    n_val = min(int(round(per_class * val_fraction)), per_class - 1)
    jobs = [(k, i) for k in range(classes) for i in range(per_class)]
    for k, i in (progress(jobs) if progress else jobs):
        shape, colour = specs[k]
        rng = np.random.default_rng([seed, variant, k, i])
        rgb = render(shape, colour, size, rng)
        split = "val" if i >= per_class - n_val else "train"
        folder = os.path.join(out, split, names[k])
        os.makedirs(folder, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        with open(os.path.join(folder, f"{names[k]}_{i:04d}.jpg"), "wb") as f:
            f.write(buf.tobytes())
    info = {"classes": sorted(names), "per_class": per_class, "size": size, "seed": seed,
            "val_fraction": val_fraction, "variant": variant, "train_per_class": per_class - n_val,
            "val_per_class": n_val}
    atomic_write_text(os.path.join(out, MARKER), json.dumps(info, indent=2) + "\n")
    return sorted(names)
