"""Readers of the real datasets, one module per distributed layout (shared spec datasets.md).

Each reader takes the dataset's root, a report dict it fills (counts, and every drop the spec
allows) and its own options, and returns the manifest. Strict: anything unexpected is an
:class:`aunce.AunceError` naming the file and line.

| name        | module        | options                                  | split column |
| ----------- | ------------- | ---------------------------------------- | ------------ |
| bp4d        | bp4d.py       |                                          | test_fold    |
| bp4d_plus   | bp4d.py       |                                          | split (test) |
| disfa       | disfa.py      |                                          | test_fold    |
| gft         | gft.py        | split_file                               | split        |
| affwild2    | affwild2.py   |                                          | split        |
| list        | list_layout.py| list_name, list_sha256, aus, folds       | test_fold    |
"""

from __future__ import annotations

from pathlib import Path

from aunce import AunceError

# imported by name (no importlib), so that the code version of a step covers every reader
# (aunce.codehash); each imports numpy and the package's own modules only
from aunce.data.readers import affwild2, bp4d, disfa, gft, list_layout

# name: (reader, options)
_READERS = {
    "bp4d": (bp4d.read_bp4d, ()),
    "bp4d_plus": (bp4d.read_bp4d_plus, ()),
    "disfa": (disfa.read_disfa, ()),
    "gft": (gft.read_gft, ("split_file",)),
    "affwild2": (affwild2.read_affwild2, ()),
    "list": (list_layout.read_list, ("list_name", "list_sha256", "aus", "folds")),
}

#: Layouts whose images are usually aligned faces already: alignment then only resizes, and
#: landmark files are optional. The config's ``aligned`` overrides this.
ALIGNED_BY_DEFAULT = frozenset({"list", "affwild2"})
#: Aligned-by-default layouts aligned from their landmark files after all when the landmark folder
#: exists (Aff-Wild2: the paper aligns every dataset from 49 landmarks, Sec. 4.1.2).
ALIGN_WHEN_LANDMARKS = frozenset({"affwild2"})

REAL_READERS = tuple(_READERS)


def reader_options(name: str) -> tuple[str, ...]:
    return _READERS[name][1]


def read_real(name: str, root: Path, report: dict, **options):
    read, allowed = _READERS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AunceError(
            f"reader '{name}' takes no option {', '.join(unknown)} "
            f"(its options: {', '.join(allowed) or 'none'})"
        )
    if not root.is_dir():
        raise AunceError(f"{root}: dataset folder not found (datasets.<name>.root)")
    return read(root, report, **options)
