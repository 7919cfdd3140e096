"""ResNet with frozen batch norm, laid out like detectron2's, for the old CAT-Seg's appearance guidance.

The old (arXiv) CAT-Seg (B) feeds the 384 px image to a detectron2 ResNet-101 ("basic" stem, stride in the
3x3 conv, FrozenBN) and uses its res4 / res3 / res2 outputs (strides 16 / 8 / 4) as guidance for the
aggregator and the decoder. Only the stages up to res4 exist. Pure PyTorch, no torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ImageNet statistics in 0-255 units, detectron2's PIXEL_MEAN / PIXEL_STD for this backbone.
IMAGENET_MEAN = (123.675, 116.280, 103.530)
IMAGENET_STD = (58.395, 57.120, 57.375)


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms, all buffers (never trained, as in detectron2)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


class ConvNorm(nn.Module):
    """Bias-free convolution followed by frozen batch norm (detectron2's ``Conv2d(norm=...)``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.norm = FrozenBatchNorm2d(cout)
        self.stride, self.padding = stride, kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(F.conv2d(x, self.weight, stride=self.stride, padding=self.padding))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here) -> 1x1 with a projection shortcut when the width changes."""

    def __init__(self, cin: int, cout: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(cin, width, 1)
        self.conv2 = ConvNorm(width, width, 3, stride)
        self.conv3 = ConvNorm(width, cout, 1)
        self.shortcut = ConvNorm(cin, cout, 1, stride) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.conv3(y)
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


@dataclass
class ResNetConfig:
    """Stage depths and widths; the defaults are ResNet-101 up to res4 (outputs 256 / 512 / 1024)."""

    blocks: tuple[int, ...] = (3, 4, 23)
    stem_width: int = 64
    width: int = 64

    def __post_init__(self) -> None:
        self.blocks = tuple(self.blocks)

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(self.width * 4 * 2**i for i in range(len(self.blocks)))

    def to_dict(self) -> dict:
        return asdict(self)


class ResNet(nn.Module):
    """detectron2-style ResNet returning the outputs of stages res2.. as a list, finest first."""

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or ResNetConfig()
        self.stem = ConvNorm(3, cfg.stem_width, 7, stride=2)
        cin = cfg.stem_width
        self.stage_names: list[str] = []
        for i, (n, cout) in enumerate(zip(cfg.blocks, cfg.out_channels, strict=True)):
            width = cfg.width * 2**i
            stride = 1 if i == 0 else 2
            blocks = [
                Bottleneck(cin if j == 0 else cout, cout, width, stride if j == 0 else 1) for j in range(n)
            ]
            name = f"res{i + 2}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            cin = cout

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.max_pool2d(F.relu(self.stem(x)), kernel_size=3, stride=2, padding=1)
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


def renormalize(
    pixel_values: Tensor, mean: Sequence[float], std: Sequence[float], new_mean, new_std
) -> Tensor:
    """Re-express an image normalised with (mean, std) in another normalisation, both in 0-255 units."""
    m = pixel_values.new_tensor(mean)[:, None, None]
    s = pixel_values.new_tensor(std)[:, None, None]
    nm = pixel_values.new_tensor(new_mean)[:, None, None]
    ns = pixel_values.new_tensor(new_std)[:, None, None]
    return (pixel_values * s + m - nm) / ns
