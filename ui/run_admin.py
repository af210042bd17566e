"""A run's notes and tags, and deleting it (with a confirmation), for the pages that show one run."""

from __future__ import annotations

import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.common import flash, show_error


def tags_text(run) -> str:
    return ", ".join(run.tags) if getattr(run, "tags", ()) else ""


def run_notes_and_delete(run, key: str = "run") -> None:
    """An expander: notes and tags (saved on the run), and *Delete run* behind a confirmation."""
    with st.expander("Notes, tags, delete", icon=":material/edit_note:"):
        if run.notes or run.tags:
            st.caption((f"Tags: {tags_text(run)}. " if run.tags else "") + (run.notes or ""))
        with st.form(f"{key}_notes_{run.id}", border=False):
            notes = st.text_area("Notes", run.notes or "", key=f"{key}_notes_text_{run.id}",
                                 placeholder="e.g. first try with crop 128; mask of frame 7 corrected since")
            tags = st.text_input("Tags (comma-separated)", tags_text(run), key=f"{key}_tags_{run.id}",
                                 placeholder="e.g. baseline, paper")
            if st.form_submit_button("Save notes and tags", icon=":material/save:"):
                try:
                    db.set_run_notes(run.id, notes, tags)
                except SegcoreError as exc:
                    show_error(exc, "Notes not saved")
                else:
                    flash(f"Notes and tags of run #{run.id} saved.", "toast")
                    st.rerun()
        st.divider()
        st.caption("Deleting removes the run, its learning curves, evaluations and files. Masks saved from its "
                   "proposals stay (they no longer name it).")
        sure = st.checkbox(f"Yes, delete run #{run.id} {run.name} for good", key=f"{key}_delete_sure_{run.id}",
                           disabled=run.active)
        if st.button("Delete run", icon=":material/delete_forever:", key=f"{key}_delete_{run.id}",
                     disabled=not sure or run.active, help="Cancel a queued or running run first."):
            try:
                db.delete_run(run.id)
            except SegcoreError as exc:
                show_error(exc, f"Run #{run.id} was not deleted")
                return
            flash(f"Deleted run #{run.id} {run.name}.", "toast")
            st.rerun()


#: How the Train page says why a run's training ended (``RunInfo.stop_reason``).
STOP_TEXTS = {
    "time limit": "Stopped on its time limit after {epochs} of {total} epochs; the best epoch's weights are kept. "
                  "Resume it, or give the next run more time, to train further.",
    "early stopping": "Stopped early after {epochs} of {total} epochs: the validation loss had stopped improving.",
    "epochs": "Ran all its {total} epochs.",
}


def stop_text(run) -> str | None:
    """Why a finished run's training ended, in a sentence; None when not known (older runs, LA Cosmic)."""
    text = STOP_TEXTS.get(getattr(run, "stop_reason", None) or "")
    if text is None or run.status != "finished":
        return None
    return text.format(epochs=run.epochs_run, total=run.epochs_total or run.epochs_run)
