"""The resume point of a run: weights plus optimizer state, epoch, history and best accuracy.

Each completed epoch writes `checkpoints/state_<epoch>.ckpt` (every parameter of the training cell:
network, momentum buffers, global step) and then `state.json` naming it. `state.json` is replaced
atomically and only after its checkpoint is complete, so a run killed at any instant resumes from the
last completed epoch. config.json is written before anything else (loop._claimed), so a run killed
before its first epoch completed (during the scan, the feature extraction or epoch 1) resumes too,
from the first epoch; the temporaries such a kill leaves are removed by the next run
(toolkit.leftovers). Random state is not saved because every source is re-seeded from (seed, epoch)
at the start of each epoch (setup.seed_everything) and data order is a function of (seed, epoch).
"""
import csv
import glob
import io
import json
import os

from runtime.atomic import atomic_write_text
from runtime.errors import ToolkitError
from runtime.jsonfile import read_json

HISTORY_FIELDS = ("epoch", "train_loss", "val_acc", "lr", "epoch_time_s")
STATE_VERSION = 1


class ResumeError(ToolkitError):
    """There is nothing to resume, or the saved state is damaged."""


def _state_ckpt(run, epoch):
    return os.path.join(run.checkpoints_dir, f"state_{epoch:04d}.ckpt")


def save_state(run, cell, epoch, history, best, seed):
    from toolkit.checkpoints import save_params
    path = save_params(cell, _state_ckpt(run, epoch))
    state = {"version": STATE_VERSION, "epoch": epoch, "state_ckpt": os.path.basename(path),
             "history": history, "best": best, "seed": seed,
             "rng": "re-seeded from (seed, epoch) at every epoch start"}
    atomic_write_text(run.state_json, json.dumps(state, indent=2) + "\n")
    for old in glob.glob(os.path.join(run.checkpoints_dir, "state_*.ckpt")):
        if os.path.basename(old) != state["state_ckpt"]:
            os.unlink(old)


def load_state(run):
    state = read_json(run.state_json, ResumeError, missing="not found; no completed epoch to resume",
                      what="the resume state")
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or \
            not isinstance(state.get("epoch"), int) or not isinstance(state.get("history"), list):
        raise ResumeError(f"{run.state_json}: not a resume point written by this toolkit")
    state["path"] = os.path.join(run.checkpoints_dir, os.path.basename(str(state.get("state_ckpt"))))
    return state


def restore(cell, state):
    """Load the saved training-cell parameters (exact names and shapes) into `cell`."""
    from toolkit.checkpoints import CheckpointError, load_exact
    try:
        load_exact(cell, state["path"])
    except CheckpointError as e:
        raise ResumeError(f"cannot resume: {e}") from None


def write_history(run, history):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    atomic_write_text(run.history_csv, buf.getvalue())


def save_periodic(run, net, epoch, keep_max):
    """checkpoints/epoch_<n>.ckpt, keeping the newest `keep_max` (0 keeps none)."""
    from toolkit.checkpoints import save_params
    if keep_max > 0:
        save_params(net, run.periodic_ckpt(epoch))
    kept = sorted(glob.glob(os.path.join(run.checkpoints_dir, "epoch_*.ckpt")))
    for old in kept[:max(len(kept) - keep_max, 0)]:
        os.unlink(old)
