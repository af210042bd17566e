"""The Train page's run panels: a run's status, progress, timing, curves and log, live (the
self-refreshing ``live_run`` fragment with *Stop this run*) or ended (``earlier_runs``, with
*Resume this run*)."""

from __future__ import annotations

import streamlit as st

import db
from segcore.errors import SegcoreError
from ui import charts, navigation
from ui.run_admin import stop_text
from ui.run_text import (
    ACTIVE_STATUSES,
    LACOSMIC_LABEL,
    STATUS_ICONS,
    batch_progress,
    format_duration,
    is_lacosmic,
    lacosmic_parameters_text,
    readable_log,
    run_label,
    seconds_since,
    threshold_text,
    timing,
)

#: Set by ``live_run`` when its run ends: ``earlier_runs`` then shows that run.
SHOW_RUN_KEY = "train_show_run"


def weights_text(run) -> tuple[str, str]:
    """(the backbone weights a run used, as said on its status line; why, when it started from random)."""
    weights, _, reason = (run.backbone_weights or "decided when training starts").partition(":")
    if weights == "file":
        return f"file {reason.strip()}", ""
    return weights, reason if weights == "random" else ""


def _status_line(run) -> None:
    icon = STATUS_ICONS.get(run.shown_status, "")
    weights, random_reason = weights_text(run)
    st.markdown(
        f"{icon} **{run_label(run)}** on dataset *{run.dataset_name}* · backbone weights used: **{weights}** · "
        f"arithmetic: **{run.precision or 'decided when training starts'}** · "
        f"evaluation threshold **{threshold_text(run)}**"
    )
    if run.precision_reason:
        st.caption(f"Arithmetic: {run.precision_reason}")
    if random_reason:
        st.caption(f"The backbone started from random weights: {random_reason.strip()}")


def _run_footer(run, live: bool) -> None:
    """What every run shows below its progress: a warning when its process falls silent, and its error."""
    if live and run.status == "running":
        quiet = seconds_since(run.heartbeat)
        if quiet is not None and quiet > 30:
            st.warning(f"No sign of life from the run's process for {format_duration(quiet)}.")
    if run.status == "failed" and run.error:
        st.error(f"The run failed: {run.error}")
    stopped = stop_text(run)
    if stopped:
        (st.warning if run.stop_reason == "time limit" else st.caption)(stopped)


def _run_log(run) -> None:
    with st.expander("Log (last lines)" if is_lacosmic(run) else "Training log (last lines)"):
        log = readable_log(db.run_log(run.id, tail=2000))
        st.code(log or "(nothing written yet)", language=None)


def _lacosmic_view(run, live: bool) -> None:
    """Status, frames done, time and log of an LA Cosmic run (it has no epochs or curves)."""
    icon = STATUS_ICONS.get(run.shown_status, "")
    st.markdown(f"{icon} **{run_label(run)}** on dataset *{run.dataset_name}* · **{LACOSMIC_LABEL}**")
    st.caption(f"Parameters: {lacosmic_parameters_text(run)}")
    done, total = run.current_step or 0, run.steps_per_epoch
    if live:
        if run.status == "queued" or not total:
            st.progress(0.0, text="Waiting for the LA Cosmic process to start...")
        else:
            tuning = " (the validation frames it tunes on, then the test frames)" if run.config.get("tune") else ""
            st.progress(run.progress, text=f"Frames: {done} of {total} done{tuning}")
    columns = st.columns(3)
    columns[0].metric("Frames done", f"{done} / {total}" if total else "–")
    columns[1].metric("Time so far" if live else "Time taken", format_duration(timing(run)["elapsed"]))
    f1 = run.config.get("tuned_f1")
    columns[2].metric("Pooled F1 on validation", "–" if f1 is None else f"{f1:.3f}", help="Of the tuned parameters.")
    _run_footer(run, live)
    _run_log(run)


def run_view(run, live: bool) -> None:
    """Status, progress, timing, curves and log of one run."""
    if is_lacosmic(run):
        _lacosmic_view(run, live)
        return
    _status_line(run)
    epochs = db.epoch_metrics(run.id)
    clock = timing(run, epochs)
    total = clock["total"] or 1
    step, steps = batch_progress(run)
    if live:
        if run.status == "queued":
            st.progress(0.0, text="Waiting for the training process to start (loading TensorFlow takes a while)...")
        else:
            st.progress(min(clock["done"] / total, 1.0), text=f"Epochs: {clock['done']} of {total} done")
            if steps:
                st.progress(min((step or 0) / steps, 1.0), text=f"Epoch {clock['done'] + 1}: batch {step or 0} of {steps}")
    columns = st.columns(4)
    columns[0].metric("Epochs done", f"{clock['done']} / {clock['total']}")
    columns[1].metric("Time per epoch", format_duration(clock["per_epoch"]))
    if live:
        columns[2].metric("Time left (at most)", format_duration(clock["left"]), help="Early stopping may end the run sooner.")
    else:
        columns[2].metric("Time taken", format_duration(clock["elapsed"]))
    best = run.best_epoch
    columns[3].metric(
        "Best epoch",
        "–" if best is None else best + 1,
        help="The epoch with the lowest validation loss"
        + ("" if run.best_val_loss is None else f" ({run.best_val_loss:.4f})")
        + "; its weights are the ones kept.",
    )
    _run_footer(run, live)
    if epochs.empty:
        st.info("The learning curves appear here when the first epoch ends.")
    else:
        st.plotly_chart(charts.learning_curves(epochs), key=f"curves_{run.id}_{live}")
    _run_log(run)


@st.fragment(run_every=2)
def live_run(run_id: int) -> None:
    """Refreshes itself every 2 s while the run is queued or running."""
    run = db.get_run(run_id)
    if run.status not in ACTIVE_STATUSES:
        # Redraw the whole page with the ended run shown below.
        st.session_state[SHOW_RUN_KEY] = run_id
        st.rerun()
    run_view(run, live=True)
    step = "frame" if is_lacosmic(run) else "batch"
    if st.button(
        "Stop this run",
        key=f"stop_{run_id}",
        icon=":material/stop_circle:",
        help="Stops after the current frame; no evaluation is stored." if is_lacosmic(run)
        else "Stops after the current batch and keeps the best weights so far.",
    ):
        try:
            db.cancel_run(run_id)
        except db.StoreError as exc:
            st.warning(str(exc))  # it ended in the meantime
        else:
            st.toast(f"Stopping run #{run_id} after the current {step}...")


def earlier_runs(ended: list) -> None:
    """One ended run at a time, chosen in a select box (the one that just ended first), with *Resume
    this run* for a failed or cancelled one and a link to the results of a finished one."""
    if not ended:
        st.info("No run has ended yet. Finished runs appear here and on the Results page.")
        return
    ended_by_id = {r.id: r for r in ended}
    if st.session_state.get(SHOW_RUN_KEY) in ended_by_id:
        st.session_state["train_earlier_run"] = st.session_state.pop(SHOW_RUN_KEY)
    run_id = st.selectbox("Run", list(ended_by_id), format_func=lambda i: run_label(ended_by_id[i]), key="train_earlier_run")
    run = ended_by_id[run_id]
    with st.container(border=True):
        run_view(run, live=False)
        if run.status in ("failed", "cancelled"):
            resume_help = (
                "Run LA Cosmic again, on the same masks." if is_lacosmic(run)
                else "Continue from the last saved epoch, on the same masks."
            )
            if st.button("Resume this run", icon=":material/replay:", help=resume_help):
                try:
                    new_id = db.resume_run(run.id)
                except (ValueError, SegcoreError) as exc:
                    st.error(f"The run could not be resumed: {exc}")
                else:
                    st.success(f"Run #{new_id} resumed.")
                    st.rerun()
        elif run.status == "finished":
            navigation.link(navigation.RESULTS, "See its results")
