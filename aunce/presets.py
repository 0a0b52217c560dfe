"""AUNCE's named settings, torch-free so that the workflow can plan variants without importing torch.

``aunce.losses`` re-exports every name here; ``AUNCE_DEFAULTS`` are ``aunce_loss``'s keyword defaults
(a test keeps the two in step).
"""

from __future__ import annotations

#: Positive kinds of the positive-sampling strategy (Section 3.3.2), in the order of ``positive_probs``.
POSITIVE_KINDS = ("most_similar", "twin_view", "prototype", "least_similar")
PAPER_POSITIVE_PROBS = (0.15, 0.15, 0.7, 0.0)
#: The released code: "max" with 0.2, "mean" with 0.6, the twin view with 0.2 (no least-similar).
RELEASED_POSITIVE_PROBS = (0.2, 0.2, 0.6, 0.0)
VARIANTS = ("paper", "released")
DEFAULT_POSITIVE_PROBS = {"paper": PAPER_POSITIVE_PROBS, "released": RELEASED_POSITIVE_PROBS}

#: Named AUNCE settings: the ablation models of Table 10 (spec losses.md) and the released code's
#: configuration. ``au_weights`` switches lambda; "negative re-weighting off" is beta = 1 for all.
AUNCE_PRESETS: dict[str, dict] = {
    "A": {
        "au_weights": False,
        "positive_probs": (1.0, 0.0, 0.0, 0.0),
        "beta_minority": 1.0,
        "beta_majority": 1.0,
    },
    "B": {
        "au_weights": True,
        "positive_probs": (1.0, 0.0, 0.0, 0.0),
        "beta_minority": 1.0,
        "beta_majority": 1.0,
    },
    "C": {
        "au_weights": True,
        "positive_probs": PAPER_POSITIVE_PROBS,
        "beta_minority": 1.0,
        "beta_majority": 1.0,
    },
    "D": {
        "au_weights": True,
        "positive_probs": (1.0, 0.0, 0.0, 0.0),
        "beta_minority": 1.2,
        "beta_majority": 0.4,
    },
    "E": {
        "au_weights": True,
        "positive_probs": PAPER_POSITIVE_PROBS,
        "beta_minority": 1.2,
        "beta_majority": 0.4,
    },
    "released": {
        "variant": "released",
        "au_weights": False,
        "positive_probs": RELEASED_POSITIVE_PROBS,
        "beta_minority": 1.2,
        "beta_majority": 0.8,
    },
    # the first public version (commit 8400de9, Feb. 2024, until Jan. 2025): the same loss with
    # beta 0.4 for anchors labelled 0 and the AU weights applied
    "released_v1": {
        "variant": "released",
        "au_weights": True,
        "positive_probs": RELEASED_POSITIVE_PROBS,
        "beta_minority": 1.2,
        "beta_majority": 0.4,
    },
}


#: aunce_loss's defaults for the settings a method may set (the paper's values), and the AU weights.
AUNCE_DEFAULTS: dict = {
    "au_weights": True,
    "tau": 0.5,
    "beta_minority": 1.2,
    "beta_majority": 0.4,
    "positive_probs": None,  # None: DEFAULT_POSITIVE_PROBS[variant]
    "variant": "paper",
}


def effective_aunce(method: dict) -> dict:
    """Every AUNCE setting of a method: defaults, then its preset, then its explicit keys."""
    out = dict(AUNCE_DEFAULTS)
    out.update(AUNCE_PRESETS.get(method.get("preset"), {}))
    out.update({k: v for k, v in method.items() if k in AUNCE_DEFAULTS})
    if out["positive_probs"] is None:
        out["positive_probs"] = DEFAULT_POSITIVE_PROBS[out["variant"]]
    out["positive_probs"] = tuple(float(p) for p in out["positive_probs"])
    return out
