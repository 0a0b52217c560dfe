"""The warm start (issue 14.3): its population is disjoint from every dataset's subjects and carries
no AU label, its loss is SimCLR's NT-Xent, and its weights are what each encoder's `pretrained` loads."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO

from aunce import AunceError
from aunce.data import synthetic
from aunce.encoders import create_encoder
from aunce.warmstart import TRUNKS, nt_xent, pooled, random_resized_crop, trunk, warm_start

ENCODERS = list(TRUNKS)


# --- NT-Xent against the paper's formula, one anchor at a time ---------------------------------
def nt_xent_reference(z1, z2, temperature):
    """SimCLR (Chen et al. 2020) Eq. 1, l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t),
    averaged over the 2N anchors (both orders of every pair), written as loops."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sims = [float(torch.nn.functional.cosine_similarity(z[i], z[k], dim=0)) for k in range(n2)]
        denominator = sum(math.exp(sims[k] / temperature) for k in range(n2) if k != i)
        total += -math.log(math.exp(sims[j] / temperature) / denominator)
    return total / n2


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 0.5), (5, 8, 0.2), (16, 4, 1.0)])
def test_nt_xent_matches_the_reference(batch, dim, temperature):
    gen = torch.Generator().manual_seed(batch)
    z1, z2 = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
    loss, _ = nt_xent(z1, z2, temperature)
    assert loss.item() == pytest.approx(nt_xent_reference(z1, z2, temperature), rel=1e-5)


def test_nt_xent_accuracy_and_errors():
    z = torch.eye(4)
    loss, acc = nt_xent(z, z.clone(), 0.1)  # twins identical, others orthogonal
    assert acc.item() == 1.0 and loss.item() < 1e-3
    _, acc = nt_xent(z, z.roll(1, dims=0), 0.1)  # every twin is another image's view
    assert acc.item() == 0.0
    with pytest.raises(ValueError, match="temperature must be positive, got 0"):
        nt_xent(z, z, 0)
    with pytest.raises(ValueError, match=r"two \(B, E\) batches"):
        nt_xent(z, z[:3], 0.1)


def test_random_resized_crop_keeps_the_image_at_full_area():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 36, 36)
    out = random_resized_crop(x, 36, gen, min_area=1.0, ratio=(1.0, 1.0))
    assert out.shape == (6, 3, 36, 36)
    for a, b in zip(out, x, strict=True):  # the whole image, mirrored or not
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)
    out = random_resized_crop(x, 32, gen, min_area=0.3)
    assert out.shape == (6, 3, 32, 32) and torch.isfinite(out).all()
    ramp = torch.linspace(0, 1, 36).expand(6, 3, 36, 36)  # grows along each row
    out = random_resized_crop(ramp, 32, gen, min_area=0.3)
    rows = out[:, 0, 16]
    assert ((rows.diff() >= -1e-6).all(1) | (rows.diff() <= 1e-6).all(1)).all()  # mirrored or not
    assert ((rows[:, -1] - rows[:, 0]).abs() < 0.999).all()  # a part of the image, zoomed in


def test_pooled_features():
    assert pooled(torch.rand(2, 16, 8)).shape == (2, 32)  # 4x4 tokens of 8 -> 2x2 cells
    assert pooled(torch.rand(2, 8, 6, 6)).shape == (2, 32)
    assert pooled(torch.rand(2, 10)).shape == (2, 10)
    with pytest.raises(ValueError, match="square token grid, got 15 tokens"):
        pooled(torch.rand(2, 15, 8))


# --- the population: disjoint from every dataset, no labels --------------------------------------
def dataset_sizes():
    """(seed, profile, n_subjects) of every synthetic dataset of the shipped configs, and each
    profile at its largest default size."""
    sizes = {(0, p, prof.n_subjects) for p, prof in synthetic.PROFILES.items()}
    for path in (REPO / "config").glob("*.yaml"):
        cfg = yaml.safe_load(path.read_text()) or {}
        for ds in (cfg.get("datasets") or {}).values():
            s = ds.get("synthetic") or {}
            if ds.get("source") == "synthetic":
                profile = s.get("profile", "bp4d")
                n = s.get("n_subjects") or synthetic.PROFILES[profile].n_subjects
                sizes.add((s.get("seed", 0), profile, n))
    return sorted(sizes)


def test_population_subjects_are_no_dataset_subjects():
    sizes = dataset_sizes()
    seeds = {seed for seed, _, _ in sizes}
    n_max = max(n for _, _, n in sizes)
    dataset_keys = {(seed, synthetic.subject_seed(seed, i).spawn_key)
                    for seed in seeds for i in range(n_max)}  # fmt: skip
    population_keys = {(seed, synthetic.population_seed(seed, i).spawn_key)
                       for seed in seeds for i in range(400)}  # fmt: skip
    assert not dataset_keys & population_keys
    # and the faces themselves: no population identity equals a dataset subject's
    faces = {
        synthetic.make_identity(np.random.default_rng(synthetic.subject_seed(seed, i)), 32)
        .shape.round(9).tobytes()
        for seed in seeds for i in range(n_max)
    }  # fmt: skip
    assert len(faces) == len(seeds) * n_max  # sanity: distinct subjects, distinct faces
    for seed in seeds:
        for i in range(400):
            rng = np.random.default_rng(synthetic.population_seed(seed, i))
            assert synthetic.make_identity(rng, 32).shape.round(9).tobytes() not in faces
    names = {s for _, p, n in sizes for s in synthetic.subject_ids(synthetic.PROFILES[p], n)}
    assert not names & set(synthetic.population_subject_ids(400))


def test_subject_seed_is_what_generate_renders_from(tmp_path):
    """The dataset faces the test above checks are the ones `generate` draws."""
    root = synthetic.generate(
        "disfa", tmp_path / "d", n_subjects=3, frames_per_subject=1, workers=1
    )
    first = synthetic.subject_ids(synthetic.PROFILES["disfa"], 3)[0]
    row = pd.read_csv(root / "labels.csv")["subject"].tolist().index(first)
    args = ("disfa", first, synthetic.subject_seed(0, 0), 64,
            synthetic._sequences(synthetic.PROFILES["disfa"], 1),
            np.load(root / "intensities.npy")[row : row + 1].astype(np.float64),
            tmp_path / "again")  # fmt: skip
    _, landmarks = synthetic._render_subject(args)
    # equal up to the float32 the intensities were stored in; another face is pixels away
    np.testing.assert_allclose(landmarks[0], np.load(root / "landmarks.npy")[row], atol=1e-3)


def test_population_is_deterministic_unlabelled_and_aligned(tmp_path):
    kwargs = dict(seed=3, n_subjects=4, frames_per_subject=3, image_size=48, aligned_size=36)
    a = synthetic.generate_population(tmp_path / "a", workers=1, **kwargs)
    b = synthetic.generate_population(tmp_path / "b", workers=2, **kwargs)
    assert (a / "images.npy").read_bytes() == (b / "images.npy").read_bytes()
    images, meta = synthetic.read_population(a)
    assert images.shape == (12, 36, 36, 3) and images.dtype == np.uint8
    assert meta["n_frames"] == 12 and meta["aligned_size"] == 36
    manifest = pd.read_csv(a / "manifest.csv")
    assert list(manifest.columns) == ["subject", "frame"]  # no AU label, no pose, no landmarks
    assert sorted(p.name for p in a.iterdir()) == ["images.npy", "manifest.csv", "population.json"]
    assert len(set(manifest["subject"])) == 4
    with pytest.raises(AunceError, match="not a warm-start population"):
        synthetic.read_population(tmp_path)
    with pytest.raises(AunceError, match="at least 2 subjects, got 1"):
        synthetic.generate_population(tmp_path / "c", n_subjects=1)


# --- the job: weights every encoder's `pretrained` loads -----------------------------------------
@pytest.fixture(scope="module")
def population(tmp_path_factory):
    return synthetic.generate_population(
        tmp_path_factory.mktemp("population") / "p", n_subjects=4, frames_per_subject=4,
        aligned_size=36, workers=1,
    )  # fmt: skip


def settings(name, size="tiny", epochs=2):
    return {
        "encoder": {"name": name, "size": size, "feature_dim": 16},
        "image": {"input_size": 32, "normalize": "imagenet"},
        "warm_start": {"seed": 1, "epochs": epochs, "batch_size": 8, "lr": 1e-3,
                       "weight_decay": 1e-4, "temperature": 0.2, "min_crop_area": 0.35},
        "device": "cpu", "threads": 1,
    }  # fmt: skip


@pytest.mark.parametrize("name", ENCODERS)
def test_warm_start_weights_load_into_every_encoder(population, tmp_path, name):
    path = warm_start(population, settings(name), tmp_path / name)
    saved = torch.load(path, weights_only=True)["state_dict"]
    history = pd.read_csv(tmp_path / name / "history.csv")
    assert list(history["epoch"]) == [1, 2] and np.isfinite(history["loss"]).all()
    fresh = create_encoder(name, 12, size="tiny", input_size=32, feature_dim=16)
    assert any(
        not torch.equal(v, fresh.state_dict()[f"{TRUNKS[name]}.{k}"]) for k, v in saved.items()
    )  # fmt: skip  (training moved the backbone)
    for k in (8, 12):  # any dataset's AU count: the backbone does not depend on it
        enc = create_encoder(name, k, size="tiny", pretrained=str(path), input_size=32,
                             feature_dim=16)  # fmt: skip
        loaded = trunk(enc, name).state_dict()
        assert loaded.keys() == saved.keys()
        assert all(torch.equal(loaded[key], saved[key]) for key in saved)


def test_warm_start_is_deterministic_to_the_byte(population, tmp_path):
    from aunce.io import check_digest

    a = warm_start(population, settings("megraph", epochs=1), tmp_path / "a")
    b = warm_start(population, settings("megraph", epochs=1), tmp_path / "b")
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.read_bytes() == b.read_bytes()  # same weights, same file
    assert check_digest(a) == check_digest(b)  # with the SHA-256 sidecar every loader checks


def test_warm_start_refusals(population, tmp_path):
    with pytest.raises(AunceError, match="stands in for ImageNet weights of the tiny encoders"):
        warm_start(population, settings("resnet50", size="paper"), tmp_path)
    big = dict(settings("megraph"))
    big["warm_start"] = dict(big["warm_start"], batch_size=64)
    with pytest.raises(AunceError, match="16 population frames, fewer than one batch of 64"):
        warm_start(population, big, tmp_path)
    with pytest.raises(ValueError, match="no warm start for encoder 'vit'"):
        trunk(torch.nn.Module(), "vit")
    assert not (Path(tmp_path) / "backbone.pt").exists()


# --- the shipped configs: the default starts from the warm start; budgets of issue 14.4 --------
def shipped(name):
    from aunce.config import load_config

    return load_config(REPO / "config" / name)


def test_default_warm_starts_every_encoder_and_trains_tables_2_to_6_fully():
    from aunce.config import resolved_warm_start

    cfg = shipped("config.yaml")
    # MEGraph, the encoder of Tables 2-7, gets the full warm start
    assert resolved_warm_start(cfg, "megraph")["epochs"] == cfg["warm_start"]["epochs"]
    assert "encoder_epochs" not in resolved_warm_start(cfg, "jaanet")
    assert {e["pretrained"] for e in cfg["encoders"].values()} == {"warm"}
    assert len(cfg["seeds"]) >= 2
    for table in ("table2", "table3", "table4", "table5", "table6"):
        spec = cfg["tables"][table]
        assert "folds" not in spec and len(spec.get("seeds", cfg["seeds"])) >= 2, table


def test_evidence_config_runs_every_table_on_every_fold_with_three_seeds():
    cfg = shipped("evidence.yaml")
    assert len(cfg["seeds"]) == 3
    assert {e["pretrained"] for e in cfg["encoders"].values()} == {"warm"}
    for table, spec in cfg["tables"].items():
        assert "folds" not in spec and "seeds" not in spec, table
    default = shipped("config.yaml")
    shared = ("datasets", "image", "encoders", "pretrain", "linear_eval", "methods")
    for key in shared:  # the default's experiment, a larger budget
        if key == "methods":  # and the A/A control's replicate (docs/report.md, "The A/A control")
            replicates = {m: v for m, v in cfg[key].items() if v.get("replicate")}
            assert list(replicates) == ["wce_replicate"]
            assert {k: v for k, v in cfg[key].items() if k not in replicates} == default[key]
            continue
        assert cfg[key] == default[key], key
    # the same warm starts, every encoder's at full length (the default halves the encoders only
    # its quick Table 8 uses)
    assert "encoder_epochs" not in cfg["warm_start"]
    assert cfg["warm_start"] == {k: v for k, v in default["warm_start"].items()
                                 if k != "encoder_epochs"}  # fmt: skip


def test_encoder_epochs_give_one_encoder_its_own_warm_start_budget(tmp_path):
    from aunce import AunceError
    from aunce.config import check_config, resolved_warm_start

    cfg = shipped("config.yaml")
    cfg["warm_start"]["encoder_epochs"] = {"roi": 3}
    assert resolved_warm_start(cfg, "roi")["epochs"] == 3
    assert resolved_warm_start(cfg, "jaanet") == resolved_warm_start(cfg, "megraph")
    cfg["warm_start"]["encoder_epochs"] = {"vgg": 3}
    with pytest.raises(AunceError, match=r"warm_start.encoder_epochs: 'vgg' is not one of the"):
        check_config(cfg)
