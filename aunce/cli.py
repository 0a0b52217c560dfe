"""The ``aunce`` command: one subcommand per workflow step.

Each subcommand imports only what its step needs (a table job never imports torch): on a small
machine the imports of a job cost seconds (BENCHMARKS.md). User errors print one line and exit 2;
errors of the machine (a full disk: ``OSError``) and a diverged training (``FloatingPointError``)
print one line naming the file, or the method, fold, seed and epoch, and exit 1 (``-v`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import string
import sys
from pathlib import Path

from aunce import AunceError, __version__

log = logging.getLogger("aunce")


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got '{text}'"
            ) from None

    return parse


def _settings(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"--settings is not valid JSON ({err.msg} at column {err.colno})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--settings must be a JSON object")
    return value


def cmd_synth(args) -> None:
    from aunce.data.synthetic import generate

    out = generate(
        args.profile,
        args.out,
        seed=args.seed,
        image_size=args.image_size,
        n_subjects=args.n_subjects,
        frames_per_subject=args.frames_per_subject,
        label_noise=args.label_noise,
        miss_ratio=args.miss_ratio,
        workers=args.workers,
    )
    log.info("wrote synthetic %s dataset to %s", args.profile, out)


def _pin(text: str) -> tuple[str, str]:
    name, _, digest = text.partition("=")
    if not name or len(digest) != 64 or not all(c in string.hexdigits for c in digest):
        raise argparse.ArgumentTypeError(f"expected FILE=SHA256 (64 hex digits), got '{text}'")
    return name, digest.lower()


def cmd_cache(args) -> None:
    from aunce.data.cache import build_cache

    options = {
        "split_file": args.split_file,
        "list_name": args.list_name,
        "list_sha256": dict(args.list_sha256) if args.list_sha256 else None,
        "aus": args.aus,
        "folds": args.folds,
    }
    out = build_cache(
        args.reader,
        args.root,
        args.out,
        args.size,
        aligned=args.aligned,
        workers=args.workers,
        landmarks=args.landmarks,
        options=options,
    )
    log.info("wrote aligned cache %s", out)


def _runs(args) -> list[tuple[str, int]]:
    """(fold, seed) pairs from --runs F:S,... or from --folds x --seeds."""
    if args.runs:
        try:
            return [(f, int(s)) for f, s in (item.split(":") for item in args.runs)]
        except ValueError:
            raise AunceError(
                f"--runs: expected fold:seed pairs, got {','.join(args.runs)}"
            ) from None
    if not (args.folds and args.seeds):
        raise AunceError("give --runs, or --folds and --seeds")
    return [(f, s) for f in args.folds for s in args.seeds]


def _allocation_argument(p) -> None:
    p.add_argument(
        "--allocation",
        metavar="K/N",
        help="this run of the job is allocation K of the N its estimate needs (the workflow's "
        "chain over a cluster's time limits; logged and put in the SLURM job's comment)",
    )


def cmd_pretrain(args) -> None:
    from aunce.cluster import announce
    from aunce.train import pretrain

    announce(args.allocation)
    pretrain(args.cache, args.settings, _runs(args), args.out, checkpoints=args.checkpoints)


def cmd_embed(args) -> None:
    from aunce.evaluate import embed

    embed(args.cache, args.models, args.settings, _runs(args), args.out)


def cmd_linear_eval(args) -> None:
    from aunce.evaluate import linear_eval

    linear_eval(
        args.embeddings, args.settings, _runs(args), args.out,
        cache_dir=args.cache, models_root=args.models,
    )  # fmt: skip


def cmd_train_eval(args) -> None:
    """The three stages of a unit of work in one process, for each of its methods (fuse_stages).

    ``--settings`` maps each method name to its per-stage settings; outputs go below
    ``<results>/<stage>/<cell>/<method>``, checkpoints below ``<results>/checkpoints/pretrain/...``
    until every method of the unit is done (a rerun restores the runs that had finished)."""
    from aunce.cluster import announce
    from aunce.evaluate import embed, linear_eval
    from aunce.train import checkpoint_root, pretrain, remove_checkpoints

    announce(args.allocation)
    runs, root = _runs(args), args.results
    for method, s in args.settings.items():
        cell = f"{args.cell}/{method}"
        log.info("method %s: %d run(s)", method, len(runs))
        pretrain(args.cache, s["pretrain"], runs, root / "pretrain" / cell, keep_checkpoints=True)
        embed(args.cache, root / "pretrain" / cell, s["embed"], runs, root / "embed" / cell)
        linear_eval(
            root / "embed" / cell, s["linear_eval"], runs, root / "eval" / cell,
            cache_dir=args.cache, models_root=root / "pretrain" / cell,
        )  # fmt: skip
    for method in args.settings:
        remove_checkpoints(checkpoint_root(root / "pretrain" / f"{args.cell}/{method}"), runs)


def cmd_population(args) -> None:
    from aunce.data.synthetic import generate_population

    out = generate_population(
        args.out,
        seed=args.seed,
        n_subjects=args.n_subjects,
        frames_per_subject=args.frames_per_subject,
        image_size=args.image_size,
        aligned_size=args.aligned_size,
        workers=args.workers,
    )
    log.info("wrote the warm-start population to %s", out)


def cmd_warmstart(args) -> None:
    from aunce.warmstart import warm_start

    warm_start(args.population, args.settings, args.out)


def cmd_tables(args) -> None:
    from aunce.io import read_json, write_text
    from aunce.tables import build, render_latex, render_markdown, significance

    table = build(args.table, args.spec, read_json)
    write_text(args.md, render_markdown(table))
    write_text(args.tex, render_latex(table))
    write_text(args.csv, table.frame().to_csv(index=False, float_format="%.4f"))
    if args.significance:
        tests = significance(args.spec, read_json)
        write_text(args.significance, tests.to_csv(index=False, float_format="%.6g"))
    log.info("wrote %s, %s and %s", args.md, args.tex, args.csv)


def cmd_cross_eval(args) -> None:
    """Every method of a (source, target, encoder): ``--settings`` maps each method to its
    ``settings`` and ``runs`` (source_fold:target_fold:seed)."""
    from aunce.evaluate import cross_eval

    for method, job in args.settings.items():
        try:
            runs = [(sf, tf, int(s)) for sf, tf, s in (r.split(":") for r in job["runs"])]
        except (KeyError, ValueError):
            raise AunceError(
                f"--settings: {method}: runs must be source_fold:target_fold:seed"
            ) from None
        cross_eval(args.source, args.target, args.models / method, job["settings"], runs,
                   args.out / method)  # fmt: skip


def cmd_figure(args) -> None:
    from tabulate import tabulate

    from aunce import figures
    from aunce.io import read_json, write_text

    spec = args.spec
    if spec["kind"] == "beta":
        fig, frame = figures.beta_sweep(spec, read_json)
    elif spec["kind"] == "tsne":
        fig, frame = figures.tsne(spec)
    else:
        raise AunceError(f"{args.figure}: unknown figure kind '{spec['kind']}'")
    figures.save_figure(fig, args.png)
    write_text(args.csv, frame.to_csv(index=False, float_format="%.4f"))
    if "silhouette" in frame:  # t-SNE: the separation score per model and AU, not every point
        frame = frame.groupby(["panel", "au"], sort=False)["silhouette"].first().reset_index()
    body = tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=".3g")
    notes = "".join(f"\n- {n}" for n in spec.get("notes", []))
    write_text(
        args.md, f"### {spec['title']}\n\n![{args.figure}]({args.png.name})\n\n{body}\n{notes}\n"
    )
    log.info("wrote %s, %s and %s", args.png, args.csv, args.md)


def cmd_tsne_sample(args) -> None:
    from aunce.figures import tsne_sample

    out = tsne_sample(args.embeddings, args.out, n_points=args.n_points, seed=args.seed)
    log.info("wrote %s", out)


def cmd_plan(args) -> None:
    from aunce.summary import render_summary, summarize

    summary = summarize(args.configfile, results=args.results, schema_path=args.schema,
                        rates_file=args.rates)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_summary(summary))


def cmd_report(args) -> None:
    from aunce.report import write_report

    write_report(args.spec, args.out)
    log.info("wrote %s", args.out)


def cmd_verdicts(args) -> None:
    from aunce.claims import CLAIMS_PATH, PUBLISHED_PATH, judge_run, write_verdicts

    verdicts = judge_run(args.config, args.claims or CLAIMS_PATH, args.published or PUBLISHED_PATH)
    outputs = {"md": args.md, "csv": args.csv, "checks": args.checks, "html_path": args.html}
    if not any(outputs.values()):
        sys.stdout.write(verdicts.markdown())
        return
    write_verdicts(verdicts, **outputs)
    counts = ", ".join(f"{k} {v}" for k, v in verdicts.counts().items())
    log.info("judged %d claim rows (%s)", len(verdicts.rows), counts)


def cmd_report_page(args) -> None:
    from aunce.pages import markdown_page

    markdown_page(args.md, args.out)
    log.info("wrote %s", args.out)


def cmd_contact_sheet(args) -> None:
    import tempfile

    from aunce.data.synthetic import generate
    from aunce.figures import contact_sheet

    if (args.data is None) == (args.profile is None):
        raise AunceError("give either --data DIR (a generated dataset) or --profile NAME")
    if args.data is not None:
        out = contact_sheet(args.data, args.out, n=args.n, seed=args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = generate(
                args.profile,
                Path(tmp) / args.profile,
                seed=args.seed,
                n_subjects=max(3, args.n // 2),
                frames_per_subject=8,
            )
            out = contact_sheet(
                data,
                args.out,
                n=args.n,
                seed=args.seed,
                title=f"Synthetic {args.profile} stand-in: active AUs under each face",
            )
    log.info("wrote %s", out)


def cmd_write_config(args) -> None:
    import yaml

    from aunce.io import write_text

    header = f"# Resolved configuration of this run (aunce {__version__}); defaults filled in.\n"
    write_text(args.out, header + yaml.safe_dump(args.settings, sort_keys=False))


def cmd_check_config(args) -> None:
    from aunce.validate import validate_files

    kwargs = {"schema_path": args.schema} if args.schema else {}
    validate_files(*args.config, **kwargs)
    print(f"{' + '.join(map(str, args.config))}: valid")


def cmd_unlock_stale(args) -> None:
    import socket

    from aunce.lock import unlock_stale

    if unlock_stale(args.directory):
        log.warning(
            "removed the Snakemake lock left by an interrupted run in %s (no Snakemake and no job "
            "of it runs there on %s); going on",
            args.directory.resolve(),
            socket.gethostname(),
        )


def cmd_audit(args) -> None:
    """Two CSV blocks, a blank line between: printed averages that are not the mean of their
    per-AU values, then rows the paper prints twice for one model with different averages."""
    from aunce.baselines import (
        audit,
        load_published,
        render_audit,
        render_same_model_audit,
        same_model_audit,
    )

    published = load_published(args.published)
    sys.stdout.write(render_audit(audit(published)))
    sys.stdout.write("\n" + render_same_model_audit(same_model_audit(published)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aunce", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"aunce {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic AU dataset")
    p.add_argument("--profile", required=True, help="bp4d, disfa, gft, bp4d_plus or affwild2")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-subjects", type=int)
    p.add_argument("--frames-per-subject", type=int)
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of labels flipped")
    p.add_argument(
        "--miss-ratio",
        type=float,
        default=1.0,
        help="a positive label is this many times as likely to flip as a negative one",
    )
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("cache", help="align every face once into a memory-mappable cache")
    p.add_argument("--reader", required=True, help="dataset reader (synthetic, bp4d, ...)")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--size", type=int, default=256)
    p.add_argument(
        "--aligned",
        action=argparse.BooleanOptionalAction,
        help="images are (not) already aligned faces (default: the layout's usual case)",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--landmarks",
        default="landmarks",
        help="folder of the per-sequence landmark files, relative to the root unless absolute",
    )
    p.add_argument("--split-file", help="gft: the file of each subject's split (subject,split)")
    p.add_argument("--list-name", help="list: the <DS> prefix of the list files")
    p.add_argument(
        "--list-sha256",
        type=_pin,
        action="append",
        metavar="FILE=SHA256",
        help="list: pin a list file by its SHA-256 (repeat for each file)",
    )
    p.add_argument("--aus", type=_csv(int), help="list: AU numbers of the label columns")
    p.add_argument("--folds", type=int, help="list: number of folds the list files hold")
    p.set_defaults(func=cmd_cache)

    for name, func, helptext in (
        ("pretrain", cmd_pretrain, "pretrain encoders (stage 1)"),
        ("embed", cmd_embed, "extract per-AU embeddings of frozen encoders"),
        ("linear-eval", cmd_linear_eval, "linear evaluation (stage 2)"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name in ("pretrain", "embed"):
            p.add_argument("--cache", required=True, type=Path)
        if name == "embed":
            p.add_argument("--models", required=True, type=Path, help="pretrain output root")
        if name == "linear-eval":
            p.add_argument("--embeddings", required=True, type=Path, help="embed output root")
            p.add_argument("--cache", type=Path, help="linear_eval.features augmented: the cache")
            p.add_argument(
                "--models", type=Path, help="linear_eval.features augmented: pretrain output root"
            )
        p.add_argument("--settings", required=True, type=_settings, help="resolved settings (JSON)")
        p.add_argument("--runs", type=_csv(str), help="fold:seed pairs, e.g. 1:3407,2:3407")
        p.add_argument("--folds", type=_csv(str), help="with --seeds: every fold x seed")
        p.add_argument("--seeds", type=_csv(int), help="e.g. 3407,3408")
        p.add_argument("--out", required=True, type=Path, help="output root (fold-*/seed-*/ below)")
        if name == "pretrain":
            _allocation_argument(p)
            p.add_argument(
                "--checkpoints",
                type=Path,
                help="per-run checkpoints while the job runs (default: results/checkpoints/pretrain/"
                "... for an --out below results/pretrain, else OUT/checkpoints)",
            )
        p.set_defaults(func=func)

    p = sub.add_parser("train-eval", help="pretrain, embed and evaluate in one process")
    p.add_argument("--cache", required=True, type=Path)
    p.add_argument("--settings", required=True, type=_settings, help="per-stage settings (JSON)")
    p.add_argument("--runs", required=True, type=_csv(str), help="fold:seed pairs")
    p.add_argument("--results", required=True, type=Path, help="the results folder")
    p.add_argument("--cell", required=True, help="<dataset>/<encoder> below each stage")
    _allocation_argument(p)
    p.set_defaults(func=cmd_train_eval, folds=None, seeds=None)

    p = sub.add_parser(
        "population", help="generate the warm-start population (unlabelled synthetic faces)"
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-subjects", type=int, default=300)
    p.add_argument("--frames-per-subject", type=int, default=8)
    p.add_argument("--image-size", type=int, default=64, help="rendered side in pixels")
    p.add_argument("--aligned-size", type=int, default=256, help="aligned side (the cache size)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")
    p.set_defaults(func=cmd_population)

    p = sub.add_parser("warmstart", help="pretrain an encoder's backbone on the population")
    p.add_argument("--population", required=True, type=Path, help="`aunce population` output")
    p.add_argument("--settings", required=True, type=_settings, help="resolved settings (JSON)")
    p.add_argument("--out", required=True, type=Path, help="writes backbone.pt, history.csv, ...")
    p.set_defaults(func=cmd_warmstart)

    p = sub.add_parser("tables", help="render one table as Markdown and LaTeX")
    p.add_argument("table", help="table id, e.g. table2")
    p.add_argument(
        "--spec", required=True, type=_settings, help="table spec with its inputs (JSON)"
    )
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--tex", required=True, type=Path)
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument(
        "--significance", type=Path, help="paired tests between this run's methods (CSV)"
    )
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("cross-eval", help="evaluate source-dataset models on a target dataset")
    p.add_argument("--source", required=True, type=Path, help="source cache")
    p.add_argument("--target", required=True, type=Path, help="target cache")
    p.add_argument("--models", required=True, type=Path, help="results/pretrain/<source>/<encoder>")
    p.add_argument(
        "--settings", required=True, type=_settings, help="{method: {settings, runs: [sf:tf:seed]}}"
    )
    p.add_argument("--out", required=True, type=Path, help="results/cross/<src>-to-<tgt>/<encoder>")
    p.set_defaults(func=cmd_cross_eval)

    p = sub.add_parser("figure", help="render one figure (fig5 t-SNE, fig6 beta sweep)")
    p.add_argument("figure", help="figure id, e.g. fig6")
    p.add_argument("--spec", required=True, type=_settings)
    p.add_argument("--png", required=True, type=Path)
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--md", required=True, type=Path)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser(
        "tsne-sample", help="save the test frames a t-SNE panel draws from a run's embeddings"
    )
    p.add_argument("--embeddings", required=True, type=Path, help="a run's embeddings.npz")
    p.add_argument("--n-points", required=True, type=int)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_tsne_sample)

    p = sub.add_parser(
        "plan",
        help="what a config runs: jobs, runs per table and shared, GPU-hours, disk (no torch)",
    )
    p.add_argument(
        "--configfile",
        required=True,
        type=Path,
        nargs="+",
        help="config files, merged in order as Snakemake merges them",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results folder whose caches and timing.json files refine the estimates",
    )
    p.add_argument("--schema", type=Path, help="config schema (default config/schema.yaml)")
    p.add_argument(
        "--rates",
        type=Path,
        help="measured images/s per encoder and loss (benchmarks/gpu.py --rates-out), used where "
        "the results folder has no comparable timing.json, before the paper's Table 9",
    )
    p.add_argument("--json", action="store_true", help="the numbers as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("report", help="write results/report.md")
    p.add_argument("--spec", required=True, type=_settings)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "verdicts",
        help="judge the paper's claims on a finished run (run in its folder; Markdown to stdout "
        "unless an output is given)",
    )
    p.add_argument("--config", type=Path, default=Path("results/config.yaml"),
                   help="the run's resolved config (default: results/config.yaml)")  # fmt: skip
    p.add_argument("--claims", type=Path, help="default: the project's baselines/claims.yaml")
    p.add_argument("--published", type=Path, help="default: the project's published.csv")
    p.add_argument("--md", type=Path, help="the verdicts as Markdown")
    p.add_argument("--csv", type=Path, help="one row per verdict")
    p.add_argument("--checks", type=Path, help="one row per comparison behind the verdicts")
    p.add_argument("--html", type=Path, help="the verdict table as an HTML fragment")
    p.set_defaults(func=cmd_verdicts)

    p = sub.add_parser("report-page", help="a Markdown file as one HTML page, images embedded")
    p.add_argument("--md", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_report_page)

    p = sub.add_parser("contact-sheet", help="a PNG grid of synthetic faces with their active AUs")
    p.add_argument("--data", type=Path, help="a generated dataset folder")
    p.add_argument("--profile", help="generate a small dataset of this profile first")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("-n", type=int, default=24, help="faces on the sheet")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_contact_sheet)

    p = sub.add_parser("write-config", help="save the resolved configuration as YAML")
    p.add_argument("--settings", required=True, type=_settings)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_write_config)

    p = sub.add_parser(
        "check-config", help="validate config files (merged in order) against the schema"
    )
    p.add_argument("config", type=Path, nargs="+")
    p.add_argument("--schema", type=Path)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "unlock-stale",
        help="remove Snakemake's lock of a folder when no Snakemake or job of it runs there",
    )
    p.add_argument("--directory", type=Path, default=Path("."), help="the workflow's folder")
    p.set_defaults(func=cmd_unlock_stale)

    p = sub.add_parser(
        "audit",
        help="list published averages that differ from the mean of their per-AU F1, then rows "
        "of one model printed with different averages",
    )
    p.add_argument("published", type=Path, help="baselines/published.csv")
    p.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except AunceError as err:
        print(f"aunce {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine, not the input: a full disk, a folder that went away
        if args.verbose:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"aunce {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except FloatingPointError as err:  # training diverged (a NaN or infinite loss)
        if args.verbose:
            raise
        print(f"aunce {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0
