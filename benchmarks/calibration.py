"""The calibration table of docs/report.md: how often the verdicts' test rejects at alpha 0.05.

    .venv/bin/python benchmarks/calibration.py [--sims 2000]

For each design the harness runs (aunce.calibration.DESIGNS), each number of seeds (2: the
default config; 3: config/evidence.yaml; 5: config/paper.yaml) and each scenario of effects
(aunce.calibration.SCENARIOS), the share of simulated experiments with no effect that the test
calls significant, beside the share the old test (a paired t-test counting every run as an
independent pair) did, and under an effect of the training set itself, which the test does not
cover (it is conditional on the protocol's training sets); then the power under a stated effect.
Not timing: tests/test_calibration.py asserts the bounds; this prints the whole table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aunce.calibration import CAVEATS, DESIGNS, SCENARIOS, rejection_rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5])
    args = parser.parse_args()
    n = args.sims
    mc = (0.05 * 0.95 / n) ** 0.5
    print(f"False-positive rate at alpha 0.05, {n} simulations each (Monte-Carlo SE {mc:.4f}; "
          f"bound 0.05 + 3 SE = {0.05 + 3 * mc:.3f}); in brackets the old test's\n")  # fmt: skip
    scenarios = [*SCENARIOS, *CAVEATS]
    print("| design | seeds | " + " | ".join(SCENARIOS) + " | " + " | ".join(
        f"{c} (not covered)" for c in CAVEATS) + " |")  # fmt: skip
    print("| --- | --- | " + " | ".join("---" for _ in scenarios) + " |")
    for design in DESIGNS:
        for seeds in args.seeds:
            cells = []
            for scenario in scenarios:
                new = rejection_rate(design, seeds, scenario, n_sims=n)["rate"]
                old = rejection_rate(design, seeds, scenario, n_sims=n, naive=True)["rate"]
                cells.append(f"{new:.3f} ({old:.2f})")
            print(f"| {design} | {seeds} | " + " | ".join(cells) + " |", flush=True)
    print("\nPower at alpha 0.05: model A better by delta on the logit scale, run noise only "
          "(mean F1 difference and the run-to-run spread of the difference, points)\n")
    print("| design | seeds | delta | F1 difference | run spread | power |")
    print("| --- | --- | --- | --- | --- | --- |")
    for design in DESIGNS:
        for seeds in args.seeds:
            for delta in (0.25, 0.5):
                out = rejection_rate(design, seeds, "run noise", delta=delta, n_sims=n)
                print(f"| {design} | {seeds} | {delta} | {out['f1_diff']:.1f} | "
                      f"{out['run_sd']:.1f} | {out['rate']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
