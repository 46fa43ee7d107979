"""`toolkit bench-train DATA`: time head-mode transfer against the ModelZoo recipe on DATA."""
import json

import click


def format_report(r):
    o, z = r["ours"], r["modelzoo"]
    return "\n".join([
        f"{r['train_images']} train + {r['val_images']} val images, {r['image_size']} px, width "
        f"{r['width']}, {r['epochs']} epochs, backbone: {r['backbone']}",
        f"{'method':<34}{'total s':>10}{'extract s':>11}{'train s':>10}{'val acc':>9}",
        f"{'head mode (onnxruntime, cached)':<34}{o['total_s']:>10.2f}{o['extract_s']:>11.2f}"
        f"{o['train_s']:>10.2f}{o['val_acc']:>9.4f}",
        f"{'ModelZoo recipe (MindSpore maps)':<34}{z['total_s']:>10.2f}{z['extract_s']:>11.2f}"
        f"{z['train_s']:>10.2f}{z['val_acc']:>9.4f}",
        f"speed-up end to end: {r['speedup_end_to_end']}x; val acc difference "
        f"{r['val_acc_diff_points']:+.2f} points; onnxruntime vs MindSpore features max abs diff "
        f"{o['parity_max_abs_diff']:.3g} on {o['parity_images']} images",
    ])


@click.command("bench-train")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--image-size", type=click.IntRange(16, 1024), default=224, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 10000), default=10, show_default=True)
@click.option("--width", type=click.FloatRange(0.1, 4.0), default=1.0, show_default=True)
@click.option("--lr-max", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True)
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False),
              help="Backbone checkpoint [default: random initialisation].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the result here.")
def bench_train(data, image_size, batch_size, epochs, width, lr_max, pretrained, seed, json_path):
    """Head mode (onnxruntime extraction + cached vectors) against the ModelZoo recipe on DATA."""
    from runtime.atomic import atomic_write_text
    from toolkit.cli import progress
    from toolkit.train.bench import bench_head_mode
    result = bench_head_mode(data, image_size=image_size, batch_size=batch_size, epochs=epochs,
                             width=width, pretrained=pretrained, seed=seed, lr_max=lr_max,
                             progress=lambda it, length, label: progress(it, length=length, label=label))
    click.echo(format_report(result))
    if json_path:
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
