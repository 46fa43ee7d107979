"""A campaign: build (or reuse) the corpus, run `count` cases per target, print the table, write
the JSON report. The same seed and count give the same cases (see harness.case_rng)."""
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter, OrderedDict

from . import corpus as corpus_mod
from .harness import ACCEPTED, HARNESS_ERROR, OUTCOMES, Limits, parse_case_id, run_cases, thread_count
from .targets import TARGETS, preload

CORPUS_TIMEOUT = 900


def default_work():
    return os.environ.get("FUZZ_WORK") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ms-edge-toolkit-fuzz")


def ensure_corpus(work, log=print):
    """The corpus folder for this code and these library versions, built in a child if missing."""
    key = corpus_mod.cache_key()
    folder = os.path.join(work, "corpus-" + key)
    manifest_path = os.path.join(folder, "MANIFEST.json")
    if not os.path.isfile(manifest_path):
        os.makedirs(work, exist_ok=True)
        tmp = folder + f".tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        log(f"building the seed corpus in {folder} (once per code/library version) ...")
        t0 = time.monotonic()
        code = ("import sys; from benchmarks.fuzz import corpus; corpus.build(sys.argv[1])")
        with open(os.path.join(tmp, "build.log"), "w") as out:
            proc = subprocess.run([sys.executable, "-c", code, tmp], stdout=out, stderr=subprocess.STDOUT,
                                  timeout=CORPUS_TIMEOUT, cwd=corpus_mod.ROOT,
                                  env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                      [corpus_mod.ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])))
        if proc.returncode != 0:
            with open(os.path.join(tmp, "build.log")) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"building the corpus failed (exit {proc.returncode}):\n{tail}")
        os.replace(tmp, folder) if not os.path.exists(folder) else shutil.rmtree(tmp)
        log(f"corpus built in {time.monotonic() - t0:.0f} s")
    with open(manifest_path) as f:
        return folder, json.load(f)


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=corpus_mod.ROOT, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _unnamed(typed, limit=10):
    """Typed errors whose message does not name the input file: signature -> count and example."""
    out = OrderedDict()
    for r in typed:
        if r.names_file:
            continue
        key = f"{r.error_type} at {r.project_frame or r.frame}"
        entry = out.setdefault(key, {"count": 0, "example": r.case, "message": r.message[:200]})
        entry["count"] += 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["count"])[:limit])


def summarize(name, results, limits):
    counts = Counter(r.outcome for r in results)
    worst = max(results, key=lambda r: r.rss_growth_kb, default=None)
    slowest = max(results, key=lambda r: r.seconds, default=None)
    typed = [r for r in results if r.outcome == "typed"]
    signatures = OrderedDict()
    for r in results:
        if r.outcome in ACCEPTED:
            continue
        sig = (r.outcome, r.error_type, r.project_frame or r.frame, r.stage)
        entry = signatures.setdefault(sig, {"outcome": r.outcome, "error_type": r.error_type,
                                            "where": r.project_frame or r.frame, "frame": r.frame,
                                            "stage": r.stage, "count": 0, "examples": [],
                                            "message": r.message})
        entry["count"] += 1
        if len(entry["examples"]) < 5:
            entry["examples"].append(r.case)
    return {
        "target": name,
        "cases": len(results),
        "outcomes": {k: counts.get(k, 0) for k in OUTCOMES + (HARNESS_ERROR,)},
        "worst_peak": None if worst is None else {
            "case": worst.case, "peak_rss_mib": round(worst.peak_rss_kb / 1024, 1),
            "growth_mib": round(worst.rss_growth_kb / 1024, 1), "outcome": worst.outcome},
        "slowest": None if slowest is None else {"case": slowest.case, "seconds": round(slowest.seconds, 2)},
        "typed_naming_file": [sum(1 for r in typed if r.names_file), len(typed)],
        "typed_not_naming_file": _unnamed(typed),
        "stages_of_typed": dict(Counter(r.stage for r in typed)),
        "failure_signatures": sorted(signatures.values(), key=lambda e: -e["count"]),
        "failures": [r.to_dict() for r in results if r.outcome not in ACCEPTED],
    }


def format_table(summaries, limits):
    head = ["target", "cases"] + list(OUTCOMES) + [HARNESS_ERROR, "worst peak RSS MiB (growth)", "worst case",
                                                     "slowest s"]
    rows = []
    for s in summaries:
        w = s["worst_peak"] or {}
        rows.append([s["target"], str(s["cases"])] + [str(s["outcomes"][k]) for k in OUTCOMES + (HARNESS_ERROR,)]
                    + [f"{w.get('peak_rss_mib', 0):.0f} (+{w.get('growth_mib', 0):.0f})", w.get("case", ""),
                       f"{(s['slowest'] or {}).get('seconds', 0):.1f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    out.append(f"budget per case: address space +{limits.mem_mb} MiB (RLIMIT_AS), peak RSS growth "
               f"<= {limits.rss_mb} MiB, wall time <= {limits.timeout:.0f} s")
    return out


def format_seed_check(summaries):
    out = []
    for s in summaries:
        for name, r in s.get("seeds_as_is", {}).items():
            if r["outcome"] != "ran":
                out.append(f"  {s['target']} seed {name}: {r['outcome']} {r['error_type']} at {r['where']} "
                           f"(stage {r['stage']}): {r['message'][:160]}")
    return out


def format_signatures(summaries, limit=12):
    out = []
    for s in summaries:
        for e in s["failure_signatures"][:limit]:
            out.append(f"  {s['target']}: {e['count']} x {e['outcome']} {e['error_type']} at {e['where']} "
                       f"(stage {e['stage']}); e.g. {', '.join(e['examples'][:3])}")
            out.append(f"      {e['message'][:240]}")
        more = len(s["failure_signatures"]) - limit
        if more > 0:
            out.append(f"  {s['target']}: ... and {more} more signature(s) in the JSON report")
    return out


class _SeedAsIs:
    """One seed consumed unmutated: tells "this seed never runs" apart from what mutations found."""

    def __init__(self, target, seed_name):
        self.target, self.seed_name, self.name = target, seed_name, target.name + "-seed"

    def mutate(self, rng, corpus):
        return os.path.splitext(self.seed_name)[1], corpus.seeds[self.seed_name], [f"seed {self.seed_name} as is"]

    def variant(self, rng):
        return 0, None

    def consume(self, path, case_dir, stage, variant=0):
        return self.target.consume(path, case_dir, stage, variant)


def run_seeds(target, corpus, root, limits):
    """{seed name: outcome and error} for every seed consumed as it is (default converter options)."""
    out = {}
    for k, name in enumerate(corpus.names(target.suffixes)):
        (res,) = run_cases(_SeedAsIs(target, name), corpus, 0, [k], root, limits, 1)
        out[name] = {"outcome": res.outcome, "stage": res.stage, "error_type": res.error_type,
                     "where": res.project_frame or res.frame, "message": res.message[:200]}
    return out


def run_campaign(target_names, seed, count, jobs=1, limits=None, work=None, report=None, start=0,
                 progress=True, echo=print):
    if "mindspore" in sys.modules:
        # Each case is a fork of this process: a fork of a process whose MindSpore thread pools
        # already run can deadlock in the child. Run the command (`python -m benchmarks.fuzz`) instead.
        raise RuntimeError("run the fuzz campaign from a process that has not imported MindSpore "
                           "(python -m benchmarks.fuzz ...)")
    limits = limits or Limits()
    work = work or default_work()
    folder, manifest = ensure_corpus(work, echo)
    preload()
    threads = thread_count()
    cases_root = os.path.join(work, "cases", f"seed{seed}")
    summaries, t0 = [], time.monotonic()
    for name in target_names:
        target = TARGETS[name]
        corpus = corpus_mod.Corpus(folder, name, manifest)
        target.corpus = corpus
        done = [0]

        def tick(res, _name=name, _done=done):
            _done[0] += 1
            if progress and (_done[0] % 50 == 0 or res.outcome not in ACCEPTED):
                note = "" if res.outcome in ACCEPTED else f" <- {res.case} {res.outcome} {res.error_type}"
                echo(f"  {_name}: {_done[0]}/{count}{note}")
        t = time.monotonic()
        results = run_cases(target, corpus, seed, range(start, start + count), os.path.join(cases_root, name),
                            limits, jobs, on_result=tick)
        s = summarize(name, results, limits)
        s["seconds"] = round(time.monotonic() - t, 1)
        s["seeds"] = corpus.hashes
        s["seeds_as_is"] = run_seeds(target, corpus, os.path.join(cases_root, name + "-seeds"), limits)
        summaries.append(s)
    lines = format_table(summaries, limits)
    doc = {
        "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.fuzz"] + sys.argv[1:])
        if sys.argv and sys.argv[0].endswith("__main__.py") else None,
        "settings": {"targets": list(target_names), "seed": seed, "count": count, "start": start, "jobs": jobs,
                     "mem_mb": limits.mem_mb, "rss_mb": limits.rss_mb, "timeout_s": limits.timeout},
        "environment": {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "git_commit": _git_commit(),
                        "versions": corpus_mod._versions(), "dispatcher_threads_at_fork": threads},
        "corpus": {"folder": folder, "log": manifest.get("log", [])},
        "seconds": round(time.monotonic() - t0, 1),
        "table": lines,
        "targets": summaries,
    }
    if report:
        os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
        tmp = report + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2, default=str)
        os.replace(tmp, report)
    return doc


def replay(case, limits=None, work=None, echo=print):
    """Run one case again (same seed, index and corpus); keep its input and print its log."""
    limits = limits or Limits()
    name, seed, index = parse_case_id(case)
    work = work or default_work()
    folder, manifest = ensure_corpus(work, echo)
    preload()
    target = TARGETS[name]
    corpus = corpus_mod.Corpus(folder, name, manifest)
    target.corpus = corpus
    (res,) = run_cases(target, corpus, seed, [index], os.path.join(work, "replay"), limits, 1, keep_all=True)
    echo(f"{res.case}: {res.outcome} {res.error_type} (stage {res.stage}, {res.seconds:.2f} s, "
         f"peak RSS {res.peak_rss_kb / 1024:.0f} MiB, +{res.rss_growth_kb / 1024:.0f} MiB)")
    echo("mutation: " + "; ".join(res.mutation))
    if res.message:
        echo(f"message: {res.message}")
    echo(f"input and log kept in {res.kept}")
    log = os.path.join(res.kept, "log.txt")
    if os.path.isfile(log):
        with open(log, errors="replace") as f:
            echo(f.read()[-6000:])
    return res
