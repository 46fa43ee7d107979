"""`toolkit export`: a run's network as MINDIR / ONNX / AIR with its metadata (inside an ONNX file,
else in the file's own sidecar OUT.mindir.json)."""
import os

import click

from runtime.formats import FORMATS

EXPORTABLE = [f.name for f in FORMATS if f.exportable]


def _check_out(ctx, param, value):
    if value is None or os.path.isdir(value):
        return value
    fmt = next(f for f in FORMATS if f.name == ctx.params.get("fmt", "mindir"))
    if not value.endswith(fmt.suffix):
        raise click.BadParameter(f"must end with {fmt.suffix} for --format {fmt.name} (or be a folder)")
    return value


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(EXPORTABLE), default="mindir", show_default=True,
              is_eager=True, help="Model format (AIR needs an Ascend device).")
@click.option("--fuse-bn/--no-fuse-bn", default=True, show_default=True,
              help="Fold BatchNorm into the convolutions (no BatchNorm node in the file).")
@click.option("--softmax", is_flag=True, help="Append softmax: the model outputs probabilities.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Static batch dimension of the input.")
@click.option("--image-size", type=click.IntRange(8, 8192), default=None,
              help="Input side in pixels [default: the run's image size].")
@click.option("--out", type=click.Path(dir_okay=True), default=None, callback=_check_out,
              help="Output file or folder [default: RUN_DIR/export/model[_softmax][_bn].<suffix>].")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Run the written file and compare it with the network.")
def export(run_dir, fmt, fuse_bn, softmax, batch_size, image_size, out, verify):
    """Export RUN_DIR's best network (fresh build from its checkpoints) with its metadata: inside an
    ONNX file, in OUT.mindir.json / OUT.air.json otherwise."""
    from toolkit.export import export_run
    result = export_run(run_dir, fmt, fuse_bn=fuse_bn, softmax=softmax, batch_size=batch_size,
                        image_size=image_size, out=out, verify=verify)
    m = result.meta
    click.echo(f"wrote {result.path} ({os.path.getsize(result.path) / 1e6:.2f} MB), metadata in {result.meta_path}")
    click.echo(f"  input [{batch_size}, 3, {m.image_size}, {m.image_size}] {m.layout} {m.channel_order}, "
               f"{m.num_classes} classes, output {'probabilities' if m.softmax else 'logits'}, "
               f"BatchNorm nodes: {result.batchnorm_nodes}")
    if result.max_rel_diff is not None:
        click.echo(f"  verified: max relative difference to the network {result.max_rel_diff:.1e}")
