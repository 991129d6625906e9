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
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("report"),
    shell:
        "python -m unfolded report-pages --tables results/tables --landing {output.landing} > {log} 2>&1"
