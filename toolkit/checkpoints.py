"""Checkpoint files: atomic saving (fp32 or fp16), safe loading, and pretrained-weight matching.

Names are the ModelZoo ones (see toolkit.models). Pretrained loading tolerates the naming variants seen
in official checkpoints (dropout heads `head.2.*`, other classifier names, wrapper prefixes, optimizer
state) and refuses checkpoints whose weights do not belong to the network, listing unmatched keys.
"""
import os
import re
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from runtime.atomic import atomic_path
from runtime.errors import ToolkitError
from runtime.mindspore_import import from_mindspore, import_mindspore

MODES = ("backbone", "full")
LIST_MAX = 8
TRAINING_STATE_REASON = "training state"
HEAD_STATE_REASON = "training state of the head"
# Keys a training checkpoint carries besides the weights; never loaded, never an error.
TRAINING_STATE = re.compile(r"^(moments|accum|moment1|moment2|adam_[mv]|scale_sense|global_step|"
                            r"learning_rate|momentum|beta[12]_power|current_iterator_step|"
                            r"last_overflow_iterator_step|epoch_num|step_num|loss_scale)(\.|$)")
# Wrapper prefixes some training scripts add (TrainOneStepCell, WithLossCell, AMP O1 rewrites).
WRAPPER_PREFIXES = ("network.", "_backbone.", "net.", "model.", "backbone.")
# Classifier names in ModelZoo variants: head.1 (default), head.2 (with dropout), and common others.
HEAD_ALIASES = re.compile(r"^(?:head\.(?:head\.)?(?:\d+|dense|fc|classifier)|classifier(?:\.\d+)?|fc|"
                          r"dense|head)\.(weight|bias)$")


class CheckpointError(ToolkitError):
    """A checkpoint file is unreadable or does not fit the network."""


@dataclass
class LoadReport:
    loaded: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)   # checkpoint key, reason
    missing: List[str] = field(default_factory=list)               # network names left as initialised

    def lines(self):
        """The report as printed: one line per dropped head key, worded as MindSpore's transfer-learning
        tutorial prints them (`Delete parameter from checkpoint:  end_point.weight`, also for the head's
        `moments.*`), and the rest of the optimizer state summarised by kind."""
        out = [f"loaded {len(self.loaded)} tensors"]
        kinds = {}
        for key, reason in self.skipped:
            if reason == TRAINING_STATE_REASON:
                kind = TRAINING_STATE.match(key).group(1)
                kinds[kind] = kinds.get(kind, 0) + 1 if key != kind else 0
            else:
                out.append(f"Delete parameter from checkpoint:  {key}  ({reason})")
        if kinds:
            out.append(f"skipped {sum(max(n, 1) for n in kinds.values())} optimizer-state key(s): "
                       + ", ".join(f"{k}.* ({n})" if n else k for k, n in sorted(kinds.items())))
        if self.missing:
            out.append(f"{len(self.missing)} network parameter(s) not in the checkpoint, left as "
                       f"initialised: " + ", ".join(self.missing[:LIST_MAX])
                       + (" ..." if len(self.missing) > LIST_MAX else ""))
        return out


def params_of(net):
    """{name: ndarray} of every parameter of a Cell, including BatchNorm statistics."""
    return {p.name: p.asnumpy() for p in net.get_parameters()}


def save_params(params, path, fp16=False):
    """Write a MindSpore checkpoint atomically; fp16=True stores float tensors as float16 (half size)."""
    ms = import_mindspore()
    if not isinstance(params, dict):
        params = params_of(params)
    items = []
    for name, value in params.items():
        arr = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
        if fp16 and arr.dtype in (np.float32, np.float64):
            arr = arr.astype(np.float16)
        items.append({"name": name, "data": ms.Tensor(arr)})
    with atomic_path(path) as tmp:
        target = tmp + ".ckpt"            # MindSpore appends .ckpt to names without it
        try:
            ms.save_checkpoint(items, target)
            os.replace(target, tmp)
        finally:
            if os.path.exists(target):
                os.unlink(target)
    return os.fspath(path)


def load_params(path):
    """{name: ndarray} from a checkpoint file; CheckpointError naming the file when unreadable."""
    ms = import_mindspore()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        params = ms.load_checkpoint(path)
    except (ValueError, RuntimeError, TypeError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable MindSpore checkpoint "
                              f"({str(e).splitlines()[0][:200]})") from None
    if not params:
        raise CheckpointError(f"{path}: checkpoint holds no tensors")
    return {k: v.asnumpy() for k, v in params.items()}


def _as_params(ckpt):
    return (dict(ckpt), "<params>") if isinstance(ckpt, dict) else (load_params(ckpt), os.fspath(ckpt))


def assign(net, params, names=None):
    """Copy arrays into the network's parameters (cast to each parameter's dtype)."""
    Tensor = from_mindspore("mindspore", "Tensor")
    by_name = {p.name: p for p in net.get_parameters()}
    for name in (names if names is not None else params):
        p = by_name[name]
        dtype = p.asnumpy().dtype          # (mindspore.dtype_to_nptype is deprecated and noisy)
        p.set_data(Tensor(np.asarray(params[name]).astype(dtype, copy=False)))


def load_exact(net, ckpt):
    """Load a checkpoint that must match the network exactly (names and shapes), e.g. best.ckpt."""
    params, source = _as_params(ckpt)
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    bad = [f"{k} {tuple(np.shape(params[k]))} vs {shapes[k]}" for k in shapes
           if k in params and tuple(np.shape(params[k])) != shapes[k]]
    if missing or extra or bad:
        raise CheckpointError(f"{source}: does not match the network: "
                              + "; ".join(f"{what}: {', '.join(v[:LIST_MAX])}" for what, v in
                                          (("missing", missing), ("unexpected", extra),
                                           ("shape mismatch", bad)) if v))
    assign(net, params, list(shapes))
    return sorted(shapes)


def _canonical(key, net_names):
    """Map a checkpoint key onto a network name, or None."""
    if key in net_names:
        return key
    for prefix in WRAPPER_PREFIXES:
        if key.startswith(prefix) and key[len(prefix):] in net_names:
            return key[len(prefix):]
    return None


def _head_alias(key, net_head):
    """The network's head parameter a differently named classifier key stands for, or None."""
    alias = HEAD_ALIASES.match(key[len("network."):] if key.startswith("network.") else key)
    return net_head.get(alias.group(1)) if alias else None


def load_pretrained(net, ckpt, mode="backbone", head_prefix="head."):
    """Load pretrained weights into `net` and say exactly what was and was not loaded.

    mode "backbone": only backbone weights; "full": the head too when its class count matches
    (otherwise it is skipped and reported). Every backbone parameter must be present with the right
    shape, and no unknown weight may remain, or CheckpointError lists the offending keys.
    """
    if mode not in MODES:
        raise CheckpointError(f"unknown pretrained mode {mode!r}; use {' or '.join(MODES)}")
    params, source = _as_params(ckpt)
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    net_head = {n.rsplit(".", 1)[1]: n for n in shapes if n.startswith(head_prefix)}
    report, matched, unknown, bad_shape, bad_names = LoadReport(), {}, [], [], set()
    for key in params:                 # checkpoint order, so the report reads like the file
        arr = params[key]
        state = TRAINING_STATE.match(key)
        if state:
            rest = key[state.end():]
            of_head = rest.startswith(head_prefix) or _head_alias(rest, net_head)
            report.skipped.append((key, HEAD_STATE_REASON if of_head else TRAINING_STATE_REASON))
            continue
        name = _canonical(key, shapes)
        if name is None or name.startswith(head_prefix):
            head_name = name or _head_alias(key, net_head)
            if head_name:
                if mode == "backbone":
                    report.skipped.append((key, "head not loaded in backbone mode"))
                elif tuple(np.shape(arr)) != shapes[head_name]:
                    report.skipped.append((key, f"class count differs: checkpoint {tuple(np.shape(arr))}"
                                                f", network {shapes[head_name]}"))
                else:
                    matched[head_name] = arr
                continue
            unknown.append(key)
            continue
        if tuple(np.shape(arr)) != shapes[name]:
            bad_shape.append(f"{key} {tuple(np.shape(arr))} vs {shapes[name]}")
            bad_names.add(name)
            continue
        matched[name] = arr
    missing_backbone = sorted(n for n in shapes if not n.startswith(head_prefix)
                              and n not in matched and n not in bad_names)
    problems = [(what, v) for what, v in (("unmatched checkpoint keys", unknown),
                                          ("backbone parameters missing", missing_backbone),
                                          ("shape mismatches", bad_shape)) if v]
    if problems:
        raise CheckpointError(
            f"{source}: does not fit this network ({type(net).__name__}); "
            + "; ".join(f"{len(v)} {what}, e.g. {', '.join(v[:LIST_MAX])}" for what, v in problems))
    assign(net, matched)
    report.loaded = sorted(matched)
    report.missing = sorted(n for n in shapes if n not in matched)
    return report
