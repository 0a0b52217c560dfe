# Stage 1: pretraining. One rule per unit of work (see `units` in common.smk): with granularity
# 'cell' one job trains every fold and seed of a (dataset, encoder, method) cell; with 'run' one
# job per fold and seed. Either way each run writes results/pretrain/<ds>/<enc>/<method>/fold-F/seed-S/.

for _ds in TRAINABLE:
    for _tag, _folds, _seeds in units(_ds):

        rule:
            name:
                f"pretrain_{_ds}_{_tag}"
            input:
                cache=f"results/cache/{_ds}",
            output:
                models=run_files("pretrain", _ds, _folds, _seeds, "encoder.pt"),
                timing=run_files("pretrain", _ds, _folds, _seeds, "timing.json"),
            params:
                settings=lambda wc, ds=_ds: as_json(pretrain_settings(ds, wc.encoder, wc.method)),
                folds=",".join(_folds),
                seeds=",".join(map(str, _seeds)),
                out=stage_root("pretrain", _ds),
                code=CODE["pretrain"],
            log:
                f"results/logs/pretrain/{_ds}/{{encoder}}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/pretrain/{_ds}/{{encoder}}/{{method}}/{_tag}.tsv"
            resources:
                gpu=1,
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce pretrain --cache {input.cache} --settings {params.settings:q} "
                "--folds {params.folds} --seeds {params.seeds} --out {params.out} > {log} 2>&1"
