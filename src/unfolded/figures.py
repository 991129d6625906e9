"""One function per figure: tidy table(s) in, matplotlib Figure out. Saving is the caller's job.

Figures 1-4 follow the authors' scripts (docs/theory.md §4.1-6.3); where a script has a problem, the
figure shows the corrected quantity next to the authors' one and the caption says so.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: never ask for a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Circle, ConnectionPatch, Rectangle  # noqa: E402

__all__ = [
    "DRAW",
    "fig1_apollonius",
    "fig2_alternating_trace",
    "fig3_alternating_energy",
    "fig4_kappa_regions",
    "set_style",
]

F_COLOUR, H_COLOUR = "#8b0000", "#006400"  # y_f* dark red, y_h* dark green (authors' colours)


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.15)
    plt.rcParams.update({"mathtext.fontset": "cm", "axes.titleweight": "regular", "figure.dpi": 100})


def _grid(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reshape a grid table (x1 varying fastest) into ``(x1 axis, x2 axis, values[x2, x1])``."""
    x1, x2 = np.unique(frame["x1"].to_numpy()), np.unique(frame["x2"].to_numpy())
    ordered = frame.sort_values(["x2", "x1"], kind="stable")
    return x1, x2, ordered[column].to_numpy().reshape(len(x2), len(x1))


def _shade(ax, x1, x2, mask: np.ndarray, colour: str, alpha: float = 0.45) -> None:
    ax.pcolormesh(
        x1, x2, np.where(mask, 1.0, np.nan), cmap=ListedColormap([colour]), alpha=alpha,
        shading="nearest", rasterized=True,
    )


# ----------------------------------------------------------------------------------------------


def fig1_apollonius(frame: pd.DataFrame) -> plt.Figure:
    """Top row: the Apollonius region ``|y - y_f*| <= C |y - y_h*|`` (sampled grid, shaded) with the
    analytic circle (docs/theory.md §3.1). Bottom row: where one gradient step on ``h`` raised ``f + h``;
    the lemma says those points all lie outside the region."""
    import torch

    from .synthetic import apollonius_circle

    set_style()
    panels = sorted(frame["panel"].unique())
    figure, axes = plt.subplots(2, len(panels), figsize=(5.0 * len(panels), 9.6), squeeze=False)
    for column, panel in enumerate(panels):
        g = frame[frame["panel"] == panel]
        C, alpha = g["C"].iloc[0], g["alpha"].iloc[0]
        y_f = np.array([g["yf1"].iloc[0], g["yf2"].iloc[0]])
        y_h = np.array([g["yh1"].iloc[0], g["yh2"].iloc[0]])
        centre, radius = apollonius_circle(torch.as_tensor(y_f), torch.as_tensor(y_h), float(C))
        centre = centre.numpy()
        x1, x2, inside = _grid(g, "inside")
        _, _, rise = _grid(g, "rise")
        rises_inside = int((g["rise"] & g["inside"]).sum())
        total = int(g["rise"].size)
        extent = float(max(abs(x1[0]), abs(x1[-1])))
        for row, ax in enumerate(axes[:, column]):
            if row == 0:
                _shade(ax, x1, x2, inside.astype(bool), sns.color_palette("colorblind")[0])
                ax.set_title(rf"$C = {C:g}$: region $\|y - y_f^*\| \leq C\,\|y - y_h^*\|$" + "\n"
                             f"{int(g['inside'].sum()):,} of {total:,} grid points")
                shade_label = "region (grid points)"
                shade_colour = sns.color_palette("colorblind")[0]
            else:
                _shade(ax, x1, x2, rise.astype(bool), sns.color_palette("colorblind")[3], alpha=0.6)
                ax.set_title(
                    rf"$h$-step ($\alpha = {alpha:.3g}$) raised $f + h$ at {int(g['rise'].sum()):,} of {total:,}" + "\n"
                    f"grid points in $[-{extent:g}, {extent:g})^2$; {rises_inside} of them inside the region"
                )
                shade_label = "an $h$-step raised $f + h$ here"
                shade_colour = sns.color_palette("colorblind")[3]
            ax.add_patch(Circle(centre, radius, fill=False, ls="--", lw=1.6, color="black"))
            ax.scatter(*y_f, marker="^", s=110, color=F_COLOUR, zorder=5, label=r"$y_f^*$")
            ax.scatter(*y_h, marker="^", s=110, color=H_COLOUR, zorder=5, label=r"$y_h^*$")
            ax.set_xlim(x1[0], x1[-1])
            ax.set_ylim(x2[0], x2[-1])
            ax.set_aspect("equal")
            ax.set_xlabel(r"$y_1$")
            ax.set_ylabel(r"$y_2$")
            from matplotlib.lines import Line2D
            from matplotlib.patches import Patch

            handles = [*ax.get_legend_handles_labels()[0], Patch(color=shade_colour, alpha=0.6, label=shade_label),
                       Line2D([], [], color="black", ls="--", label="analytic circle")]
            ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=True, framealpha=0.9)
    figure.tight_layout()
    return figure


def _trace_parts(frame: pd.DataFrame):
    trace = frame[frame["kind"] == "trace"].sort_values("step")
    reference = frame[frame["kind"] == "gd_reference"].iloc[0]
    exact = frame[frame["kind"] == "exact_minimum"].iloc[0]
    return trace, reference, exact


def fig2_alternating_trace(frame: pd.DataFrame) -> plt.Figure:
    """Alternating gradient steps on ``e1`` and ``e2`` in the 2-D PCA plane of the trace (docs/theory.md §4.2).

    Left: the whole trace from the true initial point ``Y^(0)`` (the authors label the iterate after
    the first step as ``Y^(0)``); right: a zoom of +-``zoom`` PCA units around the exact minimiser of
    ``e1 + e2``, with the authors' gradient-descent estimate of it."""
    set_style()
    trace, reference, exact = _trace_parts(frame)
    zoom = float(frame["zoom"].iloc[0])
    figure, (full, inset) = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, line_width in ((full, 0.8), (inset, 0.3)):
        ax.plot(trace["pc1"], trace["pc2"], color="0.6", lw=line_width, zorder=1)
        points = ax.scatter(trace["pc1"], trace["pc2"], c=trace["step"], cmap="viridis", s=14, zorder=2)
        ax.scatter(exact["pc1"], exact["pc2"], marker="*", s=300, facecolors="none", edgecolors="black", lw=1.4,
                   zorder=4, label=r"exact minimiser of $e_1 + e_2$ (hollow star)")
        ax.scatter(reference["pc1"], reference["pc2"], marker="^", s=50, color="tab:orange", edgecolors="black",
                   lw=0.6, zorder=5, label=f"gradient descent, {int(reference['step'])} steps (authors' $Y_h^*$)")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    start = trace.iloc[0]
    full.annotate(r"$Y^{(0)}$", (start["pc1"], start["pc2"]), xytext=(8, 8), textcoords="offset points")
    box = Rectangle((exact["pc1"] - zoom, exact["pc2"] - zoom), 2 * zoom, 2 * zoom, fill=False, ls="--", lw=1.2)
    full.add_patch(box)
    inset.set_xlim(exact["pc1"] - zoom, exact["pc1"] + zoom)
    inset.set_ylim(exact["pc2"] - zoom, exact["pc2"] + zoom)
    for dy, corner in ((zoom, (0, 1)), (-zoom, (0, 0))):  # box's right corners -> inset's left corners
        figure.add_artist(ConnectionPatch(
            xyA=(exact["pc1"] + zoom, exact["pc2"] + dy), coordsA=full.transData,
            xyB=corner, coordsB=inset.transAxes, ls="--", lw=0.8, color="0.3",
        ))
    full.set_title("alternating steps: even on $e_1$, odd on $e_2$")
    inset.set_title(rf"zoom: $\pm{zoom:g}$ around the minimiser")
    handles, labels = inset.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.subplots_adjust(bottom=0.2)
    figure.colorbar(points, ax=[full, inset], label="step $t$", shrink=0.9)
    return figure


def _pattern_period(signs: np.ndarray, longest: int = 8) -> int | None:
    """Smallest period p <= longest with which the sequence of rise/fall signs repeats, or None."""
    for period in range(1, longest + 1):
        if len(signs) > 2 * period and np.array_equal(signs[period:], signs[:-period]):
            return period
    return None


def alternating_trend(trace: pd.DataFrame, exact_total: float, window: int = 40) -> dict:
    """Facts of the alternating trace computed from its table, for titles and the README: the step of
    the lowest total, whether the total still falls over the last ``window`` steps (comparing values
    ``window`` steps apart), the period of the rise/fall pattern over that window, the count of rises,
    and the smallest gap to the exact minimum."""
    total = trace["total"].to_numpy()
    steps = trace["step"].to_numpy()
    window = min(window, len(total) - 1)
    diffs = np.diff(total)
    signs = np.sign(diffs[-window:])
    return {
        "argmin_step": int(steps[int(np.argmin(total))]),
        "last_step": int(steps[-1]),
        "still_falling": bool(total[-1] < total[-1 - window]),
        "period": _pattern_period(signs),
        "rises": int((diffs > 0).sum()),
        "steps": int(len(diffs)),
        "min_gap": float(np.log(total.min()) - np.log(exact_total)),
        "reaches_minimum": bool(np.isclose(total.min(), exact_total, rtol=1e-9, atol=0.0)),
    }


def fig3_alternating_energy(frame: pd.DataFrame) -> plt.Figure:
    """Total energy along the alternating steps (docs/theory.md §4.2). Left: ``E(Y^(t))`` on a log axis with the
    exact minimum ``E*`` of ``e1 + e2`` (closed form). Right: the gap ``log E(Y^(t)) - log E*`` from the
    tenth of the steps on, marked by the component the step descended, next to the authors' version,
    which subtracts the smallest value seen on the trace instead of ``E*``. Every trend in the titles
    is computed from the table (:func:`alternating_trend`)."""
    set_style()
    trace, _, exact = _trace_parts(frame)
    total = trace["total"].to_numpy()
    log_energy = np.log(total)
    steps = trace["step"].to_numpy()
    exact_gap = log_energy - np.log(exact["total"])
    authors_gap = log_energy - log_energy[1:].min()  # the authors record from the first step on
    trend = alternating_trend(trace, float(exact["total"]))
    figure, (full, late) = plt.subplots(1, 2, figsize=(12.5, 4.8))
    colours = sns.color_palette("colorblind")
    full.plot(steps, total, color=colours[0], lw=1.4, label=r"$E(Y^{(t)}) = e_1 + e_2$")
    full.axhline(exact["total"], color="black", ls=":", lw=1.0, label=rf"exact minimum $E^* = {exact['total']:.6g}$")
    full.set_yscale("log")
    full.set_xlabel("step $t$")
    full.set_ylabel("total energy (log scale)")
    full.set_title(f"{trend['rises']} of {trend['steps']} steps raise the total; lowest total at step "
                   f"{trend['argmin_step']} of {trend['last_step']}", fontsize=10)
    full.legend(fontsize=8, loc="upper right")
    start = max(1, len(steps) // 10)
    keep = steps >= start
    late.plot(steps[keep], exact_gap[keep], color="0.55", lw=0.8, zorder=1)
    component = trace["component"].to_numpy()
    for name, marker, colour in (("e1", "o", colours[2]), ("e2", "s", colours[3])):
        chosen = keep & (component == name)
        late.scatter(steps[chosen], exact_gap[chosen], marker=marker, s=12, color=colour, zorder=3,
                     label=rf"$\log E(Y^{{(t)}}) - \log E^*$ after a step on $e_{name[1]}$")
    offset = float(np.log(exact["total"]) - log_energy[1:].min())
    late.plot(steps[keep], authors_gap[keep], color=colours[1], lw=1.0, ls="--",
              label=rf"authors: $\log E(Y^{{(t)}}) - \min_t \log E$ (ours {offset:+.3g})")
    late.set_xlabel("step $t$")
    late.set_ylabel("log-energy gap")
    period = f"rise/fall pattern of period {trend['period']}" if trend["period"] else "no rise/fall period up to 8"
    falling = "still falling" if trend["still_falling"] else "not falling"
    reached = "reaches" if trend["reaches_minimum"] else f"does not reach $E^*$ (smallest gap {trend['min_gap']:.3g})"
    late.set_title(f"last 40 steps: {falling}, {period};\nthe trace {reached}", fontsize=10)
    late.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return figure


def fig4_kappa_regions(frame: pd.DataFrame, kappas: list[float]) -> plt.Figure:
    """Regions ``r(x) >= -kappa`` where the ReLU step keeps at least a ``1 - kappa`` share of the
    gradient step's guaranteed decrease (docs/theory.md §3.2). The guarantee concerns feasible points
    ``x >= 0`` only: that quadrant is outlined, the region is shaded in full colour inside it and faintly
    outside, and each title gives the share of the quadrant's grid points in the region (the whole
    grid's share in brackets). Regions are nested: larger kappa, larger region."""
    from matplotlib.patches import Patch

    set_style()
    x1, x2, r = _grid(frame, "r")
    alpha = float(frame["alpha"].iloc[0])
    figure, axes = plt.subplots(1, len(kappas), figsize=(4.6 * len(kappas), 5.3), squeeze=False)
    colour = sns.color_palette("colorblind")[0]
    quadrant = (x1[np.newaxis, :] >= 0) & (x2[:, np.newaxis] >= 0)
    for ax, kappa in zip(axes[0], sorted(kappas), strict=True):
        region = r >= -kappa
        _shade(ax, x1, x2, region & quadrant, colour, alpha=0.7)
        _shade(ax, x1, x2, region & ~quadrant, colour, alpha=0.2)
        ax.add_patch(Rectangle((0, 0), x1[-1], x2[-1], fill=False, lw=1.6, color="black"))
        inside = int((region & quadrant).sum())
        ax.set_title(rf"$\kappa = {kappa:g}$: {100 * inside / quadrant.sum():.1f}% of the quadrant $x \geq 0$" + "\n"
                     f"({inside:,} of {int(quadrant.sum()):,} points; whole grid {100 * region.mean():.1f}%)", fontsize=10)
        ax.set_xlim(x1[0], x1[-1])
        ax.set_ylim(x2[0], x2[-1])
        ax.set_aspect("equal")
        ax.set_xlabel(r"$x_1$")
        ax.set_ylabel(r"$x_2$")
    handles = [Patch(color=colour, alpha=0.7, label=r"$r(x) \geq -\kappa$ in the quadrant $x \geq 0$ (outlined)"),
               Patch(color=colour, alpha=0.2, label=r"$r(x) \geq -\kappa$ outside it (no guarantee there)")]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False)
    figure.suptitle(rf"$r(x) \geq -\kappa$, step size $\alpha = {alpha:g}$", y=1.0)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


#: name (:data:`unfolded.registry.FIGURES`) -> the function that draws it
DRAW = {
    "fig1_apollonius": fig1_apollonius,
    "fig2_alternating_trace": fig2_alternating_trace,
    "fig3_alternating_energy": fig3_alternating_energy,
    "fig4_kappa_regions": fig4_kappa_regions,
}


# ----------------------------------------------------------------------------------------------
# Figures 5-6 and the unfolded-vs-standard comparison
# ----------------------------------------------------------------------------------------------


def _curve_stats(group: pd.DataFrame) -> dict:
    """The curve's row of :func:`unfolded.diagnostics.curve_summary_row` (same rule as the tables)."""
    import torch

    from .diagnostics import curve_summary_row

    steps = group[group["layer"] > 0]
    wide = lambda column, frame: torch.tensor(frame.pivot(index="sample", columns="layer", values=column).to_numpy())  # noqa: E731
    return curve_summary_row(wide("step_before", steps), wide("step_after", steps), wide("relative_spread", group))


def _per_sample_non_increasing(group: pd.DataFrame) -> list[int]:
    """Per sample, how many of its steps did not raise the energy (the same rule as the tables)."""
    from .diagnostics import non_increasing

    steps = group[group["layer"] > 0].sort_values(["sample", "layer"])
    flags = non_increasing(steps["step_before"].to_numpy(), steps["step_after"].to_numpy()).numpy()
    return pd.Series(flags, index=steps["sample"].to_numpy()).groupby(level=0).sum().astype(int).tolist()


def _energy_panel(ax, group: pd.DataFrame, title: str, extra: str = "") -> None:
    """The authors' drawing (docs/theory.md §4.4): a box per layer (no outliers) and the mean curve, energies
    shifted so that the lowest whisker sits at 0; plus, on the right axis, the median relative token
    spread, with the layers after collapse shaded."""
    from .diagnostics import COLLAPSE_THRESHOLD

    wide = group.pivot(index="sample", columns="layer", values="energy")
    values = wide.to_numpy()
    quartile1, quartile3 = np.percentile(values, 25, axis=0), np.percentile(values, 75, axis=0)
    low_whisker = [
        col[col >= q1 - 1.5 * (q3 - q1)].min() for col, q1, q3 in zip(values.T, quartile1, quartile3, strict=True)
    ]
    shifted = values - min(low_whisker)
    layers = wide.columns.to_numpy()
    palette = sns.color_palette("colorblind")
    ax.boxplot(shifted, positions=layers, showfliers=False, widths=0.6,
               medianprops={"color": "black"}, boxprops={"color": "0.35"}, whiskerprops={"color": "0.35"})
    ax.plot(layers, shifted.mean(0), color=palette[3], marker="o", ms=3, label="mean energy")
    stats = _curve_stats(group)
    collapse = stats["collapse_layer"]
    if collapse is not None:
        ax.axvspan(collapse - 0.5, layers.max() + 0.5, color="0.85", zorder=0, label="collapsed (median spread < 1e-3)")
    spread = group.pivot(index="sample", columns="layer", values="relative_spread").median(0)
    right = ax.twinx()
    right.plot(layers, spread.clip(lower=1e-16).to_numpy(), color=palette[0], ls="--", marker="s", ms=3,
               label="median token spread (right)")
    right.axhline(COLLAPSE_THRESHOLD, color=palette[0], lw=0.8, ls=":")
    right.set_yscale("log")
    right.set_ylim(1e-16, 10)
    right.set_ylabel("relative token spread", color=palette[0])
    right.grid(False)
    steps = stats["steps"]
    per_sample = _per_sample_non_increasing(group)
    same = f" (every sample: {per_sample[0]} of {len(layers) - 1})" if len(set(per_sample)) == 1 else ""
    active = "no active step" if stats["active_fraction"] == 0 else (
        f"active steps: {100 * stats['monotone_fraction_active']:.1f}% non-increasing, "
        f"{100 * stats['strict_fraction_active']:.1f}% falling")
    ax.set_title(f"{title}\nnon-increasing: {100 * stats['monotone_fraction']:.1f}% of {steps} steps{same}; "
                 f"active (spread >= 1e-3): {100 * stats['active_fraction']:.1f}%\n{active}{extra}", fontsize=8.5)
    ax.set_xlabel("$t$ (layer index)")
    ax.set_ylabel(r"$E(Y^{(t)})$, shifted: lowest whisker at 0")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)


VARIANT_TITLES = {"authors": "authors' model", "exact": "exact model", "exact_active": "exact model, active regime",
                  "exact_recall": "exact model with recall, energy E_X"}
VARIANT_ORDER = ("authors", "exact", "exact_active", "exact_recall")


def _variant_title(variant: str, group: pd.DataFrame) -> str:
    if variant == "exact_active":
        alpha, scale = group["alpha_attention"].iloc[0], group["w_scale"].iloc[0]
        return f"{VARIANT_TITLES[variant]} ($\\alpha_{{att}}$={alpha:g}, W scale {scale:g})"
    if variant == "exact_recall" and "recall" in group:
        return f"{VARIANT_TITLES[variant]} ($\\lambda$={group['recall'].iloc[0]:g})"
    return VARIANT_TITLES.get(variant, variant)


def fig5_energy_untrained(frame: pd.DataFrame, dataset: str) -> plt.Figure:
    """Energy across layers at initialisation, without and with ReLU, per model variant.
    (The authors' 'relu' curve came from a model built without ReLU; ours has it.)"""
    set_style()
    data = frame[(frame["dataset"] == dataset) & (frame["state"] == "untrained")]
    variants = [v for v in VARIANT_ORDER if v in set(data["variant"])]
    figure, axes = plt.subplots(len(variants), 2, figsize=(14, 5.0 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        for column, relu in enumerate((False, True)):
            group = data[(data["variant"] == variant) & (data["relu"] == relu)]
            title = f"{dataset}, {_variant_title(variant, group)}, {'with' if relu else 'no'} ReLU, untrained"
            _energy_panel(axes[row, column], group, title)
    figure.tight_layout()
    return figure


def _learned_label(group: pd.DataFrame) -> str:
    """'learned' or 'did not learn here', by :data:`unfolded.thresholds.LEARNED_MARGIN` over the majority class."""
    from .counts import learned as has_learned
    from .thresholds import LEARNED_MARGIN

    first = group.iloc[0]
    learned = has_learned(first["test_accuracy"], first["chance_accuracy"], first.get("test_count"), LEARNED_MARGIN)
    return "learned" if learned else "did not learn here"


def _energy_lines(group: pd.DataFrame) -> str:
    """One line per energy of the curve other than the plotted one: its non-increasing share of steps."""
    from .summaries import PLOTTED_ENERGY, curve_summary

    rows = curve_summary(group)
    rows = rows[rows["energy"] != PLOTTED_ENERGY]
    short = {"pairwise term, attention sub-step": "pairwise (attention)",
             "feed-forward quadratic, gradient sub-step": "FF quadratic (gradient)",
             "feed-forward + ReLU indicator, feed-forward sub-step": "FF + ReLU (FF sub-step)",
             "total without the regulariser, layer": "total, no regulariser",
             "total with the regulariser, layer": "total + regulariser"}
    parts = [f"{short.get(row.energy, row.energy)} {100 * row.monotone_fraction:.0f}%" for row in rows.itertuples()]
    if not parts:
        return ""
    return "\nnon-increasing: " + ", ".join(parts[:3]) + ("\n" + ", ".join(parts[3:]) if parts[3:] else "")


def _median_seed_curve(group: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The curve of the seed with the median test accuracy, and a note on every seed's accuracy."""
    from .summaries import median_seed

    per_seed = group.groupby("seed", as_index=False)["test_accuracy"].first()
    seed = median_seed(per_seed)
    accuracies = ", ".join(f"{value:.3f}" for value in sorted(per_seed["test_accuracy"]))
    return group[group["seed"] == seed], f"seed {seed}, the median of {len(per_seed)} (test accuracies {accuracies})"


def fig6_energy_trained(frame: pd.DataFrame, dataset: str) -> plt.Figure:
    """Energy across layers of trained models (ReLU), one panel per model, each titled with its test
    accuracy against the majority class and whether it learned (at least the majority class +
    LEARNED_MARGIN). Top row: the authors' recipe (SGD, batch size 1, 2000 steps), kept for what it is;
    middle row: the same models at the learned recipe of the prespecified search; bottom row: the archived
    study's tied unfolded models. Learned rows draw the seed with the median test accuracy."""
    set_style()
    data = frame[frame["dataset"] == dataset]
    authors = data[data["state"] == "trained"]
    learned = data[data["state"] == "learned"]
    recipe = learned[learned["variant"].isin(VARIANT_ORDER)] if "variant" in learned else learned
    study = learned[~learned["variant"].isin(VARIANT_ORDER)] if "variant" in learned else learned
    panels = [("authors' recipe", variant, authors[authors["variant"] == variant])
              for variant in VARIANT_ORDER if variant in set(authors["variant"])]
    panels += [("learned recipe", variant, recipe[recipe["variant"] == variant])
               for variant in VARIANT_ORDER if variant in set(recipe["variant"])]
    panels += [("study", model, study[study["variant"] == model]) for model in sorted(set(study["variant"]))]
    columns = 3
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7.2 * columns, 6.0 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (row, name, group) in zip(axes.flat, panels, strict=False):
        note = ""
        if row != "authors' recipe":
            group, note = _median_seed_curve(group)
            note = "\n" + note
        first = group.iloc[0]
        label = _learned_label(group)
        classes = first.get("predicted_classes", float("nan"))
        predicts = f"; predicts {int(classes)} class{'es' if classes != 1 else ''}" if classes == classes else ""
        accuracy = f"\ntest accuracy {first['test_accuracy']:.3f} (majority class {first['chance_accuracy']:.3f}){predicts}"
        if row == "authors' recipe":
            title = f"{dataset}, {_variant_title(name, group)}: authors' recipe, {label}"
            extra = (f"{accuracy}\nrelative weight change: W {first['change_W']:.2g}, Wf {first['change_Wf']:.2g}, "
                     f"B {first['change_B']:.2g}")
        else:
            recipe_name = (f"{row} (lr {first['lr']:g})" if row == "learned recipe" else f"study, lr {first['lr']:g}")
            model = _variant_title(name, group) if name in VARIANT_ORDER else _model_name(name)
            title = f"{dataset}, {model}: {recipe_name}, {label}"
            extra = f"{accuracy}{note}"
        _energy_panel(ax, group, title, extra + _energy_lines(group))
    figure.tight_layout()
    return figure


def _per_dataset(frame: pd.DataFrame, height: float):
    """One panel per dataset, side by side: yields (axes, dataset) and returns the figure."""
    set_style()
    datasets = sorted(frame["dataset"].unique())
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), height), squeeze=False)
    return figure, list(zip(axes[0], datasets, strict=True))


MODEL_NAMES = {"unfolded_tied": "unfolded, tied", "unfolded_untied": "unfolded, untied",
               "standard_tied": "standard, tied", "standard_untied": "standard, untied"}


def _model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model.replace("_", " "))


def fig_accuracy(frame: pd.DataFrame) -> plt.Figure:
    """Test accuracy of unfolded vs standard Transformers (tied and untied): bars are the mean over
    seeds with +-1 sample standard deviation, dots single seeds, the dotted line the majority class."""
    figure, panels = _per_dataset(frame, 4.4)
    for ax, dataset in panels:
        data = frame[frame["dataset"] == dataset].assign(name=lambda f: f["model"].map(_model_name))
        order = [_model_name(m) for m in sorted(data["model"].unique())]
        sns.barplot(data=data, x="name", y="test_accuracy", order=order, ax=ax, errorbar=("sd", 1), alpha=0.6,
                    err_kws={"linewidth": 1.2})
        sns.stripplot(data=data, x="name", y="test_accuracy", order=order, ax=ax, color="black", size=4)
        lines = (("chance_accuracy", "majority class", ":"), ("bag_of_words_ceiling", "best bag of words", "--"),
                 ("oracle_ceiling", "oracle", "-."))
        for column, label, style in lines:
            if column in data and data[column].notna().any():
                ax.axhline(data[column].max(), color="0.3", ls=style, lw=1.2, label=f"{label} ({data[column].max():.3f})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
        trained = data[data["model"] != "linear_probe"]
        counts = trained.groupby("model")["seed"].nunique() if "seed" in trained and not trained.empty else pd.Series([1])
        seeds = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
        ax.set_title(f"{dataset}: mean ± 1 sd over {seeds} seeds per model (dots: seeds)", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    figure.tight_layout()
    return figure


def fig_depth_extrapolation(frame: pd.DataFrame) -> plt.Figure:
    """Tied encoders trained at depth L and run at depths 1 to 4L: test accuracy, the relative update
    of the last layer, and the mean energy (unfolded encoders only; a standard layer has none).
    Lines are means over seeds, bands +-1 sd; the dashed vertical line marks the trained depth."""
    set_style()
    datasets = sorted(frame["dataset"].unique()) if not frame.empty else ["(no runs)"]
    figure, axes = plt.subplots(3, len(datasets), figsize=(4.4 * len(datasets), 8.4), squeeze=False)
    models = sorted(frame["model"].unique()) if not frame.empty else []
    palette = dict(zip(models, sns.color_palette("tab10", max(10, len(models)))[: len(models)], strict=True))
    rows = (("test_accuracy", "test accuracy", False), ("update", "relative update |ΔY| / |Y|", True),
            ("energy", "mean energy (unfolded)", False))
    for column, dataset in enumerate(datasets):
        data = frame[frame["dataset"] == dataset]
        for row, (value, label, log) in enumerate(rows):
            ax = axes[row][column]
            for model, group in data.groupby("model", sort=True):
                if group[value].isna().all():
                    continue
                stats = group.groupby("depth")[value].agg(["mean", "std"]).reset_index()
                ax.plot(stats["depth"], stats["mean"], color=palette[model], lw=1.4, label=_model_name(model))
                ax.fill_between(stats["depth"], stats["mean"] - stats["std"].fillna(0),
                                stats["mean"] + stats["std"].fillna(0), color=palette[model], alpha=0.15, lw=0)
            if not data.empty:
                ax.axvline(data["trained_depth"].iloc[0], color="0.4", ls="--", lw=1)
            if log and not data.empty and (data[value] > 0).any():
                ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.set_xlabel("depth at test time" if row == 2 else "")
            if row == 0:
                counts = data.groupby("model")["seed"].nunique() if not data.empty else pd.Series([0])
                low, high = int(counts.min()), int(counts.max())
                seeds = f"{low}" if low == high else f"{low}-{high}"
                ax.set_title(f"{dataset}: mean ± 1 sd over {seeds} seed{'s' if high != 1 else ''} per model", fontsize=10)
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


def fig_training_curves(frame: pd.DataFrame) -> plt.Figure:
    """Validation accuracy during training (from the Lightning CSV logs): the line is the mean over
    seeds, the band +-1 sample standard deviation; colour is the family, line style the tying."""
    figure, panels = _per_dataset(frame, 4.6)
    palette = sns.color_palette("colorblind")
    styles = {"unfolded_tied": (palette[0], "-"), "unfolded_untied": (palette[0], "--"),
              "standard_tied": (palette[3], "-"), "standard_untied": (palette[3], "--")}
    for ax, dataset in panels:
        data = frame[(frame["dataset"] == dataset) & frame["val_accuracy"].notna()]
        for model, group in data.groupby("model", sort=True):
            colour, style = styles.get(model, ("0.4", ":"))
            stats = group.groupby("step")["val_accuracy"].agg(["mean", "std"]).reset_index()
            ax.plot(stats["step"], stats["mean"], color=colour, ls=style, lw=1.5, label=_model_name(model))
            ax.fill_between(stats["step"], stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                            color=colour, alpha=0.15, lw=0)
        seeds = data.groupby("model")["seed"].nunique().min() if "seed" in data and not data.empty else 1
        ax.set_title(f"{dataset}: mean over {seeds} seeds, band ± 1 sd", fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("validation accuracy")
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def fig_energies(frame: pd.DataFrame) -> plt.Figure:
    """The plug-in energies side by side (untrained, one random instance each): per layer, the median over
    sequences of the energy's change since layer 0 relative to its size there, ``(E_t - E_0) / |E_0|``
    (each energy oriented so that its dynamics descend it), and the median relative token spread. One
    column per dataset; the line style says whether the energy's step has a guarantee."""
    set_style()
    datasets = sorted(frame["dataset"].unique())
    figure, axes = plt.subplots(2, len(datasets), figsize=(5.2 * len(datasets), 7.4), squeeze=False)
    names = list(dict.fromkeys(frame["variant"]))
    palette = dict(zip(names, sns.color_palette("tab10", max(10, len(names)))[: len(names)], strict=True))
    for column, dataset in enumerate(datasets):
        data = frame[frame["dataset"] == dataset]
        for name in names:
            group = data[data["variant"] == name]
            if group.empty:
                continue
            energy = group.pivot(index="sample", columns="layer", values="energy")
            start = energy[0]
            change = energy.sub(start, axis=0).div(start.abs().clip(lower=1e-300), axis=0).median(axis=0)
            spread = group.pivot(index="sample", columns="layer", values="relative_spread").median(axis=0)
            style = "-" if group["guarantee"].iloc[0] != "none" else ":"
            axes[0][column].plot(change.index, change.to_numpy(), color=palette[name], ls=style, lw=1.5, label=name)
            axes[1][column].plot(spread.index, spread.to_numpy(), color=palette[name], ls=style, lw=1.5, label=name)
        axes[0][column].set_title(f"{dataset}: median over {data['sample'].nunique()} test sequences", fontsize=10)
        axes[0][column].set_ylabel("(E_t - E_0) / |E_0|  (oriented to descend)")
        axes[0][column].set_yscale("symlog", linthresh=1e-3)
        axes[1][column].set_ylabel("relative token spread")
        axes[1][column].set_yscale("log")
        axes[1][column].set_xlabel("layer")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def fig_token_spread(frame: pd.DataFrame) -> plt.Figure:
    """The collapse hypothesis on trained models: per dataset, the median relative token spread (spread over
    its layer-0 value; 0 means every token of a sequence at one point) after each layer. Per run the
    median over test sequences; lines the median over runs, bands the range over runs."""
    set_style()
    datasets = sorted(frame["dataset"].unique())
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.4 * len(datasets), 3.8), squeeze=False)
    models = sorted(frame["model"].unique())
    palette = dict(zip(models, sns.color_palette("tab10", max(10, len(models)))[: len(models)], strict=True))
    floor = 1e-12  # a log axis cannot show an exact collapse: it is drawn at this floor
    for ax, dataset in zip(axes[0], datasets, strict=True):
        data = frame[frame["dataset"] == dataset]
        for model, group in data.groupby("model", sort=True):
            by_layer = group.groupby("layer")["relative_spread"]
            median, low, high = (by_layer.median().clip(lower=floor), by_layer.min().clip(lower=floor),
                                 by_layer.max().clip(lower=floor))
            runs = group[["seed", "lr"]].drop_duplicates().shape[0]
            ax.plot(median.index, median.to_numpy(), marker="o", ms=3, color=palette[model],
                    label=f"{_model_name(model)} ({runs} runs)")
            ax.fill_between(median.index, low.to_numpy(), high.to_numpy(), color=palette[model], alpha=0.15)
        ax.set_yscale("log")
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("layer")
        ax.set_ylabel("relative token spread (median)")
        ax.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def fig_input_retention(frame: pd.DataFrame) -> plt.Figure:
    """How much of the input each model keeps, per layer (:mod:`unfolded.retention`): top row, the spread of the
    pooled state across test inputs relative to the input (log scale); bottom row, the test accuracy of a linear
    probe fitted on the train split's pooled states of that layer, with the majority class dashed. One column per
    dataset; lines the median over seeds per (model, state); the trained depth L marked."""
    set_style()
    datasets = sorted(frame["dataset"].unique())
    figure, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.6), squeeze=False, sharex="col")
    frame = frame.assign(curve=[f"{model} ({state})" if state != "trained" else model
                                for model, state in zip(frame["model"], frame["state"], strict=True)])
    curves = sorted(frame["curve"].unique())
    palette = dict(zip(curves, sns.color_palette("tab10", max(10, len(curves)))[: len(curves)], strict=True))
    for column, dataset in enumerate(datasets):
        data = frame[frame["dataset"] == dataset]
        for curve, group in data.groupby("curve", sort=True):
            by_layer = group.groupby("layer")
            seeds = group["seed"].nunique()
            style = "--" if "untrained" in curve else "-"
            axes[0, column].plot(by_layer["relative_spread"].median().clip(lower=1e-9), style, color=palette[curve],
                                 label=f"{_model_name(curve)} ({seeds} seeds)")
            axes[1, column].plot(by_layer["probe_accuracy"].median(), style, color=palette[curve])
            axes[0, column].axvline(int(group["trained_depth"].iloc[0]), color=palette[curve], lw=0.6, alpha=0.5)
        axes[1, column].axhline(float(data["chance_accuracy"].median()), color="grey", ls=":", lw=1,
                                label="majority class")
        axes[0, column].set_yscale("log")
        axes[0, column].set_title(dataset, fontsize=10)
        axes[0, column].set_ylabel("pooled spread / input's")
        axes[1, column].set_ylabel("probe test accuracy")
        axes[1, column].set_xlabel("layer")
        axes[0, column].legend(fontsize=6, loc="lower left")
        axes[1, column].legend(fontsize=6, loc="lower left")
    figure.tight_layout()
    return figure


def fig_energies_trained(layers: pd.DataFrame) -> plt.Figure:
    """The plug-in energies side by side, trained (``trained_energy_layers.csv`` of an energies study): one column
    per plug-in encoder; top row, the layer's summed oriented energy relative to its value at the input,
    ``(E_t - E_0) / |E_0|`` (below 0: descended); bottom row, the token spread relative to the input's (log scale).
    Lines: the median over seeds per task, solid for the model, dashed for its interaction-free control."""
    set_style()
    layers = layers.assign(stem=layers["model"].str.partition("-")[0].str.removesuffix("_tied"),
                           control=layers["model"].str.contains("-"))
    first = layers[layers["layer"] == 0].set_index(["dataset", "model", "seed"])["energy"]
    start = first.reindex(pd.MultiIndex.from_frame(layers[["dataset", "model", "seed"]])).to_numpy()
    layers = layers.assign(relative_energy=(layers["energy"].to_numpy() - start) / np.abs(start).clip(1e-12))
    stems = list(dict.fromkeys(layers["stem"]))
    datasets = sorted(layers["dataset"].unique())
    palette = dict(zip(datasets, sns.color_palette("tab10", max(10, len(datasets)))[: len(datasets)], strict=True))
    figure, axes = plt.subplots(2, len(stems), figsize=(3.6 * len(stems), 6.0), squeeze=False, sharex=True)
    for column, stem in enumerate(stems):
        for (dataset, control), group in layers[layers["stem"] == stem].groupby(["dataset", "control"], sort=True):
            by_layer = group.groupby("layer")
            style = "--" if control else "-"
            label = f"{dataset}{' (control)' if control else ''}"
            axes[0, column].plot(by_layer["relative_energy"].median(), style, color=palette[dataset], label=label)
            axes[1, column].plot(by_layer["relative_spread"].median().clip(lower=1e-9), style, color=palette[dataset])
        axes[0, column].axhline(0.0, color="grey", lw=0.6)
        axes[0, column].set_title(stem, fontsize=10)
        axes[1, column].set_yscale("log")
        axes[1, column].set_xlabel("layer")
        axes[0, column].legend(fontsize=6)
    axes[0, 0].set_ylabel("(E_t - E_0) / |E_0|")
    axes[1, 0].set_ylabel("token spread / input's")
    figure.tight_layout()
    return figure


DRAW.update({
    "fig_energies_trained": fig_energies_trained,
    "fig_input_retention": fig_input_retention,
    "fig_token_spread": fig_token_spread,
    "fig_energies": fig_energies,
    "fig5_energy_untrained": fig5_energy_untrained,
    "fig6_energy_trained": fig6_energy_trained,
    "fig_accuracy": fig_accuracy,
    "fig_training_curves": fig_training_curves,
    "fig_depth_extrapolation": fig_depth_extrapolation,
})
