ENERGY_SETTINGS = (("energy_curves",), ("data",), ("train", "width"), ("train", "accelerator"))


rule energy_curves:
    """Per-layer energies of test sequences, untrained (with and without ReLU) and trained."""
    input:
        fetched,
    output:
        "results/data/energy_curves_{dataset}.parquet",
    params:
        python=PYTHON,
        config=inline_config(*ENERGY_SETTINGS),
        checkpoints=lambda wildcards: checkpoint_dir(f"energy_curves/{wildcards.dataset}", *ENERGY_SETTINGS),
    log:
        "results/logs/energy_curves/{dataset}.log",
    benchmark:
        "results/benchmarks/energy_curves/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "{params.python} -m unfolded energy-curves --config {params.config} --dataset {wildcards.dataset}"
        " --out {output} --checkpoint-dir {params.checkpoints} --no-progress > {log} 2>&1"


rule energy_curves_table:
    """All datasets' energy curves in one tidy table."""
    input:
        expand("results/data/energy_curves_{dataset}.parquet", dataset=config["datasets"]),
    output:
        "results/data/energy_curves.parquet",
    params:
        python=PYTHON,
    log:
        "results/logs/energy_curves/combine.log",
    conda:
        "../../environment.yml"
    threads: 1
    shell:
        "{params.python} -m unfolded combine --data {input} --out {output} > {log} 2>&1"
