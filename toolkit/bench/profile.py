"""`toolkit bench --profile`: where the time goes, node by node, for one model on one engine.

- **`.ms` on our engine**: the translated graph runs in an onnxruntime session with its profiler on;
  every ONNX node carries the index of the `.ms` node it was translated from (`ms<k>.<j>`, see
  runtime.engines.ms_onnx.driver.origin_of), so times are reported under the `.ms` node names and op
  types, summed over the ONNX nodes one `.ms` node became.
- **`.onnx` on onnxruntime**: its own node names and op types.
- **The official benchmark**: `--timeProfiling` when the tool found has it (the release tool does;
  the stand-ins do not), parsed from its per-op table; otherwise one plain line says it is not
  supported by that program. Never silently left out.

Warm-up runs are excluded: onnxruntime's profile marks each run (`model_run`), and only node events
inside the last `runs` runs are counted. Times are kernel times in milliseconds; a node's share is
its part of the summed node time (the rest of a run is onnxruntime's own overhead, reported as
`run_ms - node_ms`).
"""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np

from runtime.atomic import atomic_write_text
from runtime.errors import ToolkitError

PROFILE_FIELDS = ("name", "op_type", "calls", "total_ms", "mean_ms", "share")
KERNEL_SUFFIX = "_kernel_time"
OFFICIAL_TABLE_RE = re.compile(r"^\s*(\S+)\s+([\d.]+)\s+([\d.]+)%?\s+(\d+)\s+([\d.]+)\s*$")


class ProfileError(ToolkitError):
    """A profile cannot be taken (unsupported engine or format, unreadable profiler output)."""


@dataclass
class NodeTime:
    name: str
    op_type: str
    calls: int = 0
    total_ms: float = 0.0
    mean_ms: float = 0.0        # per profiled run
    share: float = 0.0          # of the summed node time

    def to_dict(self):
        return asdict(self)


@dataclass
class Profile:
    model: str
    engine: str
    runs: int
    threads: Optional[int]
    run_ms: float = 0.0                       # mean wall time of a profiled run (onnxruntime's own)
    node_ms: float = 0.0                      # mean summed node time per run
    nodes: List[NodeTime] = field(default_factory=list)
    note: str = ""                            # what this profile is not (e.g. unsupported by the tool)

    def op_types(self):
        """[(op type, nodes, total ms per run, share)] largest first."""
        agg = OrderedDict()
        for n in self.nodes:
            count, ms, share = agg.get(n.op_type, (0, 0.0, 0.0))
            agg[n.op_type] = (count + 1, ms + n.mean_ms, share + n.share)
        return sorted(((op, c, ms, sh) for op, (c, ms, sh) in agg.items()), key=lambda t: -t[2])

    def to_dict(self):
        d = asdict(self)
        d["op_types"] = [dict(zip(("op_type", "nodes", "mean_ms", "share"), t)) for t in self.op_types()]
        return d


def _finish(profile, per_node, runs):
    total = sum(ms for _, _, _, ms in per_node.values())
    nodes = [NodeTime(name, op, calls, ms, ms / runs, ms / total if total else 0.0)
             for name, op, calls, ms in per_node.values()]
    profile.nodes = sorted(nodes, key=lambda n: -n.total_ms)
    profile.node_ms = total / runs
    return profile


def parse_ort_profile(events, runs, name_of=None):
    """{key: (name, op_type, calls, total_ms)} and the mean run time from onnxruntime's profile JSON,
    over the last `runs` `model_run` events. `name_of(onnx_name, op)` -> (name, op_type) renames nodes."""
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if len(model_runs) < runs:
        raise ProfileError(f"the profiler recorded {len(model_runs)} runs, expected at least {runs}")
    kept = model_runs[-runs:]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in kept]
    per_node = OrderedDict()
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith(KERNEL_SUFFIX):
            continue
        ts = e.get("ts", -1)
        if not any(a <= ts <= b for a, b in windows):
            continue                         # a warm-up run
        onnx_name = e["name"][:-len(KERNEL_SUFFIX)]
        op = (e.get("args") or {}).get("op_name", "?")
        name, op_type = name_of(onnx_name, op) if name_of else (onnx_name, op)
        key = (name, op_type)
        _, _, calls, ms = per_node.get(key, (name, op_type, 0, 0.0))
        per_node[key] = (name, op_type, calls + 1, ms + e["dur"] / 1e3)
    return per_node, float(np.mean([e["dur"] for e in kept])) / 1e3


def _ms_namer(model, onnx_bytes):
    """Map an onnxruntime node name back to the `.ms` node it came from.

    onnxruntime's optimizer renames what it rewrites: a fused node is `fused <name>`, a layout-
    transformed one is named after its output plus `_nchwc`. So names are looked up among the
    translated graph's node names and output names, after stripping such decorations one `_part` at
    a time. Nodes it inserted (ReorderInput/Output) stay `(onnxruntime: name)`.
    """
    import onnx
    from runtime.engines.ms_onnx.driver import origin_of
    owner = {}
    for onnx_node in onnx.load_from_string(onnx_bytes).graph.node:
        k = origin_of(onnx_node.name)
        if k is not None:
            owner[onnx_node.name] = k
            owner.update((out, k) for out in onnx_node.output)

    def name_of(onnx_name, op):
        candidate = onnx_name[len("fused "):] if onnx_name.startswith("fused ") else onnx_name
        while candidate:
            k = owner.get(candidate)
            if k is not None and k < len(model.nodes):
                node = model.nodes[k]
                return node.name or f"node {k}", node.op_type
            candidate = candidate.rpartition("_")[0]
        return f"(onnxruntime: {onnx_name})", op
    return name_of


def profile_ort(model_path, engine_name, runs=20, warmup=3, threads=None, device="cpu"):
    """Profile `model_path` on our `.ms` engine or on onnxruntime (onnxruntime's profiler)."""
    import runtime
    from runtime.engines.ort_session import create_session, run_session
    eng = runtime.load(model_path, engine=engine_name, device=device, threads=threads)
    if engine_name == "ms-engine":
        graph, name_of = eng.onnx_bytes, _ms_namer(eng.model, eng.onnx_bytes)
    elif engine_name == "onnxruntime":
        graph, name_of = model_path, None
    else:
        raise ProfileError(f"per-node profiles are taken on ms-engine and onnxruntime, not {engine_name}")
    work = tempfile.mkdtemp(prefix="toolkit-profile-")
    try:
        session, _ = create_session(graph, device, threads, model_path, engine_name,
                                    profile_prefix=os.path.join(work, "ort"))
        feed = {s.name: np.random.default_rng(0).standard_normal(
            [d or 1 for d in s.shape]).astype(s.dtype) for s in eng.inputs()}
        names = [o.name for o in session.get_outputs()]
        for _ in range(warmup + runs):
            run_session(session, names, feed, f"{model_path}: profiling run failed")
        path = session.end_profiling()
        try:
            with open(path) as f:
                events = json.load(f)
        except (OSError, ValueError) as e:
            raise ProfileError(f"{model_path}: onnxruntime's profile {path} cannot be read: {e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_node, run_ms = parse_ort_profile(events, runs, name_of)
    profile = Profile(model_path, engine_name, runs, threads, run_ms)
    return _finish(profile, per_node, runs)


def parse_official_time_profile(text):
    """The official benchmark's --timeProfiling per-op table (`opName avg(ms) percent calledTimes
    opTotalTime`, then the same per `opType`) as {key: (name, op_type, calls, total_ms)}; op types
    are attached to names only when the tool prints them per name, so names get op type '?'."""
    per_node, section = OrderedDict(), None
    for line in text.splitlines():
        head = line.split()
        if head[:1] in (["opName"], ["opType"]):
            section = head[0]
            continue
        m = OFFICIAL_TABLE_RE.match(line)
        if m and section == "opName":
            name, calls, total = m.group(1), int(m.group(4)), float(m.group(5))
            per_node[(name, "?")] = (name, "?", calls, total)
    return per_node


def profile_official(model_path, runs=20, warmup=3, threads=1):
    """The official benchmark's own per-op profile, or a Profile whose note says it cannot give one."""
    from runtime.official.discovery import OfficialToolUnavailableError, locate
    profile = Profile(model_path, "mslite-benchmark", runs, threads)
    try:
        tool = locate("benchmark")
    except OfficialToolUnavailableError as e:
        profile.note = f"official benchmark: not found ({e})"
        return profile
    if not tool.supports("--timeProfiling"):
        profile.note = f"official benchmark: --timeProfiling not supported by {tool.path}"
        return profile
    cmd = [tool.path, f"--modelFile={os.path.abspath(model_path)}", f"--numThreads={threads or 1}",
           f"--loopCount={runs}", f"--warmUpLoopCount={warmup}", "--timeProfiling=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=tool.env(),
                          timeout=600, stdin=subprocess.DEVNULL)
    per_node = parse_official_time_profile(proc.stdout)
    if proc.returncode != 0 or not per_node:
        profile.note = (f"official benchmark --timeProfiling exited {proc.returncode} without a per-op "
                        f"table: {' | '.join(proc.stderr.strip().splitlines()[-3:])}")
        return profile
    return _finish(profile, per_node, runs)


def format_profile(profile: Profile, top=15):
    """The terminal report: the top nodes and the op types."""
    title = f"profile: {os.path.basename(profile.model)} on {profile.engine}"
    if profile.note and not profile.nodes:
        return f"{title}\n  {profile.note}"
    lines = [f"{title} ({profile.runs} runs after warm-up, threads {profile.threads or 'default'}; "
             f"node time {profile.node_ms:.3f} ms per run" +
             (f" of {profile.run_ms:.3f} ms run time" if profile.run_ms else "") + ")",
             f"  {'node':<40} {'op':<18} {'ms/run':>9} {'share':>7}"]
    for n in profile.nodes[:top]:
        lines.append(f"  {n.name[:40]:<40} {n.op_type[:18]:<18} {n.mean_ms:>9.4f} {100 * n.share:>6.1f}%")
    if len(profile.nodes) > top:
        rest = profile.nodes[top:]
        lines.append(f"  ({len(rest)} more nodes: {sum(n.mean_ms for n in rest):.4f} ms/run, "
                     f"{100 * sum(n.share for n in rest):.1f}%)")
    lines.append(f"  {'op type':<40} {'nodes':<18} {'ms/run':>9} {'share':>7}")
    for op, count, ms, share in profile.op_types():
        lines.append(f"  {op[:40]:<40} {count:<18} {ms:>9.4f} {100 * share:>6.1f}%")
    if profile.note:
        lines.append(f"  {profile.note}")
    return "\n".join(lines)


def write_profiles(path, profiles):
    """JSON (everything) or CSV (one row per node: model, engine + PROFILE_FIELDS) by suffix."""
    if path.lower().endswith(".json"):
        atomic_write_text(path, json.dumps([p.to_dict() for p in profiles], indent=2) + "\n")
        return
    if not path.lower().endswith(".csv"):
        raise ProfileError(f"{path}: profile output must end in .json or .csv")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("model", "engine") + PROFILE_FIELDS)
    for p in profiles:
        for n in p.nodes:
            w.writerow([p.model, p.engine] + [getattr(n, f) for f in PROFILE_FIELDS])
    atomic_write_text(path, buf.getvalue())
