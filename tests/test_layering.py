"""The package layering, computed from the import graph (every module's imports, parsed with ast).

runtime <- converters <- toolkit: a lower layer never imports a higher one; no package holds an
import cycle between its modules; the `.ms` format library imports no onnx (the translator that does
lives in runtime/engines/ms_onnx); and `import runtime` loads no framework.

Imports inside functions count: a lazy import is still a dependency, and a cycle through one is
still a cycle (it only moves the failure from import time to call time).
"""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("runtime", "converters", "toolkit")


def _module_files():
    """{dotted module name: path} for every .py file of the project's packages."""
    found = {}
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    found[".".join(rel)] = os.path.join(folder, f)
    return found


MODULES = _module_files()


def _is_package(name):
    return MODULES[name].endswith("__init__.py")


def _resolve(importer, level, module):
    """The absolute name of `from <level dots><module> import ...` written in `importer`."""
    if level == 0:
        return module
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def _imports(name):
    """What module `name` imports, as absolute names: for `from a import b`, `a.b` when that is a
    project module, else `a` (b is then a name defined in a)."""
    with open(MODULES[name], encoding="utf-8") as f:
        tree = ast.parse(f.read(), MODULES[name])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node.level, node.module)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return out


def _project_target(imported):
    """The project module an import refers to (the longest known prefix), or None."""
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


IMPORTS = {name: _imports(name) for name in MODULES}

# Module -> project modules it imports. A package's own __init__ is not an edge of its submodules:
# Python runs it before them anyway, and `from . import sub` inside the package names sub only.
GRAPH = {name: {m for m in map(_project_target, imported) if m is not None and m != name}
         for name, imported in IMPORTS.items()}


def strongly_connected(graph):
    """Tarjan's algorithm (iterative): the components with more than one module, or a self loop."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    result.append(sorted(component))
    return result


def _top(name):
    return name.split(".")[0]


def test_the_graph_sees_known_edges():
    """Guard for the parser itself: relative imports resolve, function-level imports count."""
    assert "runtime.errors" in GRAPH["runtime.engines.ms_onnx.base"]                 # from ...errors
    assert "runtime.engines.ms_onnx.base" in GRAPH["runtime.engines.ms_onnx.ops_nn"]  # from .base
    assert "runtime.engines.ms_onnx" in GRAPH["runtime.engines.ms_engine"]   # inside a function
    assert "runtime.msformat.reader" in GRAPH["runtime.engines.ms_engine"]   # from ..msformat.reader


def test_tarjan_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["e"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("lower, higher", [("runtime", "toolkit"), ("runtime", "converters"),
                                           ("converters", "toolkit")])
def test_lower_layers_never_import_higher_ones(lower, higher):
    offenders = sorted(f"{name} imports {target}" for name, imported in IMPORTS.items()
                       if _top(name) == lower for target in imported if _top(target) == higher)
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_within_a_package(package):
    inside = {name: {t for t in edges if _top(t) == package}
              for name, edges in GRAPH.items() if _top(name) == package}
    assert strongly_connected(inside) == []


def test_the_ms_format_library_imports_no_onnx():
    offenders = sorted(f"{name} imports {target}" for name, imported in IMPORTS.items()
                       if name.startswith("runtime.msformat") for target in imported
                       if _top(target) in ("onnx", "onnxruntime"))
    assert [name for name in MODULES if name.startswith("runtime.msformat.")], "no modules found"
    assert offenders == []


def test_import_runtime_loads_no_framework():
    code = ("import sys, runtime; "
            "print(' '.join(m for m in ('mindspore', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.stdout.strip() == ""
