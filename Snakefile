# aunce: the experiments of "Learning Contrastive Feature Representations for Facial Action Unit
# Detection" (AUNCE) as one DAG. Run:  snakemake all --cores 1 --resources gpu=1
# (`all` comes first: `--resources` takes several values and would swallow a target after it.)
from snakemake.utils import min_version

min_version("9.0")


# --configfile replaces the embedded default instead of extending it: a config file is complete.
if not workflow.configfiles:

    configfile: "config/config.yaml"



# snakemake --report results/report.html: the verdicts on its front page (report/ has the texts)
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/warmstart.smk"
include: "rules/pretrain.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,  # the resolved config, every table and figure, contact sheets, the report


# A job the config's `resources` cannot hold is named before anything runs (rules/common.smk, OVER);
# on a cluster the run stops here: such a job would be killed after hours of work.
onstart:
    if OVER and not workflow.local_exec:
        raise WorkflowError(
            f"{len(OVER)} job(s) need more than the config's `resources` allow; raise "
            "`resources.<stage>.mem_mb` / `runtime` to what your cluster permits "
            "(docs/cluster.md):\n  " + "\n  ".join(OVER[:20]) + ("\n  ..." if len(OVER) > 20 else "")
        )
