# Downloads go into the cache (data.cache_dir / $UNFOLDED_CACHE), outside results/; the marker file
# records what was fetched. Local rule: on SLURM it runs where the internet is (the login node).
localrules:
    fetch,


rule fetch:
    """Download a dataset or vector file once into the cache."""
    output:
        "results/data/fetched/{name}.txt",
    log:
        "results/logs/fetch/{name}.log",
    wildcard_constraints:
        name="|".join([*(dataset.fetch for dataset in DATASETS.values() if dataset.fetch), *VECTORS.values()]),
    retries: 2
    conda:
        "../../environment.yml"
    params:
        code=code("data"),
        config=inline_config(("data",)),
    shell:
        "python -m unfolded data fetch {wildcards.name} --config {params.config}" " --marker {output} > {log} 2>&1"
