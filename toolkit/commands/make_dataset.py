"""`toolkit make-dataset`: a deterministic generated ImageFolder for demos and tests."""
import click


@click.command("make-dataset")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=click.IntRange(1, 16), default=5, show_default=True,
              help="Number of classes (each a coloured shape).")
@click.option("--per-class", type=click.IntRange(1, 100000), default=50, show_default=True,
              help="Images per class (train + val).")
@click.option("--size", type=click.IntRange(8, 4096), default=224, show_default=True, help="Image side in pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Share of each class written to val/.")
@click.option("--variant", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Class family; different variants have disjoint classes (pretrain on one, transfer to another).")
@click.option("--overwrite", is_flag=True, help="Regenerate OUT if it holds a dataset made by this command.")
def make_dataset(out, classes, per_class, size, seed, val_fraction, variant, overwrite):
    """Write OUT/train/<class>/*.jpg and OUT/val/<class>/*.jpg."""
    from toolkit.cli import progress
    from toolkit.data.synthetic import make_dataset as generate

    with progress(length=classes * per_class, label="generating") as bar:
        def tick(jobs):
            for job in jobs:
                yield job
                bar.update(1)
        names = generate(out, classes, per_class, size, seed, val_fraction=val_fraction, variant=variant,
                         overwrite=overwrite, progress=tick)
    click.echo(f"wrote {classes * per_class} images of {len(names)} classes to {out}: {', '.join(names)}")
