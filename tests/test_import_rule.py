"""`import runtime` must stay light: no mindspore, no onnx, no engine frameworks."""
import subprocess
import sys

FORBIDDEN = ("mindspore", "mindspore_lite", "onnx", "onnxruntime", "torch")


def test_import_runtime_pulls_in_no_framework():
    code = ("import sys, runtime, runtime.metadata, runtime.formats, runtime.engines; "
            "print(' '.join(m for m in %r if m in sys.modules))" % (FORBIDDEN,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_toolkit_help_does_not_import_mindspore():
    code = ("import sys; from click.testing import CliRunner; from toolkit.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print('mindspore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
