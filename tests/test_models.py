"""Model registry, MobileNetV2 and ResNet-50: parameter names must equal the official ModelZoo
checkpoints'; every registered architecture builds, classifies and has a fused variant."""
import hashlib

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from toolkit.models import ARCHS, build  # noqa: E402


def _signature(net):
    return "\n".join(f"{p.name}:{tuple(p.shape)}" for p in net.get_parameters())


def _listing(net, trainable, count, last):
    """{name: shape} after checking the totals and the last (head) names; the complete ordered
    (name, shape) list is pinned by each test's digest."""
    params = list(net.get_parameters())
    assert sum(p.size for p in net.trainable_params()) == trainable
    assert len(params) == count and [p.name for p in params[-2:]] == last
    return params, {p.name: tuple(p.shape) for p in params}


@pytest.fixture(scope="module")
def mnv2_full():
    return build("mobilenet_v2", 1000, width=1.0)


def test_width_1_names_and_shapes_are_the_official_ones(mnv2_full):
    # 52 convs, 52 BatchNorms x 4, head weight + bias
    params, shapes = _listing(mnv2_full, 3_504_872, 262, ["head.1.weight", "head.1.bias"])
    assert params[0].name == "features.0.features.0.weight"
    assert shapes["features.0.features.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.0.features.1.moving_variance"] == (32,)
    assert shapes["features.1.conv.0.features.0.weight"] == (32, 1, 3, 3)       # depthwise
    assert shapes["features.2.conv.3.gamma"] == (24,)                            # projection BN
    assert shapes["features.18.features.0.weight"] == (1280, 320, 1, 1)
    assert shapes["head.1.weight"] == (1000, 1280)
    digest = hashlib.sha256(_signature(mnv2_full).encode()).hexdigest()
    assert digest == "a41863c7b835a62f27e1445e625aae999ce84e2cc5b68084759167bbd4ad63f0"


@pytest.fixture(scope="module")
def resnet50_full():
    return build("resnet50", 1000, width=1.0)


def test_resnet50_names_and_shapes_are_the_modelzoo_ones(resnet50_full):
    """official/cv/resnet/src/resnet.py: conv1/bn1 stem, layer1..4 of ResidualBlock, end_point."""
    # 53 convs, 53 BatchNorms x 4, end_point weight + bias
    params, shapes = _listing(resnet50_full, 25_557_032, 267, ["end_point.weight", "end_point.bias"])
    assert [p.name for p in params[:6]] == ["conv1.weight", "bn1.moving_mean", "bn1.moving_variance",
                                            "bn1.gamma", "bn1.beta", "layer1.0.conv1.weight"]
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.down_sample_layer.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.down_sample_layer.1.gamma"] == (256,)
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)         # stride 2 on the 3x3 (v1.5)
    assert shapes["layer4.2.bn3.moving_variance"] == (2048,)
    assert shapes["end_point.weight"] == (1000, 2048)
    assert {n.split(".")[0] for n in shapes} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4",
                                                 "end_point"}
    assert sorted({int(n.split(".")[1]) for n in shapes if n.startswith("layer3.")}) == list(range(6))
    assert not any("layer1.1.down_sample_layer" in n for n in shapes)   # identity shortcut
    digest = hashlib.sha256(_signature(resnet50_full).encode()).hexdigest()
    assert digest == "5b3e1b59bfa656c02f8e73021c67f6111527dbfb89b60efdcb876e26a3f9734a"


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_fused_variant_keeps_conv_names_adds_biases_and_has_no_batchnorm(arch):
    from toolkit.fuse import count_batchnorm, fuse_bn_params
    width, prefix = ARCHS[arch].test_width, ARCHS[arch].head_prefix
    plain, fused = build(arch, 10, width=width), build(arch, 10, width=width, fused=True)
    plain_names = {p.name for p in plain.get_parameters()}
    fused_names = {p.name for p in fused.get_parameters()}
    convs = {n for n in plain_names if n.endswith(".weight") and not n.startswith(prefix)}
    head = {n for n in plain_names if n.startswith(prefix)}
    assert fused_names - {n[:-len("weight")] + "bias" for n in convs} == convs | head
    assert count_batchnorm(fused) == 0 and count_batchnorm(plain) == len(convs)
    assert set(fuse_bn_params(plain)) == fused_names


def test_dropout_head_is_named_like_the_modelzoo_dropout_variant():
    net = build("mobilenet_v2", 4, width=0.35, dropout=0.2)
    assert [p.name for p in net.get_parameters()][-2:] == ["head.2.weight", "head.2.bias"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_registered_arch_builds_and_classifies(arch):
    net = build(arch, 3, width=0.35)        # also a width other than the registry's test width
    net.set_train(False)
    out = net(ms.Tensor(np.zeros((2, 3, 32, 32), np.float32)))
    assert out.shape == (2, 3)
    assert net.backbone.out_channels == ARCHS[arch].feature_dim(0.35)
    assert all(p.name.startswith(ARCHS[arch].head_prefix) for p in net.head.get_parameters())


def test_unknown_arch_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        build("resnet9000", 3)
