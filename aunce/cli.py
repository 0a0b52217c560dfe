"""The ``aunce`` command: one subcommand per workflow step.

Each subcommand imports only what its step needs (a table job never imports torch): on a small
machine the imports of a job cost seconds (BENCHMARKS.md). User errors print one line and exit 2;
errors of the machine (a full disk: ``OSError``) and a diverged training (``FloatingPointError``)
print one line naming the file, or the method, fold, seed and epoch, and exit 1 (``-v`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
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
    """A job's settings: a JSON file (the workflow writes one per job, results/settings/, named by
    the hash of its content, which is checked), or a JSON object given inline (by hand: text that
    starts with ``{``)."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(
                f"--settings is not valid JSON ({err.msg} at column {err.colno})"
            ) from None
    else:
        try:
            raw = Path(text).read_bytes()
        except OSError as err:
            raise argparse.ArgumentTypeError(
                f"{text}: {err.strerror or err} (a JSON file, or a JSON object inline)"
            ) from None
        named = re.fullmatch(r"[\w.-]+-([0-9a-f]{16})\.json", Path(text).name)
        if named and hashlib.sha256(raw).hexdigest()[:16] != named.group(1):
            raise argparse.ArgumentTypeError(
                f"{text}: damaged, its content does not match the hash in its name; run the "
                "workflow again (make run), which writes it anew"
            )
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            line = f" line {err.lineno}:" if isinstance(err, json.JSONDecodeError) else ""
            raise argparse.ArgumentTypeError(f"{text}:{line} not valid JSON") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text[:60]}: must be a JSON object")
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


def _epochs(settings) -> int:
    """The pretraining epochs of a run's settings, for its job's progress lines (0: not given)."""
    try:
        return int(settings["pretrain"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return 0


def _allocation_argument(p) -> None:
    p.add_argument(
        "--allocation",
        metavar="K/N",
        help="this run of the job is allocation K of the N its estimate needs (the workflow's "
        "chain over a cluster's time limits; logged and put in the SLURM job's comment)",
    )
    p.add_argument(
        "--checkpoint-lead",
        type=int,
        metavar="SECONDS",
        help="in a SLURM job: checkpoint and stop this many seconds before the allocation ends "
        "(config resources.checkpoint_lead; the end is read from squeue when the job starts)",
    )


def cmd_pretrain(args) -> None:
    from aunce.cluster import announce
    from aunce.progress import JOB
    from aunce.train import pretrain

    announce(args.allocation, args.checkpoint_lead)
    runs = _runs(args)
    JOB.expect([_epochs(args.settings)] * len(runs))
    pretrain(args.cache, args.settings, runs, args.out, checkpoints=args.checkpoints)


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
    from aunce.progress import JOB
    from aunce.train import checkpoint_root, pretrain, remove_checkpoints

    announce(args.allocation, args.checkpoint_lead)
    runs, root = _runs(args), args.results
    for s in args.settings.values():
        JOB.expect([_epochs(s.get("pretrain") if isinstance(s, dict) else None)] * len(runs))
    log.info(
        "job: %d method(s) x %d run(s) of %s (fold:seed %s), each pretrained, embedded and "
        "evaluated", len(args.settings), len(runs), args.cell, ",".join(f"{f}:{s}" for f, s in runs),
    )  # fmt: skip
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
    shown = frame.astype(object).where(frame.notna(), None)  # NaN (one seed: no std) prints "-"
    body = tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".3g",
                    missingval="-")  # fmt: skip
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
    power = _plan_power(args)
    if args.json:
        summary["power"] = power.to_dict("records")
        sys.stdout.write(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    else:
        from aunce.power import render_power

        sys.stdout.write(render_summary(summary) + "\n" + render_power(power))


def _plan_power(args):
    """The power section of ``aunce plan`` (aunce.power): the variance of ``--variance``, else of
    the results folder's finished run, else the paper's printed standard deviations."""
    from aunce.claims import PUBLISHED_PATH, load_claims
    from aunce.config import SCHEMA_PATH, load_config
    from aunce.plan import make_plan
    from aunce.power import load_checks, power_table

    plan = make_plan(load_config(*args.configfile, schema_path=args.schema or SCHEMA_PATH))
    if args.variance:
        checks = load_checks(args.variance)
    else:  # the results folder's own, when it has one of this version
        try:
            found = args.results / "verdicts.checks.csv"
            checks = load_checks(found) if found.is_file() else None
        except AunceError:
            checks = None
    return power_table(plan, load_claims(), checks, PUBLISHED_PATH)


def cmd_status(args) -> None:
    from aunce.status import collect, render

    status = collect(args.folder)
    if args.json:
        sys.stdout.write(json.dumps(status, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(status, every=not args.brief))


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


def cmd_verify(args) -> None:
    """Every file of a results folder that carries a content hash, checked in full."""
    from aunce.verify import verify_results

    report = verify_results(args.results, fix=args.fix)
    for line in report.lines():
        print(line)
    if report.damaged and not args.fix:
        raise AunceError(
            f"{len(report.damaged)} damaged file(s) in {args.results}; `aunce verify --fix "
            f"{args.results}` removes them (and marks damaged caches), then `make run` "
            "makes them again"
        )


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


TOP_DESCRIPTION = """\
aunce: the steps of the AUNCE reproduction workflow, and the commands to plan, check and follow a
run. `make run` (or `snakemake all --cores 1 --resources gpu=1`) runs the whole workflow. The
commands for you are status, plan, check-config, verdicts, audit, contact-sheet and unlock-stale;
those marked (workflow step) are the workflow's steps, one per Snakemake rule, which you rarely
call by hand."""

TOP_EXAMPLES = """\
examples:
  aunce status                        # the run in this folder (results/)
  aunce status runs/smoke             # a run started with `make run DIR=runs/smoke`
  aunce plan --configfile config/config.yaml
  aunce check-config config/config.yaml config/mine.yaml
  aunce verdicts                      # in a finished run's folder
  aunce pretrain --help               # every command has its own help and examples"""


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a misspelt command or choice."""

    def error(self, message: str):
        import re

        from aunce.hints import did_you_mean

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            hint = did_you_mean(m.group(1), choices).strip()
            message = message if not hint else f"{message}; {hint}"
        super().error(message)


def _command(sub, name: str, func, summary: str, description: str, examples: list[str],
             step: bool = False) -> argparse.ArgumentParser:  # fmt: skip
    """A subcommand with its one-line summary (in `aunce --help`), description and examples."""
    p = sub.add_parser(
        name,
        help=f"(workflow step) {summary}" if step else summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


#: help of the arguments every training, embedding and evaluation step shares
SETTINGS_HELP = "the step's resolved settings as a JSON object (the workflow passes them)"
RUNS_HELP = "fold:seed pairs to run, comma-separated, e.g. 1:3407,2:3407"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aunce", description=TOP_DESCRIPTION, epilog=TOP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"aunce {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the traceback of an error")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub, "synth", cmd_synth, "generate a synthetic AU dataset",
        "Render a synthetic stand-in of one of the paper's datasets: procedural faces with 68\n"
        "landmarks, subjects, pose, lighting, and AUs with the dataset's occurrence rates\n"
        "(docs/synthetic.md). The workflow's `synthesize` rule runs it.",
        ["aunce synth --profile bp4d --out /tmp/bp4d --n-subjects 6 --frames-per-subject 8"],
        step=True,
    )  # fmt: skip
    p.add_argument("--profile", required=True, help="bp4d, disfa, gft, bp4d_plus or affwild2")
    p.add_argument("--out", required=True, type=Path, help="the dataset folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the dataset (default 0)")
    p.add_argument("--image-size", type=int, default=64, help="rendered side in pixels")
    p.add_argument("--n-subjects", type=int, help="subjects (default: the profile's)")
    p.add_argument("--frames-per-subject", type=int, help="frames per subject (default: the profile's)")
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of labels flipped")
    p.add_argument(
        "--miss-ratio",
        type=float,
        default=1.0,
        help="a positive label is this many times as likely to flip as a negative one",
    )
    p.add_argument("--workers", type=int, help="processes (default: one per core)")

    p = _command(
        sub, "cache", cmd_cache, "align every face once into a memory-mappable cache",
        "Read a dataset (a synthetic one, or BP4D, DISFA, GFT, BP4D+, Aff-Wild2 or list files),\n"
        "align each face by its landmarks and write uint8 arrays every training job maps\n"
        "(docs/datasets.md). The workflow's `cache` rule runs it.",
        ["aunce cache --reader synthetic --root /tmp/bp4d --out /tmp/bp4d-cache --size 36",
         "aunce cache --reader bp4d --root /data/BP4D --out results/cache/bp4d --workers 4"],
        step=True,
    )  # fmt: skip
    p.add_argument(
        "--reader", required=True,
        help="dataset reader: synthetic, bp4d, disfa, gft, bp4d_plus, affwild2 or list",
    )  # fmt: skip
    p.add_argument("--root", required=True, type=Path, help="the dataset's folder")
    p.add_argument("--out", required=True, type=Path, help="the cache folder to write")
    p.add_argument("--size", type=int, default=256, help="side of the aligned faces in pixels")
    p.add_argument(
        "--aligned",
        action=argparse.BooleanOptionalAction,
        help="images are (not) already aligned faces (default: the layout's usual case)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
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

    stage_examples = {
        "pretrain": "aunce pretrain --cache results/cache/bp4d --settings \"$(cat settings.json)\" "
                    "--runs 1:3407 --out /tmp/pretrain",
        "embed": "aunce embed --cache results/cache/bp4d --models /tmp/pretrain --settings "
                 "\"$(cat settings.json)\" --runs 1:3407 --out /tmp/embed",
        "linear-eval": "aunce linear-eval --embeddings /tmp/embed --settings \"$(cat settings.json)\" "
                       "--folds 1,2,3 --seeds 3407 --out /tmp/eval",
    }  # fmt: skip
    for name, func, helptext, description in (
        ("pretrain", cmd_pretrain, "pretrain encoders (stage 1)",
         "Pretrain one encoder per fold and seed with a method's loss (AUNCE, WCE, WFL or yours),\n"
         "writing encoder.pt, history.csv, timing.json and settings.json per run. Its log shows\n"
         "run i of N, each epoch's loss and frames/s, and the ETA of the run and the job."),
        ("embed", cmd_embed, "extract per-AU embeddings of frozen encoders",
         "Embed every frame of a dataset with each run's frozen encoder (embeddings.npz per run)."),
        ("linear-eval", cmd_linear_eval, "linear evaluation (stage 2)",
         "Train a per-AU linear head on frozen embeddings and score the test split (metrics.json,\n"
         "predictions.npz per run)."),
    ):  # fmt: skip
        p = _command(sub, name, func, helptext, description, [stage_examples[name]], step=True)
        if name in ("pretrain", "embed"):
            p.add_argument("--cache", required=True, type=Path, help="the dataset's cache folder")
        if name == "embed":
            p.add_argument("--models", required=True, type=Path, help="pretrain output root")
        if name == "linear-eval":
            p.add_argument("--embeddings", required=True, type=Path, help="embed output root")
            p.add_argument("--cache", type=Path, help="linear_eval.features augmented: the cache")
            p.add_argument(
                "--models", type=Path, help="linear_eval.features augmented: pretrain output root"
            )
        p.add_argument("--settings", required=True, type=_settings, help=SETTINGS_HELP)
        p.add_argument("--runs", type=_csv(str), help=RUNS_HELP)
        p.add_argument("--folds", type=_csv(str), help="with --seeds: every fold x seed, e.g. 1,2,3")
        p.add_argument("--seeds", type=_csv(int), help="with --folds: seeds, e.g. 3407,3408")
        p.add_argument("--out", required=True, type=Path, help="output root (fold-*/seed-*/ below)")
        if name == "pretrain":
            _allocation_argument(p)
            p.add_argument(
                "--checkpoints",
                type=Path,
                help="per-run checkpoints while the job runs (default: results/checkpoints/pretrain/"
                "... for an --out below results/pretrain, else OUT/checkpoints)",
            )

    p = _command(
        sub, "train-eval", cmd_train_eval, "pretrain, embed and evaluate in one process",
        "The three stages of one unit of work (a dataset, an encoder, a group of methods that need\n"
        "the same folds and seeds) in one process, paying the imports once (config fuse_stages,\n"
        "the CPU default). Its log shows run i of N and the ETA of the run and the job.",
        ["aunce train-eval --cache results/cache/bp4d --settings \"$(cat unit.json)\" "
         "--runs 1:3407,2:3407 --results results --cell bp4d/megraph"],
        step=True,
    )  # fmt: skip
    p.set_defaults(folds=None, seeds=None)
    p.add_argument("--cache", required=True, type=Path, help="the dataset's cache folder")
    p.add_argument("--settings", required=True, type=_settings,
                   help="per method, its pretrain, embed and linear_eval settings (JSON)")  # fmt: skip
    p.add_argument("--runs", required=True, type=_csv(str), help=RUNS_HELP)
    p.add_argument("--results", required=True, type=Path, help="the results folder")
    p.add_argument("--cell", required=True, help="<dataset>/<encoder> below each stage")
    _allocation_argument(p)

    p = _command(
        sub, "population", cmd_population,
        "generate the warm-start population (unlabelled synthetic faces)",
        "Render the unlabelled faces the warm start trains on: subjects no dataset has\n"
        "(docs/warmstart.md). The workflow's `warm_population` rule runs it.",
        ["aunce population --out /tmp/population --n-subjects 8 --frames-per-subject 4"],
        step=True,
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="the population folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the population (default 0)")
    p.add_argument("--n-subjects", type=int, default=300, help="subjects (default 300)")
    p.add_argument("--frames-per-subject", type=int, default=8, help="frames per subject (default 8)")
    p.add_argument("--image-size", type=int, default=64, help="rendered side in pixels")
    p.add_argument("--aligned-size", type=int, default=256, help="aligned side (the cache size)")
    p.add_argument("--workers", type=int, help="processes (default: one per core)")

    p = _command(
        sub, "warmstart", cmd_warmstart, "pretrain an encoder's backbone on the population",
        "Train a tiny encoder's backbone once by instance discrimination on the population: the\n"
        "stand-in for ImageNet weights (docs/warmstart.md). Its log shows each epoch and the ETA.",
        ["aunce warmstart --population results/warmstart/population --settings "
         "\"$(cat warm.json)\" --out /tmp/warm/megraph"],
        step=True,
    )  # fmt: skip
    p.add_argument("--population", required=True, type=Path, help="`aunce population` output")
    p.add_argument("--settings", required=True, type=_settings, help=SETTINGS_HELP)
    p.add_argument("--out", required=True, type=Path, help="writes backbone.pt, history.csv, ...")

    p = _command(
        sub, "tables", cmd_tables, "render one table as Markdown and LaTeX",
        "Build one table from its runs' metrics files, as Markdown, LaTeX and CSV, with the paired\n"
        "tests between this run's methods (docs/tables.md, docs/report.md).",
        ["aunce tables table2 --spec \"$(cat table2.json)\" --md t2.md --tex t2.tex --csv t2.csv"],
        step=True,
    )  # fmt: skip
    p.add_argument("table", help="table id, e.g. table2")
    p.add_argument(
        "--spec", required=True, type=_settings, help="table spec with its inputs (JSON)"
    )
    p.add_argument("--md", required=True, type=Path, help="the Markdown table to write")
    p.add_argument("--tex", required=True, type=Path, help="the LaTeX table to write")
    p.add_argument("--csv", required=True, type=Path, help="the numbers as CSV")
    p.add_argument(
        "--significance", type=Path, help="paired tests between this run's methods (CSV)"
    )

    p = _command(
        sub, "cross-eval", cmd_cross_eval, "evaluate source-dataset models on a target dataset",
        "Evaluate encoders pretrained on one dataset on another (Tables 4 and 7).",
        ["aunce cross-eval --source results/cache/bp4d --target results/cache/gft --models "
         "results/pretrain/bp4d/megraph --settings \"$(cat cross.json)\" --out /tmp/cross"],
        step=True,
    )  # fmt: skip
    p.add_argument("--source", required=True, type=Path, help="source cache")
    p.add_argument("--target", required=True, type=Path, help="target cache")
    p.add_argument("--models", required=True, type=Path, help="results/pretrain/<source>/<encoder>")
    p.add_argument(
        "--settings", required=True, type=_settings, help="{method: {settings, runs: [sf:tf:seed]}}"
    )
    p.add_argument("--out", required=True, type=Path, help="results/cross/<src>-to-<tgt>/<encoder>")

    p = _command(
        sub, "figure", cmd_figure, "render one figure (fig5 t-SNE, fig6 beta sweep)",
        "Draw one figure from its runs' outputs: PNG, its numbers as CSV, and a Markdown page.",
        ["aunce figure fig6 --spec \"$(cat fig6.json)\" --png fig6.png --csv fig6.csv --md fig6.md"],
        step=True,
    )  # fmt: skip
    p.add_argument("figure", help="figure id, e.g. fig6")
    p.add_argument("--spec", required=True, type=_settings, help="figure spec with its inputs (JSON)")
    p.add_argument("--png", required=True, type=Path, help="the figure to write")
    p.add_argument("--csv", required=True, type=Path, help="its numbers as CSV")
    p.add_argument("--md", required=True, type=Path, help="a Markdown page of it")

    p = _command(
        sub, "tsne-sample", cmd_tsne_sample,
        "save the test frames a t-SNE panel draws from a run's embeddings",
        "Keep a fixed sample of a run's test embeddings for Fig. 5, so the embeddings can go.",
        ["aunce tsne-sample --embeddings embeddings.npz --n-points 20 --seed 1 --out tsne.npz"],
        step=True,
    )  # fmt: skip
    p.add_argument("--embeddings", required=True, type=Path, help="a run's embeddings.npz")
    p.add_argument("--n-points", required=True, type=int, help="test frames to keep")
    p.add_argument("--seed", required=True, type=int, help="seed of the draw")
    p.add_argument("--out", required=True, type=Path, help="the sample to write (.npz)")

    p = _command(
        sub, "plan", cmd_plan,
        "what a config runs: jobs, runs per table and shared, GPU-hours, disk (no torch)",
        "Before a long run: the jobs, pretraining runs and cross-dataset evaluations of every\n"
        "table, which runs tables share, GPU-hours (measured in this results folder where it can,\n"
        "else the paper's Table 9) and the disk the outputs take (docs/tables.md, \"Planning\").",
        ["aunce plan --configfile config/config.yaml",
         "aunce plan --configfile config/paper.yaml my_roots.yaml --rates gpu-rates.csv",
         "aunce plan --configfile config/smoke.yaml --json"],
    )  # fmt: skip
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
    p.add_argument(
        "--variance",
        type=Path,
        help="a finished run's verdicts.checks.csv whose spread sizes the power section (default: "
        "the results folder's, else the paper's printed standard deviations)",
    )
    p.add_argument("--json", action="store_true", help="the numbers as JSON")

    p = _command(
        sub, "status", cmd_status,
        "where a run is: each job's state, progress and ETA, and the expected end",
        "Read a run's folder (running or finished) and print each job: done (and how long it\n"
        "took), running (run i of N, epoch, ETA from its log), waiting (estimated from the plan\n"
        "and this folder's finished jobs), interrupted or failed; then the expected end.\n"
        "Nothing is changed. `make status` runs it on the folder `make run` uses.",
        ["aunce status", "aunce status runs/smoke", "aunce status results --brief",
         "watch -n 10 aunce status --brief"],
    )  # fmt: skip
    p.add_argument("folder", nargs="?", type=Path, default=Path("."),
                   help="the folder the run works in, or its results/ (default: this folder)")  # fmt: skip
    p.add_argument("--brief", action="store_true",
                   help="list only the jobs not done (and count the others)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="everything as JSON")

    p = _command(
        sub, "report", cmd_report, "write results/report.md",
        "Gather the verdicts, every table and figure, the audit, the deviations and provenance\n"
        "into one Markdown report (docs/report.md).",
        ["aunce report --spec \"$(cat report.json)\" --out results/report.md"],
        step=True,
    )  # fmt: skip
    p.add_argument("--spec", required=True, type=_settings, help="the report's spec (JSON)")
    p.add_argument("--out", required=True, type=Path, help="the report to write")

    p = _command(
        sub, "verdicts", cmd_verdicts,
        "judge the paper's claims on a finished run (run in its folder; Markdown to stdout "
        "unless an output is given)",
        "For each claim of the paper (baselines/claims.yaml), what the run measured, the paired\n"
        "test over folds and seeds, and supported, contradicted or inconclusive (docs/report.md).",
        ["aunce verdicts", "aunce verdicts --config runs/smoke/results/config.yaml --csv v.csv"],
    )  # fmt: skip
    p.add_argument("--config", type=Path, default=Path("results/config.yaml"),
                   help="the run's resolved config (default: results/config.yaml)")  # fmt: skip
    p.add_argument("--claims", type=Path, help="default: the project's baselines/claims.yaml")
    p.add_argument("--published", type=Path, help="default: the project's published.csv")
    p.add_argument("--md", type=Path, help="the verdicts as Markdown")
    p.add_argument("--csv", type=Path, help="one row per verdict")
    p.add_argument("--checks", type=Path, help="one row per comparison behind the verdicts")
    p.add_argument("--html", type=Path, help="the verdict table as an HTML fragment")

    p = _command(
        sub, "report-page", cmd_report_page, "a Markdown file as one HTML page, images embedded",
        "Turn a Markdown file into one self-contained HTML page (Snakemake's HTML report).",
        ["aunce report-page --md results/report.md --out /tmp/report.html"],
        step=True,
    )  # fmt: skip
    p.add_argument("--md", required=True, type=Path, help="the Markdown file")
    p.add_argument("--out", required=True, type=Path, help="the HTML page to write")

    p = _command(
        sub, "contact-sheet", cmd_contact_sheet,
        "a PNG grid of synthetic faces with their active AUs",
        "Draw faces of a generated dataset, or of a small one generated for the purpose, with the\n"
        "AUs active under each (the pictures of docs/synthetic.md).",
        ["aunce contact-sheet --profile bp4d --out /tmp/bp4d.png",
         "aunce contact-sheet --data results/data/bp4d --out /tmp/bp4d.png -n 12"],
    )  # fmt: skip
    p.add_argument("--data", type=Path, help="a generated dataset folder")
    p.add_argument("--profile", help="generate a small dataset of this profile first")
    p.add_argument("--out", required=True, type=Path, help="the PNG to write")
    p.add_argument("-n", type=int, default=24, help="faces on the sheet")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice (and of the dataset)")

    p = _command(
        sub, "write-config", cmd_write_config, "save the resolved configuration as YAML",
        "Write the run's configuration, defaults filled in, as results/config.yaml.",
        ["aunce write-config --settings '{\"seeds\": [1]}' --out /tmp/config.yaml"],
        step=True,
    )  # fmt: skip
    p.add_argument("--settings", required=True, type=_settings, help="the configuration (JSON)")
    p.add_argument("--out", required=True, type=Path, help="the YAML file to write")

    p = _command(
        sub, "check-config", cmd_check_config,
        "validate config files (merged in order) against the schema",
        "Run every check the Snakefile runs before any job, without Snakemake: the schema (an\n"
        "unknown key gets a \"did you mean\"), values across keys, the plan of every table, one\n"
        "call of each loss of yours, and the folders the run writes into. One line per problem.",
        ["aunce check-config config/config.yaml",
         "aunce check-config config/smoke.yaml config/mine.yaml"],
    )  # fmt: skip
    p.add_argument("config", type=Path, nargs="+",
                   help="config files, merged in order (an overlay after its base)")  # fmt: skip
    p.add_argument("--schema", type=Path, help="config schema (default config/schema.yaml)")

    p = _command(
        sub, "verify", cmd_verify,
        "check a results folder's files against their SHA-256; exit 2 if one is damaged",
        "Checks every checkpoint, encoder.pt, embeddings file and warm start that has a .sha256\n"
        "beside it, and every cache in full (docs/recovery.md). With --fix, each damaged file is\n"
        "removed and each damaged cache marked, so that the next `make run` makes them again.",
        ["aunce verify", "aunce verify runs/smoke/results --fix"],
    )  # fmt: skip
    p.add_argument("results", type=Path, nargs="?", default=Path("results"),
                   help="the results folder (default: results)")  # fmt: skip
    p.add_argument(
        "--fix",
        action="store_true",
        help="remove each damaged file and its .sha256, and mark each damaged cache damaged, so "
        "that the next `make run` makes them again (and reruns what was made from them)",
    )

    p = _command(
        sub, "unlock-stale", cmd_unlock_stale,
        "remove Snakemake's lock of a folder when no Snakemake or job of it runs there",
        "After a crash or a kill, Snakemake's lock stays and the next run stops with\n"
        "LockException. This removes it only when no Snakemake, and no job of one, works in the\n"
        "folder on this machine (docs/recovery.md). `make run` runs it first.",
        ["aunce unlock-stale", "aunce unlock-stale --directory runs/smoke"],
    )  # fmt: skip
    p.add_argument("--directory", type=Path, default=Path("."), help="the workflow's folder")

    p = _command(
        sub, "audit", cmd_audit,
        "list published averages that differ from the mean of their per-AU F1, then rows "
        "of one model printed with different averages",
        "Check the paper's printed numbers (baselines/published.csv): two CSV blocks.",
        ["aunce audit baselines/published.csv"],
    )  # fmt: skip
    p.add_argument("published", type=Path, help="baselines/published.csv")
    return parser


class Terminated(BaseException):
    """SIGTERM (SLURM's time limit or preemption, Snakemake stopping): the step stops where it is.

    A BaseException, as KeyboardInterrupt, so that no ``except Exception`` on the way swallows
    it; files are written atomically, so what was written before it is complete."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _saved() -> str:
    """The files this process wrote before it was stopped, in words (aunce.io.WRITTEN)."""
    from aunce.io import DIGEST_SUFFIX, WRITTEN

    files = [f for f in dict.fromkeys(WRITTEN) if not f.endswith(DIGEST_SUFFIX)]
    if not files:
        return "nothing was saved"
    shown = ", ".join(files[-5:])
    more = f" (the last 5 of {len(files)})" if len(files) > 5 else ""
    return f"saved before it, each file complete: {shown}{more}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    import signal
    import threading

    from aunce.io import WRITTEN

    WRITTEN.clear()  # what this command saves (said on SIGTERM)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except Terminated:
        print(
            f"aunce {args.command}: error: received SIGTERM; stopped: {_saved()}; run the step "
            "again to finish it (make run)",
            file=sys.stderr,
        )
        return 2
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
