"""Results of one run: scores per image, their spread, overlays, and re-scoring."""

from __future__ import annotations

import streamlit as st

import db
from ui import charts, navigation
from ui.common import init_store, store_key
from ui.result_curves import curves_panel, headline_numbers
from ui.rescore import PENDING_KEY, evaluate_form, rescore_panel, unevaluated_runs
from ui.result_images import overlay_browser, per_image, per_image_table
from ui.run_admin import run_notes_and_delete
from ui.run_text import (
    LACOSMIC_LABEL,
    evaluation_label,
    evaluation_threshold_text,
    is_lacosmic,
    lacosmic_parameters_text,
    run_label,
    threshold_text,
)

init_store()
st.title("Results")
st.caption(
    "How well a trained model (or LA Cosmic, which needs no training) finds and counts cosmics, frame by frame, "
    "on frames it did not train on."
)

db.refresh_run_states()
runs = db.list_runs()
evaluations = db.list_evaluations()
by_run: dict[int, list] = {}
for evaluation in sorted(evaluations, key=lambda e: e.id, reverse=True):
    by_run.setdefault(evaluation.run_id, []).append(evaluation)

if not runs:
    st.info("No model has been trained yet. Start a run on the Train page; its results appear here when it ends.")
    navigation.link(navigation.TRAIN, "Train a model")
    st.stop()

unevaluated = unevaluated_runs(runs, by_run)
if not by_run:
    st.info(
        "No run has been evaluated yet. Every run is evaluated on the test split when its training ends; "
        "runs still going are on the Train page."
    )
    if unevaluated:
        st.markdown("A run that was stopped early can be evaluated with the best weights it saved:")
        evaluate_form(unevaluated, "first_evaluation")
    navigation.link(navigation.TRAIN, "Train page")
    st.stop()

# A new evaluation made on this page becomes the one shown (set before the choosers exist).
pending = st.session_state.pop(PENDING_KEY, None)
if pending:
    st.session_state["results_run"], st.session_state["results_evaluation"] = pending

evaluated = [r for r in runs if r.id in by_run]
run_ids = [r.id for r in evaluated]
if st.session_state.get("results_run") not in run_ids:
    st.session_state["results_run"] = run_ids[0]
runs_by_id = {r.id: r for r in evaluated}

left, right = st.columns(2)
run_id = left.selectbox("Run", run_ids, format_func=lambda i: run_label(runs_by_id[i]), key="results_run")
run = runs_by_id[run_id]
run_evaluations = {e.id: e for e in by_run[run_id]}
if st.session_state.get("results_evaluation") not in run_evaluations:
    st.session_state["results_evaluation"] = next(iter(run_evaluations))
evaluation_id = right.selectbox(
    "Evaluation", list(run_evaluations), format_func=lambda i: evaluation_label(run_evaluations[i]), key="results_evaluation"
)
evaluation = run_evaluations[evaluation_id]
run_notes_and_delete(run, "results")

table = per_image(store_key(), evaluation_id)
if table.empty:
    st.warning("This evaluation holds no images (the split had no frames with masks).")
    st.stop()

# --------------------------------------------------------------------------- #
# Summary
# --------------------------------------------------------------------------- #

st.subheader("Summary")
summary = charts.metric_summary(table)
pooled = evaluation.pooled or {}
columns = st.columns(5)
columns[0].metric("Images", len(table))
if is_lacosmic(run):
    columns[1].metric("Detector", "LA Cosmic", help=f"{LACOSMIC_LABEL}: it gives masks, not probabilities, so it has no threshold.")
else:
    columns[1].metric(
        "Threshold",
        f"{evaluation.threshold:g}",
        help=f"{evaluation_threshold_text(evaluation, run)}. The run's threshold: {threshold_text(run)}. "
        f"Network arithmetic: {evaluation.precision or 'not recorded'}",
    )
columns[2].metric("Mean IoU", f"{summary.loc['iou', 'mean']:.3f}" if "iou" in summary.index else "–")
columns[3].metric("True cosmics", int(table["true_count"].sum()))
columns[4].metric("Predicted cosmics", int(table["pred_count"].sum()))
grown = f" · predicted masks grown by **{evaluation.dilation} px**" if evaluation.dilation else ""
if is_lacosmic(run):
    st.caption(f"**{LACOSMIC_LABEL}** · parameters: {lacosmic_parameters_text(run)}{grown}")
else:
    st.caption(
        f"Threshold of this evaluation: **{evaluation_threshold_text(evaluation, run)}** · "
        f"the run's threshold: **{threshold_text(run)}**{grown}"
    )

# --------------------------------------------------------------------------- #
# Numbers a paper reports, and the curves they come from
# --------------------------------------------------------------------------- #

headline_numbers(pooled, summary)
curves_panel(run, evaluation)

left, right = st.columns([2, 3])
with left:
    st.dataframe(
        summary[["metric", "mean ± std"]],
        hide_index=True,
        column_config={"metric": "Score", "mean ± std": "Mean ± std over images"},
    )
    st.download_button(
        "Download the per-image table (CSV)",
        table.drop(columns=[c for c in ("prediction_path",) if c in table.columns]).to_csv(index=False).encode(),
        file_name=f"run{run.id}_evaluation{evaluation_id}_{evaluation.split}.csv",
        mime="text/csv",
        icon=":material/download:",
    )
with right:
    st.plotly_chart(charts.metrics_boxplot(table), key="box_all")
st.caption(
    "Each dot is an image: hover to see which; the dashed line in a box is the mean. "
    "IoU, Dice, pixel accuracy, precision, recall, F1 and specificity count pixels; object precision, recall "
    "and F1 count cosmics matched one to one; count error = (predicted - true) / true cosmics (a frame without "
    "true cosmics counts each predicted one as a whole error), which punishes over- and under-counting alike; "
    "count score = min(1, predicted / true), the original score, which does not punish over-counting."
)

boxes, images_tab, overlays_tab, rescore_tab = st.tabs(["Each score alone", "Per-image table", "Overlays", "Re-score"])

with boxes:
    present = [m for m in charts.SUMMARY_METRICS if m in table.columns and table[m].notna().any()]
    grid = st.columns(3)
    for index, metric in enumerate(present):
        grid[index % 3].plotly_chart(charts.metric_boxplot(table, metric, index), key=f"box_{metric}")
with images_tab:
    per_image_table(table)
with overlays_tab:
    overlay_browser(run, evaluation, table)
with rescore_tab:
    rescore_panel(run, evaluation)

if unevaluated:
    with st.expander(f"Runs without an evaluation ({len(unevaluated)})"):
        st.markdown(
            "These runs were stopped or failed before their evaluation; evaluate them with the best weights they "
            "saved (LA Cosmic runs with their parameters)."
        )
        evaluate_form(unevaluated, "late_evaluation")
