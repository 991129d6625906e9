"""The thresholds of the written verdicts: the scientific constants that judge results rather than
compute them. The counting tolerances that compute the shares (``DESCENT_TOLERANCE``,
``COLLAPSE_THRESHOLD``) are in :mod:`unfolded.diagnostics`; these live apart so that editing a verdict's
threshold reruns no train or energy-curve job, only the documents that state verdicts."""

__all__ = ["ATTENTION_HELPS_MARGIN", "DEPTH_KEEP", "DID_NOT_TRAIN_MARGIN", "LEARNED_MARGIN", "NEAR_CHANCE_MARGIN",
           "SIGNIFICANCE_LEVEL", "WEIGHTS_MOVED"]

#: A trained model is "no better than the majority class" when its test accuracy is at most the
#: majority-class accuracy plus this margin.
NEAR_CHANCE_MARGIN = 0.02
#: A weight "barely moved" in training when its relative change (Frobenius) stays below this.
WEIGHTS_MOVED = 0.01
#: Significance level of the study's verdicts (two-sided p-values).
SIGNIFICANCE_LEVEL = 0.05
#: A run did not train when its best validation accuracy is below the majority class plus this margin
#: (exact counts) while the median of its sibling runs (same dataset, model and learning rate) is not, and
#: such runs are a minority: it is counted and shown apart, and every verdict is stated with it kept too.
DID_NOT_TRAIN_MARGIN = 0.05
#: "Attention helps on task T" needs a median accuracy of at least the task's no-interaction ceiling
#: plus this margin (and a significant paired gain over the same model without attention, Holm-corrected).
ATTENTION_HELPS_MARGIN = 0.10
#: The depth criterion, fixed before the feed-forward step-size sweep ran: once alpha_ffn < 1 / (1 + s)
#: (s: the spectral bound of Wf), depths L - 1 and L + 1 keep at least this share of the accuracy at L
#: with alpha_ffn = 1 (median over seeds).
DEPTH_KEEP = 0.9
#: A trained model "learned" (Figure 6, the recipe search) when its accuracy is at least the majority class
#: plus this margin (validation in the search, test for the models Figure 6 draws).
LEARNED_MARGIN = 0.2
