# The warm start (docs/warmstart.md): a stand-in for ImageNet weights. One population of unlabelled
# synthetic faces (subjects no dataset has), then one job per encoder with `pretrained: warm` that
# trains its backbone by instance discrimination; every pretraining run of that encoder starts from
# results/warmstart/<encoder>/backbone.pt (an input of its pretrain / train_eval jobs, with its
# SHA-256 sidecar backbone.pt.sha256, checked by every job that loads it).


rule warm_population:
    output:
        directory("results/warmstart/population"),
    params:
        args=warm_population_args(),
        code=CODE["data"],
    log:
        "results/logs/warmstart/population.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data", rule="warm_population"),
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce population --out {output:q} --workers {threads} {params.args:q} > {log:q} 2>&1"


rule warmstart:
    wildcard_constraints:
        encoder=alternatives(WARM_ENCODERS),
    input:
        population="results/warmstart/population",
    output:
        weights="results/warmstart/{encoder}/backbone.pt",
        digest="results/warmstart/{encoder}/backbone.pt.sha256",
        history="results/warmstart/{encoder}/history.csv",
    params:
        settings=lambda wc: settings_file("warmstart", warm_start_settings(wc.encoder)),
        out=lambda wc: f"results/warmstart/{wc.encoder}",
        code=CODE["warmstart"],
    log:
        "results/logs/warmstart/{encoder}.log",
    benchmark:
        "results/benchmarks/warmstart/{encoder}.tsv"
    threads: stage_threads("pretrain")
    resources:
        **stage_resources("pretrain", gpu=True, rule="warmstart", by="encoder"),
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce warmstart --population {input.population:q} --settings {params.settings:q} "
        "--out {params.out:q} > {log:q} 2>&1"
