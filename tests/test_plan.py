"""The workflow plan (aunce.plan): which runs each table needs, and that shared jobs run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from aunce import AunceError
from aunce.config import check_config, load_yaml
from aunce.plan import input_files, make_plan

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


def plan_of(tables: dict, extra_datasets: dict | None = None, **extra):
    cfg = {
        "seeds": [1, 2],
        "datasets": {
            "bp4d": {"source": "synthetic", "synthetic": {"profile": "bp4d"}},
            "gft": {"source": "synthetic", "synthetic": {"profile": "gft"}},
            "bp4d_plus": {"source": "synthetic", "synthetic": {"profile": "bp4d_plus"}},
            **(extra_datasets or {}),
        },
        "encoders": {"megraph": {"size": "tiny"}, "roi": {"size": "tiny"}},
        "methods": {
            "aunce": {"loss": "aunce", "label": "AUNCE"},
            "wce": {"loss": "wce", "label": "WCE"},
            "wfl": {"loss": "wfl", "label": "WFL"},
        },
        "tables": tables,
        **extra,
    }
    check_config(cfg, SCHEMA)
    return make_plan(cfg, "provenance")


def test_full_model_runs_once_across_tables():
    """protocol.md: the full AUNCE model is a table2 row, a table8 cell, table10's model E and
    table11's (0.15, 0.15, 0.7, 0) row - one job."""
    plan = plan_of(
        {
            "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["aunce", "wce"]},
            "table8": {
                "kind": "grid",
                "datasets": ["bp4d"],
                "encoders": ["megraph", "roi"],
                "methods": ["wce", "wfl", "aunce"],
            },  # fmt: skip
            "table10": {
                "kind": "ablation",
                "dataset": "bp4d",
                "encoder": "megraph",
                "base": "aunce",
            },
            "table11": {"kind": "probs", "dataset": "bp4d", "encoder": "megraph", "base": "aunce"},
        }
    )
    t10 = dict((label, name) for name, label in plan.tables["table10"]["methods"])
    t11 = dict((label, name) for name, label in plan.tables["table11"]["methods"])
    assert t10["E"] == "aunce" and t11["(0.15,0.15,0.7,0)"] == "aunce"
    # model D (probabilities (1,0,0,0), betas 1.2/0.4) is table11's (1,0,0,0) row
    assert t11["(1,0,0,0)"] == t10["D"]
    assert len(set(t11.values())) == 10 and len(set(t10.values())) == 5
    megraph_methods = {m for (ds, enc, m) in plan.runs if enc == "megraph"}
    assert len(megraph_methods) == 2 + 1 + 4 + 8  # table2, wfl, A-D, 8 more probability rows
    assert plan.runs[("bp4d", "megraph", "aunce")] == {(f, s) for f in "123" for s in (1, 2)}


def test_variants_keep_preset_settings_over_explicit_base_keys():
    plan = plan_of(
        {
            "t10": {
                "kind": "ablation",
                "dataset": "bp4d",
                "encoder": "megraph",
                "base": "aunce",
                "presets": ["A"],
            }
        },  # fmt: skip
        methods={"aunce": {"loss": "aunce", "beta_minority": 1.2, "au_weights": True}},
    )
    name = plan.tables["t10"]["methods"][0][0]
    assert plan.methods[name] == {"loss": "aunce", "preset": "A", "label": "aunce (A)"}


def test_budget_overrides_make_their_own_methods_and_runs():
    plan = plan_of(
        {
            "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["wce"]},
            "quick": {
                "dataset": "bp4d",
                "encoder": "megraph",
                "methods": ["wce"],
                "folds": [1],
                "seeds": [2],
                "epochs": 3,
            },  # fmt: skip
        }
    )
    assert plan.epochs == {"wce-e3": 3}
    assert plan.runs[("bp4d", "megraph", "wce-e3")] == {("1", 2)}
    assert plan.tables["quick"]["inputs"]["metrics"] == [
        "results/eval/bp4d/megraph/wce-e3/fold-1/seed-2/metrics.json"
    ]
    with pytest.raises(AunceError, match="tables.t.folds: '7' is not a fold of dataset 'bp4d'"):
        plan_of({"t": {"dataset": "bp4d", "encoder": "megraph", "methods": ["wce"], "folds": [7]}})


def test_cross_dataset_pairs_follow_the_protocol():
    plan = plan_of(
        {
            "table4": {
                "dataset": "bp4d",
                "test_dataset": "bp4d_plus",
                "encoder": "megraph",
                "methods": ["aunce"],
                "seeds": [1],
            },  # fmt: skip
            "table7": {
                "kind": "cross",
                "pairs": [["bp4d", "gft"], ["gft", "bp4d"]],
                "encoder": "megraph",
                "methods": ["wce"],
                "seeds": [1],
            },  # fmt: skip
        }
    )
    assert plan.cross[("bp4d", "bp4d_plus", "megraph", "aunce")] == {("all", "all", 1)}
    # BP4D -> GFT: each BP4D fold model on GFT's test split; GFT -> BP4D: the GFT model on each fold
    assert plan.cross[("bp4d", "gft", "megraph", "wce")] == {(f, "split", 1) for f in "123"}
    assert plan.cross[("gft", "bp4d", "megraph", "wce")] == {("split", f, 1) for f in "123"}
    assert plan.runs[("gft", "megraph", "wce")] == {("split", 1)}
    assert plan.runs[("bp4d", "megraph", "aunce")] == {("all", 1)}
    files = input_files(plan.tables["table7"])
    assert "results/cross/gft-to-bp4d/megraph/wce/fold-split-on-2/seed-1/metrics.json" in files
    assert plan.tables["table7"]["aus"][0] == "AU1" and len(plan.tables["table7"]["aus"]) == 10


def test_noise_table_derives_datasets_and_beta_sweep_reuses_the_base():
    plan = plan_of(
        {
            "noise": {
                "kind": "noise",
                "dataset": "bp4d",
                "encoder": "megraph",
                "methods": ["wce"],
                "rates": [0, 0.2],
            },  # fmt: skip
            "fig6": {
                "kind": "beta",
                "dataset": "bp4d",
                "encoder": "megraph",
                "base": "aunce",
                "minority": [1.0, 1.2],
                "majority": [0.4],
            },  # fmt: skip
        }
    )
    assert plan.datasets["bp4d_noise20"]["synthetic"]["label_noise"] == 0.2
    points = {(p["param"], p["value"]): p["method"] for p in plan.tables["fig6"]["points"]}
    assert points[("beta_minority", 1.2)] == "aunce" == points[("beta_majority", 0.4)]
    assert plan.methods[points[("beta_minority", 1.0)]]["beta_majority"] == 0.4
    assert plan.tables["fig6"]["outputs"]["png"] == "results/figures/fig6.png"


def test_the_shipped_configs_plan():
    for name in ("config.yaml", "smoke.yaml"):
        cfg = load_yaml(ROOT / "config" / name)
        check_config(cfg, SCHEMA)
        plan = make_plan(cfg)
        assert plan.tables and plan.runs
        for spec in plan.tables.values():
            assert all(isinstance(p, str) for p in input_files(spec))


def test_torch_free_aunce_defaults_match_the_loss_signature():
    """aunce.presets.AUNCE_DEFAULTS (used to plan without torch) equals aunce_loss's defaults."""
    import inspect

    from aunce.losses import aunce_loss
    from aunce.presets import AUNCE_DEFAULTS

    params = inspect.signature(aunce_loss).parameters
    for key, value in AUNCE_DEFAULTS.items():
        if (
            key == "au_weights"
        ):  # a tensor argument; methods switch it with a boolean, on by default
            assert params[key].default is None and value is True
        else:
            assert params[key].default == value, key


def test_kept_encoders_are_those_cross_evaluation_reads():
    from aunce.plan import kept_encoders, pretrain_groups

    tables = {
        "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["aunce", "wce"]},
        "table7": {"kind": "cross", "pairs": [["bp4d", "gft"]], "encoder": "megraph",
                   "methods": ["wce"], "folds": [1], "seeds": [1]},
    }  # fmt: skip
    plan = plan_of(tables)
    assert kept_encoders(plan) == {("bp4d", "megraph", "wce", "1", 1)}
    # a unit whose methods keep different runs becomes a rule per group ({method} is shared)
    groups = pretrain_groups(plan, "bp4d", "megraph", [("1", 1), ("2", 1)], ["aunce", "wce"])
    assert groups == [("", ["aunce"], set()), ("_kept", ["wce"], {("1", 1)})]
    everything = plan_of(tables, keep={"encoders": "all", "embeddings": "all"})
    assert len(kept_encoders(everything)) == 12
    assert pretrain_groups(everything, "bp4d", "megraph", [("1", 1)], ["aunce", "wce"]) == [
        ("", ["aunce", "wce"], {("1", 1)})
    ]


def test_encoder_geometry_and_its_cache():
    from aunce.plan import cache_path, encoder_image, jobs, needed_jobs

    plan = plan_of(
        {"table8": {"kind": "grid", "datasets": ["bp4d"], "encoders": ["megraph", "roi"],
                    "methods": ["wce"], "folds": [1], "seeds": [1]}},  # fmt: skip
        image={"cache_size": 40, "input_size": 32},
        encoders={"megraph": {"size": "tiny"},
                  "roi": {"size": "tiny", "image": {"cache_size": 64, "input_size": 56}}},
    )  # fmt: skip
    cfg = plan.config
    assert encoder_image(cfg, "roi") == {"cache_size": 64, "input_size": 56, "normalize": "imagenet"}
    assert encoder_image(cfg, "megraph")["input_size"] == 32
    assert cache_path(cfg, "bp4d", "roi") == "results/cache/bp4d-64px"
    assert cache_path(cfg, "bp4d", "megraph") == cache_path(cfg, "bp4d") == "results/cache/bp4d"
    needed = needed_jobs(jobs(plan), ["results/tables/table8.md"])
    caches = sorted((j.name, j.outputs[0]) for j in needed if j.rule == "cache")
    assert caches == [("cache", "results/cache/bp4d"), ("cache_sized", "results/cache/bp4d-64px")]


def test_tsne_panels_per_dataset_read_kept_samples():
    plan = plan_of(
        {"fig5": {"kind": "tsne", "datasets": ["bp4d", "gft"], "encoder": "megraph",
                  "methods": ["wce"], "base": "aunce", "presets": ["A", "E"], "n_points": 50}}
    )  # fmt: skip
    spec = plan.tables["fig5"]
    assert [p["label"] for p in spec["panels"]] == [
        "bp4d: WCE", "bp4d: AUNCE (model A)", "bp4d: AUNCE (model E)",
        "gft: WCE", "gft: AUNCE (model A)", "gft: AUNCE (model E)",
    ]  # fmt: skip
    assert spec["panels"][3]["embeddings"] == "results/embed/gft/megraph/wce/fold-split/seed-1/tsne_n50.npz"
    assert spec["inputs"]["embeddings"] == [p["embeddings"] for p in spec["panels"]]
    assert plan.runs[("gft", "megraph", "aunce")] == {("split", 1)}  # model E is the base


def test_cross_table_epochs_per_source_reuse_the_within_dataset_models():
    """Table 7 with `epochs: {gft: 24}`: its GFT models are Table 5's 24-epoch ones and its BP4D
    models Table 2's (pretrain.epochs); no run is trained for Table 7 alone."""
    tables = {
        "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["aunce", "wce"]},
        "table5": {"dataset": "gft", "encoder": "megraph", "methods": ["aunce", "wce"],
                   "epochs": 24},
        "table7": {"kind": "cross", "pairs": [["bp4d", "gft"], ["gft", "bp4d"]],
                   "encoder": "megraph", "methods": ["wce", "aunce"], "epochs": {"gft": 24}},
    }  # fmt: skip
    plan = plan_of(tables)
    assert set(plan.runs) == {("bp4d", "megraph", m) for m in ("aunce", "wce")} | {
        ("gft", "megraph", m) for m in ("aunce-e24", "wce-e24")
    }
    assert plan.table_runs["table7"] <= plan.table_runs["table2"] | plan.table_runs["table5"]
    spec = plan.tables["table7"]
    assert spec["methods"] == [["wce", "WCE"], ["aunce", "AUNCE"]]  # the rows, by the table's names
    gft_to_bp4d = spec["directions"][1]
    assert gft_to_bp4d["epochs"] == 24 and spec["directions"][0]["epochs"] == plan.config[
        "pretrain"]["epochs"]  # fmt: skip
    assert gft_to_bp4d["metrics"]["wce"][0].startswith("results/cross/gft-to-bp4d/megraph/wce-e24/")
    assert any("gft -> bp4d 24" in note for note in spec["notes"])
    with pytest.raises(AunceError, match=r"tables.table7.epochs: 'bp4d_plus' is not a source"):
        plan_of(dict(tables, table7=dict(tables["table7"], epochs={"bp4d_plus": 3})))


RELEASED_VIEWS = {"jitter_strengths": [0.4, 0.4, 0.4, 0.1], "blur": 1.0, "blur_kernel": 3}


def test_both_readings_of_aunce_in_one_table_are_two_methods():
    """The paper's reading and the released code's (its loss and its views) side by side: two
    rows, two sets of runs; a method whose own augmentation equals the config's is the same method
    (one job), one whose augmentation differs is not."""
    methods = {
        "aunce": {"loss": "aunce", "label": "AUNCE"},
        "aunce_released": {"loss": "aunce", "preset": "released", "label": "AUNCE (released code)",
                           "pretrain": RELEASED_VIEWS},  # fmt: skip
        "same_views": {"loss": "aunce", "pretrain": {"blur": 0.5}},  # the config's blur
        "released_loss_only": {"loss": "aunce", "preset": "released"},
        "wce": {"loss": "wce", "label": "WCE"},
    }
    plan = plan_of(
        {
            "table2": {"dataset": "bp4d", "encoder": "megraph",
                       "methods": ["aunce", "aunce_released", "wce"]},
            "other": {"dataset": "bp4d", "encoder": "megraph",
                      "methods": ["same_views", "released_loss_only"]},
        },  # fmt: skip
        methods=methods,
        pretrain={"blur": 0.5},
    )
    rows = plan.tables["table2"]["methods"]
    assert rows == [["aunce", "AUNCE"], ["aunce_released", "AUNCE (released code)"], ["wce", "WCE"]]
    assert plan.runs[("bp4d", "megraph", "aunce_released")] == plan.runs[("bp4d", "megraph", "aunce")]
    assert [m for m, _ in plan.tables["other"]["methods"]] == ["aunce", "released_loss_only"]


def test_tables_on_synthetic_data_read_their_ceilings():
    """The ceiling row (aunce.tables.ceiling_row) reads ceiling.json of each synthetic dataset a
    table is scored on: the target of a cross-dataset table, the derived datasets of a noise table;
    a real dataset has none."""
    plan = plan_of(
        {
            "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["wce"]},
            "table4": {"dataset": "bp4d", "test_dataset": "bp4d_plus", "encoder": "megraph",
                       "methods": ["wce"]},  # fmt: skip
            "table7": {"kind": "cross", "pairs": [["bp4d", "gft"]], "encoder": "megraph",
                       "methods": ["wce"]},  # fmt: skip
            "noise": {"kind": "noise", "dataset": "bp4d", "encoder": "megraph",
                      "methods": ["wce"], "rates": [0, 0.2]},  # fmt: skip
            "real": {"dataset": "disfa", "encoder": "megraph", "methods": ["wce"]},
        },
        extra_datasets={"disfa": {"source": "disfa", "root": "/data/DISFA"}},
    )
    ceilings = {t: plan.tables[t]["inputs"]["ceilings"] for t in plan.tables}
    assert ceilings["table2"] == {"bp4d": "results/data/bp4d"}
    assert ceilings["table4"] == {"bp4d_plus": "results/data/bp4d_plus"}
    assert ceilings["table7"] == {"gft": "results/data/gft"}
    assert ceilings["noise"] == {"bp4d": "results/data/bp4d", "bp4d_noise20": "results/data/bp4d_noise20"}
    assert ceilings["real"] == {}
    assert "results/data/bp4d" in input_files(plan.tables["table2"])  # the rule waits for it
