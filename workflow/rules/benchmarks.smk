# The benchmark scripts (benchmarks/) as rules outside the default run: `make benchmark` reruns them
# and renders the performance blocks of docs/performance.md and docs/paper-run.md from their outputs.


rule benchmark_ratios:
    """The speed targets, each measured side by side with its reference in one process."""
    output:
        "results/benchmarks/ratios.csv",
    log:
        "results/logs/benchmarks/ratios.log",
    conda:
        "../../environment.yml"
    threads: 1
    shell:
        "python benchmarks/ratios.py --out {output} > {log} 2>&1"


rule paper_estimate:
    """The cost estimate of the paper's configuration (docs/paper-run.md)."""
    output:
        "results/benchmarks/paper_estimate.md",
    log:
        "results/logs/benchmarks/paper_estimate.log",
    conda:
        "../../environment.yml"
    threads: 1
    shell:
        "python benchmarks/paper_estimate.py --out {output} > {log} 2>&1"


rule benchmark_documents:
    """The performance blocks of the docs, from the benchmark scripts' outputs."""
    input:
        ratios=rules.benchmark_ratios.output[0],
        estimate=rules.paper_estimate.output[0],
    output:
        [f"results/documents/{name}.md" for name in BENCHMARK_BLOCKS],
    log:
        "results/logs/benchmarks/documents.log",
    conda:
        "../../environment.yml"
    params:
        code=code("documents"),
    shell:
        "python -m unfolded documents --ratios {input.ratios} --paper-estimate {input.estimate}"
        " --out results/documents > {log} 2>&1"
