# Stage 2: embeddings of the frozen encoders (extracted once), then linear evaluation with WCE;
# and cross-dataset evaluation (a source model and a head trained on the source, tested on a target).
# encoder.pt and embeddings.npz come with their SHA-256 sidecars (checked when read).

for _ds, _enc in [] if config["fuse_stages"] else CELLS:
    for _tag, _runs, _methods in units(_ds, _enc, "evaluated"):
        _embeddings = embedding_files(run_files("embed", _ds, _enc, _runs, "embeddings.npz", _methods))

        rule:
            name:
                f"embed_{_ds}_{_enc}_{_tag}"
            input:
                cache=cache_input(_ds, _enc),
                models=with_digests(run_files("pretrain", _ds, _enc, _runs, "encoder.pt", methods=None)),
            output:
                embeddings=_embeddings,
                digests=digests(_embeddings),
            params:
                cache=folder_of("cache"),
                settings=lambda wc, ds=_ds, enc=_enc: settings_file(
                    "embed", embed_settings(ds, enc, wc.method)
                ),
                runs=runs_arg(_runs),
                models=lambda wc, ds=_ds, enc=_enc: f"results/pretrain/{ds}/{enc}/{wc.method}",
                out=lambda wc, ds=_ds, enc=_enc: f"results/embed/{ds}/{enc}/{wc.method}",
                code=CODE["embed"],
            log:
                f"results/logs/embed/{_ds}/{_enc}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/embed/{_ds}/{_enc}/{{method}}/{_tag}.tsv"
            threads: stage_threads("embed")
            resources:
                **stage_resources("embed", gpu=True, rule=f"embed_{_ds}_{_enc}_{_tag}", by="method"),
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce embed --cache {params.cache:q} --models {params.models:q} "
                "--settings {params.settings:q} --runs {params.runs:q} --out {params.out:q} "
                "> {log:q} 2>&1"

        rule:
            name:
                f"linear_eval_{_ds}_{_enc}_{_tag}"
            input:
                with_digests(run_files("embed", _ds, _enc, _runs, "embeddings.npz", methods=None)),
                **linear_eval_inputs(_ds, _enc, _runs),
            output:
                metrics=run_files("eval", _ds, _enc, _runs, "metrics.json", _methods),
                predictions=run_files("eval", _ds, _enc, _runs, "predictions.npz", _methods),
            params:
                settings=lambda wc, ds=_ds, enc=_enc: settings_file(
                    "linear_eval", linear_eval_settings(ds, enc, wc.method)
                ),
                runs=runs_arg(_runs),
                embeddings=lambda wc, ds=_ds, enc=_enc: f"results/embed/{ds}/{enc}/{wc.method}",
                out=lambda wc, ds=_ds, enc=_enc: f"results/eval/{ds}/{enc}/{wc.method}",
                augmented=lambda wc, ds=_ds, enc=_enc: linear_eval_args(ds, enc, wc.method),
                code=CODE["linear_eval"],
            log:
                f"results/logs/eval/{_ds}/{_enc}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/eval/{_ds}/{_enc}/{{method}}/{_tag}.tsv"
            threads: stage_threads("linear_eval")
            resources:
                **stage_resources("linear_eval", gpu=AUGMENTED_FEATURES,
                                  rule=f"linear_eval_{_ds}_{_enc}_{_tag}", by="method"),
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce linear-eval --embeddings {params.embeddings:q} --settings {params.settings:q} "
                "--runs {params.runs:q} --out {params.out:q} {params.augmented:q} > {log:q} 2>&1"


# One job per (source, target, encoder): every method, source fold and seed it needs, in one process.
for (_src, _tgt, _enc), _jobs in cross_jobs(PLAN).items():

    rule:
        name:
            f"cross_eval_{_src}_to_{_tgt}_{_enc}"
        input:
            source=cache_input(_src, _enc),
            target=cache_input(_tgt, _enc),
            models=with_digests(sorted({
                f"results/pretrain/{_src}/{_enc}/{m}/fold-{sf}/seed-{s}/encoder.pt"
                for m, triples in _jobs.items() for sf, _, s in triples
            })),
        output:
            [f"results/cross/{_src}-to-{_tgt}/{_enc}/{m}/fold-{sf}-on-{tf}/seed-{s}/metrics.json"
             for m, triples in sorted(_jobs.items()) for sf, tf, s in triples],
        params:
            source=folder_of("source"),
            target=folder_of("target"),
            settings=lambda wc, src=_src, tgt=_tgt, enc=_enc, jobs=_jobs: settings_file(
                "cross_eval",
                {m: {"settings": cross_settings(src, tgt, enc, m),
                     "runs": [f"{sf}:{tf}:{s}" for sf, tf, s in triples]}
                 for m, triples in jobs.items()},
            ),
            models=lambda wc, src=_src, enc=_enc: f"results/pretrain/{src}/{enc}",
            out=lambda wc, src=_src, tgt=_tgt, enc=_enc: f"results/cross/{src}-to-{tgt}/{enc}",
            code=CODE["cross_eval"],
        log:
            f"results/logs/cross/{_src}-to-{_tgt}/{_enc}.log",
        benchmark:
            f"results/benchmarks/cross/{_src}-to-{_tgt}/{_enc}.tsv"
        threads: stage_threads("cross_eval")
        resources:
            **stage_resources("cross_eval", gpu=True, rule=f"cross_eval_{_src}_to_{_tgt}_{_enc}"),
        conda:
            "../envs/aunce.yaml"
        shell:
            "aunce cross-eval --source {params.source:q} --target {params.target:q} "
            "--models {params.models:q} --settings {params.settings:q} --out {params.out:q} "
            "> {log:q} 2>&1"


# The test frames a t-SNE figure draws from a run's embeddings, kept when the embeddings are not
# (config `keep.embeddings`), so that Fig. 5 can be drawn again without embedding again.
rule tsne_sample:
    input:
        embeddings="results/embed/{dataset}/{encoder}/{method}/fold-{fold}/seed-{seed}/embeddings.npz",
        digest="results/embed/{dataset}/{encoder}/{method}/fold-{fold}/seed-{seed}/embeddings.npz.sha256",
    output:
        "results/embed/{dataset}/{encoder}/{method}/fold-{fold}/seed-{seed}/tsne_n{n}.npz",
    params:
        code=CODE["tsne_sample"],
    log:
        "results/logs/embed/{dataset}/{encoder}/{method}/fold-{fold}/seed-{seed}/tsne_n{n}.log",
    wildcard_constraints:
        fold=r"[^/]+",
        seed=r"\d+",
        n=r"\d+",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce tsne-sample --embeddings {input.embeddings:q} --n-points {wildcards.n:q} "
        "--seed {wildcards.seed:q} --out {output:q} > {log:q} 2>&1"
