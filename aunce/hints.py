"""A "did you mean" for a misspelt key or name (difflib's closest match)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: names other tools use for this project's keys (a close match to one suggests the key)
SYNONYMS = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "batchsize": "batch_size",
    "seed": "seeds",
    "temperature": "tau",
}


def did_you_mean(name: object, known: Iterable[object]) -> str:
    """``"did you mean 'x'? "`` for the known name closest to ``name``, or '' when none is close."""
    known = [str(k) for k in known]
    candidates = {k: k for k in known}
    candidates.update({alias: key for alias, key in SYNONYMS.items() if key in candidates})
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    if not close or candidates[close[0]] == str(name):
        return ""
    return f"did you mean '{candidates[close[0]]}'? "
