"""The planning summary (`aunce plan`, aunce.summary): runs, sharing, GPU-hours and disk of a small
config, computed here by hand from its frames, rates and sizes."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import REPO

from aunce import AunceError
from aunce.cli import main
from aunce.summary import (
    ENCODER_STATE_BYTES,
    GB,
    SMALL_FILES_PER_RUN,
    encoder_bytes,
    summarize,
)

PAPER_BP4D = {"aunce": 0.0138, "wce": 0.0271}  # baselines/published_cost.csv, BP4D
TEST_FOLD = [1] * 10 + [2] * 8 + [3] * 12  # 30 BP4D frames: fold k tests on its 10 / 8 / 12


@pytest.fixture
def small(tmp_path):
    """A config of three tables over real-layout datasets whose caches (manifests) exist, and one
    measured timing.json, in a results folder of its own."""
    cfg = {
        "seeds": [1, 2],
        "device": "cuda",
        "datasets": {
            "bp4d": {"source": "bp4d", "root": str(tmp_path)},
            "bp4d_plus": {"source": "bp4d_plus", "root": str(tmp_path)},
        },
        "encoders": {"megraph": {"size": "paper", "pretrained": "none"},
                     "roi": {"size": "paper", "pretrained": "none"}},
        "pretrain": {"epochs": 3, "batch_size": 4},
        "methods": {"aunce": {"loss": "aunce"}, "wce": {"loss": "wce"}},
        "tables": {
            "table2": {"dataset": "bp4d", "encoder": "megraph", "methods": ["aunce", "wce"]},
            "table4": {"dataset": "bp4d", "test_dataset": "bp4d_plus", "encoder": "megraph",
                       "methods": ["aunce"], "seeds": [1]},
            "table8": {"kind": "grid", "datasets": ["bp4d"], "encoders": ["roi", "megraph"],
                       "methods": ["wce"], "folds": [1]},
        },
    }  # fmt: skip
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"
    for name, rows in (("bp4d", [f"x.jpg,{k}" for k in TEST_FOLD]),
                       ("bp4d_plus", ["x.jpg,test"] * 20)):  # fmt: skip
        (results / "cache" / name).mkdir(parents=True)
        column = "test_fold" if name == "bp4d" else "split"
        (results / "cache" / name / "manifest.csv").write_text(
            f"image,{column}\n" + "\n".join(rows) + "\n"
        )
        built = {"reader": name, "source": str(tmp_path), "size": 256}  # as aunce.data.cache
        (results / "cache" / name / "cache.json").write_text(json.dumps(built))
    run = results / "pretrain/bp4d/megraph/aunce/fold-1/seed-1"
    run.mkdir(parents=True)
    timing = {"frames_per_second": 100.0, "device": "cuda:0", "device_name": "H200"}
    (run / "timing.json").write_text(json.dumps(timing))
    settings = {"encoder": {"name": "megraph", "size": "paper"}, "image": {"input_size": 224},
                "pretrain": {"batch_size": 4}, "method": {"loss": "aunce"}}  # fmt: skip
    (run / "settings.json").write_text(json.dumps(settings))
    return config, results


def test_runs_shared_runs_and_jobs_per_table(small):
    config, results = small
    s = summarize([config], results=results)
    tables = {t["id"]: t for t in s["tables"]}
    assert s["runs"] == 15  # table2 12, table4's model on all of BP4D 1, table8's ROI runs 2
    assert s["cross_evaluations"] == 1
    assert (tables["table2"]["runs"], tables["table2"]["shared_runs"]) == (12, 2)
    assert tables["table2"]["shared_with"] == ["table8"]
    assert (tables["table8"]["runs"], tables["table8"]["own_runs"]) == (4, 2)
    assert (tables["table4"]["runs"], tables["table4"]["cross_evaluations"]) == (1, 1)
    assert tables["table4"]["shared_with"] == []
    # table4 alone: cache of each dataset, its pretraining job, the cross evaluation, the table
    assert tables["table4"]["jobs_per_rule"] == {"cache": 2, "pretrain": 1, "cross_eval": 1,
                                                 "table": 1}  # fmt: skip
    assert s["frames"]["bp4d"]["folds"]["2"] == [22, 8]  # from the cache's manifest
    assert s["frames"]["bp4d"]["source"].startswith("cache manifest")


def test_gpu_hours_from_measured_and_published_rates(small):
    config, results = small
    s = summarize([config], results=results)
    # frames a 3-epoch run sees in whole batches of 4: folds 1, 2, 3 train on 20, 22 and 18
    # frames -> 20, 20, 16; fold 'all' (table4) on 30 -> 28
    seen = {"1": 20, "2": 20, "3": 16, "all": 28}
    measured = 1 / 100.0  # this results folder's MEGraph + AUNCE timing.json
    seconds = {
        "aunce": 3 * measured * (2 * (20 + 20 + 16) + seen["all"]),
        "wce": 3 * PAPER_BP4D["wce"] * 2 * (20 + 20 + 16),
        "roi": 3 * PAPER_BP4D["wce"] * 2 * seen["1"],
    }
    assert s["gpu_hours"] == pytest.approx(sum(seconds.values()) / 3600)
    tables = {t["id"]: t for t in s["tables"]}
    assert tables["table4"]["gpu_hours"] == pytest.approx(3 * measured * 28 / 3600)
    assert tables["table8"]["own_gpu_hours"] == pytest.approx(seconds["roi"] / 3600)
    rates = {(r["encoder"], r["method"]): r for r in s["rates"]}
    assert rates[("megraph", "aunce")]["source"] == "measured: 1 timing.json (this run; H200)"
    assert rates[("roi", "wce")]["source"] == (
        "paper Table 9 (RTX 3090, MEGraph Swin-B, batch 32; timed for MEGraph only)"
    )


def test_disk_keeps_what_cross_evaluation_reads(small):
    config, results = small
    s = summarize([config], results=results)
    d = s["disk"]
    enc = ENCODER_STATE_BYTES[("megraph", "paper")][0] + 12 * ENCODER_STATE_BYTES[("megraph", "paper")][1]
    assert d["encoders_kept"] == 1 and d["encoders_kept_gb"] == pytest.approx(enc / GB)
    assert d["embeddings_kept_gb"] == 0
    test_frames = 2 * 2 * (10 + 8 + 12) + 2 * 10  # table2's 12 runs, table8's ROI runs on fold 1
    predictions = test_frames * (12 * 5 + 8)  # float32 probabilities, int8 labels, int64 index
    assert d["kept_gb"] == pytest.approx((enc + predictions + 15 * SMALL_FILES_PER_RUN) / GB)
    # every evaluated run: all 30 frames, float16, D = 1024 (MEGraph) and 512 (ROI Nets)
    embeddings = 12 * 30 * (12 * 1024 * 2 + 12 + 8) + 2 * 30 * (12 * 512 * 2 + 12 + 8)
    assert d["embeddings_all_gb"] == pytest.approx(embeddings / GB)
    assert d["caches"]["results/cache/bp4d"] == pytest.approx(30 * (256 * 256 * 3 + 456) / GB)
    cfg = yaml.safe_load(config.read_text())
    cfg["keep"] = {"encoders": "all", "embeddings": "all"}
    config.write_text(yaml.safe_dump(cfg))
    everything = summarize([config], results=results)["disk"]
    assert everything["kept_gb"] == pytest.approx(d["everything_gb"])
    assert everything["encoders_kept"] == 15


def test_paper_config_kept_outputs_fit_in_50_gb(roots, tmp_path):
    """Issue 11: config/paper.yaml's outputs, caches aside, are estimated under 50 GB."""
    s = summarize([REPO / "config" / "paper.yaml", roots], results=tmp_path)
    assert s["runs"] == 759 and s["jobs"] == 2298
    assert s["disk"]["kept_gb"] < 50
    # Table 4: 5 per reading of AUNCE; Table 7: 3 folds x 5 seeds x 3 methods (BP4D) + 5 x 3 (GFT)
    assert s["disk"]["encoders_kept"] == 70
    assert s["disk"]["everything_gb"] > 1000  # what keeping everything would cost
    assert s["gpu_hours"] > 10_000


@pytest.mark.parametrize("size", ["tiny"])
@pytest.mark.parametrize("name", ["resnet50", "roi", "jaanet", "megraph"])
def test_encoder_state_bytes_match_the_encoders(name, size):
    """The summary's encoder.pt sizes are the state dicts create_encoder builds (paper sizes: the
    paper-size workflow test weighs their checkpoints)."""
    from aunce.data.catalog import DATASET_AUS
    from aunce.encoders import create_encoder

    for dataset in ("disfa", "gft", "bp4d"):
        aus = DATASET_AUS[dataset]
        state = create_encoder(name, len(aus), size=size, aus=aus).state_dict()
        nbytes = sum(t.numel() * t.element_size() for t in state.values())
        assert nbytes == encoder_bytes({"encoders": {name: {"size": size}}}, name, len(aus))


def test_a_timing_of_another_device_is_not_used(small):
    config, results = small
    cfg = yaml.safe_load(config.read_text())
    cfg["device"] = "cpu"  # the measured run was on a GPU
    config.write_text(yaml.safe_dump(cfg))
    rates = {(r["encoder"], r["method"]): r for r in summarize([config], results=results)["rates"]}
    assert rates[("megraph", "aunce")]["source"].startswith("paper Table 9")


def test_tiny_encoders_have_no_rate_until_measured(small):
    """The paper times paper-size encoders: a tiny one's GPU-hours are counted only once measured."""
    config, results = small
    cfg = yaml.safe_load(config.read_text())
    cfg["encoders"]["roi"] = {"size": "tiny"}
    config.write_text(yaml.safe_dump(cfg))
    s = summarize([config], results=results)
    tables = {t["id"]: t for t in s["tables"]}
    assert s["runs_without_rate"] == 2 and tables["table8"]["runs_without_rate"] == 2
    assert tables["table8"]["own_gpu_hours"] == 0  # the ROI runs
    rates = {(r["encoder"], r["method"]): r for r in s["rates"]}
    assert rates[("roi", "wce")]["seconds_per_frame"] is None
    from aunce.summary import render_summary

    assert "(2 runs without a rate, not counted: '?' or '+' below)" in render_summary(s)


def test_cli_plan(small, capsys):
    config, results = small
    assert main(["plan", "--configfile", str(config), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Plan of {config}")
    assert re.search(r"^\| table2 +\| au_f1 +\| +\d+ +\| 12 +\| 2 +\| table8 ", out, re.M)
    assert "GPU-hours" in out and "kept in all" in out
    assert main(["plan", "--configfile", str(config), "--results", str(results), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 15
    assert main(["plan", "--configfile", str(config.with_name("nope.yaml"))]) == 2
    assert "nope.yaml' not found" in capsys.readouterr().err


def test_a_malformed_published_cost_file_is_named(tmp_path, small):
    config, results = small
    bad = tmp_path / "cost.csv"
    bad.write_text("table,dataset,method,source,seconds_per_frame,epoch_seconds\nt,bp4d,WCE,x,fast,1\n")
    with pytest.raises(AunceError, match=r"cost\.csv: line 2: 'fast' is not a number"):
        summarize([config], results=results, published_cost=bad)


RATES_CSV = (
    "encoder,size,input_size,batch_size,loss,amp,device,images_per_second,measured_by\n"
    "megraph,paper,224,4,wce,none,NVIDIA H200,400,benchmarks/gpu.py 2026-12-03 git abc\n"
    "roi,paper,224,4,wce,none,NVIDIA H200,250,benchmarks/gpu.py 2026-12-03 git abc\n"
    "megraph,paper,224,4,aunce,none,NVIDIA H200,50,benchmarks/gpu.py 2026-12-03 git abc\n"
)


def test_a_rates_file_comes_before_the_paper_and_after_this_run(small, tmp_path, capsys):
    """`aunce plan --rates` (benchmarks/gpu.py --rates-out): a benchmarked rate replaces the
    paper's Table 9 for its encoder and loss; this results folder's own timing.json still wins."""
    config, results = small
    rates_file = tmp_path / "rates.csv"
    rates_file.write_text(RATES_CSV)
    s = summarize([config], results=results, rates_file=rates_file)
    rates = {(r["encoder"], r["method"]): r for r in s["rates"]}
    assert rates[("megraph", "wce")]["seconds_per_frame"] == pytest.approx(1 / 400)
    assert rates[("megraph", "wce")]["source"] == (
        "benchmarked: rates.csv: NVIDIA H200, benchmarks/gpu.py 2026-12-03 git abc"
    )
    assert rates[("roi", "wce")]["seconds_per_frame"] == pytest.approx(1 / 250)
    # the timing.json of this run (100 frames/s) beats the file's 50 images/s
    assert rates[("megraph", "aunce")]["seconds_per_frame"] == pytest.approx(1 / 100)
    seen = 20 + 20 + 16  # frames per epoch of folds 1-3 in whole batches of 4 (see above)
    hours = 3 * (2 * seen * (1 / 100) + 28 / 100 + 2 * seen / 400 + 2 * 20 / 250) / 3600
    assert s["gpu_hours"] == pytest.approx(hours)
    assert main(["plan", "--configfile", str(config), "--results", str(results),
                 "--rates", str(rates_file)]) == 0  # fmt: skip
    assert "benchmarked: rates.csv: NVIDIA H200" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("megraph,paper,224,4,wce,none,H200,fast,x", r"line 2: images_per_second 'fast' is not a"),
        ("megraph,paper,224,4,wce,none,H200,-3,x", r"line 2: images_per_second '-3' is not a"),
        ("megraph,paper,224,4,wce,none,H200", r"line 2: expected 9 fields, found 7"),
    ],
)
def test_a_malformed_rates_file_is_named(small, tmp_path, line, message):
    config, results = small
    bad = tmp_path / "rates.csv"
    bad.write_text(RATES_CSV.splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(AunceError, match=r"rates\.csv: " + message):
        summarize([config], results=results, rates_file=bad)
    with pytest.raises(AunceError, match=r"nope\.csv: rates file not found"):
        summarize([config], results=results, rates_file=tmp_path / "nope.csv")


def test_the_gpu_benchmark_writes_a_rates_file_the_plan_reads(tmp_path):
    """benchmarks/gpu.py --rates-out: its rows key the default's MEGraph runs (--quick: the tiny
    MEGraph at the CPU geometry), so `aunce plan --rates` prices them."""
    import importlib.util
    import types

    from aunce.summary import load_rates

    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = types.SimpleNamespace(quick=True, compile=False, threads=1)
    import torch

    rows = [bench.rates_row(bench.benchmark_settings(m, args, torch.device("cpu")), "a, CPU", r)
            for m, r in (("aunce", 80.0), ("wce", 160.0))]  # fmt: skip
    out = tmp_path / "rates.csv"
    bench.write_rates(out, rows)
    loaded = load_rates(out)
    assert [r["seconds_per_frame"] for r in loaded] == [1 / 80, 1 / 160]
    assert loaded[0]["device"] == "a  CPU"  # a comma in the device name would split the row
    s = summarize([REPO / "config" / "config.yaml"], results=tmp_path / "none", rates_file=out)
    rates = {(r["encoder"], r["loss"]): r for r in s["rates"]}
    assert rates[("megraph", "aunce")]["seconds_per_frame"] == pytest.approx(1 / 80)
    assert rates[("megraph", "aunce")]["source"].startswith("benchmarked: rates.csv")
