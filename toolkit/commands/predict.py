"""`toolkit predict MODEL IMAGES_OR_DIRS...`: classify images through the embeddable runtime.

The model is a .ms, .onnx or .mindir file with its metadata (runtime.metadata.find_meta: its own
OUT.ms.json sidecar, inside an ONNX file, a legacy stem.json), or a run folder; --meta FILE and
--labels FILE give metadata or class names for a model without them. Folders of
images are walked; when an image's parent folder is one of the model's classes, the prediction is
scored against it (table column, accuracy line, and green/red cells in --grid).
"""
import json
import os

import click

from runtime.formats import DEVICES, ENGINES
from toolkit.grid import SUFFIXES as GRID_SUFFIXES


class GridPath(click.Path):
    """An output image path whose suffix OpenCV can encode."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if os.path.splitext(str(value))[1].lower() not in GRID_SUFFIXES:
            self.fail(f"{value!r} must end with one of {', '.join(GRID_SUFFIXES)}", param, ctx)
        return value


def truth_of(path, class_names):
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder if folder in class_names else None


def _device_text(engine):
    devices = getattr(engine, "devices", None)
    return "+".join(devices) if devices else engine.device


def _table(rows, top_k):
    lines = []
    width = max([len("image")] + [len(r["image"]) for r in rows])
    has_truth = any(r["truth"] is not None for r in rows)
    head = f"{'image':<{width}}  {'top-1':<16} {'score':>6}"
    if has_truth:
        head += f"  {'true':<14} ok"
    if top_k > 1:
        head += "  next"
    lines.append(head)
    for r in rows:
        (label, score), rest = r["predictions"][0], r["predictions"][1:]
        line = f"{r['image']:<{width}}  {label:<16} {score:6.3f}"
        if has_truth:
            mark = "" if r["truth"] is None else ("yes" if r["correct"] else "NO")
            line += f"  {r['truth'] or '-':<14} {mark:<3}"
        if rest:
            line += "  " + ", ".join(f"{lab} {s:.3f}" for lab, s in rest)
        lines.append(line.rstrip())
    return "\n".join(lines)


@click.command(name="predict")
@click.argument("model", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--engine", type=click.Choice(["auto"] + [e.name for e in ENGINES]), default="auto",
              show_default=True, help="Engine from the runtime's table; never replaced silently.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="Engine CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--grid", type=GridPath(dir_okay=False, writable=True), default=None,
              help="Write a picture of the images with their predicted labels (.png/.jpg).")
@click.option("--meta", "meta_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Metadata JSON to use instead of the model's own (preprocessing and labels).")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Class names, one per line, replacing the metadata's (or the class_N defaults).")
def predict(model, images, top_k, engine, device, threads, as_json, grid, meta_file, labels_file):
    """Classify IMAGES_OR_DIRS with MODEL (a .ms/.onnx/.mindir file or a run folder).

    A model without metadata runs with ImageNet preprocessing sized to its input and labels class_0,
    class_1, ... (a warning says so); give --meta or --labels to do better."""
    from runtime.classifier import Classifier
    from runtime.errors import ImageError
    from runtime.images import list_images, load_rgb

    paths = list_images(images)
    if not paths:
        raise click.UsageError(f"no image files found in {', '.join(images)}")
    clf = Classifier(model, engine=engine, device=device, threads=threads, top_k=top_k,
                     meta=meta_file, labels=labels_file)
    classes = set(clf.labels)
    rows, errors, grid_items = [], [], []
    for path in paths:
        try:
            rgb = load_rgb(path, exif_orientation=clf.meta.exif_orientation)
            top = clf.predict_decoded(rgb, top_k, source=path)   # decoded once, also for --grid
        except ImageError as e:
            errors.append({"image": path, "error": str(e)})
            continue
        truth = truth_of(path, classes)
        rows.append({"image": path, "predictions": top, "truth": truth,
                     "correct": None if truth is None else truth == top[0][0]})
        if grid:
            from toolkit.grid import GridItem
            grid_items.append(GridItem(rgb, top[0][0], top[0][1], truth))
    scored = [r for r in rows if r["correct"] is not None]
    accuracy = sum(r["correct"] for r in scored) / len(scored) if scored else None
    if as_json:
        click.echo(json.dumps({
            "model": clf.model_path, "engine": clf.engine.name, "device": _device_text(clf.engine),
            "results": [dict(r, predictions=[{"label": lab, "score": s} for lab, s in r["predictions"]])
                        for r in rows],
            "errors": errors, "accuracy": accuracy}, indent=2))
    else:
        click.echo(f"{clf.model_path} on {clf.engine.name} ({_device_text(clf.engine)}), "
                   f"{len(rows)} image(s)")
        if rows:
            click.echo(_table(rows, top_k))
        if accuracy is not None:
            click.echo(f"top-1 accuracy on {len(scored)} image(s) from class folders: {accuracy:.1%}")
    if grid and grid_items:
        from toolkit.grid import MAX_CELLS, write_grid
        write_grid(grid_items, grid)
        shown = min(len(grid_items), MAX_CELLS)
        click.echo(f"grid of {shown} of {len(grid_items)} image(s) written to {grid}", err=True)
    for e in errors:
        click.echo(f"error: {e['error']}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} of {len(paths)} image(s) could not be read")
