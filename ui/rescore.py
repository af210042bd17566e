"""Evaluating a run from the Results page: in this process with a progress bar (``evaluate``), the
*Re-score* tab (another threshold, split, margin or the corrected masks), and the form for runs
stopped before their evaluation. A new evaluation becomes the one shown (``PENDING_KEY``)."""

from __future__ import annotations

import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.evaluation_views import instant_rescore
from ui.run_text import is_lacosmic, lacosmic_parameters_text, run_label

EVALUATION_SPLITS = ("test", "validation", "train")
#: ``(run id, evaluation id)`` of the evaluation made on the page, for the page to show next.
PENDING_KEY = "results_pending"
ENDED_STATUSES = ("finished", "cancelled", "failed")


def unevaluated_runs(runs: list, evaluated_ids) -> list:
    """Ended runs without an evaluation that can have one: a stopped training run with a saved epoch,
    or a stopped LA Cosmic run (its parameters are all it needs)."""
    return [
        r for r in runs
        if r.id not in evaluated_ids and r.status in ENDED_STATUSES and (r.epochs_run > 0 or is_lacosmic(r))
    ]


def evaluate(run, split: str, threshold: float, masks: str = "run", dilation: int = 0) -> None:
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
    st.session_state[PENDING_KEY] = (run_id, result.id)
    st.rerun()


def evaluate_form(candidates, key: str) -> None:
    """Evaluate a run that has no evaluation yet (e.g. one stopped before its end)."""
    by_id = {r.id: r for r in candidates}
    with st.form(key):
        c1, c2 = st.columns([2, 1])
        chosen = c1.selectbox("Run", list(by_id), format_func=lambda i: run_label(by_id[i]), key=f"{key}_run")
        threshold = c2.slider(
            "Threshold", 0.01, 0.99, 0.5, 0.01, key=f"{key}_threshold", help="LA Cosmic runs have none; it is ignored for them."
        )
        if st.form_submit_button("Evaluate on the test split", type="primary"):
            evaluate(by_id[chosen], "test", float(threshold))


def rescore_panel(run, evaluation) -> None:
    """The *Re-score* tab: instantly from stored probabilities where kept, else (or for another split,
    margin or masks) by evaluating again."""
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
            evaluate(run, split, float(threshold), masks, dilation)
