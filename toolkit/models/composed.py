"""The Cell every architecture's builder returns: backbone -> head, names without a prefix.

With `auto_prefix=False` the parameter names are those of the backbone's and head's own attributes,
which is what makes the ModelZoo checkpoints (`features.*`/`head.*`, `conv1.*`/`end_point.*`) load as
they are, while feature extraction and head-only training can still reach `.backbone` and `.head`.
"""
from runtime.mindspore_import import from_mindspore

nn = from_mindspore("mindspore", "nn")


class BackboneHeadNet(nn.Cell):
    """backbone -> head, without adding a prefix to parameter names."""

    def __init__(self, backbone, head):
        super().__init__(auto_prefix=False)
        self.backbone = backbone
        self.head = head

    def construct(self, x):
        return self.head(self.backbone(x))
