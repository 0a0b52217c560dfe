"""The harness's released reading of AUNCE against the released code's own figures.

tests/golden/released_diff.json holds what the authors' code (github.com/Ziqiao-Shang/AUNCE, HEAD
and its first public version) computed on seeded inputs, written by ``benchmarks/released_diff.py
--released PATH --golden-out tests/golden/released_diff.json`` (BENCHMARKS.md, "Differential check
against the released code"). These tests recompute the harness's side from the same seeds, without
the released code: the loss agrees below 1e-5, the gradients and one AdamW step agree in their
seeded projections. A deliberate change of the loss, the tiny MEGraph encoder or the seeded inputs
moves them: rerun the script against a checkout to refresh the file.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import released_diff as diff  # noqa: E402

GOLDEN = json.loads((REPO / "tests" / "golden" / "released_diff.json").read_text())
CASES = [(preset, seed) for preset, entry in GOLDEN.items() for seed in entry["loss_level"]]


@pytest.fixture(autouse=True)
def one_thread():
    """The figures were pinned with one torch thread; one thread also keeps the steps quick."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_both_versions_of_the_release_are_pinned():
    assert set(GOLDEN) == {"released", "released_v1"}
    for preset, entry in GOLDEN.items():
        assert entry["released"]["preset"] == preset
        assert len(entry["released"]["revision"]) == 40  # a git commit of the checkout


@pytest.mark.parametrize("preset,seed", CASES)
def test_loss_and_gradient_equal_the_released_code(preset, seed):
    pinned = GOLDEN[preset]["loss_level"][seed]
    ours = diff.harness_loss_level(int(seed), preset)
    assert abs(ours["loss"] - pinned["released_loss"]) < 1e-5
    np.testing.assert_allclose(
        diff.sketch(ours["grad"]), pinned["grad_sketch"], rtol=0,
        atol=1e-4 * pinned["released_grad_norm"],
    )  # fmt: skip


@pytest.mark.parametrize("preset,seed", CASES)
def test_one_step_of_the_network_equals_the_released_code(preset, seed):
    """Loss, every weight's gradient and one AdamW step of the tiny MEGraph encoder, each view in
    its own pass, against the release's Graph_au_net_NCE with the same weights (AdamW's first step
    is about lr x sign(gradient), so a few weights with a gradient of 0 up to rounding may step
    differently: the step's projections agree to 1 % of its norm)."""
    pinned = GOLDEN[preset]["one_step"][seed]
    ours = diff.harness_step(int(seed), preset, pinned["lr"])
    assert abs(ours["loss"] - pinned["released_loss"]) < 1e-5
    np.testing.assert_allclose(
        diff.sketch(ours["grad"]), pinned["grad_sketch"], rtol=0,
        atol=1e-4 * pinned["released_grad_norm"],
    )  # fmt: skip
    np.testing.assert_allclose(
        diff.sketch(ours["step"]), pinned["step_sketch"], rtol=0, atol=1e-2 * pinned["step_norm"]
    )


def test_the_pins_tell_the_readings_apart():
    """The check has teeth: the paper's reading on the same inputs is far from the release's."""
    pinned = GOLDEN["released"]["loss_level"][CASES[0][1]]
    u, u_aug, labels = diff.loss_inputs(int(CASES[0][1]))
    from aunce.losses import aunce_loss

    paper = aunce_loss(u, u_aug, labels, diff.seeded_weights(int(CASES[0][1]))).item()
    assert abs(paper - pinned["released_loss"]) > 0.1
