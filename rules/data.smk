# Data: synthetic generation (when a dataset is a stand-in) and the aligned uint8 cache.


rule synthesize:
    output:
        directory("results/data/{dataset}"),
    params:
        args=lambda wc: synth_args(wc.dataset),
        code=CODE["data"],
    log:
        "results/logs/data/{dataset}.synthesize.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data", rule="synthesize", by="dataset"),
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce synth --out {output} --workers {threads} {params.args} > {log} 2>&1"


rule cache:
    input:
        cache_source,
    output:
        directory("results/cache/{dataset}"),
    params:
        args=cache_args,
        code=CODE["data"],
    log:
        "results/logs/data/{dataset}.cache.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data", rule="cache", by="dataset"),
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce cache --out {output} --workers {threads} {params.args} > {log} 2>&1"


# An encoder with its own image geometry (JA-Net: 200 px faces) reads a cache of that size; the
# others share results/cache/<dataset> at image.cache_size.
use rule cache as cache_sized with:
    output:
        directory("results/cache/{dataset}-{size}px"),
    resources:
        **stage_resources("data", rule="cache_sized", by="dataset"),
    log:
        "results/logs/data/{dataset}-{size}px.cache.log",
    wildcard_constraints:
        size=r"\d+",


rule contact_sheet:
    input:
        "results/data/{dataset}",
    output:
        "results/figures/contact_{dataset}.png",
    log:
        "results/logs/figures/contact_{dataset}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce contact-sheet --data {input} --out {output} > {log} 2>&1"
