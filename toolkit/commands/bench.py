"""`toolkit bench MODEL...`: latency (and optionally accuracy) across engines, devices, batches, threads."""
import os

import click

from runtime.formats import DEVICES, ENGINES, format_of_path


class CommaList(click.ParamType):
    """A comma-separated list of choices or positive integers, validated at parse time."""

    def __init__(self, choices=None, integer=False, name="list"):
        self.choices, self.integer, self.name = choices, integer, name

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        if not items:
            self.fail("needs at least one value", param, ctx)
        if self.integer:
            try:
                items = [int(v) for v in items]
            except ValueError:
                self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
            if any(v < 1 for v in items):
                self.fail("values must be at least 1", param, ctx)
        elif self.choices is not None:
            bad = [v for v in items if v not in self.choices]
            if bad:
                self.fail(f"unknown {', '.join(bad)}; choose from {', '.join(self.choices)}", param, ctx)
        return list(dict.fromkeys(items))   # keep order, drop repeats


class ModelFile(click.Path):
    """An existing model file of a known format (.mindir, .onnx, .ms)."""

    def __init__(self):
        super().__init__(exists=True, dir_okay=False, readable=True)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if format_of_path(path) is None:
            self.fail(f"{path}: unknown model file type (expected .mindir, .onnx or .ms)", param, ctx)
        return path


ENGINE_NAMES = [e.name for e in ENGINES]
OUTPUTS = (("json", "--json"), ("csv", "--csv"), ("markdown", "--markdown"), ("plot", "--plot"))


@click.command(name="bench")
@click.argument("models", nargs=-1, required=True, type=ModelFile())
@click.option("--engines", type=CommaList(ENGINE_NAMES, name="engines"), default=None,
              help=f"Engines to compare (default: every engine that runs the file). {', '.join(ENGINE_NAMES)}")
@click.option("--devices", type=CommaList(list(DEVICES), name="devices"), default=",".join(DEVICES),
              show_default=True, help="Devices; absent ones get an 'unavailable' row with the reason.")
@click.option("--batch", "batches", type=CommaList(integer=True, name="ints"), default="1", show_default=True,
              help="Batch sizes. A model fixed at batch 1 runs batch N as N sequential calls, shown as Nx1.")
@click.option("--threads", type=CommaList(integer=True, name="ints"), default="1", show_default=True,
              help="Engine thread counts (also pins OpenMP/BLAS pools in subprocess rows).")
@click.option("--warmup", type=click.IntRange(0, 10_000), default=2, show_default=True,
              help="Untimed calls after the first inference.")
@click.option("--iters", type=click.IntRange(1, 1_000_000), default=None, help="Timed calls per row.")
@click.option("--min-time", type=click.FloatRange(0, 3600, min_open=True), default=None,
              help="Time each row for at least this many seconds (default 1.0; exclusive with --iters).")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="ImageFolder: also report top-1 accuracy and agreement with a reference row.")
@click.option("--reference", type=click.Choice(ENGINE_NAMES), default=None,
              help="Engine whose first successful row is the agreement reference (default: first row).")
@click.option("--isolation", type=click.Choice(["subprocess", "inprocess"]), default="subprocess",
              show_default=True, help="Run each row in a fresh process (honest memory) or in this one.")
@click.option("--row-timeout", type=click.FloatRange(1, 86400), default=900, show_default=True,
              help="Seconds before a subprocess row is stopped and marked failed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every row, the machine and the settings as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write the rows as CSV.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Markdown report (table, notes, machine).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="PNG chart: p50 bars with p99 whiskers.")
@click.option("--fail-on-error", is_flag=True, help="Exit with status 1 when a row failed.")
@click.option("--profile", is_flag=True,
              help="Instead of the latency table: where the time goes, node by node (.ms on ms-engine, "
                   "named by the .ms nodes; .onnx on onnxruntime; the official benchmark's "
                   "--timeProfiling where the tool has it).")
@click.option("--profile-runs", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="Profiled runs (after --warmup runs that are not counted).")
@click.option("--profile-top", type=click.IntRange(1, 10_000), default=15, show_default=True,
              help="Nodes shown per profile.")
@click.option("--profile-out", type=click.Path(dir_okay=False), default=None,
              help="Write the profiles: .json (everything) or .csv (one row per node).")
def bench(models, engines, devices, batches, threads, warmup, iters, min_time, data, reference, isolation,
          row_timeout, json_path, csv_path, markdown_path, plot_path, fail_on_error, profile,
          profile_runs, profile_top, profile_out):
    """Latency table of MODEL files across engines, devices, batch sizes and thread counts.

    One row per model x engine x device x batch x threads, each run in its own process. Rows that cannot
    run here are kept, marked unavailable with the reason; nothing is timed on another device.

    \b
    toolkit bench model.onnx model.ms --batch 1,8 --threads 1,2 --plot latency.png
    toolkit bench model.onnx model.ms --data val/ --reference onnxruntime
    """
    from toolkit.bench import environment
    from toolkit.bench.harness import run_plan
    from toolkit.bench.measure import BenchSettings
    from toolkit.bench.plan import plan_rows
    from toolkit.bench.reports import WRITERS, format_table
    from toolkit.cli import progress

    if profile or profile_out:
        return _profile(models, engines, devices, batches, threads, warmup, profile_runs, profile_top,
                        profile_out, dict(data=data, json=json_path, csv=csv_path, markdown=markdown_path,
                                          plot=plot_path, iters=iters, min_time=min_time), profile)
    if iters is not None and min_time is not None:
        raise click.UsageError("--iters and --min-time are exclusive; give one of them")
    if reference is not None and data is None:
        raise click.UsageError("--reference only applies with --data")
    if plot_path and os.path.splitext(plot_path)[1].lower() != ".png":
        raise click.UsageError("--plot writes a PNG; give a path ending in .png")
    settings = BenchSettings(warmup=warmup, iters=iters, min_time=None if iters else (min_time or 1.0),
                             data=data, reference=reference, row_timeout=row_timeout)
    specs = plan_rows(models, engines, devices, batches, threads)
    with progress(length=len(specs), label="bench") as bar:
        rows = run_plan(specs, settings, isolation=isolation, on_row=lambda spec, row: bar.update(1))
    click.echo(format_table(rows))
    env = environment.collect()
    targets = {"json": json_path, "csv": csv_path, "markdown": markdown_path, "plot": plot_path}
    for name, path in targets.items():
        if path:
            WRITERS[name](path, rows, environment=env, settings=settings.to_dict())
            click.echo(f"wrote {path}")
    if fail_on_error and any(r["status"] == "failed" for r in rows):
        raise SystemExit(1)


PROFILED = {"ms": ("ms-engine", "mslite-benchmark"), "onnx": ("onnxruntime",)}


def _profile(models, engines, devices, batches, threads, warmup, runs, top, out, latency_only, profile):
    """`--profile`: per-node profiles of each model on the engines that can give one."""
    from toolkit.bench.profile import format_profile, profile_official, profile_ort, write_profiles
    from toolkit.cli import progress

    if not profile:
        raise click.UsageError("--profile-out needs --profile")
    given = [f"--{k.replace('_', '-')}" for k, v in latency_only.items() if v is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} belong to the latency table, not to --profile")
    if len(threads) != 1 or list(batches) != [1]:
        raise click.UsageError("--profile takes one --threads value and batch 1")
    ctx = click.get_current_context()
    if ctx.get_parameter_source("devices") != click.core.ParameterSource.DEFAULT and devices != ["cpu"]:
        raise click.UsageError("--profile runs on the CPU only (onnxruntime's profiler here)")
    jobs = []
    for model in models:
        fmt = format_of_path(model).name
        if fmt not in PROFILED:
            raise click.UsageError(f"{model}: --profile covers .ms and .onnx files, not .{fmt}")
        jobs += [(model, e) for e in PROFILED[fmt] if engines is None or e in engines]
    if not jobs:
        raise click.UsageError(f"none of --engines {','.join(engines)} gives a profile of these files; "
                               f"profiled engines: ms-engine, onnxruntime, mslite-benchmark")
    profiles = []
    with progress(jobs, label="profile") as bar:
        for model, engine in bar:
            if engine == "mslite-benchmark":
                profiles.append(profile_official(model, runs, warmup, threads[0]))
            else:
                profiles.append(profile_ort(model, engine, runs, warmup, threads[0]))
    for p in profiles:
        click.echo(format_profile(p, top))
    if out:
        write_profiles(out, profiles)
        click.echo(f"wrote {out}")
