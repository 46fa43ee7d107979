"""`toolkit bench --profile`: per-node times under the `.ms` node names, op-type totals, JSON/CSV,
and the official tool's profile or a plain statement that it cannot give one."""
import csv
import json
import os

import pytest
from click.testing import CliRunner

from runtime.msformat.reader import read_ms
from toolkit.bench.profile import (PROFILE_FIELDS, parse_official_time_profile, profile_official,
                                   profile_ort)
from toolkit.cli import main

GOLDEN_MS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "shared", "golden", "ms", "ml_face_isface.ms")


@pytest.fixture(scope="module")
def face():
    if not os.path.isfile(GOLDEN_MS):
        pytest.skip(f"{GOLDEN_MS} not found")
    return GOLDEN_MS


def test_ms_profile_names_the_ms_nodes_and_shares_sum_to_one(face):
    p = profile_ort(face, "ms-engine", runs=5, warmup=1, threads=1)
    names = {n.name for n in read_ms(face).nodes}
    inserted = [n for n in p.nodes if n.name.startswith("(onnxruntime: ")]
    assert {n.name for n in p.nodes} - {n.name for n in inserted} <= names
    assert {n.name for n in p.nodes} & names >= {"conv1", "conv2", "fc5"}
    assert all(n.op_type.startswith("Reorder") for n in inserted), inserted   # layout reorders only
    assert sum(n.share for n in p.nodes) == pytest.approx(1.0)
    assert 0 < p.node_ms <= p.run_ms
    assert [n.total_ms for n in p.nodes] == sorted((n.total_ms for n in p.nodes), reverse=True)
    assert sum(c for _, c, _, _ in p.op_types()) == len(p.nodes)


def test_warmup_runs_are_not_counted(face):
    calls = {w: {n.name: n.calls for n in profile_ort(face, "ms-engine", runs=3, warmup=w, threads=1).nodes}
             for w in (0, 4)}
    assert calls[0] == calls[4]      # the same 3 runs' kernels, however many warm-up runs came first


def test_onnx_profile_uses_its_own_node_names(tiny):
    import onnx
    p = profile_ort(tiny.onnx, "onnxruntime", runs=3, warmup=1, threads=1)
    graph_ops = {n.op_type for n in onnx.load(tiny.onnx).graph.node}
    assert p.nodes and sum(n.share for n in p.nodes) == pytest.approx(1.0)
    assert {"Conv"} <= {n.op_type for n in p.nodes} and graph_ops


def test_official_profile_is_parsed_or_said_plainly(face, official_benchmark):
    p = profile_official(face, runs=3, warmup=1)
    if official_benchmark.supports("--timeProfiling"):
        assert p.nodes
    else:
        assert not p.nodes and p.note == ("official benchmark: --timeProfiling not supported by "
                                          f"{official_benchmark.path}")


def test_official_time_profile_table_is_parsed():
    text = """-------------------------------------------------------------------------
opName                                  avg(ms)         percent         calledTimes     opTotalTime
conv1                                   0.120000        0.400000        10              1.200000
fc5                                     0.060000        0.200000        10              0.600000
-------------------------------------------------------------------------
opType                                  avg(ms)         percent         calledTimes     opTotalTime
Conv2DFusion                            0.120000        0.400000        10              1.200000
"""
    per = parse_official_time_profile(text)
    assert [(v[0], v[2], v[3]) for v in per.values()] == [("conv1", 10, 1.2), ("fc5", 10, 0.6)]


def test_cli_profile_with_json_and_csv(face, tmp_path):
    for out in (tmp_path / "p.json", tmp_path / "p.csv"):
        res = CliRunner().invoke(main, ["-q", "bench", face, "--profile", "--profile-runs", "3",
                                        "--warmup", "1", "--profile-top", "3", "--profile-out", str(out)])
        assert res.exit_code == 0, res.output
        assert "profile: ml_face_isface.ms on ms-engine" in res.output
        assert "profile: ml_face_isface.ms on mslite-benchmark" in res.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [d["engine"] for d in doc] == ["ms-engine", "mslite-benchmark"]
    assert doc[0]["op_types"] and doc[1]["note"] or doc[1]["nodes"]
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert list(rows[0]) == ["model", "engine", *PROFILE_FIELDS]


@pytest.mark.parametrize("args,message", [
    (["--profile", "--json", "x.json"], "--json belong to the latency table"),
    (["--profile", "--threads", "1,2"], "one --threads value"),
    (["--profile-out", "x.json"], "--profile-out needs --profile"),
    (["--profile", "--devices", "gpu"], "CPU only"),
    (["--profile", "--engines", "onnxruntime"], "none of --engines"),
])
def test_cli_profile_refuses_what_does_not_apply(face, args, message):
    res = CliRunner().invoke(main, ["bench", face, *args])
    assert res.exit_code == 2 and message in res.output
