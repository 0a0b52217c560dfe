# Tables, figures, the verdicts, the report and the resolved configuration. Cheap jobs: run locally
# even on a cluster. Each table or figure job reads exactly the files its spec (aunce.plan) names.
# Outputs marked report() make Snakemake's HTML report (snakemake --report results/report.html):
# one category per table or figure, captions from its spec (report/*.rst), the verdicts up front.


rule table:
    input:
        table_inputs,
    output:
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/table.rst",
            category=lambda wc: report_category(wc.table),
            labels=lambda wc: report_labels(wc.table, "numbers (CSV)"),
        ),
        significance="results/tables/{table}.significance.csv",
    params:
        spec=lambda wc: settings_file("table", table_spec(wc.table)),
        caption=lambda wc: report_caption(wc.table),
        code=CODE["tables"],
    log:
        "results/logs/tables/{table}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce tables {wildcards.table:q} --spec {params.spec:q} --md {output.md:q} "
        "--tex {output.tex:q} --csv {output.csv:q} --significance {output.significance:q} "
        "> {log:q} 2>&1"


rule figure:
    input:
        table_inputs,
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/table.rst",
            category=lambda wc: report_category(wc.figure),
            labels=lambda wc: report_labels(wc.figure, "figure (PNG)"),
        ),
        csv="results/figures/{figure}.csv",
        md="results/figures/{figure}.md",
    params:
        spec=lambda wc: settings_file("figure", table_spec(wc.figure)),
        caption=lambda wc: report_caption(wc.figure),
        code=CODE["figures"],
    log:
        "results/logs/figures/{figure}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce figure {wildcards.figure:q} --spec {params.spec:q} --png {output.png:q} "
        "--csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


rule report_page:
    input:
        unpack(page_source),
    output:
        report(
            "results/report/{page}.html",
            caption="../report/table.rst",
            category=lambda wc: report_category(wc.page),
            labels=lambda wc: report_labels(wc.page, "page (HTML)"),
        ),
    params:
        caption=lambda wc: report_caption(wc.page),
        code=CODE["pages"],
    log:
        "results/logs/report/{page}.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce report-page --md {input.md:q} --out {output:q} > {log:q} 2>&1"


rule verdicts:
    input:
        config="results/config.yaml",
        claims=CLAIMS,
        published=PUBLISHED,
        runs=VERDICT_INPUTS,
    output:
        md="results/verdicts.md",
        csv=report(
            "results/verdicts.csv",
            caption="../report/verdicts.rst",
            category=VERDICTS_CATEGORY,
            labels={"file": "one row per verdict (CSV)", "table": "verdicts"},
        ),
        checks=report(
            "results/verdicts.checks.csv",
            caption="../report/verdicts.rst",
            category=VERDICTS_CATEGORY,
            labels={"file": "one row per comparison (CSV)", "table": "verdicts"},
        ),
        html=report(
            "results/verdicts.html",
            caption="../report/verdicts.rst",
            category=VERDICTS_CATEGORY,
            labels={"file": "verdict table (HTML)", "table": "verdicts"},
        ),
    params:
        code=CODE["verdicts"],
    log:
        "results/logs/verdicts.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce verdicts --config {input.config:q} --claims {input.claims:q} "
        "--published {input.published:q} --md {output.md:q} --csv {output.csv:q} "
        "--checks {output.checks:q} --html {output.html:q} > {log:q} 2>&1"


rule report:
    input:
        REPORT_INPUTS,
    output:
        "results/report.md",
    params:
        spec=lambda wc: settings_file("report", report_spec()),
        code=CODE["report"],
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce report --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"


rule report_full_page:
    input:
        "results/report.md",
    output:
        report(
            "results/report/full-report.html",
            caption="../report/full.rst",
            category=FULL_REPORT_CATEGORY,
            labels={"file": "the whole Markdown report (HTML)", "table": "report.md"},
        ),
    params:
        code=CODE["pages"],
    log:
        "results/logs/report/full-report.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce report-page --md {input:q} --out {output:q} > {log:q} 2>&1"


rule resolved_config:
    output:
        "results/config.yaml",
    params:
        # keys in config order: the order of the tables names the plan's derived methods
        config=lambda wc: settings_file("config", config, sort_keys=False),
        code=CODE["config"],
    log:
        "results/logs/config.log",
    localrule: True
    conda:
        "../envs/aunce.yaml"
    shell:
        "aunce write-config --settings {params.config:q} --out {output:q} > {log:q} 2>&1"
