"""Readers of the real layouts on small fake trees written here (a few frames each), their folds,
every error message, the landmark files and the alignment of a known rotation and scale."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from aunce import AunceError
from aunce.cli import main
from aunce.data import au_names, read_dataset, read_landmarks
from aunce.data.align import alignment_matrix, apply_matrix, to_49
from aunce.data.cache import build_cache, open_cache
from aunce.data.catalog import DATASET_AUS
from aunce.data.synthetic import TEMPLATE

BP4D_AUS = DATASET_AUS["bp4d"]


def image(path, size=(12, 10), value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def edit_line(path, number, new):
    lines = path.read_text().splitlines()
    lines[number - 1] = new
    path.write_text("\n".join(lines) + "\n")


def similarity(points, angle_deg, scale, shift):
    t = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return points @ rot.T + np.asarray(shift)


def landmark_csv(path, rows):
    """A per-sequence landmark file: {file name: (P, 2) points}."""
    points = len(next(iter(rows.values())))
    header = ["file"] + [f"x_{i}" for i in range(points)] + [f"y_{i}" for i in range(points)]
    lines = [",".join(header)]
    for name, pts in rows.items():
        lines.append(
            ",".join([name, *(f"{v:.6f}" for v in np.concatenate([pts[:, 0], pts[:, 1]]))])
        )
    write(path, "\n".join(lines) + "\n")


# --- BP4D --------------------------------------------------------------------------------------
def bp4d_row(frame, codes):
    row = ["0"] * 100
    row[0] = str(frame)
    for au, code in codes.items():
        row[au] = str(code)
    return ",".join(row)


def make_bp4d(root):
    """F001 (partition P1) T1 with 4-digit names and T2 3-digit, M011 (P2) unpadded, F007 (P3)."""
    header = ",".join(str(i) for i in range(100))
    layout = {
        ("F001", "T1"): ([1, 2, 3], "{:04d}.jpg"),
        ("F001", "T2"): ([10, 11], "{:03d}.jpg"),
        ("M011", "T1"): ([5, 6], "{}.jpg"),
        ("F007", "T3"): ([7], "{}.jpg"),
    }
    for (subject, task), (frames, name) in layout.items():
        rows = [header]
        for i, frame in enumerate(frames):
            # AU1 active on the first frame, AU12 unknown (9) on the second; AU99 is not used
            rows.append(bp4d_row(frame, {1: int(i == 0), 12: 9 if i == 1 else 1, 99: 9}))
            image(root / subject / task / name.format(frame))
        write(root / "AUCoding/AU_OCC" / f"{subject}_{task}.csv", "\n".join(rows) + "\n")
    return root


def test_bp4d_manifest_and_folds(tmp_path):
    report = {}
    df = read_dataset("bp4d", make_bp4d(tmp_path), report=report)
    assert list(df.columns) == ["image", "subject", "sequence", "frame"] + [
        f"AU{a}" for a in BP4D_AUS
    ] + ["test_fold"]
    assert all(df[c].dtype == np.int8 for c in au_names(df))
    keys = list(zip(df["subject"], df["sequence"], df["frame"], strict=True))
    assert keys == sorted(keys) and len(df) == 8
    assert df.set_index("frame")["image"].to_dict() == {
        1: "F001/T1/0001.jpg", 2: "F001/T1/0002.jpg", 3: "F001/T1/0003.jpg",
        10: "F001/T2/010.jpg", 11: "F001/T2/011.jpg", 5: "M011/T1/5.jpg", 6: "M011/T1/6.jpg",
        7: "F007/T3/7.jpg",
    }  # fmt: skip
    # P1 -> test_fold 3, P2 -> 2, P3 -> 1
    assert df.groupby("subject")["test_fold"].first().to_dict() == {"F001": 3, "M011": 2, "F007": 1}
    f001 = df[df["sequence"] == "T1"].set_index(["subject", "frame"])
    assert f001.loc[("F001", 1), "AU1"] == 1 and f001.loc[("F001", 2), "AU1"] == 0
    assert f001.loc[("F001", 2), "AU12"] == -1  # 9 -> unknown
    assert f001.loc[("F001", 3), "AU12"] == 1
    assert report["frames"] == 8 and report["label_files"] == 4 and report["reader"] == "bp4d"


BP4D_ERRORS = [
    (lambda r: (r / "F001/T1/0002.jpg").unlink(),
     r"F001_T1\.csv: line 3: frame 2 has no image .*F001/T1/2\.jpg \(unpadded or zero-padded\)"),
    (lambda r: edit_line(r / "AUCoding/AU_OCC/F001_T1.csv", 3, "2,0,1,0"),
     r"F001_T1\.csv: line 3: 4 fields where the header has 100 \(truncated or malformed line\)"),
    (lambda r: edit_line(r / "AUCoding/AU_OCC/F001_T1.csv", 2, bp4d_row(1, {}).replace("1,", "x,", 1)),
     r"F001_T1\.csv: line 2: frame 'x' is not an integer"),
    (lambda r: edit_line(r / "AUCoding/AU_OCC/M011_T1.csv", 3, bp4d_row(6, {12: 5})),
     r"M011_T1\.csv: line 3: unknown code '5' for AU12 \(expected 0, 1 or 9\)"),
    (lambda r: edit_line(r / "AUCoding/AU_OCC/F007_T3.csv", 1, "frame,1,2,4"),
     r"F007_T3\.csv: line 1: wrong header 'frame,1,2,4': expected 0,1,2,...,99"),
    (lambda r: edit_line(r / "AUCoding/AU_OCC/F001_T1.csv", 3, bp4d_row(1, {})),
     r"F001_T1\.csv: line 3: frame 1 repeats line 2"),
    (lambda r: image(r / "F001/T1/1.jpg"),
     r"F001/T1: frame 1 has 2 images \(0001\.jpg, 1\.jpg\); keep one"),
    (lambda r: (r / "AUCoding/AU_OCC/F007_T3.csv").rename(r / "AUCoding/AU_OCC/F099_T3.csv"),
     r"F099_T3\.csv: subject F099 is in none of BP4D's three partitions"),
    (lambda r: (r / "AUCoding/AU_OCC/F007_T3.csv").rename(r / "AUCoding/AU_OCC/F007T3.csv"),
     r"F007T3\.csv: file name is not <subject>_<task>\.csv"),
    (lambda r: write(r / "AUCoding/AU_OCC/F007_T3.csv", ""),
     r"F007_T3\.csv: empty file \(no header\)"),
    (lambda r: write(r / "AUCoding/AU_OCC/F001_T1.csv",
                     (r / "AUCoding/AU_OCC/F001_T1.csv").read_text().replace("\n2,", "\n\n2,")),
     r"F001_T1\.csv: line 3: blank line inside the file"),
    (lambda r: [p.unlink() for p in (r / "F007/T3").iterdir()] and (r / "F007/T3").rmdir(),
     r"F007/T3: image folder not found \(labels in .*F007_T3\.csv\)"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", BP4D_ERRORS)
def test_bp4d_errors_name_file_and_line(tmp_path, mutate, message):
    mutate(make_bp4d(tmp_path))
    with pytest.raises(AunceError, match=message):
        read_dataset("bp4d", tmp_path)


def test_missing_folders_and_unknown_options(tmp_path):
    with pytest.raises(AunceError, match=r"nope: dataset folder not found"):
        read_dataset("bp4d", tmp_path / "nope")
    with pytest.raises(AunceError, match=r"AUCoding/AU_OCC: folder not found"):
        read_dataset("bp4d", tmp_path)
    with pytest.raises(AunceError, match=r"reader 'bp4d' takes no option split_file"):
        read_dataset("bp4d", tmp_path, split_file="split.csv")
    with pytest.raises(AunceError, match=r"reader 'synthetic' takes no option aus"):
        read_dataset("synthetic", tmp_path, aus=[1])
    with pytest.raises(AunceError, match=r"unknown dataset reader 'ck\+'"):
        read_dataset("ck+", tmp_path)


def make_bp4d_plus(root):
    aus = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24, 27]  # one more AU than used, other order
    order = aus[::-1]
    rows = ["frame," + ",".join(map(str, order))]
    for frame in (1, 2):
        codes = {au: (1 if au == 6 else 9 if au == 24 and frame == 2 else 0) for au in order}
        rows.append(f"{frame}," + ",".join(str(codes[au]) for au in order))
        image(root / "F082" / "T6" / f"{frame:04d}.jpg")
    write(root / "AUCoding/AU_OCC/F082_T6.csv", "\n".join(rows) + "\n")
    return root


def test_bp4d_plus_is_test_only_with_named_au_columns(tmp_path):
    df = read_dataset("bp4d_plus", make_bp4d_plus(tmp_path))
    assert au_names(df) == [f"AU{a}" for a in BP4D_AUS]
    assert list(df["split"]) == ["test", "test"]
    assert list(df["AU6"]) == [1, 1] and list(df["AU24"]) == [0, -1]


@pytest.mark.parametrize(
    "header,message",
    [
        ("frame,1,2,4,6,7,10,12,15,17,23,24", r"line 1: missing AU column\(s\) AU14 in the header"),
        ("frame,1,2,4,6,7,AU10,12", r"line 1: wrong header: column 7 'AU10' is not an AU number"),
        ("frame,1,1,2,4", r"line 1: wrong header: AU 1 appears twice"),
    ],
)
def test_bp4d_plus_header_errors(tmp_path, header, message):
    make_bp4d_plus(tmp_path)
    edit_line(tmp_path / "AUCoding/AU_OCC/F082_T6.csv", 1, header)
    with pytest.raises(AunceError, match=r"F082_T6\.csv: " + message):
        read_dataset("bp4d_plus", tmp_path)


# --- DISFA -------------------------------------------------------------------------------------
def make_disfa(root, subjects=("SN001", "SN003"), frames=4):
    intensity = [0, 1, 2, 5]
    for subject in subjects:
        for au in [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]:
            lines = [f"{f},{intensity[(f - 1 + au) % 4]}" for f in range(1, frames + 1)]
            write(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt", "\n".join(lines))
        for f in range(frames):  # 0-based image names
            image(root / subject / f"{f}.png")
    return root


def test_disfa_manifest_thresholds_intensity_and_shifts_frames(tmp_path):
    df = read_dataset("disfa", make_disfa(tmp_path))
    assert au_names(df) == [f"AU{a}" for a in DATASET_AUS["disfa"]]
    sn1 = df[df["subject"] == "SN001"]
    assert list(sn1["frame"]) == [1, 2, 3, 4]  # the label files' 1-based frames
    assert list(sn1["image"]) == ["SN001/0.png", "SN001/1.png", "SN001/2.png", "SN001/3.png"]
    # AU1 intensities 1, 2, 5, 0 -> active at >= 2
    assert list(sn1["AU1"]) == [0, 1, 1, 0]
    assert list(sn1["AU4"]) == [0, 0, 1, 1]  # intensities 0, 1, 2, 5
    assert df.groupby("subject")["test_fold"].first().to_dict() == {"SN001": 3, "SN003": 1}


DISFA_ERRORS = [
    (lambda r: write(r / "ActionUnit_Labels/SN001/SN001_au2.txt", "1,0\n2,0\n3,0\n"),
     r"SN001_au2\.txt: 3 frames, SN001_au1\.txt has 4 \(label files of one subject must agree\)"),
    (lambda r: (r / "ActionUnit_Labels/SN003/SN003_au26.txt").unlink(),
     r"SN003_au26\.txt: file not found \(the labels of AU26 for SN003\)"),
    (lambda r: edit_line(r / "ActionUnit_Labels/SN001/SN001_au4.txt", 2, "2,7"),
     r"SN001_au4\.txt: line 2: unknown code '7' \(intensities are 0-5\)"),
    (lambda r: edit_line(r / "ActionUnit_Labels/SN001/SN001_au1.txt", 1, "0,0"),
     r"SN001_au1\.txt: line 1: frame 0: DISFA's label frames are 1-based"),
    (lambda r: edit_line(r / "ActionUnit_Labels/SN001/SN001_au6.txt", 3, "3"),
     r"SN001_au6\.txt: line 3: expected 'frame,intensity', got 1 fields"),
    (lambda r: edit_line(r / "ActionUnit_Labels/SN001/SN001_au6.txt", 4, "5,0"),
     r"SN001_au6\.txt: line 4: frame 5 where SN001_au1\.txt line 4 has frame 4"),
    (lambda r: edit_line(r / "ActionUnit_Labels/SN001/SN001_au1.txt", 3, "2,0"),
     r"SN001_au1\.txt: line 3: frame 2 after frame 2 \(frames must increase\)"),
    (lambda r: (r / "SN003/3.png").unlink(),
     r"SN003_au1\.txt: line 4: frame 4 has no image .*SN003/3\.png \(label frame f is image f-1\)"),
    (lambda r: make_disfa(r, subjects=("SN033",)),
     r"SN033: subject SN033 is in none of DISFA's three partitions"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", DISFA_ERRORS)
def test_disfa_errors_name_file_and_line(tmp_path, mutate, message):
    mutate(make_disfa(tmp_path))
    with pytest.raises(AunceError, match=message):
        read_dataset("disfa", tmp_path)


# --- GFT ---------------------------------------------------------------------------------------
GFT_AUS = DATASET_AUS["gft"]


def make_gft(root):
    header = "image,subject,sequence,frame," + ",".join(f"AU{a}" for a in GFT_AUS) + ",AU17"
    rows = [header]
    for subject in ("001", "002", "017"):
        for frame in (3, 4):
            rel = f"frames/{subject}/task1/{frame:05d}.jpg"
            image(root / rel)
            codes = ["1" if frame == 3 else "0"] * len(GFT_AUS)
            codes[1] = "9" if subject == "001" else "-1" if subject == "002" else "1"
            rows.append(f"{rel},{subject},task1,{frame}," + ",".join(codes) + ",0")
    write(root / "labels.csv", "\n".join(rows) + "\n")
    write(root / "split.csv", "subject,split\n001,train\n002,train\n017,test\n")
    return root


def test_gft_split_from_the_named_file(tmp_path):
    report = {}
    df = read_dataset("gft", make_gft(tmp_path), split_file="split.csv", report=report)
    assert au_names(df) == [f"AU{a}" for a in GFT_AUS]  # AU17 ignored
    assert df.groupby("subject")["split"].first().to_dict() == {
        "001": "train", "002": "train", "017": "test"
    }  # fmt: skip
    assert list(df["subject"]) == ["001", "001", "002", "002", "017", "017"]  # text, not numbers
    assert list(df["AU2"]) == [-1, -1, -1, -1, 1, 1]  # 9 and -1 both unknown
    assert list(df["AU1"]) == [1, 0, 1, 0, 1, 0]
    assert report["subjects"] == {"train": 2, "test": 1, "validation": 0}
    digest = hashlib.sha256((tmp_path / "split.csv").read_bytes()).hexdigest()
    assert report["split_file"]["sha256"] == digest
    # an absolute split file works as well
    absolute = read_dataset("gft", tmp_path, split_file=str(tmp_path / "split.csv"))
    assert absolute.equals(df)


GFT_ERRORS = [
    (lambda r: write(r / "split.csv", "subject,split\n001,train\n002,train\n017,test\n001,test\n"),
     r"split\.csv: line 5: subject 001 is in both train \(line 2\) and test"),
    (lambda r: write(r / "split.csv", "subject,split\n001,train\n002,train\n017,test\n002,train\n"),
     r"split\.csv: line 5: subject 002 repeats line 3"),
    (lambda r: write(r / "split.csv", "subject,split\n001,train\n002,dev\n"),
     r"split\.csv: line 3: unknown split 'dev'"),
    (lambda r: write(r / "split.csv", "participant,fold\n"),
     r"split\.csv: line 1: wrong header: expected 'subject,split', got 'participant,fold'"),
    (lambda r: write(r / "split.csv", "subject,split\n001,train\n002,train\n"),
     r"split\.csv: no split for subject\(s\) 017 of .*labels\.csv"),
    (lambda r: write(r / "split.csv", "subject,split\n001,train\n002,train\n017,test\n099,test\n"),
     r"split\.csv: line 5: subject 099 has no frames in .*labels\.csv"),
    (lambda r: edit_line(r / "labels.csv", 1, "image,subject,sequence,frame,AU1,AU2"),
     r"labels\.csv: line 1: missing AU column\(s\) AU4, AU6, AU10"),
    (lambda r: edit_line(r / "labels.csv", 1, (r / "labels.csv").read_text().splitlines()[0] + ",notes"),
     r"labels\.csv: line 1: wrong header: unknown column 'notes'"),
    (lambda r: edit_line(r / "labels.csv", 3, "frames/001/task1/00004.jpg,001,task1,4,1,1"),
     r"labels\.csv: line 3: 6 fields where the header has 15 \(truncated or malformed line\)"),
    (lambda r: (r / "frames/017/task1/00004.jpg").unlink(),
     r"labels\.csv: line 7: image .*frames/017/task1/00004\.jpg not found"),
    (lambda r: edit_line(r / "labels.csv", 2,
                         (r / "labels.csv").read_text().splitlines()[1].replace(",1,", ",2,", 1)),
     r"labels\.csv: line 2: unknown code '2' for AU1 \(expected 1, 0, -1 or 9\)"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", GFT_ERRORS)
def test_gft_errors_name_file_and_line(tmp_path, mutate, message):
    mutate(make_gft(tmp_path))
    with pytest.raises(AunceError, match=message):
        read_dataset("gft", tmp_path, split_file="split.csv")


def test_gft_needs_a_split_file(tmp_path):
    with pytest.raises(AunceError, match=r"GFT has no official split; name the file .*split_file"):
        read_dataset("gft", make_gft(tmp_path))


# --- Aff-Wild2 ---------------------------------------------------------------------------------
AFF_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


def make_affwild2(root):
    ann = root / "annotations/AU_Detection_Challenge"
    videos = {
        ("Train_Set", "1-30-1280x720"): ["1,0,0,0,0,0,0,0,0,0,0,0", ",".join(["-1"] * 12),
                                         "0,1,0,0,0,0,0,0,0,0,1,0", "0,0,0,0,0,0,0,0,0,0,0,1"],
        ("Train_Set", "10-60-1280x720_left"): ["0,0,1,0,0,0,0,0,0,0,0,0"] * 2,
        ("Train_Set", "10-60-1280x720_right"): ["0,0,0,1,0,0,0,0,0,0,0,0"] * 2,
        ("Validation_Set", "2-30-640x360"): ["1,1,1,1,1,1,1,1,1,1,1,1"] * 3,
    }  # fmt: skip
    for (set_dir, video), rows in videos.items():
        write(ann / set_dir / f"{video}.txt", "\n".join([AFF_HEADER, *rows]) + "\n")
        for j in range(len(rows)):
            if (video, j) not in (("1-30-1280x720", 3), ("2-30-640x360", 0)):  # missing images
                image(root / "cropped_aligned" / video / f"{j + 1:05d}.jpg", (8, 8))
    return root


def test_affwild2_drops_invalid_rows_and_missing_images(tmp_path):
    report = {}
    df = read_dataset("affwild2", make_affwild2(tmp_path), report=report)
    assert au_names(df) == [f"AU{a}" for a in DATASET_AUS["affwild2"]]
    first = df[df["subject"] == "1-30-1280x720"]
    # row 1 (-1, invalid) and row 3 (no image) dropped; frame = row + 1 = the image's number
    assert list(first["frame"]) == [1, 3]
    assert list(first["image"]) == [
        "cropped_aligned/1-30-1280x720/00001.jpg", "cropped_aligned/1-30-1280x720/00003.jpg"
    ]  # fmt: skip
    assert list(first["AU25"]) == [0, 1]
    # the two people of one video are two subjects
    assert {"10-60-1280x720_left", "10-60-1280x720_right"} <= set(df["subject"])
    assert df.groupby("subject")["split"].first()["2-30-640x360"] == "validation"
    assert list(df.loc[df["subject"] == "2-30-640x360", "frame"]) == [2, 3]
    assert report["dropped"] == {"invalid": 1, "missing_image": 2}
    assert report["by_set"]["Train_Set"] == {
        "videos": 3, "frames": 6, "invalid": 1, "missing_image": 1
    }  # fmt: skip
    assert report["frames"] == len(df) == 8


AFF_ERRORS = [
    (lambda r: edit_line(r / "annotations/AU_Detection_Challenge/Train_Set/1-30-1280x720.txt", 1,
                         "AU1,AU2,AU4"),
     r"1-30-1280x720\.txt: line 1: wrong header: expected 'AU1,AU2,AU4,AU6,.*', got 'AU1,AU2,AU4'"),
    (lambda r: edit_line(r / "annotations/AU_Detection_Challenge/Train_Set/1-30-1280x720.txt", 3,
                         "-1,0,0,0,0,0,0,0,0,0,0,0"),
     r"1-30-1280x720\.txt: line 3: -1 \(invalid frame\) mixed with 0/1 codes on one line"),
    (lambda r: edit_line(r / "annotations/AU_Detection_Challenge/Train_Set/1-30-1280x720.txt", 2,
                         "0,0,2,0,0,0,0,0,0,0,0,0"),
     r"1-30-1280x720\.txt: line 2: unknown code '2' for AU4 \(expected 0, 1 or -1\)"),
    (lambda r: edit_line(r / "annotations/AU_Detection_Challenge/Train_Set/1-30-1280x720.txt", 4,
                         "0,1,0,0,0,0"),
     r"1-30-1280x720\.txt: line 4: 6 values, expected 12 \(truncated or malformed line\)"),
    (lambda r: write(r / "annotations/AU_Detection_Challenge/Validation_Set/1-30-1280x720.txt",
                     AFF_HEADER + "\n"),
     r"Validation_Set/1-30-1280x720\.txt: video 1-30-1280x720 is in both train .* and validation"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", AFF_ERRORS)
def test_affwild2_errors_name_file_and_line(tmp_path, mutate, message):
    mutate(make_affwild2(tmp_path))
    with pytest.raises(AunceError, match=message):
        read_dataset("affwild2", tmp_path)


# --- list layout -------------------------------------------------------------------------------
LIST_IMAGES = {  # subject -> partition: F001 P1, M011 P2, F007 P3
    "F001/T1/1.jpg": "1 0 0 0 0 0 0 0 0 0 0 0",
    "F001/T1/2.jpg": "0 1 0 0 0 0 0 0 0 0 0 0",
    "M011/T2/0005.jpg": "0 0 1 0 0 0 0 0 0 0 0 1",
    "F007/T1/12.jpg": "1 1 0 0 0 0 0 0 0 0 0 -1",
    "F007/T1/13.jpg": "0 0 0 0 0 0 0 0 0 0 0 0",
}
LIST_TEST = {1: "F007", 2: "M011", 3: "F001"}


def make_list(root, name="BP4D", folds=(1, 2, 3), test=LIST_TEST, images=LIST_IMAGES):
    for path in images:
        image(root / "img" / path, (20, 20), value=40 + 10 * len(path))
    for k in folds:
        for split in ("train", "test"):
            chosen = [p for p in images if (p.split("/")[0] == test[k]) == (split == "test")]
            write(root / f"list/{name}_{split}_img_path_fold{k}.txt", "\n".join(chosen) + "\n")
            write(
                root / f"list/{name}_{split}_label_fold{k}.txt",
                "\n".join(images[p] for p in chosen) + "\n",
            )
    return root


def test_list_layout_manifest_and_folds(tmp_path):
    report = {}
    make_list(tmp_path)
    write(tmp_path / "list/BP4D_weight_fold1.txt", "\t".join(["1.5"] * 12) + "\n")
    df = read_dataset("list", tmp_path, report=report)
    assert au_names(df) == [f"AU{a}" for a in BP4D_AUS]  # <DS> = BP4D: its known AU list
    assert list(df["image"]) == [
        "img/F001/T1/1.jpg", "img/F001/T1/2.jpg", "img/F007/T1/12.jpg", "img/F007/T1/13.jpg",
        "img/M011/T2/0005.jpg",
    ]  # fmt: skip
    assert list(df["sequence"]) == ["F001/T1", "F001/T1", "F007/T1", "F007/T1", "M011/T2"]
    assert list(df["frame"]) == [1, 2, 12, 13, 5]
    assert list(df["test_fold"]) == [3, 3, 1, 1, 2]
    assert df.loc[2, "AU24"] == -1 and df.loc[4, "AU4"] == 1
    assert report["list_name"] == "BP4D" and report["list_weights"] == {"1": [1.5] * 12}
    assert set(report["sha256"]) == {
        f"BP4D_{s}_{kind}_fold{k}.txt"
        for k in (1, 2, 3) for s in ("train", "test") for kind in ("img_path", "label")
    } | {"BP4D_weight_fold1.txt"}  # fmt: skip


def test_list_layout_pins_by_sha256(tmp_path):
    make_list(tmp_path)
    pins = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "list").iterdir()
    }
    assert len(read_dataset("list", tmp_path, list_sha256=pins)) == 5
    changed = tmp_path / "list/BP4D_test_img_path_fold2.txt"
    changed.write_text("M011/T2/0005.jpg\n\n")  # same split, one more byte
    new = hashlib.sha256(changed.read_bytes()).hexdigest()
    with pytest.raises(
        AunceError,
        match=rf"BP4D_test_img_path_fold2\.txt: SHA-256 {new} differs from the pinned "
        rf"{pins[changed.name]}",
    ):
        read_dataset("list", tmp_path, list_sha256=pins)
    partial = {k: v for k, v in pins.items() if "fold3" not in k}
    changed.write_text("M011/T2/0005.jpg\n")
    with pytest.raises(
        AunceError, match=r"BP4D_\w+_fold3\.txt: not pinned .* \(its SHA-256 is [0-9a-f]{64}\)"
    ):
        read_dataset("list", tmp_path, list_sha256=partial)
    with pytest.raises(AunceError, match=r"BP4D_x\.txt: pinned by SHA-256 in the config but not"):
        read_dataset("list", tmp_path, list_sha256={**pins, "BP4D_x.txt": "0" * 64})


def test_list_layout_single_fold_and_unknown_dataset(tmp_path):
    make_list(tmp_path, name="MyAUs", folds=(1,))
    with pytest.raises(AunceError, match=r"MyAUs is not a dataset the harness knows; .*\.aus"):
        read_dataset("list", tmp_path)
    df = read_dataset("list", tmp_path, aus=[1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 27])
    assert au_names(df)[-1] == "AU27"
    assert list(df["test_fold"]) == [0, 0, 1, 1, 0]  # rows no test list holds: 0
    with pytest.raises(
        AunceError, match=r"MyAUs lists hold fold\(s\) 1, expected 1, 2, 3 .*folds is 3"
    ):
        read_dataset("list", tmp_path, aus=list(range(1, 13)), folds=3)
    make_list(tmp_path, name="Other", folds=(1,))
    with pytest.raises(AunceError, match=r"holds the lists of several datasets \(MyAUs, Other\)"):
        read_dataset("list", tmp_path, aus=list(range(1, 13)))
    assert len(read_dataset("list", tmp_path, aus=list(range(1, 13)), list_name="Other")) == 5


def test_list_layout_subject_in_train_and_test_is_an_error(tmp_path):
    make_list(tmp_path)
    with open(tmp_path / "list/BP4D_train_img_path_fold1.txt", "a") as fh:
        fh.write("F007/T1/13.jpg\n")
    with open(tmp_path / "list/BP4D_train_label_fold1.txt", "a") as fh:
        fh.write(LIST_IMAGES["F007/T1/13.jpg"] + "\n")
    with pytest.raises(
        AunceError,
        match=r"BP4D_test_img_path_fold1\.txt: line 1: subject F007 is in both the train list "
        r"\(BP4D_train_img_path_fold1\.txt line 4\) and the test list of fold 1",
    ):
        read_dataset("list", tmp_path)


LIST_ERRORS = [
    (lambda r: write(r / "list/BP4D_train_label_fold2.txt", "1 0 0 0 0 0 0 0 0 0 0 0\n"),
     r"BP4D_train_label_fold2\.txt: 1 label rows for the 4 image paths of "
     r"BP4D_train_img_path_fold2\.txt"),
    (lambda r: edit_line(r / "list/BP4D_test_label_fold1.txt", 2, "0 0 0"),
     r"BP4D_test_label_fold1\.txt: line 2: 3 labels, expected 12 \(AU1, AU2, .*\): truncated"),
    (lambda r: edit_line(r / "list/BP4D_test_label_fold1.txt", 2, "0 0 0 0 0 0 0 0 0 0 0 9"),
     r"BP4D_test_label_fold1\.txt: line 2: unknown code '9' for AU24 \(expected 0, 1 or -1\)"),
    (lambda r: edit_line(r / "list/BP4D_train_label_fold2.txt", 1, "1 1 1 1 1 1 1 1 1 1 1 1"),
     r"BP4D_train_label_fold2\.txt: line 1: labels of F001/T1/1\.jpg differ from "
     r"BP4D_train_label_fold1\.txt line 1"),
    (lambda r: (r / "img/M011/T2/0005.jpg").unlink(),
     r"BP4D_train_img_path_fold1\.txt: line 3: image .*img/M011/T2/0005\.jpg not found"),
    (lambda r: edit_line(r / "list/BP4D_test_img_path_fold1.txt", 2, "F007/T1/12.jpg"),
     r"BP4D_test_img_path_fold1\.txt: line 2: F007/T1/12\.jpg repeats line 1"),
    (lambda r: edit_line(r / "list/BP4D_test_img_path_fold1.txt", 1, "/abs/F007/T1/12.jpg"),
     r"BP4D_test_img_path_fold1\.txt: line 1: '/abs/F007/T1/12\.jpg' is not a path <subject>"),
    (lambda r: [write(r / f"list/BP4D_{s}_{kind}_fold2.txt", "\n".join(
                    LIST_IMAGES[p] if kind == "label" else p for p in LIST_IMAGES
                    if p.startswith("F007") == (s == "train")) + "\n")
                for s in ("train", "test") for kind in ("img_path", "label")],
     r"BP4D_test_img_path_fold3\.txt: line 1: F001/T1/1\.jpg is also in the test list of fold 2 "
     r"\(BP4D_test_img_path_fold2\.txt line 1\)"),
    (lambda r: (r / "list/BP4D_test_label_fold3.txt").unlink(),
     r"BP4D_test_label_fold3\.txt: file not found"),
    (lambda r: [write(r / "list/BP4D_train_img_path_fold3.txt", "M011/T2/0005.jpg\n"),
                write(r / "list/BP4D_train_label_fold3.txt", LIST_IMAGES["M011/T2/0005.jpg"] + "\n")],
     r"BP4D_train_img_path_fold3\.txt: fold 3's train and test lists leave out 2 image\(s\) of "
     r"the other folds \(first: F007/T1/12\.jpg\)"),
    (lambda r: write(r / "list/BP4D_weight_fold2.txt", "1.0\t2.0\n"),
     r"BP4D_weight_fold2\.txt: 2 weights for 12 AUs"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", LIST_ERRORS)
def test_list_layout_errors_name_file_and_line(tmp_path, mutate, message):
    mutate(make_list(tmp_path))
    with pytest.raises(AunceError, match=message):
        read_dataset("list", tmp_path)


# --- landmark files and alignment ---------------------------------------------------------------
def draw_face(path, points, size):
    img = np.zeros((size, size, 3), np.uint8)
    for x, y in np.round(points).astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


@pytest.mark.parametrize("points", [68, 66])
def test_cache_from_landmark_files_recovers_rotation_and_scale(tmp_path, points):
    """A face rotated by 25 degrees at scale 45: aligned, its landmarks are the canonical face's."""
    root = make_disfa(tmp_path / "disfa", subjects=("SN001",), frames=2)
    angle, scale, size = 25.0, 45.0, 64
    rows = {}
    for frame in range(2):
        face68 = similarity(TEMPLATE, angle, scale + 5 * frame, (80.0 + frame, 70.0))
        draw_face(root / "SN001" / f"{frame}.png", face68, 160)
        rows[f"{frame}.png"] = np.delete(face68, [60, 64], axis=0) if points == 66 else face68
    landmark_csv(root / "landmarks/SN001.csv", rows)
    cache = open_cache(build_cache("disfa", root, tmp_path / "cache", size))
    canonical = to_49(TEMPLATE)
    expected = apply_matrix(alignment_matrix(canonical, size), canonical)
    assert np.allclose(cache.landmarks, expected[None], atol=1e-3)
    left, right = cache.landmarks[:, 19:25].mean(1), cache.landmarks[:, 25:31].mean(1)
    assert np.abs(left[:, 1] - right[:, 1]).max() < 1e-3  # eyes level: the rotation is undone
    # the drawn dots landed where the transformed landmarks say
    for img, pts in zip(cache.images, cache.landmarks, strict=True):
        assert min(img[int(round(y)), int(round(x))].max() for x, y in pts[[13, 19, 31, 37]]) > 60


LANDMARK_ERRORS = [
    (lambda p: p.unlink(), r"landmarks/SN001\.csv: landmark file not found, needed to align the "
     r"2 frame\(s\) of .*SN001"),
    (lambda p: edit_line(p, 1, "file,x_0,y_0"),
     r"SN001\.csv: line 1: wrong header 'file,x_0,y_0': expected file,x_0,\.\.\.,x_\{P-1\}"),
    (lambda p: edit_line(p, 3, "1.png,1,2"),
     r"SN001\.csv: line 3: 3 fields where the header has 137 \(truncated or malformed line\)"),
    (lambda p: edit_line(p, 3, p.read_text().splitlines()[2].replace("1.png,", "0.png,")),
     r"SN001\.csv: line 3: 0\.png repeats line 2"),
    (lambda p: edit_line(p, 2, p.read_text().splitlines()[1].rsplit(",", 1)[0] + ",abc"),
     r"SN001\.csv: line 2: 'abc' is not a finite number"),
    (lambda p: edit_line(p, 2, p.read_text().splitlines()[1].rsplit(",", 1)[0] + ",nan"),
     r"SN001\.csv: line 2: 'nan' is not a finite number"),
    (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:2]) + "\n"),
     r"SN001\.csv: no line for 1\.png \(.*SN001/1\.png\)"),
]  # fmt: skip


@pytest.mark.parametrize("mutate,message", LANDMARK_ERRORS)
def test_landmark_file_errors(tmp_path, mutate, message):
    root = make_disfa(tmp_path, subjects=("SN001",), frames=2)
    path = root / "landmarks/SN001.csv"
    landmark_csv(path, {f"{f}.png": similarity(TEMPLATE, 0, 10, (6, 5)) for f in range(2)})
    manifest = read_dataset("disfa", root)
    mutate(path)
    with pytest.raises(AunceError, match=message):
        read_landmarks("disfa", root, manifest)


def test_landmarks_optional_for_aligned_datasets(tmp_path):
    root = make_list(tmp_path / "list")
    manifest = read_dataset("list", root)
    lm = read_landmarks("list", root, manifest, required=False)
    assert lm.shape == (5, 49, 2) and np.isnan(lm).all()
    # a file present covers its frames; a 49-point file is used as it is
    pts = similarity(to_49(TEMPLATE), 0, 5, (10, 10))
    landmark_csv(root / "landmarks/img/F007/T1.csv", {"12.jpg": pts, "13.jpg": pts + 1})
    lm = read_landmarks("list", root, manifest, folder=str(root / "landmarks"), required=False)
    assert np.isnan(lm[[0, 1, 4]]).all() and np.allclose(lm[3], pts + 1)


# --- the cache: from the list layout, report, resumption, CLI -----------------------------------
def test_cache_from_list_layout(tmp_path):
    root = make_list(tmp_path / "ds")
    out = build_cache("list", root, tmp_path / "cache", 16, workers=2, chunk_size=2)
    cache = open_cache(out)
    assert cache.images.shape == (5, 16, 16, 3) and isinstance(cache.images, np.memmap)
    assert cache.meta["aligned_input"] is True  # the list layout's usual case
    assert cache.aus == [f"AU{a}" for a in BP4D_AUS]
    assert list(cache.manifest["subject"]) == ["F001", "F001", "F007", "F007", "M011"]
    for fold, subject in LIST_TEST.items():
        train, test = cache.split(str(fold))
        assert set(cache.manifest["subject"].iloc[test]) == {subject}
        assert subject not in set(cache.manifest["subject"].iloc[train])
    # pixels: each image is one grey level, resized
    assert np.abs(cache.images[0].astype(int) - (40 + 10 * len("F001/T1/1.jpg"))).max() <= 1
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 5 and report["list_name"] == "BP4D"
    assert set(cache.meta["sha256"]) == {
        "images.npy",
        "landmarks.npy",
        "manifest.csv",
        "report.json",
    }
    assert not (tmp_path / ".cache.partial").exists()
    serial = build_cache("list", root, tmp_path / "serial", 16, workers=1)
    assert np.array_equal(open_cache(serial).images, cache.images)


def test_cache_resumes_after_an_interruption(tmp_path, monkeypatch):
    import aunce.data.cache as cache_module

    root = make_list(tmp_path / "ds")
    align = cache_module._align_chunk
    calls = []

    def interrupted(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task[2])
        return align(task)

    monkeypatch.setattr(cache_module, "_align_chunk", interrupted)
    out = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        build_cache("list", root, out, 16, chunk_size=2)
    partial = tmp_path / ".cache.partial"
    assert not out.exists() and partial.exists()
    assert json.loads((partial / "progress.json").read_text())["done"] == [0, 2]

    def counted(task):
        calls.append(task[2])
        return align(task)

    calls.clear()
    monkeypatch.setattr(cache_module, "_align_chunk", counted)
    build_cache("list", root, out, 16, chunk_size=2)
    assert calls == [4]  # only the chunk not done before
    assert not partial.exists()
    fresh = build_cache("list", root, tmp_path / "fresh", 16, chunk_size=2)
    assert np.array_equal(open_cache(out).images, open_cache(fresh).images)
    assert open_cache(out).meta["sha256"] == open_cache(fresh).meta["sha256"]
    # a partial build of other inputs (another size) is not resumed
    calls.clear()
    monkeypatch.setattr(cache_module, "_align_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache("list", root, out, 16, chunk_size=2)
    calls.clear()
    monkeypatch.setattr(cache_module, "_align_chunk", counted)
    build_cache("list", root, out, 20, chunk_size=2)
    assert calls == [0, 2, 4] and open_cache(out).images.shape[1] == 20


def test_cache_saves_the_report_of_drops(tmp_path):
    root = make_affwild2(tmp_path / "aff")
    cache = open_cache(build_cache("affwild2", root, tmp_path / "cache", 16))
    report = json.loads((cache.root / "report.json").read_text())
    assert report["dropped"] == {"invalid": 1, "missing_image": 2}
    train, test = cache.split("split")
    assert set(cache.manifest["split"].iloc[test]) == {"validation"} and len(train) == 6


def test_affwild2_is_aligned_from_its_landmarks_when_it_has_them(tmp_path):
    """The challenge's crops are resized as they are; with a landmark folder they are aligned from
    the 49 inner landmarks, as the paper aligns every dataset (Sec. 4.1.2)."""
    root = make_affwild2(tmp_path / "aff")
    resized = open_cache(build_cache("affwild2", root, tmp_path / "resized", 16))
    assert resized.meta["aligned_input"] is True and np.isnan(resized.landmarks).all()
    face = similarity(TEMPLATE, 10, 3.0, (4.0, 4.5))  # a face filling the 8 x 8 crops, tilted
    for folder in sorted((root / "cropped_aligned").iterdir()):
        names = sorted(f.name for f in folder.iterdir())
        landmark_csv(root / "landmarks/cropped_aligned" / f"{folder.name}.csv",
                     dict.fromkeys(names, face))  # fmt: skip
    aligned = open_cache(build_cache("affwild2", root, tmp_path / "aligned", 16))
    assert aligned.meta["aligned_input"] is False
    canonical = to_49(TEMPLATE)
    expected = apply_matrix(alignment_matrix(canonical, 16), canonical)
    assert np.allclose(aligned.landmarks, expected[None], atol=1e-3)  # the tilt is undone
    assert (
        open_cache(build_cache("affwild2", root, tmp_path / "kept", 16, aligned=True)).meta[
            "aligned_input"
        ]
        is True
    )  # the config's `aligned: true` still resizes only


def test_cache_refuses_unaligned_faces_without_landmarks(tmp_path):
    root = make_list(tmp_path / "ds")
    with pytest.raises(AunceError, match=r"landmarks/img/F001/T1\.csv: landmark file not found"):
        build_cache("list", root, tmp_path / "cache", 16, aligned=False)


def test_cli_cache_passes_reader_options(tmp_path, capsys):
    root = make_list(tmp_path / "ds", name="MyAUs")
    out = tmp_path / "cache"
    aus = "1,2,4,6,7,10,12,14,15,17,23,24"
    args = ["cache", "--reader", "list", "--root", str(root), "--out", str(out), "--size", "16"]
    assert main([*args, "--folds", "3"]) == 2
    assert "MyAUs is not a dataset the harness knows" in capsys.readouterr().err
    pin = f"MyAUs_test_label_fold1.txt={'A' * 64}"
    assert main([*args, "--aus", aus, "--list-sha256", pin]) == 2
    assert f"differs from the pinned {'a' * 64}" in capsys.readouterr().err
    assert main([*args, "--aus", aus, "--folds", "3", "--workers", "2"]) == 0
    assert open_cache(out).aus[-1] == "AU24"
    assert main([*args, "--reader", "bp4d", "--split-file", "s.csv"]) == 2
    assert "reader 'bp4d' takes no option split_file" in capsys.readouterr().err
