# Tables and the resolved configuration. Cheap jobs: run locally even on a cluster.


rule table:
    input:
        table_inputs,
    output:
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
        csv="results/tables/{table}.csv",
    params:
        spec=lambda wc: as_json(table_spec(wc.table)),
        code=CODE["tables"],
    log:
        "results/logs/tables/{table}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce tables {wildcards.table} --spec {params.spec:q} "
        "--md {output.md} --tex {output.tex} --csv {output.csv} > {log} 2>&1"


rule resolved_config:
    output:
        "results/config.yaml",
    params:
        config=as_json(config),
    log:
        "results/logs/config.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce write-config --settings {params.config:q} --out {output} > {log} 2>&1"
