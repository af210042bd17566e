"""Results of one run: scores per image, their spread, overlays, and re-scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui import charts, navigation
from ui.common import init_store, store_key
from ui.images import enlarge
from ui.evaluation_views import frame_link, instant_rescore
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

EVALUATION_SPLITS = ("test", "validation", "train")

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


@st.cache_data(show_spinner=False, max_entries=20)
def per_image(store: str, evaluation_id: int) -> pd.DataFrame:
    # An evaluation never changes once stored, so its table can be kept.
    return db.per_image_results(evaluation_id)


@st.cache_data(show_spinner=False, max_entries=20)
def stored_curves(store: str, evaluation_id: int):
    return db.evaluation_curves(evaluation_id)


def _evaluate(run, split: str, threshold: float, masks: str = "run", dilation: int = 0) -> None:
    """Evaluate in this process with a progress bar, then show the new evaluation.

    An LA Cosmic run detects with its own parameters; it has no threshold to set.
    """
    run_id = run.id
    if is_lacosmic(run):
        threshold, how, work = None, "with its LA Cosmic parameters", "Running LA Cosmic on every frame."
    else:
        how, work = f"at threshold {threshold:g}", "Loading the model, then predicting every frame at full resolution."
    with st.status(f"Evaluating run #{run_id} on the {split} split {how}...", expanded=True) as status:
        st.write(work)
        bar = st.progress(0.0)

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Frame {done} of {total}")

        try:
            result = db.evaluate_run(
                run_id, split=split, threshold=threshold, masks=masks, progress=progress, dilation=dilation
            )
        except (ValueError, SegcoreError, OSError) as exc:
            status.update(label="The evaluation failed", state="error")
            st.error(str(exc))
            return
        status.update(label=f"Evaluation #{result.id} stored", state="complete")
    st.session_state["results_pending"] = (run_id, result.id)
    st.rerun()


def _evaluate_form(candidates, key: str) -> None:
    """Evaluate a run that has no evaluation yet (e.g. one stopped before its end)."""
    by_id = {r.id: r for r in candidates}
    with st.form(key):
        c1, c2 = st.columns([2, 1])
        chosen = c1.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i]), key=f"{key}_run")
        threshold = c2.slider(
            "Threshold", 0.01, 0.99, 0.5, 0.01, key=f"{key}_threshold", help="LA Cosmic runs have none; it is ignored for them."
        )
        if st.form_submit_button("Evaluate on the test split", type="primary"):
            _evaluate(by_id[chosen], "test", float(threshold))


if not runs:
    st.info("No model has been trained yet. Start a run on the Train page; its results appear here when it ends.")
    navigation.link(navigation.TRAIN, "Train a model")
    st.stop()

# A stopped training run with a saved epoch, or a stopped LA Cosmic run (its parameters are all it needs).
unevaluated = [
    r for r in runs
    if r.id not in by_run and r.status in ("finished", "cancelled", "failed") and (r.epochs_run > 0 or is_lacosmic(r))
]
if not by_run:
    st.info(
        "No run has been evaluated yet. Every run is evaluated on the test split when its training ends; "
        "runs still going are on the Train page."
    )
    if unevaluated:
        st.markdown("A run that was stopped early can be evaluated with the best weights it saved:")
        _evaluate_form(unevaluated, "first_evaluation")
    navigation.link(navigation.TRAIN, "Train page")
    st.stop()

# A new evaluation made on this page becomes the one shown (set before the choosers exist).
pending = st.session_state.pop("results_pending", None)
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

headline = st.columns(len(charts.HEADLINE_METRICS))
for column, key in zip(headline, charts.HEADLINE_METRICS):
    value = pooled.get(key)
    column.metric(charts.label(key), "–" if value is None else f"{value:.3f}")
means = summary["mean"] if "mean" in summary.columns else pd.Series(dtype=float)


def _numbers(keys, values) -> str:
    return " · ".join(f"{charts.label(k)} **{values[k]:.3f}**" for k in keys if values.get(k) is not None and pd.notna(values.get(k)))


pixels_column, cosmics_column, counts_column = st.columns(3)
pixels_column.markdown("**Pixels**, pooled over the split: " + (_numbers(("precision", "recall", "f1", "iou"), pooled) or "–"))
cosmics_column.markdown(
    "**Cosmics**, pooled over the split: " + (_numbers(("object_precision", "object_recall", "object_f1"), pooled) or "–")
)
counts_column.markdown("**Counts**, mean over images: " + (_numbers(("abs_count_error", "count_error", "count_score"), means) or "–"))

curves = stored_curves(store_key(), evaluation_id)
if curves is None:
    st.info("This evaluation was stored before curves were kept; re-score it below to see its curves.")
else:
    if is_lacosmic(run):
        inspected = evaluation.threshold
        st.caption(
            "LA Cosmic gives masks, not probabilities: its curves join its one operating point to "
            "'nothing marked' and 'everything marked'."
        )
    else:
        inspected = st.slider(
            "Threshold to inspect", 0.01, 0.99, float(evaluation.threshold), 0.01, key=f"results_inspect_{evaluation_id}",
            help="Moves the circle along the curves; the diamond is this evaluation's threshold. Re-score below to "
            "store the scores at another threshold.",
        )
    name = f"#{run.id}"
    points = [
        {"run": name, "kind": "evaluation", "threshold": evaluation.threshold,
         **curves.histogram.at_threshold(evaluation.threshold)},
        {"run": name, "kind": "slider", "threshold": inspected, **curves.histogram.at_threshold(inspected)},
    ]
    at = points[1]
    st.markdown(
        f"At threshold **{inspected:g}**: precision **{at['precision']:.3f}** · recall **{at['recall']:.3f}** · "
        f"false-positive rate **{at['fpr']:.2e}**"
    )
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
    st.caption("Click a column header to sort, e.g. by IoU to find the worst images.")
    shown = [c for c in ("image", *charts.SUMMARY_METRICS, "true_count", "pred_count") if c in table.columns]
    st.dataframe(
        table[shown],
        hide_index=True,
        column_config={
            "image": st.column_config.TextColumn("Image", pinned=True),
            **{m: st.column_config.NumberColumn(charts.label(m), format="%.3f") for m in charts.SUMMARY_METRICS},
            "true_count": st.column_config.NumberColumn("True cosmics"),
            "pred_count": st.column_config.NumberColumn("Predicted cosmics"),
        },
    )


def _true_mask(row) -> np.ndarray | None:
    revision = row.get("revision_id")
    if revision is not None and not pd.isna(revision):
        return db.read_revision(int(revision))
    return db.current_mask(int(row["frame_id"]))


@st.cache_data(show_spinner="Drawing the overlay...", max_entries=32)
def _pictures(store: str, evaluation_id: int, image: str):
    from segcore.overlays import overlay
    from segcore.preprocess import display_image

    row = per_image(store, evaluation_id).set_index("image").loc[image].copy()
    row["image"] = image
    frame = db.read_frame(int(row["frame_id"]))
    true = _true_mask(row)
    pred = db.prediction_mask(int(row["result_id"]))
    return (
        display_image(frame),
        None if true is None else true.astype(np.uint8) * 255,
        pred.astype(np.uint8) * 255,
        overlay(frame, true, pred),
    )


@st.cache_data(show_spinner="Cleaning the frame...", max_entries=8)
def _cleaned(store: str, result_id: int) -> tuple[str, bytes]:
    return db.cleaned_frame(result_id)


with overlays_tab:
    order = table.sort_values("iou", kind="stable") if "iou" in table.columns else table
    image = st.selectbox(
        "Image (worst IoU first)",
        order["image"].tolist(),
        format_func=lambda name: f"{name} (IoU {order.set_index('image').loc[name, 'iou']:.3f})" if "iou" in order.columns else name,
        key=f"results_image_{evaluation_id}",
    )
    row = table.set_index("image").loc[image]
    c1, c2, c3 = st.columns(3)
    c1.metric("True cosmics", int(row["true_count"]))
    c2.metric("Predicted cosmics", int(row["pred_count"]), delta=int(row["pred_count"]) - int(row["true_count"]), delta_color="off")
    c3.metric("IoU", f"{row['iou']:.3f}" if "iou" in row else "–")
    try:
        frame_img, true_img, pred_img, over_img = _pictures(store_key(), evaluation_id, image)
    except (SegcoreError, OSError, KeyError, ValueError) as exc:
        st.error(f"The overlay of {image} cannot be drawn: {exc}")
    else:
        big, small = st.columns([2, 1])
        big.image(
            enlarge(over_img),
            caption="Green: cosmic found · red: false alarm · blue: missed. Numbers count the predicted cosmics.",
            width="stretch",
        )
        small.image(enlarge(frame_img, 256), caption="Frame", width="stretch")
        if true_img is None:
            small.info("This frame has no true mask.")
        else:
            small.image(enlarge(true_img, 256), caption="True mask", width="stretch")
        predicted_by = "LA Cosmic's mask" if is_lacosmic(run) else f"Prediction at threshold {evaluation.threshold:g}"
        small.image(enlarge(pred_img, 256), caption=predicted_by, width="stretch")
        with small:
            frame_link(row.get("frame_id"), image)
        if "result_id" in row and not pd.isna(row["result_id"]):
            try:
                name, data = _cleaned(store_key(), int(row["result_id"]))
            except (SegcoreError, OSError, ValueError) as exc:
                small.caption(f"No cleaned frame: {exc}")
            else:
                small.download_button(
                    "Download this frame cleaned", data, file_name=f"cleaned_{name}", icon=":material/download:",
                    help="The frame in its own format, every predicted cosmic pixel replaced by the median of the "
                    "unmasked pixels around it; the other pixels unchanged.",
                )

with rescore_tab:
    if is_lacosmic(run):
        st.markdown(
            "LA Cosmic gives masks, not probabilities: it has no threshold to change. Score its parameters on "
            "another split, or against the frames' corrected masks. The result is stored as a new evaluation of "
            "this run and shown here."
        )
    else:
        st.markdown(
            "Score the same model at another probability threshold, or on another split, without retraining. "
            "The result is stored as a new evaluation of this run and shown here."
        )
    instant_rescore(run, evaluation)
    with st.form("rescore"):
        c1, c2 = st.columns([3, 1])
        if is_lacosmic(run):
            threshold = evaluation.threshold
            c1.markdown(f"Parameters: {lacosmic_parameters_text(run)}")
        else:
            threshold = c1.slider("Threshold", 0.01, 0.99, float(evaluation.threshold), 0.01, help="A pixel is cosmic when its probability is above this.")
        split = c2.selectbox("Split", EVALUATION_SPLITS, index=EVALUATION_SPLITS.index(evaluation.split) if evaluation.split in EVALUATION_SPLITS else 0)
        dilation = int(st.number_input(
            "Grow predicted masks by (pixels)", min_value=0, max_value=64, value=int(evaluation.dilation), step=1,
            help="A safety margin: every predicted cosmic also masks the pixels this close to it (scores, curves "
            "and the stored masks all see the grown masks).",
        ))
        masks = st.radio(
            "Score against",
            ("run", "current"),
            format_func={"run": "the masks the run started with", "current": "the frames' current masks (after corrections)"}.get,
            horizontal=True,
        )
        if st.form_submit_button("Re-score", type="primary", icon=":material/refresh:"):
            _evaluate(run, split, float(threshold), masks, dilation)

if unevaluated:
    with st.expander(f"Runs without an evaluation ({len(unevaluated)})"):
        st.markdown(
            "These runs were stopped or failed before their evaluation; evaluate them with the best weights they "
            "saved (LA Cosmic runs with their parameters)."
        )
        _evaluate_form(unevaluated, "late_evaluation")
