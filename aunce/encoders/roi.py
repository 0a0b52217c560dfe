"""ROI Nets: region-of-interest cropping on VGG16 features, one small network per region.

Li, Abtahi, Zhu. "Action Unit Detection with Region Adaptation, Multi-labeling Learning and
Optimal Temporal Fusing." CVPR 2017.

VGG16 convolutions up to conv5_2 (14x14x512 at 224 px), then 20 regions around landmark-defined
centres (10 symmetric pairs): for each, the 3x3x512 patch around its centre upsampled x2 to 6x6,
a 3x3 convolution (512) + ReLU and FC(150) + ReLU, each region with its own weights; the 20 region
features concatenated (3000), then FC(2048) + ReLU. Per-AU embeddings: the per-AU head of ResNet50
(K independent ``Linear(2048, D) + BatchNorm + ReLU``), giving (B, K, D). Landmarks (B, 49, 2) in
crop pixels are the second argument of ``forward``.

Choices the spec left to the harness:
- The backbone is timm's ``vgg16`` (weights tag ``tv_in1k``) cut after conv5_2 and its ReLU:
  ``features[:28]``, a clean slice of timm's module (12.35 M parameters), so torchvision is not
  needed. timm still builds VGG's classifier once before it is cut away (about 4 s on a CPU).
- The 10 region pairs are the AU centres of :mod:`aunce.encoders.landmarks` (EAC-Net's rules, as
  JAA-Net codes them) for AUs 1 (inner brows), 2 (outer brows), 4 (brow centres), 6 (cheeks below the
  lower lids), 7 (upper lids), 9 (above the nostrils), 10 (upper lip), 12 (lip corners), 17 (chin)
  and 23 (upper and lower lip centres): every distinct BP4D centre plus DISFA's nose. The regions are
  fixed, whatever AUs are detected; the per-AU head picks from their joint feature.
- The crop and the x2 upsampling are one bilinear sampling of a 6x6 grid spanning the 3x3 cells
  around the (sub-cell) centre; samples outside the map read zeros.
- The region convolution has no padding (Caffe's default): 6x6 -> 4x4, so FC(150) reads 4x4x512.
  All 20 region networks run as one grouped convolution and one batched matrix product.
- The temporal LSTM of ROI Nets is out of scope (frame-level benchmark). ``feature_dim`` D defaults
  to 512, as for ResNet50.
- The tiny size keeps the region geometry (a 14x14 map at 56 px, 3x3 patches, x2 upsampling, a valid
  3x3 convolution, per-region FC, concatenation, FC, the per-AU head) and reduces the rest: a VGG-like
  backbone of three blocks of two 3x3 convolutions (8, 16, 32 channels, with batch norm to train from
  scratch) and two max pools (stride 4, paper 16), 16 channels and 16 features per region, a 128-d
  joint feature and D = 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aunce.encoders.blocks import (
    PerAULinearBlocks,
    check_images,
    create_timm_model,
    load_pretrained,
)
from aunce.encoders.landmarks import AUCentres, check_landmarks
from aunce.encoders.registry import register_encoder, resolve_preset

REGION_AUS = (1, 2, 4, 6, 7, 9, 10, 12, 17, 23)  # 10 pairs -> 20 regions
PATCH, UPSAMPLE = 3, 2
VGG16_CONV5_2 = 28  # timm vgg16 ``features`` index just past conv5_2 and its ReLU

PRESETS = {
    "paper": {
        "input_size": 224,
        "feature_dim": 512,
        "region_channels": 512,
        "region_features": 150,
        "joint_features": 2048,
    },
    "tiny": {
        "input_size": 56,
        "feature_dim": 64,
        "widths": (8, 16, 32),
        "region_channels": 16,
        "region_features": 16,
        "joint_features": 128,
    },
}


class TinyVGG(nn.Module):
    """Blocks of two 3x3 conv + BN + ReLU, a 2x2 max pool between blocks: stride 2^(blocks - 1)."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [
                    nn.Conv2d(prev, width, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                prev = width
        self.features = nn.Sequential(*layers)
        self.out_channels = prev
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class VGG16Conv52(nn.Module):
    """timm's VGG16 cut after conv5_2: (B, 3, 224, 224) -> (B, 512, 14, 14)."""

    def __init__(self, pretrained: str | None):
        super().__init__()
        vgg = create_timm_model("vgg16", pretrained)
        self.features = vgg.features[:VGG16_CONV5_2]
        self.out_channels = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def region_grid(centres: Tensor, input_size: int, map_size: int) -> Tensor:
    """Sampling grid of the upsampled patches: (B, R, 2) centres in crop pixels -> (B, R*s, s, 2).

    s = PATCH * UPSAMPLE samples per side, spaced half a feature cell, covering the PATCH x PATCH
    cells around each centre; in grid_sample's normalised coordinates (align_corners=False).
    """
    b, r, _ = centres.shape
    s = PATCH * UPSAMPLE
    stride = input_size / map_size
    cell = (centres + 0.5) / stride - 0.5  # feature-cell coordinates of the centres
    offsets = (torch.arange(s, device=centres.device, dtype=centres.dtype) + 0.5) / UPSAMPLE
    offsets = offsets - PATCH / 2  # -1.25 ... 1.25 cells for a 3x3 patch upsampled x2
    x = cell[..., 0, None, None] + offsets[None, :]  # (B, R, 1, s): varies along columns
    y = cell[..., 1, None, None] + offsets[:, None]  # (B, R, s, 1): varies along rows
    grid = torch.stack(torch.broadcast_tensors(x, y), dim=-1)  # (B, R, s, s, 2)
    grid = (grid + 0.5) / map_size * 2 - 1
    return grid.reshape(b, r * s, s, 2)


class ROINets(nn.Module):
    """VGG features, 20 landmark-centred region networks, FC, per-AU head: (B, 3, S, S) -> (B, K, D)."""

    needs_landmarks = True

    def __init__(
        self,
        num_aus: int,
        backbone: nn.Module,
        input_size: int,
        feature_dim: int,
        region_channels: int,
        region_features: int,
        joint_features: int,
    ):
        super().__init__()
        self.backbone = backbone
        self.centres = AUCentres(REGION_AUS)
        self.regions = 2 * len(REGION_AUS)
        c, r = backbone.out_channels, self.regions
        side = PATCH * UPSAMPLE - 2  # the valid 3x3 convolution
        # the 20 region networks, one group each
        self.region_conv = nn.Conv2d(r * c, r * region_channels, 3, groups=r)
        self.region_fc_weight = nn.Parameter(
            torch.empty(r, region_channels * side * side, region_features)
        )
        self.region_fc_bias = nn.Parameter(torch.empty(r, region_features))
        bound = (region_channels * side * side) ** -0.5  # nn.Linear's default, per region
        nn.init.uniform_(self.region_fc_weight, -bound, bound)
        nn.init.uniform_(self.region_fc_bias, -bound, bound)
        self.joint = nn.Sequential(nn.Linear(r * region_features, joint_features), nn.ReLU())
        self.head = PerAULinearBlocks(num_aus, joint_features, feature_dim)
        self.relu = nn.ReLU(inplace=True)
        self.num_aus, self.feature_dim, self.input_size = num_aus, feature_dim, input_size

    def forward(self, images: Tensor, landmarks: Tensor | None = None) -> Tensor:
        check_images(images, self.input_size, "ROI Nets")
        check_landmarks(landmarks, len(images), "ROI Nets")
        b, r, s = len(images), self.regions, PATCH * UPSAMPLE
        feats = self.backbone(images)  # (B, C, M, M)
        c, m = feats.shape[1], feats.shape[-1]
        centres = self.centres(landmarks.float()).reshape(b, r, 2)  # (B, R, 2), float32 pixels
        grid = region_grid(centres, self.input_size, m).to(feats.dtype)
        patches = F.grid_sample(feats, grid, mode="bilinear", align_corners=False)  # (B,C,R*s,s)
        patches = patches.reshape(b, c, r, s, s).transpose(1, 2).reshape(b, r * c, s, s)
        h = self.relu(self.region_conv(patches)).reshape(b, r, -1)  # (B, R, C' * 4 * 4)
        h = self.relu(torch.einsum("brf,rfo->bro", h, self.region_fc_weight) + self.region_fc_bias)
        return self.head(self.joint(h.flatten(1)))  # (B, 3000) -> (B, 2048) -> (B, K, D)


@register_encoder("roi")
def roi(num_aus: int, size: str = "paper", pretrained: str | None = None, **overrides):
    preset = resolve_preset("roi", size, PRESETS, overrides)
    if size == "paper":
        backbone = VGG16Conv52(pretrained)
    else:
        backbone = TinyVGG(tuple(preset["widths"]))
        if pretrained is not None:
            load_pretrained(backbone, pretrained, what="tiny ROI Nets backbone")
    return ROINets(
        num_aus,
        backbone,
        preset["input_size"],
        preset["feature_dim"],
        preset["region_channels"],
        preset["region_features"],
        preset["joint_features"],
    )
