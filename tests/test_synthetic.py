import hashlib

import numpy as np
import pytest

from aunce import AunceError
from aunce.data import au_names, read_dataset
from aunce.data.catalog import DATASET_AUS, PARTITIONS
from aunce.data.synthetic import generate, read_synthetic


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_manifest_follows_the_spec(synthetic_bp4d):
    df = read_dataset("synthetic", synthetic_bp4d)
    assert list(df.columns[:4]) == ["image", "subject", "sequence", "frame"]
    assert au_names(df) == [f"AU{n}" for n in DATASET_AUS["bp4d"]]
    assert all(df[c].dtype == np.int8 for c in au_names(df))
    assert set(df["test_fold"]) == {1, 2, 3}
    keys = list(zip(df["subject"], df["sequence"], df["frame"], strict=True))
    assert keys == sorted(keys)
    # subjects are real BP4D ids and sit in their real partition: P3 -> test_fold 1
    for subject, fold in df.groupby("subject")["test_fold"].first().items():
        part = next(i for i, p in enumerate(PARTITIONS["bp4d"]) if subject in p)
        assert fold == {0: 3, 1: 2, 2: 1}[part]
    assert (synthetic_bp4d / df["image"].iloc[0]).exists()
    assert np.load(synthetic_bp4d / "landmarks.npy").shape == (len(df), 68, 2)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate("disfa", tmp_path / "a", seed=3, n_subjects=3, frames_per_subject=4, workers=1)
    b = generate("disfa", tmp_path / "b", seed=3, n_subjects=3, frames_per_subject=4, workers=2)
    c = generate("disfa", tmp_path / "c", seed=4, n_subjects=3, frames_per_subject=4, workers=1)
    assert digest(a) == digest(b) != digest(c)


def test_label_noise_keeps_true_labels(tmp_path):
    out = generate(
        "bp4d",
        tmp_path / "noisy",
        seed=1,
        n_subjects=6,
        frames_per_subject=20,
        label_noise=0.2,
        workers=1,
    )
    df = read_synthetic(out)
    flipped = (df["AU12"] != df["AU12_clean"]).mean()
    assert flipped == pytest.approx(0.2, abs=0.01)


def test_fixed_split_profile(tmp_path):
    df = read_synthetic(
        generate("gft", tmp_path / "gft", n_subjects=10, frames_per_subject=2, workers=1)
    )
    assert set(df["split"]) == {"train", "test"} and "test_fold" not in df.columns


def test_bad_arguments(tmp_path):
    with pytest.raises(AunceError, match="unknown synthetic profile 'bp5d'"):
        generate("bp5d", tmp_path / "x")
    with pytest.raises(AunceError, match="at most 41 subjects"):
        generate("bp4d", tmp_path / "x", n_subjects=50)
    with pytest.raises(AunceError, match="not a synthetic dataset"):
        read_synthetic(tmp_path)
