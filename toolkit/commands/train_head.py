"""`toolkit train-head DATA --out RUN_DIR --mode {head,finetune,incremental,scratch}`."""
import os

import click

from toolkit.models import ARCHS
from toolkit.distributed.context import LR_SCALING
from toolkit.train.config import AMP_LEVELS, DEVICES, EXTRACTORS, TrainConfig
from toolkit.train.modes import MODES, check_pretrained

DIST_OPTIONS = ("workers", "local_workers", "master_addr", "master_port", "node_rank", "log_dir", "timeout")
FLAGS = ("resume", "save_fp16", "overwrite")
# Not taken from the saved config.json on --resume: the paths given now, and launch details of one run
# (a saved master port would be busy or stale; unset means a fresh free one).
NOT_INHERITED = ("data", "out", "master_port", "timeout")


def _resolve(ctx, params):
    """TrainConfig from the command line; with --resume, options not given come from config.json."""
    from click.core import ParameterSource
    values = {k: v for k, v in params.items() if k not in ("resume", "overwrite")}
    if params["resume"]:
        from toolkit.run_dir import RunDir
        saved = TrainConfig.load(RunDir(params["out"]).config_json)
        for name in values:
            if ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE and hasattr(saved, name) \
                    and name not in NOT_INHERITED:
                values[name] = getattr(saved, name)
    values["data"] = os.path.abspath(values["data"])
    values["out"] = os.path.abspath(values["out"])
    if values.get("pretrained"):
        values["pretrained"] = os.path.abspath(values["pretrained"])
    return TrainConfig(**values).resolved()


def _validate(cfg):
    problem = check_pretrained(MODES[cfg.mode], cfg.pretrained)
    if problem:
        raise click.UsageError(problem)
    if cfg.lr_end > cfg.lr_max:
        raise click.UsageError(f"--lr-end {cfg.lr_end} is above --lr-max {cfg.lr_max}")
    if cfg.warmup_epochs > cfg.epochs:
        raise click.UsageError(f"--warmup-epochs {cfg.warmup_epochs} exceeds --epochs {cfg.epochs}")
    from toolkit.train.amp import AmpError, check_level
    try:
        check_level(cfg.amp, cfg.device)
    except AmpError as e:
        raise click.UsageError(str(e)) from None
    if MODES[cfg.mode].cached_features and cfg.lr_scaling != "none":
        raise click.UsageError("--mode head trains the head once on all features with --batch-size; "
                               "--lr-scaling has no global batch to scale for there (use none)")
    if cfg.local_workers > cfg.workers:
        raise click.UsageError("--local-workers cannot exceed --workers")
    if cfg.master_port is None and (cfg.node_rank > 0 or cfg.local_workers < cfg.workers):
        raise click.UsageError("a multi-host run (--node-rank > 0 or --local-workers < --workers) needs "
                               "--master-port, the same on every host")


def _relaunch(ctx, cfg):
    """Start `workers` processes through msrun, each running this same command."""
    from toolkit.distributed.launch import launch, worker_script_path
    args = ["train-head", cfg.data]
    for param in ctx.command.params:
        name = param.name
        if name == "data":
            continue
        # the resolved value: absolute paths, and on --resume the saved settings
        value = getattr(cfg, name) if hasattr(cfg, name) else ctx.params[name]
        flag = "--" + name.replace("_", "-")
        if name in FLAGS:
            if value:
                args.append(flag)
        elif value is not None:
            args += [flag, str(value)]
    log_dir = cfg.log_dir or os.path.join(cfg.out, "logs")
    return launch([worker_script_path()] + args, cfg.workers, cfg.local_workers, cfg.master_addr,
                  cfg.master_port, cfg.node_rank, log_dir, join=True, device=cfg.device, timeout=cfg.timeout)


def _features_line(feats):
    parts = [f"features: cache {feats.get('cache')}", f"engine {feats.get('engine')}"]
    if "extract_s" in feats:
        parts.append(f"{feats['images']} images in {feats['extract_s']:.1f} s")
    if feats.get("parity"):
        parts.append(f"onnxruntime vs MindSpore max abs diff {feats['parity']['max_abs_diff']:.3g}")
    return ", ".join(parts)


@click.command("train-head")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--mode", type=click.Choice(sorted(MODES)), default="head", show_default=True,
              help="; ".join(f"{m.name}: {m.help}" for m in MODES.values()))
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False),
              help="Checkpoint to start from (ModelZoo names; backbone-only or full by mode).")
@click.option("--arch", type=click.Choice(sorted(ARCHS)), default="mobilenet_v2", show_default=True)
@click.option("--width", type=click.FloatRange(0.1, 4.0), default=1.0, show_default=True)
@click.option("--image-size", type=click.IntRange(16, 1024), default=224, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 100000), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 65536), default=32, show_default=True,
              help="Per device: with --workers N each rank feeds this many images per step, so the global "
                   "batch is N x this (head mode trains the head once, on all features, with this batch).")
@click.option("--lr-max", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True,
              help="Peak learning rate, as given unless --lr-scaling says otherwise.")
@click.option("--lr-end", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--lr-scaling", type=click.Choice(sorted(LR_SCALING)), default="none", show_default=True,
              help="With --workers N: 'linear' multiplies --lr-max and --lr-end by N (the global batch "
                   "grew N times); 'none' keeps them. Not for head mode.")
@click.option("--warmup-epochs", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(0), default=4e-5, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True)
@click.option("--loss-scale", type=click.FloatRange(0, min_open=True), default=None,
              help="Fixed loss scale [default: 1 with O0, 1024 with O2/O3].")
@click.option("--amp", type=click.Choice(AMP_LEVELS), default="O0", show_default=True,
              help="Mixed precision: O2/O3 for GPU and Ascend (O2 also runs on CPU).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--device-id", type=click.IntRange(0), default=0, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2 ** 31 - 1), default=0, show_default=True)
@click.option("--save-every", type=click.IntRange(0), default=1, show_default=True,
              help="Periodic checkpoint every N epochs (0: none).")
@click.option("--keep-max", type=click.IntRange(0), default=5, show_default=True,
              help="Periodic checkpoints kept.")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last completed epoch.")
@click.option("--overwrite", is_flag=True, help="Replace a finished or interrupted run in RUN_DIR.")
@click.option("--save-fp16", is_flag=True, help="Also write fp16 checkpoints (half the size).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True, help="Val split when DATA has no val/ folder.")
@click.option("--num-workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Data pipeline workers (1 keeps augmentation exactly reproducible).")
@click.option("--extractor", type=click.Choice(EXTRACTORS), default="auto", show_default=True,
              help="Head mode feature engine (auto: onnxruntime on CPU, checked against MindSpore).")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Feature cache folder [default: RUN_DIR/cache].")
@click.option("--workers", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Data-parallel processes in total (through msrun).")
@click.option("--local-workers", type=click.IntRange(1, 4096), help="Processes on this host.")
@click.option("--master-addr", default="127.0.0.1", show_default=True)
@click.option("--master-port", type=click.IntRange(1024, 65535),
              help="msrun's scheduler port [default: a free one; a multi-host run must give one].")
@click.option("--node-rank", type=click.IntRange(0), default=0, show_default=True)
@click.option("--log-dir", type=click.Path(file_okay=False), help="Per-rank logs [RUN_DIR/logs].")
@click.option("--timeout", type=click.FloatRange(0, min_open=True),
              help="Stop every process of a --workers run after this many seconds [default: no limit].")
@click.pass_context
def train_head(ctx, **params):
    """Train a classifier on an ImageFolder dataset DATA and write the run folder RUN_DIR."""
    from toolkit.cli import progress
    cfg = _resolve(ctx, params)
    _validate(cfg)
    if cfg.workers > 1:
        from toolkit.distributed.launch import inside_worker
        if not inside_worker():
            _relaunch(ctx, cfg)
            click.echo(f"distributed run finished; run folder {cfg.out}")
            return
    from toolkit.train.loop import train

    def on_epoch(row):
        acc = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.4f}"
        click.echo(f"epoch {row['epoch']}/{cfg.epochs}  loss {row['train_loss']:.4f}  val_acc {acc}  "
                   f"lr {row['lr']:.5f}  {row['epoch_time_s']:.1f} s")

    result = train(cfg, resume=params["resume"], overwrite=params["overwrite"],
                   progress=lambda it, length, label: progress(it, length=length, label=label),
                   on_epoch=on_epoch)
    if result.features:
        click.echo(_features_line(result.features))
    if result.best_acc is not None:
        click.echo(f"best val_acc {result.best_acc:.4f} (epoch {result.best_epoch})")
    if result.outputs:      # finished, on the rank that writes
        click.echo(f"run folder {result.run_dir}: " + ", ".join(
            sorted(os.path.basename(p) for p in result.outputs.values())))
