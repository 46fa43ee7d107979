"""`toolkit inspect MODEL.ms`: describe a MindSpore Lite model without running it."""
import json
import os

import click


def _shape(spec):
    return "[" + ", ".join(str(d) for d in spec["shape"]) + "]"


def _print_summary(info, support):
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
    if support is not None:
        click.echo("ms-engine:  " + ("can execute every node" if not support else
                                     "cannot execute " + ", ".join(f"{n} ({op})" for n, op in support)))


@click.command(name="inspect")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(model, as_json):
    """Describe a .ms MODEL: version, source framework, inputs/outputs, op histogram, bytes by
    dtype and quantization."""
    from runtime.engines import is_importable
    from runtime.msformat.reader import read_ms
    from runtime.msformat.summary import summarize

    ms_model = read_ms(model)
    info = summarize(ms_model, model, os.path.getsize(model))
    support = None
    if is_importable("onnx"):
        from runtime.engines.ms_onnx import unsupported_nodes
        support = unsupported_nodes(ms_model)
        info["ms_engine_unsupported"] = [{"node": n, "op": op} for n, op in support]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_summary(info, support)
