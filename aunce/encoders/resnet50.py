"""ResNet50 with a per-AU head.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition." CVPR 2016.

Backbone: timm ``resnet50`` (ImageNet weights tag ``tv_in1k``, the torchvision weights ME-GraphAU
loads) pooled to one 2048-d vector per image. Per-AU embeddings: K independent
``Linear(2048, D) + BatchNorm + ReLU`` blocks (ME-GraphAU's AU-specific feature generator,
:class:`~aunce.encoders.blocks.PerAULinearBlocks`), giving (B, K, D).

Choices the spec left to the harness:
- The per-AU head: the paper does not say how a single-vector encoder feeds AUNCE's per-AU
  comparisons; K independent LinearBlocks on the pooled vector give each AU its own embedding, as
  ME-GraphAU's generator does on tokens. ``feature_dim`` D defaults to 512, the width ME-GraphAU
  gives its ResNet50 variant (2048 / 4).
- The tiny size keeps the topology (7x7 stride-2 stem, max pool, four stages of bottleneck blocks with
  expansion 4 and the stride on the 3x3 convolution, global average pooling, the per-AU head) with
  one block per stage (paper 3, 4, 6, 3) and widths divided by 8 (base 8, paper 64): 256-d pooled
  features, D = 64, 56 px inputs (a 2x2 map after the last stage, 7x7 at 224 px). Plain torch, so
  CPU jobs do not import timm; initialised as timm's ResNet (Kaiming-normal convolutions, the last
  batch norm of each block at zero).
"""

from __future__ import annotations

from torch import Tensor, nn

from aunce.encoders.blocks import (
    PerAULinearBlocks,
    check_images,
    create_timm_model,
    load_pretrained,
)
from aunce.encoders.registry import register_encoder, resolve_preset

PRESETS = {
    "paper": {"input_size": 224, "feature_dim": 512},
    "tiny": {
        "input_size": 56,
        "feature_dim": 64,
        "stem_width": 16,
        "base_width": 8,
        "depths": (1, 1, 1, 1),
    },
}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels), each with batch norm, plus the shortcut; ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        nn.init.zeros_(self.body[-1].weight)  # each block starts as the identity (timm's default)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            if stride != 1 or in_channels != out
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class TinyResNet(nn.Module):
    """The ResNet50 topology at reduced width and depth: (B, 3, H, W) -> (B, 8 * base_width * 4)."""

    def __init__(self, stem_width: int, base_width: int, depths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, stem_width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        prev = stem_width
        for stage, depth in enumerate(depths):
            width = base_width * 2**stage
            for block in range(depth):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(Bottleneck(prev, width, stride))
                prev = width * Bottleneck.expansion
        self.body = nn.Sequential(*layers)
        self.num_features = prev
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))  # global average pooling


class ResNetEncoder(nn.Module):
    """A pooled backbone and the per-AU head: (B, 3, S, S) -> (B, K, D)."""

    needs_landmarks = False

    def __init__(self, num_aus: int, backbone: nn.Module, feature_dim: int, input_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = PerAULinearBlocks(num_aus, backbone.num_features, feature_dim)
        self.num_aus, self.feature_dim, self.input_size = num_aus, feature_dim, input_size

    def forward(self, images: Tensor) -> Tensor:
        check_images(images, self.input_size, "ResNet50")
        return self.head(self.backbone(images))  # (B, F) -> (B, K, D)


@register_encoder("resnet50")
def resnet50(num_aus: int, size: str = "paper", pretrained: str | None = None, **overrides):
    preset = resolve_preset("resnet50", size, PRESETS, overrides)
    if size == "paper":
        backbone = create_timm_model("resnet50", pretrained, num_classes=0)  # pooled 2048-d
    else:
        backbone = TinyResNet(preset["stem_width"], preset["base_width"], tuple(preset["depths"]))
        if pretrained is not None:
            load_pretrained(backbone, pretrained, what="tiny ResNet50 backbone")
    return ResNetEncoder(num_aus, backbone, preset["feature_dim"], preset["input_size"])
