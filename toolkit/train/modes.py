"""The four training modes as data: what is loaded, what is frozen, where the inputs come from.

Adding a mode is one `register` call; the loop reads only these fields.
"""
from dataclasses import dataclass

from runtime.registry import registrar


@dataclass(frozen=True)
class ModeSpec:
    name: str
    pretrained: str            # "required", "optional" or "forbidden"
    load: str                  # load_pretrained mode: "backbone" or "full"
    freeze_backbone: bool      # backbone weights and BN statistics stay as loaded
    cached_features: bool      # train the Dense head on cached pooled features
    help: str


MODES = {}


def register(spec):
    return registrar(MODES, "training mode")(spec.name)(spec)


register(ModeSpec("head", "optional", "backbone", True, True,
                  "frozen backbone; pooled features extracted once (eval transform) and cached; "
                  "the Dense head trains on the cached vectors"))
register(ModeSpec("incremental", "required", "backbone", True, False,
                  "frozen pretrained backbone in the loop, so augmentation applies; head trains"))
register(ModeSpec("finetune", "required", "full", False, False,
                  "whole network trains from the pretrained weights (a head of another class "
                  "count is skipped)"))
register(ModeSpec("scratch", "forbidden", "full", False, False,
                  "whole network trains from random initialisation"))


def check_pretrained(spec, pretrained):
    """None when the combination is valid, else the reason it is not."""
    if spec.pretrained == "required" and not pretrained:
        return f"--mode {spec.name} needs --pretrained CKPT"
    if spec.pretrained == "forbidden" and pretrained:
        return f"--mode {spec.name} starts from random weights; drop --pretrained or use finetune"
    return None
