rule claims:
    """Check every claim of unfolded.claims: trials, violations, largest energy increase."""
    output:
        csv=report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        markdown="results/tables/claims.md",
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
        "python -m unfolded claims --config {params.config}"
        " --csv {output.csv} --markdown {output.markdown} > {log} 2>&1"
