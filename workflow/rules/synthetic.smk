rule synthetic:
    """A synthetic experiment behind Figures 1-4, as one tidy parquet table."""
    output:
        "results/data/{experiment}.parquet",
    log:
        "results/logs/synthetic/{experiment}.log",
    benchmark:
        "results/benchmarks/synthetic/{experiment}.tsv"
    wildcard_constraints:
        experiment="apollonius|alternating|kappa",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        code=code("synthetic"),
        # kappas only choose Figure 4's panels, so changing them does not rerun the table
        config=lambda wildcards: inline_config(("synthetic", wildcards.experiment), exclude=("kappas",)),
    shell:
        "python -m unfolded synthetic {wildcards.experiment} --config {params.config}" " --out {output} > {log} 2>&1"
