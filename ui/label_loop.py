"""The Label page's labeling-loop panel: how far the dataset is (frames without a mask, review
statuses), marking the frame on screen reviewed, and one click to retrain on the masks as they are
now (``db.start_retraining``: the newest training run's options, the revisions recorded by the run)."""

from __future__ import annotations

import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.common import flash, show_error

STATUS_TEXT = {"proposed": "proposed (not saved yet)", "corrected": "corrected (saved, not reviewed)",
               "reviewed": "reviewed"}


def review_status_line(frame, statuses: dict[int, str]) -> str:
    status = statuses.get(frame.id)
    return f"Review status: **{STATUS_TEXT[status]}**" if status else "Review status: none yet"


def mark_reviewed(frame, author: str) -> None:
    """The *Mark reviewed* button: the saved mask was looked at again and is right."""
    if not author:
        st.error("Type your name under *Your name* in the sidebar first: a review records who made it.")
        return
    try:
        db.set_review_status(frame.id, "reviewed", author=author)
    except SegcoreError as exc:
        show_error(exc, "Not marked reviewed")
        return
    flash(f"{frame.name} marked reviewed.", "toast")
    st.rerun()


def loop_panel(dataset, frame, author: str) -> None:
    """Sidebar: the loop's progress, and *Retrain now*."""
    try:
        statuses = db.review_statuses(dataset.id)
        waiting = sum(1 for f in db.list_frames(dataset.id) if f.revision_id is None)
        config, previous = db.retraining_config(dataset.id)
    except SegcoreError as exc:
        show_error(exc, "Could not read the labeling queue")
        return
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in db.REVIEW_STATUSES}
    st.caption(f"{waiting} frame(s) without a mask; {counts['proposed']} proposed, {counts['corrected']} corrected, "
               f"{counts['reviewed']} reviewed. *Order: Most uncertain first* under *Which frames* shows the "
               "frames the models are least sure about first.")
    st.caption(review_status_line(frame, statuses))
    if frame.revision_id is not None and statuses.get(frame.id) != "reviewed":
        if st.button("Mark this mask reviewed", icon=":material/verified:", key="lbl_mark_reviewed",
                     help="You looked at the saved mask again and it is right. Saving it again makes it "
                     "'corrected' until reviewed again."):
            mark_reviewed(frame, author)
    how = (f"with the options of run {previous}" if previous is not None else
           "with the Train page's default options (set your own there)")
    if st.button("Retrain on the masks as they are now", icon=":material/model_training:", key="lbl_retrain",
                 help=f"Starts a training run on this dataset {how}. The run records the mask revision of every "
                 "frame it uses; follow it on the Train page."):
        try:
            run_id = db.start_retraining(dataset.id)
        except SegcoreError as exc:
            show_error(exc, "Training not started")
            return
        flash(f"Training run {run_id} started on the masks as they are now ({how}); follow it on the Train page.",
              "toast")
        st.rerun()


def delete_frame_control(frame) -> None:
    """Delete the frame on screen, after a confirmation; refused (with the reason) while a run needs it."""
    with st.expander("Delete this frame", icon=":material/delete:"):
        st.caption(f"Removes {frame.name}, every saved mask of it and its proposals, files included. A frame a "
                   "run was trained or tested on is kept: the run's record needs its masks.")
        sure = st.checkbox(f"Yes, delete {frame.name} for good", key=f"lbl_delete_sure_{frame.id}")
        if st.button("Delete frame", icon=":material/delete_forever:", key="lbl_delete_frame", disabled=not sure):
            try:
                name = db.delete_frame(frame.id)
            except SegcoreError as exc:
                show_error(exc, f"{frame.name} was not deleted")
                return
            flash(f"Deleted {name}.", "toast")
            st.rerun()
