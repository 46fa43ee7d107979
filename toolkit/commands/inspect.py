"""`toolkit inspect MODEL.ms`: describe a MindSpore Lite model without running it.

The "can execute" line is not guessed from an op table: it comes from really opening the model on
the `.ms` engine (`runtime.load(path, engine="ms-engine")`: read, decode every constant, translate,
build the onnxruntime session), so inspect never promises what load then refuses. When that engine's
packages are absent it says it could not check. The format library itself never imports engines.
"""
import json
import os

import click


def _shape(spec):
    return "[" + ", ".join(str(d) for d in spec["shape"]) + "]"


def _print_summary(info):
    click.echo(f"file:       {info['file']} ({info['file_bytes']:,} bytes)")
    click.echo(f"version:    {info['version'] or '(not set)'}")
    click.echo(f"framework:  {info['source_framework']} (fmkType {info['fmk_type']})")
    click.echo(f"graph:      {info['nodes']} nodes, {info['tensors']} tensors, "
               f"{info['subgraphs']} subgraph(s), {info['constant_values']:,} constant values")
    for kind in ("inputs", "outputs"):
        click.echo(f"{kind}:")
        for spec in info[kind]:
            click.echo(f"  {spec['name'] or '#' + str(spec['index'])}: {_shape(spec)} "
                       f"{spec['dtype']} {spec['format']}")
    click.echo("ops:")
    width = max((len(op) for op in info["op_histogram"]), default=0)
    for op, count in info["op_histogram"].items():
        click.echo(f"  {op:<{width}}  {count}")
    click.echo("constant bytes by dtype:")
    for dtype, size in info["constant_bytes_by_dtype"].items():
        click.echo(f"  {dtype:<8} {size:,}")
    q = info["quantization"]
    click.echo(f"quantization: nodes {q['node_quant_types']}; {q['quantized_weight_tensors']} "
               f"weight-quantized tensor(s) ({q['per_channel']} per-channel, bits {q['num_bits']}); "
               f"{q['compressed_tensors']} compressed; {q['float16_tensors']} float16 constant(s)")
    verdict = info.get("ms_engine")
    if verdict is not None:
        click.echo("ms-engine:  " + _VERDICT_TEXT[verdict["status"]](verdict))


_VERDICT_TEXT = {
    "ok": lambda v: "can execute every node (loaded and built a session)",
    "unsupported": lambda v: "cannot execute " + ", ".join(f"{n['node']} ({n['op']})"
                                                           for n in v["unsupported"]),
    "fails": lambda v: f"cannot load: {v['detail']}",
    "unchecked": lambda v: f"cannot check: {v['detail']}",
}


def _engine_verdict(path):
    """What loading on the `.ms` engine really does: {"status", "detail", "unsupported"}."""
    from runtime import load
    from runtime.errors import EngineUnavailableError, ToolkitError, UnsupportedOpsError
    try:
        load(path, engine="ms-engine")
    except EngineUnavailableError as e:
        return {"status": "unchecked", "detail": str(e), "unsupported": []}
    except UnsupportedOpsError as e:
        return {"status": "unsupported", "detail": str(e),
                "unsupported": [{"node": n, "op": op} for n, op in e.ops]}
    except ToolkitError as e:
        return {"status": "fails", "detail": str(e), "unsupported": []}
    return {"status": "ok", "detail": "", "unsupported": []}


@click.command(name="inspect")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(model, as_json):
    """Describe a .ms MODEL: version, source framework, inputs/outputs, op histogram, bytes by
    dtype and quantization."""
    from runtime.msformat.reader import read_ms
    from runtime.msformat.summary import summarize

    ms_model = read_ms(model)
    info = summarize(ms_model, model, os.path.getsize(model))
    del ms_model                      # the engine reads the file itself, like `toolkit predict`
    verdict = _engine_verdict(model)
    info["ms_engine"] = verdict
    if verdict["status"] != "unchecked":
        info["ms_engine_unsupported"] = verdict["unsupported"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_summary(info)
