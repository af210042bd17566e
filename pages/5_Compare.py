"""Compare runs: what differs in their set-up, and how their scores differ, overall and per image."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from segcore.metrics import BOUNDED_SCORES
from ui import charts, navigation
from ui.common import init_store
from ui.evaluation_views import choose_evaluations, label_links
from ui.run_text import (
    LACOSMIC_LABEL,
    evaluation_threshold_text,
    full_config,
    is_lacosmic,
    lacosmic_parameters_text,
    method_text,
    run_label,
    threshold_text,
)

SPLITS = ("test", "validation", "train")
HIGHLIGHT = "background-color: rgba(255, 200, 0, 0.35)"

init_store()
st.title("Compare runs")
st.caption("Which set-up finds and counts cosmics best, and on which frames the runs disagree.")

db.refresh_run_states()
runs = db.list_runs()
evaluated_ids = {e.run_id for e in db.list_evaluations()}
candidates = [r for r in runs if r.id in evaluated_ids]

if len(candidates) < 2:
    have = "No run has" if not candidates else "Only one run has"
    st.info(
        f"{have} been evaluated yet; comparing needs two. Train another run on the Train page, for example "
        "with another crop size or learning rate; it is evaluated on the test split when it ends."
    )
    navigation.link(navigation.TRAIN, "Train a model")
    st.stop()

by_id = {r.id: r for r in candidates}
left, right = st.columns([3, 1])
chosen_ids = left.multiselect(
    "Runs to compare",
    list(by_id),
    default=list(by_id)[:2],  # the two newest
    format_func=lambda i: run_label(by_id[i]),
    key="compare_runs",
)
split = right.selectbox("Split", SPLITS, key="compare_split", help="Each run's newest evaluation on this split is used.")
if len(chosen_ids) < 2:
    st.info("Choose at least two runs.")
    st.stop()
chosen = [by_id[i] for i in chosen_ids]

names = {r.id: f"#{r.id} {r.name}" for r in chosen}
latest = choose_evaluations(chosen, split, names)
missing = [names[i] for i, e in latest.items() if e is None]
if missing:
    st.warning(f"Not evaluated on the {split} split: {', '.join(missing)}. They are left out of the scores below.")
scored = [r for r in chosen if latest[r.id] is not None]

# --------------------------------------------------------------------------- #
# Set-up
# --------------------------------------------------------------------------- #

st.subheader("What differs in their set-up")
configs = {names[r.id]: {**full_config(r), "dataset": r.dataset_name} for r in chosen}
for r in chosen:
    configs[names[r.id]]["method"] = method_text(r)
    # What only training has, an LA Cosmic run says it has not.
    configs[names[r.id]]["backbone weights used"] = LACOSMIC_LABEL if is_lacosmic(r) else r.backbone_weights or "–"
    configs[names[r.id]]["training arithmetic used"] = LACOSMIC_LABEL if is_lacosmic(r) else r.precision or "–"
    configs[names[r.id]]["run threshold"] = threshold_text(r)
    configs[names[r.id]]["evaluation threshold"] = (
        evaluation_threshold_text(latest[r.id], r) if latest[r.id] is not None else "–"
    )
differences = charts.config_differences(configs)
if differences.empty:
    st.write("The runs were set up the same way.")
else:
    st.dataframe(
        differences.rename(index=charts.label).style.map(lambda _: HIGHLIGHT),
        column_config={"setting": st.column_config.TextColumn("Setting", pinned=True)},
    )
with st.expander("Every setting (those that differ highlighted)"):
    everything = pd.DataFrame({name: {k: charts.as_text(v) for k, v in config.items()} for name, config in configs.items()})
    everything.index.name = "setting"
    st.dataframe(
        everything.style.apply(lambda row: [HIGHLIGHT if row.name in differences.index else ""] * len(row), axis=1)
        .format_index(charts.label, axis=0)
    )

if len(scored) < 2:
    st.info(f"Fewer than two of these runs have an evaluation on the {split} split; choose another split or other runs.")
    st.stop()

# --------------------------------------------------------------------------- #
# Scores
# --------------------------------------------------------------------------- #

st.subheader("Mean scores side by side")
means = db.compare_runs([r.id for r in scored], split=split, evaluation_ids={r.id: latest[r.id].id for r in scored})
if "run_id" in means.columns:
    means = means.set_index("run_id")
# the split-level numbers first, then the means over images; the count errors before the count score
for key in charts.HEADLINE_METRICS:
    means[key] = means.get(f"pooled_{key}")
metric_columns = [m for m in (*charts.HEADLINE_METRICS, *charts.SUMMARY_METRICS) if m in means.columns]
side = means[metric_columns].astype(float).T
side.columns = [names.get(c, str(c)) for c in side.columns]
lower_is_better = [charts.label(m) for m in side.index if m == "abs_count_error"]
higher_is_better = [charts.label(m) for m in side.index if m not in charts.COUNT_ERRORS]
side.index = [charts.label(m) for m in side.index]
best = "font-weight: bold; " + HIGHLIGHT
st.dataframe(
    side.style.format("{:.4f}", na_rep="–")
    .highlight_max(axis=1, props=best, subset=pd.IndexSlice[higher_is_better, :])
    .highlight_min(axis=1, props=best, subset=pd.IndexSlice[lower_is_better, :])
)
st.caption(
    "The best value of every score is highlighted (the smallest absolute count error). The first rows are read "
    "from each split's curves; the others are means over its images. Count error = (predicted - true) / true."
)
st.markdown(
    "Thresholds: "
    + " · ".join(f"{names[r.id]} **{evaluation_threshold_text(latest[r.id], r)}**" for r in scored)
)

grown = [f"{names[r.id]} {latest[r.id].dilation} px" for r in scored if latest[r.id].dilation]
if grown:
    st.markdown("Predicted masks grown by: " + " · ".join(grown))

st.subheader("Precision-recall and ROC curves")
stored = {r.id: db.evaluation_curves(latest[r.id].id) for r in scored}
with_curves = [r for r in scored if stored[r.id] is not None]
if not with_curves:
    st.info("These evaluations were stored before curves were kept; re-score them on the Results page.")
else:
    tables = {names[r.id]: charts.curve_table(stored[r.id].histogram) for r in with_curves}
    points = [
        {"run": names[r.id], "kind": "evaluation", "threshold": latest[r.id].threshold,
         **stored[r.id].histogram.at_threshold(latest[r.id].threshold)}
        for r in with_curves
    ]
    objects = {names[r.id]: charts.object_curve_table(stored[r.id].objects) for r in with_curves}
    pr_column, roc_column = st.columns(2)
    pr_column.plotly_chart(charts.pr_curves(tables, points, objects=objects), key="compare_pr")
    roc_column.plotly_chart(charts.roc_curves(tables, points), key="compare_roc")
    st.caption(
        "Solid: pixels; dashed: cosmics. A diamond marks each run's evaluation threshold; LA Cosmic, which "
        "gives masks rather than probabilities, is one such point joined to the curve's ends."
    )
    left_out = [names[r.id] for r in scored if stored[r.id] is None]
    if left_out:
        st.caption("Stored before curves were kept (re-score them to draw): " + ", ".join(left_out))

per_run = {names[r.id]: db.per_image_results(latest[r.id].id) for r in scored}
st.plotly_chart(charts.grouped_boxplot(per_run), key="compare_boxes")

st.subheader("Learning curves")
trained = [r for r in chosen if not is_lacosmic(r)]
if trained:
    curves = {names[r.id]: db.epoch_metrics(r.id) for r in trained}
    st.plotly_chart(charts.overlaid_learning_curves(curves, panels=("loss", "iou", "precision", "recall")), key="compare_curves")
    st.caption("Solid: training; dashed: validation.")
for r in chosen:
    if is_lacosmic(r):
        st.caption(f"{names[r.id]}: {LACOSMIC_LABEL}, no learning curves; parameters: {lacosmic_parameters_text(r)}")

# --------------------------------------------------------------------------- #
# Per image
# --------------------------------------------------------------------------- #

st.subheader("Image by image")
c1, c2, c3 = st.columns(3)
scored_ids = [r.id for r in scored]
run_a = by_id[c1.selectbox("Run A", scored_ids, format_func=lambda i: run_label(by_id[i]), index=0, key="compare_a")]
run_b = by_id[c2.selectbox("Run B", scored_ids, format_func=lambda i: run_label(by_id[i]), index=1, key="compare_b")]
# scores where higher is better, so that "B is better" reads right
metric = c3.selectbox("Score", BOUNDED_SCORES, format_func=charts.label, key="compare_metric")
if run_a.id == run_b.id:
    st.info("Choose two different runs as A and B.")
    st.stop()
eval_a, eval_b = latest[run_a.id], latest[run_b.id]
wide = db.compare_per_image([eval_a.id, eval_b.id], metric=metric)
# The store names the columns after the evaluations, in the order asked; the page speaks of A and B.
label_a, label_b = f"A: {names[run_a.id]}", f"B: {names[run_b.id]}"
value_columns = [c for c in wide.columns if c != "image"]
wide = wide.rename(columns=dict(zip(value_columns, (label_a, label_b))))
difference = charts.per_image_difference(wide, label_a, label_b)
if difference.empty:
    st.info("These evaluations share no images (were they made on different datasets?).")
else:
    better_b = int((difference["difference"] > 0).sum())
    better_a = int((difference["difference"] < 0).sum())
    st.markdown(
        f"{charts.label(metric)}: **B is better on {better_b}** images, **A on {better_a}**, "
        f"equal on {len(difference) - better_a - better_b}. Top: where B beats A most; bottom: where A beats B most."
    )
    st.plotly_chart(charts.difference_bars(difference, label_a, label_b, metric), key="compare_diff")
    difference["frame"] = label_links(eval_a.id, difference["image"])
    st.dataframe(
        difference,
        hide_index=True,
        column_config={
            "frame": st.column_config.LinkColumn("Label", display_text="open on Label",
                                                 help="The frame on the Label page, to correct its mask."),
            label_a: st.column_config.NumberColumn(format="%.4f"),
            label_b: st.column_config.NumberColumn(format="%.4f"),
            "difference": st.column_config.NumberColumn("B − A", format="%+.4f"),
        },
    )
