"""config/paper.yaml: the paper's protocol, every table and figure planned (issue 11), each a valid
single target of the workflow, and the paper-size encoders run through every stage on this CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from aunce import AunceError
from aunce.baselines import SAME_MODEL
from aunce.config import check_config, load_config
from aunce.plan import (
    PAPER_MAJORITY,
    PAPER_MINORITY,
    PAPER_PROBABILITIES,
    jobs,
    make_plan,
    needed_jobs,
)

PAPER = REPO / "config" / "paper.yaml"
BIN = Path(sys.executable).parent
DATASETS = ("bp4d", "disfa", "gft", "bp4d_plus", "affwild2")
TARGETS = [
    *(f"results/tables/{t}.md" for t in
      ("table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "table9",
       "table10", "table11", "variants")),
    "results/figures/fig5.png",
    "results/figures/fig6.png",
]  # fmt: skip


def gft_split(path: Path, train: int = 78, test: int = 18) -> Path:
    lines = ["subject,split"] + [f"S{i:03d},train" for i in range(train)]
    lines += [f"S{i:03d},test" for i in range(train, train + test)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Path:
    """Placeholder dataset folders for config/paper.yaml (a dry run reads none of them but GFT's
    split file), as a config file given after it."""
    base = tmp_path_factory.mktemp("roots")
    for name in DATASETS:
        (base / name).mkdir()
    gft_split(base / "gft" / "split.csv")
    datasets = {n: {"root": str(base / n)} for n in DATASETS}
    datasets["gft"]["split_file"] = "split.csv"
    path = base / "roots.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets}))
    return path


@pytest.fixture(scope="module")
def paper_plan(roots):
    return make_plan(load_config(PAPER, roots))


def test_paper_config_plans_every_table_and_figure_at_the_protocol(paper_plan):
    plan, cfg = paper_plan, paper_plan.config
    assert cfg["seeds"] == [3407, 3408, 3409, 3410, 3411] and cfg["pretrain"]["epochs"] == 60
    assert sorted(plan.tables) == sorted(Path(t).stem for t in TARGETS)
    assert not plan.epochs  # no table shortens the budget: every run trains 60 epochs
    for spec in cfg["tables"].values():
        assert not {"folds", "seeds", "epochs"} & set(spec)
    assert {e: cfg["encoders"][e]["size"] for e in cfg["encoders"]} == dict.fromkeys(
        ["megraph", "resnet50", "roi", "jaanet"], "paper"
    )
    # Table 8: 4 encoders x 3 losses x 2 datasets x 3 folds x 5 seeds
    grid = plan.tables["table8"]["cells"]
    assert len(grid) == 24 and all(len(c["metrics"]) == 15 for c in grid)
    assert [label for _, label in plan.tables["table10"]["methods"]] == list("ABCDE")
    probs = [label for _, label in plan.tables["table11"]["methods"]]
    assert len(probs) == 10 == len(PAPER_PROBABILITIES) and probs[0] == "(1,0,0,0)"
    points = plan.tables["fig6"]["points"]
    assert [p["value"] for p in points] == PAPER_MINORITY + PAPER_MAJORITY
    panels = plan.tables["fig5"]["panels"]  # per dataset: WCE and models A-E
    assert [p["dataset"] for p in panels] == ["bp4d"] * 6 + ["disfa"] * 6
    assert panels[0]["label"] == "bp4d: WCE" and panels[-1]["label"] == "disfa: AUNCE (model E)"
    assert plan.tables["fig5"]["n_points"] == 200
    # JA-Net reads 200 px faces cropped to 176; the others share the 256 cache
    assert (cfg["encoders"]["jaanet"]["image"]["cache_size"], cfg["encoders"]["jaanet"]["image"]
            ["input_size"]) == (200, 176)  # fmt: skip
    assert cfg["linear_eval"]["weight_decay"] is None  # as pretraining
    assert plan.splits["gft"] == {"train": 78, "test": 18, "validation": 0} and not plan.warnings


def test_runs_with_the_same_settings_are_one_job(paper_plan):
    """The rows baselines.SAME_MODEL lists as one model are one set of runs in the plan."""
    plan = paper_plan

    def name(table, method, dataset):
        spec = plan.tables[table]
        if spec["kind"] == "grid":
            enc = {"MEGraph (Onestage)": "megraph"}[method.split(" + ")[0]]
            return next(c["method"] for c in spec["cells"]
                        if (c["encoder"], c["dataset"], c["loss_label"]) ==
                        (enc, dataset, method.split(" + ")[1]))  # fmt: skip
        return next(m for m, label in spec["methods"] if label == method)

    for (table, dataset, method), (other, dataset2, method2), _ in SAME_MODEL:
        assert name(table, method, dataset) == name(other, method2, dataset2)
    runs = plan.table_runs
    paper = {t: {r for r in runs[t] if r[2] != "aunce_released"} for t in runs}
    assert paper["table2"] <= runs["table8"] and paper["table3"] <= runs["table8"]
    assert paper["table9"] <= runs["table8"]  # Table 9 times Table 8's MEGraph runs ...
    assert runs["table9"] <= runs["table8"] | runs["table2"] | runs["table3"]  # ... and 2-3's
    released = runs["table2"] - paper["table2"]  # the released reading: Tables 2 and 3 only
    assert len(released) == 15 and released <= runs["variants"]


def test_paper_notes_say_what_the_paper_leaves_open(paper_plan):
    notes = {t: " ".join(spec["notes"]) for t, spec in paper_plan.tables.items()}
    assert "threshold 0.5" in notes["table2"] and "the harness's choice" in notes["table2"]
    assert "2048-dimensional" in notes["table2"]
    assert "every frame, each in the training split of 2 of the 3 folds" in notes["table1"]
    assert "gft (gft at" in notes["table1"] and "its training split" in notes["table1"]
    assert "test only" in notes["table1"]
    for table in ("table10", "table11"):
        assert "64.1" in notes[table] and "60.1" in notes[table] and "aunce audit" in notes[table]
    assert "seconds per frame" in notes["table9"] and "two augmented views" in notes["table9"]
    assert "78 training and 18 test participants" in notes["table5"]


def test_paper_size_encoder_needs_an_explicit_weight_choice(roots, tmp_path):
    cfg = load_config(PAPER, roots)
    cfg["encoders"]["roi"]["pretrained"] = None
    with pytest.raises(AunceError, match=r"^encoders\.roi\.pretrained: a paper-size encoder needs "
                       r"an explicit choice: .* or none for random initialisation"):  # fmt: skip
        make_plan(cfg)
    cfg["encoders"]["roi"].update(size="tiny")  # a tiny encoder: null is random initialisation
    make_plan(cfg)
    # through Snakemake: one line naming the key, before any job
    bad = tmp_path / "no_weights.yaml"
    bad.write_text(yaml.safe_dump({"encoders": {"megraph": {"pretrained": None}}}))
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n",
         "--cores", "1", "--configfile", str(PAPER), str(roots), str(bad)],
        capture_output=True, text=True, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"),
    )  # fmt: skip
    assert proc.returncode != 0
    assert "encoders.megraph.pretrained: a paper-size encoder needs an explicit choice" in (
        proc.stdout + proc.stderr
    )


def test_gft_split_is_checked_at_planning(roots, tmp_path):
    cfg = load_config(PAPER, roots)
    cfg["datasets"]["gft"]["split_file"] = None
    with pytest.raises(AunceError, match=r"datasets\.gft\.split_file: GFT has no official split"):
        make_plan(cfg)
    cfg["datasets"]["gft"]["split_file"] = str(tmp_path / "nope.csv")
    with pytest.raises(AunceError, match=r"datasets\.gft\.split_file: '.*nope\.csv' not found"):
        make_plan(cfg)
    cfg["datasets"]["gft"]["split_file"] = str(gft_split(tmp_path / "small.csv", 10, 3))
    plan = make_plan(cfg)  # another split plans, with a warning and a note
    assert plan.warnings == [
        f"datasets.gft.split_file: {tmp_path / 'small.csv'} holds 10 training and 3 test "
        "participants, the paper's GFT split 78 / 18: its numbers do not compare with the "
        "paper's Tables 5 and 7"
    ]
    assert "10 training and 3 test participants" in " ".join(plan.tables["table5"]["notes"])
    (tmp_path / "bad.csv").write_text("subject,split\nS1,holdout\n")
    cfg["datasets"]["gft"]["split_file"] = str(tmp_path / "bad.csv")
    with pytest.raises(AunceError, match=r"bad\.csv: line 2: unknown split 'holdout'"):
        make_plan(cfg)


def test_crop_larger_than_the_cache_is_refused(roots):
    cfg = load_config(PAPER, roots)
    cfg["encoders"]["jaanet"]["image"]["input_size"] = 224
    with pytest.raises(AunceError, match=r"encoders\.jaanet\.image: input_size 224 is larger "
                       r"than cache_size 200"):  # fmt: skip
        make_plan(cfg)


def test_docs_state_the_job_counts_of_the_plan(paper_plan):
    """docs/tables.md's counts for config/paper.yaml are the plan's (aunce.plan.jobs)."""
    text = (REPO / "docs" / "tables.md").read_text()
    all_jobs = jobs(paper_plan)
    everything = needed_jobs(all_jobs, ["all"])
    assert f"| all | {len(everything):,} |" in text
    for target in TARGETS:
        table = Path(target).stem
        assert f"| {table} | {len(needed_jobs(all_jobs, [target])):,} |" in text, table
    per_rule = pd.Series([j.rule for j in everything]).value_counts()
    for rule, n in per_rule.items():
        assert f"| `{rule}` | {n:,} |" in text, rule
    # README and docs/deviations.md give the totals and the per-rule counts in a sentence
    runs = sum(len(r) for r in paper_plan.runs.values())
    for doc in ("README.md", "docs/deviations.md"):
        prose = " ".join((REPO / doc).read_text().split())
        assert f"**{len(everything):,} jobs**" in prose and f"{runs:,} pretraining runs" in prose
        for rule, n in per_rule.items():
            assert f"{n:,} `{rule}`" in prose or (n == 1 and f"`{rule}`" in prose), (doc, rule)


DRY_RUN = r"""
import json, logging, re, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.logging import logger
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

snakefile, workdir, targets, configs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
messages = []

class Keep(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())

out = {}
with SnakemakeApi(OutputSettings(quiet=set())) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1),
                      config_settings=ConfigSettings(configfiles=[Path(c) for c in configs]),
                      snakefile=Path(snakefile), workdir=Path(workdir))
    logger.addHandler(Keep())
    for target in targets:
        messages.clear()
        wf.dag(dag_settings=DAGSettings(targets={target})).execute_workflow(executor="dryrun")
        stats = next(m for m in messages if m.startswith("Job stats"))
        out[target] = dict(re.findall(r"^(\S+)\s+(\d+)$", stats, re.M))
print("JOBS " + json.dumps(out))
"""


def family(rule: str) -> str:
    """The rule family of a Snakemake rule name (pretrain_bp4d_megraph_fold1_seed3407 -> pretrain)."""
    for prefix in ("train_eval", "linear_eval", "cross_eval", "pretrain", "embed"):
        if rule.startswith(prefix + "_"):
            return prefix
    return {"cache_sized": "cache"}.get(rule, rule)


def dry_run_jobs(workdir: Path, targets: list[str], *configs: Path) -> dict:
    """Snakemake's job counts of a dry run of each target, per rule (one process, parsed once)."""
    proc = subprocess.run(
        [sys.executable, "-c", DRY_RUN, str(REPO / "Snakefile"), str(workdir), json.dumps(targets),
         *map(str, configs)],
        capture_output=True, text=True, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("JOBS ", 1)[1])


def assert_planned(plan, found: dict) -> None:
    all_jobs = jobs(plan)
    for target, stats in found.items():
        counts = pd.Series({r: int(n) for r, n in stats.items() if r != "total"})
        by_family = counts.groupby(family).sum().to_dict()
        planned = pd.Series([j.rule for j in needed_jobs(all_jobs, [target])]).value_counts()
        assert by_family == planned.to_dict(), target


@pytest.mark.workflow
def test_every_table_and_figure_is_a_single_target_with_the_planned_jobs(paper_plan, roots,
                                                                         tmp_path):  # fmt: skip
    """A dry run of `all` and of each table and figure of config/paper.yaml, the full grid (one
    Snakemake process parses the workflow once): each plans, with the jobs aunce.plan.jobs counts."""
    found = dry_run_jobs(tmp_path, ["all", *TARGETS], PAPER, roots)
    assert_planned(paper_plan, found)
    assert int(found["all"]["total"]) == 2298  # docs/tables.md, README, docs/deviations.md


RELEASED = REPO / "config" / "released.yaml"


@pytest.mark.workflow
def test_released_overlay_plans_the_released_pipeline(roots, tmp_path):
    """`--configfile config/paper.yaml roots config/released.yaml`: every table plans; the linear
    evaluations read the cache and the encoders (features: augmented) on a GPU; the variants
    tables show the released per-fold logs."""
    from aunce.baselines import load_published

    plan = make_plan(load_config(PAPER, roots, RELEASED))
    targets = ["results/tables/variants.md", "results/tables/variants_disfa.md"]
    assert_planned(plan, dry_run_jobs(tmp_path, ["all", *targets], PAPER, roots, RELEASED))
    metrics = "results/eval/disfa/megraph/aunce/fold-1/seed-3407/metrics.json"
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "-p",
         "--cores", "1", "--configfile", str(PAPER), str(roots), str(RELEASED), "--", metrics],
        capture_output=True, text=True, env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    shell = next(line for line in proc.stdout.splitlines() if "aunce linear-eval" in line)
    assert "--cache results/cache/disfa --models results/pretrain/disfa/megraph/aunce" in shell
    settings = json.loads((tmp_path / re.search(r"--settings (\S+)", shell).group(1)).read_text())
    assert settings["linear_eval"]["augment"] == "crop"  # DISFA: image_train in the release
    assert settings["linear_eval"]["betas"] == [0.9, 0.999] and settings["encoder"]["neighbors"] == 4
    assert re.search(r"resources: .*gpu=1", proc.stdout)
    published = load_published(REPO / "baselines" / "published.csv")
    for table, dataset in (("variants", "bp4d"), ("variants_disfa", "disfa")):
        where = plan.tables[table]["published"]
        assert (where["table"], where["dataset"]) == ("variants", dataset)
        rows = published[(published["table"] == "variants") & (published["dataset"] == dataset)]
        assert "AUNCE released code fold 3" in set(rows["method"])
        assert "per-fold logs the authors published" in " ".join(plan.tables[table]["notes"])


@pytest.mark.workflow
def test_planned_jobs_of_the_fused_cpu_layout(tmp_path):
    """The same on config/smoke.yaml: cells, fused stages, pretrain-only units, noise datasets."""
    smoke = REPO / "config" / "smoke.yaml"
    plan = make_plan(load_config(smoke))
    targets = ["all", *(spec["outputs"].get("md") for spec in plan.tables.values())]
    assert_planned(plan, dry_run_jobs(tmp_path, targets, smoke))


# --- paper size, proven on this CPU -------------------------------------------------------------
def bp4d_tree(base: Path) -> Path:
    """A BP4D tree in the distributed layout (AUCoding/AU_OCC, JPEG frames, per-sequence landmark
    files) with one synthetic face per subject: F001 and M011 (partitions P1, P2: fold 1's training
    split, one with every AU on, one with none) and F007 (P3: its test split)."""
    import cv2

    from aunce.data.catalog import DATASET_AUS
    from aunce.data.synthetic import generate, read_synthetic, read_synthetic_landmarks

    src = generate("bp4d", base / "synthetic", n_subjects=3, frames_per_subject=1, image_size=128,
                   workers=1)  # fmt: skip
    manifest = read_synthetic(src)
    landmarks = read_synthetic_landmarks(src, len(manifest))
    root = base / "BP4D"
    header = ",".join(str(i) for i in range(100))
    points = ",".join([f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)])
    for i, row in manifest.iterrows():
        subject, task, frame = row["subject"], row["sequence"], int(row["frame"])
        (root / subject / task).mkdir(parents=True)
        assert cv2.imwrite(str(root / subject / task / f"{frame}.jpg"), cv2.imread(str(src / row["image"])))
        codes = ["0"] * 100
        codes[0] = str(frame)
        for au in DATASET_AUS["bp4d"]:
            codes[au] = "0" if subject == "M011" else "1"
        (root / "AUCoding/AU_OCC").mkdir(parents=True, exist_ok=True)
        (root / f"AUCoding/AU_OCC/{subject}_{task}.csv").write_text(f"{header}\n{','.join(codes)}\n")
        xy = np.concatenate([landmarks[i][:, 0], landmarks[i][:, 1]])
        (root / "landmarks" / subject).mkdir(parents=True)
        (root / "landmarks" / subject / f"{task}.csv").write_text(
            f"file,{points}\n{frame}.jpg," + ",".join(f"{v:.3f}" for v in xy) + "\n"
        )
    return root


@pytest.mark.paper_size
@pytest.mark.workflow
def test_paper_size_encoders_through_every_stage(tmp_path):
    """Swin-B MEGraph, ResNet50, VGG16 ROI Nets and JA-Net at their published sizes and input sizes
    (JA-Net's own 200 px cache), config/paper.yaml otherwise, one training step each on a tiny BP4D
    tree: cache -> pretrain -> embed -> linear evaluation -> table (one process per encoder, the
    stages fused). Catches shape, dtype, memory and checkpoint-size problems before a GPU-day."""
    from aunce.summary import encoder_bytes, feature_dim

    root = bp4d_tree(tmp_path)
    cfg = yaml.safe_load(PAPER.read_text())
    cfg.update(seeds=[3407], device="cpu", granularity="cell", fuse_stages=True,
               keep={"encoders": "all", "embeddings": "all"})  # fmt: skip
    cfg["datasets"] = {"bp4d": {"source": "bp4d", "root": str(root)}}
    for enc in cfg["encoders"].values():
        enc["pretrained"] = "none"  # weights are never downloaded: random initialisation, said
    cfg["pretrain"].update(epochs=1, batch_size=2)  # one step on fold 1's two training frames
    encoders = ["resnet50", "roi", "jaanet"]
    cfg["tables"] = {
        "table1": {"kind": "occurrence", "datasets": ["bp4d"]},
        "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["aunce"], "folds": [1]},
        "table8": {"kind": "grid", "datasets": ["bp4d"], "encoders": encoders,
                   "methods": ["wce"], "folds": [1]},
    }  # fmt: skip
    config = tmp_path / "paper_size.yaml"
    config.write_text(yaml.safe_dump(cfg))
    check_config(yaml.safe_load(config.read_text()))
    work = tmp_path / "work"
    targets = [f"results/tables/{t}.md" for t in cfg["tables"]]
    try:
        proc = subprocess.run(
            [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1",
             f"--configfile={config}", *targets],
            capture_output=True, text=True,
            env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"),
        )  # fmt: skip
        logs = "".join(p.read_text()[-1500:] for p in (work / "results/logs").rglob("*.log"))
        assert proc.returncode == 0, proc.stderr[-3000:] + logs
        results = work / "results"
        assert (results / "cache/bp4d-200px").is_dir()  # JA-Net's own cache, the others at 256
        for enc, method in [("megraph", "aunce")] + [(e, "wce") for e in encoders]:
            run = f"bp4d/{enc}/{method}/fold-1/seed-3407"
            settings = json.loads((results / "pretrain" / run / "settings.json").read_text())
            crop = 176 if enc == "jaanet" else 224
            assert settings["image"]["input_size"] == crop and settings["encoder"]["size"] == "paper"
            assert settings["encoder"]["pretrained"] is None
            # checkpoint size: the state the planning summary assumes, within 0.1 %
            size = (results / "pretrain" / run / "encoder.pt").stat().st_size
            assert size == pytest.approx(encoder_bytes(cfg, enc, 12), rel=1e-3), enc
            with np.load(results / "embed" / run / "embeddings.npz") as data:
                assert data["train_z"].dtype == np.float16
                assert data["train_z"].shape == (2, 12, feature_dim(cfg, enc))
                assert data["test_z"].shape == (1, 12, feature_dim(cfg, enc))
                assert np.isfinite(data["test_z"].astype(np.float32)).all()
            metrics = json.loads((results / "eval" / run / "metrics.json").read_text())
            assert metrics["linear_eval"]["weight_decay"] == cfg["pretrain"]["weight_decay"]
            bench = pd.read_csv(next((results / "benchmarks/train_eval/bp4d" / enc).glob("*.tsv")),
                                sep="\t")  # fmt: skip
            assert bench["max_rss"].iloc[0] < 6000, (enc, bench["max_rss"].iloc[0])  # MB
        grid = pd.read_csv(results / "tables/table8.csv").set_index("row")
        assert {"ResNet50 + WCE (this run)", "ROI + WCE (this run)",
                "JA-Net + WCE (this run)"} <= set(grid.index)  # fmt: skip
        table2 = pd.read_csv(results / "tables/table2.csv").set_index("row")
        assert "AUNCE (this run)" in table2.index
        assert re.search(r"encoder megraph \(paper\)", (results / "tables/table2.md").read_text())
    finally:
        shutil.rmtree(work / "results", ignore_errors=True)  # 1 GB of checkpoints
