"""Label: go through frames, draw and correct cosmic masks, and keep every saved version."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

import db
from segcore import io
from segcore.components import component_at, proposal_changes
from segcore.errors import SegcoreError
from segcore.metrics import n_cosmics
from ui.common import SPLIT_LABELS, author_input, dataset_selector, flash, init_store, show_error, show_flash
from ui.frame_picker import follow_link, pick_frame
from ui.images import (
    ADD_COLOR,
    ERASE_COLOR,
    canvas_background,
    canvas_size,
    edited_mask,
    hex_to_rgb,
    overview,
    render_frame,
)
from ui.label_editor import (
    TOOLS,
    canvas_id,
    choose_work,
    decide,
    discard,
    forget_work,
    new_canvas,
    other_unsaved,
    proposal_tools,
    undo,
    view_tools,
)
from ui.label_history import NO_AUTHOR, mask_history
from ui.label_loop import delete_frame_control, loop_panel
from ui.proposals import clicked_pixels, prediction_jobs, predict_form, proposal_overlay, window_picture

#: Splits whose masks score the runs: changing one asks for a confirmation.
SCORED_SPLITS = ("validation", "test")

init_store()
st.title("Label")
st.caption("Paint the cosmic-ray hits of a frame, zoomed in down to single pixels, or start from a model's "
           "proposal and accept or reject its cosmics one by one; save the mask as a new revision. Earlier "
           "revisions are kept and can be compared or restored.")
show_flash()

follow_link()
dataset = dataset_selector()
author = author_input()
if dataset is None:
    st.stop()
choice = pick_frame(dataset)
frame = choice.frame


@st.cache_resource(max_entries=4, show_spinner="Reading the frame...")
def load_frame(path: str) -> np.ndarray:
    # Frames never change after import, so their path is a safe cache key.
    return io.read_frame(path)


@st.cache_data(max_entries=8, show_spinner=False)
def rendered(path: str, low: float, high: float, gamma: float) -> np.ndarray:
    return render_frame(load_frame(path), low, high, gamma)


try:
    load_frame(str(frame.path))
except (SegcoreError, OSError) as exc:
    show_error(exc, f"Cannot show {frame.name}")
    st.stop()

info = f"**{frame.name}** · {SPLIT_LABELS[frame.split]} · {frame.height}×{frame.width} px, {frame.bit_depth}-bit"
info += " · no mask yet" if frame.revision_id is None else f" · mask revision {frame.revision_id}"
st.markdown(info)
row = choice.result_row()
if row is not None:
    st.caption(
        f"Run *{choice.by_eval[choice.eval_id][0].name}* on this frame: IoU {row['iou']:.3f}, F1 {row['f1']:.3f}, "
        f"cosmics in the mask {int(row['true_count'])}, predicted {int(row['pred_count'])}."
    )

with st.sidebar:
    st.markdown("#### Proposals")
    with st.expander("Predict with a model", icon=":material/auto_awesome:"):
        predict_form(dataset, frame)
    prediction_jobs(dataset.id)
    st.markdown("#### Labeling loop")
    loop_panel(dataset, frame, author)

# --- the mask being edited ------------------------------------------------------------------

canvas_col, tools_col = st.columns([2, 1], gap="medium")
with tools_col:
    work = choose_work(frame, choice)
    click_keeps = proposal_tools(work, str(frame.path)) if work.from_proposal else True
    view = view_tools(frame, work, click_keeps)

if view.low >= view.high:
    with canvas_col:
        st.error("Contrast: the low percentile must be below the high one.")
    st.stop()

gray = rendered(str(frame.path), view.low, view.high, view.gamma)
window = view.window
canvas_hw = canvas_size(window, view.canvas_side)
colour = hex_to_rgb(view.colour)
if work.params != view.params():
    # The view or tool changed: strokes so far become part of the mask, the canvas starts empty.
    work.commit_strokes()
    if work.params is not None:
        new_canvas()
    work.params = view.params()
if work.from_proposal:
    background = window_picture(proposal_overlay(gray, work.mask, work.labels, work.decisions, colour, view.opacity),
                                window, canvas_hw)
else:
    background = canvas_background(gray, work.mask, window, canvas_hw, view.opacity, colour)

with canvas_col:
    scale = canvas_hw[1] / window.width
    colour_now = ERASE_COLOR if view.erase else ADD_COLOR
    result = st_canvas(
        fill_color=colour_now,
        # At least 2 screen pixels, so a thin stroke on a shrunk view still covers whole pixels.
        stroke_width=max(2, round(view.brush * scale)) if view.tool == "Brush" else 1,
        point_display_radius=max(2, round(scale / 2)),
        stroke_color=colour_now,
        background_image=background,
        update_streamlit=True,
        height=canvas_hw[0],
        width=canvas_hw[1],
        drawing_mode=TOOLS[view.tool],
        return_image_data=True,
        key=f"lbl_canvas_{canvas_id()}",
    )
    st.caption(f"Showing {window.describe()}; one frame pixel = {scale:.3g} screen pixels. "
               + (f"A click on a proposed cosmic **{'accepts' if view.click_keeps else 'rejects'}** it. "
                  if view.picking else "Strokes **remove** cosmic pixels (blue). " if view.erase else
                  "Strokes **add** cosmic pixels (yellow). ")
               + "Hover over the drawing for its toolbar (undo or redo a stroke, clear).")

if view.picking:
    clicks = work.new_clicks(canvas_id(), clicked_pixels(result.json_data, window, canvas_hw))
    reach = max(2, int(np.ceil(4 / scale)))  # a few screen pixels beside a one-pixel hit still hit it
    picked = {component_at(work.labels, r, c, reach) for r, c in clicks} - {0}
    if picked:
        decide({k: view.click_keeps for k in picked})
        st.rerun()

image_data = None if view.picking else result.image_data
if image_data is not None and image_data[..., 3].any():
    work.edited = edited_mask(work.mask, image_data, window, erase=view.erase)
else:
    work.edited = None
current = work.current

with tools_col:
    # Made from the shrunk frame: a 16-megapixel frame costs a 320-pixel picture's work on every rerun.
    st.image(overview(gray, current, window, colour, max(view.opacity, 0.6), 320),
             caption="Whole frame; the yellow box is the part shown for drawing.", width=220)

with canvas_col:
    # Changes are counted against the saved mask (the ground truth), whatever the start was.
    added, removed = work.added_removed()
    changed = bool(added or removed)
    m1, m2, m3 = st.columns(3)
    m1.metric("Cosmics", n_cosmics(current), help="Connected groups of cosmic pixels (8-connectivity), "
              "counted live on the mask you are editing.")
    m2.metric("Cosmic pixels", int(np.count_nonzero(current)))
    m3.metric("Changed pixels", f"+{added} −{removed}", help="Added and removed against the frame's saved mask.")
    if work.from_proposal:
        changes = proposal_changes(work.base, current)
        st.caption(f"Changed from the proposal: **{changes.cosmics} cosmic(s), {changes.pixels} pixel(s)** "
                   f"({changes.added_pixels} added, {changes.removed_pixels} removed); saved with the mask, with the "
                   "proposal it came from.")
    b1, b2, _ = st.columns([1, 1, 1])
    b1.button("Undo", icon=":material/undo:", on_click=undo, width="stretch", key="lbl_undo", shortcut="U",
              disabled=not work.can_undo,
              help="Undo the last change. The toolbar over the drawing area (hover over it) undoes single strokes.")
    b2.button("Discard edits", icon=":material/delete_sweep:", on_click=discard, width="stretch",
              key="lbl_discard", disabled=not work.has_edits and not work.decisions,
              help="Back to the mask you started from.")

    with st.form("lbl_save", clear_on_submit=True, border=True):
        f1, f2 = st.columns([3, 2], vertical_alignment="bottom")
        comment = f1.text_input("Comment (optional)", placeholder="e.g. added a faint track at the bottom edge")
        scored = frame.split in SCORED_SPLITS and frame.revision_id is not None
        confirmed = f1.checkbox(
            f"Change this {frame.split} mask: runs were scored on the saved one", key="lbl_confirm_scored",
            help="Evaluations on this split were made on the older mask; they stay as they are until re-run.",
        ) if scored else True
        save = f2.form_submit_button("Save as new revision", type="primary", icon=":material/save:",
                                     width="stretch", shortcut="S")
    if save:
        if not author:
            st.error(NO_AUTHOR)
        elif not changed and st.session_state["lbl_base"] == "current" and frame.revision_id is not None:
            st.info("Nothing to save: the mask is the same as the saved one.")
        elif not confirmed and changed:
            st.warning(f"This is a {frame.split} frame: runs are scored on its mask. Tick *Change this "
                       f"{frame.split} mask* to save; evaluations made before stay on the older mask.")
        else:
            try:
                revision = db.save_mask_revision(frame.id, current, source="drawn", author=author,
                                                 comment=comment or None,
                                                 proposal_id=None if work.proposal is None else work.proposal.id)
            except SegcoreError as exc:
                show_error(exc, "The mask was not saved")
            else:
                forget_work(frame.id)
                flash(f"Saved revision {revision.id} of {frame.name}: {n_cosmics(current)} cosmic(s), "
                      f"{revision.cosmic_pixels} pixel(s).", "toast")
                older = db.evaluations_on_older_masks(dataset.id, frame.id) if frame.split in SCORED_SPLITS else {}
                if older:
                    flash(f"Evaluation(s) {', '.join(map(str, sorted(older)))} scored the older mask of {frame.name}; "
                          "evaluate the runs again on Results to score the new one.", "warning")
                st.rerun()

others = other_unsaved(frame.id)
if others:
    canvas_col.warning("Unsaved edits on " + ", ".join(others) + ". They are kept while this browser tab is open; "
                       "go back to save them.", icon=":material/edit_note:")

mask_history(frame, author, gray, view, canvas_hw)
delete_frame_control(frame)
