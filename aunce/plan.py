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
- ``table_runs`` / ``table_cross``: which runs and cross-dataset evaluations each table needs (the
  planning summary, :mod:`aunce.summary`, says which are shared).
- ``warnings``: what the config allows but the paper does not (a GFT split that is not 78 / 18).

Below the plan, the functions the rules are built from (:func:`units`, :func:`pretrain_groups`,
:func:`cache_path`, :func:`encoder_image`, :func:`kept_encoders`) and :func:`jobs`, every job of
the workflow as the rules declare it, which the summary counts without Snakemake.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aunce import AunceError
from aunce.config import METHOD_PRETRAIN_KEYS, dataset_folds, dataset_kind, resolved_pretrain
from aunce.presets import AUNCE_PRESETS, effective_aunce

FIGURE_KINDS = ("beta", "tsne")
#: Tables that mark a row whose runs' embeddings collapsed, from the runs' history.csv
HISTORY_KINDS = ("au_f1", "cross", "grid", "ablation", "probs", "noise")
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
#: The paper's GFT split (Sec. 4.1): 78 training and 18 test participants.
PAPER_GFT_SPLIT = {"train": 78, "test": 18}
#: How many views of each frame a loss encodes per step, and its cost per batch of B frames with K
#: AUs and D-dimensional embeddings as this harness implements it (the paper's own formulas for
#: Table 9's complexity column did not survive the text: "an asymptotic complexity of , ...").
LOSS_COST = {
    "aunce": {"views": 2, "complexity": "O(K (2B)^2 D)"},  # per AU, all pairs of the 2B views
    "wce": {"views": 1, "complexity": "O(B K D)"},  # per-AU linear head and B x K logits
    "wfl": {"views": 1, "complexity": "O(B K D)"},
}
THRESHOLD_NOTE = (
    "Decision threshold {threshold} on each AU's probability: the harness's choice (the paper "
    "states none), never tuned. Features: the frozen encoder's per-AU embeddings (K x D, one "
    "linear classifier per AU on its own embedding), where the paper says it extracts "
    "2048-dimensional feature vectors (Sec. 4.1)."
)


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
    table_runs: dict = field(default_factory=dict)  # id -> {(ds, enc, method, fold, seed)}
    table_cross: dict = field(default_factory=dict)  # id -> {(src, tgt, enc, method, sf, tf, s)}
    splits: dict = field(default_factory=dict)  # GFT dataset -> participants per split
    warnings: list = field(default_factory=list)
    current: str | None = None  # the table being planned

    # --- methods -------------------------------------------------------------------------------
    def _identity(self, method: dict, epochs: int | None) -> str:
        core = {k: v for k, v in method.items() if k not in ("label", "pretrain")}
        own = resolved_pretrain(self.config, method)  # the method's augmentation where it differs
        own = {
            k: own.get(k)
            for k in METHOD_PRETRAIN_KEYS
            if own.get(k) != self.config["pretrain"].get(k)
        }
        if own:
            core["pretrain"] = own
        if core.get("loss") == "aunce":
            extra = {k: v for k, v in core.items() if k not in ("loss", "preset")}
            core = {"loss": "aunce", **extra, **effective_aunce(core)}
        return json.dumps([core, epochs or self.config["pretrain"]["epochs"]], sort_keys=True)

    def method(self, base: str, epochs: int | None, overrides: dict | None = None, tag="") -> str:
        """The method ``base`` with ``overrides`` and a pretraining budget, by name (new or reused)."""
        return self._method(base, epochs, overrides, tag, create=True)

    def existing(self, base: str, epochs: int | None, overrides: dict | None = None) -> str | None:
        """The name of the method :meth:`method` would reuse, or None (nothing is added)."""
        return self._method(base, epochs, overrides, "", create=False)

    def _method(self, base, epochs, overrides, tag, create):
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
        if not create:
            return None
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
        mine = self.table_runs.setdefault(self.current, set())
        files = []
        for f in folds:
            for s in seeds:
                runs.add((f, s))
                mine.add((ds, enc, method, f, s))
                files.append(eval_file(ds, enc, method, f, s))
        return files

    def need_cross(self, src: str, tgt: str, enc: str, method: str, pairs, seeds) -> list[str]:
        """Models of ``src`` (fold ``sf``) evaluated on ``tgt``'s test split ``tf``."""
        cells = self.cross.setdefault((src, tgt, enc, method), set())
        pretrain = self.runs.setdefault((src, enc, method), set())
        mine = self.table_runs.setdefault(self.current, set())
        mine_cross = self.table_cross.setdefault(self.current, set())
        files = []
        for sf, tf in pairs:
            for s in seeds:
                cells.add((sf, tf, s))
                pretrain.add((sf, s))
                mine.add((src, enc, method, sf, s))
                mine_cross.add((src, tgt, enc, method, sf, tf, s))
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
    if (spec.get("published") or {}).get("table") == "variants":
        spec["notes"].insert(
            len(spec["notes"]) - 1,
            "Its published rows are not the paper's: they are the per-fold logs the authors "
            "published with their code (one run per fold, seed 3407; the epoch is not recorded), "
            "whose means over folds are the paper's 66.1 (BP4D) and 66.4 (DISFA) for MEGraph + "
            "AUNCE (baselines/README.md).",
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
    _check_encoders(config)
    _check_splits(plan)
    for table, spec in config["tables"].items():
        plan.current = table
        try:
            plan.tables[table] = _with_published_note(
                _BUILDERS[spec["kind"]](plan, table, spec, provenance)
            )
        except KeyError as err:
            raise AunceError(f"tables.{table}: unknown name {err} in its settings") from None
        plan.table_runs.setdefault(table, set())
        plan.table_cross.setdefault(table, set())
        if plan.tables[table]["kind"] in HISTORY_KINDS:  # the tables mark collapsed runs
            plan.tables[table]["inputs"]["history"] = sorted(
                stage_file("pretrain", ds, enc, m, f, s, "history.csv")
                for ds, enc, m, f, s in plan.table_runs[table]
            )
    plan.current = None
    return plan


def _used(config: dict, key: str, many: str) -> list[str]:
    """Names the tables use under ``key`` (one) or ``many`` (a list), in first-use order."""
    names = []
    for spec in config["tables"].values():
        names += [spec[key]] if spec.get(key) else []
        names += list(spec.get(many) or [])
        if key == "dataset":
            names += [spec["test_dataset"]] if spec.get("test_dataset") else []
            names += [n for pair in spec.get("pairs") or [] for n in pair]
    return list(dict.fromkeys(names))


def _check_encoders(config: dict) -> None:
    """A paper-size encoder must say where its weights come from: weights are never downloaded, and
    a silent random initialisation of Swin-B would cost GPU-days before anyone noticed."""
    for name in _used(config, "encoder", "encoders"):
        enc = config["encoders"][name]
        if enc.get("size", "paper") == "paper" and enc.get("pretrained") is None:
            raise AunceError(
                f"encoders.{name}.pretrained: a paper-size encoder needs an explicit choice: a timm "
                "weight tag in the local cache (ms_in1k for Swin-B, tv_in1k for ResNet50 and VGG16), "
                "a local weight file, or none for random initialisation (nothing is downloaded)"
            )
        image = encoder_image(config, name)
        if image["input_size"] > image["cache_size"]:
            where = f"encoders.{name}.image" if enc.get("image") else "image"
            raise AunceError(
                f"{where}: input_size {image['input_size']} is larger than cache_size "
                f"{image['cache_size']} (the crop is taken from the aligned face)"
            )


def _check_splits(plan: Plan) -> None:
    """GFT has no official split: refuse a GFT dataset without its split file at planning (not when
    its cache job runs), and warn when the split's participants are not the paper's 78 / 18."""
    from aunce.data.readers.common import resolve
    from aunce.data.readers.gft import read_split_file

    for name in _used(plan.config, "dataset", "datasets"):
        ds = plan.datasets[name]
        if ds["source"] != "gft":
            continue
        if not ds.get("split_file"):
            raise AunceError(
                f"datasets.{name}.split_file: GFT has no official split; name the file holding "
                "each participant's split (header 'subject,split'; the paper: 78 train / 18 test)"
            )
        path = resolve(Path(ds["root"]), ds["split_file"])
        if not path.is_file():
            raise AunceError(f"datasets.{name}.split_file: '{path}' not found")
        counts = Counter(read_split_file(path)[0].values())
        plan.splits[name] = {k: counts.get(k, 0) for k in ("train", "test", "validation")}
        if any(counts.get(k, 0) != n for k, n in PAPER_GFT_SPLIT.items()):
            plan.warnings.append(
                f"datasets.{name}.split_file: {path} holds {counts.get('train', 0)} training and "
                f"{counts.get('test', 0)} test participants, the paper's GFT split 78 / 18: its "
                "numbers do not compare with the paper's Tables 5 and 7"
            )


# --- per-kind planners --------------------------------------------------------------------------
def distinct_methods(plan: Plan, table: str, names: list[str], epochs) -> list[str]:
    """The plan's names of a table's methods, refusing two with the same settings: they would be
    one run standing for two rows (and two arms of every comparison). A copy meant as an
    independent draw of the same method says so with ``replicate: n`` (docs/report.md, "The A/A
    control")."""
    out: dict[str, str] = {}
    for m in names:
        name = plan.method(m, epochs)
        twin = next((k for k, v in out.items() if v == name), None)
        if twin == m:
            raise AunceError(f"tables.{table}.methods: '{m}' is listed twice")
        if twin is not None:
            raise AunceError(
                f"tables.{table}.methods: '{twin}' and '{m}' have the same settings, so one run "
                f"would stand for both rows; remove one, or give '{m}' `replicate: 1` to make it "
                "an independent replicate (an A/A control)"
            )
        out[m] = name
    return list(out.values())


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
        "notes": [f"{n}: {dataset_label(plan, n)}; {_training_set(plan, n)}" for n in names]
        + [provenance],
    }


def _training_set(plan: Plan, name: str) -> str:
    """What Table 1's "training set" is for this dataset (the paper does not say for the
    cross-validated and test-only ones)."""
    ds = plan.datasets[name]
    folds = dataset_folds(ds)
    if folds == ["split"]:
        return "training set: its training split"
    if not folds:
        return "test only (trained on another dataset): every frame"
    return (
        f"cross-validated ({len(folds)} folds): every frame, each in the training split of "
        f"{len(folds) - 1} of the {len(folds)} folds"
    )


def _au_f1(plan, table, spec, provenance):
    ds, enc = spec["dataset"], spec["encoder"]
    test = spec.get("test_dataset")
    if test:
        # trained on all of the source, tested on all of the target (BP4D -> BP4D+, Table 4)
        seeds, epochs = list(spec.get("seeds") or plan.seeds), spec.get("epochs")
        methods = distinct_methods(plan, table, spec["methods"], epochs)
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
        methods = distinct_methods(plan, table, spec["methods"], epochs)
        metrics = [f for m in methods for f in plan.need(ds, enc, m, folds, seeds)]
        note, where = _averaging(folds, seeds, epochs, plan.config), dataset_label(plan, ds)
        published_ds = dataset_kind(plan.datasets[ds])
    return {
        "kind": "au_f1",
        "title": spec.get("title")
        or f"{table}: F1 (%) per AU on {where}, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "methods": [[m, plan.label(m)] for m in methods],
        "inputs": {"metrics": metrics, "published": plan.published,
                   "ceilings": _ceilings(plan, [test or ds])},  # fmt: skip
        "published": _published(plan, spec, table, published_ds),
        "notes": [note, *_split_notes(plan, [ds, test]), _threshold_note(plan), provenance],
    }


def _threshold_note(plan: Plan) -> str:
    return THRESHOLD_NOTE.format(threshold=plan.config["linear_eval"]["threshold"])


def _split_notes(plan: Plan, names) -> list[str]:
    return [
        f"{n}: the split file holds {c['train']} training and {c['test']} test participants "
        f"(the paper's GFT split: {PAPER_GFT_SPLIT['train']} / {PAPER_GFT_SPLIT['test']})."
        for n in dict.fromkeys(names)
        if (c := plan.splits.get(n))
    ]


def _ceilings(plan: Plan, names) -> dict[str, str]:
    """The generated folders (their ``ceiling.json``) of the synthetic datasets among ``names``: the
    ceiling row of a table scored on them (aunce.tables.ceiling_row)."""
    return {n: f"results/data/{n}" for n in dict.fromkeys(names)
            if n and plan.datasets[n]["source"] == "synthetic"}  # fmt: skip


def _cross(plan, table, spec, provenance):
    from aunce.data.catalog import CROSS_DATASET_AUS

    enc, epochs = spec["encoder"], spec.get("epochs")
    seeds = list(spec.get("seeds") or plan.seeds)
    # epochs: one budget, or one per source dataset ({bp4d: 10, gft: 24}: reuse the models the
    # within-dataset tables train); the table's rows are named by the methods at its first budget
    by_source = epochs if isinstance(epochs, dict) else {}
    for src in by_source:
        if src not in {pair[0] for pair in spec["pairs"]}:
            raise AunceError(f"tables.{table}.epochs: '{src}' is not a source dataset of its pairs")
    methods = distinct_methods(plan, table, spec["methods"], None if by_source else epochs)
    directions = []
    for src, tgt in spec["pairs"]:
        src_epochs = by_source.get(src) if by_source else epochs
        runs = {m: plan.method(base, src_epochs) for m, base in zip(methods, spec["methods"],
                                                                    strict=True)}  # fmt: skip
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
                "metrics": {m: plan.need_cross(src, tgt, enc, runs[m], pairs, seeds)
                            for m in methods},  # fmt: skip
                "epochs": src_epochs or plan.config["pretrain"]["epochs"],
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
            "ceilings": _ceilings(plan, [tgt for _, tgt in spec["pairs"]]),
        },  # fmt: skip
        "published": _published(plan, spec, table, None),
        "notes": [
            "BP4D -> GFT: each source fold's model evaluated on the target's test split, averaged; "
            "GFT -> BP4D: the source model evaluated on each target test fold, averaged. The linear "
            "head is trained on the source training split, on the shared AUs only.",
            f"mean ± sample std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
            "pretraining epochs of the source models: "
            + ", ".join(f"{d['label']} {d['epochs']}" for d in directions) + ".",
            *_split_notes(plan, [n for pair in spec["pairs"] for n in pair]),
            _threshold_note(plan),
            provenance,
        ],
    }


def _grid(plan, table, spec, provenance):
    cells = []
    for ds in spec["datasets"]:
        folds, seeds, epochs = _budget(plan, spec, ds)
        distinct_methods(plan, table, spec["methods"], epochs)
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
            "ceilings": _ceilings(plan, spec["datasets"]),
        },
        "published": _published(plan, spec, table, None),
        "notes": [
            _averaging(folds, seeds, epochs, plan.config),
            "Encoders: " + ", ".join(_encoder_title(plan, e) for e in spec["encoders"]) + ".",
            _threshold_note(plan),
            provenance,
        ],
    }


def _cost(plan, table, spec, provenance):
    enc, rows = spec["encoder"], []
    published = spec.get("published", True)
    cost_file = str(Path(plan.published).with_name("published_cost.csv")) if published else None
    for ds in spec["datasets"]:
        folds, seeds, epochs = _budget(plan, spec, ds)
        distinct_methods(plan, table, spec["methods"], epochs)
        for m in spec["methods"]:
            name = plan.method(m, epochs)
            plan.need(ds, enc, name, folds, seeds)
            rows.append(
                {
                    "dataset": ds,
                    "method": name,
                    "label": plan.label(name),
                    "loss": plan.methods[name]["loss"],
                    "published_dataset": dataset_kind(plan.datasets[ds]),
                    **loss_cost(plan.methods[name]),
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
        "inputs": {
            "timing": [f for r in rows for f in r["timing"]],
            **({"published": cost_file} if cost_file else {}),
        },
        "published_cost": cost_file,
        "notes": [
            "Measured during pretraining, same encoder and batch size; mean ± std over the runs "
            f"(folds x seeds), batch {plan.config['pretrain']['batch_size']}. frames/s counts "
            "frames; views/s the images the encoder saw (AUNCE encodes two augmented views of "
            "each frame, WCE and WFL one); s/frame = 1 / (frames/s), the unit of the paper's "
            "'Frame Rate (FPS)' column, which reads as seconds per frame: its 1 Epoch Time "
            "divided by it gives 101 k (BP4D) and 87 k (DISFA) frames, a fold's training set.",
            "Complexity: the loss's cost per batch of B frames, K AUs and D-dimensional "
            "embeddings as implemented here (the paper's formulas are lost from its text); the "
            "encoder's forward and backward pass, paid once per view, is most of a step.",
            provenance,
        ],
    }


def loss_cost(method: dict) -> dict:
    """Views per frame and cost per batch of a method's loss (a loss given by import path: by its
    kind, its complexity unknown)."""
    if method["loss"] in LOSS_COST:
        return dict(LOSS_COST[method["loss"]])
    return {"views": 2 if method.get("kind") == "contrastive" else 1, "complexity": "-"}


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
        "inputs": {"metrics": metrics, "published": plan.published,
                   "ceilings": _ceilings(plan, [ds])},  # fmt: skip
        "published": _published(plan, spec, table, dataset_kind(plan.datasets[ds])),
        "notes": [
            _averaging(folds, seeds, epochs, plan.config),
            *_same_as_model_d(plan, spec, methods, epochs, kind),
            _threshold_note(plan),
            provenance,
        ],
    }


def _same_as_model_d(plan: Plan, spec: dict, methods: list, epochs, kind: str) -> list[str]:
    """Table 11's (1, 0, 0, 0) row has model D's settings (AU weights, betas 1.2 / 0.4, the
    most-similar positive only): the plan runs it once; the paper prints 60.1 and 64.1."""
    d = plan.existing(spec["base"], epochs, preset_overrides("D"))
    rows = [label for name, label in methods if name == d]
    if not rows:
        return []
    same = "Table 11's (1,0,0,0) row" if kind == "ablation" else "Table 10's model D"
    return [
        f"{', '.join(rows)} and {same} have the same settings (AU weights, betas 1.2 / 0.4, only "
        "the most similar positive) and are one run here. The paper prints 64.1 for model D in "
        "Table 10 and 60.1 for (1,0,0,0) in Table 11 (60.1 is model A's F1-macro): an "
        "inconsistency of the paper's (`aunce audit`)."
    ]


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


def tsne_sample_file(ds: str, enc: str, method: str, fold: str, seed: int, n_points: int) -> str:
    """The ``n_points`` test frames of a run's embeddings a t-SNE panel draws (kept; small)."""
    return stage_file("embed", ds, enc, method, fold, seed, f"tsne_n{n_points}.npz")


def _tsne(plan, table, spec, provenance):
    """Fig. 5: per dataset (``dataset`` or ``datasets``: the paper draws a group of panels per
    dataset), one panel per method and per ablation model, on the dataset's first fold and seed."""
    enc, n_points = spec["encoder"], spec.get("n_points", 200)
    names = spec.get("datasets") or [spec["dataset"]]
    panels, where = [], []
    for ds in names:
        folds, seeds, epochs = _budget(plan, spec, ds)
        fold, seed = folds[0], seeds[0]
        models = [(plan.label(name), name) for name in (plan.method(m, epochs)
                                                        for m in spec.get("methods", []))]  # fmt: skip
        if spec.get("base"):
            for p in spec.get("presets") or ["A", "B", "C", "D", "E"]:
                name = plan.method(spec["base"], epochs, preset_overrides(p), p)
                models.append((f"{plan.label(spec['base'])} (model {p})", name))
        for label, name in models:
            plan.need(ds, enc, name, [fold], [seed])
            panels.append(
                {
                    "label": f"{ds}: {label}" if len(names) > 1 else label,
                    "dataset": ds,
                    "embeddings": tsne_sample_file(ds, enc, name, fold, seed, n_points),
                }  # fmt: skip
            )
        where.append(f"{dataset_label(plan, ds)}, fold {fold}, seed {seed}")
    return {
        "kind": "tsne",
        "title": spec.get("title") or f"{table}: t-SNE of test embeddings on " + "; ".join(where),
        "outputs": _figure_outputs(table),
        "panels": panels,
        "n_points": n_points,
        "seed": _budget(plan, spec, names[0])[1][0],
        "aus": spec.get("aus"),
        "inputs": {"embeddings": [p["embeddings"] for p in panels]},
        "notes": [
            f"Each panel: {n_points} random test frames of one run (the same frames in every panel "
            "of a dataset), drawn once from its embeddings and kept (results/embed/.../"
            f"tsne_n{n_points}.npz), so the figure can be redrawn after the embeddings are deleted.",
            provenance,
        ],
    }


def _noise(plan, table, spec, provenance):
    ds, enc = spec["dataset"], spec["encoder"]
    folds, seeds, epochs = _budget(plan, spec, ds)
    metrics, caches, ceilings = {}, {}, {}
    methods = distinct_methods(plan, table, spec["methods"], epochs)
    for rate in spec["rates"]:
        name = noisy_name(ds, rate)
        if rate > 0 and name not in plan.datasets:
            derived = copy.deepcopy(plan.datasets[ds])
            derived["synthetic"]["label_noise"] = rate
            plan.datasets[name] = derived
        metrics[str(rate)] = [f for m in methods for f in plan.need(name, enc, m, folds, seeds)]
        caches[str(rate)] = f"results/cache/{name}"
        ceilings.update(_ceilings(plan, [name]))
    return {
        "kind": "noise",
        "title": spec.get("title")
        or f"{table}: F1-macro (%) against label noise on "
        f"{dataset_label(plan, ds)}, {_encoder_title(plan, enc)}",
        "outputs": _table_outputs(table),
        "methods": [[m, plan.label(m)] for m in methods],
        "inputs": {"metrics": metrics, "caches": caches, "ceilings": ceilings},
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


# --- what the rules are built from --------------------------------------------------------------
def encoder_image(config: dict, encoder: str | None) -> dict:
    """The image settings of an encoder's jobs: ``image``, with the encoder's own ``cache_size`` and
    ``input_size`` where it sets them (JA-Net: 200 -> 176); None: the top-level settings."""
    own = (config["encoders"][encoder].get("image") or {}) if encoder else {}
    return {**config["image"], **{k: v for k, v in own.items() if v is not None}}


def cache_path(config: dict, dataset: str, encoder: str | None = None) -> str:
    """The aligned cache an encoder reads: ``results/cache/<dataset>`` at ``image.cache_size``,
    ``results/cache/<dataset>-<size>px`` for an encoder with its own size."""
    size = encoder_image(config, encoder)["cache_size"]
    if size == config["image"]["cache_size"]:
        return f"results/cache/{dataset}"
    return f"results/cache/{dataset}-{size}px"


def _keep(config: dict, what: str) -> str:
    return (config.get("keep") or {}).get(what, "needed")


def kept_encoders(plan: Plan) -> set[tuple]:
    """Runs ``(ds, enc, method, fold, seed)`` whose encoder.pt stays on disk: every run with
    ``keep.encoders: all``; else those a cross-dataset evaluation reads (Tables 4 and 7), so that
    evaluating again never pretrains again."""
    if _keep(plan.config, "encoders") == "all":
        return {(d, e, m, f, s) for (d, e, m), runs in plan.runs.items() for f, s in runs}
    return {
        (src, enc, m, sf, s) for (src, _, enc, m), cells in plan.cross.items() for sf, _, s in cells
    }


def keeps_embeddings(plan: Plan) -> bool:
    """Whether every embeddings.npz stays (``keep.embeddings: all``); else each is deleted once its
    linear evaluation and any t-SNE sample of it are written."""
    return _keep(plan.config, "embeddings") == "all"


def units(plan: Plan, ds: str, enc: str, which: str = "all") -> list[tuple[str, list, list]]:
    """Jobs of a (dataset, encoder): ``[(tag, runs, methods)]`` for the runs ``which`` selects:
    "all", "evaluated" (runs with a test split) or "pretrain_only" (fold 'all': trained on the
    whole dataset for cross-dataset tests only).

    granularity 'cell': one job per group of methods that need the same runs (all their folds and
    seeds in one process); 'run': one job per fold and seed, for the methods that need it."""
    keep = {"all": lambda f: True, "evaluated": lambda f: f != "all",
            "pretrain_only": lambda f: f == "all"}[which]  # fmt: skip
    needs = {m: {r for r in runs if keep(r[0])}
             for (d, e, m), runs in plan.runs.items() if (d, e) == (ds, enc)}  # fmt: skip
    needs = {m: runs for m, runs in needs.items() if runs}
    prefix = {"all": "", "evaluated": "e", "pretrain_only": "p"}[which]
    out = []
    if plan.config["granularity"] == "run":
        for f, s in sorted({r for runs in needs.values() for r in runs}):
            methods = sorted(m for m, r in needs.items() if (f, s) in r)
            out.append((f"{prefix}fold{f}_seed{s}", [(f, s)], methods))
        return out
    groups = {}
    for m, runs in needs.items():
        groups.setdefault(tuple(sorted(runs)), []).append(m)
    for i, (runs, methods) in enumerate(sorted(groups.items())):
        out.append((f"{prefix}cell{i}", list(runs), sorted(methods)))
    return out


def pretrain_groups(plan: Plan, ds: str, enc: str, runs: list, methods: list,
                    kept: set | None = None) -> list[tuple[str, list[str], set]]:  # fmt: skip
    """The methods of a pretraining unit split by which of their runs keep encoder.pt:
    ``[(name suffix, methods, kept runs)]``, suffix '' for the group that keeps nothing (or the
    only group), ``_kept``, ``_kept2``, ... for the others. A rule declares temp() per file, and
    its {method} wildcard shares one declaration between its methods."""
    kept = kept_encoders(plan) if kept is None else kept
    groups: dict[tuple, list[str]] = {}
    for m in methods:
        mine = tuple(sorted(r for r in runs if (ds, enc, m, *r) in kept))
        groups.setdefault(mine, []).append(m)
    out, n = [], 0
    for signature, group in sorted(groups.items()):
        if signature and len(groups) > 1:
            n += 1
            suffix = "_kept" if n == 1 else f"_kept{n}"
        else:
            suffix = ""
        out.append((suffix, group, set(signature)))
    return out


def cells(plan: Plan) -> list[tuple[str, str]]:
    return sorted({(ds, enc) for ds, enc, _ in plan.runs})


def cross_jobs(plan: Plan) -> dict[tuple[str, str, str], dict[str, list]]:
    """One job per (source, target, encoder): its methods and their (sf, tf, seed) triples."""
    out: dict = {}
    for (src, tgt, enc, m), triples in plan.cross.items():
        out.setdefault((src, tgt, enc), {})[m] = sorted(triples)
    return dict(sorted(out.items()))


def table_ids(plan: Plan) -> list[str]:
    return [t for t, spec in plan.tables.items() if spec["kind"] not in FIGURE_KINDS]


def figure_ids(plan: Plan) -> list[str]:
    return [t for t, spec in plan.tables.items() if spec["kind"] in FIGURE_KINDS]


def contact_sheets(plan: Plan) -> list[str]:
    """Contact sheets of the synthetic datasets the config names (not the noise tables' copies)."""
    return sorted(
        f"results/figures/contact_{name}.png"
        for name, ds in plan.config["datasets"].items()
        if ds["source"] == "synthetic"
    )


def report_pages(plan: Plan) -> list[str]:
    """The pages Snakemake's HTML report shows besides the tables' CSVs and the figures' PNGs: one
    per table or figure, the full report and the verdict table (rules/tables.smk)."""
    return [
        *(f"results/report/{page}.html" for page in plan.tables),
        "results/report/full-report.html",
        "results/verdicts.html",
    ]


def report_inputs(plan: Plan) -> list[str]:
    return [
        "results/config.yaml",
        "results/verdicts.md",
        "results/verdicts.csv",
        *(plan.tables[t]["outputs"][k] for t in table_ids(plan) for k in ("md", "csv", "significance")),
        *(plan.tables[f]["outputs"][k] for f in figure_ids(plan) for k in ("png", "md")),
    ]


def all_targets(plan: Plan) -> list[str]:
    """The inputs of rule ``all``."""
    return [
        "results/config.yaml",
        *(f"results/tables/{t}.{ext}" for t in table_ids(plan) for ext in ("md", "tex")),
        *(f"results/figures/{f}.png" for f in figure_ids(plan)),
        *contact_sheets(plan),
        "results/report.md",
        *report_pages(plan),
    ]


# --- every job, as the rules declare it ---------------------------------------------------------
@dataclass
class Job:
    """One Snakemake job: its rule family (pretrain, train_eval, ... as docs/tables.md counts them),
    its rule's name, and the files it reads and writes (the rules' declarations). ``meta``: what
    :mod:`aunce.resources` prices it by (dataset, encoder, methods and runs; a cache's size)."""

    rule: str
    name: str
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)


def warm_start_files(config: dict, encoder: str) -> list[str]:
    """The warm-start weights a pretraining job of ``encoder`` starts from ([] without a warm start;
    rules/warmstart.smk)."""
    if config["encoders"][encoder].get("pretrained") == "warm":
        return [f"results/warmstart/{encoder}/backbone.pt"]
    return []


def _cell(ds, enc, methods, runs, method=None) -> dict:
    return {"dataset": ds, "encoder": enc, "methods": list(methods), "runs": list(runs),
            "method": method}  # fmt: skip


def _run_paths(stage, ds, enc, methods, runs, name):
    return [stage_file(stage, ds, enc, m, f, s, name) for m in methods for f, s in runs]


def jobs(plan: Plan) -> list[Job]:
    """Every job the workflow can run for this plan, mirroring rules/*.smk (a test compares the
    counts with Snakemake's dry runs). Which of them a target needs: :func:`needed_jobs`."""
    config, out = plan.config, []
    fused = config["fuse_stages"]
    for ds, enc in cells(plan):
        cache = cache_path(config, ds, enc)
        start = [cache, *warm_start_files(config, enc)]  # what a pretraining job reads
        for tag, runs, methods in units(plan, ds, enc, "pretrain_only" if fused else "all"):
            for suffix, group, _ in pretrain_groups(plan, ds, enc, runs, methods):
                for m in group:  # a {method} wildcard: one job per method
                    out.append(Job("pretrain", f"pretrain_{ds}_{enc}_{tag}{suffix}", start,
                                   _run_paths("pretrain", ds, enc, [m], runs, "encoder.pt")
                                   + _run_paths("pretrain", ds, enc, [m], runs, "timing.json")
                                   + _run_paths("pretrain", ds, enc, [m], runs, "history.csv"),
                                   _cell(ds, enc, [m], runs, method=m)))  # fmt: skip
        for tag, runs, methods in units(plan, ds, enc, "evaluated"):
            if fused:
                outputs = [p for stage, names in (("pretrain", ("encoder.pt", "timing.json",
                                                                "history.csv")),
                                                  ("embed", ("embeddings.npz",)),
                                                  ("eval", ("metrics.json", "predictions.npz")))
                           for name in names
                           for p in _run_paths(stage, ds, enc, methods, runs, name)]  # fmt: skip
                out.append(Job("train_eval", f"train_eval_{ds}_{enc}_{tag}", start, outputs,
                               _cell(ds, enc, methods, runs)))  # fmt: skip
                continue
            for m in methods:
                models = _run_paths("pretrain", ds, enc, [m], runs, "encoder.pt")
                embeddings = _run_paths("embed", ds, enc, [m], runs, "embeddings.npz")
                meta = _cell(ds, enc, [m], runs, method=m)
                out.append(Job("embed", f"embed_{ds}_{enc}_{tag}", [cache, *models], embeddings,
                               meta))  # fmt: skip
                evaluated = (_run_paths("eval", ds, enc, [m], runs, "metrics.json")
                             + _run_paths("eval", ds, enc, [m], runs, "predictions.npz"))  # fmt: skip
                out.append(Job("linear_eval", f"linear_eval_{ds}_{enc}_{tag}", embeddings,
                               evaluated, meta))  # fmt: skip
    for (src, tgt, enc), methods in cross_jobs(plan).items():
        models = sorted({stage_file("pretrain", src, enc, m, sf, s, "encoder.pt")
                         for m, triples in methods.items() for sf, _, s in triples})  # fmt: skip
        outputs = [cross_file(src, tgt, enc, m, sf, tf, s)
                   for m, triples in methods.items() for sf, tf, s in triples]  # fmt: skip
        inputs = [cache_path(config, src, enc), cache_path(config, tgt, enc), *models]
        out.append(Job("cross_eval", f"cross_eval_{src}_to_{tgt}_{enc}", inputs, outputs,
                       {"source": src, "target": tgt, "encoder": enc, "methods": methods}))  # fmt: skip
    samples = sorted({p["embeddings"] for spec in plan.tables.values()
                      if spec["kind"] == "tsne" for p in spec["panels"]})  # fmt: skip
    for sample in samples:
        out.append(Job("tsne_sample", "tsne_sample",
                       [str(Path(sample).with_name("embeddings.npz"))], [sample]))  # fmt: skip
    for t in table_ids(plan):
        spec = plan.tables[t]
        out.append(Job("table", "table", input_files(spec), list(spec["outputs"].values())))
    for f in figure_ids(plan):
        spec = plan.tables[f]
        out.append(Job("figure", "figure", input_files(spec), list(spec["outputs"].values())))
    for sheet in contact_sheets(plan):
        name = Path(sheet).stem.removeprefix("contact_")
        out.append(Job("contact_sheet", "contact_sheet", [f"results/data/{name}"], [sheet]))
    out.append(Job("report", "report", report_inputs(plan), ["results/report.md"]))
    from aunce.claims import CLAIMS_PATH, load_claims  # claims reads plans: imported here
    from aunce.claims import inputs as claim_inputs

    verdicts = ["results/verdicts.md", "results/verdicts.csv", "results/verdicts.checks.csv",
                "results/verdicts.html"]  # fmt: skip
    out.append(Job("verdicts", "verdicts", ["results/config.yaml", *claim_inputs(
        plan, load_claims(CLAIMS_PATH))], verdicts))  # fmt: skip
    for page, spec in plan.tables.items():
        sources = [spec["outputs"]["md"]] + ([spec["outputs"]["png"]] if "png" in spec["outputs"]
                                             else [])  # fmt: skip
        out.append(Job("report_page", "report_page", sources, [f"results/report/{page}.html"]))
    out.append(Job("report_full_page", "report_full_page", ["results/report.md"],
                   ["results/report/full-report.html"]))  # fmt: skip
    out.append(Job("resolved_config", "resolved_config", [], ["results/config.yaml"]))
    out.append(Job("all", "all", all_targets(plan), []))
    caches = sorted({p for job in out for p in job.inputs if p.startswith("results/cache/")})
    for cache in caches:
        name = cache.removeprefix("results/cache/")
        ds, rule = (name, "cache") if name in plan.datasets else (name.rsplit("-", 1)[0],
                                                                    "cache_sized")  # fmt: skip
        synthetic = plan.datasets[ds]["source"] == "synthetic"
        size = int(name.rsplit("-", 1)[1][:-2]) if rule == "cache_sized" else config["image"][
            "cache_size"]  # fmt: skip
        out.append(Job("cache", rule, [f"results/data/{ds}"] if synthetic else [], [cache],
                       {"dataset": ds, "size": size}))  # fmt: skip
    for ds, spec in plan.datasets.items():
        if spec["source"] == "synthetic":
            out.append(Job("synthesize", "synthesize", [], [f"results/data/{ds}"],
                           {"dataset": ds}))  # fmt: skip
    warm = sorted({enc for _, enc in cells(plan) if warm_start_files(config, enc)})
    for enc in warm:  # rules/warmstart.smk: one population, one job per warm-started encoder
        out.append(Job("warmstart", "warmstart", ["results/warmstart/population"],
                       [f"results/warmstart/{enc}/backbone.pt", f"results/warmstart/{enc}/history.csv"],
                       {"encoder": enc}))  # fmt: skip
    if warm:
        out.append(Job("warm_population", "warm_population", [], ["results/warmstart/population"]))
    return out


def needed_jobs(all_jobs: list[Job], targets: list[str]) -> list[Job]:
    """The jobs a set of target files needs (them and everything upstream), in ``all_jobs`` order;
    the target ``all`` is the job of that name."""
    producer = {p: i for i, job in enumerate(all_jobs) for p in job.outputs}
    wanted, todo = set(), []
    for t in targets:
        if t == "all":
            todo.append(next(i for i, j in enumerate(all_jobs) if j.rule == "all"))
        elif t in producer:
            todo.append(producer[t])
        else:
            raise AunceError(f"no job writes '{t}'")
    while todo:
        i = todo.pop()
        if i in wanted:
            continue
        wanted.add(i)
        todo.extend(producer[p] for p in all_jobs[i].inputs if p in producer)
    return [all_jobs[i] for i in sorted(wanted)]
