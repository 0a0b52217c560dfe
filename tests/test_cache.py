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


def encoded(ext: str) -> bytes:
    import cv2

    rng = np.random.default_rng(0)
    ok, data = cv2.imencode(ext, rng.integers(0, 255, (48, 40, 3), dtype=np.uint8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_images_are_found_whole_ones_pass(tmp_path, ext):
    from aunce.data.cache import read_image, truncation

    whole = encoded(ext)
    assert truncation(whole) is None
    assert read_image(_write(tmp_path / f"whole{ext}", whole)).shape == (48, 40, 3)
    kind = "JPEG" if ext == ".jpg" else "PNG"
    for cut in (len(whole) // 2, len(whole) - 2):  # half the scan, or only the end marker lost
        path = _write(tmp_path / f"cut{cut}{ext}", whole[:cut])
        with pytest.raises(AunceError, match=rf"^{path}: truncated {kind} \({cut} bytes"):
            read_image(path)
    with pytest.raises(AunceError, match="not an image OpenCV can read"):
        read_image(_write(tmp_path / f"junk{ext}", b"junk"))
    with pytest.raises(AunceError, match="image missing"):
        read_image(tmp_path / f"absent{ext}")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_truncated_image_stops_the_cache_naming_the_file(synthetic_bp4d, tmp_path):
    import shutil

    from aunce.data.cache import build_cache

    root = tmp_path / "data"
    shutil.copytree(synthetic_bp4d, root)
    image = sorted((root / "images").rglob("*.png"))[5]
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(AunceError, match=rf"^{image}: truncated PNG \(200 bytes"):
        build_cache("synthetic", root, tmp_path / "cache", 32)
    assert not (tmp_path / "cache").exists()  # the partial folder resumes once the file is fixed
