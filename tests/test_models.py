"""Model registry and MobileNetV2: parameter names must equal the official ModelZoo checkpoints'."""
import hashlib

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from toolkit.models import ARCHS, build  # noqa: E402


def _signature(net):
    return "\n".join(f"{p.name}:{tuple(p.shape)}" for p in net.get_parameters())


@pytest.fixture(scope="module")
def mnv2_full():
    return build("mobilenet_v2", 1000, width=1.0)


def test_width_1_names_and_shapes_are_the_official_ones(mnv2_full):
    params = list(mnv2_full.get_parameters())
    shapes = {p.name: tuple(p.shape) for p in params}
    assert sum(p.size for p in mnv2_full.trainable_params()) == 3_504_872
    assert len(params) == 262                          # 52 convs, 52 BatchNorms x 4, head weight + bias
    assert params[0].name == "features.0.features.0.weight"
    assert [p.name for p in params[-2:]] == ["head.1.weight", "head.1.bias"]
    assert shapes["features.0.features.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.0.features.1.moving_variance"] == (32,)
    assert shapes["features.1.conv.0.features.0.weight"] == (32, 1, 3, 3)       # depthwise
    assert shapes["features.2.conv.3.gamma"] == (24,)                            # projection BN
    assert shapes["features.18.features.0.weight"] == (1280, 320, 1, 1)
    assert shapes["head.1.weight"] == (1000, 1280)
    # The complete ordered (name, shape) list, pinned.
    digest = hashlib.sha256(_signature(mnv2_full).encode()).hexdigest()
    assert digest == "a41863c7b835a62f27e1445e625aae999ce84e2cc5b68084759167bbd4ad63f0"


def test_fused_variant_keeps_conv_names_adds_biases_and_has_no_batchnorm():
    from toolkit.fuse import count_batchnorm
    plain, fused = build("mobilenet_v2", 10, width=0.35), build("mobilenet_v2", 10, width=0.35, fused=True)
    plain_names = {p.name for p in plain.get_parameters()}
    fused_names = {p.name for p in fused.get_parameters()}
    convs = {n for n in plain_names if n.endswith(".weight") and not n.startswith("head.")}
    assert fused_names - {n[:-len("weight")] + "bias" for n in convs} == convs | {"head.1.weight",
                                                                                  "head.1.bias"}
    assert count_batchnorm(fused) == 0 and count_batchnorm(plain) == 52


def test_dropout_head_is_named_like_the_modelzoo_dropout_variant():
    net = build("mobilenet_v2", 4, width=0.35, dropout=0.2)
    assert [p.name for p in net.get_parameters()][-2:] == ["head.2.weight", "head.2.bias"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_registered_arch_builds_and_classifies(arch):
    net = build(arch, 3, width=0.35)
    net.set_train(False)
    out = net(ms.Tensor(np.zeros((2, 3, 32, 32), np.float32)))
    assert out.shape == (2, 3)
    assert net.backbone.out_channels == ARCHS[arch].feature_dim(0.35)
    assert all(p.name.startswith(ARCHS[arch].head_prefix) for p in net.head.get_parameters())


def test_unknown_arch_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        build("resnet9000", 3)
