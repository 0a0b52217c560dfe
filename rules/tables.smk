# Tables, figures, the report and the resolved configuration. Cheap jobs: run locally even on a
# cluster. Each table or figure job reads exactly the files its spec (aunce.plan) names.


rule table:
    input:
        table_inputs,
    output:
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
        csv="results/tables/{table}.csv",
        significance="results/tables/{table}.significance.csv",
    params:
        spec=lambda wc: as_json(table_spec(wc.table)),
        code=CODE["tables"],
    log:
        "results/logs/tables/{table}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce tables {wildcards.table} --spec {params.spec:q} --md {output.md} --tex {output.tex} "
        "--csv {output.csv} --significance {output.significance} > {log} 2>&1"


rule figure:
    input:
        table_inputs,
    output:
        png="results/figures/{figure}.png",
        csv="results/figures/{figure}.csv",
        md="results/figures/{figure}.md",
    params:
        spec=lambda wc: as_json(table_spec(wc.figure)),
        code=CODE["figures"],
    log:
        "results/logs/figures/{figure}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce figure {wildcards.figure} --spec {params.spec:q} --png {output.png} "
        "--csv {output.csv} --md {output.md} > {log} 2>&1"


rule report:
    input:
        REPORT_INPUTS,
    output:
        "results/report.md",
    params:
        spec=as_json(report_spec()),
        code=CODE["report"],
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce report --spec {params.spec:q} --out {output} > {log} 2>&1"


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
