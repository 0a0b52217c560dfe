"""JA-Net: joint AU detection and face alignment with adaptive attention (JAA-Net, extended version).

Shao, Liu, Cai, Ma. "JAA-Net: Joint Facial Action Unit Detection and Face Alignment via Adaptive
Attention." IJCV 2021 (extends ECCV 2018; github.com/ZhiwenShao/PyTorch-JAANet, ``*v2*.py``).

- Hierarchical and multi-scale region learning: two layers, each a 3x3 convolution followed by
  three chained patch-wise 3x3 convolutions (every patch of an 8x8, then 4x4, then 2x2 grid has its
  own weights and batch norm), their outputs concatenated and added to the convolution's (residual),
  each layer followed by a 2x2 max pool: (B, 3, 176, 176) -> (B, 64, 44, 44).
- Face alignment: a conv block (``HLFeat``: three pairs of 3x3 conv + BN + ReLU, each pair followed by
  a max pool) and two linears predict the 49 landmarks.
- Adaptive attention: one initial map per AU around its two landmark-defined centres
  (:mod:`aunce.encoders.landmarks`), refined by a small network per AU (four 3x3 convolutions, sigmoid).
- Per-AU local features: the region features masked by the AU's attention map -> that AU's own
  ``HLFeat`` -> a linear to 64. Global branch: another ``HLFeat``.
- Per-AU embedding (B, K, D): that AU's local feature concatenated with a shared global feature, through
  a per-AU ``Linear + BatchNorm + ReLU``. The shared feature is JAA-Net's final AU layer, a linear to 512
  of the alignment, global and AU-averaged local features.
- Face-alignment loss (Eq. 1 of the paper): the summed squared landmark error over ``2 d_o^2``, d_o the
  true inter-ocular distance (eye centres), mean over images; weight 0.5 (JAA-Net's ``lambda_land``).
  ``forward_with_landmarks`` returns the predicted landmarks beside the embeddings and
  :func:`alignment_loss` scores them; ``aunce.train`` adds ``alignment_weight * alignment_loss`` to the
  pretraining loss and logs it in ``history.csv``.

Choices the spec left to the harness:
- AU identities: the attention maps need to know which AU each output is. ``aus`` (AU numbers, label
  order) sets them; without it K = 12, 8 and 10 mean BP4D's, DISFA's and GFT's lists, other K are an
  error. ``aunce.train`` passes the cache's AU names, so Aff-Wild2's 12 AUs are not taken for BP4D's.
  AU 5 and 20 have no published centre rule; see :mod:`aunce.encoders.landmarks`.
- ``attention_from``: ``"landmarks"`` (default) places the initial maps on the landmarks passed to
  ``forward`` (the cache's, moved with the crop: the landmarks JAA-Net trains its alignment branch
  on), so the attention does not hinge on how far the alignment branch has trained in a short or tiny
  run; ``"prediction"`` uses the alignment branch's own (detached) prediction, as JAA-Net does.
  Either way, ``forward`` needs the landmarks and the alignment branch learns from them.
- Initial maps: JAA-Net's shape (within a square of half side ``round((G - 1) / 2 * 0.14)`` cells, 1
  minus ``0.56 / (0.14 G)`` per cell of L1 distance to the rounded centre, the two centres of an AU
  combined by max) on a grid of G = M + 8 cells, but the centres are scaled to the M x M feature map
  and the grid padded by 4 cells each side, so that the refinement's four valid convolutions return a
  map aligned with the features (JAA-Net scales the centres to the padded grid, shifting them).
- The alignment branch predicts coordinates relative to the crop (``(output + 0.5) * input_size``),
  an affine reparametrisation of JAA-Net's pixel outputs that starts the prediction at the crop centre.
- The local features are not detached before the shared feature (JAA-Net v2 detaches them because its
  local branches have their own AU loss; here they learn only through the embeddings). The final AU
  classifier of JAA-Net is the per-AU linear head of the protocol. ``feature_dim`` D defaults to 512.
- All K refinement and local networks run as grouped convolutions (one group per AU), the patch-wise
  convolutions as grouped convolutions over the patches: the same networks as K (or grid x grid)
  separate modules, in a few kernels.
- Input 176 (a 200 aligned face cropped, JAA-Net's protocol); any multiple of 16 works (the 8x8 grid of
  the second layer tiles its half-size input), e.g. 224 beside the other encoders.
- The tiny size keeps every part and divides the widths by 8 (``unit_dim`` 1, paper 8) with 4x4, 2x2
  and 1x1 grids (paper 8x8, 4x4, 2x2), so the input must be a multiple of 8: 56 px, the input of the
  other tiny encoders (one cache). Patches are then 14 and 7 px (paper 22 and 11); an 8x8 grid on the
  28 px second layer would cut 3.5 px patches. 14x14 features, D = 64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aunce.encoders.blocks import check_images, load_pretrained
from aunce.encoders.landmarks import (
    NUM_LANDMARKS,
    AUCentres,
    check_landmarks,
    default_aus,
    inter_ocular_distance,
)
from aunce.encoders.registry import register_encoder, resolve_preset

ALIGNMENT_WEIGHT = 0.5  # JAA-Net's lambda_land
SPATIAL_RATIO, FILL_COEFF = 0.14, 0.56  # JAA-Net's initial attention maps
PAD = 4  # cells lost by the refinement's four valid 3x3 convolutions, each side
ATTENTION_FROM = ("landmarks", "prediction")

PRESETS = {
    "paper": {
        "input_size": 176,
        "feature_dim": 512,
        "unit_dim": 8,
        "grids": (8, 4, 2),
        "aus": None,
        "attention_from": "landmarks",
    },
    "tiny": {
        "input_size": 56,
        "feature_dim": 64,
        "unit_dim": 1,
        "grids": (4, 2, 1),
        "aus": None,
        "attention_from": "landmarks",
    },
}


class PatchConv(nn.Module):
    """BN -> ReLU -> 3x3 conv with its own weights in every patch of a grid x grid partition.

    JAA-Net's ``LocalConv2dReLU``, run as one grouped convolution over the patches: each patch is
    zero-padded on its own, so no information crosses patch borders. (B, C, H, W) -> (B, C', H, W).
    """

    def __init__(self, grid: int, in_channels: int, out_channels: int):
        super().__init__()
        n = grid * grid
        self.grid = grid
        self.bn = nn.BatchNorm2d(n * in_channels)
        self.conv = nn.Conv2d(n * in_channels, n * out_channels, 3, 1, 1, groups=n)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = self.grid
        ph, pw = h // g, w // g
        patches = (
            x.reshape(b, c, g, ph, g, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g * c, ph, pw)
        )
        y = self.conv(F.relu(self.bn(patches)))  # (B, g*g*C', ph, pw)
        out = y.shape[1] // (g * g)
        return y.reshape(b, g, g, out, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, out, h, w)


class HMRLayer(nn.Module):
    """Hierarchical multi-scale region layer: conv, three chained patch convs (C/2, C/4, C/4), residual."""

    def __init__(self, in_channels: int, out_channels: int, grids: tuple[int, int, int]):
        super().__init__()
        half, quarter = out_channels // 2, out_channels // 4
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.branches = nn.ModuleList(
            [
                PatchConv(grids[0], out_channels, half),
                PatchConv(grids[1], half, quarter),
                PatchConv(grids[2], quarter, quarter),
            ]
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        outs, h = [], x
        for branch in self.branches:
            h = branch(h)
            outs.append(h)
        return self.relu(self.bn(x + torch.cat(outs, 1)))


def conv_bn_relu(in_channels: int, out_channels: int, groups: int, padding: int = 1) -> list:
    return [
        nn.Conv2d(in_channels, out_channels, 3, 1, padding, groups=groups),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class HLFeat(nn.Module):
    """JAA-Net's ``HLFeatExtractor``: pairs of 3x3 conv + BN + ReLU (12u, 16u, 20u channels), each pair
    followed by a 2x2 max pool. ``groups`` = K runs K independent copies on K stacked inputs:
    (B, G*C, M, M) -> (B, G*20u, M/8, M/8)."""

    def __init__(self, in_channels: int, unit_dim: int, groups: int = 1):
        super().__init__()
        layers, prev = [], in_channels
        for width in (12 * unit_dim, 16 * unit_dim, 20 * unit_dim):
            layers += conv_bn_relu(groups * prev, groups * width, groups)
            layers += conv_bn_relu(groups * width, groups * width, groups)
            layers.append(nn.MaxPool2d(2))
            prev = width
        self.body = nn.Sequential(*layers)
        self.out_channels = prev

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class GroupedLinear(nn.Module):
    """K linears on K inputs: (B, K, C) -> (B, K, D), AU k's weights on row k (nn.Linear's init)."""

    def __init__(self, num_aus: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(num_aus, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_aus, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bkc,kcd->bkd", x, self.weight) + self.bias


def initial_attention(centres: Tensor, input_size: int, map_size: int) -> Tensor:
    """JAA-Net's initial AU maps: (B, K, 2, 2) centres in crop pixels -> (B, K, M + 8, M + 8).

    Cell j of the padded grid is feature cell j - 4; see the module docstring for the shape.
    """
    g = map_size + 2 * PAD
    half = round((g - 1) / 2 * SPATIAL_RATIO)
    cells = torch.round(centres * (map_size / input_size)) + PAD  # (B, K, 2, 2): x, y
    ar = torch.arange(g, device=centres.device, dtype=centres.dtype)
    dx = (ar - cells[..., 0:1]).abs()  # (B, K, 2, G): column distances
    dy = (ar - cells[..., 1:2]).abs()  # (B, K, 2, G): row distances
    inside = (dy[..., :, None] <= half) & (dx[..., None, :] <= half)  # (B, K, 2, G, G)
    value = 1 - (dy[..., :, None] + dx[..., None, :]) * (FILL_COEFF / (g * SPATIAL_RATIO))
    return torch.where(inside, value.clamp(min=0), 0.0).amax(dim=2)  # max over the two centres


def alignment_loss(predicted: Tensor, landmarks: Tensor) -> Tensor:
    """JAA-Net's face-alignment loss: sum_j ||p_j - l_j||^2 / (2 d_o^2), mean over images.

    ``predicted``, ``landmarks``: (B, 49, 2) in the same pixels; d_o, the inter-ocular distance of the
    true landmarks, makes it unitless (the same at 56 and 176 px). Zero for a perfect prediction.
    """
    landmarks = landmarks.float()
    d2 = inter_ocular_distance(landmarks).pow(2).clamp(min=1e-6)  # (B,)
    return ((predicted.float() - landmarks) ** 2).sum(dim=(1, 2)).div(2 * d2).mean()


class JANet(nn.Module):
    """(B, 3, S, S) images and (B, 49, 2) landmarks -> (B, K, D) per-AU embeddings."""

    needs_landmarks = True
    alignment_weight = ALIGNMENT_WEIGHT
    alignment_loss = staticmethod(alignment_loss)

    def __init__(
        self,
        aus: tuple[int, ...],
        input_size: int,
        feature_dim: int,
        unit_dim: int,
        grids: tuple[int, int, int],
        attention_from: str,
    ):
        super().__init__()
        k, u = len(aus), unit_dim
        self.region_learning = nn.Sequential(
            HMRLayer(3, 4 * u, grids),
            nn.MaxPool2d(2),
            HMRLayer(4 * u, 8 * u, grids),
            nn.MaxPool2d(2),
        )
        self.map_size = input_size // 4
        cells = (self.map_size // 8) ** 2  # after HLFeat's three max pools
        flat = 20 * u * cells
        self.align_features = HLFeat(8 * u, u)
        self.align_output = nn.Sequential(
            nn.Linear(flat, 64 * u), nn.Linear(64 * u, 2 * NUM_LANDMARKS)
        )
        self.centres = AUCentres(aus)
        self.refine = nn.Sequential(
            *conv_bn_relu(k, k * 8 * u, k, padding=0),
            *conv_bn_relu(k * 8 * u, k * 8 * u, k, padding=0),
            *conv_bn_relu(k * 8 * u, k * 8 * u, k, padding=0),
            nn.Conv2d(k * 8 * u, k, 3, groups=k),
            nn.Sigmoid(),
        )
        self.local_features = HLFeat(8 * u, u, groups=k)
        self.local_fc = GroupedLinear(k, flat, 8 * u)
        self.global_features = HLFeat(8 * u, u)
        self.global_fc = nn.Linear(3 * flat, 64 * u)
        self.embed = GroupedLinear(k, 8 * u + 64 * u, feature_dim)
        nn.init.normal_(self.embed.weight, 0.0, math.sqrt(2.0 / feature_dim))  # as LinearBlock
        self.embed_bn = nn.BatchNorm1d(k * feature_dim)
        self.aus, self.attention_from = aus, attention_from
        self.num_aus, self.feature_dim, self.input_size = k, feature_dim, input_size

    def forward(self, images: Tensor, landmarks: Tensor | None = None) -> Tensor:
        return self.forward_with_landmarks(images, landmarks)[0]

    def forward_with_landmarks(
        self, images: Tensor, landmarks: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Embeddings (B, K, D) and the alignment branch's landmarks (B, 49, 2, float32, crop pixels)."""
        check_images(images, self.input_size, "JA-Net")
        check_landmarks(landmarks, len(images), "JA-Net")
        b, k = len(images), self.num_aus
        feats = self.region_learning(images)  # (B, 8u, M, M)
        align = self.align_features(feats).flatten(1)  # (B, 20u * (M/8)^2)
        relative = self.align_output(align).float().view(b, NUM_LANDMARKS, 2)
        predicted = (relative + 0.5) * self.input_size  # (B, 49, 2) crop pixels
        source = landmarks if self.attention_from == "landmarks" else predicted
        with torch.no_grad():
            centres = self.centres(source.detach().float())  # (B, K, 2, 2)
            initial = initial_attention(centres, self.input_size, self.map_size)  # (B, K, M+8, M+8)
        attention = self.refine(initial)  # (B, K, M, M)
        masked = (feats[:, None] * attention[:, :, None]).flatten(1, 2)  # (B, K * 8u, M, M)
        local_maps = self.local_features(masked).reshape(b, k, -1)  # (B, K, 20u * (M/8)^2)
        local = self.local_fc(local_maps)  # (B, K, 8u)
        glob = self.global_features(feats).flatten(1)
        shared = self.global_fc(torch.cat([align, glob, local_maps.mean(1)], 1))  # (B, 64u)
        z = self.embed(torch.cat([local, shared[:, None].expand(-1, k, -1)], -1))  # (B, K, D)
        z = F.relu(self.embed_bn(z.reshape(b, -1))).view(b, k, -1)
        return z, predicted


@register_encoder("jaanet", au_specific=True)
def jaanet(num_aus: int, size: str = "paper", pretrained: str | None = None, **overrides):
    preset = resolve_preset("jaanet", size, PRESETS, overrides)
    aus = tuple(preset["aus"]) if preset["aus"] is not None else default_aus(num_aus)
    grids, size_px = tuple(preset["grids"]), preset["input_size"]
    # two 2x max pools, and every grid must tile the half-size input of the second layer
    multiple = math.lcm(4, *(2 * g for g in grids))
    if len(grids) != 3 or size_px % multiple or size_px < 32:
        raise ValueError(
            f"JA-Net with grids {grids} needs three grids and an input size that is a multiple of "
            f"{multiple} and at least 32, got input_size {size_px}"
        )
    if preset["attention_from"] not in ATTENTION_FROM:
        raise ValueError(
            f"attention_from must be one of {', '.join(ATTENTION_FROM)}, "
            f"got '{preset['attention_from']}'"
        )
    model = JANet(
        aus,
        size_px,
        preset["feature_dim"],
        preset["unit_dim"],
        grids,
        preset["attention_from"],
    )
    if pretrained is not None and size == "tiny":  # its backbone, as the other tiny encoders
        load_pretrained(model.region_learning, pretrained, what="tiny JA-Net region learning")
    elif pretrained is not None:  # a whole JAA-Net checkpoint
        load_pretrained(model, pretrained, what=f"JA-Net ({size})")
    return model
