"""The one registrar (runtime.registry.registrar) and the tables that use it.

A key registered twice is a programming error caught at import: the registrar raises, names both
registrations, and leaves the table as it was.
"""
import importlib

import pytest

from runtime.registry import DuplicateRegistration, registrar


def test_registers_every_key_and_returns_the_function():
    table = {}
    rule = registrar(table, "rule")

    @rule("Conv", "Gemm")
    def lower(x):
        return x

    assert table == {"Conv": lower, "Gemm": lower} and lower(3) == 3


def test_a_duplicate_is_refused_naming_both_and_nothing_changes():
    table = {}
    rule = registrar(table, "rule")

    @rule("Conv")
    def first():
        pass

    def second():
        pass
    with pytest.raises(DuplicateRegistration,
                       match=r"rule for 'Conv' registered twice .*first and .*second"):
        rule("Relu", "Conv")(second)
    assert table == {"Conv": first}          # "Relu" was not half-registered


def test_plain_values_register_too_and_duplicates_name_them():
    table = {}
    mode = registrar(table, "training mode")
    spec = ("head", "optional")
    assert mode("head")(spec) is spec and table == {"head": spec}
    with pytest.raises(DuplicateRegistration, match=r"'head' registered twice \(\('head', 'optional'\)"):
        mode("head")(("head", "other"))


def test_at_least_one_key():
    with pytest.raises(TypeError):
        registrar({}, "rule")()


# (module, table, how to register one more entry under an existing key)
TABLES = [
    ("toolkit.train.modes", "MODES", lambda m: m.register(m.MODES["head"])),
    ("toolkit.train.tasks", "TASKS", lambda m: m.task("network")(type("Again", (), {}))),
    ("toolkit.distributed.backends", "BACKENDS", lambda m: m.register(m.BACKENDS["cpu"])),
    ("toolkit.bench.isolation", "RUNNERS", lambda m: m.runner("inprocess")(lambda *a, **k: None)),
    ("toolkit.bench.reports", "WRITERS", lambda m: m.writer("json")(lambda *a, **k: None)),
    ("toolkit.bench.measure", "APIS", lambda m: m.api("engine")(type("Again", (), {}))),
    ("toolkit.evaluate", "ENGINES", lambda m: m.engine("mindspore")(lambda *a: None)),
    ("runtime.engines.ms_onnx", "HANDLERS",
     lambda m: importlib.import_module("runtime.engines.ms_onnx.base").handler("Conv2DFusion")(len)),
]


@pytest.mark.parametrize("module, table, again", TABLES, ids=[t[1] for t in TABLES])
def test_every_project_table_refuses_a_duplicate(module, table, again):
    mod = importlib.import_module(module)
    before = dict(getattr(mod, table))
    assert before, f"{module}.{table} is empty after import"
    with pytest.raises(DuplicateRegistration):
        again(mod)
    assert getattr(mod, table) == before
