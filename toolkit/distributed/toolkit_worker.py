"""The script msrun starts in every process of a `toolkit ... --workers N` run.

msrun launches `python SCRIPT ARGS`; this script runs the toolkit CLI with ARGS (e.g. `train-head DATA
--workers 2 ...`). The command sees `inside_worker()` and joins the cluster instead of launching again.
"""
import os
import sys

if __name__ == "__main__":
    # `python path/to/this.py` puts this folder first on sys.path, where its sibling modules would shadow
    # top-level names; the checkout root goes there instead, so `toolkit` imports even when not installed.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path[0] = os.path.dirname(os.path.dirname(here))
    from toolkit.cli import main
    main(args=sys.argv[1:], prog_name="toolkit")
