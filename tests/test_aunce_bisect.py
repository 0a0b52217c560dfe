"""The bisection's intermediate loss (benchmarks/aunce_bisect.py) joins the two readings exactly:
its ends are the harness's released and paper readings of AUNCE, so each step of the bisection
changes one term and nothing else."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import aunce_bisect as bisect  # noqa: E402

from aunce.losses import PAPER_POSITIVE_PROBS, aunce_loss  # noqa: E402
from aunce.methods import check_method  # noqa: E402


def inputs(seed, b=12, k=5, d=8):
    g = torch.Generator().manual_seed(seed)
    z, z_aug = torch.randn(b, k, d, generator=g), torch.randn(b, k, d, generator=g)
    labels = (torch.rand(b, k, generator=g) < 0.3).long()
    labels[0, 0] = -1  # an unknown label takes no part on either side
    labels[:, 1] = 0
    labels[3, 1] = 1  # AU 2: a single positive image (its anchors fall back to the twin view)
    minority = torch.tensor([1, 1, 0, 1, 1])
    return z, z_aug, labels, torch.rand(k, generator=g) + 0.5, minority


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_released_end_is_the_released_reading(seed):
    z, z_aug, labels, w, minority = inputs(seed)
    ours = bisect.bisect_loss(z, z_aug, labels, au_weights=w, minority_label=minority,
                              generator=torch.Generator().manual_seed(seed))  # fmt: skip
    theirs = aunce_loss(z, z_aug, labels, w, beta_majority=0.8, minority_label=minority,
                        variant="released", generator=torch.Generator().manual_seed(seed))  # fmt: skip
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_paper_end_is_the_paper_reading(seed):
    z, z_aug, labels, w, minority = inputs(seed)
    probs = (0.1, 0.2, 0.5, 0.2)  # every kind, the least similar included
    ours = bisect.bisect_loss(
        z, z_aug, labels, au_weights=w, minority_label=minority,
        generator=torch.Generator().manual_seed(seed), positives="others", mean="prototype",
        beta_by="minority", kinds="per_anchor", beta_majority=0.4, positive_probs=probs,
    )  # fmt: skip
    theirs = aunce_loss(z, z_aug, labels, w, minority_label=minority, positive_probs=probs,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    torch.testing.assert_close(ours, theirs)


def test_each_step_changes_the_loss():
    z, z_aug, labels, w, minority = inputs(3, b=16)
    steps = [{}, {"positives": "others", "mean": "exp"}, {"positives": "others", "mean": "prototype"},
             {"positives": "others", "mean": "prototype", "beta_by": "minority"}]  # fmt: skip
    values = [
        bisect.bisect_loss(z, z_aug, labels, minority_label=minority,
                           generator=torch.Generator().manual_seed(0), **step).item()
        for step in steps
    ]  # fmt: skip
    assert len({round(v, 6) for v in values}) == len(values)


def test_the_variants_are_valid_methods():
    """Every variant is a method the harness accepts (the intermediate ones as a user's loss)."""
    for name, method in bisect.VARIANTS.items():
        check_method(method, name)
    assert bisect.VARIANTS["per_anchor"]["options"]["positive_probs"] == list(PAPER_POSITIVE_PROBS)
