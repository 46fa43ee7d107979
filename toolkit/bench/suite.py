"""What the runtime benchmark suite adds to a bench table: the physical limit and the goal ratios.

Every ratio compares rows of the same run (same machine, same moment), p50 against p50, because the
machines are noisy and only ratios measured together are meaningful.
"""
from dataclasses import asdict, dataclass
from typing import List, Optional

from .flops import limit_ms


def add_limits(rows, flops_per_image, peaks):
    """Give each measured CPU row `limit_ms` (FLOPs x batch / peak rate at its thread count) and
    `limit_fraction` (limit_ms / p50: 1.0 would be the machine's matmul peak)."""
    for r in rows:
        peak = peaks.get(r.get("threads"))
        if r.get("status") != "ok" or peak is None or r.get("device") != "cpu" or not r.get("p50_ms"):
            continue      # rows timed by the official benchmark have no p50
        r["limit_ms"] = limit_ms(flops_per_image, r["batch"], peak["flops_per_s"])
        r["limit_fraction"] = r["limit_ms"] / r["p50_ms"]
    return rows


@dataclass
class Ratio:
    name: str
    goal: str
    batch: Optional[int]
    threads: Optional[int]
    numerator: str                  # row labels
    denominator: str
    value: Optional[float]          # numerator p50 / denominator p50
    passed: Optional[bool]
    method: str = "rows"            # "rows": two isolated rows run one after the other; "paired": one process
    value_min: Optional[float] = None   # the same ratio on the minimum latencies

    def to_dict(self):
        return asdict(self)


def _ok(rows, **match):
    return [r for r in rows if r.get("status") == "ok" and r.get("p50_ms")
            and all(r.get(k) == v for k, v in match.items())]


def _pair(name, goal, check, num, den, batch, threads, invert=False):
    if not num and not den:
        return None
    if not num or not den:
        return Ratio(name, goal, batch, threads, num[0]["label"] if num else "(no row)",
                     den[0]["label"] if den else "(no row)", None, None)
    n, d = num[0], den[0]
    value = (d["p50_ms"] / n["p50_ms"]) if invert else (n["p50_ms"] / d["p50_ms"])
    vmin = (d["min_ms"] / n["min_ms"]) if invert else (n["min_ms"] / d["min_ms"])
    return Ratio(name, goal, batch, threads, n["label"], d["label"], value,
                 check(value) if check else None, value_min=vmin)


# name, goal, check, (numerator row filter, denominator row filter) -- both on the same batch/threads.
MS_VS_ORT = (".ms engine (fp32) / onnxruntime", "<= 1.10x", lambda v: v <= 1.10)
CLF_VS_RAW = ("Classifier / raw {engine}", "<= 1.05x", lambda v: v <= 1.05)
GRAPHCELL = ("MindSpore GraphCell / fastest CPU path", ">= 30x", lambda v: v >= 30)
# Our engine against the official runtime (its benchmark program) on the same .ms file: mean against
# the tool's AvgRunTime, the one statistic both sides have (the tool prints no percentiles).
VS_OFFICIAL = (".ms engine ({precision}) / official benchmark", "<= 1.00x", lambda v: v <= 1.00)
# The same engine against a second instance of itself: the noise floor of a paired ratio in this run.
CONTROL = ("control: onnxruntime / onnxruntime", "1.00x (noise floor)", None)


def paired_specs(rows):
    """[(name, numerator RowSpec, denominator RowSpec)] to compare in one process each."""
    from .plan import RowSpec
    out = []
    for batch, threads in _keys(rows):
        same = dict(device="cpu", batch=batch, threads=threads)
        ms = [r for r in _ok(rows, engine="ms-engine", api="engine", **same) if r["model"].endswith("fp32.ms")]
        ort = _ok(rows, engine="onnxruntime", api="engine", **same)
        spec = lambda r, api="engine": RowSpec(r["model"], r["engine"], "cpu", batch, threads, api)  # noqa: E731
        if ms and ort:
            out.append((MS_VS_ORT[0], spec(ms[0]), spec(ort[0])))
        if ort:
            out.append((CONTROL[0], spec(ort[0]), spec(ort[0])))
        for engine in ("ms-engine", "onnxruntime"):
            clf = _ok(rows, engine=engine, api="classifier", **same)
            if clf:
                out.append((CLF_VS_RAW[0].format(engine=engine), spec(clf[0], "classifier"), spec(clf[0])))
    # GraphCell is not paired: MindSpore's thread pool and another framework's in one process slow each
    # other down (measured: OpenCV 13 -> 45 ms next to a GraphCell), so that pair would mislead.
    return out


def _graphcell_and_fastest(rows, **match):
    """([fastest GraphCell row], [fastest other CPU row]) among rows matching `match`."""
    by_p50 = lambda r: r["p50_ms"]  # noqa: E731
    graph = sorted(_ok(rows, engine="mindspore", api="engine", device="cpu", **match), key=by_p50)
    fastest = sorted((r for r in _ok(rows, device="cpu", **match) if r["engine"] != "mindspore"), key=by_p50)
    return graph[:1], fastest[:1]


def _keys(rows):
    return sorted({(r["batch"], r["threads"]) for r in _ok(rows, device="cpu")},
                  key=lambda k: (k[0] or 0, k[1] or 0))


def goal_ratios(rows, paired=()) -> List[Ratio]:
    """The issue's three goals for every batch/thread count present, plus fp16/int8 for information.

    `paired` holds (name, result of paired.compare) entries; when a comparison was paired, its paired
    ratio carries the goal and the serial-rows ratio is shown for information only.
    """
    paired_names = {(name, res.get("batch"), res.get("threads")) for name, res in paired}
    out = []
    for batch, threads in _keys(rows):
        same = dict(device="cpu", batch=batch, threads=threads)
        ort = _ok(rows, engine="onnxruntime", api="engine", **same)
        for suffix in ("fp32.ms", "fp16.ms", "int8.ms"):
            ms_rows = [r for r in _ok(rows, engine="ms-engine", api="engine", **same)
                       if r["model"].endswith(suffix)]
            name = f".ms engine ({suffix[:-3]}) / onnxruntime"
            judged = name == MS_VS_ORT[0] and (name, batch, threads) not in paired_names
            out.append(_pair(name, MS_VS_ORT[1] if judged else "(information)", MS_VS_ORT[2] if judged else None,
                             ms_rows, ort, batch, threads))
        for engine in ("ms-engine", "onnxruntime"):
            clf = _ok(rows, engine=engine, api="classifier", **same)
            raw = [r for r in _ok(rows, engine=engine, api="engine", **same)
                   if clf and r["model"] == clf[0]["model"]]
            name = CLF_VS_RAW[0].format(engine=engine)
            judged = (name, batch, threads) not in paired_names
            out.append(_pair(name, CLF_VS_RAW[1] if judged else "(information)", CLF_VS_RAW[2] if judged else None,
                             clf, raw, batch, threads))
        out += _vs_official(rows, batch, threads)
        if batch == 1:
            graph, fastest = _graphcell_and_fastest(rows, batch=1, threads=threads)
            out.append(_pair(GRAPHCELL[0], "(information)", None, fastest, graph, batch, threads, invert=True))
    # The goal itself: the project's fastest CPU path at batch 1 (any thread count) against GraphCell at
    # its own best thread count.
    graph, fastest = _graphcell_and_fastest(rows, batch=1)
    out.append(_pair(GRAPHCELL[0], GRAPHCELL[1], GRAPHCELL[2], fastest, graph, 1, None, invert=True))
    goals = {MS_VS_ORT[0]: MS_VS_ORT, CONTROL[0]: CONTROL}
    goals.update({CLF_VS_RAW[0].format(engine=e): CLF_VS_RAW for e in ("ms-engine", "onnxruntime")})
    for name, res in paired:
        _, goal, check = goals[name]
        value = res.get("ratio_p50")
        out.append(Ratio(name, goal, res.get("batch"), res.get("threads"), res.get("a", ""), res.get("b", ""),
                         value, None if value is None or check is None else check(value), "paired",
                         res.get("ratio_min")))
    return [r for r in out if r is not None]


def _vs_official(rows, batch, threads):
    """A Ratio per .ms file that has both an ms-engine row and an official benchmark row; the goal
    is judged on fp32 and shown for fp16 / int8 weights."""
    out = []
    official = [r for r in rows if r.get("status") == "ok" and r.get("engine") == "mslite-benchmark"
                and r.get("batch") == batch and r.get("threads") == threads and r.get("mean_ms")]
    for peer in official:
        ours = [r for r in _ok(rows, engine="ms-engine", api="engine", device="cpu", batch=batch,
                               threads=threads) if r["model"] == peer["model"]]
        if not ours:
            continue
        r = ours[0]
        precision = next((p for p in ("fp32", "fp16", "int8") if r["model"].endswith(f"{p}.ms")), "?")
        name, goal, check = VS_OFFICIAL
        judged = precision == "fp32"
        value = r["mean_ms"] / peer["mean_ms"]
        out.append(Ratio(name.format(precision=precision), goal if judged else "(information)", batch,
                         threads, r["label"], peer["label"], value, check(value) if judged else None,
                         "rows (mean / tool avg)", r["min_ms"] / peer["min_ms"]))
    return out


def _fmt(v, unit=""):
    return "n/a" if v is None else f"{v:.2f}{unit}"


def ratios_markdown(ratios: List[Ratio]):
    lines = ["## Goal ratios (p50 against p50, same run)", "",
             "`rows`: two isolated rows of the table, run one after the other. `paired`: both contenders "
             "in one fresh process, timed in alternating blocks, so background load hits both alike; "
             "where a comparison was paired, only the paired value is shown here and judged (the JSON "
             "keeps both). The control pair is one engine against itself: its distance from 1.00x is "
             "this run's noise floor. Ratios against the official benchmark compare our mean with the "
             "tool's AvgRunTime (it prints no percentiles; min ratio: our min over its MinRunTime).", "",
             "| ratio | batch | threads | method | p50 ratio | min ratio | goal | met | compared |",
             "|---|---|---|---|---|---|---|---|---|"]
    paired = {(r.name, r.batch, r.threads) for r in ratios if r.method == "paired"}
    for r in ratios:
        if r.method == "rows" and (r.name, r.batch, r.threads) in paired:
            continue      # superseded by the paired measurement (still in the JSON)
        met = "" if r.passed is None else ("yes" if r.passed else "**no**")
        threads = "each side's best" if r.threads is None else r.threads
        lines.append(f"| {r.name} | {r.batch} | {threads} | {r.method} | {_fmt(r.value, 'x')} | "
                     f"{_fmt(r.value_min, 'x')} | {r.goal} | {met} | {r.numerator} vs {r.denominator} |")
    return "\n".join(lines)


def limits_markdown(rows, flops_per_image, peaks):
    lines = ["## Physical limit", "",
             f"Model: {flops_per_image / 1e9:.3f} GFLOPs per image (Conv/Gemm MACs x 2, counted from the ONNX "
             "graph). Peak: best float32 numpy matmul (1024 and 2048 square) in a fresh process with that many "
             "BLAS threads. It is a "
             "practical peak, not the CPU's theoretical FMA rate: a fraction above 100% means the engine's "
             "kernels beat numpy's matmul on this machine.", ""]
    for t, p in sorted(peaks.items()):
        lines.append(f"- {t} thread(s): {p['flops_per_s'] / 1e9:.1f} GFLOP/s (best: {p['n']}x{p['n']} matmul "
                     f"in {p['best_s'] * 1e3:.2f} ms)")
    lines += ["", "| row | p50 ms | limit ms | fraction of limit |", "|---|---|---|---|"]
    for r in rows:
        if r.get("limit_fraction") is not None:
            lines.append(f"| {r['label']} | {r['p50_ms']:.2f} | {r['limit_ms']:.3f} | "
                         f"{100 * r['limit_fraction']:.1f}% |")
    return "\n".join(lines)
