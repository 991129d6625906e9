RECIPE_SETTINGS = (("energy_curves",), ("data",), ("train", "width"), ("train", "accelerator"))


rule recipe_search:
    """Figure 6, step 1 (outside the default run): every recipe of energy_curves.recipe_search on every
    energy-curve variant and selection seed of one dataset (snakemake --cores all recipe_search)."""
    input:
        fetched,
    output:
        csv="results/recipes/search_{dataset}.csv",
        answers="results/recipes/search_{dataset}_answers.parquet",
        provenance="results/recipes/search_{dataset}.provenance.json",
    log:
        "results/logs/recipes/search_{dataset}.log",
    benchmark:
        "results/benchmarks/recipes/search_{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        code=code("recipe-search"),
        config=inline_config(*RECIPE_SETTINGS, exclude=("learned_recipe",)),
        workdir=lambda wildcards: checkpoint_dir(f"recipes/{wildcards.dataset}", "recipe-search", *RECIPE_SETTINGS),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded recipe-search --config {params.config} --dataset {wildcards.dataset}"
        " --csv {output.csv} --answers {output.answers} --workdir {params.workdir} --no-progress > {log} 2>&1"


rule recipe_page:
    """The recipe search's pick by the prespecified rule, and whether energy_curves.learned_recipe is it."""
    input:
        expand(rules.recipe_search.output.csv, dataset=config["datasets"]),
    output:
        "results/tables/recipe_search.md",
    log:
        "results/logs/recipes/page.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("recipe-pick"),
        config=inline_config(("energy_curves", "learned_recipe")),
    shell:
        "python -m unfolded recipe-pick --config {params.config} --csv {input} --markdown {output} > {log} 2>&1"


rule recall_search:
    """The recall check, Figure 6 setting, step 1 (outside the default run): exact_recall at the searched recipe for
    every anchor weight of energy_curves.recall_grid on the selection seeds of one dataset."""
    input:
        fetched,
    output:
        csv="results/recipes/recall_search_{dataset}.csv",
        answers="results/recipes/recall_search_{dataset}_answers.parquet",
        provenance="results/recipes/recall_search_{dataset}.provenance.json",
    log:
        "results/logs/recipes/recall_search_{dataset}.log",
    benchmark:
        "results/benchmarks/recipes/recall_search_{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        code=code("recall-search"),
        config=inline_config(*RECIPE_SETTINGS, exclude=("recall",)),
        workdir=lambda wildcards: checkpoint_dir(f"recall/{wildcards.dataset}", "recall-search", *RECIPE_SETTINGS),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded recall-search --config {params.config} --dataset {wildcards.dataset}"
        " --csv {output.csv} --answers {output.answers} --workdir {params.workdir} --no-progress > {log} 2>&1"


rule recall_page:
    """The recall search's pick by the prespecified rule, and whether energy_curves.recall is it."""
    input:
        expand(rules.recall_search.output.csv, dataset=config["datasets"]),
    output:
        "results/tables/recall_search.md",
    log:
        "results/logs/recipes/recall_page.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("recall-pick"),
        config=inline_config(("energy_curves", "recall")),
    shell:
        "python -m unfolded recall-pick --config {params.config} --csv {input} --markdown {output} > {log} 2>&1"


rule learned_models:
    """Figure 6, step 2 (outside the default run): the energy-curve models trained at
    energy_curves.learned_recipe on its fresh seeds, with weights-only checkpoints."""
    input:
        fetched,
    output:
        csv="results/recipes/learned_{dataset}.csv",
        provenance="results/recipes/learned_{dataset}.provenance.json",
        checkpoints=directory("results/recipes/checkpoints/{dataset}"),
    log:
        "results/logs/recipes/learned_{dataset}.log",
    benchmark:
        "results/benchmarks/recipes/learned_{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=code("learned-models"),
        config=inline_config(*RECIPE_SETTINGS),
        workdir=lambda wildcards: checkpoint_dir(f"learned/{wildcards.dataset}", "learned-models", *RECIPE_SETTINGS),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded learned-models --config {params.config} --dataset {wildcards.dataset}"
        " --csv {output.csv} --checkpoints results/recipes/checkpoints --workdir {params.workdir} --no-progress"
        " > {log} 2>&1"


rule learned_curves:
    """Figure 6's learned panels, at inference only: the layer traces of the archived learned models and of
    the archived study's tied unfolded models on one dataset, each model's test accuracy checked first."""
    input:
        archives=lambda wildcards: [
            path
            for path in (
                f"{LEARNED_ARCHIVE}/provenance.json",
                f"{ARCHIVE}/provenance.json",
                f"{RECALL_ARCHIVE}/figure6/provenance.json",
            )
            if os.path.exists(path)
        ],
    output:
        "results/data/learned_curves_{dataset}.parquet",
    log:
        "results/logs/learned_curves/{dataset}.log",
    benchmark:
        "results/benchmarks/learned_curves/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("learned-curves"),
        config=inline_config(
            ("energy_curves",), ("data",), ("train", "width"), exclude=("recipe_search", "regime_search")
        ),
        archives=lambda wildcards: " ".join(
            [f"--learned-archive {LEARNED_ARCHIVE}"] * HAVE_LEARNED
            + [f"--study-archive {ARCHIVE}"] * ARCHIVE_CHECKPOINTS
            + [f"--recall-archive {RECALL_ARCHIVE}/figure6"]
            * os.path.exists(f"{RECALL_ARCHIVE}/figure6/provenance.json")
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded learned-curves --config {params.config} --dataset {wildcards.dataset}"
        " {params.archives} --out {output} --no-progress > {log} 2>&1"
