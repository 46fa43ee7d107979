"""A bounded slice of the fuzz campaign (benchmarks/fuzz): every mutated `.ms`, ONNX, MINDIR, image
and metadata file either works or fails with a typed ToolkitError - no other exception, crash,
hang or allocation over the budget. Same code, seeds and case numbering as
`python -m benchmarks.fuzz`, so a failure here is replayed with `--replay CASE_ID`.

The fast slice runs a few dozen cases per target (about a minute on 2 cores, corpus included);
the slow one runs the first 300 cases per target.
"""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.fuzz import campaign, harness
from benchmarks.fuzz.harness import Limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEED = 1
FAST = {"ms": 80, "onnx": 50, "mindir": 30, "image": 60, "meta": 80}
SLOW = 300
LIMITS = Limits(mem_mb=harness.DEFAULT_MEM_MB, rss_mb=harness.DEFAULT_RSS_MB, timeout=60)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    # The corpus is cached by content key; FUZZ_WORK lets CI keep it between runs.
    return os.environ.get("FUZZ_WORK") or str(tmp_path_factory.mktemp("fuzz"))


def _failures(doc):
    lines = []
    for s in doc["targets"]:
        for e in s["failure_signatures"]:
            lines.append(f"{s['target']}: {e['count']} x {e['outcome']} {e['error_type']} at {e['where']} "
                         f"(stage {e['stage']}), replay e.g. `python -m benchmarks.fuzz --replay "
                         f"{e['examples'][0]}`: {e['message'][:200]}")
    return lines


def _run(target, count, work):
    """The documented command itself, in a fresh interpreter: the harness forks one child per case,
    and forking this pytest process (MindSpore and its thread pools already loaded by other tests)
    could deadlock a child that uses MindSpore."""
    pytest.importorskip("onnx", reason="the fuzz corpus is built with onnx (onnx extra)")
    report = os.path.join(work, f"slice-{target}-{count}.json")
    command = [sys.executable, "-m", "benchmarks.fuzz", "--target", target, "--seed", str(SEED),
               "--count", str(count), "--jobs", "2", "--timeout", str(LIMITS.timeout),
               "--mem-mb", str(LIMITS.mem_mb), "--rss-mb", str(LIMITS.rss_mb), "--work", work,
               "--report", report, "--quiet"]
    r = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert os.path.isfile(report), (r.stdout[-3000:], r.stderr[-3000:])
    with open(report) as f:
        doc = json.load(f)
    (summary,) = doc["targets"]
    assert summary["cases"] == count
    assert summary["outcomes"][harness.HARNESS_ERROR] == 0, _failures(doc)
    return doc, summary


@pytest.mark.parametrize("target", sorted(FAST))
def test_fuzz_slice_gives_only_typed_errors(target, work):
    doc, summary = _run(target, FAST[target], work)
    bad = {k: v for k, v in summary["outcomes"].items() if k not in harness.ACCEPTED and v}
    assert not bad, "\n".join([f"{target}: {bad}"] + _failures(doc))


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(FAST))
def test_fuzz_campaign_slice_gives_only_typed_errors(target, work):
    doc, summary = _run(target, SLOW, work)
    bad = {k: v for k, v in summary["outcomes"].items() if k not in harness.ACCEPTED and v}
    assert not bad, "\n".join([f"{target}: {bad}"] + _failures(doc))


def test_same_seed_gives_the_same_cases(work):
    """Reproducibility: a case depends on (target, seed, index) only, not on jobs or count."""
    pytest.importorskip("onnx")
    folder, manifest = campaign.ensure_corpus(work, lambda *_: None)
    from benchmarks.fuzz import corpus as corpus_mod
    from benchmarks.fuzz.targets import TARGETS
    for name in ("ms", "onnx", "image", "meta"):
        corpus = corpus_mod.Corpus(folder, name, manifest)
        first = [TARGETS[name].mutate(harness.case_rng(name, SEED, i), corpus) for i in range(5)]
        again = [TARGETS[name].mutate(harness.case_rng(name, SEED, i), corpus) for i in range(5)]
        other = TARGETS[name].mutate(harness.case_rng(name, SEED + 1, 0), corpus)
        assert first == again
        assert len({data for _, data, _ in first}) > 1
        assert other != first[0]


def test_outcome_classes_are_detected(tmp_path):
    """The harness tells a crash, a hang, a memory blow-up, an untyped and a typed error apart."""
    import signal

    from runtime.errors import ModelFormatError

    class Fake:
        name = "fake"
        corpus = None

        def mutate(self, rng, corpus):
            return ".bin", b"x", ["fake"]

        def variant(self, rng):
            return 0, None

        def consume(self, path, case_dir, stage, variant=0):
            kind = os.path.basename(case_dir).split("-")[2]
            if kind == "0":
                return None
            if kind == "1":
                raise ModelFormatError(path, "typed")
            if kind == "2":
                raise KeyError("untyped")
            if kind == "3":
                stage("about to crash")
                os.kill(os.getpid(), signal.SIGSEGV)
            if kind == "4":
                import time
                time.sleep(30)
            if kind == "5":
                bytearray(3 << 30)        # over the 2 GiB address-space budget
            if kind == "6":
                block = bytearray(300 << 20)     # within the cap but over a 200 MiB RSS budget
                block[::4096] = b"\x01" * len(block[::4096])

    results = harness.run_cases(Fake(), None, 0, range(7), str(tmp_path),
                                Limits(mem_mb=2048, rss_mb=200, timeout=3), jobs=2)
    assert [r.outcome for r in results] == ["ran", "typed", "other-exception", "crash", "hang", "memory",
                                            "memory"]
    assert results[1].names_file is True
    assert results[2].error_type == "builtins.KeyError"
    assert results[3].error_type == "SIGSEGV"
    assert results[3].stage == "about to crash" and results[3].mutation == ["fake"]
    assert results[6].rss_growth_kb > 250 << 10


def test_ms_walker_finds_the_fields_the_reader_reads(golden_dir):
    """The structural slots are real: overwriting the slot of a tensor's first dim changes exactly
    that dim as the project's reader sees it, and every tensor's dims and every node's indices
    are reached."""
    import struct

    from benchmarks.fuzz.ms_mutators import walk
    from runtime.msformat.reader import read_ms_bytes
    with open(os.path.join(golden_dir, "parallel.ms"), "rb") as f:
        data = f.read()
    model = read_ms_bytes(data)
    w = walk(data)
    dims = [(p, d[2]) for k, p, d in w.slots if k == "scalar" and ".2[" in d[2] and d[1] == "dim"]
    assert len({what.split(".")[0] for _, what in dims}) == 1
    assert len(dims) == sum(len(t.dims) for t in model.tensors)
    node_io = [d for k, _, d in w.slots if k == "vector-length" and d[0] in ("CNode.3", "CNode.4")]
    assert len(node_io) == 2 * len(model.nodes)
    pos = dims[0][0]
    out = bytearray(data)
    struct.pack_into("<i", out, pos, 7)
    changed = read_ms_bytes(bytes(out))
    diffs = [(i, a.dims, b.dims) for i, (a, b) in enumerate(zip(model.tensors, changed.tensors)) if a.dims != b.dims]
    assert len(diffs) == 1 and diffs[0][2][0] == 7
