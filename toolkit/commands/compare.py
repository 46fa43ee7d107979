"""`toolkit compare A B`: where model B departs from model A (the reference), output and per layer.

The work is converters.compare; this module only parses, shows a progress bar over the batches
(not with --json, whose stdout must stay one JSON document) and prints a table or JSON. Its typed errors become click errors in toolkit.cli.
"""
import json

import click

from runtime.engines.int8_modes import INT8_MODES

MODEL = click.Path(exists=True, dir_okay=False, readable=True)


def _json_safe(value):
    """JSON without Infinity/NaN (not JSON): such a float becomes null."""
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@click.command(name="compare")
@click.argument("reference", metavar="A", type=MODEL)
@click.argument("candidate", metavar="B", type=MODEL)
@click.option("--per-layer", is_flag=True,
              help="Also compare every tensor both models hold under one name, worst first.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, readable=True),
              help="Folder of images, preprocessed by the models' metadata (default: seeded random inputs).")
@click.option("-n", "samples", type=click.IntRange(1, 100000), default=4, show_default=True,
              help="Number of input batches.")
@click.option("--top", type=click.IntRange(1), default=None,
              help="Show only the K worst tensors of the per-layer report (JSON keeps them all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--int8", "int8", type=click.Choice(INT8_MODES), default="fast", show_default=True,
              help="Arithmetic of int8 nodes in a .ms: onnxruntime's fused kernels, or the official "
                   "fixed-point one bit for bit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
def compare(reference, candidate, per_layer, images, samples, top, as_json, int8, seed):
    """Run models A (the reference) and B (.ms or .onnx) on the same inputs and report top-1
    agreement, cosine and max abs diff of the outputs; with --per-layer, the error of every common
    tensor, worst first (choose --skip-quant nodes from its top)."""
    from converters.compare import compare as run_compare

    from ..cli import progress

    if top is not None and not per_layer:
        raise click.UsageError("--top limits the --per-layer report: add --per-layer")

    def bar(batches):
        with progress(batches, label="comparing") as it:
            yield from it

    report = run_compare(reference, candidate, n=samples, images=images, per_layer=per_layer,
                         int8=int8, seed=seed, progress=None if as_json else bar)
    if as_json:
        click.echo(json.dumps(_json_safe(report.to_dict()), indent=2))
    else:
        for line in report.lines(top=top):
            click.echo(line)
