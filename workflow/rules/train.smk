# Unfolded vs standard Transformers and their baselines, trained with Lightning. One job per
# (dataset, model, learning rate, seed): the study grid (config/study.yaml) is these wildcards.
# Checkpoints live outside the declared outputs (results/checkpoints/<run>/<settings hash>), so a
# killed job resumes from last.ckpt instead of restarting, and changed settings never resume from a
# stale checkpoint. On SLURM the short runs (SHORT_RUN_DATASETS) form group "runs" (profiles/slurm
# puts 16 in one submission, run one after another), so a study of hundreds of short runs is
# submitted as a few dozen jobs; runs on the paper's data are long and go one per submission.
# Settings that decide which runs exist, not how one run trains (unfolded.grid.RUN_LIST_KEYS), stay
# out of the params: changing them reruns no existing run.
from unfolded.grid import RUN_LIST_KEYS

TRAIN_SETTINGS = (("train",), ("data",), ("energy_curves", "samples"))


rule train:
    """Train one (dataset, model, lr, seed) run: test accuracy at the best validation epoch, logs,
    energy trace and depth extrapolation."""
    input:
        fetched,
    output:
        metrics="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/metrics.csv",
        energies="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/energies.parquet",
        depth="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/depth.parquet",
        checkpoint="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/model.ckpt",
        provenance="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/provenance.json",
        predictions="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/predictions.parquet",
        val_predictions="results/runs/{dataset}/{model}/lr{lr}/seed{seed}/val_predictions.parquet",
    log:
        "results/logs/train/{dataset}/{model}/lr{lr}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{model}/lr{lr}/seed{seed}.tsv"
    wildcard_constraints:
        model=MODEL_PATTERN,
        lr=r"[0-9.e+-]+",
        seed=r"\d+",
    group:
        run_group
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=job_minutes,
    params:
        code=code("train"),
        config=inline_config(*TRAIN_SETTINGS, exclude=RUN_LIST_KEYS),
        checkpoints=lambda wildcards: checkpoint_dir(
            f"{wildcards.dataset}/{wildcards.model}/lr{wildcards.lr}/seed{wildcards.seed}",
            "train",
            *TRAIN_SETTINGS,
            exclude=RUN_LIST_KEYS,
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded train --config {params.config} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --lr {wildcards.lr} --seed {wildcards.seed}"
        " --run-dir results/runs/{wildcards.dataset}/{wildcards.model}/lr{wildcards.lr}/seed{wildcards.seed}"
        " --checkpoint-dir {params.checkpoints} --no-progress > {log} 2>&1"


rule probe:
    """The linear-probe baseline of one dataset: logistic regression on the flattened raw input."""
    input:
        fetched,
    output:
        "results/runs/{dataset}/linear_probe/provenance.json",
    log:
        "results/logs/probe/{dataset}.log",
    benchmark:
        "results/benchmarks/probe/{dataset}.tsv"
    group:
        run_group
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=job_minutes,
    params:
        code=code("probe"),
        config=inline_config(("data",), ("train", "probe_C")),
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded probe --config {params.config} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule accuracy:
    """The accuracy tables: every run (accuracy.csv), the learning-rate pick per model on validation and
    median, mean, sd and 95% CI over seeds beside the baselines and ceilings (accuracy_summary.csv,
    accuracy.md), every run's logged training curve, the picked runs' per-item test predictions, every
    run's validation answers (every learning rate: a selection is recomputable from them), and attention on trial (verdicts.csv, controls.csv).
    """
    input:
        runs=run_outputs(rules.train.output.provenance),
        predictions=run_outputs(rules.train.output.predictions),
        val_predictions=run_outputs(rules.train.output.val_predictions),
        probes=probe_runs(),
        # rule energy_curves is defined later (energy.smk): its outputs are looked up when the DAG is built
        curves=lambda wildcards: (
            expand(rules.energy_curves.output[0], dataset=config["datasets"])
            if {"fig5_energy_untrained", "fig6_energy_trained"} & set(config["figures"]["include"])
            else []
        ),
    output:
        csv=report("results/tables/accuracy.csv", caption="../report/accuracy.rst", category="Training"),
        summary="results/tables/accuracy_summary.csv",
        markdown="results/tables/accuracy.md",
        timings="results/tables/timings.csv",
        table="results/data/accuracy.parquet",
        curves="results/data/training_curves.parquet",
        predictions="results/tables/predictions.parquet",
        val_predictions="results/tables/val_predictions.parquet",
        verdicts="results/tables/verdicts.csv",
        controls="results/tables/controls.csv",
    log:
        "results/logs/accuracy.log",
    benchmark:
        "results/benchmarks/accuracy.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("accuracy"),
        runs=run_dirs(),
    shell:
        "python -m unfolded accuracy --runs {params.runs} --probes {input.probes} --csv {output.csv}"
        " --summary {output.summary} --markdown {output.markdown} --table {output.table} --timings {output.timings}"
        " --energy-curves {input.curves} --training-curves {output.curves} --predictions {output.predictions}"
        " --val-predictions {output.val_predictions}"
        " --verdicts {output.verdicts} --controls {output.controls} > {log} 2>&1"


rule depth:
    """Depth extrapolation: tied encoders run at depths 1 to depth_factor x L, at the picked learning rate."""
    input:
        depth=run_outputs(rules.train.output.depth, tied_only=True),
        selection=rules.accuracy.output.summary,
    output:
        csv="results/tables/depth.csv",
        table="results/data/depth.parquet",
    log:
        "results/logs/depth.log",
    benchmark:
        "results/benchmarks/depth.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("depth"),
    shell:
        "python -m unfolded depth --data {input.depth} --selection {input.selection} --csv {output.csv}"
        " --table {output.table} > {log} 2>&1"
