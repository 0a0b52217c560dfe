"""The four encoders of Table 8 at both sizes, their shared blocks against slow references, and the
landmark plumbing of training and evaluation. Paper-size tests are marked ``paper_size``."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

from aunce import AunceError
from aunce.data.align import alignment_matrix, to_49
from aunce.data.augment import crop_landmarks, random_crop_flip
from aunce.data.catalog import DATASET_AUS
from aunce.data.synthetic import TEMPLATE
from aunce.encoders import create_encoder, list_encoders
from aunce.encoders.blocks import LinearBlock, PerAULinearBlocks
from aunce.encoders.jaanet import (
    FILL_COEFF,
    PAD,
    SPATIAL_RATIO,
    HLFeat,
    PatchConv,
    alignment_loss,
    initial_attention,
)
from aunce.encoders.landmarks import AU_CENTRES, AUCentres, default_aus, inner_eye_distance
from aunce.encoders.roi import region_grid

ENCODERS = ["resnet50", "roi", "jaanet", "megraph"]


def face_landmarks(batch: int, crop: int, aligned: int, seed: int = 0) -> torch.Tensor:
    """(B, 49, 2) landmarks of the synthetic template aligned to ``aligned`` px, centre-cropped to
    ``crop``, jittered by about a pixel (so each image differs)."""
    pts = to_49(TEMPLATE)
    m = alignment_matrix(pts, aligned)
    face = torch.tensor(pts @ m[:, :2].T + m[:, 2], dtype=torch.float32) - (aligned - crop) // 2
    g = torch.Generator().manual_seed(seed)
    return face + 0.02 * crop * torch.randn(batch, 49, 2, generator=g)


def run(enc, images, landmarks):
    return enc(images, landmarks) if enc.needs_landmarks else enc(images)


def first_conv(enc: nn.Module) -> nn.Conv2d:
    return next(m for m in enc.modules() if isinstance(m, nn.Conv2d))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- registry -----------------------------------------------------------------------------------
def test_registry():
    assert list_encoders() == ENCODERS
    with pytest.raises(
        ValueError, match="unknown encoder 'vit'.*known: resnet50, roi, jaanet, megraph"
    ):
        create_encoder("vit", 12)
    with pytest.raises(ValueError, match="unknown encoder size 'huge'"):
        create_encoder("megraph", 12, size="huge")
    with pytest.raises(ValueError, match="num_aus must be positive, got 0"):
        create_encoder("roi", 0, size="tiny")
    with pytest.raises(ValueError, match=r"roi \(tiny\) has no setting depth \(known: "):
        create_encoder("roi", 12, size="tiny", depth=3)
    with pytest.raises(ValueError, match=r"aus lists 2 AUs \[1, 2\] but num_aus is 12"):
        create_encoder("resnet50", 12, size="tiny", aus=[1, 2])
    with pytest.raises(ValueError, match="not an AU: 'brow'"):
        create_encoder("jaanet", 1, size="tiny", aus=["brow"])


def test_needs_landmarks_flags():
    flags = {n: create_encoder(n, 8, size="tiny").needs_landmarks for n in ENCODERS}
    assert flags == {"resnet50": False, "roi": True, "jaanet": True, "megraph": False}


def test_feature_dim_override_and_missing_weights(tmp_path):
    for name in ENCODERS:
        assert create_encoder(name, 12, size="tiny", feature_dim=32).feature_dim == 32
        with pytest.raises(AunceError, match="not found.*never downloads"):
            create_encoder(name, 12, size="tiny", pretrained=str(tmp_path / "none.pth"))


def test_tiny_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = create_encoder("resnet50", 12, size="tiny")
    torch.save(enc.backbone.state_dict(), tmp_path / "backbone.pth")
    torch.manual_seed(1)
    again = create_encoder("resnet50", 12, size="tiny", pretrained=str(tmp_path / "backbone.pth"))
    for a, b in zip(enc.backbone.parameters(), again.backbone.parameters(), strict=True):
        assert torch.equal(a, b)


# --- every encoder, tiny size -------------------------------------------------------------------
@pytest.mark.parametrize("num_aus", [12, 8])
@pytest.mark.parametrize("name", ENCODERS)
def test_tiny(name, num_aus):
    torch.manual_seed(0)
    enc = create_encoder(name, num_aus, size="tiny")
    torch.manual_seed(0)
    twin = create_encoder(name, num_aus, size="tiny").eval()
    assert enc.input_size == 56 and n_params(enc) < 500_000
    x = torch.randn(4, 3, 56, 56)
    lm = face_landmarks(4, 56, 64)
    z = run(enc, x, lm)
    assert z.shape == (4, num_aus, enc.feature_dim) and torch.isfinite(z).all()
    z.square().sum().backward()
    first = first_conv(enc).weight
    assert first.shape[1] == 3
    assert first.grad is not None and first.grad.abs().sum() > 0
    enc.eval()
    torch.manual_seed(0)
    again = create_encoder(name, num_aus, size="tiny").eval()
    with torch.no_grad():
        assert torch.equal(run(again, x, lm), run(twin, x, lm))  # same seed, same output
        assert run(enc, x[:1], lm[:1]).shape == (1, num_aus, enc.feature_dim)
    with pytest.raises(ValueError, match=r"expects images \(B, 3, 56, 56\), got \(1, 3, 32, 32\)"):
        run(enc, torch.randn(1, 3, 32, 32), lm[:1])


@pytest.mark.parametrize("name", ENCODERS)
def test_channels_last_and_bf16_autocast(name):
    """The GPU benchmark's settings: channels_last changes nothing, bf16 autocast stays close."""
    torch.manual_seed(0)
    enc = create_encoder(name, 12, size="tiny").eval()
    x, lm = torch.randn(3, 3, 56, 56), face_landmarks(3, 56, 64)
    with torch.no_grad():
        want = run(enc, x, lm)
        enc = enc.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(run(enc, x, lm), want, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = run(enc, x, lm).float()
    assert (low - want).abs().max() < 0.1 * want.abs().max()


@pytest.mark.parametrize("name", ["roi", "jaanet"])
def test_landmarks_are_required(name):
    enc = create_encoder(name, 12, size="tiny").eval()
    x = torch.randn(2, 3, 56, 56)
    with pytest.raises(ValueError, match="needs landmarks: call it as enc\\(images, landmarks\\)"):
        enc(x)
    with pytest.raises(ValueError, match=r"expects landmarks \(2, 49, 2\), got \(2, 68, 2\)"):
        enc(x, torch.zeros(2, 68, 2))


@pytest.mark.parametrize("name", ["roi", "jaanet"])
def test_landmarks_steer_the_embeddings(name):
    torch.manual_seed(0)
    enc = create_encoder(name, 12, size="tiny").eval()
    x = torch.randn(2, 3, 56, 56)
    lm = face_landmarks(2, 56, 64)
    with torch.no_grad():
        assert not torch.allclose(enc(x, lm), enc(x, lm + torch.tensor([6.0, 4.0])))


# --- shared blocks against slow references ------------------------------------------------------
def test_linear_block_initialisation():
    torch.manual_seed(0)
    block = LinearBlock(256, 2048)
    assert block.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 2048), rel=0.02)
    assert torch.equal(block.bn.weight, torch.ones(2048)) and not block.bn.bias.any()
    blocks = PerAULinearBlocks(12, 256, 2048)
    assert blocks.weight.std().item() == pytest.approx(math.sqrt(2 / 2048), rel=0.02)


@pytest.mark.parametrize("shape", [(6, 10), (6, 5, 10)])
def test_per_au_linear_blocks_equal_k_linear_blocks(shape):
    torch.manual_seed(0)
    k, c, d = 3, shape[-1], 4
    fast = PerAULinearBlocks(k, c, d)
    slow = [LinearBlock(c, d) for _ in range(k)]
    for i, block in enumerate(slow):
        block.fc.weight.data = fast.weight.data[i].T.clone()
        block.fc.bias.data = fast.bias.data[i].clone()
    x = torch.randn(*shape)
    want = torch.stack([block(x) for block in slow], 1)  # (B, K, D) or (B, K, N, D)
    torch.testing.assert_close(fast(x), want)
    with pytest.raises(ValueError, match=r"expected \(B, C\) or \(B, N, C\) features"):
        fast(torch.randn(2, 3, 4, 10))


def test_patch_conv_equals_separate_convs_per_patch():
    """JAA-Net's LocalConv2dReLU, written as its loop: each patch its own BN, ReLU and conv."""
    torch.manual_seed(0)
    g, c_in, c_out = 4, 3, 2
    fast = PatchConv(g, c_in, c_out)
    nn.init.normal_(fast.bn.weight)
    nn.init.normal_(fast.bn.bias)
    x = torch.randn(2, c_in, 12, 8)
    out = torch.zeros(2, c_out, 12, 8)
    ph, pw = 3, 2
    for i in range(g):
        for j in range(g):
            p = i * g + j
            bn = nn.BatchNorm2d(c_in)
            bn.weight.data = fast.bn.weight.data[p * c_in : (p + 1) * c_in]
            bn.bias.data = fast.bn.bias.data[p * c_in : (p + 1) * c_in]
            conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
            conv.weight.data = fast.conv.weight.data[p * c_out : (p + 1) * c_out]
            conv.bias.data = fast.conv.bias.data[p * c_out : (p + 1) * c_out]
            patch = x[:, :, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw].contiguous()
            out[:, :, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw] = conv(torch.relu(bn(patch)))
    torch.testing.assert_close(fast(x), out)


def test_grouped_hlfeat_equals_one_network_per_au():
    torch.manual_seed(0)
    k, c = 3, 2
    grouped = HLFeat(c, 1, groups=k)
    single = [HLFeat(c, 1) for _ in range(k)]
    for au, net in enumerate(single):
        for mine, theirs in zip(net.parameters(), grouped.parameters(), strict=True):
            n = mine.shape[0]
            mine.data = theirs.data[au * n : (au + 1) * n].clone()
    x = torch.randn(2, k * c, 16, 16)
    want = torch.cat([net(x[:, au * c : (au + 1) * c]) for au, net in enumerate(single)], 1)
    torch.testing.assert_close(grouped(x), want)


# --- landmark geometry --------------------------------------------------------------------------
def test_every_dataset_au_has_a_centre_rule_and_defaults_follow_the_catalog():
    assert set().union(*map(set, DATASET_AUS.values())) | {5, 20} <= set(AU_CENTRES)
    assert default_aus(12) == tuple(DATASET_AUS["bp4d"])
    assert default_aus(8) == tuple(DATASET_AUS["disfa"])
    assert default_aus(10) == tuple(DATASET_AUS["gft"])
    with pytest.raises(ValueError, match="no default AU list for 5 AUs.*pass aus="):
        default_aus(5)
    with pytest.raises(ValueError, match=r"no centre rule for AU \[3\]"):
        AUCentres([1, 3])


def test_au_centres_follow_the_rules():
    lm = face_landmarks(3, 56, 64)
    centres = AUCentres([1, 6, 9, 20, 5])(lm)  # (B, K, 2, 2)
    scale = inner_eye_distance(lm)[:, None]
    up = torch.stack([torch.zeros_like(scale[:, 0]), -scale[:, 0]], -1)  # (B, 2): one scale up
    torch.testing.assert_close(centres[:, 0, 0], lm[:, 4] + up / 2)  # AU1: above the inner brows
    torch.testing.assert_close(centres[:, 0, 1], lm[:, 5] + up / 2)
    torch.testing.assert_close(centres[:, 1, 1], lm[:, 29] - up)  # AU6: below the lower lid
    torch.testing.assert_close(centres[:, 2, 0], lm[:, 15] + up / 2)  # AU9: above the nostril
    assert (centres[:, 3, 0, 0] < lm[:, 31, 0]).all() and (centres[:, 3, 1, 0] > lm[:, 37, 0]).all()
    torch.testing.assert_close(centres[:, 4, 1], lm[:, [26, 27]].mean(1))  # AU5: upper lid


def test_au_centres_follow_a_flip():
    """Centres of flipped landmarks are the mirrored centres, sides swapped."""
    lm = face_landmarks(4, 64, 64)
    x = torch.zeros(4, 3, 64, 64)
    _, crop = random_crop_flip(x, 56, torch.Generator().manual_seed(0))
    crop.flip[:] = True
    aus = sorted(AU_CENTRES)
    flipped = AUCentres(aus)(crop_landmarks(lm, crop))
    plain = crop_landmarks(lm, type(crop)(crop.top, crop.left, torch.zeros(4, dtype=bool), 56))
    mirrored = AUCentres(aus)(plain).flip(2)  # swap the two sides
    mirrored[..., 0] = 55 - mirrored[..., 0]
    vertical = [aus.index(a) for a in (23, 24, 25)]  # upper/lower lip pairs: not swapped
    mirrored[:, vertical] = mirrored[:, vertical].flip(2)
    torch.testing.assert_close(flipped, mirrored, atol=1e-4, rtol=0)


def test_initial_attention_against_jaa_net_loop():
    """The loop of JAA-Net's generate_map, with centres on the feature map and the grid padded."""
    g = torch.Generator().manual_seed(0)
    centres = 4 + 48 * torch.rand(2, 3, 2, 2, generator=g)
    size, m = 56, 14
    fast = initial_attention(centres, size, m)
    grid = m + 2 * PAD
    half = round((grid - 1) / 2 * SPATIAL_RATIO)
    want = torch.zeros(2, 3, grid, grid)
    for b, k, side in np.ndindex(2, 3, 2):
        cx, cy = (round(float(v) * m / size) + PAD for v in centres[b, k, side])
        for h in range(max(cy - half, 0), min(cy + half, grid - 1) + 1):
            for w in range(max(cx - half, 0), min(cx + half, grid - 1) + 1):
                value = 1 - (abs(h - cy) + abs(w - cx)) * FILL_COEFF / (grid * SPATIAL_RATIO)
                want[b, k, h, w] = max(value, want[b, k, h, w])
    torch.testing.assert_close(fast, want)
    assert fast.amax() == 1.0


def test_roi_grid_samples_the_patch_around_the_centre():
    m, size = 14, 56
    ramp = torch.arange(m, dtype=torch.float32)
    feats = torch.stack([ramp.expand(m, m), ramp[:, None].expand(m, m)])[None]  # x, y per cell
    centres = torch.tensor([[[20.0, 30.0], [28.0, 28.0]]])  # (B, R, 2) crop pixels
    grid = region_grid(centres, size, m)
    patches = torch.nn.functional.grid_sample(feats, grid, align_corners=False).view(2, 2, 6, 6)
    cells = (centres[0] + 0.5) / (size / m) - 0.5
    torch.testing.assert_close(patches.mean(dim=(2, 3)).T, cells)  # centred on the centre
    torch.testing.assert_close(patches[0, :, 0, -1] - patches[0, :, 0, 0], torch.full((2,), 2.5))


# --- JA-Net -------------------------------------------------------------------------------------
def test_alignment_loss_is_zero_when_perfect_and_grows_with_the_error():
    lm = face_landmarks(4, 56, 64)
    assert alignment_loss(lm, lm).item() == 0.0
    noise = torch.randn(4, 49, 2, generator=torch.Generator().manual_seed(1))
    losses = [alignment_loss(lm + s * noise, lm).item() for s in (0.5, 1.0, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    assert losses[2] == pytest.approx(4 * losses[1], rel=1e-4)  # squared error
    # normalised by the inter-ocular distance: the same relative error at any crop size
    big = face_landmarks(4, 176, 200)
    ratio = (big[:, 25:31].mean(1) - big[:, 19:25].mean(1)).norm(dim=-1) / (
        lm[:, 25:31].mean(1) - lm[:, 19:25].mean(1)
    ).norm(dim=-1)
    scaled = alignment_loss(big + ratio[:, None, None] * noise, big).item()
    assert scaled == pytest.approx(losses[1], rel=0.05)


def test_jaanet_predicts_landmarks_and_scores_them():
    torch.manual_seed(0)
    enc = create_encoder("jaanet", 12, size="tiny")
    assert enc.alignment_weight == 0.5 and enc.aus == tuple(DATASET_AUS["bp4d"])
    lm = face_landmarks(3, 56, 64)
    z, predicted = enc.forward_with_landmarks(torch.randn(3, 3, 56, 56), lm)
    assert z.shape == (3, 12, 64) and predicted.shape == (3, 49, 2)
    loss = enc.alignment_loss(predicted, lm)
    loss.backward()
    assert loss > 0 and enc.align_output[-1].weight.grad.abs().sum() > 0


def test_jaanet_settings():
    enc = create_encoder(
        "jaanet", 12, size="tiny", aus=["AU1", "AU2", 4, 6, 7, 10, 12, 15, 23, 24, 25, 26]
    )
    assert enc.aus == (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)  # Aff-Wild2's, not BP4D's
    assert create_encoder("jaanet", 8, size="tiny", input_size=64).input_size == 64
    with pytest.raises(ValueError, match="multiple of 8 and at least 32, got input_size 60"):
        create_encoder("jaanet", 8, size="tiny", input_size=60)
    with pytest.raises(ValueError, match="no default AU list for 5 AUs"):
        create_encoder("jaanet", 5, size="tiny")
    with pytest.raises(ValueError, match="attention_from must be one of landmarks, prediction"):
        create_encoder("jaanet", 8, size="tiny", attention_from="oracle")
    torch.manual_seed(0)
    own = create_encoder("jaanet", 8, size="tiny", attention_from="prediction").eval()
    x, lm = torch.randn(2, 3, 56, 56), face_landmarks(2, 56, 64)
    with torch.no_grad():  # the landmarks passed in do not place the maps, the prediction does
        torch.testing.assert_close(own(x, lm), own(x, lm + 5.0))


# --- landmark plumbing of training and evaluation -----------------------------------------------
def settings_for(encoder: str, method: str) -> dict:
    from aunce.config import load_config

    cfg = load_config(REPO / "config" / "smoke.yaml")
    return {
        "dataset": "bp4d",
        "encoder": {"name": encoder, "size": "tiny", "feature_dim": 16},
        "method": cfg["methods"][method],
        "method_name": method,
        "pretrain": dict(cfg["pretrain"], epochs=1, batch_size=8),
        "image": cfg["image"],
        "device": "cpu",
        "amp": "none",
        "threads": 0,
    }


@pytest.mark.parametrize(("encoder", "method"), [("jaanet", "aunce"), ("roi", "wce")])
def test_training_and_embedding_pass_the_crop_landmarks(bp4d_cache, tmp_path, encoder, method):
    import pandas as pd

    from aunce.data.cache import open_cache
    from aunce.evaluate import extract
    from aunce.train import load_encoder, pretrain, run_dir

    settings = settings_for(encoder, method)
    pretrain(bp4d_cache, settings, [("1", 0)], tmp_path)
    history = pd.read_csv(run_dir(tmp_path, "1", 0) / "history.csv")
    assert np.isfinite(history["loss"]).all()
    if encoder == "jaanet":
        assert history["alignment_loss"].gt(0).all()
    else:
        assert "alignment_loss" not in history
    model, ckpt = load_encoder(run_dir(tmp_path, "1", 0) / "encoder.pt", torch.device("cpu"))
    assert model.needs_landmarks and ckpt["aus"] == open_cache(bp4d_cache).aus
    cache = open_cache(bp4d_cache)
    idx = np.array([5, 1, 3])
    z = extract(model, cache.images, idx, settings, torch.device("cpu"), cache.landmarks)
    assert z.shape == (3, 12, 16) and np.isfinite(z).all()
    with pytest.raises(ValueError, match="needs landmarks"):
        extract(model, cache.images, idx, settings, torch.device("cpu"))


def test_training_refuses_a_cache_without_landmarks(bp4d_cache, tmp_path):
    import shutil

    from aunce.io import file_sha256 as sha256_file
    from aunce.train import pretrain

    copy = tmp_path / "cache"
    shutil.copytree(bp4d_cache, copy)
    lm = np.load(copy / "landmarks.npy")
    lm[::2] = np.nan  # e.g. a dataset read without landmarks
    np.save(copy / "landmarks.npy", lm)
    meta = json.loads((copy / "cache.json").read_text())  # as its cache.json would record it
    meta["sha256"]["landmarks.npy"] = sha256_file(copy / "landmarks.npy")
    (copy / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(AunceError, match="encoder roi needs landmarks, but some frames have none"):
        pretrain(copy, settings_for("roi", "wce"), [("3", 0)], tmp_path / "out")


# --- paper sizes (timm backbones built from scratch; select with -m paper_size) -----------------
PAPER_COUNTS = {  # published backbones, parameters without classifier
    "resnet50": ("backbone", 23_508_032),  # ResNet50: 23.5 M
    "roi": ("backbone", 12_354_880),  # VGG16 conv1_1 .. conv5_2: 12.35 M
    "megraph": ("backbone", 86_743_224),  # Swin-B: 86.7 M
}


def jaanet_paper_count(k: int, d: int) -> int:
    """JA-Net's parameters from PyTorch-JAANet's layer list (unit_dim 8, 176 px), plus the per-AU
    embedding, computed by hand."""

    def conv(i, o, groups=1):
        return i * o * 9 // groups + o

    def bn(c):
        return 2 * c

    def hmr(i, o):  # conv, three patch convs (8x8, 4x4, 2x2 grids), bn
        branches = [(64, o, o // 2), (16, o // 2, o // 4), (4, o // 4, o // 4)]
        return conv(i, o) + sum(n * (bn(a) + conv(a, b)) for n, a, b in branches) + bn(o)

    def hlfeat(i):
        widths = [96, 96, 128, 128, 160, 160]
        return sum(conv(a, b) + bn(b) for a, b in zip([i] + widths[:-1], widths, strict=True))

    flat = 160 * 5 * 5  # 4000
    region = hmr(3, 32) + hmr(32, 64)
    align = hlfeat(64) + (flat * 512 + 512) + (512 * 98 + 98)
    refine = k * (conv(1, 64) + bn(64) + 2 * (conv(64, 64) + bn(64)) + conv(64, 1))
    local = k * (hlfeat(64) + flat * 64 + 64)
    glob = hlfeat(64) + 3 * flat * 512 + 512
    embed = k * ((64 + 512) * d + d) + bn(k * d)
    return region + align + refine + local + glob + embed


@pytest.fixture(scope="module")
def paper_encoders():
    built = {}

    def get(name):
        if name not in built:
            torch.manual_seed(0)
            built[name] = create_encoder(name, 12, size="paper")
        return built[name]

    return get


@pytest.mark.paper_size
@pytest.mark.parametrize("name", ENCODERS)
def test_paper_parameter_counts(paper_encoders, name):
    enc = paper_encoders(name)
    total = n_params(enc)
    if name == "jaanet":
        print(f"\n{name}: {total:,} parameters (JAA-Net v2 layers + per-AU embedding)")
        assert total == jaanet_paper_count(12, enc.feature_dim)
        return
    part, published = PAPER_COUNTS[name]
    count = n_params(getattr(enc, part))
    print(f"\n{name}: {part} {count:,} parameters (published {published:,}), total {total:,}")
    assert count == published


@pytest.mark.paper_size
@pytest.mark.parametrize("name", ENCODERS)
def test_paper_same_seed_and_batch_of_one(paper_encoders, name):
    enc = paper_encoders(name).eval()  # before any training step moves its batch-norm statistics
    torch.manual_seed(0)
    twin = create_encoder(name, 12, size="paper").eval()
    size = enc.input_size
    x = torch.randn(1, 3, size, size)
    lm = face_landmarks(1, size, 200 if name == "jaanet" else 256)
    with torch.no_grad():
        z = run(enc, x, lm)
        assert z.shape == (1, 12, enc.feature_dim)
        assert torch.equal(z, run(twin, x, lm))


@pytest.mark.paper_size
@pytest.mark.parametrize("name", ENCODERS)
def test_paper_forward_backward(paper_encoders, name):
    enc = paper_encoders(name).train()
    size = enc.input_size
    assert size == (176 if name == "jaanet" else 224)
    x = torch.randn(2, 3, size, size)
    lm = face_landmarks(2, size, 200 if name == "jaanet" else 256)
    z = run(enc, x, lm)
    assert z.shape == (2, 12, enc.feature_dim) and torch.isfinite(z).all()
    z.square().mean().backward()
    first = first_conv(enc).weight
    assert first.shape[1] == 3 and first.grad.abs().sum() > 0
    enc.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match=f"expects images \\(B, 3, {size}, {size}\\)"):
        run(enc, torch.randn(1, 3, 64, 64), lm[:1])


def test_megraph_neighbours_follow_the_config():
    """k = 4 with BP4D's 12 AUs and 3 with DISFA's 8 (ME-GraphAU); encoders.megraph.neighbors
    sets it (the AUNCE release keeps 4 on DISFA), and a checkpoint rebuilds with it."""
    from aunce.train import build_encoder

    spec = {"name": "megraph", "size": "tiny", "feature_dim": 8}
    disfa = [f"AU{n}" for n in DATASET_AUS["disfa"]]
    bp4d = [f"AU{n}" for n in DATASET_AUS["bp4d"]]
    assert build_encoder(spec, bp4d).head.fgg.neighbors == 4
    assert build_encoder(spec, disfa).head.fgg.neighbors == 3
    released = build_encoder(dict(spec, neighbors=4), disfa)
    assert released.head.fgg.neighbors == 4
    with pytest.raises(ValueError, match="no setting neighbors"):
        build_encoder({"name": "roi", "size": "tiny", "neighbors": 4}, bp4d)
