"""Losses against slow references written straight from shared spec losses.md (float64, loops)."""

import math

import pytest
import torch
from reference import literal_released, reference_aunce, reference_wce, reference_wfl

from aunce.losses import (
    AUNCELoss,
    WCELoss,
    au_weights,
    aunce_loss,
    draw_positive_kinds,
    wce_loss,
    wfl_loss,
)


def random_case(seed, b, k, d, unknown=0.1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    z_aug = z + 0.5 * torch.randn(b, k, d, generator=g, dtype=torch.float64)
    labels = (torch.rand(b, k, generator=g) < 0.35).long()
    labels[torch.rand(b, k, generator=g) < unknown] = -1
    kinds = torch.randint(0, 4, (2 * b, k), generator=g)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.5
    minority = torch.randint(0, 2, (k,), generator=g)
    return z, z_aug, labels, kinds, weights, minority


@pytest.mark.parametrize(
    "seed,b,k,d", [(0, 4, 3, 5), (1, 8, 12, 16), (2, 16, 8, 4), (3, 2, 1, 3), (4, 12, 10, 8)]
)
def test_aunce_matches_reference(seed, b, k, d):
    z, z_aug, labels, kinds, weights, minority = random_case(seed, b, k, d)
    fast = aunce_loss(
        z,
        z_aug,
        labels,
        weights,
        tau=0.5,
        beta_minority=1.2,
        beta_majority=0.4,
        minority_label=minority,
        positive_kind=kinds,
    )
    slow = reference_aunce(z, z_aug, labels, weights, 0.5, 1.2, 0.4, minority, kinds)
    assert fast.item() == pytest.approx(slow, rel=1e-6, abs=1e-9)


def test_aunce_corner_cases():
    z, z_aug, labels, kinds, weights, minority = random_case(5, 6, 4, 3, unknown=0.0)
    labels[:, 0] = -1  # only unknown labels: contributes 0
    labels[:, 1] = 0  # no negatives
    labels[:, 2] = 0
    labels[0, 2] = 1  # a single positive: its same-label set is empty -> twin view
    loss = aunce_loss(z, z_aug, labels, weights, minority_label=minority, positive_kind=kinds)
    ref = reference_aunce(z, z_aug, labels, weights, 0.5, 1.2, 0.4, minority, kinds)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(ref, rel=1e-6)


def test_aunce_gradcheck():
    z, z_aug, labels, kinds, weights, minority = random_case(6, 4, 2, 3)
    z.requires_grad_(True)
    z_aug.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: aunce_loss(
            a, b, labels, weights, minority_label=minority, positive_kind=kinds
        ),
        (z, z_aug),
    )


def test_aunce_invariances():
    z, z_aug, labels, kinds, weights, minority = random_case(7, 8, 5, 6)
    base = aunce_loss(z, z_aug, labels, weights, minority_label=minority, positive_kind=kinds)
    scaled = aunce_loss(
        3.0 * z, 0.2 * z_aug, labels, weights, minority_label=minority, positive_kind=kinds
    )
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    perm_kinds = torch.cat([kinds[:8][perm], kinds[8:][perm]])
    permuted = aunce_loss(
        z[perm],
        z_aug[perm],
        labels[perm],
        weights,
        minority_label=minority,
        positive_kind=perm_kinds,
    )
    assert scaled.item() == pytest.approx(base.item(), rel=1e-9)
    assert permuted.item() == pytest.approx(base.item(), rel=1e-9)


def test_aunce_draw_is_seeded():
    z, z_aug, labels, *_ = random_case(8, 8, 4, 6)
    a = aunce_loss(z, z_aug, labels, generator=torch.Generator().manual_seed(1))
    b = aunce_loss(z, z_aug, labels, generator=torch.Generator().manual_seed(1))
    assert a.item() == b.item()
    kinds = draw_positive_kinds(10000, 1, (0.15, 0.15, 0.7, 0.0), torch.Generator().manual_seed(0))
    freq = torch.bincount(kinds.flatten(), minlength=4).double() / 10000
    assert torch.allclose(
        freq, torch.tensor([0.15, 0.15, 0.7, 0.0], dtype=torch.float64), atol=0.02
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tau": 0.0}, "tau must be positive"),
        ({"positive_probs": (0.5, 0.5, 0.5, 0.0)}, "summing to 1"),
        (
            {"positive_kind": torch.zeros(3, 2, dtype=torch.long)},
            r"positive_kind must be \(2B, K\)",
        ),
        ({"variant": "other"}, "unknown AUNCE variant"),
    ],
)
def test_aunce_errors(kwargs, match):
    z, z_aug, labels, *_ = random_case(9, 4, 2, 3)
    with pytest.raises(ValueError, match=match):
        aunce_loss(z, z_aug, labels, **kwargs)


def test_label_values_are_checked():
    z, z_aug, labels, *_ = random_case(9, 4, 2, 3)
    labels[0, 0] = 2
    with pytest.raises(ValueError, match="found 2"):
        aunce_loss(z, z_aug, labels)
    with pytest.raises(ValueError, match=r"labels must be \(B, K\)"):
        aunce_loss(z, z_aug, labels[:, :1])


@pytest.mark.parametrize("seed", range(4))
def test_wce_and_wfl_match_reference(seed):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(10, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(-1, 2, (10, 6), generator=g)
    weights = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    assert wce_loss(logits, labels, weights).item() == pytest.approx(
        reference_wce(logits, labels, weights), rel=1e-5
    )
    for gamma, margin in ((2.0, 0.0), (1.0, 0.1), (0.0, 0.0)):
        assert wfl_loss(
            logits, labels, weights, gamma=gamma, margin=margin
        ).item() == pytest.approx(reference_wfl(logits, labels, weights, gamma, margin), rel=1e-5)


def test_wce_is_stable_for_extreme_logits():
    logits = torch.tensor([[80.0, -80.0]], requires_grad=True)
    loss = wce_loss(logits, torch.tensor([[0, 1]]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(80.0, rel=1e-4)
    assert torch.isfinite(logits.grad).all()


def test_au_weights():
    labels = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 1, -1], [0, 0, 1]])
    w = au_weights(labels)
    rates = torch.tensor([0.25, 0.25, 1.0])
    expected = (1 / rates) / (1 / rates).sum() * 3
    assert torch.allclose(w, expected.float()) and w.mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="AU4 never active in the training split of fold 2"):
        au_weights(torch.tensor([[1, 0], [0, 0]]), ["AU1", "AU4"], split="training split of fold 2")


def test_modules_hold_weights_as_buffers():
    w = torch.tensor([0.5, 1.5])
    module = WCELoss(w)
    assert "au_weights" in dict(module.named_buffers())
    assert "au_weights" in module.state_dict()
    logits, labels = torch.randn(4, 2), torch.randint(0, 2, (4, 2))
    assert module(logits, labels).item() == pytest.approx(wce_loss(logits, labels, w).item())
    aunce = AUNCELoss(w, minority_label=torch.tensor([1, 0]))
    z = torch.randn(4, 2, 3)
    kinds = torch.ones(8, 2, dtype=torch.long)
    assert aunce(z, z + 0.1, labels, positive_kind=kinds).item() == pytest.approx(
        aunce_loss(
            z, z + 0.1, labels, w, minority_label=torch.tensor([1, 0]), positive_kind=kinds
        ).item()
    )


# --- the released variant ---------------------------------------------------------------------
@pytest.mark.parametrize("seed,b,k,d", [(0, 4, 3, 5), (1, 8, 12, 16), (2, 16, 8, 4), (3, 3, 2, 6)])
@pytest.mark.parametrize("betas", [(1.2, 0.8), (1.0, 1.0), (1.5, 0.4)])
def test_released_matches_literal_transcription(seed, b, k, d, betas):
    z, z_aug, labels, _, weights, _ = random_case(seed, b, k, d, unknown=0.0)
    kinds = torch.randint(0, 3, (k,), generator=torch.Generator().manual_seed(seed))
    fast = aunce_loss(
        z,
        z_aug,
        labels,
        weights,
        beta_minority=betas[0],
        beta_majority=betas[1],
        positive_kind=kinds,
        variant="released",
    )
    slow = literal_released(z, z_aug, labels, kinds, 0.5, betas[0], betas[1], weights)
    assert fast.item() == pytest.approx(slow, rel=1e-7)
    unweighted = aunce_loss(
        z,
        z_aug,
        labels,
        positive_kind=kinds,
        variant="released",
        beta_minority=betas[0],
        beta_majority=betas[1],
    )
    assert unweighted.item() == pytest.approx(
        literal_released(z, z_aug, labels, kinds, 0.5, betas[0], betas[1]), rel=1e-7
    )


def test_released_max_positive_is_the_constant_exp_one_over_tau():
    z, z_aug, labels, *_ = random_case(11, 6, 2, 4, unknown=0.0)
    labels[:] = 1  # no negatives: -log(pos / pos) = 0 whatever the positive
    max_kind = torch.zeros(2, dtype=torch.long)
    assert aunce_loss(z, z_aug, labels, positive_kind=max_kind, variant="released").item() == 0.0
    labels[0, 0] = 0  # AU 0 gets negatives; "max" is then exp(1/tau) for every anchor
    loss = aunce_loss(
        z, z_aug, labels, positive_kind=max_kind, variant="released", beta_majority=0.8
    )
    zn = torch.nn.functional.normalize(torch.cat([z, z_aug])[:, 0], dim=-1)
    sim, y = zn @ zn.T, torch.cat([labels, labels])[:, 0]
    by_hand = 0.0
    for a in range(12):
        beta = 1.2 if y[a] == 1 else 0.8
        neg = torch.exp(beta * sim[a][y != y[a]] / 0.5).sum()
        by_hand += float(torch.log1p(neg / math.exp(1 / 0.5))) / 12
    assert loss.item() == pytest.approx(by_hand / 2)  # AU 1 contributes 0 to the mean over AUs


def test_released_draws_one_kind_per_au_per_batch():
    z, z_aug, labels, *_ = random_case(12, 8, 6, 4)
    drawn = aunce_loss(
        z, z_aug, labels, variant="released", generator=torch.Generator().manual_seed(3)
    )
    kinds = draw_positive_kinds(1, 6, (0.2, 0.2, 0.6, 0.0), torch.Generator().manual_seed(3))[0]
    given = aunce_loss(z, z_aug, labels, variant="released", positive_kind=kinds)
    assert drawn.item() == given.item()
    rows = kinds.expand(16, 6)
    assert (
        aunce_loss(z, z_aug, labels, variant="released", positive_kind=rows).item() == given.item()
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"positive_kind": torch.tensor([[0, 1]] * 7 + [[1, 1]])}, "equal rows"),
        ({"positive_kind": torch.tensor([3, 0])}, "kind outside"),
        ({"positive_probs": (0.1, 0.1, 0.6, 0.2)}, "no least-similar positive"),
    ],
)
def test_released_errors(kwargs, match):
    z, z_aug, labels, *_ = random_case(13, 4, 2, 3)
    with pytest.raises(ValueError, match=match):
        aunce_loss(z, z_aug, labels, variant="released", **kwargs)


def test_released_gradcheck():
    z, z_aug, labels, _, weights, _ = random_case(14, 4, 2, 3)
    z.requires_grad_(True)
    z_aug.requires_grad_(True)
    kinds = torch.tensor([2, 1])
    assert torch.autograd.gradcheck(
        lambda a, b: aunce_loss(a, b, labels, weights, positive_kind=kinds, variant="released"),
        (z, z_aug),
    )


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_half_precision_inputs_are_safe(variant):
    z, z_aug, labels, *_ = random_case(15, 32, 12, 64)
    kinds = torch.randint(0, 3, (64, 12), generator=torch.Generator().manual_seed(0))
    if variant == "released":
        kinds = kinds[0]
    full = aunce_loss(z.float(), z_aug.float(), labels, positive_kind=kinds, variant=variant)
    half = aunce_loss(z.bfloat16(), z_aug.bfloat16(), labels, positive_kind=kinds, variant=variant)
    assert half.dtype == torch.float32 and torch.isfinite(half)
    assert half.item() == pytest.approx(full.item(), rel=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = aunce_loss(z.float(), z_aug.float(), labels, positive_kind=kinds, variant=variant)
    assert auto.item() == pytest.approx(full.item(), rel=1e-6)
    logits = (3 * z[:, :, 0]).bfloat16()
    assert wce_loss(logits, labels).item() == pytest.approx(
        wce_loss(logits.float(), labels).item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: wce_loss(torch.zeros(4, 3), torch.zeros(4, 2)), r"logits \(B, K\) and labels"),
        (
            lambda: wce_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(2)),
            r"au_weights must have shape \(3,\)",
        ),
        (lambda: wfl_loss(torch.zeros(2, 2), torch.zeros(2, 2), gamma=-1.0), "gamma must be >= 0"),
        (
            lambda: wfl_loss(torch.zeros(2, 2), torch.zeros(2, 2), margin=1.0),
            r"margin must lie in \[0, 1\)",
        ),
        (lambda: wfl_loss(torch.zeros(2, 2), torch.full((2, 2), 3)), "found 3"),
        (lambda: au_weights(torch.zeros(3)), "must have 2 dimensions"),
        (
            lambda: aunce_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), torch.zeros(2, 3)),
            "must both be",
        ),
        (
            lambda: aunce_loss(
                torch.randn(2, 3, 4),
                torch.randn(2, 3, 4),
                torch.zeros(2, 3),
                minority_label=torch.tensor([0, 2, 1]),
            ),
            "minority_label must be",
        ),
    ],
)
def test_documented_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
