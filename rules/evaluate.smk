# Stage 2: embeddings of the frozen encoders (extracted once), then linear evaluation with WCE.

for _ds in TRAINABLE:
    for _tag, _folds, _seeds in units(_ds):

        rule:
            name:
                f"embed_{_ds}_{_tag}"
            input:
                cache=f"results/cache/{_ds}",
                models=run_files("pretrain", _ds, _folds, _seeds, "encoder.pt"),
            output:
                run_files("embed", _ds, _folds, _seeds, "embeddings.npz"),
            params:
                settings=lambda wc, ds=_ds: as_json(embed_settings(ds, wc.encoder, wc.method)),
                folds=",".join(_folds),
                seeds=",".join(map(str, _seeds)),
                models=stage_root("pretrain", _ds),
                out=stage_root("embed", _ds),
                code=CODE["embed"],
            log:
                f"results/logs/embed/{_ds}/{{encoder}}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/embed/{_ds}/{{encoder}}/{{method}}/{_tag}.tsv"
            resources:
                gpu=1,
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce embed --cache {input.cache} --models {params.models} "
                "--settings {params.settings:q} --folds {params.folds} --seeds {params.seeds} "
                "--out {params.out} > {log} 2>&1"

        rule:
            name:
                f"linear_eval_{_ds}_{_tag}"
            input:
                run_files("embed", _ds, _folds, _seeds, "embeddings.npz"),
            output:
                metrics=run_files("eval", _ds, _folds, _seeds, "metrics.json"),
                predictions=run_files("eval", _ds, _folds, _seeds, "predictions.npz"),
            params:
                settings=lambda wc, ds=_ds: as_json(linear_eval_settings(ds, wc.encoder, wc.method)),
                folds=",".join(_folds),
                seeds=",".join(map(str, _seeds)),
                embeddings=stage_root("embed", _ds),
                out=stage_root("eval", _ds),
                code=CODE["linear_eval"],
            log:
                f"results/logs/eval/{_ds}/{{encoder}}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/eval/{_ds}/{{encoder}}/{{method}}/{_tag}.tsv"
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce linear-eval --embeddings {params.embeddings} --settings {params.settings:q} "
                "--folds {params.folds} --seeds {params.seeds} --out {params.out} > {log} 2>&1"
