"""`toolkit inspect MODEL.ms`: describe a MindSpore Lite model without running it.

The "can execute" line is not guessed from an op table: it comes from really opening the model on
the `.ms` engine (`runtime.load(path, engine="ms-engine")`: read, decode every constant, translate,
build the onnxruntime session), so inspect never promises what load then refuses. When that engine's
packages are absent it says it could not check. The format library itself never imports engines.

For a full-integer file it also says which nodes run on integer kernels and which stay float
(`runtime.engines.ms_onnx.ops_int8.int8_nodes`, the translator's own rule, so the list is what the
engine does, not what the quantType fields claim). QuantDTypeCast nodes are counted apart: they are
the conversions at the edges of the int8 islands.
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
    kernels = info.get("int8_kernels")
    if kernels is not None:
        click.echo(f"int8 kernels: {len(kernels['int8'])} node(s) run on integer kernels, "
                   f"{len(kernels['float'])} stay float, {len(kernels['casts'])} QuantDTypeCast")
        for kind in ("int8", "float"):
            if kernels[kind]:
                click.echo(f"  {kind}: " + ", ".join(kernels[kind]))


_VERDICT_TEXT = {
    "ok": lambda v: "can execute every node (loaded and built a session)",
    "unsupported": lambda v: "cannot execute " + ", ".join(f"{n['node']} ({n['op']})"
                                                           for n in v["unsupported"]),
    "fails": lambda v: f"cannot load: {v['detail']}",
    "unchecked": lambda v: f"cannot check: {v['detail']}",
}


def int8_kernels(model):
    """{"int8", "float", "casts"}: node names by the arithmetic they run on, for a model with any
    fully quantized node; None for a float or weight-quantized model (nothing runs in int8)."""
    try:
        from runtime.engines.ms_onnx.driver import is_full_quant_node, needed_nodes
        from runtime.engines.ms_onnx.ops_int8 import int8_nodes
    except ImportError:            # the translator's packages (onnx) are absent: nothing to say
        return None
    needed = needed_nodes(model)
    if not any(is_full_quant_node(model, model.nodes[k]) for k in needed):
        return None
    on_int8 = set(int8_nodes(model, needed))
    picked = [model.nodes[k] for k in needed]
    return {"int8": [n.name for n in picked if n.name in on_int8],
            "float": [n.name for n in picked if n.name not in on_int8 and n.op_type != "QuantDTypeCast"],
            "casts": [n.name for n in picked if n.op_type == "QuantDTypeCast"]}


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
    kernels = int8_kernels(ms_model)
    if kernels is not None:
        info["int8_kernels"] = kernels
    del ms_model                      # the engine reads the file itself, like `toolkit predict`
    verdict = _engine_verdict(model)
    info["ms_engine"] = verdict
    if verdict["status"] != "unchecked":
        info["ms_engine_unsupported"] = verdict["unsupported"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_summary(info)
