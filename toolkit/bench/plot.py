"""PNG chart of latency per row: p50 bars with whiskers up to p99 (matplotlib, imported lazily)."""
from runtime.atomic import atomic_path
from runtime.errors import ToolkitError


class BenchPlotError(ToolkitError):
    """Nothing to plot, or matplotlib is missing."""


def plot_latency(rows, path, title="Latency per engine/device (bar: p50, whisker: p99)"):
    # Rows timed by the official benchmark have no p50 (it prints min/avg/max): their bar is the
    # tool's average, labelled so, with no whisker.
    ok = [r for r in rows if r.get("status") == "ok"
          and (r.get("p50_ms") is not None or r.get("mean_ms") is not None)]
    if not ok:
        raise BenchPlotError(f"{path}: no successful row to plot")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise BenchPlotError(f"--plot needs matplotlib ({e})") from None
    labels = [(r.get("label") or f"{r['engine']} {r['device']} b{r['batch']} t{r['threads']}")
              + (" (sequential)" if r.get("batch_mode") == "sequential" else "")
              + (" (tool's avg, no p50)" if r.get("p50_ms") is None else "") for r in ok]
    p50 = [r["mean_ms"] if r.get("p50_ms") is None else r["p50_ms"] for r in ok]
    whisker = [0.0 if r.get("p50_ms") is None else max(0.0, r["p99_ms"] - r["p50_ms"]) for r in ok]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(ok)))
    try:
        y = list(range(len(ok)))
        ax.barh(y, p50, xerr=[[0] * len(ok), whisker], capsize=3, color="#4C72B0", ecolor="#333333")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        if max(p50) / max(min(p50), 1e-9) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("latency per call (ms)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
