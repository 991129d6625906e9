# One named rule per figure (`snakemake fig1_apollonius` works too); figures read tables only.
for _name in figure_names(synthetic=True):

    rule:
        name:
            _name
        input:
            [rules.synthetic.output[0].format(experiment=table) for table in FIGURES[_name].experiments],
        output:
            [
                (
                    report(path, caption=f"../report/{_name}.rst", category="Figures 1-4")
                    if path.endswith(".png")
                    else path
                )
                for path in figure_outputs(_name)
            ],
        log:
            f"results/logs/figures/{_name}.log",
        benchmark:
            f"results/benchmarks/figures/{_name}.tsv"
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=15,
        params:
            code=code("figure"),
            name=_name,
            config=inline_config(
                ("figures",),
                *([("synthetic", "kappa", "kappas")] if _name == "fig4_kappa_regions" else []),
                exclude=("include",),
            ),
        shell:
            "python -m unfolded figure {params.name} --config {params.config}"
            " --data {input} --out {output} > {log} 2>&1"


rule energy_figure:
    """Figures 5 (untrained) and 6 (trained; with the archived learned models when there are some):
    energy per layer on one dataset."""
    input:
        lambda wildcards: [
            # from an archive alone, Figure 6 draws the archived learned models only (nothing trains)
            *(
                []
                if config["study"]["from_archive"] and wildcards.figure == "fig6_energy_trained"
                else [rules.energy_curves.output[0].format(dataset=wildcards.dataset)]
            ),
            *(learned_curves_for([wildcards.dataset]) if wildcards.figure == "fig6_energy_trained" else []),
        ],
    output:
        [
            (
                report(path, caption="../report/energy_curves.rst", category="Figures 5-6")
                if path.endswith(".png")
                else path
            )
            for path in figure_outputs("{figure}_{dataset}")
        ],
    log:
        "results/logs/figures/{figure}_{dataset}.log",
    benchmark:
        "results/benchmarks/figures/{figure}_{dataset}.tsv"
    wildcard_constraints:
        figure="|".join(name for name in FIGURES if FIGURES[name].per_dataset),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        code=code("figure"),
        config=inline_config(("figures",), exclude=("include",)),
    shell:
        "python -m unfolded figure {wildcards.figure} --dataset {wildcards.dataset} --config {params.config}"
        " --data {input} --out {output} > {log} 2>&1"


rule training_figure:
    """Accuracy by model and dataset, and the training curves from the Lightning logs."""
    input:
        lambda wildcards: {
            "fig_accuracy": rules.accuracy.output.table,
            "fig_depth_extrapolation": rules.depth.output.table,
        }.get(wildcards.figure, rules.accuracy.output.curves),
    output:
        [
            report(path, caption="../report/accuracy.rst", category="Training") if path.endswith(".png") else path
            for path in figure_outputs("{figure}")
        ],
    log:
        "results/logs/figures/{figure}.log",
    benchmark:
        "results/benchmarks/figures/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(name for name in FIGURES if FIGURES[name].tables in (("accuracy",), ("depth",))),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        code=code("figure"),
        config=inline_config(("figures",), exclude=("include",)),
    shell:
        "python -m unfolded figure {wildcards.figure} --config {params.config}"
        " --data {input} --out {output} > {log} 2>&1"


rule energies_figure:
    """The plug-in energies side by side: energy change since layer 0 and relative token spread per layer."""
    input:
        rules.energy_plugins_table.output[0],
    output:
        [
            (
                report(path, caption="../report/fig_energies.rst", category="Energies")
                if path.endswith(".png")
                else path
            )
            for path in figure_outputs("fig_energies")
        ],
    log:
        "results/logs/figures/fig_energies.log",
    benchmark:
        "results/benchmarks/figures/fig_energies.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        code=code("figure"),
        config=inline_config(("figures",), exclude=("include",)),
    shell:
        "python -m unfolded figure fig_energies --config {params.config} --data {input} --out {output} > {log} 2>&1"


rule token_spread:
    """Per trained run and layer, the median relative token spread on test sequences (the collapse hypothesis)."""
    input:
        run_outputs(rules.train.output.energies, energy_only=True),
    output:
        csv="results/tables/token_spread.csv",
        table="results/data/token_spread.parquet",
    log:
        "results/logs/token_spread.log",
    benchmark:
        "results/benchmarks/token_spread.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        code=code("token-spread"),
    shell:
        "python -m unfolded token-spread --data {input} --csv {output.csv} --out {output.table} > {log} 2>&1"


rule spread_figure:
    """The collapse hypothesis on trained models: median relative token spread per layer, per dataset."""
    input:
        rules.token_spread.output.table,
    output:
        figure_outputs("fig_token_spread"),
    log:
        "results/logs/figures/fig_token_spread.log",
    benchmark:
        "results/benchmarks/figures/fig_token_spread.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        code=code("figure"),
        config=inline_config(("figures",), exclude=("include",)),
    shell:
        "python -m unfolded figure fig_token_spread --config {params.config} --data {input} --out {output} > {log} 2>&1"


rule depth_sweep:
    """The depth mechanism on the archived study's unfolded_tied checkpoints, at inference only: the
    feed-forward step size swept at depths L-2 to L+2, and the prespecified criterion."""
    input:
        lambda wildcards: [f"{ARCHIVE}/provenance.json"],
    output:
        csv="results/tables/depth_sweep.csv",
        criterion="results/tables/depth_sweep_criterion.csv",
    log:
        "results/logs/depth_sweep.log",
    benchmark:
        "results/benchmarks/depth_sweep.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("depth-sweep"),
        archive=lambda wildcards: ARCHIVE,
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded depth-sweep --archive {params.archive} --csv {output.csv}"
        " --criterion {output.criterion}"
        " --no-progress > {log} 2>&1"


rule trained_energies:
    """Which energy the layers of the archived study's unfolded checkpoints descend, sub-step by sub-step,
    and the totals with and without the regulariser (inference only)."""
    input:
        lambda wildcards: [f"{ARCHIVE}/provenance.json"],
    output:
        "results/tables/trained_energies.csv",
    log:
        "results/logs/trained_energies.log",
    benchmark:
        "results/benchmarks/trained_energies.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=code("trained-energies"),
        archive=lambda wildcards: ARCHIVE,
    shell:
        "OMP_NUM_THREADS={threads} python -m unfolded trained-energies --archive {params.archive} --csv {output}"
        " --no-progress > {log} 2>&1"


rule study_figures:
    """The archived study's accuracy and depth-extrapolation figures and its README section, drawn
    from results/archive/<study.id>/ without training (snakemake --config study='{"from_archive": true}')."""
    input:
        archive=lambda wildcards: [
            f"{ARCHIVE}/{name}"
            for name in ("accuracy.csv", "accuracy_summary.csv", "depth.csv", "provenance.json")
            + (("token_spread.csv",) if ARCHIVE_SPREAD else ())
        ],
    output:
        accuracy=figure_outputs("study_accuracy"),
        depth=figure_outputs("study_depth_extrapolation"),
        spread=figure_outputs("study_token_spread") if ARCHIVE_SPREAD else [],
        markdown="results/tables/study.md",
    log:
        "results/logs/figures/study.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("study-figures"),
        archive=lambda wildcards: ARCHIVE,
        config=inline_config(("figures",), exclude=("include",)),
        spread=lambda wildcards, output: f"--spread {' '.join(output.spread)}" if ARCHIVE_SPREAD else "",
    shell:
        "python -m unfolded study-figures --config {params.config} --archive {params.archive}"
        " --accuracy {output.accuracy} --depth {output.depth} {params.spread} --markdown {output.markdown} > {log} 2>&1"


rule recall_figures:
    """The recall check's input-retention figure, drawn from its archive without training: per layer, the pooled
    state's spread across inputs and a linear probe's accuracy, for the exact, recall and study models."""
    input:
        retention=lambda wildcards: [
            f"{RECALL_ARCHIVE}/input_retention.csv",
            f"{RECALL_ARCHIVE}/input_retention_earlier.csv",
        ],
    output:
        figure_outputs("fig_input_retention"),
    log:
        "results/logs/figures/fig_input_retention.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("recall-figures"),
        config=inline_config(("figures",), exclude=("include",)),
    shell:
        "python -m unfolded recall-figures --config {params.config} --tables {input.retention} --out {output}"
        " > {log} 2>&1"


rule energies_figures:
    """The plug-in energies side by side, trained: drawn from the energies study's archive without training."""
    input:
        lambda wildcards: energies_files(),
    output:
        figure_outputs("fig_energies_trained"),
    log:
        "results/logs/figures/fig_energies_trained.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        code=code("energies-figures"),
        config=inline_config(("figures",), exclude=("include",)),
        archive=ENERGIES_ARCHIVE,
    shell:
        "python -m unfolded energies-figures --config {params.config} --archive {params.archive} --out {output}"
        " > {log} 2>&1"
