"""`toolkit train-head DATA --out RUN_DIR --mode {head,finetune,incremental,scratch}`.

The options are the TrainConfig fields (toolkit/train/config.py declares each one, with its type,
default and help); only --resume and --overwrite, which say what to do with RUN_DIR, are added here.
"""
import os

import click

from toolkit.train.config import NOT_INHERITED, TrainConfig, cli_options
from toolkit.train.modes import MODES, check_pretrained

RUN_ACTIONS = ("resume", "overwrite")     # command-line only: not part of the configuration


def _resolve(ctx, params):
    """TrainConfig from the command line; with --resume, options not given come from config.json."""
    from click.core import ParameterSource
    values = {k: v for k, v in params.items() if k not in RUN_ACTIONS}
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
        if getattr(param, "is_flag", False):
            if value:
                args.append(flag)
        elif value is not None:
            args += [flag, str(value)]
    log_dir = cfg.log_dir or os.path.join(cfg.out, "logs")
    return launch([worker_script_path()] + args, cfg.workers, cfg.local_workers, cfg.master_addr,
                  cfg.master_port, cfg.node_rank, log_dir, join=True, device=cfg.device, timeout=cfg.timeout)


def _features_line(feats):
    parts = [f"features: cache {feats.get('cache')}", f"engine {feats.get('engine')}"]
    if feats.get("rejected"):
        parts[0] += " (a damaged entry was replaced)"
    if "extract_s" in feats:
        parts.append(f"{feats['images']} images in {feats['extract_s']:.1f} s")
    if feats.get("parity"):
        parts.append(f"onnxruntime vs MindSpore max abs diff {feats['parity']['max_abs_diff']:.3g}")
    return ", ".join(parts)


@click.command("train-head", params=cli_options())
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last completed epoch.")
@click.option("--overwrite", is_flag=True, help="Replace a finished or interrupted run in RUN_DIR.")
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
