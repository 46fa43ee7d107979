"""Child process of a subprocess row: `python -m toolkit.bench.worker JOB.json RESULT.json`.

Reads the row and settings, measures the row in this fresh process and writes the result row as JSON.
"""
import json
import sys
import time


def main(argv):
    job_path, result_path = argv
    from runtime.atomic import atomic_write_text

    from .measure import BenchSettings, run_row
    from .plan import RowSpec
    with open(job_path) as f:
        job = json.load(f)
    t0 = time.perf_counter()
    row = run_row(RowSpec.from_dict(job["spec"]), BenchSettings.from_dict(job["settings"]),
                  isolation="subprocess")
    row["_row_s"] = time.perf_counter() - t0
    atomic_write_text(result_path, json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
