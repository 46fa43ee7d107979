"""`toolkit eval`: top-1, per-class accuracy and confusion matrix (JSON + PNG) of a run on a dataset."""

import click

ENGINE_CHOICES = ["auto", "onnxruntime", "mindspore"]


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Run folder written by train-head.")
@click.option("--split", type=click.Choice(["val", "train", "all"]), default="val", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: RUN_DIR/eval].")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help="auto = onnxruntime when installed (checked against MindSpore on the first batch).")
@click.option("--network", type=click.Choice(["best", "fused"]), default="best", show_default=True,
              help="Which checkpoint of the run to evaluate.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True)
def evaluate(data, run_dir, split, out, engine, network, batch_size):
    """Evaluate RUN_DIR's network on DATA (an ImageFolder: DATA/{train,val}/<class>/...)."""
    from toolkit.cli import progress
    from toolkit.evaluate import evaluate_run, write_report
    from toolkit.run_dir import RunDir

    def bar(batches, n):
        with progress(length=n, label="evaluating") as b:
            for item in batches:
                yield item
                b.update(1)
    result = evaluate_run(data, run_dir, split=split, engine_name=engine, batch_size=batch_size,
                          network=network, progress=bar)
    json_path, png_path = write_report(result, out or RunDir(run_dir).eval_dir)
    for line in result.lines():
        click.echo(line)
    click.echo(f"wrote {json_path} and {png_path}")
