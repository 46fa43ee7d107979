"""A contact sheet of classified images, like the transfer-learning tutorial's prediction plot.

Each cell: the image fitted into a square, the predicted label and score under it, and a border
that is green when the prediction matches the image's class folder, red when it does not, grey when
the true class is unknown. Drawn with OpenCV (no matplotlib needed on devices); written atomically.
"""
import math
import os
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from runtime.atomic import atomic_write_bytes

# border colours, BGR
RIGHT = (40, 160, 40)
WRONG = (40, 40, 210)
UNKNOWN = (150, 150, 150)
BORDER = 4
CAPTION = 36
MAX_CELLS = 100
SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class GridItem:
    rgb: np.ndarray
    label: str
    score: float
    truth: Optional[str] = None

    @property
    def colour(self):
        if self.truth is None:
            return UNKNOWN
        return RIGHT if self.truth == self.label else WRONG


def fit(img_bgr, size):
    """Scale to fit a size x size square (aspect kept), centred on white."""
    h, w = img_bgr.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(img_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    cell[top:top + nh, left:left + nw] = small
    return cell


def _text(canvas, text, org, scale=0.4):
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def cell_origin(index, columns, thumb):
    """(top, left) pixel of cell `index`: tests use it to read a cell's border colour."""
    row, col = divmod(index, columns)
    return row * (thumb + CAPTION + 2 * BORDER), col * (thumb + 2 * BORDER)


def render(items, thumb=160, columns=None):
    items = list(items)[:MAX_CELLS]
    columns = columns or max(1, min(len(items), math.ceil(math.sqrt(len(items)))))
    rows = math.ceil(len(items) / columns)
    cell_h, cell_w = thumb + CAPTION + 2 * BORDER, thumb + 2 * BORDER
    canvas = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for i, item in enumerate(items):
        top, left = cell_origin(i, columns, thumb)
        canvas[top:top + cell_h, left:left + cell_w] = item.colour
        inner = canvas[top + BORDER:top + cell_h - BORDER, left + BORDER:left + cell_w - BORDER]
        inner[:] = 255
        inner[:thumb] = fit(cv2.cvtColor(item.rgb, cv2.COLOR_RGB2BGR), thumb)
        _text(inner, f"{item.label[:22]} {item.score:.2f}", (3, thumb + 14))
        if item.truth is not None:
            _text(inner, f"true: {item.truth[:20]}", (3, thumb + 29), 0.35)
    return canvas, columns


def write_grid(items, path, thumb=160, columns=None):
    """Render and write atomically; returns the number of columns used."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUFFIXES:
        raise ValueError(f"grid image must end with one of {', '.join(SUFFIXES)}")
    canvas, columns = render(items, thumb, columns)
    ok, data = cv2.imencode(ext, canvas)
    if not ok:
        raise ValueError(f"OpenCV cannot encode {ext}")
    atomic_write_bytes(path, data.tobytes())
    return columns
