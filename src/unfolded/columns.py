"""The column layout of the energy-curve tables, shared by the stage that writes them
(:mod:`unfolded.curves`, :mod:`unfolded.runs`) and the one that reads them (:mod:`unfolded.summaries`)."""

#: A curve: Figures 5-6's (lr NaN) or a trained run's (variant = the run's model, lr its learning rate).
CURVE_KEYS = ["dataset", "variant", "relu", "state", "seed", "lr"]
#: Per-curve attributes repeated on every row of a curve (NaN where they do not apply).
CURVE_ATTRIBUTES = ["alpha_attention", "w_scale", "test_accuracy", "test_loss", "chance_accuracy",
                    "change_W", "change_Wf", "change_B"]
