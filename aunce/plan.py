"""The workflow's plan: from a validated config to the runs every table needs, and each table's spec.

The Snakefile stays thin: ``rules/common.smk`` calls :func:`make_plan` once and turns its answer into
rules. Everything here is plain Python (no torch, no Snakemake), so it is tested directly.

What a plan holds
- ``datasets`` and ``methods``: the config's, plus the ones tables derive: a noise table's datasets
  with flipped labels (``bp4d_noise20``), and the variants of ablation, probability and beta tables
  (``aunce-A``, ``aunce-p1_0_0_0``, ``aunce-bmin0.8``), and shortened budgets (``wce-e3``). A
  variant whose settings equal an existing method's reuses that method's name, so a job needed by
  several tables runs once (the full AUNCE model is a table2 row, a table8 cell, table10's model E
  and table11's (0.15, 0.15, 0.7, 0) row).
- ``runs``: per (dataset, encoder, method) the (fold, seed) pairs to pretrain, embed and evaluate.
- ``cross``: per (source, target, encoder, method) the (source fold, target fold, seed) triples
  of cross-dataset evaluations (table4's BP4D -> BP4D+, table7's BP4D <-> GFT).
- ``tables``: per table or figure id its kind, its output files and the spec its builder reads,
  with every input file by role (the rule declares the same files).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from aunce import AunceError
from aunce.config import dataset_folds, dataset_kind
from aunce.presets import AUNCE_PRESETS, effective_aunce

FIGURE_KINDS = ("beta", "tsne")
PAPER_PROBABILITIES = [
    [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.1, 0.1, 0.8, 0],
    [0.15, 0.15, 0.7, 0], [0.2, 0.2, 0.6, 0], [0.25, 0.25, 0.5, 0], [0.3, 0.3, 0.4, 0],
    [0.4, 0.4, 0.2, 0],
]  # fmt: skip
PAPER_MINORITY = [0.8, 1.0, 1.2, 1.4, 1.6, 1.8]  # Fig. 6, beta_majority 0.4
PAPER_MAJORITY = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]  # Fig. 6, beta_minority 1.2
ENCODER_LABELS = {
    "resnet50": "ResNet50",
    "roi": "ROI",
    "jaanet": "JA-Net",
    "megraph": "MEGraph (Onestage)",
}
PUBLISHED = "baselines/published.csv"


def noisy_name(dataset: str, rate: float) -> str:
    """The derived dataset of a noise table: the same synthetic data with ``rate`` of labels flipped."""
    return dataset if rate == 0 else f"{dataset}_noise{round(100 * rate):g}"


def _num(x: float) -> str:
    return f"{float(x):g}"


def eval_file(ds: str, enc: str, method: str, fold: str, seed: int, name="metrics.json") -> str:
    return f"results/eval/{ds}/{enc}/{method}/fold-{fold}/seed-{seed}/{name}"


def stage_file(stage: str, ds: str, enc: str, method: str, fold: str, seed: int, name: str) -> str:
    return f"results/{stage}/{ds}/{enc}/{method}/fold-{fold}/seed-{seed}/{name}"


def cross_file(src: str, tgt: str, enc: str, method: str, sf: str, tf: str, seed: int) -> str:
    return f"results/cross/{src}-to-{tgt}/{enc}/{method}/fold-{sf}-on-{tf}/seed-{seed}/metrics.json"


@dataclass
class Plan:
    config: dict
    seeds: list[int]
    datasets: dict
    methods: dict
    epochs: dict = field(default_factory=dict)  # method -> pretraining epochs (budget override)
    runs: dict = field(default_factory=dict)  # (ds, enc, method) -> {(fold, seed)}
    cross: dict = field(default_factory=dict)  # (src, tgt, enc, method) -> {(sf, tf, seed)}
    tables: dict = field(default_factory=dict)  # id -> spec (kind, outputs, inputs, ...)
    published: str = PUBLISHED  # the published numbers (baselines/published.csv)

    # --- methods -------------------------------------------------------------------------------
    def _identity(self, method: dict, epochs: int | None) -> str:
        core = {k: v for k, v in method.items() if k != "label"}
        if core.get("loss") == "aunce":
            extra = {k: v for k, v in core.items() if k not in ("loss", "preset")}
            core = {"loss": "aunce", **extra, **effective_aunce(core)}
        return json.dumps([core, epochs or self.config["pretrain"]["epochs"]], sort_keys=True)

    def method(self, base: str, epochs: int | None, overrides: dict | None = None, tag="") -> str:
        """The method ``base`` with ``overrides`` and a pretraining budget, by name (new or reused)."""
        method = dict(self.methods[base])
        if overrides:  # a None override removes the base's key (so that a preset applies)
            method = {k: v for k, v in method.items() if k not in overrides or k == "loss"}
            method.update({k: v for k, v in overrides.items() if v is not None})
            if tag:
                method["label"] = f"{self.label(base)} ({tag})"
        if epochs == self.config["pretrain"]["epochs"]:
            epochs = None
        epochs = epochs or self.epochs.get(base)
        wanted = self._identity(method, epochs)
        for name, existing in self.methods.items():
            if self._identity(existing, self.epochs.get(name)) == wanted:
                return name
        name = base + (f"-{tag}" if tag else "") + (f"-e{epochs}" if epochs else "")
        if name in self.methods:
            raise AunceError(f"method name '{name}' is taken by a different method in the config")
        self.methods[name] = method
        if epochs:
            self.epochs[name] = epochs
        return name

    def label(self, method: str) -> str:
        return self.methods[method].get("label", method)

    # --- runs ----------------------------------------------------------------------------------
    def need(self, ds: str, enc: str, method: str, folds, seeds) -> list[str]:
        """Record the runs of a cell; returns their metrics files."""
        runs = self.runs.setdefault((ds, enc, method), set())
        files = []
        for f in folds:
            for s in seeds:
                runs.add((f, s))
                files.append(eval_file(ds, enc, method, f, s))
        return files

    def need_cross(self, src: str, tgt: str, enc: str, method: str, pairs, seeds) -> list[str]:
        """Models of ``src`` (fold ``sf``) evaluated on ``tgt``'s test split ``tf``."""
        cells = self.cross.setdefault((src, tgt, enc, method), set())
        pretrain = self.runs.setdefault((src, enc, method), set())
        files = []
        for sf, tf in pairs:
            for s in seeds:
                cells.add((sf, tf, s))
                pretrain.add((sf, s))
                files.append(cross_file(src, tgt, enc, method, sf, tf, s))
        return files


def _with_published_note(spec: dict) -> dict:
    if spec.get("published") and PUBLISHED_NOTE not in spec["notes"]:
        spec["notes"].insert(len(spec["notes"]) - 1, PUBLISHED_NOTE)
    if spec.get("kind") == "ablation" and spec.get("published"):
        spec["notes"].insert(
            len(spec["notes"]) - 1,
            "The paper's Table 10 prints model E's per-AU F1 but not its average (66.1 in Tables 8 "
            "and 11), nor the F1-micro and accuracy of E.",
        )
    return spec


def make_plan(config: dict, provenance: str = "", published: str = PUBLISHED) -> Plan:
    """Expand a validated config (defaults filled) into its plan. Errors name the table and key.

    ``published`` is the path of baselines/published.csv as the jobs will see it."""
    plan = Plan(
        config=config,
        seeds=list(config["seeds"]),
        datasets=copy.deepcopy(config["datasets"]),
        methods=copy.deepcopy(config["methods"]),
        published=str(published),
    )
    for table, spec in config["tables"].items():
        try:
            plan.tables[table] = _with_published_note(
                _BUILDERS[spec["kind"]](plan, table, spec, provenance)
            )
        except KeyError as err:
            raise AunceError(f"tables.{table}: unknown name {err} in its settings") from None
    return plan


# --- per-kind planners --------------------------------------------------------------------------
def _budget(plan: Plan, spec: dict, ds: str) -> tuple[list[str], list[int], int | None]:
    all_folds = dataset_folds(plan.datasets[ds])
    folds = [str(f) for f in spec.get("folds") or all_folds]
    unknown = [f for f in folds if f not in all_folds]
    if unknown:
        raise AunceError(
            f"folds {unknown} are not folds of dataset '{ds}' (its folds: {all_folds})"
        )
    seeds = list(spec.get("seeds") or plan.seeds)
    return folds, seeds, spec.get("epochs")


def _averaging(folds, seeds, epochs, config) -> str:
    ep = epochs or config["pretrain"]["epochs"]
    return (
        f"Each cell: mean over {len(folds)} fold(s) ({', '.join(folds)}) of the per-fold F1, then "
        f"mean ± sample std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
        f"{ep} pretraining epochs; linear evaluation of the frozen encoder."
    )


def dataset_label(plan: Plan, name: str) -> str:
    ds = plan.datasets[name]
    if ds["source"] == "synthetic":
        return f"{name} (synthetic stand-in, profile {ds['synthetic']['profile']})"
    return f"{name} ({ds['source']} at {ds['root']})"


PUBLISHED_NOTE = (
    "Rows marked (published) are numbers printed in the paper for the real datasets, with their "
    "source (baselines/published.csv); rows marked (this run) were measured by this run on the "
    "datasets named in the title."
)


def _published(plan: Plan, spec: dict, table: str, dataset: str | None) -> dict | None:
    """Where the table's published rows come from, or None (``published: false``)."""
    if not spec.get("published", True):
        return None
    return {"file": plan.published, "table": spec.get("paper_table") or table, "dataset": dataset}


def _table_outputs(table: str) -> dict:
    return {
        "md": f"results/tables/{table}.md",
        "tex": f"results/tables/{table}.tex",
        "csv": f"results/tables/{table}.csv",
        "significance": f"results/tables/{table}.significance.csv",
    }


def _figure_outputs(fig: str) -> dict:
    return {
        "png": f"results/figures/{fig}.png",
        "csv": f"results/figures/{fig}.csv",
        "md": f"results/figures/{fig}.md",
    }


def _encoder_title(plan: Plan, enc: str) -> str:
    return f"encoder {enc} ({plan.config['encoders'][enc]['size']})"


def _occurrence(plan, table, spec, provenance):
    from aunce.data.catalog import OCCURRENCE_RATES

    names = spec["datasets"]
    kinds = {n: dataset_kind(plan.datasets[n]) for n in names}
    return {
        "kind": "occurrence",
        "title": f"{table}: AU occurrence rates (%) of the training sets",
        "outputs": _table_outputs(table),
        "inputs": {"caches": {n: f"results/cache/{n}" for n in names}},
        "paper_rates": {
            n: OCCURRENCE_RATES[kinds[n]] for n in names if kinds[n] in OCCURRENCE_RATES
        },
        "notes": [f"{n}: {dataset_label(plan, n)}" for n in names] + [provenance],
    }


def _au_f1(plan, table, spec, provenance):
    ds, enc = spec["dataset"], spec["encoder"]
    test = spec.get("test_dataset")
    if test:
        # trained on all of the source, tested on all of the target (BP4D -> BP4D+, Table 4)
        seeds, epochs = list(spec.get("seeds") or plan.seeds), spec.get("epochs")
        methods = [plan.method(m, epochs) for m in spec["methods"]]
        metrics = [
            f for m in methods for f in plan.need_cross(ds, test, enc, m, [("all", "all")], seeds)
        ]
        ep = epochs or plan.config["pretrain"]["epochs"]
        note = (
            f"Each cell: one model trained on all of {ds} ({ep} pretraining epochs; linear head on "
            f"{ds}), tested on all of {test}; mean ± sample std over {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))})."
        )
        where = f"{dataset_label(plan, ds)} -> {dataset_label(plan, test)}"
        published_ds = dataset_kind(plan.datasets[test])
    else:
        folds, seeds, epochs = _budget(plan, spec, ds)
        methods = [plan.method(m, epochs) for m in spec["methods"]]
        metrics = [f for m in methods for f in plan.need(ds, enc, m, folds, seeds)]
        note, where = _averaging(folds, seeds, epochs, plan.config), dataset_label(plan, ds)
        published_ds = dataset_kind(plan.datasets[ds])
    return {
        "kind": "au_f1",
        "title": spec.get("title")
        or f"{table}: F1 (%) per AU on {where}, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "methods": [[m, plan.label(m)] for m in methods],
        "inputs": {"metrics": metrics, "published": plan.published},
        "published": _published(plan, spec, table, published_ds),
        "notes": [note, provenance],
    }


def _cross(plan, table, spec, provenance):
    from aunce.data.catalog import CROSS_DATASET_AUS

    enc, epochs = spec["encoder"], spec.get("epochs")
    seeds = list(spec.get("seeds") or plan.seeds)
    methods = [plan.method(m, epochs) for m in spec["methods"]]
    directions = []
    for src, tgt in spec["pairs"]:
        src_folds = [f for f in dataset_folds(plan.datasets[src]) if f != "all"]
        tgt_folds = [f for f in dataset_folds(plan.datasets[tgt]) if f != "all"]
        if spec.get("folds"):
            src_folds = [f for f in src_folds if f in map(str, spec["folds"])] or src_folds
        if len(src_folds) > 1 and len(tgt_folds) > 1:
            raise AunceError(
                f"tables.{table}: cross-dataset {src} -> {tgt} needs one side with a fixed split"
            )
        pairs = [(sf, tf) for sf in src_folds for tf in tgt_folds]
        name = f"{dataset_kind(plan.datasets[src])}->{dataset_kind(plan.datasets[tgt])}"
        directions.append(
            {
                "name": name,
                "label": f"{src} -> {tgt}",
                "metrics": {m: plan.need_cross(src, tgt, enc, m, pairs, seeds) for m in methods},
            }
        )
    return {
        "kind": "cross",
        "title": spec.get("title")
        or f"{table}: cross-dataset F1 (%) on the shared AUs, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "methods": [[m, plan.label(m)] for m in methods],
        "aus": [f"AU{a}" for a in spec.get("aus") or CROSS_DATASET_AUS],
        "directions": directions,
        "inputs": {
            "metrics": [f for d in directions for fs in d["metrics"].values() for f in fs],
            "published": plan.published,
        },  # fmt: skip
        "published": _published(plan, spec, table, None),
        "notes": [
            "BP4D -> GFT: each source fold's model evaluated on the target's test split, averaged; "
            "GFT -> BP4D: the source model evaluated on each target test fold, averaged. The linear "
            "head is trained on the source training split, on the shared AUs only.",
            f"mean ± sample std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}).",
            provenance,
        ],
    }


def _grid(plan, table, spec, provenance):
    cells = []
    for ds in spec["datasets"]:
        folds, seeds, epochs = _budget(plan, spec, ds)
        for enc in spec["encoders"]:
            for m in spec["methods"]:
                name = plan.method(m, epochs)
                cells.append(
                    {
                        "dataset": ds,
                        "encoder": enc,
                        "encoder_label": ENCODER_LABELS.get(enc, enc),
                        "method": name,
                        "loss_label": plan.label(name),
                        "published_dataset": dataset_kind(plan.datasets[ds]),
                        "metrics": plan.need(ds, enc, name, folds, seeds),
                    }
                )
    baseline = spec.get("baseline") or ("wce" if "wce" in spec["methods"] else spec["methods"][0])
    folds, seeds, epochs = _budget(plan, spec, spec["datasets"][0])
    return {
        "kind": "grid",
        "title": spec.get("title")
        or f"{table}: F1-macro (%) of encoders x losses, gain over {plan.label(baseline)}",
        "outputs": _table_outputs(table),
        "datasets": spec["datasets"],
        "baseline": plan.method(baseline, epochs),
        "cells": cells,
        "inputs": {
            "metrics": [f for c in cells for f in c["metrics"]],
            "published": plan.published,
        },
        "published": _published(plan, spec, table, None),
        "notes": [
            _averaging(folds, seeds, epochs, plan.config),
            "Encoders: " + ", ".join(_encoder_title(plan, e) for e in spec["encoders"]) + ".",
            provenance,
        ],
    }


def _cost(plan, table, spec, provenance):
    enc, rows = spec["encoder"], []
    for ds in spec["datasets"]:
        folds, seeds, epochs = _budget(plan, spec, ds)
        for m in spec["methods"]:
            name = plan.method(m, epochs)
            plan.need(ds, enc, name, folds, seeds)
            rows.append(
                {
                    "dataset": ds,
                    "method": name,
                    "label": plan.label(name),
                    "loss": plan.methods[name]["loss"],
                    "timing": [
                        stage_file("pretrain", ds, enc, name, f, s, "timing.json")
                        for f in folds
                        for s in seeds
                    ],
                }
            )
    return {
        "kind": "cost",
        "title": spec.get("title")
        or f"{table}: training cost per loss, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "rows": rows,
        "inputs": {"timing": [f for r in rows for f in r["timing"]]},
        "notes": [
            "Measured during pretraining, same encoder and batch size; mean ± std over the runs "
            "(folds x seeds). AUNCE encodes two views per frame: frames/s counts frames, not views.",
            provenance,
        ],
    }


def _variants(plan, table, spec, rows, provenance, kind):
    """Rows of variants of a base AUNCE method: [(label, overrides, tag)]."""
    ds, enc, base = spec["dataset"], spec["encoder"], spec["base"]
    if plan.methods[base]["loss"] != "aunce":
        raise AunceError(f"tables.{table}.base: '{base}' is not an AUNCE method")
    folds, seeds, epochs = _budget(plan, spec, ds)
    methods, metrics = [], []
    for label, overrides, tag in rows:
        name = plan.method(base, epochs, overrides, tag)
        methods.append([name, label])
        metrics += plan.need(ds, enc, name, folds, seeds)
    return {
        "kind": kind,
        "title": spec.get("title"),
        "outputs": _table_outputs(table),
        "methods": methods,
        "inputs": {"metrics": metrics, "published": plan.published},
        "published": _published(plan, spec, table, dataset_kind(plan.datasets[ds])),
        "notes": [_averaging(folds, seeds, epochs, plan.config), provenance],
    }


def _ablation(plan, table, spec, provenance):
    presets = spec.get("presets") or ["A", "B", "C", "D", "E"]
    for p in presets:
        if p not in AUNCE_PRESETS:
            raise AunceError(f"tables.{table}.presets: unknown preset '{p}'")
    rows = [(p, preset_overrides(p), p) for p in presets]
    out = _variants(plan, table, spec, rows, provenance, "ablation")
    out["title"] = out["title"] or (
        f"{table}: ablation of AUNCE (models {', '.join(presets)}) on "
        f"{dataset_label(plan, spec['dataset'])}, {_encoder_title(plan, spec['encoder'])}"
    )
    return out


def preset_overrides(preset: str) -> dict:
    """Overrides that put a preset in force: the preset, and the keys it sets removed from the base."""
    return {**dict.fromkeys(AUNCE_PRESETS[preset]), "preset": preset}


def _probs(plan, table, spec, provenance):
    probs = spec.get("probabilities") or PAPER_PROBABILITIES
    rows = []
    for p in probs:
        if len(p) != 4 or abs(sum(p) - 1) > 1e-6:
            raise AunceError(
                f"tables.{table}.probabilities: {p} is not 4 probabilities summing to 1"
            )
        label = "(" + ",".join(_num(x) for x in p) + ")"
        rows.append(
            (label, {"positive_probs": [float(x) for x in p]}, "p" + "_".join(map(_num, p)))
        )
    out = _variants(plan, table, spec, rows, provenance, "probs")
    out["title"] = out["title"] or (
        f"{table}: positive-sampling probabilities (max-similar, twin view, prototype, "
        f"least-similar), F1-macro (%) on {dataset_label(plan, spec['dataset'])}"
    )
    return out


def _beta(plan, table, spec, provenance):
    ds, enc, base = spec["dataset"], spec["encoder"], spec["base"]
    folds, seeds, epochs = _budget(plan, spec, ds)
    points = []
    fixed = effective_aunce(plan.methods[base])
    for param, values, other in (
        ("beta_minority", spec.get("minority") or PAPER_MINORITY, "beta_majority"),
        ("beta_majority", spec.get("majority") or PAPER_MAJORITY, "beta_minority"),
    ):
        for v in values:
            overrides = {param: float(v), other: fixed[other]}
            tag = ("bmin" if param == "beta_minority" else "bmaj") + _num(v)
            name = plan.method(base, epochs, overrides, tag)
            points.append(
                {
                    "param": param,
                    "value": float(v),
                    "method": name,
                    "metrics": plan.need(ds, enc, name, folds, seeds),
                }  # fmt: skip
            )
    return {
        "kind": "beta",
        "fixed": {k: fixed[k] for k in ("beta_minority", "beta_majority")},
        "title": spec.get("title")
        or f"{table}: F1-macro (%) against beta on {dataset_label(plan, ds)}",
        "outputs": _figure_outputs(table),
        "points": points,
        "inputs": {"metrics": [f for p in points for f in p["metrics"]]},
        "notes": [_averaging(folds, seeds, epochs, plan.config), provenance],
    }


def _tsne(plan, table, spec, provenance):
    ds, enc = spec["dataset"], spec["encoder"]
    folds, seeds, epochs = _budget(plan, spec, ds)
    fold, seed = folds[0], seeds[0]
    panels = []
    for m in spec.get("methods", []):
        name = plan.method(m, epochs)
        panels.append((plan.label(name), name))
    if spec.get("base"):
        for p in spec.get("presets") or ["A", "B", "C", "D", "E"]:
            name = plan.method(spec["base"], epochs, preset_overrides(p), p)
            panels.append((f"{plan.label(spec['base'])} (model {p})", name))
    files = []
    for _label, name in panels:
        plan.need(ds, enc, name, [fold], [seed])
        files.append(stage_file("embed", ds, enc, name, fold, seed, "embeddings.npz"))
    return {
        "kind": "tsne",
        "title": spec.get("title")
        or f"{table}: t-SNE of test embeddings on "
        f"{dataset_label(plan, ds)}, fold {fold}, seed {seed}",
        "outputs": _figure_outputs(table),
        "panels": [
            {"label": lab, "embeddings": f} for (lab, _), f in zip(panels, files, strict=True)
        ],
        "n_points": spec.get("n_points", 200),
        "seed": seed,
        "aus": spec.get("aus"),
        "inputs": {"embeddings": files},
        "notes": [provenance],
    }


def _noise(plan, table, spec, provenance):
    ds, enc = spec["dataset"], spec["encoder"]
    folds, seeds, epochs = _budget(plan, spec, ds)
    metrics, caches = {}, {}
    methods = [plan.method(m, epochs) for m in spec["methods"]]
    for rate in spec["rates"]:
        name = noisy_name(ds, rate)
        if rate > 0 and name not in plan.datasets:
            derived = copy.deepcopy(plan.datasets[ds])
            derived["synthetic"]["label_noise"] = rate
            plan.datasets[name] = derived
        metrics[str(rate)] = [f for m in methods for f in plan.need(name, enc, m, folds, seeds)]
        caches[str(rate)] = f"results/cache/{name}"
    return {
        "kind": "noise",
        "title": spec.get("title")
        or f"{table}: F1-macro (%) against label noise on "
        f"{dataset_label(plan, ds)}, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "methods": [[m, plan.label(m)] for m in methods],
        "inputs": {"metrics": metrics, "caches": caches},
        "notes": [
            _averaging(folds, seeds, epochs, plan.config),
            "Training (pretraining and linear head) uses the noisy labels; every evaluation uses "
            "the true labels.",
            provenance,
        ],
    }


_BUILDERS = {
    "occurrence": _occurrence,
    "au_f1": _au_f1,
    "cross": _cross,
    "grid": _grid,
    "cost": _cost,
    "ablation": _ablation,
    "probs": _probs,
    "beta": _beta,
    "tsne": _tsne,
    "noise": _noise,
}


def input_files(spec: dict) -> list[str]:
    """Every file a table's spec names under ``inputs``, flattened (the rule's inputs)."""

    def flatten(value):
        if isinstance(value, dict):
            return [p for v in value.values() for p in flatten(v)]
        return list(value) if isinstance(value, list) else [value]

    return list(dict.fromkeys(flatten(spec["inputs"])))
