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
    return rows


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

