"""The unfolded-vs-standard study: positions, baselines, the order task's ceilings, the variants'
step-size constraint, depth extrapolation, the learning-rate pick and its statistics, the sweep DAG."""

import math
import re

import pandas as pd
import pytest
import torch

from unfolded.bounds import ATTENTION_STEP_BOUND, ffn_step_bound
from unfolded.claims import run_all
from unfolded.config import load_config
from unfolded.data import collate, prepare
from unfolded.data.text import order_ceilings, order_task
from unfolded.energy import pairwise_energy
from unfolded.models import UnfoldedTransformer
from unfolded.registry import split_model
from unfolded.report.accuracy import accuracy_markdown
from unfolded.report.study import study_verdicts
from unfolded.runs import depth_rows, linear_probe
from unfolded.stats import confidence_interval, welch_p
from unfolded.steps import attention_step
from unfolded.summaries import select_learning_rates, summarise_accuracy
from unfolded.training import SequenceClassifier

SMOKE = load_config("config/smoke.yaml")


def _classifier(model: str, positions: str, vectors: torch.Tensor, num_layers: int = 2) -> SequenceClassifier:
    torch.manual_seed(0)
    return SequenceClassifier(kind="tokens", input_dim=vectors.shape[1], num_classes=2, model=model, width=8,
                              num_layers=num_layers, vectors=vectors, embedding="frozen", positions=positions,
                              max_tokens=16).double().eval()


def _batch_and_permutation():
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(2, 20, (6,), generator=generator)
    permuted = ids[torch.randperm(6, generator=generator)]
    assert not torch.equal(ids, permuted)
    return collate([(ids, 0)]), collate([(permuted, 0)])


@pytest.mark.parametrize("model", ["unfolded_tied", "standard_tied", "unfolded_tied-multihead"])
def test_positions_make_encoders_order_sensitive(model):
    vectors = torch.randn(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch, permuted = _batch_and_permutation()
    with torch.no_grad():
        blind = _classifier(model, "none", vectors)
        torch.testing.assert_close(blind(batch)[0], blind(permuted)[0], rtol=1e-10, atol=1e-10)
        for positions in ("learned", "sinusoidal"):
            seeing = _classifier(model, positions, vectors)
            assert (seeing(batch)[0] - seeing(permuted)[0]).abs().max() > 1e-6, positions


def test_bag_of_embeddings_is_order_blind_even_with_positions():
    vectors = torch.randn(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch, permuted = _batch_and_permutation()
    module = _classifier("bag_of_embeddings", "learned", vectors)
    assert not any(True for _ in module.encoder.parameters())  # no token mixing, nothing to learn there
    with torch.no_grad():
        torch.testing.assert_close(module(batch)[0], module(permuted)[0], rtol=1e-10, atol=1e-10)


def test_order_task_needs_order_and_its_ceilings_hold():
    task = order_task(400, 200, 30, 4, 10, 8, seed=0)
    sequences, labels = task["train"]
    assert labels.sum().item() == 200  # exactly balanced
    for ids, label in zip(sequences, labels.tolist(), strict=True):
        first_a, first_b = (ids == 2).nonzero().item(), (ids == 3).nonzero().item()
        assert label == int(first_a < first_b)
    assert order_ceilings(labels) == {"bag_of_words_ceiling": 0.5, "no_interaction_ceiling": 1.0, "oracle_ceiling": 1.0}
    # swapping the markers keeps the bag and flips the label, so the two classes share every bag
    from sklearn.linear_model import LogisticRegression

    def bags(split):
        seqs, _ = task[split]
        return torch.stack([torch.bincount(s, minlength=32) for s in seqs]).numpy()

    bag_model = LogisticRegression(max_iter=2000).fit(bags("train"), task["train"][1].numpy())
    accuracy = bag_model.score(bags("test"), task["test"][1].numpy())
    assert abs(accuracy - 0.5) < 3 * math.sqrt(0.25 / 200) + 0.02  # binomial noise around the ceiling


def test_linear_probe_picks_C_on_validation_and_beats_chance_on_digits():
    data = prepare("digits", SMOKE)
    result = linear_probe(data, [0.001, 1.0])
    assert result["C"] in (0.001, 1.0) and result["C_grid"] == [0.001, 1.0]
    assert result["test_accuracy"] > 0.9 > result["chance_accuracy"]
    assert result["features"] == sum(s.numel() for s in data.splits["train"][0][:1])


def test_learned_step_sizes_stay_in_their_descent_ranges_and_learn():
    model = UnfoldedTransformer(6, 3, learned_step_sizes=True, spectral_bound=0.5, alpha_ffn=0.5).double()
    with torch.no_grad():
        model.step_logits.copy_(torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]]))
    for t in range(5):  # beyond the trained depth the last layer's sizes apply
        alpha_attention, alpha_ffn = model.step_sizes(t)
        assert 0 <= alpha_attention <= ATTENTION_STEP_BOUND and 0 <= alpha_ffn <= ffn_step_bound(0.5)
    torch.testing.assert_close(model.step_sizes(4)[0], model.step_sizes(2)[0])
    Y = torch.randn(2, 5, 6, dtype=torch.float64)
    model(Y).hidden.sum().backward()
    assert model.step_logits.grad[2].abs().sum() > 0  # the unsaturated layer's sizes get a gradient


def test_learned_step_sizes_start_at_the_configured_values_and_refuse_out_of_range():
    model = UnfoldedTransformer(4, 2, learned_step_sizes=True, alpha_attention=0.7, alpha_ffn=0.4)
    alpha_attention, alpha_ffn = model.step_sizes(0)
    assert abs(alpha_attention.item() - 0.7) < 1e-6 and abs(alpha_ffn.item() - 0.4) < 1e-6
    with pytest.raises(ValueError, match="inside their ranges"):
        UnfoldedTransformer(4, 2, learned_step_sizes=True, alpha_ffn=1.5)


def test_multihead_step_descends_at_the_bound_and_rises_beyond_it():
    generator = torch.Generator().manual_seed(0)
    Y = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)  # head 0: the 1-D pair of the single-head case
    W = torch.ones(2, 1, 1, dtype=torch.float64)
    before = pairwise_energy(Y, W)
    assert pairwise_energy(attention_step(Y, W, alpha=ATTENTION_STEP_BOUND), W) <= before + 1e-12
    assert pairwise_energy(attention_step(Y, W, alpha=3.0), W) > before + 1e-6  # the single-head counterexample
    Y = torch.randn(2, 5, 6, generator=generator, dtype=torch.float64)
    W = torch.randn(3, 2, 2, generator=generator, dtype=torch.float64)
    assert (pairwise_energy(attention_step(Y, W, alpha=2.0), W) <= pairwise_energy(Y, W) + 1e-12).all()


@pytest.mark.parametrize("claim", ["multihead_energy_identity", "multihead_attention_descent",
                                   "learned_step_sizes_descent", "residual_substeps_descent"])
def test_variant_claims_hold(claim):
    (result,) = run_all(40, 0, ids=[claim])
    assert result.trials >= 40 and result.violations == 0, result.verdict


def test_depth_extrapolation_rows_and_untied_refusal():
    data = prepare("polarity", SMOKE)
    vectors = data.vectors
    module = SequenceClassifier(kind="tokens", input_dim=vectors.shape[1], num_classes=2, model="unfolded_tied",
                                width=16, num_layers=2, vectors=vectors, positions="learned", max_tokens=64)
    rows = depth_rows(module, data, depth_factor=3)
    assert list(rows["depth"]) == [1, 2, 3, 4, 5, 6]
    assert rows["energy"].notna().all() and (rows["update"] > 0).all()
    assert rows["test_accuracy"].between(0, 1).all()
    # the depth-L row is the model as trained: its accuracy equals the plain forward's
    batch = collate(list(zip(*data.splits["test"], strict=True)))
    with torch.no_grad():
        plain = (module(batch)[0].argmax(-1) == batch["labels"]).double().mean().item()
    assert abs(rows.loc[rows["depth"] == 2, "test_accuracy"].item() - plain) < 1e-9
    untied = SequenceClassifier(kind="tokens", input_dim=vectors.shape[1], num_classes=2, model="unfolded_untied",
                                width=16, num_layers=2, vectors=vectors)
    with pytest.raises(ValueError, match="tied weights"):
        depth_rows(untied, data)


def _runs():
    rows = []
    for lr, val, test in ((0.001, [0.7, 0.8, 0.75], [0.70, 0.72, 0.71]), (0.01, [0.9, 0.85, 0.8], [0.60, 0.90, 0.75])):
        for seed, (v, t) in enumerate(zip(val, test, strict=True)):
            rows.append({"dataset": "d", "model": "m", "variant": "base", "family": "unfolded", "lr": lr, "seed": seed,
                         "val_accuracy": v, "test_accuracy": t, "parameters": 10, "chance_accuracy": 0.5,
                         "bag_of_words_ceiling": math.nan, "oracle_ceiling": math.nan, "epochs": 3,
                         "energy_monotone_fraction": 1.0})
    return pd.DataFrame(rows)


def test_learning_rate_pick_uses_validation_and_reports_t_intervals():
    runs = _runs()
    picked = select_learning_rates(runs)
    assert set(picked[picked["selected"]]["lr"]) == {0.01}  # best mean validation, whatever the test says
    (row,) = summarise_accuracy(runs).to_dict("records")
    assert row["lr"] == 0.01 and row["lr_grid"] == "0.001/0.01" and row["seeds"] == 3
    assert abs(row["test_accuracy_mean"] - 0.75) < 1e-12
    assert abs(row["test_accuracy_sd"] - 0.15) < 1e-12  # ddof = 1
    half = 4.302652729911275 * 0.15 / math.sqrt(3)  # t_{0.975, 2}
    assert abs(row["ci95_low"] - (0.75 - half)) < 1e-9
    assert 0.75 + half > 1 and row["ci95_high"] == 1.0  # an accuracy interval ends at 1
    assert confidence_interval(pd.Series([0.5]))[0] != confidence_interval(pd.Series([0.5]))[0]  # NaN with one seed


def test_learning_rate_tie_goes_to_the_smaller_rate():
    runs = _runs()
    runs["val_accuracy"] = 0.8
    assert set(select_learning_rates(runs).query("selected")["lr"]) == {0.001}


def test_model_names_with_variants():
    assert split_model("unfolded_tied-multihead") == ("unfolded_tied", "multihead")
    assert split_model("standard_tied") == ("standard_tied", "base")
    for bad in ("standard_tied-multihead", "unfolded_tied-wide", "transformer"):
        with pytest.raises(ValueError):
            split_model(bad)


@pytest.mark.workflow
def test_study_config_lists_the_whole_grid(tmp_path):
    """`snakemake -n --configfile config/study.yaml` in a fresh copy: per dataset, every model on every
    seed and every variant on the variant seeds, each at every learning rate of its family; one probe per
    dataset, one aggregation."""
    from unfolded.config import load_config_files

    from helpers.workflow import copy_workflow, job_counts, snakemake

    workdir = copy_workflow(tmp_path / "study")
    result = snakemake(workdir, "-n", "--configfile", "config/study.yaml", timeout=280)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result.stdout + result.stderr)
    config = load_config_files(["config/study.yaml"])
    train, rates = config["train"], config["train"]["learning_rates"]
    family = {"unfolded_tied": "unfolded", "unfolded_untied": "unfolded", "standard_tied": "standard",
              "standard_untied": "standard", "bag_of_embeddings": "bag_of_embeddings"}
    per_dataset = sum(len(rates[family[model]]) * len(train["seeds"]) for model in train["models"])
    # no_attention applies to both families, the other variants to the unfolded ones only
    per_dataset += sum(len(rates[family[model]]) * len(train["variant_seeds"] or train["seeds"])
                       for model in train["variant_models"] for variant in train["variants"]
                       if variant == "no_attention" or model.startswith("unfolded"))
    datasets = train["datasets"] or config["datasets"]
    assert counts.get("train") == len(datasets) * per_dataset, counts
    assert counts.get("probe") == len(datasets) and counts.get("accuracy") == 1 and counts.get("depth") == 1


@pytest.mark.workflow
def test_slurm_profile_groups_the_study_into_few_submissions(tmp_path):
    """On SLURM, the short train/probe jobs of the study go 16 per submission (group "runs")."""
    from helpers.workflow import copy_workflow, job_counts, snakemake

    workdir = copy_workflow(tmp_path / "slurm")
    result = snakemake(workdir, "-n", "--configfile", "config/study.yaml", profile="profiles/slurm", timeout=280)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    counts = job_counts(output)
    grouped = counts["train"] + counts["probe"]
    assert output.count("Group job runs") == -(-grouped // 16)
    # every train job asks for one GPU and 4 CPUs; profiles/slurm's per-submission limits (scope local)
    # keep a group of 16 at that, run in series (make test-slurm runs groups through sbatch)
    requests = re.findall(r"^\s*rule train:\n(?:.*\n)*?\s+resources: (.*)$", output, re.M)
    assert len(requests) == counts["train"]
    assert all("gpu=1" in request.split(", ") and "cpus_per_task=4" in request.split(", ") for request in requests)


def test_default_learning_rates_are_the_archived_study_picks():
    """The default run uses the learning rates the archived study picked most often per family."""
    from pathlib import Path

    config = load_config(None)
    summary = pd.read_csv(Path("results/archive") / config["study"]["id"] / "accuracy_summary.csv")
    picks = {}
    for family, group in summary[summary["lr"].notna()].groupby("family", sort=True):
        counts = group["lr"].value_counts()  # the rate picked most often over (dataset, model); ties: the smaller
        picks[family] = [float(min(counts[counts == counts.max()].index))]
    assert set(picks) == {"unfolded", "standard", "bag_of_embeddings"}  # the plug-in encoders were not on trial there
    assert picks == {family: config["train"]["learning_rates"][family] for family in picks}


def test_epochs_at_cap_count_runs_that_early_stopping_did_not_end():
    runs = _runs()
    runs["max_epochs"] = 3.0
    picked_rate = runs["lr"] == 0.01
    runs.loc[runs.index[picked_rate][:1], "epochs"] = 2  # one picked run stopped early
    runs.loc[runs.index[~picked_rate][:2], "epochs"] = 2
    assert set(select_learning_rates(runs).query("selected")["lr"]) == {0.01}
    (row,) = summarise_accuracy(runs).to_dict("records")
    assert row["epochs_at_cap"] == 2  # of the three picked runs, one stopped early
    assert "(2/3)" in accuracy_markdown(summarise_accuracy(runs))
    (row,) = summarise_accuracy(runs.drop(columns=["max_epochs"])).to_dict("records")
    assert math.isnan(row["epochs_at_cap"])  # no cap recorded: unknown, not zero


def test_welch_p_matches_the_textbook_statistic():
    from scipy.stats import t as student

    a, b = pd.Series([0.80, 0.82, 0.85, 0.79, 0.81]), pd.Series([0.70, 0.75, 0.72, 0.78])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    statistic = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert abs(welch_p(a, b) - 2 * student.sf(abs(statistic), dof)) < 1e-12
    assert math.isnan(welch_p(a, pd.Series([0.7])))  # one seed: no test


def _study_runs(unfolded, standard, bag, variants):
    rows = []
    for model, scores in {"unfolded_tied": unfolded, "standard_tied": standard, "bag_of_embeddings": bag,
                          **{f"unfolded_tied-{name}": s for name, s in variants.items()}}.items():
        for seed, score in enumerate(scores):
            rows.append({"dataset": "order", "model": model, "variant": model.partition("-")[2] or "base",
                         "family": model.split("_")[0], "seed": seed, "lr": 0.01, "val_accuracy": score,
                         "test_accuracy": score, "parameters": 1, "chance_accuracy": 0.5,
                         "bag_of_words_ceiling": 0.5, "oracle_ceiling": 1.0, "epochs": 3})
    return pd.DataFrame(rows)


def test_study_verdicts_follow_the_seed_statistics():
    clear = _study_runs(unfolded=[0.86, 0.87, 0.88, 0.87, 0.86], standard=[0.97, 0.98, 0.97, 0.96, 0.98],
                        bag=[0.50, 0.52, 0.51, 0.53, 0.50],
                        variants={"residual": [0.86, 0.88, 0.87, 0.86, 0.88], "multihead": [0.90, 0.91, 0.92, 0.91, 0.92]})
    (line,) = study_verdicts(clear)
    assert line.startswith("**order** (best bag of words 0.500, oracle 1.000)")
    assert "unfolded_tied above bag_of_embeddings (+0.356, p < 0.001)" in line and "standard_tied ahead by 0.104" in line
    assert "variant multihead helps (+0.044, 42% of the gap; p < 0.001, Bonferroni over 2)" in line
    tied = _study_runs(unfolded=[0.51, 0.53, 0.50, 0.52, 0.49], standard=[0.50, 0.52, 0.51, 0.49, 0.53],
                       bag=[0.52, 0.50, 0.51, 0.53, 0.49], variants={"residual": [0.52, 0.50, 0.49, 0.51, 0.53]})
    (line,) = study_verdicts(tied)
    assert "unfolded_tied not separated from bag_of_embeddings" in line and "no difference from standard_tied shown" in line
    assert "no variant helps (best on validation: residual +0.000; p = 1.000)." in line


def test_each_variant_reaches_the_encoder_a_train_job_builds():
    """The variant in a run's model name changes the encoder that training gets, as VARIANTS says."""
    from unfolded.config import TrainConfig
    from unfolded.registry import VARIANTS
    from unfolded.report.study import FFN_STEP_BELOW_ONE

    options = TrainConfig.from_config(load_config(None)).as_dict()
    vectors = torch.randn(20, 16)

    def encoder(model):
        return SequenceClassifier(kind="tokens", input_dim=16, num_classes=2, model=model, width=16, num_layers=2,
                                  vectors=vectors, encoder_options=options).encoder

    base = encoder("unfolded_tied")
    assert (base.layers[0].alpha_attention, base.layers[0].alpha_ffn) == (options["alpha_attention"], options["alpha_ffn"])
    assert not base.learned_step_sizes and base.layers[0].energy_heads == 1
    residual = encoder("unfolded_tied-residual").layers[0]
    assert (residual.alpha_attention, residual.alpha_ffn) == (VARIANTS["residual"]["alpha_attention"],
                                                              VARIANTS["residual"]["alpha_ffn"])
    assert residual.alpha_attention < 1 and residual.alpha_ffn < 1
    learned = encoder("unfolded_tied-learned_steps")
    assert learned.learned_step_sizes
    alpha_attention, alpha_ffn = (float(a) for a in learned.step_sizes(0))
    assert abs(alpha_attention - VARIANTS["learned_steps"]["alpha_attention"]) < 1e-6
    assert abs(alpha_ffn - VARIANTS["learned_steps"]["alpha_ffn"]) < 1e-6
    heads = encoder("unfolded_tied-multihead").layers[0]
    assert heads.energy_heads == VARIANTS["multihead"]["energy_heads"] > 1
    # the depth prose groups variants by their feed-forward step size
    assert set(FFN_STEP_BELOW_ONE) == {name for name, v in VARIANTS.items() if v.get("alpha_ffn", 1.0) < 1}


def test_a_follow_up_check_is_reported_beside_its_study(tmp_path):
    """An archive whose provenance names check_of is found by the README renderer and reported with
    its own picks, caps and verdicts next to the study's numbers."""
    import json
    import shutil
    from pathlib import Path

    from unfolded.archive import load_archive, load_checks
    from unfolded.report.study import ArchivedStudy, study_checks

    study_id = "cpu-2026-11"  # the study whose numbers the assertions quote (superseded, with follow-up checks)
    assert study_id in load_config(None)["study"]["superseded"]
    archive = tmp_path / "results" / "archive"
    shutil.copytree(Path("results/archive") / study_id, archive / study_id)
    check = archive / "digits-check"
    check.mkdir()
    runs = _study_runs(unfolded=[0.95, 0.96, 0.94, 0.95, 0.96], standard=[0.93, 0.94, 0.92, 0.93, 0.94],
                       bag=[], variants={})
    runs = runs[runs["model"] != "bag_of_embeddings"].assign(dataset="digits", seed=lambda f: f["seed"] + 5,
                                                             epochs=[40, 12, 13, 14, 15, 40, 40, 20, 21, 22])
    runs["selected"] = True
    runs.to_csv(check / "accuracy.csv", index=False)
    for name in ("accuracy_summary.csv", "depth.csv", "timings.csv"):
        (check / name).write_text("dataset,model\n")
    json.dump({"study_id": "digits-check", "check_of": study_id, "job_hours": 0.25, "runs": 10,
               "config": {"train": {"max_epochs": 40, "learning_rates": {"unfolded": [0.01, 0.03],
                                                                         "standard": [0.003, 0.01]}}}},
              (check / "provenance.json").open("w"))
    runs, summary, depth, provenance = load_archive(archive / study_id)
    checks = [check for check in load_checks(archive, study_id) if check[3]["study_id"] == "digits-check"]
    (paragraph,) = study_checks(ArchivedStudy(study_id, runs, summary, depth, provenance, checks=tuple(checks)))
    assert paragraph.startswith(f"Follow-up check `digits-check` of `{study_id}`: seeds 5-9, up to 40 epochs")
    assert "digits unfolded_tied 0.952 ± 0.008 at lr 0.01 (0.01); 1/5 at the epoch cap, study 0.929" in paragraph
    assert "digits standard_tied 0.932 ± 0.008 at lr 0.01 (0.01); 2/5 at the epoch cap, study 0.917" in paragraph
    assert "On these seeds: **digits**" in paragraph and "unfolded_tied ahead by 0.020" in paragraph


def test_the_no_attention_ablation_never_mixes_tokens():
    """unfolded_tied-no_attention keeps every layer but the attention step: a token's state does not
    depend on the other tokens, while unfolded_tied's does."""
    torch.manual_seed(0)
    vectors = torch.randn(30, 8)
    batch = {"inputs": torch.tensor([[3, 4, 5, 6], [3, 9, 10, 11]]), "mask": torch.ones(2, 4, dtype=torch.bool)}

    def first_token(model):
        module = SequenceClassifier(kind="tokens", input_dim=8, num_classes=2, model=model, width=8, num_layers=3,
                                    vectors=vectors, positions="learned").eval()
        with torch.no_grad():
            return module.encoder(module.embed(batch), batch["mask"], return_energies=False).hidden[:, 0]

    ablation = first_token("unfolded_tied-no_attention")
    torch.testing.assert_close(ablation[0], ablation[1], rtol=0, atol=0)  # same token 3 at position 0
    mixed = first_token("unfolded_tied")
    assert (mixed[0] - mixed[1]).abs().max() > 1e-4


def test_verdicts_test_the_attention_step_against_the_ablation():
    runs = _study_runs(unfolded=[0.86, 0.87, 0.88, 0.87, 0.86], standard=[], bag=[],
                       variants={"no_attention": [0.50, 0.52, 0.51, 0.53, 0.50], "residual": [0.86, 0.88, 0.87, 0.86, 0.88]})
    (line,) = study_verdicts(runs)
    assert "the attention step helps: +0.356 over the same model without it (p < 0.001)" in line
    assert "best on validation: residual" in line and "no_attention helps" not in line  # a control, not a variant
    runs.loc[runs["model"] == "unfolded_tied-no_attention", "test_accuracy"] += 0.45  # the ablation ahead
    (line,) = study_verdicts(runs)
    assert "the attention step hurts: the same model without it is ahead by 0.094 (p < 0.001)" in line
