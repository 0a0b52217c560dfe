import pytest
import torch

from aunce import AunceError
from aunce.losses import AUNCE_PRESETS, aunce_loss
from aunce.methods import build_objective, expand_preset, loss_settings


@pytest.mark.parametrize(
    "name,weights,probs,betas",
    [
        ("A", False, (1, 0, 0, 0), (1, 1)),
        ("B", True, (1, 0, 0, 0), (1, 1)),
        ("C", True, (0.15, 0.15, 0.7, 0), (1, 1)),
        ("D", True, (1, 0, 0, 0), (1.2, 0.4)),
        ("E", True, (0.15, 0.15, 0.7, 0), (1.2, 0.4)),
    ],
)
def test_table10_presets_follow_the_spec(name, weights, probs, betas):
    method = expand_preset({"loss": "aunce", "preset": name})
    assert method["au_weights"] is weights
    assert tuple(method["positive_probs"]) == probs
    assert (method["beta_minority"], method["beta_majority"]) == betas
    assert method.get("variant", "paper") == "paper"


def test_released_preset_and_overrides():
    settings = loss_settings({"loss": "aunce", "preset": "released", "tau": 0.2})
    assert settings == {
        "tau": 0.2,
        "beta_minority": 1.2,
        "beta_majority": 0.8,
        "positive_probs": (0.2, 0.2, 0.6, 0.0),
        "variant": "released",
    }
    assert expand_preset({"loss": "aunce", "preset": "released"})["au_weights"] is False
    assert set(AUNCE_PRESETS) == {"A", "B", "C", "D", "E", "released", "released_v1"}


def test_default_settings_are_the_paper_values():
    assert loss_settings({"loss": "aunce"}) == {
        "tau": 0.5,
        "beta_minority": 1.2,
        "beta_majority": 0.4,
        "positive_probs": (0.15, 0.15, 0.7, 0.0),
        "variant": "paper",
    }
    assert loss_settings({"loss": "wfl"}) == {"gamma": 2.0, "margin": 0.0}
    assert loss_settings({"loss": "wce"}) == {}


def test_bad_method_settings():
    with pytest.raises(AunceError, match="'gamma' does not apply to loss 'aunce'"):
        loss_settings({"loss": "aunce", "gamma": 2})
    with pytest.raises(AunceError, match="unknown preset 'A' for loss 'wce'"):
        loss_settings({"loss": "wce", "preset": "A"})


def test_objective_applies_weights_only_when_switched_on():
    w, minority = torch.tensor([0.5, 1.5]), torch.tensor([1, 1])
    z = torch.randn(4, 2, 3)
    labels = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    gen = torch.Generator().manual_seed(0)
    off = build_objective({"loss": "aunce", "preset": "A"}, w, minority)
    assert off.kwargs["au_weights"] is None and off.two_views and not off.uses_head
    kinds = torch.zeros(8, 2, dtype=torch.long)
    expected = aunce_loss(
        z,
        z + 0.1,
        labels,
        None,
        positive_probs=(1, 0, 0, 0),
        beta_minority=1.0,
        beta_majority=1.0,
        minority_label=minority,
        positive_kind=kinds,
    )
    got = off.loss(z, z + 0.1, labels, **dict(off.kwargs, positive_kind=kinds))
    assert got.item() == pytest.approx(expected.item())
    on = build_objective({"loss": "wce"}, w, minority)
    assert on.uses_head and torch.equal(on.kwargs["au_weights"], w)
    assert torch.isfinite(on(z, None, torch.randn(4, 2), labels, gen))


def test_builtin_methods_are_not_custom_and_presets_are_aunce_only():
    from aunce.methods import is_custom

    for loss in ("aunce", "wce", "wfl"):
        assert not is_custom({"loss": loss})
        assert build_objective({"loss": loss}, None, None).path is None
    custom = {"loss": "tests.example_method:supcon", "kind": "contrastive", "preset": "A"}
    assert is_custom(custom)
    with pytest.raises(AunceError, match="preset do not apply to a loss given by import path"):
        loss_settings(custom)
