"""Bounded memory (benchmarks/scale.py, BENCHMARKS.md "Scale"): embedding and linear evaluation
hold a batch, not a dataset. The same run at N and 10 N frames peaks within 10 % in resident
memory, where holding the embeddings would add hundreds of MB; and the streamed outputs are
those of the whole arrays in memory."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.scale

spec = importlib.util.spec_from_file_location("scale_bench", REPO / "benchmarks" / "scale.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

N = 1000
#: K x D = 12 x 1024 (the paper's MEGraph): 24 KB of float16 a frame, so that 10 N frames held in
#: memory would be 240 MB (float16) to 480 MB (float32) above the N run.
FEATURE_DIM = 1024


def stage_settings() -> dict:
    """The stages' settings: a tiny ResNet50 (the cheapest per-AU head; the memory is the
    embeddings', whatever the encoder) on 16 px faces, one thread, one linear-evaluation epoch."""
    settings = bench.stage_settings(16, 16, FEATURE_DIM, linear_epochs=1, encoder="resnet50")
    for stage in settings.values():
        stage["threads"] = 1
    return settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Embedding and linear evaluation at N and 10 N frames, each stage in a process of its own:
    {frames: {stage: record}}."""
    root = tmp_path_factory.mktemp("scale")
    settings = stage_settings()
    models = bench.pretrained_model(root, settings, frames=256)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = {}
    for frames in (N, 10 * N):
        cache = bench.random_cache(root / f"cache{frames}", frames, 16)
        work = root / f"work{frames}"
        work.mkdir()
        out[frames] = bench.embed_and_evaluate(cache, models, work, settings, env=env)
        out[frames]["work"], out[frames]["cache"] = work, cache
    return out


@pytest.mark.parametrize("stage", ["embed", "linear_eval"])
def test_peak_memory_does_not_grow_with_the_frames(runs, stage):
    small, large = runs[N][stage]["max_rss_mb"], runs[10 * N][stage]["max_rss_mb"]
    embeddings = (runs[10 * N]["work"] / "embed/fold-split/seed-0/embeddings.npz").stat().st_size
    assert embeddings > 200e6  # what holding them would have cost
    assert large <= 1.1 * small, (stage, small, large)


def test_streamed_outputs_equal_the_arrays_in_memory(runs):
    """The embeddings file holds what the encoder gives for the whole split at once, and the linear
    evaluation's probabilities are those of a head trained on the arrays in memory."""
    from aunce.data.cache import open_cache
    from aunce.embeddings import open_embeddings
    from aunce.train import load_encoder

    work, cache = runs[N]["work"], open_cache(runs[N]["cache"])
    data = open_embeddings(work / "embed/fold-split/seed-0/embeddings.npz")
    train_idx, test_idx = cache.split("split")
    assert np.array_equal(data.train_index, train_idx) and np.array_equal(data.test_index, test_idx)
    model = runs[N]["work"].parent / "models/fold-split/seed-0/encoder.pt"
    encoder, _ = load_encoder(model, torch.device("cpu"))
    settings = stage_settings()
    with torch.no_grad():
        from aunce.data.augment import center_crop, normalize, to_float

        x = torch.from_numpy(np.asarray(cache.images[test_idx]))
        x, _ = center_crop(to_float(x), 16)
        whole = encoder(normalize(x, "imagenet")).numpy().astype(np.float16)
    assert np.array_equal(np.asarray(data.test_z), whole)
    # the head trained on the arrays in memory, the loop before streaming: the same permutation
    # of a float32 tensor, the same head and optimizer
    from aunce.evaluate import _head_and_optimizer
    from aunce.losses import au_weights

    cfg = settings["linear_eval"]["linear_eval"]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    z = torch.from_numpy(np.asarray(data.train_z, np.float32))
    labels = torch.from_numpy(data.train_labels.astype(np.int64))
    weights = au_weights(labels)
    head, optim = _head_and_optimizer(z.shape[1], z.shape[2], cfg, torch.device("cpu"))
    for _ in range(cfg["epochs"]):
        perm = torch.randperm(len(z), generator=gen)
        for start in range(0, len(z), cfg["batch_size"]):
            batch = perm[start : start + cfg["batch_size"]]
            loss = head.loss(head(z[batch]), labels[batch], weights)
            optim.zero_grad()
            loss.backward()
            optim.step()
    with torch.no_grad():
        probs = torch.sigmoid(head.eval()(torch.from_numpy(whole.astype(np.float32)))).numpy()
    with np.load(work / "eval/fold-split/seed-0/predictions.npz") as saved:
        np.testing.assert_array_equal(saved["probabilities"], probs)
    metrics = json.loads((work / "eval/fold-split/seed-0/metrics.json").read_text())
    assert metrics["run"]["fold"] == "split"
