# Data: synthetic generation (when a dataset is a stand-in) and the aligned uint8 cache.
# Every value in a command is quoted ({...:q}): a path with spaces or shell characters stays one
# argument.


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
        "aunce synth --out {output:q} --workers {threads} {params.args:q} > {log:q} 2>&1"


# The output is the cache's cache.json (written last). A cache found damaged gets a note beside it,
# <folder>.damaged.txt (aunce.data.cache.mark_damaged), an input newer than cache.json: the job
# runs again, and so does everything made from the cache. The job writes the folder.
rule cache:
    input:
        cache_source,
        damage_input,
    output:
        "results/cache/{dataset}/cache.json",
    params:
        out=cache_out,
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
        "aunce cache --out {params.out:q} --workers {threads} {params.args:q} > {log:q} 2>&1"


# An encoder with its own image geometry (JA-Net: 200 px faces) reads a cache of that size; the
# others share results/cache/<dataset> at image.cache_size.
use rule cache as cache_sized with:
    output:
        "results/cache/{dataset}-{size}px/cache.json",
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
    params:
        code=CODE["contact_sheet"],
    log:
        "results/logs/figures/contact_{dataset}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce contact-sheet --data {input:q} --out {output:q} > {log:q} 2>&1"
