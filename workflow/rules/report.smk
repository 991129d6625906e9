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
# results/documents/; `make readme` splices them into the documents. The study blocks need the study
# archive (results/archive/<study.id>), and are left out where it is absent.
STUDY_BLOCKS = ("study", "study-headline")


def document_blocks():
    have_archive = os.path.exists(f"{ARCHIVE}/provenance.json")
    return [name for name in RUN_BLOCKS if have_archive or name not in STUDY_BLOCKS]


DOCUMENTS = [f"results/documents/{name}.md" for name in document_blocks()]


def archive_files():
    """The study archive and its follow-up checks (every archive folder: a check names its study inside)."""
    if not os.path.exists(f"{ARCHIVE}/provenance.json"):
        return []
    return sorted(
        f"results/archive/{folder}/{name}"
        for folder in os.listdir("results/archive")
        if os.path.exists(f"results/archive/{folder}/provenance.json")
        for name in ("provenance.json", *ARCHIVE_TABLES)
    )


def timed_jobs():
    """The benchmark file of every timed job the default run makes: the runtime blocks quote them."""
    per_dataset = {"fig5_energy_untrained", "fig6_energy_trained"} & set(config["figures"]["include"])
    files = [
        rules.claims.benchmark,
        *expand(rules.synthetic.benchmark, experiment=("apollonius", "alternating", "kappa")),
        *[f"results/benchmarks/figures/{name}.tsv" for name in figure_names(synthetic=True)],
        *expand(rules.energy_figure.benchmark, figure=sorted(per_dataset), dataset=config["datasets"]),
        *expand(
            rules.training_figure.benchmark,
            figure=("fig_accuracy", "fig_training_curves", "fig_depth_extrapolation"),
        ),
        *run_outputs(rules.train.benchmark),
        *expand(rules.energy_curves.benchmark, dataset=config["datasets"]),
        rules.energy_curves_table.benchmark,
        rules.energy_summary.benchmark,
        rules.regime_search.benchmark,
        rules.regime_page.benchmark,
        rules.claims_page.benchmark,
        rules.accuracy.benchmark,
        rules.depth.benchmark,
        rules.report_pages.benchmark,
    ]
    if config["train"]["linear_probe"]:
        files += expand(rules.probe.benchmark, dataset=config["train"]["datasets"] or config["datasets"])
    return files


rule documents:
    """Every generated block of the README and the docs pages, from the default run's tables, the jobs'
    benchmark files and the study archive."""
    input:
        claims=rules.claims.output.csv,
        claims_provenance=rules.claims.output.provenance,
        energy=rules.energy_summary.output.csv,
        curves=expand(rules.energy_curves.output[0], dataset=config["datasets"]),
        regime=rules.regime_search.output.csv,
        regime_provenance=rules.regime_search.output.provenance,
        accuracy=rules.accuracy.output.summary,
        synthetic=expand(rules.synthetic.output[0], experiment=("apollonius", "alternating", "kappa")),
        archive=archive_files(),
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
        " --energy-curves {input.curves} --blocks {params.blocks} --out results/documents > {log} 2>&1"
