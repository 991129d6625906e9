# Unfolded vs standard Transformers, trained with Lightning. Checkpoints live outside the declared
# outputs (results/checkpoints/<run>/<settings hash>), so a killed job resumes from last.ckpt
# instead of restarting, and changed settings never resume from a stale checkpoint.
TRAIN_SETTINGS = (("train",), ("data",), ("energy_curves", "samples"))


rule train:
    """Train one (dataset, model, seed) run; test accuracy, logs, final energies."""
    input:
        fetched,
    output:
        metrics="results/runs/{dataset}/{model}/seed{seed}/metrics.csv",
        energies="results/runs/{dataset}/{model}/seed{seed}/energies.parquet",
        checkpoint="results/runs/{dataset}/{model}/seed{seed}/last.ckpt",
        provenance="results/runs/{dataset}/{model}/seed{seed}/provenance.json",
    wildcard_constraints:
        model="unfolded_tied|unfolded_untied|standard_tied|standard_untied",
        seed=r"\d+",
    params:
        code=code("train"),
        config=inline_config(*TRAIN_SETTINGS),
        checkpoints=lambda wildcards: checkpoint_dir(
            f"{wildcards.dataset}/{wildcards.model}/seed{wildcards.seed}", "train", *TRAIN_SETTINGS
        ),
    log:
        "results/logs/train/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{model}/seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "python -m unfolded train --config {params.config} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --seed {wildcards.seed} --run-dir results/runs/{wildcards.dataset}/{wildcards.model}/seed{wildcards.seed}"
        " --checkpoint-dir {params.checkpoints} --no-progress > {log} 2>&1"


rule accuracy:
    """The accuracy table (tidy CSV + Markdown summary) and every run's logged training curve."""
    input:
        runs=[f"{run}/provenance.json" for run in run_dirs()],
        curves=expand("results/data/energy_curves_{dataset}.parquet", dataset=config["datasets"]),
    output:
        csv=report("results/tables/accuracy.csv", caption="../report/accuracy.rst", category="Training"),
        markdown="results/tables/accuracy.md",
        timings="results/tables/timings.csv",
        table="results/data/accuracy.parquet",
        curves="results/data/training_curves.parquet",
    params:
        code=code("summary"),
        runs=run_dirs(),
    log:
        "results/logs/accuracy.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m unfolded accuracy --runs {params.runs} --csv {output.csv} --markdown {output.markdown}"
        " --table {output.table} --timings {output.timings} --energy-curves {input.curves} --training-curves {output.curves} > {log} 2>&1"
