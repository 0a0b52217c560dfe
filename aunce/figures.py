"""Figures (matplotlib, headless): contact sheets of the synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aunce import AunceError


def contact_sheet(
    dataset_dir: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    n: int = 24,
    columns: int = 6,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """A PNG grid of ``n`` frames of a synthetic dataset, each with its active AUs written under it.

    Frames are drawn from as many different subjects as possible (seeded), so a newcomer sees the
    identities, poses, lighting and expressions the generator produces.
    """
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aunce.data.synthetic import read_synthetic
    from aunce.io import atomic_path

    root = Path(dataset_dir)
    df = read_synthetic(root)
    if len(df) == 0:
        raise AunceError(f"{root}: the dataset has no frames")
    rng = np.random.default_rng(seed)
    subjects = list(df["subject"].unique())
    subjects = [subjects[i] for i in rng.permutation(len(subjects))]
    picks = []
    while len(picks) < min(n, len(df)):
        for subject in subjects:
            rows = df.index[(df["subject"] == subject) & ~df.index.isin(picks)]
            if len(rows) and len(picks) < n:
                picks.append(int(rng.choice(rows)))
        if not len(df.index[~df.index.isin(picks)]):
            break
    aus = [c for c in df.columns if c.startswith("AU") and c[2:].isdigit()]
    rows = int(np.ceil(len(picks) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.5 * columns, 1.8 * rows + 0.3), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks, strict=False):
        image = cv2.cvtColor(cv2.imread(str(root / df.at[i, "image"])), cv2.COLOR_BGR2RGB)
        ax.imshow(image, interpolation="nearest")
        active = [a[2:] for a in aus if df.at[i, a] == 1]
        unknown = all(df.at[i, a] == -1 for a in aus)
        label = (
            "invalid frame (-1)" if unknown else ("AU " + " ".join(active) if active else "no AU")
        )
        ax.set_title(f"{df.at[i, 'subject']}\n{label}", fontsize=6, pad=2)
    fig.suptitle(
        title or f"Synthetic {df.attrs.get('profile', root.name)}: active AUs under each face",
        fontsize=8,
    )
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / (1.8 * rows + 0.3)))
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out_png
