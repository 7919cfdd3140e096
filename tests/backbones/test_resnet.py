"""The detectron2-layout ResNet used by the old CAT-Seg for guidance."""

from __future__ import annotations

import torch

from ovparts.backbones.resnet import FrozenBatchNorm2d, ResNet, ResNetConfig, renormalize


def test_resnet101_layout_and_shapes():
    cfg = ResNetConfig()
    assert cfg.out_channels == (256, 512, 1024)
    model = ResNet(ResNetConfig(blocks=(1, 2, 1), stem_width=8, width=8))
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4)]
    keys = set(model.state_dict())
    assert {
        "stem.weight",
        "stem.norm.running_var",
        "res2.0.shortcut.weight",
        "res3.1.conv3.norm.bias",
    } <= keys
    assert "res3.1.shortcut.weight" not in keys
    # batch norm is frozen: only convolution weights are parameters
    assert all(n.endswith("weight") and ".norm." not in n for n, _ in model.named_parameters())


def test_frozen_batch_norm_formula():
    bn = FrozenBatchNorm2d(3)
    bn.weight.fill_(2.0)
    bn.bias.fill_(1.0)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(4.0 - 1e-5)
    x = torch.randn(1, 3, 2, 2)
    assert torch.allclose(bn(x), (x - 0.5) / 2 * 2 + 1, atol=1e-5)


def test_renormalize_round_trip():
    raw = torch.rand(1, 3, 4, 4) * 255
    a = (raw - torch.tensor([1.0, 2, 3])[:, None, None]) / torch.tensor([4.0, 5, 6])[:, None, None]
    b = renormalize(a, (1, 2, 3), (4, 5, 6), (7, 8, 9), (2, 2, 2))
    assert torch.allclose(b, (raw - torch.tensor([7.0, 8, 9])[:, None, None]) / 2, atol=1e-4)
