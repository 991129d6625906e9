rule claims:
    """Check every claim of unfolded.claims: trials, violations, largest energy increase."""
    output:
        csv=report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        provenance="results/tables/claims.provenance.json",
    log:
        "results/logs/claims.log",
    benchmark:
        "results/benchmarks/claims.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code("claims"),
        config=inline_config(("claims",)),
    shell:
        "python -m unfolded claims --config {params.config}" " --csv {output.csv} > {log} 2>&1"


rule claims_page:
    """The claims table as Markdown, with what was run and which claims failed."""
    input:
        csv=rules.claims.output.csv,
        provenance=rules.claims.output.provenance,
    output:
        "results/tables/claims.md",
    log:
        "results/logs/claims_page.log",
    benchmark:
        "results/benchmarks/claims_page.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("page"),
    shell:
        "python -m unfolded page claims --csv {input.csv} --markdown {output} > {log} 2>&1"
