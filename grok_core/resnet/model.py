"""ResNet-18 (He et al. 2016) for the polygon-sum images, written out here and trained from scratch.

The usual ImageNet layout: a 7x7 stride-2 stem and 3x3 max-pool, four stages of two BasicBlocks
(64, 128, 256, 512 channels; stages 2-4 halve the resolution, with a 1x1 conv + BatchNorm shortcut),
global average pooling and one linear head. Parameter names and the default initialisation
(Kaiming-normal fan-out convs, BatchNorm 1/0, PyTorch's default Linear init) follow the
common convention, so a state dict saved elsewhere under the same names loads with `load_backbone`.
No pretrained weights are used: the released code asked for ImageNet weights; we start from scratch.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

STAGES = (64, 128, 256, 512)   # channels per stage at the standard width 64
BLOCKS = (2, 2, 2, 2)          # BasicBlocks per stage: ResNet-18


class BasicBlock(nn.Module):
    """x -> relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 carries the stride."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # a projection only where the shape changes; otherwise the identity
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # [batch, c_in, h, w] -> [batch, c_out, h/s, w/s]
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class ResNet18(nn.Module):
    """width scales every stage (width 64 is ResNet-18; smaller widths only for quick CPU checks)."""

    def __init__(self, n_classes: int = 1000, width: int = 64, in_channels: int = 3):
        super().__init__()
        stages = [c * width // 64 for c in STAGES]
        self.conv1 = nn.Conv2d(in_channels, stages[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stages[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = stages[0]
        for s, (c_out, n_blocks) in enumerate(zip(stages, BLOCKS)):
            stride = 1 if s == 0 else 2
            blocks = [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(stages[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # [batch, 3, H, W] -> [batch, n_classes]
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))        # [batch, 64, H/4, W/4]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [batch, 512, H/32, W/32]
        return self.fc(torch.flatten(self.avgpool(x), 1))


@torch.no_grad()
def init_resnet(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The conventional ResNet initialisation, drawn from `generator` (module order) for seeded runs.

    Convs: normal with std sqrt(2 / fan_out) (Kaiming, ReLU gain, fan-out mode). BatchNorm: weight 1,
    bias 0. Linear: PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.in_features ** 0.5
            m.weight.uniform_(-bound, bound, generator=generator)
            if m.bias is not None:
                m.bias.uniform_(-bound, bound, generator=generator)
    return model


def build_resnet18(n_classes: int, seed: int | None = 0, width: int = 64) -> ResNet18:
    """A freshly initialised ResNet-18 with an n_classes head; seed=None uses the global RNG."""
    if not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes={n_classes!r} is not allowed; it must be a positive integer")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} is not allowed; it must be a positive integer (64 is ResNet-18)")
    model = ResNet18(n_classes, width)
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return init_resnet(model, g)


def load_backbone(model: ResNet18, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor except the head (fc.*) from a state dict with the conventional names.

    For an optional start from locally supplied ImageNet weights (the released code's choice);
    returns the names that were loaded. Missing or extra backbone keys raise.
    """
    backbone = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"state dict does not fit ResNet-18: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return sorted(backbone)
