ENERGY_SETTINGS = (("energy_curves",), ("data",), ("train", "width"), ("train", "accelerator"))
# the recipe search and the learned models have rules of their own (recipes.smk)
NOT_ENERGY = ("recipe_search", "learned_recipe")


rule energy_curves:
    """Per-layer energies of test sequences, untrained (with and without ReLU) and trained."""
    input:
        fetched,
    output:
        "results/data/energy_curves_{dataset}.parquet",
    log:
        "results/logs/energy_curves/{dataset}.log",
    benchmark:
        "results/benchmarks/energy_curves/{dataset}.tsv"
    # the longest jobs of the default run start first, so the short ones fill in around them
    priority: 10
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        code=code("energy-curves"),
        config=inline_config(*ENERGY_SETTINGS, exclude=NOT_ENERGY),
        checkpoints=lambda wildcards: checkpoint_dir(
            f"energy_curves/{wildcards.dataset}", "energy-curves", *ENERGY_SETTINGS, exclude=NOT_ENERGY
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded energy-curves --config {params.config} --dataset {wildcards.dataset}"
        " --out {output} --checkpoint-dir {params.checkpoints} --no-progress > {log} 2>&1"


rule energy_curves_table:
    """All datasets' energy curves in one tidy table."""
    input:
        expand(rules.energy_curves.output[0], dataset=config["datasets"]),
    output:
        "results/data/energy_curves.parquet",
    log:
        "results/logs/energy_curves/combine.log",
    benchmark:
        "results/benchmarks/combine.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("combine"),
    shell:
        "python -m unfolded combine --data {input} --out {output} > {log} 2>&1"


rule energy_plugins:
    """Untrained energy curves of the plug-in energies (unfolded.energies) on one dataset."""
    input:
        fetched,
    output:
        "results/data/energy_plugins_{dataset}.parquet",
    log:
        "results/logs/energy_plugins/{dataset}.log",
    benchmark:
        "results/benchmarks/energy_plugins/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("energy-plugins"),
        config=inline_config(("energy_plugins",), ("data",), ("train", "width")),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded energy-plugins --config {params.config} --dataset {wildcards.dataset}"
        " --out {output} --no-progress > {log} 2>&1"


rule energy_plugins_table:
    """All datasets' plug-in curves in one tidy table (the comparison figure reads it)."""
    input:
        expand(rules.energy_plugins.output[0], dataset=config["datasets"]),
    output:
        "results/data/energy_plugins.parquet",
    log:
        "results/logs/energy_plugins/combine.log",
    benchmark:
        "results/benchmarks/energy_plugins_table.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("combine"),
    shell:
        "python -m unfolded combine --data {input} --out {output} > {log} 2>&1"


rule energy_summary:
    """One row per (energy curve, energy) (Figures 5-6, Figure 6's learned models and every trained run):
    monotone, strict and active shares, collapse layer, the attention step's share of the decrease, and
    trained models' accuracy, majority class and weight change."""
    input:
        curves=rules.energy_curves_table.output[0],
        plugins=expand(rules.energy_plugins.output[0], dataset=config["datasets"]),
        runs=run_outputs(rules.train.output.energies, energy_only=True),
        learned=learned_curves_for(config["datasets"]),
    output:
        csv=report(
            "results/tables/energy_summary.csv",
            caption="../report/energy_summary.rst",
            category="Figures 5-6",
        ),
        markdown="results/tables/energy_summary.md",
        layers="results/tables/energy_layers.csv",
    log:
        "results/logs/energy_summary.log",
    benchmark:
        "results/benchmarks/energy_summary.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        code=code("energy-summary"),
    shell:
        "python -m unfolded energy-summary --data {input.curves} {input.plugins} {input.runs} {input.learned}"
        " --csv {output.csv} --markdown {output.markdown} --layers-csv {output.layers} > {log} 2>&1"


rule regime_search:
    """The prespecified search behind energy_curves.active_regime: pick on selection seeds, confirm on fresh ones."""
    input:
        [path for dataset in config["datasets"] for path in fetched_for(dataset)],
    output:
        csv="results/tables/regime_search.csv",
        provenance="results/tables/regime_search.provenance.json",
    log:
        "results/logs/regime_search.log",
    benchmark:
        "results/benchmarks/regime_search.tsv"
    # the longest jobs of the default run start first, so the short ones fill in around them
    priority: 10
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=code("regime-search"),
        config=inline_config(*ENERGY_SETTINGS, ("datasets",), exclude=NOT_ENERGY),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded regime-search --config {params.config} --csv {output.csv}"
        " --no-progress > {log} 2>&1"


rule regime_page:
    """The regime search as Markdown: the rule, the pick, and each share's range over seeds."""
    input:
        csv=rules.regime_search.output.csv,
        provenance=rules.regime_search.output.provenance,
    output:
        "results/tables/regime_search.md",
    log:
        "results/logs/regime_page.log",
    benchmark:
        "results/benchmarks/regime_page.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("page"),
    shell:
        "python -m unfolded page regime-search --csv {input.csv} --markdown {output} > {log} 2>&1"
