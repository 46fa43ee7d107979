"""The runtime suite's additions: physical limit per row, goal ratios, paired interleaved timing."""
import pytest

from toolkit.bench.paired import block_size, interleaved_samples
from toolkit.bench.suite import add_limits, goal_ratios, paired_specs


def row(model, engine, p50, batch=1, threads=1, api="engine", device="cpu"):
    label = f"{model} {engine}{'+classifier' if api == 'classifier' else ''} {device} b{batch} t{threads}"
    return {"model": model, "engine": engine, "api": api, "device": device, "device_requested": device,
            "batch": batch, "threads": threads, "status": "ok", "p50_ms": p50, "min_ms": p50 and p50 * 0.9,
            "label": label}


ROWS = [row("m.mindir", "mindspore", 190.0), row("m.onnx", "onnxruntime", 4.0),
        row("m.onnx", "opencv", 9.0), row("m_fp32.ms", "ms-engine", 4.2), row("m_int8.ms", "ms-engine", 5.0),
        row("m_fp32.ms", "ms-engine", 4.1, api="classifier"), row("m.onnx", "onnxruntime", 4.3, api="classifier"),
        row("m.onnx", "onnxruntime", 20.0, batch=8),
        dict(row("m.onnx", "onnxruntime", None, device="gpu"), status="unavailable")]


def by_name(ratios, name, batch=1, method="rows"):
    [r] = [r for r in ratios if r.name == name and r.batch == batch and r.method == method]
    return r


def test_limit_is_flops_times_batch_over_the_peak_of_the_same_thread_count():
    rows = [row("m.onnx", "onnxruntime", 40.0, batch=8), row("m.onnx", "onnxruntime", 8.0, threads=2),
            dict(row("m.onnx", "onnxruntime", None, device="gpu"), status="unavailable")]
    add_limits(rows, 6e8, {1: {"flops_per_s": 1.2e11}, 2: {"flops_per_s": 2.4e11}})
    assert rows[0]["limit_ms"] == pytest.approx(40.0) and rows[0]["limit_fraction"] == pytest.approx(1.0)
    assert rows[1]["limit_ms"] == pytest.approx(2.5) and rows[1]["limit_fraction"] == pytest.approx(2.5 / 8)
    assert "limit_ms" not in rows[2]


def test_goal_ratios_from_rows_of_the_same_batch_and_threads():
    ratios = goal_ratios(ROWS)
    ms = by_name(ratios, ".ms engine (fp32) / onnxruntime")
    assert ms.value == pytest.approx(1.05) and ms.passed and ms.goal == "<= 1.10x"
    assert by_name(ratios, ".ms engine (int8) / onnxruntime").passed is None       # information only
    clf = by_name(ratios, "Classifier / raw ms-engine")
    assert clf.value == pytest.approx(4.1 / 4.2) and clf.passed
    assert by_name(ratios, "Classifier / raw onnxruntime").value == pytest.approx(1.075)
    assert by_name(ratios, "Classifier / raw onnxruntime").passed is False
    g = [r for r in ratios if "GraphCell" in r.name]
    assert [(r.batch, r.threads, r.goal) for r in g] == [(1, 1, "(information)"), (1, None, ">= 30x")]
    assert g[1].value == pytest.approx(47.5) and g[1].passed and g[1].numerator.startswith("m.onnx onnxruntime")


def test_graphcell_goal_takes_the_best_of_each_side_over_thread_counts():
    rows = ROWS + [row("m.mindir", "mindspore", 150.0, threads=2), row("m.onnx", "onnxruntime", 6.0, threads=2),
                   row("m_int8.ms", "ms-engine", 3.0, threads=2)]
    [goal] = [r for r in goal_ratios(rows) if "GraphCell" in r.name and r.threads is None]
    assert goal.value == pytest.approx(50.0)                 # 150 ms (2 threads) / 3 ms (int8, 2 threads)
    assert goal.numerator == "m_int8.ms ms-engine cpu b1 t2" and goal.denominator == "m.mindir mindspore cpu b1 t2"


def test_paired_results_carry_the_goal_and_serial_ones_become_information():
    paired = [(".ms engine (fp32) / onnxruntime", {"a": "x", "b": "y", "batch": 1, "threads": 1,
                                                   "ratio_p50": 1.2, "ratio_min": 1.1})]
    ratios = goal_ratios(ROWS, paired)
    assert by_name(ratios, ".ms engine (fp32) / onnxruntime").passed is None
    p = by_name(ratios, ".ms engine (fp32) / onnxruntime", method="paired")
    assert (p.value, p.value_min, p.passed) == (1.2, 1.1, False)


def test_paired_specs_name_the_comparisons_to_run():
    names = [(n, a.api, a.model, b.api, b.model) for n, a, b in paired_specs(ROWS)]
    assert (".ms engine (fp32) / onnxruntime", "engine", "m_fp32.ms", "engine", "m.onnx") in names
    assert ("Classifier / raw ms-engine", "classifier", "m_fp32.ms", "engine", "m_fp32.ms") in names
    assert ("Classifier / raw onnxruntime", "classifier", "m.onnx", "engine", "m.onnx") in names
    assert ("control: onnxruntime / onnxruntime", "engine", "m.onnx", "engine", "m.onnx") in names
    assert not [n for n, a, b in paired_specs(ROWS) if "GraphCell" in n]   # two frameworks interfere


def test_interleaved_blocks_alternate_and_drop_the_switch_over_call():
    now = [0.0]
    log = []

    def make(name, dt):
        def fn():
            log.append(name)
            now[0] += dt
        return fn
    s = interleaved_samples({"a": make("a", 0.01), "b": make("b", 0.03)}, min_time=0.1,
                            clock=lambda: now[0], block=3, min_blocks=2)
    assert "".join(log[:16]) == "aaaabbbbbbbbaaaa"          # A B | B A: 1 dropped + 3 timed per block
    assert all(x == pytest.approx(0.01) for x in s["a"]) and all(x == pytest.approx(0.03) for x in s["b"])
    assert sum(s["a"]) + sum(s["b"]) >= 0.2 and len(s["a"]) == len(s["b"]) and len(s["a"]) % 3 == 0


def test_a_much_faster_contender_does_not_stretch_the_run():
    now = [0.0]

    def make(dt):
        def fn():
            now[0] += dt
        return fn
    s = interleaved_samples({"slow": make(0.5), "fast": make(0.001)}, min_time=1.0, clock=lambda: now[0],
                            block=1, min_blocks=8)
    assert len(s["slow"]) == len(s["fast"]) == 8        # 8 blocks: 4 s of slow calls >= 2 x 1.0 s


def test_markdown_shows_the_paired_value_instead_of_the_serial_one():
    from toolkit.bench.suite import ratios_markdown
    paired = [(".ms engine (fp32) / onnxruntime", {"a": "x", "b": "y", "batch": 1, "threads": 1,
                                                   "ratio_p50": 1.2, "ratio_min": 1.1})]
    text = ratios_markdown(goal_ratios(ROWS, paired))
    lines = [line for line in text.splitlines() if line.startswith("| .ms engine (fp32) / onnxruntime | 1 |")]
    assert len(lines) == 1 and "| paired | 1.20x | 1.10x | <= 1.10x | **no** |" in lines[0]
    assert "| MindSpore GraphCell / fastest CPU path | 1 | each side's best | rows | 47.50x |" in text


@pytest.mark.parametrize("call_s,calls", [(0.001, 6), (0.03, 3), (0.125, 1), (2.0, 1), (0.0, 6)])
def test_blocks_last_about_a_tenth_of_a_second(call_s, calls):
    assert block_size(call_s) == calls


def official(model, mean, batch=1, threads=1):
    """A row timed by the official benchmark: mean (its AvgRunTime), min, max; no p50."""
    return dict(row(model, "mslite-benchmark", None, batch, threads), mean_ms=mean, min_ms=mean * 0.8,
                timed_by="official benchmark")


def test_ratio_to_the_official_benchmark_is_mean_over_its_avg_judged_on_fp32():
    rows = [dict(row("m_fp32.ms", "ms-engine", 4.0), mean_ms=4.5), official("m_fp32.ms", 5.0),
            dict(row("m_int8.ms", "ms-engine", 4.0), mean_ms=6.0), official("m_int8.ms", 5.0),
            official("m_fp16.ms", 5.0)]                       # no ms-engine row: no ratio
    ratios = goal_ratios(rows)
    fp32 = by_name(ratios, ".ms engine (fp32) / official benchmark", method="rows (mean / tool avg)")
    assert fp32.value == pytest.approx(0.9) and fp32.passed and fp32.goal == "<= 1.00x"
    assert fp32.value_min == pytest.approx(3.6 / 4.0)
    int8 = by_name(ratios, ".ms engine (int8) / official benchmark", method="rows (mean / tool avg)")
    assert int8.value == pytest.approx(1.2) and int8.passed is None
    assert not [r for r in ratios if "fp16" in r.name and "official" in r.name]


def test_official_rows_get_no_limit_fraction_without_a_p50():
    rows = [official("m_fp32.ms", 5.0)]
    add_limits(rows, 6e8, {1: {"flops_per_s": 1.2e11}})
    assert "limit_fraction" not in rows[0]
