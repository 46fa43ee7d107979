"""`toolkit convert --backend converter_lite`: the official converter behind the same pipeline.

The command line it is given, its failures as typed errors quoting the tool, its 0400 output, our
metadata and `--verify` on its output, the options it cannot honour, and its absence. Against the
official tools (stand-ins built from ../shared/mslite): fp32 / fp16 / int8 weights, NHWC and NCHW
`.ms` inputs, and its output runs in our engine with the official runtime's results.
"""
import os
import shutil
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from converters import ConvertOptions, convert
from converters import official_converter as oc
from converters.errors import ConversionError
from runtime.metadata import find_meta, sidecar_path
from runtime.msformat.model import TYPE_FLOAT16, TYPE_FLOAT32
from runtime.msformat.reader import read_ms
from runtime.official import benchmark_cli, discovery
from toolkit.cli import main

pytest.importorskip("onnx")

# fp32: both engines compute in float32 from the same weights; the difference is summation order.
SAME_RESULT_RELATIVE = 1e-4
CP, CHMOD = shutil.which("cp"), shutil.which("chmod")       # the fakes run with PATH emptied


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def fake_converter(folder, body):
    """A program that passes discovery's converter_lite check (--help lists --fmk) and runs `body`."""
    return _script(folder / "converter_lite",
                   'case "$1" in --help) echo " --fmk=VALUE  Input model framework type"; exit 0;; esac\n'
                   + body)




# --- the command line, without the tool ----------------------------------------------------

def test_command_line_uses_the_official_flags(tmp_path, tiny):
    o = ConvertOptions(fp16=True, input_format="NCHW", input_shape=(2, 3, 64, 64))
    args, config = oc.command_line("/bin/converter_lite", tiny.onnx, "onnx", o, str(tmp_path))
    assert args[:3] == ["/bin/converter_lite", "--fmk=ONNX", f"--modelFile={os.path.abspath(tiny.onnx)}"]
    assert f"--outputFile={tmp_path / 'model'}" in args
    assert "--fp16=on" in args and "--inputDataFormat=NCHW" in args
    assert "--inputShape=x:2,3,64,64" in args          # the name read from the source
    assert config is None and not any(a.startswith("--configFile") for a in args)


def test_weight_quantization_goes_through_an_official_config_file(tmp_path):
    o = ConvertOptions(quant="weight", min_quant_weight_size=100, min_quant_weight_channel=8)
    args, config = oc.command_line("cl", "m.mindir", "mindir", o, str(tmp_path))
    assert "--fmk=MINDIR" in args and f"--configFile={tmp_path / oc.CONFIG_NAME}" in args
    assert config.splitlines() == ["[common_quant_param]", "quant_type=WEIGHT_QUANT", "bit_num=8",
                                   "min_quant_weight_size=100", "min_quant_weight_channel=8"]


def test_options_it_cannot_honour_are_usage_errors(tiny, tmp_path):
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--backend", "converter_lite", "--quant", "weight",
            "--quant-mode", "asymmetric")
    assert r.exit_code == 2 and "cannot honour --quant-mode" in r.output
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--converter", "/x/converter_lite")
    assert r.exit_code == 2 and "--backend converter_lite" in r.output
    with pytest.raises(ConversionError, match="cannot honour"):
        convert(tiny.onnx, tmp_path / "m.ms", ConvertOptions(backend="converter_lite", quant="weight",
                                                             symmetric=True))
    assert not (tmp_path / "m.ms").exists()


# --- failures of the tool (fake programs with the tool's behaviour) -----------------------

@pytest.mark.parametrize("body, words", [
    ('echo "[ERROR] CONVERTER(1,x):2026 [converter.cc:99] Convert] Unsupported op Foo" >&2\n'
     'echo "CONVERT RESULT FAILED:-1 Common error code."; exit 255',
     ["exited 255 (-1, conversion error)", "Unsupported op Foo", "CONVERT RESULT FAILED:-1"]),
    ('echo "--bogus is not a valid flag"; echo "Flags Init failed. Ret: -600"; exit 168',
     ["exited 168 (-600, invalid flags)", "not a valid flag"]),
    ('echo "all good"; exit 0', ["without its 'CONVERT RESULT SUCCESS:0' line"]),
    ('echo "CONVERT RESULT SUCCESS:0"; exit 0', ["reported success but wrote no model.ms"]),
    ('kill -ABRT $$', ["killed by signal 6 (SIGABRT)"]),
])
def test_tool_failures_are_conversion_errors_naming_the_source_and_quoting_the_tool(
        tiny, tmp_path, body, words):
    tool = fake_converter(tmp_path, body)
    out = tmp_path / "m.ms"
    with pytest.raises(ConversionError) as e:
        convert(tiny.onnx, out, ConvertOptions(backend="converter_lite", converter=tool))
    msg = str(e.value)
    assert msg.startswith(f"{tiny.onnx}: official converter_lite") and e.value.stage == "converter_lite"
    for w in words:
        assert w in msg
    assert not out.exists() and not os.path.exists(sidecar_path(out))


def test_its_0400_output_gets_our_metadata_and_our_verify(tiny, tmp_path, no_tools):
    """A converter that writes a (valid) .ms with mode 0400, as the real one does: the pipeline reads
    it, writes OUT.ms itself with a sidecar bound to it, and verifies it like our own output."""
    ours = tmp_path / "ours.ms"
    assert run(tiny.onnx, "-o", ours).exit_code == 0
    tool = fake_converter(tmp_path, 'for a in "$@"; do case "$a" in --outputFile=*) o="${a#--outputFile=}";; '
                                    'esac; done\n'
                                    f'{CP} "{ours}" "$o.ms" && {CHMOD} 0400 "$o.ms" && echo "CONVERT RESULT SUCCESS:0"')
    out = tmp_path / "cl.ms"
    r = run(tiny.onnx, "-o", out, "--backend", "converter_lite", "--converter", tool, "--verify", "2")
    assert r.exit_code == 0, r.output
    assert "by the official converter_lite" in r.output and "result            PASS" in r.output
    assert "official runtime  NOT CHECKED: official benchmark not found" in r.output
    assert out.read_bytes() == ours.read_bytes()
    assert os.stat(out).st_mode & 0o200, "our output file must be writable by its owner, not 0400"
    meta, where = find_meta(str(out))
    assert where == sidecar_path(str(out)) and meta.layout == "NHWC" and meta.class_names == tiny.meta.class_names


def test_a_converter_that_ignores_the_input_format_is_caught(tiny, tmp_path):
    nhwc = tmp_path / "nhwc.ms"
    assert run(tiny.onnx, "-o", nhwc).exit_code == 0
    tool = fake_converter(tmp_path, 'for a in "$@"; do case "$a" in --outputFile=*) o="${a#--outputFile=}";; '
                                    f'esac; done\n{CP} "{nhwc}" "$o.ms"; echo "CONVERT RESULT SUCCESS:0"')
    with pytest.raises(ConversionError, match="as NHWC, not the NCHW asked for"):
        convert(tiny.onnx, tmp_path / "m.ms", ConvertOptions(backend="converter_lite", converter=tool,
                                                             input_format="NCHW"))


def test_absent_converter_says_where_it_looked_and_how_to_get_it(tiny, tmp_path, no_tools):
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--backend", "converter_lite")
    assert r.exit_code == 1
    for words in ("'converter_lite' is not available", "MSLITE_HOME (not set)", "PATH (not found)",
                  "build.sh"):
        assert words in r.output
    assert not (tmp_path / "m.ms").exists()


# --- against the official converter and runtime -------------------------------------------

@pytest.mark.parametrize("extra, precision, layout", [
    ([], "fp32", "NHWC"), ([], "fp32", "NCHW"), (["--fp16"], "fp16", "NHWC"),
    (["--quant", "weight"], "int8", "NCHW")])
def test_converter_lite_output_verifies_and_runs_in_our_engine_as_in_the_official_runtime(
        tiny, tmp_path, official_converter, official_benchmark, extra, precision, layout):
    out = tmp_path / "m.ms"
    r = run(tiny.onnx, "-o", out, "--backend", "converter_lite", "--converter", official_converter.path,
            "--benchmark", official_benchmark.path, "--input-format", layout, "--verify", "2", *extra)
    assert r.exit_code == 0, r.output
    assert f"verify ({precision}, 2 random" in r.output and "official runtime  PASS" in r.output
    m = read_ms(out)
    dims = tuple(m.tensors[m.inputs[0]].dims)
    assert dims == ((1, 64, 64, 3) if layout == "NHWC" else (1, 3, 64, 64))
    consts = [t for t in m.tensors if t.is_const and len(t.dims) == 4]
    if precision == "fp16":
        assert all(t.data_type == TYPE_FLOAT16 for t in consts)
    elif precision == "int8":
        assert any(t.quant_params and t.data_type != TYPE_FLOAT32 for t in consts)
    assert find_meta(str(out))[0].layout == layout
    import runtime
    eng = runtime.load(str(out), engine="ms-engine")
    x = np.random.default_rng(5).standard_normal(dims).astype(np.float32)
    ours = eng.run([x])[eng.outputs()[0].name]
    ((name, official),) = benchmark_cli.run_outputs(official_benchmark, str(out), [x])
    assert name == eng.outputs()[0].name
    span = float(ours.max() - ours.min())
    np.testing.assert_allclose(ours, official, rtol=0, atol=SAME_RESULT_RELATIVE * span)
    assert np.argmax(ours) == np.argmax(official)


def test_input_shape_is_given_to_the_tool_by_the_source_input_name(tiny, tmp_path, official_converter):
    out = tmp_path / "b2.ms"
    r = run(tiny.onnx, "-o", out, "--backend", "converter_lite", "--converter", official_converter.path,
            "--input-shape", "2,3,64,64")
    assert r.exit_code == 0, r.output
    assert "--inputShape=x:2,3,64,64" in r.output
    m = read_ms(out)
    assert tuple(m.tensors[m.inputs[0]].dims) == (2, 64, 64, 3)


def test_a_mindir_the_2_0_converter_cannot_read_is_a_typed_error_quoting_it(tiny, tmp_path,
                                                                             official_converter):
    """MindSpore 2.x writes MINDIR version 3; the 2.0 converter reads version 1 and aborts."""
    with pytest.raises(ConversionError) as e:
        convert(tiny.mindir, tmp_path / "m.ms", ConvertOptions(backend="converter_lite",
                                                               converter=official_converter.path))
    msg = str(e.value)
    assert msg.startswith(f"{tiny.mindir}: official converter_lite") and "--fmk=MINDIR" in msg
    assert "mind ir version" in msg
    assert not (tmp_path / "m.ms").exists()
