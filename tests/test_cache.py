import numpy as np
import pytest

from aunce import AunceError
from aunce.data.cache import open_cache


def test_cache_contents(bp4d_cache, synthetic_bp4d):
    cache = open_cache(bp4d_cache)
    n = len(cache.manifest)
    assert cache.images.shape == (n, 64, 64, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    assert cache.landmarks.shape == (n, 49, 2) and np.isfinite(cache.landmarks).all()
    assert cache.labels.shape == (n, 12)
    assert set(cache.meta["sha256"]) == {
        "images.npy",
        "landmarks.npy",
        "manifest.csv",
        "report.json",
    }
    assert cache.meta["aligned_input"] is False  # synthetic faces are aligned from landmarks
    # eyes are level after alignment
    eyes = cache.landmarks[:, 19:25].mean(1) - cache.landmarks[:, 25:31].mean(1)
    assert np.abs(eyes[:, 1]).max() < 1e-3


def test_fold_splits_are_subject_independent(bp4d_cache):
    cache = open_cache(bp4d_cache)
    seen = set()
    for fold in ("1", "2", "3"):
        train, test = cache.split(fold)
        assert len(train) + len(test) == len(cache.manifest)
        subjects_train = set(cache.manifest["subject"].iloc[train])
        subjects_test = set(cache.manifest["subject"].iloc[test])
        assert not subjects_train & subjects_test
        seen |= subjects_test
    assert seen == set(cache.manifest["subject"])
    with pytest.raises(AunceError, match="fold 'split' asked of a cross-validated dataset"):
        cache.split("split")


def test_incomplete_cache_is_refused(tmp_path):
    (tmp_path / "images.npy").write_bytes(b"")
    with pytest.raises(AunceError, match="not a complete cache"):
        open_cache(tmp_path)
