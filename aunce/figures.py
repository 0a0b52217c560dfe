"""Figures (matplotlib, headless): contact sheets of the synthetic datasets and the paper's figures.

- :func:`contact_sheet`: a grid of frames of a synthetic dataset with their active AUs.
- :func:`beta_sweep`: Fig. 6, F1-macro against beta_minority and beta_majority (Section 4.4).
- :func:`tsne`: Fig. 5, t-SNE of per-AU test embeddings, with a silhouette score per panel and AU.
- :func:`tsne_sample`: the random test frames a t-SNE panel draws, saved apart from the (large,
  deleted) embeddings of the run.
- :func:`save_figure`: write a figure as PNG atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aunce import AunceError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


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


# --- the paper's figures -------------------------------------------------------------------------
#: Section 4.4 (Fig. 6): the best F1-macro is reached at beta_minority 1.2 with beta_majority 0.4.
PAPER_BETA = {"beta_minority": 1.2, "beta_majority": 0.4}
BETA_COLUMNS = ["param", "value", "f1_macro", "f1_macro_std", "n_seeds", "n_folds"]
TSNE_COLUMNS = ["panel", "au", "x", "y", "label", "silhouette"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def beta_sweep(spec: dict, read_json) -> tuple[Figure, pd.DataFrame]:
    """Fig. 6: F1-macro (%) against beta_minority and against beta_majority (Section 4.4).

    ``spec``: ``{"title", "points": [{"param": "beta_minority" | "beta_majority", "value",
    "metrics": [metrics.json paths, one per fold and seed], ...}], "notes", "fixed"}``; ``fixed``
    (optional) maps each parameter to the value it is held at while the other one is swept, and is
    shown in the panel titles. ``read_json`` reads one metrics file (aunce.io.read_json).

    Each point is the mean over folds per seed, then the mean and sample std over seeds
    (protocol.md, "Reported figure per table cell"; aunce.stats.aggregate), in percent. One panel
    per parameter, in the order the spec first names them: the mean with ± std bars over seeds
    (none with a single seed, and the legend says so), the seeds and folds behind each point, the
    paper's best value as a dotted line, and one y-axis from 0 for both panels (a narrow autoscaled
    axis makes a difference of a point look like a trend). Returns the figure and a frame with
    columns ``param, value, f1_macro, f1_macro_std, n_seeds, n_folds``, sorted by param and value.

    Raises AunceError on an unknown parameter, a point without metrics, or a point whose metrics
    span several (dataset, encoder, method) cells.
    """
    import pandas as pd

    from aunce.stats import aggregate, runs_frame

    rows = []
    for point in spec["points"]:
        param, value = point["param"], float(point["value"])
        if param not in PAPER_BETA:
            raise AunceError(
                f"beta sweep: unknown parameter '{param}' (known: beta_minority, beta_majority)"
            )
        if not point["metrics"]:
            raise AunceError(f"beta sweep: the point {param} = {value:g} names no metrics files")
        agg = aggregate(runs_frame([read_json(p) for p in point["metrics"]]))
        if len(agg) != 1:
            cells = agg[["dataset", "encoder", "method"]].to_dict("records")
            raise AunceError(
                f"beta sweep: the point {param} = {value:g} mixes several runs' cells {cells}"
            )
        cell = agg.iloc[0]
        rows.append(
            {
                "param": param,
                "value": value,
                "f1_macro": 100 * float(cell["f1_macro_mean"]),
                "f1_macro_std": 100 * float(cell["f1_macro_std"]),
                "n_seeds": int(cell["n_seeds"]),
                "n_folds": int(cell["n_folds"]),
            }
        )
    frame = pd.DataFrame(rows, columns=BETA_COLUMNS)
    frame = frame.sort_values(["param", "value"], kind="stable").reset_index(drop=True)
    params = list(dict.fromkeys(p["param"] for p in spec["points"]))
    fixed = spec.get("fixed") or {}
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(params), 1), figsize=(4.2 * max(len(params), 1), 3.4),
                             squeeze=False)  # fmt: skip
    # one scale for both panels, from 0: differences of a point read against the whole F1 range
    tops = frame["f1_macro"] + frame["f1_macro_std"].fillna(0)
    top = min(100.0, 10 * np.ceil((float(tops.max()) + 5) / 10)) if len(frame) else 100.0
    for ax, param in zip(axes[0], params, strict=False):
        part = frame[frame["param"] == param]
        spread = part["f1_macro_std"].notna()
        seeds = sorted(set(part["n_seeds"]))
        folds = sorted(set(part["n_folds"]))
        runs = (f"{'/'.join(map(str, seeds))} seed(s) x {'/'.join(map(str, folds))} fold(s) "
                "per point")  # fmt: skip
        label = (f"this run: mean ± std over seeds ({runs})" if spread.any()
                 else f"this run: one seed, no spread ({runs})")  # fmt: skip
        ax.errorbar(part["value"], part["f1_macro"],
                    yerr=part["f1_macro_std"].where(spread, 0.0) if spread.any() else None,
                    marker="o", capsize=3, label=label)  # fmt: skip
        ax.axvline(PAPER_BETA[param], color="grey", linestyle=":",
                   label=f"paper's best {param} = {PAPER_BETA[param]:g}")  # fmt: skip
        other = "beta_majority" if param == "beta_minority" else "beta_minority"
        held = f"{other} = {fixed[other]:g}" if other in fixed else f"{other} fixed"
        ax.set_title(f"{param} sweep, {held}", fontsize=8)
        ax.set_xlabel(param)
        ax.set_ylabel("F1-macro (%)")
        ax.set_ylim(0, top)
        ax.legend(fontsize=6)
    fig.suptitle(spec["title"], fontsize=9)
    fig.tight_layout()
    return fig, frame


def tsne(spec: dict) -> tuple[Figure, pd.DataFrame]:
    """Fig. 5: t-SNE of the per-AU test embeddings of ``n_points`` random frames, one row per model.

    ``spec``: ``{"title", "panels": [{"label", "embeddings": embeddings.npz of
    aunce.evaluate.embed or its sample by :func:`tsne_sample`, "dataset" (optional)}],
    "n_points" (default 200, Section 4.4), "seed" (default 0), "aus" (default or null: the first
    four AUs of each dataset's first panel)}``. Every panel draws the same test frames (one seeded
    permutation of the test set), so rows compare models on the same faces; a sample file holds
    exactly those frames, in that order.

    For each shown AU the AU's D-dimensional embeddings ``test_z[:, k]`` of the frames with a known
    label are mapped to 2-D (sklearn TSNE, PCA init, ``random_state`` the seed, perplexity
    ``min(30, n - 1)``) and coloured by the AU's true label. The separation of active and inactive
    frames is measured in the original space by the silhouette score (sklearn, Euclidean; NaN when
    only one class is present) and printed in each subplot's title. Returns the figure (rows =
    panels, columns = AUs) and a frame with one row per point: ``panel, au, x, y, label,
    silhouette`` (the score repeated on every point of its panel and AU).

    Raises AunceError on a spec without panels, an AU a panel does not have, or a panel with
    fewer than 3 labelled test frames.
    """
    import pandas as pd
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    panels = spec["panels"]
    if not panels:
        raise AunceError("t-SNE: the spec names no panels")
    seed = int(spec.get("seed") or 0)
    n_points = int(spec.get("n_points") or 200)
    loaded = [_load_embeddings(panel["embeddings"], n_points, seed) for panel in panels]
    first = {}  # each dataset's default AUs: the first four of its first panel
    for panel, (_, _, names, _) in zip(panels, loaded, strict=True):
        first.setdefault(panel.get("dataset"), list(spec.get("aus") or names[:4]))
    width = max(len(aus) for aus in first.values())
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), width, figsize=(2.6 * width, 2.5 * len(panels)),
                             squeeze=False)  # fmt: skip
    rows = []
    for r, (panel, (z, labels, names, sampled)) in enumerate(zip(panels, loaded, strict=True)):
        aus = first[panel.get("dataset")]
        for c in range(len(aus), width):
            axes[r][c].set_axis_off()
        pick = sampled_rows(len(z), n_points, seed) if not sampled else np.arange(len(z))
        for c, au in enumerate(aus):
            if au not in names:
                raise AunceError(f"{panel['embeddings']}: no AU '{au}' (has {', '.join(names)})")
            k = names.index(au)
            y = labels[pick, k]
            known = y >= 0  # -1: label unknown for this frame
            x, y = z[pick, k][known].astype(np.float64), y[known].astype(int)
            if len(x) < 3:
                raise AunceError(
                    f"{panel['embeddings']}: {au}: {len(x)} labelled test frames, t-SNE needs 3"
                )
            # a few hundred points take a second on one thread; OpenMP threads that compete with
            # other jobs on the same cores (Snakemake runs several) can take a minute instead
            with threadpool_limits(limits=1):
                points = TSNE(2, init="pca", random_state=seed,
                              perplexity=min(30.0, len(x) - 1.0)).fit_transform(x)  # fmt: skip
                two_classes = len(np.unique(y)) == 2
                sil = float(silhouette_score(x, y)) if two_classes else float("nan")
            ax = axes[r][c]
            for value, colour, name in ((0, "tab:blue", "inactive"), (1, "tab:red", "active")):
                mask = y == value
                ax.scatter(points[mask, 0], points[mask, 1], s=6, c=colour, label=name)
            ax.set_title(f"{panel['label']}, {au}\nsilhouette {sil:.2f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            rows += [
                {
                    "panel": panel["label"],
                    "au": au,
                    "x": float(px),
                    "y": float(py),
                    "label": int(lab),
                    "silhouette": sil,
                }  # fmt: skip
                for (px, py), lab in zip(points, y, strict=True)
            ]
    axes[0][0].legend(fontsize=6)
    fig.suptitle(spec["title"], fontsize=9)
    fig.tight_layout()
    return fig, pd.DataFrame(rows, columns=TSNE_COLUMNS)


def sampled_rows(n: int, n_points: int, seed: int) -> np.ndarray:
    """The test rows a t-SNE panel draws: the first ``n_points`` of one seeded permutation."""
    return np.random.default_rng(seed).permutation(n)[:n_points]


def tsne_sample(
    embeddings: str | os.PathLike, out: str | os.PathLike, *, n_points: int, seed: int
) -> Path:
    """Save the ``n_points`` test frames :func:`tsne` draws from a run's embeddings.npz (same rows,
    same order), with ``n_points`` and ``seed``, so that Fig. 5 can be drawn again after the
    embeddings are deleted (config ``keep.embeddings: needed``). A few MB against GBs."""
    from aunce.io import atomic_path, check_digest

    z, labels, names, sampled = _load_embeddings(embeddings)
    if sampled:
        raise AunceError(f"{embeddings}: already a t-SNE sample")
    check_digest(embeddings)  # the embeddings as embed wrote them
    pick = sampled_rows(len(z), n_points, seed)
    with np.load(embeddings) as data:
        index = data["test_index"][pick] if "test_index" in data else np.arange(len(z))[pick]
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, test_z=z[pick], test_labels=labels[pick], test_index=index,
                     aus=np.array(names), sample_n_points=n_points, sample_seed=seed,
                     sample_of=np.array(str(embeddings)))  # fmt: skip
    return Path(out)


def _load_embeddings(
    path: str | os.PathLike, n_points: int | None = None, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """Test embeddings (N, K, D), test labels (N, K), AU names of an embeddings.npz or of its
    t-SNE sample, and whether it is a sample (then drawn with ``n_points`` and ``seed``, if given)."""
    from aunce.embeddings import mapped_member

    try:
        with np.load(path) as data:
            labels, names = data["test_labels"], [str(a) for a in data["aus"]]
            z = mapped_member(path, "test_z")  # read by rows: a run's embeddings are GBs
            sample = (
                (int(data["sample_n_points"]), int(data["sample_seed"]))
                if "sample_seed" in data
                else None
            )
    except FileNotFoundError:
        raise AunceError(f"{path}: file not found") from None
    except KeyError as err:
        raise AunceError(f"{path}: no array {err} (not written by aunce.evaluate.embed?)") from None
    if z.ndim != 3 or labels.shape != z.shape[:2] or z.shape[1] != len(names):
        raise AunceError(
            f"{path}: test_z {z.shape}, test_labels {labels.shape} and {len(names)} AUs disagree"
        )
    if sample and n_points is not None and sample != (n_points, seed):
        raise AunceError(
            f"{path}: a sample of {sample[0]} frames with seed {sample[1]}, the figure draws "
            f"{n_points} with seed {seed}"
        )
    return z, labels, names, sample is not None


def save_figure(fig: Figure, png_path: str | os.PathLike) -> Path:
    """Write a figure as PNG atomically (a reader never sees a half-written file) and close it."""
    from aunce.io import atomic_path

    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    _pyplot().close(fig)
    return Path(png_path)
