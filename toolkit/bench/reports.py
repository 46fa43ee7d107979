"""Bench reports: a terminal table, JSON, CSV and Markdown (the PNG chart lives in `plot`).

Writers are registered by name (`--json`, `--csv`, `--markdown`, `--plot` map onto them) and write
atomically. The table and the Markdown share one column list.
"""
import csv
import io
import json
import os

from runtime.atomic import atomic_write_text
from runtime.registry import registrar

from .measure import OFFICIAL_TIMING_NOTE, RESULT_FIELDS, TIMED_BY_OFFICIAL

WRITERS = {}


writer = registrar(WRITERS, "report writer")


def _num(v, digits=2):
    """Numbers with about three significant digits (sub-millisecond latencies keep theirs)."""
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return "nan"
        a = abs(v)
        if a >= 1000:
            return f"{v:.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1 or a == 0:
            return f"{v:.{digits}f}"
        return f"{v:.3f}"
    return str(v)


def _pct(v):
    return "" if v is None else f"{100 * v:.1f}%"


def _batch(r):
    if r.get("batch") is None:
        return "-"
    return f"{r['batch']}x1" if r.get("batch_mode") == "sequential" else str(r["batch"])


def _device(r):
    ran = r.get("device")
    if ran and ran != r["device_requested"]:
        return f"{r['device_requested']}->{ran}"
    return r["device_requested"]


# (header, function of the row) in display order; `metric` columns are dropped when no row has them.
COLUMNS = (
    ("model", lambda r: os.path.basename(r["model"]), False),
    ("engine", lambda r: r["engine"] + ("+clf" if r.get("api") == "classifier" else ""), False),
    ("device", _device, False),
    ("batch", _batch, False),
    ("thr", lambda r: "-" if r.get("threads") is None else str(r["threads"]), False),
    ("status", lambda r: r["status"], False),
    ("MB", lambda r: _num(r["model_bytes"] / 2**20, 1) if r.get("model_bytes") else "", False),
    ("load s", lambda r: _num(r.get("load_s")), True),
    ("1st ms", lambda r: _num(r.get("first_ms")), True),
    ("mean", lambda r: _num(r.get("mean_ms")), True),
    ("std", lambda r: _num(r.get("std_ms")), True),
    ("min", lambda r: _num(r.get("min_ms")), True),
    ("p50", lambda r: _num(r.get("p50_ms")), True),
    ("p90", lambda r: _num(r.get("p90_ms")), True),
    ("p99", lambda r: _num(r.get("p99_ms")), True),
    ("max", lambda r: _num(r.get("max_ms")), True),
    ("img/s", lambda r: _num(r.get("throughput"), 1), True),
    ("peak MB", lambda r: "" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}", True),
    ("%peak", lambda r: _pct(r.get("limit_fraction")), True),
    ("top1", lambda r: _pct(r.get("top1")), True),
    ("agree", lambda r: _pct(r.get("agreement")), True),
    ("vs official", lambda r: "" if r.get("vs_official") is None else f"{r['vs_official']:.2f}x", True),
    ("prec", lambda r: r.get("precision") or "", True),
    ("vs fp32", lambda r: "" if r.get("vs_fp32") is None else f"{r['vs_fp32']:.2f}x", True),
)


def _note(r):
    """The footnote of a row: why it did not run, or who timed it when that was not this harness."""
    if r.get("reason"):
        return r["reason"]
    if r.get("timed_by") == TIMED_BY_OFFICIAL:
        return OFFICIAL_TIMING_NOTE
    return ""


def table_cells(rows):
    """(headers, cell rows, notes): reasons of non-ok rows become numbered notes (one per distinct text)."""
    cols = [c for c in COLUMNS if not c[2] or any(c[1](r) for r in rows)]
    headers = [c[0] for c in cols] + ["note"]
    cells, numbers = [], {}
    for r in rows:
        note, text = "", _note(r)
        if text:
            note = f"[{numbers.setdefault(text, len(numbers) + 1)}]"
        cells.append([c[1](r) for c in cols] + [note])
    return headers, cells, list(numbers)


def format_table(rows, title="latency in ms"):
    """The terminal table, with the reasons of unavailable/failed/refused rows listed below it."""
    headers, cells, notes = table_cells(rows)
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) if i < 6 else v.rjust(w)  # noqa: E731
                                  for i, (v, w) in enumerate(zip(vals, widths))).rstrip()
    out = [title, line(headers), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(out)


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_markdown(rows, environment=None, settings=None, title="Runtime latency", extra=""):
    headers, cells, notes = table_cells(rows)
    out = [f"# {title}", ""]
    if environment:
        gpus = ", ".join(environment.get("gpus") or []) or "none"
        pk = ", ".join(f"{k} {v}" for k, v in sorted(environment.get("packages", {}).items()))
        out += [f"- Date: {environment.get('date_utc')}",
                f"- CPU: {environment.get('cpu')} ({environment.get('cpu_count')} logical cores); GPU: {gpus}",
                f"- System: {environment.get('system')}, Python {environment.get('python')}; load average "
                f"(1/5/15 min) {environment.get('load_average')} on {environment.get('cpu_count')} cores",
                f"- Packages: {pk}"]
    if settings:
        out.append("- Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None))
    out += ["", "Latency columns are milliseconds per call of one batch; img/s is batch / mean. A batch "
            "shown as `8x1` ran as 8 sequential batch-1 calls because the model's batch is fixed at 1.", ""]
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in cells]
    if notes:
        out += ["", "Notes:", ""] + [f"{i}. {_md_escape(n)}" for i, n in enumerate(notes, 1)]
    if extra:
        out += ["", extra.rstrip()]
    return "\n".join(out) + "\n"


def public_row(r):
    """The row as reported (known fields, in order; internal keys such as predictions dropped)."""
    return {k: r.get(k) for k in RESULT_FIELDS + ("label",)}


@writer("json")
def write_json(path, rows, environment=None, settings=None, extra=None, **_):
    doc = {"environment": environment, "settings": settings, "rows": [public_row(r) for r in rows]}
    if extra:
        doc.update(extra)
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


@writer("csv")
def write_csv(path, rows, **_):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RESULT_FIELDS) + ["label"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(public_row(r))
    atomic_write_text(path, buf.getvalue())


@writer("markdown")
def write_markdown(path, rows, environment=None, settings=None, markdown_extra="", **_):
    atomic_write_text(path, format_markdown(rows, environment, settings, extra=markdown_extra))


@writer("plot")
def write_plot(path, rows, **_):
    from .plot import plot_latency
    plot_latency(rows, path)
