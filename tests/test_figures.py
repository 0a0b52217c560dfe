import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aunce import AunceError
from aunce.figures import (
    BETA_COLUMNS,
    TSNE_COLUMNS,
    beta_sweep,
    sampled_rows,
    save_figure,
    tsne,
    tsne_sample,
)
from aunce.io import read_json

AUS = ["AU1", "AU2"]


def _metrics(path: Path, method: str, fold: str, seed: int, f1_macro: float) -> str:
    """A metrics.json with the keys aunce.evaluate.linear_eval writes and runs_frame reads."""
    record = {
        "run": {
            "dataset": "bp4d",
            "encoder": "megraph",
            "method": method,
            "fold": fold,
            "seed": seed,
        },  # fmt: skip
        "aus": AUS,
        "f1": {au: f1_macro for au in AUS},
        "f1_macro": f1_macro,
        "f1_micro": f1_macro,
        "accuracy": 0.5,
        "exact_match": 0.1,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return str(path)


# F1-macro (fraction) per point, seed and fold
SWEEP = {
    ("beta_minority", 1.0): {1: {"1": 0.50, "2": 0.60}, 2: {"1": 0.55, "2": 0.65}},
    ("beta_minority", 1.2): {1: {"1": 0.70, "2": 0.80}, 2: {"1": 0.72, "2": 0.70}},
    ("beta_majority", 0.4): {1: {"1": 0.40, "2": 0.44}, 2: {"1": 0.50, "2": 0.52}},
    ("beta_majority", 0.2): {1: {"1": 0.30, "2": 0.34}},  # one seed: no std
}


@pytest.fixture
def sweep_spec(tmp_path):
    points = []
    for (param, value), seeds in SWEEP.items():
        method = f"aunce-{param}{value}"
        files = [
            _metrics(tmp_path / method / f"{fold}-{seed}.json", method, fold, seed, f1)
            for seed, folds in seeds.items()
            for fold, f1 in folds.items()
        ]
        points.append({"param": param, "value": value, "method": method, "metrics": files})
    return {
        "title": "Fig. 6",
        "points": points,
        "notes": [],
        "fixed": {"beta_minority": 1.2, "beta_majority": 0.4},
    }


def test_beta_sweep_numbers_are_fold_means_then_seed_mean_and_std(sweep_spec):
    fig, frame = beta_sweep(sweep_spec, read_json)
    assert list(frame.columns) == BETA_COLUMNS
    assert len(fig.axes) == 2
    assert "beta_majority = 0.4" in fig.axes[0].get_title()
    for (param, value), seeds in SWEEP.items():
        per_seed = [100 * np.mean(list(folds.values())) for folds in seeds.values()]
        row = frame[(frame["param"] == param) & (frame["value"] == value)].iloc[0]
        assert row["f1_macro"] == pytest.approx(np.mean(per_seed))
        if len(per_seed) > 1:
            assert row["f1_macro_std"] == pytest.approx(np.std(per_seed, ddof=1))
        else:
            assert math.isnan(row["f1_macro_std"])
        assert row["n_seeds"] == len(seeds)
        assert row["n_folds"] == 2
    # sorted by param, then value
    assert list(frame["value"]) == [0.2, 0.4, 1.0, 1.2]


def test_beta_sweep_shows_the_spread_the_runs_and_the_scale_from_zero(sweep_spec):
    """Mean ± std over seeds with the runs behind each point, and a y-axis from 0 shared by the
    panels: not an autoscale of 18.75-20.1 that makes a point of F1 look like a trend."""
    fig, frame = beta_sweep(sweep_spec, read_json)
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert low == 0 and high >= frame["f1_macro"].max() and high <= 100
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "this run: mean ± std over seeds (2 seed(s) x 2 fold(s) per point)" in legend
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    one = {**sweep_spec, "points": [p for p in sweep_spec["points"] if p["value"] == 0.2]}
    fig, _ = beta_sweep(one, read_json)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "this run: one seed, no spread (1 seed(s) x 2 fold(s) per point)" in legend
    fig, _ = beta_sweep(sweep_spec, read_json)  # the beta_majority panel mixes 1 and 2 seeds
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "this run: mean ± std over seeds (1/2 seed(s) x 2 fold(s) per point)" in legend


def test_the_figure_page_prints_no_nan(sweep_spec, tmp_path):
    """fig6.md: a point of one seed has no std, shown as "-" (not "nan")."""
    from aunce.cli import main

    spec = json.dumps({**sweep_spec, "kind": "beta"})
    out = [tmp_path / f"fig6.{ext}" for ext in ("png", "csv", "md")]
    assert main(["figure", "fig6", "--spec", spec, "--png", str(out[0]), "--csv", str(out[1]),
                 "--md", str(out[2])]) == 0  # fmt: skip
    md = out[2].read_text()
    assert "nan" not in md
    line = next(x for x in md.splitlines() if re.match(r"\| beta_majority \| +0.2 ", x))
    assert [c.strip() for c in line.strip("|").split("|")][3] == "-"


def test_beta_sweep_rejects_unknown_parameter_and_mixed_cells(sweep_spec):
    bad = {**sweep_spec, "points": [{**sweep_spec["points"][0], "param": "tau"}]}
    with pytest.raises(AunceError, match="unknown parameter 'tau'"):
        beta_sweep(bad, read_json)
    first, second = sweep_spec["points"][:2]
    mixed = {**sweep_spec, "points": [{**first, "metrics": first["metrics"] + second["metrics"]}]}
    with pytest.raises(AunceError, match="mixes several"):
        beta_sweep(mixed, read_json)


def _embeddings(path: Path, n: int = 40, d: int = 8, seed: int = 0) -> str:
    """An embeddings.npz with the keys aunce.evaluate.embed writes: AU1 separable, AU2 noise;
    with its SHA-256 sidecar, as embed writes it."""
    from aunce.io import write_digest

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, 3)).astype(np.int8)
    labels[:2, 1] = -1  # unknown labels are left out
    z = rng.normal(size=(n, 3, d))
    z[:, 0, 0] += 8.0 * labels[:, 0]  # AU1: active frames far from inactive ones
    arrays = {"z": z.astype(np.float16), "labels": labels, "index": np.arange(n)}
    np.savez(
        path,
        **{f"{split}_{key}": value for split in ("train", "test") for key, value in arrays.items()},
        aus=np.array(["AU1", "AU2", "AU4"]),
        pretrain_settings=np.array(json.dumps({"epochs": 1})),
    )
    write_digest(path)
    return str(path)


def test_tsne_one_axis_per_panel_and_au_with_finite_silhouette(tmp_path):
    spec = {
        "title": "Fig. 5",
        "panels": [
            {"label": "WCE", "embeddings": _embeddings(tmp_path / "a.npz", seed=1)},
            {"label": "AUNCE (model E)", "embeddings": _embeddings(tmp_path / "b.npz", seed=2)},
        ],
        "n_points": 30,
        "seed": 3407,
        "aus": ["AU1", "AU2"],
    }
    fig, frame = tsne(spec)
    assert len(fig.axes) == 4
    assert list(frame.columns) == TSNE_COLUMNS
    scores = frame.groupby(["panel", "au"], sort=False)["silhouette"].first()
    assert len(scores) == 4 and np.isfinite(scores).all()
    assert (scores.xs("AU1", level="au") > 0.5).all()  # the separable AU separates
    # 30 frames drawn, the unknown labels among them dropped from AU2 only
    counts = frame.groupby(["panel", "au"], sort=False).size()
    assert (counts.xs("AU1", level="au") == 30).all()
    assert (counts.xs("AU2", level="au") <= 30).all()
    assert set(frame["label"]) <= {0, 1}
    assert "silhouette" in fig.axes[0].get_title()


def test_tsne_defaults_to_first_four_aus_and_names_unknown_au(tmp_path):
    path = _embeddings(tmp_path / "a.npz", n=12)
    fig, frame = tsne({"title": "t", "panels": [{"label": "m", "embeddings": path}], "aus": None})
    assert len(fig.axes) == 3  # the file has three AUs
    with pytest.raises(AunceError, match="no AU 'AU9'"):
        tsne({"title": "t", "panels": [{"label": "m", "embeddings": path}], "aus": ["AU9"]})
    with pytest.raises(AunceError, match="missing.npz: file not found"):
        tsne(
            {"title": "t", "panels": [{"label": "m", "embeddings": str(tmp_path / "missing.npz")}]}
        )


def test_tsne_from_samples_equals_tsne_from_the_embeddings(tmp_path):
    """A t-SNE sample (kept when the embeddings are deleted) holds exactly the frames the figure
    draws from the whole file: same points, same silhouettes."""
    full = _embeddings(tmp_path / "a.npz", n=40, seed=3)
    sample = tsne_sample(full, tmp_path / "s.npz", n_points=25, seed=7)
    with np.load(sample) as data, np.load(full) as whole:
        pick = sampled_rows(40, 25, 7)
        assert np.array_equal(data["test_z"], whole["test_z"][pick])
        assert np.array_equal(data["test_index"], whole["test_index"][pick])
        assert int(data["sample_n_points"]) == 25 and int(data["sample_seed"]) == 7
    spec = {"title": "t", "n_points": 25, "seed": 7, "aus": ["AU1", "AU2"]}
    _, a = tsne(dict(spec, panels=[{"label": "m", "embeddings": full}]))
    _, b = tsne(dict(spec, panels=[{"label": "m", "embeddings": str(sample)}]))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(AunceError, match=r"s\.npz: a sample of 25 frames with seed 7, the figure "
                       r"draws 30 with seed 7"):  # fmt: skip
        tsne(dict(spec, n_points=30, panels=[{"label": "m", "embeddings": str(sample)}]))
    with pytest.raises(AunceError, match="already a t-SNE sample"):
        tsne_sample(sample, tmp_path / "t.npz", n_points=5, seed=7)


def test_tsne_groups_panels_by_dataset_with_their_own_aus(tmp_path):
    """Fig. 5 as the paper draws it: a group of panels per dataset, each with its own AUs."""
    bp4d = _embeddings(tmp_path / "a.npz", n=20, seed=1)
    other = tmp_path / "b.npz"
    with np.load(bp4d) as data:
        arrays = dict(data)
    np.savez(other, **dict(arrays, aus=np.array(["AU9", "AU25", "AU26"])))
    panels = [{"label": "bp4d: WCE", "dataset": "bp4d", "embeddings": bp4d},
              {"label": "disfa: WCE", "dataset": "disfa", "embeddings": str(other)}]  # fmt: skip
    fig, frame = tsne({"title": "t", "panels": panels, "n_points": 20, "seed": 0})
    assert len(fig.axes) == 6  # two rows of three AUs
    assert set(frame[frame["panel"] == "disfa: WCE"]["au"]) == {"AU9", "AU25", "AU26"}


def test_save_figure_writes_a_png_atomically(sweep_spec, tmp_path):
    fig, _ = beta_sweep(sweep_spec, read_json)
    out = save_figure(fig, tmp_path / "figures" / "fig6.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["fig6.png"]  # no temporary file left
