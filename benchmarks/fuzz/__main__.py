"""Command line of the fuzz campaign (documented in benchmarks/README.md, section "Fuzzing").

    python -m benchmarks.fuzz --target ms --seed 1 --count 2000 --jobs 2
    python -m benchmarks.fuzz --target all --seed 1 --count 300 --report fuzz_report.json
    python -m benchmarks.fuzz --replay ms:1:123
"""
import argparse
import os
import sys

# One BLAS/OpenMP thread per case, set before numpy is imported (the dispatcher forks).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def main(argv=None):
    from .harness import DEFAULT_MEM_MB, DEFAULT_RSS_MB, DEFAULT_TIMEOUT, Limits
    from .targets import TARGETS
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="all",
                   help=f"comma-separated targets or 'all' ({', '.join(TARGETS)})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=300, help="cases per target")
    p.add_argument("--start", type=int, default=0, help="index of the first case")
    p.add_argument("--jobs", type=int, default=1, help="cases run at the same time")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="wall seconds per case")
    p.add_argument("--mem-mb", type=int, default=DEFAULT_MEM_MB, help="address space per case above its size at fork")
    p.add_argument("--rss-mb", type=int, default=DEFAULT_RSS_MB, help="peak RSS growth allowed per case")
    p.add_argument("--work", default=None, help="corpus cache and kept failing cases "
                                                "(default $FUZZ_WORK or ~/.cache/ms-edge-toolkit-fuzz)")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.add_argument("--replay", metavar="CASE_ID", help="run one case (TARGET:SEED:INDEX) again and show it")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    limits = Limits(args.mem_mb, args.rss_mb, args.timeout)
    from . import campaign
    if args.replay:
        res = campaign.replay(args.replay, limits, args.work)
        return 0 if res.outcome in ("ran", "typed") else 1
    names = list(TARGETS) if args.target == "all" else args.target.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    doc = campaign.run_campaign(names, args.seed, args.count, args.jobs, limits, args.work, args.report,
                                args.start, progress=not args.quiet)
    print(f"fuzz campaign: seed {args.seed}, {args.count} cases per target (indices {args.start}.."
          f"{args.start + args.count - 1}), {args.jobs} job(s), {doc['seconds']:.0f} s")
    for line in doc["table"]:
        print(line)
    seeds = campaign.format_seed_check(doc["targets"])
    if seeds:
        print("seeds that do not run as they are (before any mutation):")
        for line in seeds:
            print(line)
    sig = campaign.format_signatures(doc["targets"])
    if sig:
        print("failures (outcome, exception, innermost project frame; replay with --replay CASE_ID):")
        for line in sig:
            print(line)
    if args.report:
        print(f"report: {args.report}")
    bad = sum(v for s in doc["targets"] for k, v in s["outcomes"].items() if k not in ("ran", "typed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
