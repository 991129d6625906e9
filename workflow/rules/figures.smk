# One named rule per figure (`snakemake fig1_apollonius` works too); figures read tables only.
for _name, _tables in FIGURE_TABLES.items():

    rule:
        name:
            _name
        input:
            [f"results/data/{table}.parquet" for table in _tables],
        output:
            [
                report(path, caption=f"../report/{_name}.rst", category="Figures 1-4")
                if path.endswith(".png")
                else path
                for path in figure_outputs(_name)
            ],
        params:
            python=PYTHON,
            name=_name,
            config=inline_config(
                ("figures",),
                *([("synthetic", "kappa", "kappas")] if _name == "fig4_kappa_regions" else []),
                exclude=("include",),
            ),
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
        shell:
            "{params.python} -m unfolded figure {params.name} --config {params.config}"
            " --data {input} --out {output} > {log} 2>&1"
