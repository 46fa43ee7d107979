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
    return rows


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

