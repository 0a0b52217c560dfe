import hashlib
import json

import numpy as np
import pytest

from aunce import AunceError
from aunce.data import au_names, read_dataset, synthetic
from aunce.data.catalog import DATASET_AUS, OCCURRENCE_RATES, PARTITIONS
from aunce.data.synthetic import (
    AU_DISPLACEMENT,
    PROFILES,
    TEMPLATE,
    deform,
    flip_labels,
    generate,
    latent_processes,
    make_identity,
    pose,
    read_synthetic,
    render,
)
from aunce.tables import training_set


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
    landmarks = np.load(synthetic_bp4d / "landmarks.npy")
    assert landmarks.shape == (len(df), 68, 2)
    assert landmarks.min() > 0 and landmarks.max() < 64  # inside the 64 px frames


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate("disfa", tmp_path / "a", seed=3, n_subjects=3, frames_per_subject=4, workers=1)
    b = generate("disfa", tmp_path / "b", seed=3, n_subjects=3, frames_per_subject=4, workers=2)
    c = generate("disfa", tmp_path / "c", seed=4, n_subjects=3, frames_per_subject=4, workers=1)
    assert digest(a) == digest(b) != digest(c)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_training_rates_match_table1(tmp_path, profile):
    df = read_synthetic(generate(profile, tmp_path / profile, seed=2, n_subjects=12,
                                 frames_per_subject=10, workers=1))  # fmt: skip
    train = training_set(df)
    for au, rate in OCCURRENCE_RATES[profile].items():
        known = train[f"AU{au}"] >= 0
        measured = 100 * (train.loc[known, f"AU{au}"] == 1).mean()
        assert abs(measured - rate) <= 3.0, (profile, au, measured, rate)


def test_profiles_have_the_real_structure(tmp_path):
    gft = read_synthetic(
        generate("gft", tmp_path / "gft", n_subjects=10, frames_per_subject=2, workers=1)
    )
    assert set(gft["split"]) == {"train", "test"} and "test_fold" not in gft.columns
    plus = read_synthetic(
        generate("bp4d_plus", tmp_path / "p", n_subjects=4, frames_per_subject=4, workers=1)
    )
    assert set(plus["split"]) == {"test"} and set(plus["sequence"]) <= {"T1", "T6", "T7", "T8"}
    aff = read_synthetic(generate("affwild2", tmp_path / "a", n_subjects=14, frames_per_subject=30,
                                  workers=1))  # fmt: skip
    assert set(aff["split"]) == {"train", "validation"}
    assert (
        aff["subject"].str.endswith("_left").any() and aff["subject"].str.endswith("_right").any()
    )
    invalid = (aff[au_names(aff)] == -1).all(axis=1)
    assert (
        invalid.any() and ((aff[au_names(aff)] == -1).any(axis=1) == invalid).all()
    )  # whole frames
    disfa = np.load(generate("disfa", tmp_path / "d", n_subjects=3, frames_per_subject=20, workers=1)
                    / "intensities.npy")  # fmt: skip
    assert disfa.min() >= 0 and disfa.max() <= 5 and ((disfa > 0) & (disfa < 2)).any()


def test_label_structure_is_smooth_correlated_and_subject_specific():
    aus = DATASET_AUS["bp4d"]
    rng = np.random.default_rng(0)
    latents = [latent_processes(rng, aus, [200]) for _ in range(40)]
    lag1 = np.mean([np.corrcoef(x[:-1, 0], x[1:, 0])[0, 1] for x in latents])
    assert lag1 > 0.8  # temporally smooth
    pooled = np.concatenate(latents)
    corr = np.corrcoef(pooled.T)
    assert corr[aus.index(6), aus.index(12)] > 0.4 and corr[aus.index(1), aus.index(2)] > 0.5
    subject_means = np.array([x[:, aus.index(12)].mean() for x in latents])
    assert subject_means.std() > 0.3  # base rates vary by subject


@pytest.mark.parametrize("rate,miss_ratio", [(0.1, 1.0), (0.2, 1.0), (0.3, 3.0), (0.2, 0.5)])
def test_label_noise_flips_the_configured_fraction(rate, miss_ratio):
    rng = np.random.default_rng(1)
    labels = (rng.random((4000, 5)) < [0.1, 0.2, 0.3, 0.4, 0.5]).astype(np.int8)
    labels[:100, 0] = -1
    noisy = flip_labels(labels, rate, np.random.default_rng(2), miss_ratio)
    assert (noisy[:100, 0] == -1).all()  # unknown labels never flip
    for k in range(5):
        known = labels[:, k] >= 0
        flipped = noisy[known, k] != labels[known, k]
        assert flipped.mean() == pytest.approx(rate, abs=0.005)
        pos = labels[known, k] == 1
        if miss_ratio * rate / (pos.mean() * miss_ratio + 1 - pos.mean()) < 1:
            ratio = flipped[pos].mean() / flipped[~pos].mean()
            assert ratio == pytest.approx(miss_ratio, rel=0.1)


def test_generated_noise_keeps_true_labels(tmp_path):
    df = read_synthetic(generate("bp4d", tmp_path / "n", seed=1, n_subjects=6, frames_per_subject=20,
                                 label_noise=0.2, miss_ratio=2.0, workers=1))  # fmt: skip
    flipped = (df["AU12"] != df["AU12_clean"]).mean()
    assert flipped == pytest.approx(0.2, abs=0.01)
    clean = read_synthetic(generate("bp4d", tmp_path / "c", seed=1, n_subjects=6, frames_per_subject=20,
                                    workers=1))  # fmt: skip
    assert (clean["AU12"] == df["AU12_clean"]).all()  # same seed: same truth, same images
    assert digest(tmp_path / "c" / "images") == digest(tmp_path / "n" / "images")


@pytest.mark.parametrize("au", sorted(AU_DISPLACEMENT))
def test_landmarks_move_with_each_au(au):
    neutral = TEMPLATE
    active = deform(neutral, {au: 5.0})
    moved = np.linalg.norm(active - neutral, axis=1)
    assert moved.max() > 0.01
    # linear in the intensity until lids or lips meet
    low, lower = deform(neutral, {au: 0.5}), deform(neutral, {au: 0.25})
    assert np.allclose(low - neutral, 2 * (lower - neutral))


@pytest.mark.parametrize("aus", [{6: 5.0, 7: 5.0}, {23: 5.0, 24: 5.0, 17: 5.0}, {15: 5.0, 24: 5.0}])
def test_lids_and_lips_close_but_never_cross(aus):
    shape = deform(TEMPLATE, aus)
    for upper, lower in (([37, 38, 43, 44], [41, 40, 47, 46]), ([50, 51, 52], [61, 62, 63]),
                         ([61, 62, 63], [67, 66, 65]), ([67, 66, 65], [58, 57, 56])):  # fmt: skip
        assert (shape[lower, 1] > shape[upper, 1]).all()  # y points down


def test_aus_move_the_right_features():
    up = lambda au, idx: (deform(TEMPLATE, {au: 5.0}) - TEMPLATE)[idx, 1].mean()  # noqa: E731
    assert up(1, [21, 22]) < 0 and up(2, [17, 26]) < 0  # brows rise (y points down)
    assert up(4, list(range(17, 27))) > 0  # brows lower
    assert up(12, [48, 54]) < 0 and up(15, [48, 54]) > 0  # corners up / down
    assert up(26, [8]) > 0 and up(25, [66]) > 0  # jaw drops, lips part
    spread = deform(TEMPLATE, {12: 5.0})
    assert spread[54, 0] - spread[48, 0] > TEMPLATE[54, 0] - TEMPLATE[48, 0]


def test_rendered_pixels_change_where_the_au_acts():
    rng = np.random.default_rng(0)
    prof = PROFILES["bp4d"]
    identity = make_identity(rng, 64)
    light = (1.0, np.zeros(2))

    def draw(values):
        pts = pose(deform(identity.shape, values), 0.0, 0.62, np.zeros(2), 0.0, 64)
        prof_quiet = type(prof)(**{**prof.__dict__, "noise_std": 0.0})
        return render(identity, pts, values, 64, np.random.default_rng(1), prof_quiet, light), pts

    neutral, pts = draw({})
    smile, _ = draw({12: 5.0})
    diff = np.abs(smile.astype(int) - neutral.astype(int)).sum(-1)
    mouth = diff[
        int(pts[51, 1]) - 4 : int(pts[57, 1]) + 4, int(pts[48, 0]) - 4 : int(pts[54, 0]) + 4
    ]
    assert mouth.sum() > 0.5 * diff.sum()  # most of the change is around the mouth


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"profile": "bp5d"}, "unknown synthetic profile 'bp5d'"),
        ({"image_size": -64}, "image_size must be at least 32"),
        ({"n_subjects": 0}, "n_subjects must be at least 3"),
        ({"n_subjects": 50}, "at most 41 subjects"),
        ({"frames_per_subject": -1}, "frames_per_subject must be positive"),
        ({"label_noise": 0.5}, r"label_noise must lie in \[0, 0.5\)"),
        ({"label_noise": -0.1}, r"label_noise must lie in \[0, 0.5\)"),
        ({"miss_ratio": 0.0}, "miss_ratio must be positive"),
    ],
)
def test_bad_parameters_are_rejected(tmp_path, kwargs, match):
    args = {"profile": "bp4d", **kwargs}
    with pytest.raises(AunceError, match=match):
        generate(args.pop("profile"), tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


def test_not_a_dataset(tmp_path):
    with pytest.raises(AunceError, match="not a synthetic dataset"):
        read_synthetic(tmp_path)


def test_contact_sheet(synthetic_bp4d, tmp_path):
    from aunce.figures import contact_sheet

    out = contact_sheet(synthetic_bp4d, tmp_path / "sheet.png", n=6, columns=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's mode


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda rows: rows[3].__setitem__("AU12", "300"), r"line 4: AU12 label '300' is not 1, 0"),
        (lambda rows: rows[2].__setitem__("AU1", "2"), r"line 3: AU1 label '2' is not 1, 0 or -1"),
        (lambda rows: rows[1].__setitem__("AU4", "yes"), r"line 2: AU4 label 'yes' is not 1, 0"),
        (lambda rows: rows[4].__setitem__("AU6", ""), r"line 5: AU6 label '' is not 1, 0 or -1"),
        (lambda rows: rows.insert(2, None), r"line 3: blank line inside the file"),
        (lambda rows: rows.clear(), r"empty file \(expected a header and one line per frame\)"),
    ],
)  # fmt: skip
def test_bad_labels_name_file_line_and_value(synthetic_bp4d, tmp_path, edit, message):
    """An int8 cast would store 300 as 44 and 2 as 2; an empty or non-integer file was a
    traceback."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_bp4d, root)
    path = root / "labels.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines]
    edit(rows)
    text = "".join(
        "\n" if row is None else ",".join(row[h] for h in header) + "\n" for row in rows
    )
    path.write_text(text)
    with pytest.raises(AunceError, match=rf"^{path}: {message}"):
        read_synthetic(root)
    (root / "labels.csv").unlink()
    with pytest.raises(AunceError, match=rf"^{path}: file not found"):
        read_synthetic(root)


def f1_by_hand(labels: np.ndarray, predicted: np.ndarray) -> float:
    known = labels >= 0
    y, p = labels[known] == 1, predicted[known] == 1
    tp, fp, fn = (y & p).sum(), (~y & p).sum(), (y & ~p).sum()
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def split_rows(df, name: str) -> np.ndarray:
    if name == "all":
        return np.ones(len(df), bool)
    if name == "split":
        return (df["split"] != "train").to_numpy()
    return (df["test_fold"] == int(name)).to_numpy()


@pytest.mark.parametrize("profile,splits", [("bp4d", {"all", "1", "2", "3"}),
                                            ("affwild2", {"all", "split"})])  # fmt: skip
def test_ceiling_scores_the_true_states_against_the_labels(tmp_path, profile, splits):
    root = generate(profile, tmp_path / profile, seed=1, n_subjects=9, frames_per_subject=24,
                    label_noise=0.1, workers=1)  # fmt: skip
    df = read_synthetic(root)
    intensities = np.load(root / "intensities.npy")
    states = (intensities >= 2).astype(int)
    ceiling = json.loads((root / "ceiling.json").read_text())
    assert set(ceiling["splits"]) == splits
    for name, split in ceiling["splits"].items():
        rows = split_rows(df, name)
        assert split["n_frames"] == rows.sum() and 0 < split["f1_micro"] <= 1
        assert 0 < split["accuracy"] <= 1
        for k, au in enumerate(au_names(df)):  # the clean labels: what evaluations score
            expected = f1_by_hand(df[f"{au}_clean"].to_numpy()[rows], states[rows, k])
            assert split["f1"][au] == pytest.approx(expected)
    # the coder's labels depart from the states only around the threshold (intensity 2)
    labels = df[[f"{au}_clean" for au in au_names(df)]].to_numpy()
    differ = (labels >= 0) & ((labels == 1) != (states == 1))
    assert differ.any() and np.abs(intensities[differ] - 2).max() < 2.0
    assert np.abs(intensities[differ] - 2).mean() < 0.5


def test_without_coder_noise_the_labels_are_the_states(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "CODER_NOISE", 0.0)
    root = generate("disfa", tmp_path / "d", seed=1, n_subjects=3, frames_per_subject=20, workers=1)
    df = read_synthetic(root)
    states = (np.load(root / "intensities.npy") >= 2).astype(np.int8)
    assert (df[au_names(df)].to_numpy() == states).all()
    ceiling = json.loads((root / "ceiling.json").read_text())["splits"]["all"]
    assert ceiling["f1_macro"] == 1.0  # (a split without a positive of some AU scores 0 on it)
