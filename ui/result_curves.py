"""The Results page's numbers a paper reports and the curves they come from: the headline metrics,
pixel, cosmic and count scores side by side, and the precision-recall and ROC curves of one
evaluation with a threshold slider moving a point along them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from ui import charts
from ui.common import store_key
from ui.run_text import is_lacosmic

PIXEL_SCORES = ("precision", "recall", "f1", "iou")
COSMIC_SCORES = ("object_precision", "object_recall", "object_f1")
COUNT_SCORES = ("abs_count_error", "count_error", "count_score")


@st.cache_data(show_spinner=False, max_entries=20)
def stored_curves(store: str, evaluation_id: int):
    return db.evaluation_curves(evaluation_id)


def score_numbers(keys, values) -> str:
    """"Label **0.123** · ..." for the ``keys`` that ``values`` (a dict or Series) holds a number for."""
    return " · ".join(
        f"{charts.label(k)} **{values[k]:.3f}**" for k in keys if values.get(k) is not None and pd.notna(values.get(k))
    )


def _point_number(value: float, spec: str) -> str:
    """``value`` in bold, or a dash where it is undefined (0/0: no pixel marked, or no cosmic pixel in the split)."""
    return "**–**" if pd.isna(value) else f"**{value:{spec}}**"


def operating_point_text(threshold: float, point: dict) -> str:
    """What the pixels above ``threshold`` score (``point`` from ``Histogram.at_threshold``)."""
    if pd.isna(point["precision"]):  # no pixel is above it: precision is 0/0, recall and rate 0 where defined
        return (f"At threshold **{threshold:g}** no pixel is marked: recall {_point_number(point['recall'], 'g')} · "
                f"false-positive rate {_point_number(point['fpr'], 'g')}")
    return (
        f"At threshold **{threshold:g}**: precision {_point_number(point['precision'], '.3f')} · "
        f"recall {_point_number(point['recall'], '.3f')} · false-positive rate {_point_number(point['fpr'], '.2e')}"
    )


def headline_numbers(pooled: dict, summary: pd.DataFrame) -> None:
    """The headline metrics, then pixels and cosmics pooled over the split and counts averaged over images."""
    headline = st.columns(len(charts.HEADLINE_METRICS))
    for column, key in zip(headline, charts.HEADLINE_METRICS):
        value = pooled.get(key)
        column.metric(charts.label(key), "–" if value is None else f"{value:.3f}")
    means = summary["mean"] if "mean" in summary.columns else pd.Series(dtype=float)
    pixels_column, cosmics_column, counts_column = st.columns(3)
    pixels_column.markdown("**Pixels**, pooled over the split: " + (score_numbers(PIXEL_SCORES, pooled) or "–"))
    cosmics_column.markdown("**Cosmics**, pooled over the split: " + (score_numbers(COSMIC_SCORES, pooled) or "–"))
    counts_column.markdown("**Counts**, mean over images: " + (score_numbers(COUNT_SCORES, means) or "–"))


def curves_panel(run, evaluation) -> None:
    """Precision-recall and ROC curves of the evaluation, the point of its threshold and of the slider's."""
    curves = stored_curves(store_key(), evaluation.id)
    if curves is None:
        st.info("This evaluation was stored before curves were kept; re-score it below to see its curves.")
        return
    if is_lacosmic(run):
        inspected = evaluation.threshold
        st.caption(
            "LA Cosmic gives masks, not probabilities: its curves join its one operating point to "
            "'nothing marked' and 'everything marked'."
        )
    else:
        inspected = st.slider(
            "Threshold to inspect", 0.01, 0.99, float(evaluation.threshold), 0.01, key=f"results_inspect_{evaluation.id}",
            help="Moves the circle along the curves; the diamond is this evaluation's threshold. Re-score below to "
            "store the scores at another threshold.",
        )
    name = f"#{run.id}"
    points = [
        {"run": name, "kind": "evaluation", "threshold": evaluation.threshold,
         **curves.histogram.at_threshold(evaluation.threshold)},
        {"run": name, "kind": "slider", "threshold": inspected, **curves.histogram.at_threshold(inspected)},
    ]
    st.markdown(operating_point_text(inspected, points[1]))
    table_of = charts.curve_table(curves.histogram)
    pr_column, roc_column = st.columns(2)
    pr_column.plotly_chart(
        charts.pr_curves({name: table_of}, points, objects={name: charts.object_curve_table(curves.objects)}),
        key="results_pr",
    )
    roc_column.plotly_chart(charts.roc_curves({name: table_of}, points), key="results_roc")
    st.caption(
        "Solid: pixels (every pixel of the split, from a histogram of the probabilities); dashed: cosmics, "
        "matched one to one (a true cosmic is found when a predicted one overlaps it by at least a pixel, each "
        "predicted cosmic finds at most one), at thresholds 0.05 to 0.95. The dotted lines mark where the "
        "headline numbers are read."
    )
