"""The `toolkit` click group.

Sub-commands live one per module in `toolkit/commands/` and are imported only when invoked, so
`toolkit --help` stays fast and never imports MindSpore. Library errors are typed
(runtime.errors.ToolkitError); this is the only place they become click errors. MindSpore's own
warnings are shown only with -v (runtime.mindspore_import).
"""
import importlib
import logging

import click

from runtime import mindspore_import
from runtime.errors import ToolkitError

# command name -> ("module:attribute", one-line help shown by `toolkit --help` without importing it)
COMMANDS = {
    "make-dataset": ("toolkit.commands.make_dataset:make_dataset",
                     "Generate a deterministic ImageFolder dataset."),
    "train-head": ("toolkit.commands.train_head:train_head",
                   "Train a classifier (head, finetune, incremental, scratch)."),
    "eval": ("toolkit.commands.evaluate:evaluate", "Top-1, per-class accuracy and confusion matrix of a run."),
    "export": ("toolkit.commands.export:export", "Export a run to MINDIR, ONNX or AIR."),
    "convert": ("toolkit.commands.convert:convert", "Convert MINDIR or ONNX to a MindSpore Lite .ms model."),
    "inspect": ("toolkit.commands.inspect:inspect", "Describe a .ms model."),
    "compare": ("toolkit.commands.compare:compare",
                "Where model B departs from model A: outputs and per-layer error, worst first."),
    "predict": ("toolkit.commands.predict:predict", "Classify images with any model and engine."),
    "bench": ("toolkit.commands.bench:bench", "Latency table across engines and devices."),
    "bench-train": ("toolkit.commands.bench_train:bench_train",
                    "Time head-mode transfer against the ModelZoo recipe."),
    "official-tools": ("toolkit.commands.official_tools:official_tools",
                       "Where the official converter_lite and benchmark are found."),
    "rank-table": ("toolkit.commands.rank_table:rank_table",
                   "Write an HCCL rank table for Ascend data-parallel runs."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ToolkitError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True,
              help="Also MindSpore's own warnings (e.g. about GPU/Ascend plugins this machine lacks); "
                   "-vv: debug output too.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.version_option(package_name="ms-edge-toolkit")
@click.pass_context
def main(ctx, verbose, quiet):
    """Train, convert, run and benchmark image classifiers for MindSpore Lite edge devices."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    # Before any command imports MindSpore (runtime/mindspore_import.py says what is silenced).
    mindspore_import.set_verbose(verbose > 0)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose


def progress(iterable=None, length=None, label="", ctx=None):
    """A click progress bar that is hidden with -q."""
    ctx = ctx or click.get_current_context(silent=True)
    quiet = bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))
    return click.progressbar(iterable, length=length, label=label, hidden=quiet, file=None)


if __name__ == "__main__":
    main()
