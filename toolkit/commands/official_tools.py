"""`toolkit official-tools`: which official MindSpore Lite programs this machine has, and where from.

The same discovery every other command uses (runtime.official.discovery: explicit path, MSLITE_CONVERTER
/ MSLITE_BENCHMARK, MSLITE_HOME, PATH), so what this prints is what `toolkit bench`, `toolkit convert
--backend converter_lite` and `--verify` will use.
"""
import click

from runtime.official import discovery

# Flags whose presence changes what the project can do with the tool.
CAPABILITIES = {
    discovery.BENCHMARK: (("--outputDataFile", "full outputs for --verify (stand-in extension)"),
                          ("--timeProfiling", "per-node times for bench --profile"),
                          ("--inputShapes", "input resize")),
    discovery.CONVERTER: (("--configFile", "quantization configs"),
                          ("--inputDataFormat", "NCHW/NHWC inputs")),
}


@click.command("official-tools")
@click.option("--converter", type=click.Path(dir_okay=False), default=None,
              help="Explicit converter_lite to check instead of discovery.")
@click.option("--benchmark", type=click.Path(dir_okay=False), default=None,
              help="Explicit benchmark to check instead of discovery.")
@click.option("--require", is_flag=True, help="Exit with status 1 unless both tools are found.")
def official_tools(converter, benchmark, require):
    """Show where converter_lite and benchmark are found (or where they were looked for)."""
    missing = 0
    for name, explicit in ((discovery.CONVERTER, converter), (discovery.BENCHMARK, benchmark)):
        try:
            tool = discovery.find_tool(name, explicit)
        except discovery.OfficialToolUnavailableError as e:
            missing += 1
            click.echo(f"{name}: not found: {e}")
            continue
        click.echo(f"{name}: {tool.path} (found by {tool.found_by})")
        if tool.lib_dirs:
            click.echo(f"  libraries: {', '.join(tool.lib_dirs)}")
        for flag, use in CAPABILITIES[name]:
            click.echo(f"  {flag}: {'yes' if tool.supports(flag) else 'no'} ({use})")
    if require and missing:
        raise SystemExit(1)
