# aunce: the experiments of "Learning Contrastive Feature Representations for Facial Action Unit
# Detection" (AUNCE) as one DAG. Run:  snakemake all --cores 1 --resources gpu=1
# (`all` comes first: `--resources` takes several values and would swallow a target after it.)
import os

from snakemake.utils import min_version

min_version("9.0")


# --configfile replaces the embedded default instead of extending it: a config file is complete.
# The default is the project's, also for a run in another folder (--directory).
if not workflow.configfiles:
    from os.path import isfile

    from snakemake.exceptions import WorkflowError

    from aunce import AunceError
    from aunce.config import load_yaml

    _DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
    try:  # a file that does not load: one line naming it and the line (a missing one: Snakemake's)
        if isfile(_DEFAULT_CONFIG):
            load_yaml(_DEFAULT_CONFIG)
    except AunceError as err:
        raise WorkflowError(str(err))

    configfile: _DEFAULT_CONFIG



# snakemake --report results/report.html: the verdicts on its front page (report/ has the texts)
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/warmstart.smk"
include: "rules/pretrain.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"


# Before the first job (not on a dry run; Snakemake keeps one onstart handler, so both are here):
# - a job the config's `resources` cannot hold is named before anything runs (rules/common.smk,
#   OVER); on a cluster the run stops: such a job would be killed after hours of work;
# - the settings this folder's results are made with are recorded (results/run.json): a later run
#   with other settings stops before any job (aunce.folder).
onstart:
    if OVER and not workflow.local_exec:
        raise WorkflowError(
            f"{len(OVER)} job(s) need more than the config's `resources` allow; raise "
            "`resources.<stage>.mem_mb` / `runtime` to what your cluster permits "
            "(docs/cluster.md):\n  " + "\n  ".join(OVER[:20]) + ("\n  ..." if len(OVER) > 20 else "")
        )
    record_run(VALIDATED_CONFIG, CONFIG_FILES)


rule all:
    default_target: True
    input:
        ALL_TARGETS,  # the resolved config, every table and figure, contact sheets, the report

