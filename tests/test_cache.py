import numpy as np
import pytest
from conftest import REPO

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


def tiled(source, out, frames: int):
    """``source`` (a synthetic dataset) repeated to ``frames`` rows: the same images, so that only
    the manifest and the landmarks grow."""
    import pandas as pd

    from aunce.io import read_json, write_json

    out.mkdir()
    (out / "images").symlink_to(source / "images")
    df = pd.read_csv(source / "labels.csv")
    reps = -(-frames // len(df))
    pd.concat([df] * reps, ignore_index=True).iloc[:frames].to_csv(out / "labels.csv", index=False)
    points = np.load(source / "landmarks.npy")
    np.save(out / "landmarks.npy", np.concatenate([points] * reps)[:frames])
    write_json(out / "dataset.json", {**read_json(source / "dataset.json"), "n_frames": frames})
    return out


def test_the_cache_build_holds_no_copy_of_the_manifest_or_landmarks(synthetic_bp4d, tmp_path):
    """The build's memory does not grow with a copy of the manifest's CSV or with the landmark file
    (BENCHMARKS.md "Scale": 1.4 KB a frame before, from holding both). Measured as the traced
    Python and NumPy allocations' peak at N and 10 N frames, in a fresh process after a first
    build (the imports): in a process that has run other tests the peak moves by megabytes."""
    import json
    import subprocess
    import sys

    for frames in (2_000, 20_000):
        tiled(synthetic_bp4d, tmp_path / f"data{frames}", frames)
    script = (
        "import gc, json, sys, tracemalloc\n"
        "from pathlib import Path\n"
        "from aunce.data.cache import build_cache\n"
        "root, peaks = Path(sys.argv[1]), {}\n"
        "build_cache('synthetic', root / 'data2000', root / 'warm', 16, workers=1)\n"
        "for frames in (2_000, 20_000):\n"
        "    gc.collect()\n"
        "    tracemalloc.start()\n"
        "    build_cache('synthetic', root / f'data{frames}', root / f'cache{frames}', 16,\n"
        "                workers=1)\n"
        "    peaks[frames] = tracemalloc.get_traced_memory()[1]\n"
        "    tracemalloc.stop()\n"
        "print(json.dumps(peaks))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = {int(k): v for k, v in json.loads(proc.stdout.splitlines()[-1]).items()}
    per_frame = (peaks[20_000] - peaks[2_000]) / 18_000
    # measured 2026-12-07: 14 bytes a frame (both peaks are the build's fixed working set, about
    # 5.4 MB), 1,036 with the build that held the landmark file and a copy of it
    assert per_frame < 450, f"{per_frame:.0f} bytes a frame ({peaks})"
    cache = open_cache(tmp_path / "cache20000")
    first = open_cache(tmp_path / "cache2000")
    assert np.array_equal(cache.images[:2_000], first.images)
    assert np.array_equal(cache.landmarks[:2_000], first.landmarks, equal_nan=True)
