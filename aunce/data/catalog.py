"""What is known about each dataset: its AUs, its subject partitions and Table 1's occurrence rates.

Source: shared spec datasets.md (folds shared by ME-GraphAU, AUNCE and JAA-Net) and the paper's
Table 1 (occurrence rates of the training sets, in percent).
"""

from __future__ import annotations

DATASET_AUS: dict[str, list[int]] = {
    "bp4d": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24],
    "bp4d_plus": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24],
    "disfa": [1, 2, 4, 6, 9, 12, 25, 26],
    "gft": [1, 2, 4, 6, 10, 12, 14, 15, 23, 24],
    "affwild2": [1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26],
}

#: AUs shared by BP4D and GFT, the columns of the cross-dataset Table 7.
CROSS_DATASET_AUS = [1, 2, 4, 6, 10, 12, 14, 15, 23, 24]

#: Table 1 of the paper: occurrence rate (%) of each AU in each training set.
OCCURRENCE_RATES: dict[str, dict[int, float]] = {
    "bp4d": {
        1: 21.1,
        2: 17.1,
        4: 20.3,
        6: 46.2,
        7: 54.9,
        10: 59.4,
        12: 56.2,
        14: 46.6,
        15: 16.9,
        17: 34.4,
        23: 16.5,
        24: 15.2,
    },
    "bp4d_plus": {
        1: 10.0,
        2: 8.0,
        4: 6.0,
        6: 50.0,
        7: 66.0,
        10: 65.0,
        12: 58.0,
        14: 60.0,
        15: 11.0,
        17: 13.0,
        23: 17.0,
        24: 4.0,
    },
    "disfa": {1: 5.0, 2: 4.0, 4: 15.0, 6: 8.1, 9: 4.3, 12: 13.2, 25: 27.8, 26: 8.9},
    "gft": {
        1: 3.7,
        2: 13.5,
        4: 3.7,
        6: 28.3,
        10: 24.6,
        12: 29.3,
        14: 3.1,
        15: 10.7,
        23: 25.0,
        24: 14.1,
    },
    "affwild2": {
        1: 11.9,
        2: 5.1,
        4: 16.0,
        6: 26.5,
        7: 39.9,
        10: 34.5,
        12: 24.3,
        15: 2.8,
        23: 3.1,
        24: 2.8,
        25: 62.8,
        26: 7.6,
    },
}

#: Subject partitions P1, P2, P3. Fold k tests on one partition and trains on the other two:
#: fold 1 tests on P3, fold 2 on P2, fold 3 on P1 (so ``test_fold`` = 1 for P3 subjects).
PARTITIONS: dict[str, list[list[str]]] = {
    "bp4d": [
        "F001 M007 F018 F008 F002 M004 F010 F009 M012 M001 F016 M014 F023 M008".split(),
        "M011 F003 M010 M002 F005 F022 M018 M017 F013 M016 F020 F011 M013 M005".split(),
        "F007 F015 F006 F019 M006 M009 F012 M003 F004 F021 F017 M015 F014".split(),
    ],
    "disfa": [
        "SN002 SN010 SN001 SN026 SN027 SN032 SN030 SN009 SN016".split(),
        "SN013 SN018 SN011 SN028 SN012 SN006 SN031 SN021 SN024".split(),
        "SN003 SN029 SN023 SN025 SN008 SN005 SN007 SN017 SN004".split(),
    ],
}


def au_columns(aus: list[int]) -> list[str]:
    return [f"AU{n}" for n in aus]


def test_fold_of_subject(dataset: str) -> dict[str, int]:
    """Map each subject to the fold whose test split holds it (P1 -> 3, P2 -> 2, P3 -> 1)."""
    p1, p2, p3 = PARTITIONS[dataset]
    mapping = {}
    for fold, part in ((3, p1), (2, p2), (1, p3)):
        mapping.update({subject: fold for subject in part})
    return mapping
