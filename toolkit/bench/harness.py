"""Run a plan row by row, each isolated, then add agreement with the reference row.

A row that fails or is unavailable is recorded and the run goes on; only the caller decides what to do
with a table that has failed rows.
"""
from .isolation import RUNNERS


def run_plan(specs, settings, isolation="subprocess", on_row=None, **runner_kw):
    """Result rows for `specs`, in order. `on_row(spec, row)` is called after each row (progress)."""
    run = RUNNERS[isolation]
    rows = []
    for spec in specs:
        row = run(spec, settings, **runner_kw)
        row["label"] = spec.label
        rows.append(row)
        if on_row is not None:
            on_row(spec, row)
    add_agreement(rows, settings.reference)
    add_official_ratio(rows)
    add_fp32_ratio(rows)
    return rows


def add_fp32_ratio(rows):
    """`vs_fp32` on every measured row but the peer: its mean over the fp32 peer's mean on the same
    device, batch and threads. The peer is the fp32 ONNX on onnxruntime when the table has one (the
    reference the int8 speed goal is stated against), else the fp32 file on the same engine. Below
    1.0 the row is faster than fp32."""
    def key(r):
        return r["device_requested"], r["batch"], r["threads"]
    ok = [r for r in rows if r.get("status") == "ok" and r.get("mean_ms") and r.get("api") == "engine"]
    onnx = {}
    same_engine = {}
    for r in ok:
        if r.get("precision") != "fp32":
            continue
        if r.get("format") == "onnx" and r["engine"] == "onnxruntime":
            onnx.setdefault(key(r), r)
        same_engine.setdefault(key(r) + (r["engine"],), r)
    for r in ok:
        peer = onnx.get(key(r)) or same_engine.get(key(r) + (r["engine"],))
        if peer is not None and peer is not r:
            r["vs_fp32"] = r["mean_ms"] / peer["mean_ms"]


def add_official_ratio(rows):
    """`vs_official` on every measured row of a `.ms` file: its mean over the official benchmark's
    AvgRunTime on the same file, device, batch and threads (from this run; None without such a row).
    Below 1.0 the row is faster than the official runtime."""
    from runtime.formats import ENGINES_BY_NAME
    official = {}
    for r in rows:
        entry = ENGINES_BY_NAME.get(r.get("engine"))
        if r.get("status") == "ok" and entry is not None and entry.self_timed and r.get("mean_ms"):
            official.setdefault((r["model"], r["device_requested"], r["batch"], r["threads"]), r)
    for r in rows:
        entry = ENGINES_BY_NAME.get(r.get("engine"))
        if r.get("status") != "ok" or entry is None or entry.self_timed or not r.get("mean_ms"):
            continue
        peer = official.get((r["model"], r["device_requested"], r["batch"], r["threads"]))
        if peer is not None and r.get("api") == "engine":
            r["vs_official"] = r["mean_ms"] / peer["mean_ms"]


def add_agreement(rows, reference_engine=None):
    """Fill `agreement` and `reference` of rows with predictions, against the reference row.

    The reference is the first successful row of `reference_engine` (or the first successful row with
    predictions when none is named).
    """
    from .data import agreement
    scored = [r for r in rows if r.get("status") == "ok" and r.get("predictions") is not None]
    if not scored:
        return None
    pool = [r for r in scored if reference_engine in (None, r["engine"])]
    if not pool:
        for r in scored:
            r["reference"] = f"no successful {reference_engine} row"
        return None
    ref = pool[0]
    for r in scored:
        r["reference"] = ref["label"]
        r["agreement"] = agreement(r["predictions"], ref["predictions"])
    return ref

