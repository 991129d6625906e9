# The HTML report (`snakemake --report results/report.html`): a landing page with the verdicts and
# key numbers, and the result tables as HTML pages shown inside the report.


rule report_pages:
    """Landing page (verdict counts, Figures 5-6 and accuracy key numbers, commit) and in-page tables."""
    input:
        claims=rules.claims.output.csv,
        summary=rules.energy_summary.output.csv,
        accuracy=rules.accuracy.output.summary,
    output:
        landing="results/report/landing.rst",
        claims=report("results/tables/claims.html", caption="../report/claims.rst", category="Claims"),
        summary=report(
            "results/tables/energy_summary.html", caption="../report/energy_summary.rst", category="Figures 5-6"
        ),
        accuracy=report("results/tables/accuracy.html", caption="../report/accuracy.rst", category="Training"),
    log:
        "results/logs/report_pages.log",
    benchmark:
        "results/benchmarks/report_pages.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("report-pages"),
    shell:
        "python -m unfolded report-pages --tables results/tables --landing {output.landing} > {log} 2>&1"


# The README's and the docs pages' generated blocks (unfolded.report.blocks), one file each under
# results/documents/ (DOCUMENTS, common.smk); `make readme` splices them into the documents.
rule documents:
    """Every generated block of the README and the docs pages, from the default run's tables, the jobs'
    benchmark files and the study archive."""
    input:
        claims=rules.claims.output.csv,
        claims_provenance=rules.claims.output.provenance,
        energy=rules.energy_summary.output.csv,
        curves=expand(rules.energy_curves.output[0], dataset=config["datasets"]),
        plugins=expand(rules.energy_plugins.output[0], dataset=config["datasets"]),
        regime=rules.regime_search.output.csv,
        regime_provenance=rules.regime_search.output.provenance,
        accuracy=rules.accuracy.output.summary,
        synthetic=expand(rules.synthetic.output[0], experiment=("apollonius", "alternating", "kappa")),
        archive=archive_files(),
        recall=recall_files(),
        realdata=realdata_files(),
        energies=energies_files(),
        study_config="config/study.yaml",
        benchmarks=lambda wildcards: timed_jobs(),
    output:
        DOCUMENTS,
    log:
        "results/logs/documents.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("documents"),
        config=inline_config(("study",), ("synthetic", "kappa", "kappas")),
        blocks=document_blocks(),
    shell:
        "python -m unfolded documents --config {params.config} --tables results/tables --data results/data"
        " --archive results/archive --study-config {input.study_config} --benchmarks {input.benchmarks}"
        " --energy-curves {input.curves} --plugin-curves {input.plugins} --blocks {params.blocks} --out results/documents > {log} 2>&1"
