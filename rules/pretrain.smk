# Stage 1: pretraining. Per (dataset, encoder) one rule per unit of work (see `units` in
# common.smk): with granularity 'cell' one job trains every fold and seed a group of methods needs;
# with 'run' one job per fold and seed. Each run writes
# results/pretrain/<ds>/<enc>/<method>/fold-F/seed-S/{encoder.pt,timing.json,history.csv,settings.json}
# and encoder.pt.sha256, the content hash every job that loads encoder.pt checks.

# encoder.pt is a temp() file unless kept (config `keep`): the methods of a unit whose runs keep
# different files get a rule each (`_kept` suffix), since {method} shares one declaration.
for _ds, _enc in CELLS:
    for _tag, _runs, _methods, _kept in pretrain_units(_ds, _enc):
        _models = run_files("pretrain", _ds, _enc, _runs, "encoder.pt", _methods, _kept)

        rule:
            name:
                f"pretrain_{_ds}_{_enc}_{_tag}"
            input:
                cache=cache_input(_ds, _enc),
                warm=warm_input(_enc),
            output:
                models=_models,
                model_digests=digests(_models),
                timing=run_files("pretrain", _ds, _enc, _runs, "timing.json", _methods),
                history=run_files("pretrain", _ds, _enc, _runs, "history.csv", _methods),
            params:
                cache=folder_of("cache"),
                settings=lambda wc, ds=_ds, enc=_enc: settings_file(
                    "pretrain", pretrain_settings(ds, enc, wc.method)
                ),
                runs=runs_arg(_runs),
                out=lambda wc, ds=_ds, enc=_enc: f"results/pretrain/{ds}/{enc}/{wc.method}",
                code=lambda wc: f"{CODE['pretrain']};{loss_code(wc.method)}",
            log:
                f"results/logs/pretrain/{_ds}/{_enc}/{{method}}/{_tag}.log",
            benchmark:
                f"results/benchmarks/pretrain/{_ds}/{_enc}/{{method}}/{_tag}.tsv"
            threads: stage_threads("pretrain")
            resources:
                **stage_resources("pretrain", gpu=True, rule=f"pretrain_{_ds}_{_enc}_{_tag}",
                                  by="method"),
                **chain_resources(f"pretrain_{_ds}_{_enc}_{_tag}", by="method"),
            retries: chain_retries(f"pretrain_{_ds}_{_enc}_{_tag}", _methods)
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce pretrain --cache {params.cache:q} --settings {params.settings:q} "
                "--runs {params.runs:q} --out {params.out:q} "
                "--allocation {resources.allocation:q}/{resources.allocations:q} "
                "--checkpoint-lead {resources.checkpoint_lead:q} > {log:q} 2>&1"


# fuse_stages (the CPU default): one process per unit pretrains, embeds and evaluates every method
# of the unit, paying the imports once (BENCHMARKS.md, "Workflow overhead").
for _ds, _enc in CELLS if config["fuse_stages"] else []:
    for _tag, _runs, _methods in units(_ds, _enc, "evaluated"):
        _models = encoder_files(_ds, _enc, _runs, _methods)
        _embeddings = embedding_files(
            fused_files("embed", _ds, _enc, _runs, "embeddings.npz", _methods)
        )

        rule:
            name:
                f"train_eval_{_ds}_{_enc}_{_tag}"
            input:
                cache=cache_input(_ds, _enc),
                warm=warm_input(_enc),
            output:
                models=_models,
                model_digests=digests(_models),
                timing=fused_files("pretrain", _ds, _enc, _runs, "timing.json", _methods),
                history=fused_files("pretrain", _ds, _enc, _runs, "history.csv", _methods),
                embeddings=_embeddings,
                embedding_digests=digests(_embeddings),
                metrics=fused_files("eval", _ds, _enc, _runs, "metrics.json", _methods),
                predictions=fused_files("eval", _ds, _enc, _runs, "predictions.npz", _methods),
            params:
                cache=folder_of("cache"),
                settings=lambda wc, ds=_ds, enc=_enc, methods=_methods: settings_file(
                    "train_eval",
                    {m: {"pretrain": pretrain_settings(ds, enc, m),
                         "embed": embed_settings(ds, enc, m),
                         "linear_eval": linear_eval_settings(ds, enc, m)} for m in methods},
                ),
                runs=runs_arg(_runs),
                cell=f"{_ds}/{_enc}",
                code=";".join([CODE["train_eval"], *(loss_code(m) for m in _methods)]),
            log:
                f"results/logs/train_eval/{_ds}/{_enc}/{_tag}.log",
            benchmark:
                f"results/benchmarks/train_eval/{_ds}/{_enc}/{_tag}.tsv"
            threads: stage_threads("pretrain")
            resources:
                **stage_resources("pretrain", gpu=True, rule=f"train_eval_{_ds}_{_enc}_{_tag}"),
                **chain_resources(f"train_eval_{_ds}_{_enc}_{_tag}"),
            retries: chain_retries(f"train_eval_{_ds}_{_enc}_{_tag}")
            conda:
                "../envs/aunce.yaml"
            shell:
                "aunce train-eval --cache {params.cache:q} --settings {params.settings:q} "
                "--runs {params.runs:q} --results results --cell {params.cell:q} "
                "--allocation {resources.allocation:q}/{resources.allocations:q} "
                "--checkpoint-lead {resources.checkpoint_lead:q} > {log:q} 2>&1"
