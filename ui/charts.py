"""Plotly figures and the small tables beside them, built from the store's DataFrames.

Pure functions: DataFrames in, ``plotly.graph_objects.Figure`` or DataFrame out, no
Streamlit, so they can be tested and reused outside the app. Every point of a
per-image chart carries its image name in the hover text.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from segcore.curves import headline_names
from segcore.metrics import BOUNDED_SCORES, COUNT_ERRORS, COUNTS, SCORE_COLUMNS

#: Every per-image score of the summary table (segcore.metrics.SCORE_COLUMNS without the cosmic counts).
SUMMARY_METRICS = tuple(name for name in SCORE_COLUMNS if name not in COUNTS)
#: Split-level numbers read from the pixel curves, shown above them.
HEADLINE_METRICS = headline_names()

#: What the user reads instead of a column name.
LABELS = {
    "iou": "IoU",
    "dice": "Dice",
    "pixel_accuracy": "Pixel accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "specificity": "Specificity",
    "count_score": "Count score",
    "count_error": "Count error",
    "abs_count_error": "Absolute count error",
    "object_recall": "Object recall",
    "object_precision": "Object precision",
    "object_f1": "Object F1",
    "average_precision": "Average precision",
    "roc_auc": "ROC AUC",
    "precision_at_95_recall": "Precision at 95 % recall",
    "tpr_at_0.01%_fpr": "Recall at 0.01 % FPR",
    "tpr_at_0.1%_fpr": "Recall at 0.1 % FPR",
    "true_count": "True cosmics",
    "pred_count": "Predicted cosmics",
    "loss": "Loss",
    "val_loss": "Validation loss",
    "accuracy": "Accuracy",
    "learning_rate": "Learning rate",
}

#: Panels of the learning curves: the training column and its validation twin.
CURVE_PANELS = ("loss", "precision", "recall", "specificity", "iou")

#: One colour per run (or metric), the same in every chart.
PALETTE = qualitative.Plotly

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.12))
#: Every score lies in [0, 1]; a fixed axis keeps boxes comparable between charts.
_SCORE_AXIS = dict(range=[-0.03, 1.03], title="score")


def label(column: str) -> str:
    """A readable name for a metric column (``val_iou`` -> ``Validation IoU``)."""
    if column in LABELS:
        return LABELS[column]
    if column.startswith("val_"):
        return "Validation " + label(column[4:])
    return column.replace("_", " ").capitalize()


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _present(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    return [c for c in columns if c in frame.columns and frame[c].notna().any()]


def _images(frame: pd.DataFrame) -> list[str]:
    if "image" in frame.columns:
        return frame["image"].astype(str).tolist()
    return [str(i) for i in frame.index]


def _epochs(frame: pd.DataFrame) -> pd.Series:
    # The store counts epochs from 0 like Keras; people count from 1.
    return frame["epoch"] + 1


def _epoch_axis(count: int) -> dict:
    """Whole epochs only, about ten ticks at most."""
    return dict(title_text="epoch", tick0=1, dtick=max(1, math.ceil(count / 10)))


# --------------------------------------------------------------------------- #
# Learning curves
# --------------------------------------------------------------------------- #


def learning_curves(epochs: pd.DataFrame, panels: Sequence[str] = CURVE_PANELS, columns: int = 3) -> go.Figure:
    """One panel per quantity, training (solid) and validation (dashed) against the epoch.

    Parameters
    ----------
    epochs : one row per epoch with ``epoch`` (from 0) and metric columns such as
        ``loss``, ``val_loss``, ``iou``, ``val_iou``.
    panels : training column names; each panel also draws ``val_<name>`` when present.

    Returns
    -------
    Figure with one trace per present column; x is the epoch counted from 1.
    """
    panels = [p for p in panels if _present(epochs, (p, f"val_{p}"))] or list(panels[:1])
    rows = math.ceil(len(panels) / columns)
    cols = min(columns, len(panels))
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[label(p) for p in panels])
    x = _epochs(epochs) if "epoch" in epochs.columns else pd.Series(dtype=float)
    in_legend: set[str] = set()
    for number, panel in enumerate(panels):
        row, col = number // cols + 1, number % cols + 1
        for kind, column, dash in (("Training", panel, "solid"), ("Validation", f"val_{panel}", "dash")):
            if column not in _present(epochs, [column]):
                continue
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=epochs[column],
                    mode="lines+markers",
                    name=kind,
                    legendgroup=kind,
                    showlegend=kind not in in_legend,
                    line=dict(color=color(0 if kind == "Training" else 1), dash=dash),
                    hovertemplate=f"{label(column)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            in_legend.add(kind)
        figure.update_xaxes(**_epoch_axis(len(epochs)), row=row, col=col)
        if panel == "loss":
            # Losses fall by orders of magnitude; a log axis keeps late epochs readable.
            figure.update_yaxes(type="log", tickformat=".2~g", row=row, col=col)
    figure.update_layout(height=300 * rows + 30, **_LAYOUT)
    # Above the panels, where it is seen before the curves.
    figure.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.04, xanchor="right", x=1), margin_t=70)
    return figure


def overlaid_learning_curves(
    curves: Mapping[str, pd.DataFrame], panels: Sequence[str] = ("loss", "iou"), columns: int = 2
) -> go.Figure:
    """Several runs' learning curves on shared panels, one colour per run.

    Parameters
    ----------
    curves : run label -> that run's epoch table (as :func:`learning_curves` takes).
    panels : training columns; each panel has a training (solid) and a validation
        (dashed) line per run, where the run recorded them.
    """
    panels = list(panels)
    rows = math.ceil(len(panels) / columns)
    cols = min(columns, len(panels))
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[label(p) for p in panels])
    in_legend: set[str] = set()
    longest = max((len(e) for e in curves.values() if e is not None), default=0)
    for run_index, (name, epochs) in enumerate(curves.items()):
        if epochs is None or epochs.empty or "epoch" not in epochs.columns:
            continue
        x = _epochs(epochs)
        for number, panel in enumerate(panels):
            row, col = number // cols + 1, number % cols + 1
            for column, dash, suffix in ((panel, "solid", "training"), (f"val_{panel}", "dash", "validation")):
                if column not in _present(epochs, [column]):
                    continue
                figure.add_trace(
                    go.Scatter(
                        x=x,
                        y=epochs[column],
                        mode="lines+markers",
                        name=f"{name} ({suffix})",
                        legendgroup=name,
                        showlegend=f"{name} ({suffix})" not in in_legend,
                        line=dict(color=color(run_index), dash=dash),
                        hovertemplate=f"{name}<br>{label(column)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )
                in_legend.add(f"{name} ({suffix})")
            figure.update_xaxes(**_epoch_axis(longest), row=row, col=col)
            if panel == "loss":
                figure.update_yaxes(type="log", tickformat=".2~g", row=row, col=col)
    figure.update_layout(height=320 * rows, **_LAYOUT)
    return figure


# --------------------------------------------------------------------------- #
# Per-image scores
# --------------------------------------------------------------------------- #


def metric_summary(per_image: pd.DataFrame, metrics: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Mean, standard deviation (population, as the evaluator reports it) and
    ``mean ± std`` text of every present metric, one row per metric."""
    present = _present(per_image, metrics)
    scores = per_image[present].astype(float)
    table = pd.DataFrame(
        {
            "metric": [label(m) for m in present],
            "mean": scores.mean().to_numpy(),
            "std": scores.std(ddof=0).to_numpy(),
            "images": scores.notna().sum().to_numpy(),
        },
        index=pd.Index(present, name="key"),
    )
    table["mean ± std"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(table["mean"], table["std"])]
    return table


def _box(values: pd.Series, images: list[str], name: str, box_color: str, x=None, **kw) -> go.Box:
    return go.Box(
        y=values.astype(float),
        x=x,
        name=name,
        text=images,
        boxpoints="all",
        jitter=0.4,
        pointpos=0,
        marker=dict(color=box_color, size=5, opacity=0.7),
        line=dict(color=box_color),
        boxmean=True,
        hovertemplate="%{text}<br>" + "%{y:.4f}<extra>" + name + "</extra>",
        **kw,
    )


def metrics_boxplot(per_image: pd.DataFrame, metrics: Sequence[str] = BOUNDED_SCORES, title: str | None = None) -> go.Figure:
    """All metrics side by side, one box per metric, every image a hoverable point."""
    images = _images(per_image)
    figure = go.Figure()
    for index, metric in enumerate(_present(per_image, metrics)):
        figure.add_trace(_box(per_image[metric], images, label(metric), color(index)))
    figure.update_layout(
        title=title or "Every score, one point per image",
        yaxis=_SCORE_AXIS,
        showlegend=False,
        height=450,
        **_LAYOUT,
    )
    return figure


def metric_boxplot(per_image: pd.DataFrame, metric: str, index: int = 0) -> go.Figure:
    """One metric alone, every image a hoverable point."""
    if metric not in per_image.columns:
        raise ValueError(f"no column {metric!r} in the results")
    figure = go.Figure(_box(per_image[metric], _images(per_image), label(metric), color(index)))
    # count errors are not bounded by 1: their axis follows the values
    axis = dict(title="(predicted - true) / true") if metric in COUNT_ERRORS else _SCORE_AXIS
    figure.update_layout(title=label(metric), showlegend=False, height=320, yaxis=axis, **_LAYOUT)
    return figure


def grouped_boxplot(per_run: Mapping[str, pd.DataFrame], metrics: Sequence[str] = BOUNDED_SCORES) -> go.Figure:
    """Boxes of every metric grouped by run: one trace (colour) per run.

    Parameters
    ----------
    per_run : run label -> that run's per-image table.
    """
    figure = go.Figure()
    for index, (name, table) in enumerate(per_run.items()):
        present = _present(table, metrics)
        images = _images(table)
        x = [label(m) for m in present for _ in images]
        y = pd.concat([table[m].astype(float) for m in present], ignore_index=True) if present else pd.Series(dtype=float)
        figure.add_trace(
            _box(y, images * len(present), name, color(index), x=x, offsetgroup=str(index), showlegend=True)
        )
    figure.update_layout(boxmode="group", yaxis=_SCORE_AXIS, height=480, title="Every score, by run", **_LAYOUT)
    return figure


# --------------------------------------------------------------------------- #
# Comparing runs
# --------------------------------------------------------------------------- #


def per_image_difference(wide: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per-image scores of two runs and their difference ``b - a``, largest first.

    Parameters
    ----------
    wide : one row per image (``image`` column or the index), one column per run.
    a, b : the two columns to compare.

    Returns
    -------
    DataFrame with columns image, a, b, difference, sorted by difference
    descending (images where ``b`` does best on top); images missing in
    either run are left out.
    """
    for column in (a, b):
        if column not in wide.columns:
            raise ValueError(f"no column {column!r} in the per-image table")
    images = wide["image"] if "image" in wide.columns else pd.Series(wide.index, index=wide.index)
    table = pd.DataFrame(
        {"image": images.astype(str).to_numpy(), a: wide[a].astype(float).to_numpy(), b: wide[b].astype(float).to_numpy()}
    )
    table = table.dropna(subset=[a, b])
    table["difference"] = table[b] - table[a]
    return table.sort_values("difference", ascending=False, kind="stable").reset_index(drop=True)


def difference_bars(difference: pd.DataFrame, a: str, b: str, metric: str = "iou") -> go.Figure:
    """Sorted bars of ``b - a`` per image: right of zero ``b`` did better, left ``a``.

    ``difference`` is :func:`per_image_difference`'s table.
    """
    values = difference["difference"].astype(float)
    bar_colors = np.where(values >= 0, color(1), color(0)).tolist()
    figure = go.Figure(
        go.Bar(
            x=values,
            y=difference["image"],
            orientation="h",
            marker_color=bar_colors,
            customdata=np.stack([difference[a].astype(float), difference[b].astype(float)], axis=-1)
            if len(difference)
            else None,
            hovertemplate=(
                "%{y}<br>"
                + f"{b}: %{{customdata[1]:.4f}}<br>{a}: %{{customdata[0]:.4f}}<br>"
                + "difference: %{x:+.4f}<extra></extra>"
            ),
        )
    )
    figure.update_layout(
        title=f"{label(metric)} per image: {b} minus {a}",
        xaxis_title=f"{label(metric)} difference (> 0: {b} better)",
        yaxis=dict(autorange="reversed", title=None),
        height=max(300, 22 * len(difference) + 120),
        showlegend=False,
        **_LAYOUT,
    )
    return figure


def config_differences(configs: Mapping[str, Mapping]) -> pd.DataFrame:
    """The configuration keys whose values differ between runs.

    Parameters
    ----------
    configs : run label -> its configuration dict.

    Returns
    -------
    DataFrame indexed by key, one column per run, values as text (a key a run
    lacks reads "-"); keys with the same value in every run are left out.
    """
    keys = sorted({key for config in configs.values() for key in config})
    rows = {}
    for key in keys:
        values = [as_text(config.get(key, "-")) for config in configs.values()]
        if len(set(values)) > 1:
            rows[key] = values
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(configs))
    table.index.name = "setting"
    return table


def as_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --------------------------------------------------------------------------- #
# Precision-recall and ROC curves
# --------------------------------------------------------------------------- #

#: False-positive rates marked on the ROC chart (those the headline numbers are read at).
MARKED_FPRS = (1e-4, 1e-3)


def curve_table(histogram) -> pd.DataFrame:
    """The pixel curves of a ``segcore.curves.ProbabilityHistogram`` as a table, highest threshold first:
    threshold, precision, recall (= true-positive rate) and fpr, one row wherever the curve moves."""
    thresholds, tp, fp = histogram.counts()
    positives, negatives = histogram.n_positive, histogram.n_negative
    moves = np.concatenate([[True], (np.diff(tp) != 0) | (np.diff(fp) != 0)])
    predicted = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "threshold": thresholds,
                "precision": np.where(predicted > 0, tp / np.maximum(predicted, 1), np.nan),
                "recall": tp / positives if positives else np.nan,
                "fpr": fp / negatives if negatives else np.nan,
            }
        )
    return table[moves].reset_index(drop=True)


def object_curve_table(objects) -> pd.DataFrame:
    """A ``segcore.curves.ObjectCurve`` as a table: threshold, object_precision, object_recall, object_f1."""
    return pd.DataFrame(objects.curve())


def _point_trace(point: Mapping, x: str, y: str, point_color: str, symbol: str, name: str) -> go.Scatter:
    return go.Scatter(
        x=[point[x]], y=[point[y]], mode="markers", name=name,
        marker=dict(color=point_color, size=13, symbol=symbol, line=dict(color="black", width=1)),
        hovertemplate=f"{name}<br>threshold {point['threshold']:g}<br>{x} %{{x:.4g}}<br>{y} %{{y:.4f}}<extra></extra>",
    )


def _add_points(figure: go.Figure, names: list[str], points: Sequence[Mapping], x: str, y: str) -> None:
    """Operating points: ``{"run": curve name, "threshold", "precision", "recall", "fpr", "kind"}``; kind
    "evaluation" (a diamond) or "slider" (a circle)."""
    for point in points:
        if point.get(x) is None or point.get(y) is None or not np.isfinite([point[x], point[y]]).all():
            continue
        index = names.index(point["run"]) if point["run"] in names else 0
        slider = point.get("kind") == "slider"
        name = f"{point['run']}: threshold {point['threshold']:g}" + (" (slider)" if slider else "")
        figure.add_trace(_point_trace(point, x, y, color(index), "circle" if slider else "diamond", name))


def pr_curves(
    curves: Mapping[str, pd.DataFrame],
    points: Sequence[Mapping] = (),
    objects: Mapping[str, pd.DataFrame] | None = None,
) -> go.Figure:
    """Precision against recall, one line per run (pixels solid, cosmics dashed when given).

    Parameters
    ----------
    curves : run label -> :func:`curve_table`.
    points : operating points to mark (see ``_add_points``): the evaluation's threshold, the slider's.
    objects : run label -> :func:`object_curve_table`, drawn dashed with markers at its thresholds.
    """
    figure = go.Figure()
    names = list(curves)
    for index, (name, table) in enumerate(curves.items()):
        shown = table.dropna(subset=["precision", "recall"])
        figure.add_trace(go.Scatter(
            x=shown["recall"], y=shown["precision"], mode="lines", name=f"{name} (pixels)",
            line=dict(color=color(index)), customdata=shown["threshold"],
            hovertemplate="threshold %{customdata:.4g}<br>recall %{x:.4f}<br>precision %{y:.4f}<extra>" + name + "</extra>",
        ))
    for name, table in (objects or {}).items():
        index = names.index(name) if name in names else len(names)
        figure.add_trace(go.Scatter(
            x=table["object_recall"], y=table["object_precision"], mode="lines+markers", name=f"{name} (cosmics)",
            line=dict(color=color(index), dash="dash"), marker=dict(size=5), customdata=table["threshold"],
            hovertemplate="threshold %{customdata:.2f}<br>object recall %{x:.4f}<br>object precision %{y:.4f}"
            "<extra>" + name + "</extra>",
        ))
    _add_points(figure, names, points, "recall", "precision")
    figure.add_vline(x=0.95, line=dict(color="gray", dash="dot", width=1), annotation_text="95 % recall")
    figure.update_layout(
        title="Precision-recall", xaxis=dict(title="recall", range=[-0.02, 1.02]),
        yaxis=dict(title="precision", range=[-0.02, 1.02]), height=430, **_LAYOUT,
    )
    return figure


def roc_curves(curves: Mapping[str, pd.DataFrame], points: Sequence[Mapping] = ()) -> go.Figure:
    """True-positive rate (recall) against false-positive rate on a log axis, one line per run;
    the rates of :data:`MARKED_FPRS` dotted."""
    figure = go.Figure()
    names = list(curves)
    lowest = []
    for index, (name, table) in enumerate(curves.items()):
        # a log axis has no 0: the curve starts at the first false positive
        shown = table[(table["fpr"] > 0)].dropna(subset=["fpr", "recall"])
        lowest.append(shown["fpr"].min() if len(shown) else np.nan)
        figure.add_trace(go.Scatter(
            x=shown["fpr"], y=shown["recall"], mode="lines", name=name, line=dict(color=color(index)),
            customdata=shown["threshold"],
            hovertemplate="threshold %{customdata:.4g}<br>FPR %{x:.3g}<br>recall %{y:.4f}<extra>" + name + "</extra>",
        ))
    _add_points(figure, names, [p for p in points if (p.get("fpr") or 0) > 0], "fpr", "recall")
    for rate in MARKED_FPRS:
        figure.add_vline(x=rate, line=dict(color="gray", dash="dot", width=1), annotation_text=f"{rate * 100:g} %")
    low = np.nanmin(lowest) if lowest and np.isfinite(lowest).any() else 1e-6
    figure.update_layout(
        title="ROC",
        xaxis=dict(title="false-positive rate (log)", type="log", range=[math.log10(min(low, 1e-5)), 0]),
        yaxis=dict(title="true-positive rate (recall)", range=[-0.02, 1.02]), height=430, **_LAYOUT,
    )
    return figure
