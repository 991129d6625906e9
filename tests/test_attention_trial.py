"""Attention on trial: the equality task and its ceilings (docs/theory.md §7), interaction-free controls,
the learning-rate tie rule, runs that did not train, exact counts, the seed-aware paired test and its calibration,
Holm's correction and the verdict rule."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from unfolded.data import collate
from unfolded.data.ceilings import NO_INTERACTION_EQUALITY, equality_bag_of_words, polarity_bag_of_words
from unfolded.data.text import equality_task, polarity_task
from unfolded.grid import run_specs
from unfolded.registry import split_model
from unfolded.stats import holm, paired_permutation_p
from unfolded.summaries import select_learning_rates, summarise_accuracy
from unfolded.training import SequenceClassifier
from unfolded.verdicts import DEPENDS, attention_verdicts, control_checks

# ------------------------------------------------------------------------------------------------
# The equality task and its ceilings
# ------------------------------------------------------------------------------------------------


def test_equality_sequences_follow_the_stated_generator():
    task = equality_task(2000, 400, symbols=5, min_length=6, max_length=12, d=8, seed=1)
    sequences, labels = task["train"]
    assert int(labels.sum()) == 1000  # exactly balanced
    pairs = {}
    for sequence, label in zip(sequences, labels.tolist(), strict=True):
        assert 6 <= len(sequence) <= 12 and ((sequence >= 2) & (sequence < 7)).all()  # only the 5 symbols
        a, b = int(sequence[0]), int(sequence[1])
        assert label == int(a == b)
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    different = [count for (a, b), count in pairs.items() if a != b]
    equal = [count for (a, b), count in pairs.items() if a == b]
    assert len(different) == 20 and len(equal) == 5  # every ordered pair and every symbol occurs
    # uniform within each half: 1000 / 20 = 50 per ordered pair, 1000 / 5 = 200 per symbol
    assert max(different) < 80 and min(different) > 25 and max(equal) < 250 and min(equal) > 150
    # the fillers do not depend on the slots: the share of fillers equal to a is 1/K in both classes
    for label in (0, 1):
        share = np.mean([float((s[2:] == s[0]).float().mean()) for s, y in zip(sequences, labels.tolist(), strict=True)
                         if y == label])
        assert abs(share - 1 / 5) < 0.02


def _additive_labelings(K: int):
    """Every labelling of the K x K cells (True: predicted "equal") that some score u(a) + v(b) + c can
    realise (score > 0 on the positive cells, <= 0 on the others): one feasibility LP per labelling."""
    from scipy.optimize import linprog

    cells = [(a, b) for a in range(K) for b in range(K)]
    for labels in itertools.product((False, True), repeat=K * K):
        # variables u_0..u_{K-1}, v_0..v_{K-1}, c; positives: -(u_a + v_b + c) <= -1; negatives: u_a + v_b + c <= 0
        rows, bounds = [], []
        for (a, b), positive in zip(cells, labels, strict=True):
            row = np.zeros(2 * K + 1)
            row[a], row[K + b], row[-1] = 1.0, 1.0, 1.0
            rows.append(-row if positive else row)
            bounds.append(-1.0 if positive else 0.0)
        result = linprog(np.zeros(2 * K + 1), A_ub=np.array(rows), b_ub=np.array(bounds),
                         bounds=[(None, None)] * (2 * K + 1), method="highs")
        if result.status == 0:
            yield dict(zip(cells, labels, strict=True))


def _accuracy(labelling: dict, K: int) -> float:
    """Expected accuracy under the task's law: 1/2 on the diagonal (uniform), 1/2 off it (uniform)."""
    diagonal = sum(labelling[(s, s)] for s in range(K)) / K
    off = sum(not labelling[(a, b)] for a in range(K) for b in range(K) if a != b) / (K * (K - 1))
    return 0.5 * diagonal + 0.5 * off


@pytest.mark.parametrize("K", [2, 3])
def test_no_additive_score_beats_three_quarters_by_exhaustive_search(K):
    accuracies = []
    for labelling in _additive_labelings(K):
        m = sum(labelling[(s, s)] for s in range(K))
        accuracy = _accuracy(labelling, K)
        bound = 0.5 + m / (2 * K) - m * (m - 1) / (4 * K * (K - 1))  # the proof's bound for this m
        assert accuracy <= bound + 1e-12
        accuracies.append(accuracy)
    assert max(accuracies) == pytest.approx(NO_INTERACTION_EQUALITY, abs=1e-12)
    # the oracle labelling (equal iff a == b) is not additive: it is missing from the search
    oracle = {(a, b): a == b for a in range(K) for b in range(K)}
    assert oracle not in list(_additive_labelings(K))


@pytest.mark.parametrize("K", [2, 3, 8, 20])
def test_equal_iff_a_at_least_b_reaches_three_quarters(K):
    score = {(a, b): a + (-b + 0.5) for a in range(K) for b in range(K)}  # u(a) = a, v(b) = -b + 1/2
    assert _accuracy({cell: value > 0 for cell, value in score.items()}, K) == pytest.approx(0.75, abs=1e-12)


def test_pooled_one_hot_logistic_regression_stays_at_the_ceiling():
    """An independent interaction-free model: one-hot (token, position) features summed over the sequence,
    logistic regression fitted on the generated train split. It cannot beat 3/4 beyond sampling noise."""
    from sklearn.linear_model import LogisticRegression

    task = equality_task(4000, 2000, symbols=8, min_length=8, max_length=24, d=8, seed=0)
    vocabulary, length = 10, 24

    def features(split):
        sequences, labels = split
        x = np.zeros((len(sequences), vocabulary * length))
        for row, sequence in enumerate(sequences):
            x[row, np.arange(len(sequence)) * vocabulary + sequence.numpy()] = 1.0
        return x, labels.numpy()

    (x_train, y_train), (x_test, y_test) = features(task["train"]), features(task["test"])
    fitted = LogisticRegression(C=1.0, max_iter=3000).fit(x_train, y_train)
    accuracy = fitted.score(x_test, y_test)
    se = math.sqrt(0.75 * 0.25 / len(y_test))
    assert accuracy <= 0.75 + 3 * se
    assert fitted.score(x_train, y_train) <= 0.80  # not even the train split: the bound is on the function class


def _exact_equality_bag_of_words(K: int, n: int) -> float:
    """Bayes bag-of-words accuracy by enumerating every sequence of length n (slots, then n - 2 fillers)."""
    from collections import defaultdict

    mass = defaultdict(lambda: [0.0, 0.0])  # multiset -> [P(different, multiset), P(equal, multiset)]
    for a, b in itertools.product(range(K), repeat=2):
        p_slots = 0.5 / K if a == b else 0.5 / (K * (K - 1))
        for fillers in itertools.product(range(K), repeat=n - 2):
            key = tuple(sorted((a, b, *fillers)))
            mass[key][int(a == b)] += p_slots / K ** (n - 2)
    return sum(max(pair) for pair in mass.values())


@pytest.mark.parametrize("K,n", [(3, 4), (4, 5)])
def test_equality_bag_of_words_ceiling_matches_exact_enumeration(K, n):
    exact = _exact_equality_bag_of_words(K, n)
    estimate, se = equality_bag_of_words(K, n, n, 200_000, seed=1)
    assert abs(estimate - exact) < 4 * se
    assert exact <= 0.75


def test_default_equality_bag_of_words_ceiling_stays_below_the_interaction_free_one():
    estimate, se = equality_bag_of_words(8, 8, 24, 200_000)
    assert 0 < se < 0.002 and estimate + 3 * se < 0.75


def test_polarity_bayes_bag_of_words_beats_counting_and_is_about_085():
    """The Bayes accuracy of the bag of words is at least that of any bag-of-words rule, for example
    "#positive >= #negative", measured here on sequences from the generator itself."""
    bayes, se = polarity_bag_of_words(200, 8, 24)
    task = polarity_task(20000, 10, 200, 8, 24, 8, seed=5)
    polar = 200 // 5
    sequences, labels = task["train"]
    counting = np.mean([int(((s >= 2) & (s < 2 + polar)).sum() >= ((s >= 2 + polar) & (s < 2 + 2 * polar)).sum())
                        == int(y) for s, y in zip(sequences, labels.tolist(), strict=True)])
    assert bayes >= counting - 3 * (se + math.sqrt(counting * (1 - counting) / 20000))
    assert 0.83 < bayes < 0.87


# ------------------------------------------------------------------------------------------------
# Interaction-free controls
# ------------------------------------------------------------------------------------------------


def _logit_of(module: SequenceClassifier, sequences: list[torch.Tensor]) -> torch.Tensor:
    batch = collate([(s, 0) for s in sequences])
    with torch.no_grad():
        logits, _ = module(batch)
    return logits[:, 1] - logits[:, 0]


@pytest.mark.parametrize("model", ["unfolded_tied-no_attention", "standard_tied-no_attention", "unfolded_tied",
                                   "standard_tied"])
@pytest.mark.parametrize("head", ["affine", "layer_norm"])
def test_controls_with_the_affine_head_are_additive_in_the_two_slots(model, head):
    """Interaction-free means g(s, t) + g(t, s) = g(s, s) + g(t, t) for the score of the two slots given the
    rest of the sequence (the proof's step). It holds for the controls with the affine head, and fails
    with attention or with LayerNorm on the pooled vector."""
    torch.manual_seed(0)
    vectors = torch.randn(12, 16, dtype=torch.float64) / 4
    module = SequenceClassifier(kind="tokens", input_dim=16, num_classes=2, model=model, width=16, num_layers=2,
                                vectors=vectors, embedding="frozen", positions="learned", max_tokens=8,
                                head=head).double().eval()
    rest = torch.tensor([5, 9, 3, 7])
    gaps = []
    for s, t in ((2, 4), (6, 11), (3, 8)):
        g = {(x, y): _logit_of(module, [torch.cat([torch.tensor([x, y]), rest])])[0]
             for x, y in itertools.product((s, t), repeat=2)}
        gaps.append(float(abs(g[(s, t)] + g[(t, s)] - g[(s, s)] - g[(t, t)])))
    additive = max(gaps) < 1e-10
    assert additive == (model.endswith("no_attention") and head == "affine")


def test_standard_no_attention_is_a_variant_of_the_standard_family_only():
    assert split_model("standard_tied-no_attention") == ("standard_tied", "no_attention")
    with pytest.raises(ValueError, match="applies to"):
        split_model("standard_tied-residual")
    config = {"datasets": ["equality"], "train": {
        "datasets": None, "models": ["unfolded_tied", "standard_tied"], "seeds": [0, 1],
        "variants": ["residual", "no_attention"], "variant_models": ["unfolded_tied", "standard_tied"],
        "variant_seeds": [0], "learning_rates": {"unfolded": [0.01, 0.03], "standard": [0.003]},
        "learning_rate_picks": {"equality": {"unfolded_tied": 0.03}}}}
    specs = run_specs(config)
    models = {model for _, model, _, _ in specs}
    assert models == {"unfolded_tied", "standard_tied", "unfolded_tied-residual", "unfolded_tied-no_attention",
                      "standard_tied-no_attention"}
    # a fixed pick replaces the family's grid for that (dataset, model) only
    assert {lr for _, model, lr, _ in specs if model == "unfolded_tied"} == {"0.03"}
    assert {lr for _, model, lr, _ in specs if model == "unfolded_tied-residual"} == {"0.01", "0.03"}


# ------------------------------------------------------------------------------------------------
# Learning-rate ties, runs that did not train, exact counts, the paired tests, Holm, the verdict rule
# ------------------------------------------------------------------------------------------------


def _run(lr, seed, val_correct, test, model="m", chance=0.5, dataset="d", **extra):
    return {"dataset": dataset, "model": model, "variant": "base", "family": "unfolded", "lr": lr, "seed": seed,
            "val_correct": val_correct, "val_count": 100, "val_accuracy": val_correct / 100, "test_accuracy": test,
            "parameters": 10, "chance_accuracy": chance, "epochs": 3, "energy_monotone_fraction": 1.0, **extra}


def test_learning_rate_ties_are_broken_on_exact_counts_then_the_smaller_rate():
    # equal sums of correct answers (170 each): the smaller rate, whatever the float means say
    runs = pd.DataFrame([_run(0.01, 0, 81, 0.8), _run(0.01, 1, 89, 0.8), _run(0.003, 0, 85, 0.7),
                         _run(0.003, 1, 85, 0.7)])
    assert set(select_learning_rates(runs).query("selected")["lr"]) == {0.003}
    # one more correct answer wins
    runs.loc[1, "val_correct"] = 90
    assert set(select_learning_rates(runs).query("selected")["lr"]) == {0.01}
    # runs without counts (older archives): float noise is a tie, not a win
    old = pd.DataFrame([_run(0.003, 0, 0, 0.7), _run(0.01, 0, 0, 0.8)]).drop(columns=["val_correct"])
    old["val_accuracy"] = [0.8119999999999999, 0.812]  # the larger float sits at the larger rate
    assert old.loc[1, "val_accuracy"] > old.loc[0, "val_accuracy"]
    assert set(select_learning_rates(old).query("selected")["lr"]) == {0.003}
    # a (dataset, model) whose runs do not all count answers compares accuracies, never counts with accuracies
    # (summing 60 + 0.99 against 70 + 0.70 would pick 0.003; the mean accuracies pick 0.01)
    mixed = pd.DataFrame([_run(0.01, 0, 60, 0.8), _run(0.01, 1, 0, 0.8), _run(0.003, 0, 70, 0.8),
                          _run(0.003, 1, 0, 0.8)])
    mixed.loc[[1, 3], "val_correct"] = float("nan")
    mixed.loc[[1, 3], "val_accuracy"] = [0.99, 0.70]
    assert set(select_learning_rates(mixed).query("selected")["lr"]) == {0.01}


def test_a_run_that_did_not_train_is_counted_apart_and_not_averaged():
    """Judged on validation (never on test): a minority of runs below the majority class + 0.05 while the
    group's median is above it."""
    tests, vals = [0.94, 0.95, 0.93, 0.092, 0.94], [90, 91, 92, 9, 90]
    runs = pd.DataFrame([_run(0.01, seed, v, t, chance=0.1) for seed, (t, v) in enumerate(zip(tests, vals, strict=True))])
    (row,) = summarise_accuracy(runs).to_dict("records")
    assert row["did_not_train"] == 1 and row["seeds"] == 5
    assert row["test_accuracy_mean"] == pytest.approx(np.mean([0.94, 0.95, 0.93, 0.94]))
    assert row["test_accuracy_median"] == pytest.approx(0.94)
    # a low test accuracy with a sound validation accuracy is not a failure to train: the pick never looks at test
    runs.loc[3, "val_correct"], runs.loc[3, "val_accuracy"] = 90, 0.9
    assert summarise_accuracy(runs).iloc[0]["did_not_train"] == 0
    # a model that never learned is reported as it is: its runs stay in
    flat = pd.DataFrame([_run(0.01, seed, 50, t, chance=0.5) for seed, t in enumerate([0.5, 0.51, 0.5])])
    (row,) = summarise_accuracy(flat).to_dict("records")
    assert row["did_not_train"] == 0 and row["test_accuracy_mean"] == pytest.approx(np.mean([0.5, 0.51, 0.5]))
    # half the seeds low is not a minority: nothing is set apart
    split = pd.DataFrame([_run(0.01, seed, v, 0.5, chance=0.5) for seed, v in enumerate([50, 51, 95, 96])])
    assert summarise_accuracy(split).iloc[0]["did_not_train"] == 0


def test_rules_that_count_answers_compare_exact_counts():
    from fractions import Fraction

    from unfolded.counts import at_least, count_of, learned, margin
    from unfolded.summaries import did_not_train

    # in floats 6/100 < 1/100 + 0.05; in counts it is exactly the threshold, so the run trained
    assert 6 / 100 < 0.01 + 0.05
    runs = pd.DataFrame([_run(0.01, seed, v, 0.9, chance=0.01) for seed, v in enumerate([6, 90, 91])])
    assert not did_not_train(runs).any()
    runs.loc[0, ["val_correct", "val_accuracy"]] = [5, 0.05]  # one answer fewer: below it
    assert did_not_train(runs).tolist() == [True, False, False]
    # the recipe rule's case: 141 of 200 against a majority of 101 of 200 + 0.2 learns (0.705 < 0.7050000000000001)
    assert 141 / 200 < 0.505 + 0.2
    assert learned(0.705, 0.505, 200) and not learned(0.7, 0.505, 200)
    assert margin(0.2) == Fraction(1, 5) and count_of(0.142061, 359) == 51
    assert at_least(Fraction(141, 200), Fraction(101, 200), 0.2)
    with pytest.raises(ValueError, match="not a whole number"):
        count_of(0.1234, 359)


def test_a_learning_rate_pick_at_an_end_of_its_grid_is_flagged():
    runs = pd.DataFrame([_run(lr, 0, correct, 0.8) for lr, correct in ((0.001, 70), (0.003, 80), (0.01, 75))])
    (row,) = summarise_accuracy(runs).to_dict("records")
    assert not row["pick_at_edge"]
    runs.loc[2, "val_correct"] = 95
    (row,) = summarise_accuracy(runs).to_dict("records")
    assert row["pick_at_edge"] and row["lr"] == 0.01


def test_holm_matches_the_step_down_definition():
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    # m = 4 present: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.09, 0.09 (monotone), 0.5
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.09)
    assert adjusted[1] == pytest.approx(0.09) and adjusted[4] == pytest.approx(0.5)
    assert math.isnan(adjusted[3])
    assert holm([0.9, 0.8])[0] == 1.0  # capped at 1


def test_paired_permutation_test_sees_paired_gains_and_is_calibrated_under_the_null():
    rng = np.random.default_rng(0)
    items = 300
    base = rng.random(items) < 0.7
    better = base | (rng.random(items) < 0.15)  # fixes some items, breaks none
    assert paired_permutation_p(better.astype(float), base.astype(float), draws=4000) < 0.001
    assert paired_permutation_p(base.astype(float), base.astype(float)) == 1.0
    # symmetric in its arguments
    assert paired_permutation_p(better, base, draws=2000, seed=3) == paired_permutation_p(base, better, draws=2000, seed=3)
    # under the null (exchangeable pairs) about 5% of tests reject at 0.05
    rejections = 0
    for trial in range(200):
        first, second = rng.random(items) < 0.7, rng.random(items) < 0.7
        rejections += paired_permutation_p(first, second, draws=500, seed=trial) < 0.05
    assert 2 <= rejections <= 22


def _trial(dataset, model_items, control_items, **ceilings):
    """Runs and per-item predictions of a model and its control, one (boolean) answer vector per seed."""
    runs, predictions = [], []
    for model, items in (("unfolded_tied", model_items), ("unfolded_tied-no_attention", control_items)):
        for seed, correct in enumerate(items):
            runs.append(_run(0.01, seed, 80, float(np.mean(correct)), model=model, dataset=dataset,
                             test_correct=int(np.sum(correct)), test_count=len(correct), **ceilings))
            predictions.append(pd.DataFrame({"dataset": dataset, "model": model, "lr": 0.01, "seed": seed,
                                             "item": np.arange(len(correct)), "correct": correct}))
    return pd.DataFrame(runs), pd.concat(predictions, ignore_index=True)


def _seeds(rng, n, rate, seeds=10):
    return [rng.random(n) < rate for _ in range(seeds)]


def test_the_verdict_rule_helps_hurts_and_not_testable():
    rng = np.random.default_rng(1)
    n = 400
    trials = [_trial("equality", _seeds(rng, n, 0.97), _seeds(rng, n, 0.62), no_interaction_ceiling=0.75),
              _trial("order", _seeds(rng, n, 0.62), _seeds(rng, n, 0.97), no_interaction_ceiling=1.0),
              _trial("digits", _seeds(rng, n, 0.97), _seeds(rng, n, 0.62), no_interaction_ceiling=1.0),
              # below the threshold: a significant gain, but the median is under ceiling + 0.10
              _trial("midtask", _seeds(rng, n, 0.80), _seeds(rng, n, 0.62), no_interaction_ceiling=0.75)]
    runs = pd.concat([runs for runs, _ in trials], ignore_index=True)
    predictions = pd.concat([items for _, items in trials], ignore_index=True)
    table = attention_verdicts(runs, predictions, draws=2000).set_index("dataset")
    assert table.loc["equality", "verdict"] == "helps"
    assert table.loc["order", "verdict"] == "hurts"  # a loss is significant, whatever the ceiling
    assert table.loc["digits", "verdict"] == "not testable here"  # ceiling + 0.10 > 1
    assert table.loc["midtask", "verdict"] == "not shown to help"
    assert (table["holm_p"] >= table["seed_p"]).all() and (table["item_holm_p"] >= table["item_p"]).all()
    # 10 seed pairs all one way: the exact sign-flip p is 2 / 2**10
    assert table.loc["equality", "seed_p"] == pytest.approx(2 / 1024) and table.loc["equality", "pairs"] == 10
    model = runs[(runs["dataset"] == "equality") & (runs["model"] == "unfolded_tied")]["test_accuracy"]
    control = runs[(runs["dataset"] == "equality") & (runs["model"] != "unfolded_tied")]["test_accuracy"]
    assert table.loc["equality", "paired_gain"] == pytest.approx(model.mean() - control.mean())
    # three seeds cannot make a verdict: the smallest p of three pairs is 2 / 8
    few = attention_verdicts(*_trial("equality", _seeds(rng, n, 0.97, 3), _seeds(rng, n, 0.62, 3),
                                     no_interaction_ceiling=0.75), draws=500)
    assert few.iloc[0]["seed_p"] == pytest.approx(0.25) and few.iloc[0]["verdict"] == "not shown to help"


def test_a_verdict_that_holds_only_without_the_runs_that_did_not_train_says_so():
    rng = np.random.default_rng(2)
    n = 300
    model, control = _seeds(rng, n, 0.85), _seeds(rng, n, 0.97)
    runs, predictions = _trial("order", model, control, no_interaction_ceiling=1.0, chance=0.5)
    # four controls did not train: their validation sits at the majority class, and they answer one class
    failed = (runs["model"] == "unfolded_tied-no_attention") & runs["seed"].isin([0, 1, 2, 3])
    runs.loc[failed, ["val_correct", "val_accuracy", "test_accuracy"]] = [50, 0.5, 0.5]
    failed_items = predictions["model"].eq("unfolded_tied-no_attention") & predictions["seed"].isin([0, 1, 2, 3])
    predictions.loc[failed_items, "correct"] = predictions.loc[failed_items, "item"] % 2 == 0
    (row,) = attention_verdicts(runs, predictions, draws=500).to_dict("records")
    assert row["control_did_not_train"] == 4 and row["pairs"] == 6 and row["pairs_all"] == 10
    assert row["verdict_set_aside"] != row["verdict_kept"]
    assert row["verdict"] == DEPENDS


def test_a_model_at_its_epoch_cap_on_half_its_seeds_is_flagged():
    rng = np.random.default_rng(3)
    runs, predictions = _trial("digits", _seeds(rng, 200, 0.9), _seeds(rng, 200, 0.9), no_interaction_ceiling=1.0)
    runs["max_epochs"] = 20
    runs.loc[(runs["model"] == "unfolded_tied") & (runs["seed"] < 4), "epochs"] = 20
    assert not attention_verdicts(runs, predictions, draws=200).iloc[0]["capped"]  # 4 of 10
    runs.loc[(runs["model"] == "unfolded_tied") & (runs["seed"] < 5), "epochs"] = 20
    (row,) = attention_verdicts(runs, predictions, draws=200).to_dict("records")
    assert row["capped"] and row["at_cap"] == 5


def _null_seeds(rng, difficulty, seeds, seed_sd, item_sd):
    """A model's answers on fixed items over seeds: each seed shifts every item's logit by one draw (what a new
    seed changes for the whole test set) and each (seed, item) by another."""
    shift = rng.normal(0.0, seed_sd, (seeds, 1))
    logits = difficulty[None, :] + shift + rng.normal(0.0, item_sd, (seeds, len(difficulty)))
    return rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))


def test_the_seed_test_is_calibrated_on_a_true_null_where_the_item_test_is_not():
    """Two models with the same distribution over seeds (a true null) on one fixed test set: the seed-aware test
    rejects at its level, within Monte Carlo error; the item-level test, conditional on the trained seeds, rejects
    far more often, because it takes the seeds' shared shifts for effects."""
    from unfolded.stats import seed_paired_p

    rng = np.random.default_rng(4242)
    items, seeds, trials = 500, 10, 400
    difficulty = rng.normal(1.0, 1.5, items)
    seed_rejections = item_rejections = 0
    for trial in range(trials):
        first = _null_seeds(rng, difficulty, seeds, 0.3, 0.5)
        second = _null_seeds(rng, difficulty, seeds, 0.3, 0.5)
        seed_rejections += seed_paired_p(first.mean(1), second.mean(1)) < 0.05
        item_rejections += paired_permutation_p(first.mean(0), second.mean(0), draws=400, seed=trial) < 0.05
    se = math.sqrt(0.05 * 0.95 / trials)
    # the exact test's size at 0.05 with 10 pairs is 48/1024 = 0.047 (at most 0.05)
    assert abs(seed_rejections / trials - 0.05) <= 3 * se, seed_rejections
    assert item_rejections / trials > 0.05 + 3 * se, item_rejections


def test_the_seed_test_enumerates_sign_patterns_exactly():
    from unfolded.stats import seed_paired_p

    assert seed_paired_p([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]) == pytest.approx(2 / 8)
    assert seed_paired_p([0.5, 0.6], [0.5, 0.6]) == 1.0
    # symmetric, and it sees a consistent gain on 12 seeds
    first, second = np.linspace(0.8, 0.9, 12), np.linspace(0.7, 0.8, 12)
    assert seed_paired_p(first, second) == seed_paired_p(second, first) == pytest.approx(2 / 4096)
    # one pair against many: a large loss on one seed outweighs small gains on the others
    assert seed_paired_p([0.6, 0.61, 0.62, 0.1], [0.59, 0.6, 0.61, 0.6]) > 0.5
    with pytest.raises(ValueError, match="finite"):
        seed_paired_p([0.5, math.nan], [0.5, 0.4])


def test_a_control_above_its_ceiling_is_reported_in_standard_errors():
    runs = pd.DataFrame([
        _run(0.01, 0, 80, 0.80, model="unfolded_tied-no_attention", dataset="equality", no_interaction_ceiling=0.75,
             test_count=1000),
        _run(0.01, 1, 80, 0.70, model="unfolded_tied-no_attention", dataset="equality", no_interaction_ceiling=0.75,
             test_count=1000)])
    (row,) = control_checks(runs).to_dict("records")
    assert row["excess_in_se"] == pytest.approx((0.80 - 0.75) / math.sqrt(0.75 * 0.25 / 1000))
    assert row["excess_in_se"] > 3  # the bug this check exists to catch


# ------------------------------------------------------------------------------------------------
# The archive
# ------------------------------------------------------------------------------------------------


def _tables(root):
    tables = root / "tables"
    tables.mkdir()
    runs = pd.DataFrame([_run(0.01, 0, 80, 0.8)]).assign(selected=True)
    runs.to_csv(tables / "accuracy.csv", index=False)
    for name in ("accuracy_summary.csv", "depth.csv", "timings.csv"):
        pd.DataFrame({"x": [1]}).to_csv(tables / name, index=False)
    return tables


def test_archive_refuses_runs_from_a_dirty_tree_and_a_dirty_tree(tmp_path, monkeypatch):
    import json

    from unfolded import artifacts
    from unfolded.archive import archive_study
    from unfolded.errors import UserError

    tables = _tables(tmp_path)
    run = tmp_path / "runs/d/m/lr0.01/seed0"
    run.mkdir(parents=True)
    (run / "provenance.json").write_text(json.dumps({"git_dirty": True, "git_commit": "abc"}))
    (tmp_path / "bench").mkdir()
    monkeypatch.setattr(artifacts, "_git_state", lambda: {"git_commit": "abc", "git_dirty": False})
    arguments = ("s", tables, tmp_path / "runs", tmp_path / "bench", tmp_path / "archive/s", {})
    with pytest.raises(UserError, match="uncommitted changes"):
        archive_study(*arguments)
    (run / "provenance.json").write_text(json.dumps({"git_dirty": False, "git_commit": "abc"}))
    monkeypatch.setattr(artifacts, "_git_state", lambda: {"git_commit": "abc", "git_dirty": True})
    with pytest.raises(UserError, match="working tree has uncommitted"):
        archive_study(*arguments)
    assert not (tmp_path / "archive/s/provenance.json").exists()
    monkeypatch.setattr(artifacts, "_git_state", lambda: {"git_commit": "abc", "git_dirty": False})
    meta = archive_study(*arguments)
    assert meta["git_dirty"] is False and (tmp_path / "archive/s/provenance.json").exists()


def test_archive_records_its_own_id_and_checks_the_selection_it_is_given(tmp_path, monkeypatch):
    """The archive's provenance names the archive itself (not the study id its config carried), and a selection
    in its tables must give the config's picks: counts that disagree with the answers, or picks that disagree with
    the config, stop it before anything is written."""

    from unfolded import artifacts
    from unfolded.archive import archive_study
    from unfolded.errors import UserError

    tables = _tables(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "bench").mkdir()
    monkeypatch.setattr(artifacts, "_git_state", lambda: {"git_commit": "abc", "git_dirty": False})
    selection = pd.DataFrame([_run(lr, seed, correct, 0.8) for lr, seed, correct in
                              ((0.01, 100, 80), (0.01, 101, 81), (0.03, 100, 90), (0.03, 101, 60))])
    selection.to_csv(tables / "selection_runs.csv", index=False)
    answers = pd.concat([pd.DataFrame({"dataset": "d", "model": "m", "lr": r.lr, "seed": r.seed, "item": range(100),
                                       "correct": [i < r.val_correct for i in range(100)]})
                         for r in selection.itertuples()], ignore_index=True)
    answers.to_parquet(tables / "selection_val_predictions.parquet")
    config = {"study": {"id": "another-study"}, "train": {"learning_rate_picks": {"d": {"m": 0.03}}}}
    arguments = ("s", tables, tmp_path / "runs", tmp_path / "bench", tmp_path / "archive/s")
    with pytest.raises(UserError, match="picks recomputed"):  # 161 correct at 0.01 beat 150 at 0.03
        archive_study(*arguments, config)
    assert not (tmp_path / "archive/s/provenance.json").exists()
    config["train"]["learning_rate_picks"]["d"]["m"] = 0.01
    meta = archive_study(*arguments, config)
    assert meta["study_id"] == "s" == meta["config"]["study"]["id"]
    assert (tmp_path / "archive/s/selection_runs.csv").exists()
    answers.loc[0, "correct"] = not answers.loc[0, "correct"]  # one answer that its count does not show
    answers.to_parquet(tables / "selection_val_predictions.parquet")
    with pytest.raises(UserError, match="correct validation answers"):
        archive_study(*arguments, config)


def test_the_depth_criterion_needs_both_neighbours_at_every_small_step_size():
    from unfolded.summaries import sweep_criterion

    rows = []
    for seed in range(3):
        for alpha, minus, plus in ((1.0, 0.3, 0.2), (0.75, 0.6, 0.7), (0.5, 0.95, 0.92), (0.25, 0.91, 0.97)):
            for offset, accuracy in ((-1, minus), (0, 1.0 if alpha == 1.0 else 0.97), (1, plus)):
                rows.append({"dataset": "d", "model": "unfolded_tied", "seed": seed, "alpha_ffn": alpha,
                             "offset": offset, "test_accuracy": accuracy, "spectral_bound": 0.95})
    sweep = pd.DataFrame(rows)
    (row,) = sweep_criterion(sweep).to_dict("records")
    assert row["threshold"] == pytest.approx(1 / 1.95)
    assert row["alphas_below_threshold"] == "0.25/0.5"  # 0.75 is not below 0.513
    assert row["held"] and row["worst_keep_below_threshold"] == pytest.approx(0.91)
    assert row["keep_minus_1_at_1"] == pytest.approx(0.3) and row["keep_plus_1_at_1"] == pytest.approx(0.2)
    sweep.loc[(sweep["alpha_ffn"] == 0.25) & (sweep["offset"] == -1), "test_accuracy"] = 0.89
    (row,) = sweep_criterion(sweep).to_dict("records")
    assert not row["held"] and row["worst_keep_below_threshold"] == pytest.approx(0.89)


def test_an_archived_checkpoint_of_the_study_gives_back_its_recorded_test_answers():
    """The committed study keeps weights only; one checkpoint, loaded with weights_only=True, answers every test
    item as the archived predictions say, and its SHA-256 is the one in the provenance."""
    import hashlib
    import json
    from pathlib import Path

    from unfolded.archive import load_checkpoint
    from unfolded.config import load_config
    from unfolded.data import prepare

    root = Path("results/archive") / load_config(None)["study"]["id"]
    provenance = json.loads((root / "provenance.json").read_text())
    relative = "checkpoints/equality/unfolded_tied/seed3.pt"
    assert hashlib.sha256((root / relative).read_bytes()).hexdigest() == provenance["checkpoint_sha256"][relative]
    module = load_checkpoint(root / relative)
    data = prepare("equality", provenance["config"], seed=3)
    predicted = module.predict_split(data, "test").numpy()
    archived = pd.read_parquet(root / "predictions.parquet")
    archived = archived[(archived["dataset"] == "equality") & (archived["model"] == "unfolded_tied")
                        & (archived["seed"] == 3)].sort_values("item")
    assert (predicted == archived["prediction"].to_numpy()).all()
    runs = pd.read_csv(root / "accuracy.csv")
    (recorded,) = runs[(runs["dataset"] == "equality") & (runs["model"] == "unfolded_tied") & (runs["seed"] == 3)][
        "test_correct"]
    assert int((predicted == data.splits["test"][1].numpy()).sum()) == int(recorded)


# ------------------------------------------------------------------------------------------------
# The archived study, recomputed from its archive alone
# ------------------------------------------------------------------------------------------------

ARCHIVES = __import__("pathlib").Path(__file__).resolve().parents[1] / "results" / "archive"


def _archives_with_selection():
    return sorted(path.parent for path in ARCHIVES.glob("*/selection_runs.csv"))


@pytest.mark.parametrize("archive", _archives_with_selection(), ids=lambda path: path.name)
def test_every_pick_follows_from_the_archived_selection_runs(archive):
    """The selection's every run is in the archive; each run's count of correct validation answers is its answers'
    count, and the picks recomputed from the counts (exact integers, ties to the smaller rate) are the ones the
    study trained at (its config's train.learning_rate_picks, and for attention-2026-12 config/study-picks.yaml)."""
    import json

    import yaml

    from unfolded.archive import selection_picks

    runs = pd.read_csv(archive / "selection_runs.csv")
    answers = pd.read_parquet(archive / "selection_val_predictions.parquet")
    counted = answers.groupby(["dataset", "model", "lr", "seed"])["correct"].sum()
    trained = runs[runs["lr"].notna()]
    assert len(trained) == len(counted)
    # every model at every rate of its grid on every selection seed (at least two)
    for _, group in trained.groupby(["dataset", "model"]):
        assert len(group) == group["lr"].nunique() * group["seed"].nunique() and group["seed"].nunique() >= 2
    for row in trained.itertuples():
        assert int(counted[(row.dataset, row.model, row.lr, row.seed)]) == int(row.val_correct)
    # the picks from the answers alone: swap each run's count for the one its answers give
    recounted = trained.assign(val_correct=[int(counted[(r.dataset, r.model, r.lr, r.seed)]) for r in trained.itertuples()])
    picks = selection_picks(pd.concat([recounted, runs[runs["lr"].isna()]], ignore_index=True))
    provenance = json.loads((archive / "provenance.json").read_text())
    assert picks == provenance["config"]["train"]["learning_rate_picks"]
    assert provenance["selection"]["picks_reproduced"] and provenance["selection"]["git_dirty"] is False
    picks_file = {"attention-2026-12": "study-picks.yaml", "sst2-real-2026-12": "sst2-real-picks.yaml"}.get(archive.name)
    if picks_file is not None:
        committed = yaml.safe_load((ARCHIVES.parents[1] / "config" / picks_file).read_text())
        assert picks == committed["train"]["learning_rate_picks"]
    # no selection seed is a reported seed
    reported = set(pd.read_csv(archive / "accuracy.csv").query("lr == lr")["seed"])
    assert not reported & set(trained["seed"])


def test_the_archived_verdicts_are_the_seed_aware_rule_on_the_archived_predictions():
    from unfolded.archive import load_archive, load_extras

    archive = ARCHIVES / "attention-2026-12"
    runs, _, _, _ = load_archive(archive)
    archived = pd.read_csv(archive / "verdicts.csv")
    fresh = attention_verdicts(runs, load_extras(archive)["predictions"])
    assert {"seed_p", "holm_p", "item_p", "item_holm_p", "verdict_set_aside", "verdict_kept"} <= set(archived.columns)
    assert archived["verdict"].tolist() == fresh["verdict"].tolist()
    assert archived["holm_p"].to_numpy() == pytest.approx(fresh["holm_p"].to_numpy(), rel=1e-5)
    # 10 seeds per model: the smallest possible seed p is 2 / 1024, and Holm over 8 rows cannot go below 8 times it
    assert (archived["seed_p"] >= 2 / 1024 - 1e-6).all() and (archived["holm_p"] >= archived["seed_p"]).all()
