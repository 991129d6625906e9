# The table of contents of the replication. `snakemake --cores all` builds every target in config;
# `snakemake --cores all results/figures/fig3_alternating_energy.png` builds one figure.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/energy.smk"
include: "workflow/rules/recipes.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/benchmarks.smk"


# The report's landing page is generated from the results (rule report_pages); before that rule
# has run, a static description stands in.
report: LANDING_PAGE if os.path.exists(LANDING_PAGE) else "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
