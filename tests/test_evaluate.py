"""Linear evaluation (aunce.evaluate): the released code's head, loss and augmented-features path
(its linear_graph_au.py) against slow references, and the optimizer settings it takes."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import HostReads, settings_for

from aunce import AunceError, train
from aunce.data.cache import open_cache
from aunce.evaluate import (
    LinearHead,
    SoftmaxHead,
    _head_and_optimizer,
    embed,
    fit_linear_head_augmented,
    linear_eval,
)
from aunce.losses import clamped_wce_loss

CPU = torch.device("cpu")


def test_softmax_head_is_a_linear_layer_and_a_softmax_per_au():
    """Val_Net's head: per AU nn.Linear(D, 2), softmax over the pair, output 0 the presence."""
    k, d = 3, 5
    head = SoftmaxHead(k, d)
    z = torch.randn(4, k, d)
    for i in range(k):
        linear = torch.nn.Linear(d, 2)
        linear.weight.data, linear.bias.data = head.weight[i].data, head.bias[i].data
        reference = torch.softmax(linear(z[:, i]), dim=1)[:, 0]
        assert torch.allclose(torch.sigmoid(head(z)[:, i]), reference, atol=1e-6)
    assert head.weight.abs().max() <= 1 / d**0.5  # nn.Linear's initialisation bound


def released_softmax_loss(probs, target, weight):
    """The released au_softmax_loss, as written there: probs (B, 2, K) after the softmax."""
    los_pos = target * torch.log(probs[:, 0].clamp(min=1e-3))
    los_neg = (1 - target) * torch.log(probs[:, 1].clamp(min=1e-3))
    return (-(los_pos + los_neg) * weight).mean()


def test_clamped_wce_against_the_released_loss():
    g = torch.Generator().manual_seed(0)
    pair = torch.randn(16, 2, 6, generator=g) * 6  # large logits: some probabilities below 1e-3
    labels = torch.randint(0, 2, (16, 6), generator=g)
    weights = torch.rand(6, generator=g) + 0.5
    logits = (pair[:, 0] - pair[:, 1]).requires_grad_()
    got = clamped_wce_loss(logits, labels, weights)
    want = released_softmax_loss(torch.softmax(pair, dim=1), labels.float(), weights)
    assert torch.allclose(got, want, atol=1e-6)
    got.backward()
    p_true = torch.where(labels == 1, torch.sigmoid(logits), torch.sigmoid(-logits)).detach()
    assert (p_true < 1e-3).any()
    assert torch.all(logits.grad[p_true < 1e-3] == 0)  # the clamp stops the gradient
    labels[0, 0] = -1  # unknown labels drop out, as in every loss of the harness
    masked = clamped_wce_loss(logits, labels, weights)
    assert torch.isfinite(masked) and masked != got


def test_head_normalises_features_and_takes_the_given_optimizer_settings():
    cfg = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "betas": [0.8, 0.99],
           "head": "softmax", "normalize_features": True}  # fmt: skip
    head, optim = _head_and_optimizer(3, 4, cfg, CPU)
    assert isinstance(optim, torch.optim.Adam) and not isinstance(optim, torch.optim.AdamW)
    assert optim.param_groups[0]["betas"] == (0.8, 0.99)
    assert optim.param_groups[0]["weight_decay"] == 1e-6
    z = torch.randn(2, 3, 4)
    assert torch.allclose(head(z), head(7 * z), atol=1e-6)  # L2-normalised first
    head, optim = _head_and_optimizer(3, 4, dict(cfg, optimizer="adamw", betas=None), CPU)
    assert isinstance(optim, torch.optim.AdamW) and optim.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="unknown linear head 'svm'"):
        LinearHead(3, 4, "svm")


@pytest.mark.parametrize("weighted", [True, False])
def test_lambda_of_the_linear_evaluation_is_a_setting(monkeypatch, weighted):
    """linear_eval.au_weights (resolved per method: Table 10's model A has no lambda "for both
    WCE and AUNCE") decides whether the head's WCE is weighted by the fold's AU weights."""
    import aunce.evaluate as evaluate

    seen, original = [], evaluate.wce_loss

    def recording(logits, labels, weights):
        seen.append(weights)
        return original(logits, labels, weights)

    monkeypatch.setattr(evaluate, "wce_loss", recording)
    g = torch.Generator().manual_seed(0)
    z, labels = torch.randn(40, 3, 4, generator=g), torch.randint(0, 2, (40, 3), generator=g)
    cfg = {"epochs": 1, "batch_size": 20, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 0.0,
           "betas": None, "au_weights": weighted}  # fmt: skip
    evaluate.fit_linear_head(z, labels, {"linear_eval": cfg}, 0, CPU)
    assert len(seen) == 2
    if weighted:
        from aunce.losses import au_weights

        assert all(torch.equal(w, au_weights(labels)) for w in seen)
    else:
        assert all(w is None for w in seen)


# --- the released augmented-features path, on a tiny cache --------------------------------------
RELEASED = {"epochs": 2, "batch_size": 12, "lr": 1e-2, "optimizer": "adam", "weight_decay": 1e-6,
            "betas": [0.9, 0.999], "threshold": 0.5, "head": "softmax", "normalize_features": True,
            "features": "augmented", "encoder_mode": "train", "augment": "simclr"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(bp4d_cache, tmp_path_factory) -> Path:
    """A tiny MEGraph pretrained one epoch on fold 1, embedded (the workflow's stages 1 and 2)."""
    root = tmp_path_factory.mktemp("released")
    train.pretrain(bp4d_cache, settings_for("aunce", epochs=1), [("1", 0)], root / "pretrain")
    image = settings_for()["image"]
    settings = {"dataset": "bp4d", "image": image, "device": "cpu", "amp": "none", "threads": 1}
    embed(bp4d_cache, root / "pretrain", settings, [("1", 0)], root / "embed")
    return root


def released_settings(**linear) -> dict:
    base = settings_for("aunce")
    return {"dataset": "bp4d", "encoder": {"name": "megraph"}, "method_name": "aunce",
            "linear_eval": dict(RELEASED, **linear), "image": base["image"],
            "pretrain": dict(base["pretrain"], jitter_strengths=[0.4, 0.4, 0.4, 0.1]),
            "device": "cpu", "amp": "none", "threads": 1}  # fmt: skip


def test_released_linear_evaluation_runs_and_is_reproducible(bp4d_cache, tiny_run, tmp_path):
    settings = released_settings()
    for out in ("a", "b"):
        linear_eval(tiny_run / "embed", settings, [("1", 0)], tmp_path / out,
                    cache_dir=bp4d_cache, models_root=tiny_run / "pretrain")  # fmt: skip
    files = [train.run_dir(tmp_path / out, "1", 0) / "predictions.npz" for out in ("a", "b")]
    assert files[0].read_bytes() == files[1].read_bytes()  # seeded: the same draws, the same head
    with np.load(files[0]) as data:
        probs = data["probabilities"]
        assert probs.shape == (len(open_cache(bp4d_cache).split("1")[1]), 12)
        assert np.isfinite(probs).all() and 0 <= probs.min() and probs.max() <= 1
    with pytest.raises(AunceError, match="give the cache and the models' folder"):
        linear_eval(tiny_run / "embed", settings, [("1", 0)], tmp_path / "c")


def frozen_encoder(tiny_run):
    encoder, _ = train.load_encoder(
        train.run_dir(tiny_run / "pretrain", "1", 0) / "encoder.pt", CPU
    )
    return encoder


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_encoder_stays_frozen_and_train_mode_moves_its_batch_statistics(
    bp4d_cache, tiny_run, mode
):
    """encoder_mode train (val_net.train() in the release): the running statistics of batch norm
    follow the augmented training batches; no weight of the encoder changes either way."""
    encoder = frozen_encoder(tiny_run)
    params = {k: v.clone() for k, v in encoder.named_parameters()}
    buffers = {k: v.clone() for k, v in encoder.named_buffers() if "running_mean" in k}
    cache = open_cache(bp4d_cache)
    train_idx, _ = cache.split("1")
    settings = released_settings(encoder_mode=mode, epochs=1)
    fit_linear_head_augmented(encoder, cache, train_idx, settings, 0, CPU)
    assert not encoder.training
    assert all(torch.equal(v, params[k]) for k, v in encoder.named_parameters())
    moved = [not torch.equal(v, buffers[k]) for k, v in encoder.named_buffers() if k in buffers]
    assert all(moved) if mode == "train" else not any(moved)


def test_no_host_sync_inside_a_released_linear_evaluation_step(bp4d_cache, tiny_run):
    """1 or 3 epochs: the same one-off reads (the AU weights' checks, setting up), nothing per
    step but Adam's host step counters."""
    cache = open_cache(bp4d_cache)
    train_idx, _ = cache.split("1")

    def reads(epochs: int) -> Counter:
        encoder = frozen_encoder(tiny_run)
        settings = released_settings(epochs=epochs)
        with HostReads() as counter:
            head = fit_linear_head_augmented(encoder, cache, train_idx, settings, 0, CPU)
        steps = epochs * 3  # 32 training frames in batches of 12, the partial one kept
        counter.counts["item"] -= 2 * steps  # Adam's host step counters: weight and bias
        assert head is not None
        return +counter.counts

    assert reads(1) == reads(3)
