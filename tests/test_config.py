import copy

import pytest
import yaml
from conftest import REPO, SCHEMA

from aunce import AunceError
from aunce.config import (
    check_config,
    dataset_folds,
    load_config,
    resolved_linear_eval,
    resolved_pretrain,
)


def base():
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(REPO / "config" / name, schema_path=SCHEMA)
    assert cfg["tables"]["table2"]["dataset"] in cfg["datasets"]


PAPER_DATASETS = ("bp4d", "disfa", "gft", "bp4d_plus", "affwild2")


def test_paper_config_needs_roots_then_validates(tmp_path):
    with pytest.raises(AunceError, match=r"datasets\.bp4d\.root"):
        load_config(REPO / "config" / "paper.yaml", schema_path=SCHEMA)
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for name in PAPER_DATASETS:
        cfg["datasets"][name]["root"] = str(tmp_path)
    check_config(cfg, SCHEMA)
    assert cfg["pretrain"]["lr"] == 1e-5 and cfg["seeds"][0] == 3407
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    cfg["datasets"]["bp4d"]["root"] = str(tmp_path)
    cfg["tables"] = {"table2": cfg["tables"]["table2"]}
    check_config(cfg, SCHEMA)  # only datasets used by a table need a root


def test_defaults_are_filled():
    cfg = base()
    del cfg["pretrain"]["epochs"]
    check_config(cfg, SCHEMA)
    assert cfg["pretrain"]["epochs"] == 60  # the paper's value is the schema default
    assert cfg["pretrain"]["betas"] == [0.9, 0.999]
    assert cfg["datasets"]["bp4d"]["synthetic"]["label_noise"] == 0.0


def test_unknown_key_is_named():
    cfg = base()
    cfg["pretrain"]["learning_rate"] = 0.1
    with pytest.raises(AunceError) as err:
        check_config(cfg, SCHEMA)
    assert "pretrain.learning_rate: unknown key" in str(err.value)


def test_top_level_typo_is_named():
    cfg = base()
    cfg["seed"] = [1]
    with pytest.raises(AunceError, match=r"  seed: unknown key"):
        check_config(cfg, SCHEMA)


def test_wrong_type_names_key_and_value():
    cfg = base()
    cfg["pretrain"]["lr"] = "fast"
    with pytest.raises(AunceError, match=r"pretrain\.lr: 'fast' is not of type 'number'"):
        check_config(cfg, SCHEMA)


def test_table_must_reference_defined_method():
    cfg = base()
    cfg["tables"]["table2"]["methods"] = ["aunce", "nope"]
    with pytest.raises(AunceError, match=r"tables\.table2\.methods: 'nope' is not defined"):
        check_config(cfg, SCHEMA)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(AunceError, match="config file .*missing.yaml' not found"):
        load_config(tmp_path / "missing.yaml", schema_path=SCHEMA)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [1, 2\npretrain: {}\n")
    with pytest.raises(AunceError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_config(bad, schema_path=SCHEMA)


def test_fold_labels():
    cfg = base()
    check_config(cfg, SCHEMA)
    assert dataset_folds(cfg["datasets"]["bp4d"]) == ["1", "2", "3"]
    gft = copy.deepcopy(cfg["datasets"]["bp4d"])
    gft["synthetic"]["profile"] = "gft"
    assert dataset_folds(gft) == ["split"]


def test_released_overlay_merges_like_snakemake(tmp_path):
    roots = tmp_path / "roots.yaml"
    roots.write_text(yaml.safe_dump({"datasets": {n: {"root": str(tmp_path)} for n in PAPER_DATASETS}}))
    cfg = load_config(
        REPO / "config" / "paper.yaml", roots, REPO / "config" / "released.yaml", schema_path=SCHEMA
    )
    from aunce.methods import loss_settings
    from aunce.presets import effective_aunce

    # both readings in the released pipeline: the paper's loss stays the paper's
    assert effective_aunce(cfg["methods"]["aunce"])["variant"] == "paper"
    released = cfg["methods"]["aunce_released"]
    assert effective_aunce(released)["variant"] == "released"
    assert loss_settings(released)["positive_probs"] == (0.2, 0.2, 0.6, 0.0)
    assert loss_settings(released)["beta_majority"] == 0.8
    assert cfg["image"]["normalize"] == "cifar" and cfg["image"]["cache_size"] == 256
    assert cfg["datasets"]["bp4d"]["source"] == "bp4d"  # merged, not replaced
    # the released pipeline (docs/losses.md): each point a setting the overlay turns on
    pre, linear = cfg["pretrain"], cfg["linear_eval"]
    assert (pre["jitter_strengths"], pre["blur"], pre["blur_kernel"]) == ([0.4, 0.4, 0.4, 0.1], 1, 3)
    assert pre["similarity"] == {"rotation": 0, "scale": 0, "translation": 0}
    assert pre["resized_crop"] is None and pre["lr_from_epoch_2"] == 1e-5
    assert (pre["view_passes"], pre["drop_last"]) == ("separate", False)
    assert cfg["encoders"]["megraph"]["neighbors"] == 4 and cfg["amp"] == "none"
    assert (linear["optimizer"], linear["head"], linear["normalize_features"]) == (
        "adam", "softmax", True
    )  # fmt: skip
    assert (linear["features"], linear["encoder_mode"]) == ("augmented", "train")
    assert [resolved_linear_eval(cfg, d)["augment"] for d in ("bp4d", "disfa")] == ["simclr", "crop"]
    assert resolved_linear_eval(cfg)["weight_decay"] == 1e-6
    assert cfg["tables"]["variants"]["methods"] == ["aunce", "aunce_released"]
    assert cfg["tables"]["variants_disfa"]["dataset"] == "disfa"
    # the released reading's own augmentation is the overlay's: one model whichever way it is read
    assert resolved_pretrain(cfg, released) == resolved_pretrain(cfg, cfg["methods"]["aunce"])


def test_both_readings_differ_in_loss_and_augmentation_in_every_shipped_config(tmp_path):
    """aunce (paper) and aunce_released (the released loss and views) are distinct methods."""
    roots = tmp_path / "roots.yaml"
    roots.write_text(yaml.safe_dump({"datasets": {n: {"root": str(tmp_path)} for n in PAPER_DATASETS}}))
    from aunce.presets import effective_aunce

    for files in (["config.yaml"], ["evidence.yaml"], ["paper.yaml", roots]):
        cfg = load_config(*[REPO / "config" / f if isinstance(f, str) else f for f in files],
                          schema_path=SCHEMA)  # fmt: skip
        paper, released = cfg["methods"]["aunce"], cfg["methods"]["aunce_released"]
        assert released["label"] == "AUNCE (released code)"
        assert effective_aunce(paper)["variant"] == "paper"
        assert effective_aunce(released)["variant"] == "released"
        views = resolved_pretrain(cfg, released)
        assert views["jitter_strengths"] == [0.4, 0.4, 0.4, 0.1]
        assert (views["blur"], views["blur_kernel"], views["resized_crop"]) == (1.0, 3, None)
        assert views["similarity"] == {"rotation": 0, "scale": 0, "translation": 0}
        assert resolved_pretrain(cfg, paper) == cfg["pretrain"]
        both = [t for t, spec in cfg["tables"].items()
                if {"aunce", "aunce_released"} <= set(spec.get("methods", []))]  # fmt: skip
        assert "table2" in both, files


def test_a_method_brings_its_own_augmentation():
    cfg = base()
    cfg["methods"]["mine"] = {
        "loss": "aunce", "pretrain": {"blur": 1.0, "similarity": {"rotation": 0}},
    }  # fmt: skip
    check_config(cfg, SCHEMA)
    views = resolved_pretrain(cfg, cfg["methods"]["mine"])
    assert views["blur"] == 1.0 and views["lr"] == cfg["pretrain"]["lr"]
    assert views["similarity"] == {"rotation": 0, "scale": 0.1, "translation": 0.05}  # merged
    assert cfg["pretrain"]["blur"] == 0.5  # the config's own settings are untouched
    cfg["methods"]["mine"]["pretrain"]["lr"] = 1.0
    with pytest.raises(AunceError, match=r"methods\.mine\.pretrain\.lr: unknown key"):
        check_config(cfg, SCHEMA)


def test_resized_crop_ranges_are_checked():
    cfg = base()
    cfg["pretrain"]["resized_crop"] = {"scale": [0.5, 0.2], "ratio": [0.75, 1.33]}
    cfg["methods"]["aunce"]["pretrain"] = {"resized_crop": {"scale": [0.1, 1], "ratio": [2, 1]}}
    with pytest.raises(AunceError) as err:
        check_config(cfg, SCHEMA)
    assert "pretrain.resized_crop.scale: [0.5, 0.2]: the smallest exceeds the largest" in str(err.value)
    assert "methods.aunce.pretrain.resized_crop.ratio: [2, 1]" in str(err.value)
    cfg = base()
    assert check_config(cfg, SCHEMA)["pretrain"]["resized_crop"] == {
        "scale": [0.08, 1.0], "ratio": [0.75, 4 / 3]
    }  # fmt: skip  (SimCLR's, the paper's Sec. 3.3.2)


@pytest.mark.parametrize(
    "method,weighted",
    [
        ({"loss": "aunce"}, True),
        ({"loss": "aunce", "preset": "A"}, False),  # Table 10: lambda off for both WCE and AUNCE
        ({"loss": "aunce", "preset": "B"}, True),
        ({"loss": "aunce", "au_weights": False}, False),
        ({"loss": "aunce", "preset": "released"}, True),  # its linear evaluation weights
        ({"loss": "aunce", "preset": "released_v1"}, True),
        ({"loss": "wce"}, True),
        ({"loss": "wfl", "au_weights": False}, False),
        ({"loss": "mine:loss", "kind": "contrastive", "au_weights": False}, False),
    ],
)
def test_lambda_in_the_linear_evaluation_follows_the_method(method, weighted):
    cfg = base()
    check_config(cfg, SCHEMA)
    assert cfg["linear_eval"]["au_weights"] == "method"
    assert resolved_linear_eval(cfg, "bp4d", method)["au_weights"] is weighted
    assert resolved_linear_eval(cfg)["au_weights"] is True
    cfg["linear_eval"]["au_weights"] = False  # a setting for every method
    assert resolved_linear_eval(cfg, "bp4d", method)["au_weights"] is False


def test_linear_evaluation_takes_the_pretraining_betas_and_weight_decay():
    cfg = base()
    cfg["pretrain"].update(betas=[0.8, 0.99], weight_decay=1e-4)
    check_config(cfg, SCHEMA)
    linear = resolved_linear_eval(cfg)
    assert linear["betas"] == [0.8, 0.99] and linear["weight_decay"] == 1e-4
    cfg["linear_eval"].update(betas=[0.5, 0.9], weight_decay=0.0)
    assert resolved_linear_eval(cfg)["betas"] == [0.5, 0.9]
    assert resolved_linear_eval(cfg)["weight_decay"] == 0.0


def test_settings_that_do_not_apply_are_refused():
    cfg = base()
    cfg["encoders"]["roi"]["neighbors"] = 4
    cfg["linear_eval"]["encoder_mode"] = "train"
    with pytest.raises(AunceError) as err:
        check_config(cfg, SCHEMA)
    assert "encoders.roi.neighbors: 4: only megraph has a graph of AU nodes" in str(err.value)
    assert "linear_eval.encoder_mode: train applies to features: augmented only" in str(err.value)
    cfg = base()
    cfg["pretrain"]["blur_kernel"] = 4
    with pytest.raises(AunceError, match=r"pretrain\.blur_kernel"):
        check_config(cfg, SCHEMA)
