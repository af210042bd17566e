"""Proposals on the Label page: starting prediction jobs, following them, and deciding a proposal's
cosmics one by one.

The pictures and click mapping are plain NumPy (tested without Streamlit); the panels call ``db`` only.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import streamlit as st

from segcore.inference import VIEWS
from ui.common import SPLIT_LABELS, flash, show_error
from ui.images import Window, resize_nearest, to_rgb
from ui.run_text import STATUS_ICONS, is_lacosmic

#: Proposal cosmics not decided yet, and rejected ones (shown faintly where they were).
UNDECIDED_COLOR = (255, 170, 0)
REJECTED_COLOR = (60, 160, 255)
DELETED_DATASET_NOTICE = timedelta(minutes=30)
#: The predict form's choice of LA Cosmic without a run.
BUILT_IN = -1


def proposal_overlay(
    gray: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray | None,
    decisions: dict[int, bool],
    color: tuple[int, int, int],
    opacity: float = 0.5,
) -> np.ndarray:
    """The frame with the mask being edited over it: pixels of proposal cosmics not yet decided in
    :data:`UNDECIDED_COLOR`, rejected ones faintly in :data:`REJECTED_COLOR`, the rest of the mask
    in ``color``."""
    rgb = to_rgb(gray).astype(np.float32)
    mask = np.asarray(mask, bool)
    opacity = float(min(max(opacity, 0.0), 1.0))
    undecided = np.zeros_like(mask)
    rejected = np.zeros_like(mask)
    if labels is not None:
        proposed = labels > 0
        decided = np.zeros(int(labels.max()) + 1, bool)
        refused = np.zeros_like(decided)
        for label, keep in decisions.items():
            decided[label] = True
            refused[label] = not keep
        undecided = mask & proposed & ~decided[labels]
        rejected = ~mask & refused[labels]
    # Undecided cosmics must stand out even at a low mask opacity.
    for pixels, colour, alpha in ((mask & ~undecided, color, opacity), (undecided, UNDECIDED_COLOR, max(opacity, 0.7)),
                                  (rejected, REJECTED_COLOR, opacity * 0.5)):
        rgb[pixels] = rgb[pixels] * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    return np.round(rgb).astype(np.uint8)


def window_picture(rgb: np.ndarray, window: Window, canvas_hw: tuple[int, int]):
    """The window of an RGB picture enlarged to the canvas (PIL, as the canvas wants it)."""
    from PIL import Image

    rows, cols = window.slices
    return Image.fromarray(resize_nearest(rgb[rows, cols], *canvas_hw), mode="RGB")


def clicked_pixels(json_data: dict | None, window: Window, canvas_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Frame (row, col) of each point clicked on the canvas in "point" mode, in click order.

    The canvas draws a point as a circle whose left edge is ``radius + strokeWidth / 2`` left of
    the click and whose vertical centre is the click.
    """
    clicks = []
    scale_y, scale_x = canvas_hw[0] / window.height, canvas_hw[1] / window.width
    for obj in (json_data or {}).get("objects", []):
        if obj.get("type", "").lower() != "circle":
            continue
        x = float(obj["left"]) + float(obj.get("radius", 0)) + float(obj.get("strokeWidth", 0)) / 2
        y = float(obj["top"])
        row = window.top + min(window.height - 1, max(0, int(y / scale_y)))
        col = window.left + min(window.width - 1, max(0, int(x / scale_x)))
        clicks.append((row, col))
    return clicks


def proposal_label(proposal) -> str:
    what = proposal.model_name
    if proposal.model_source == "lacosmic":
        return f"Proposal of {what}: {proposal.cosmics} cosmic(s)"
    return f"Proposal of {what} at threshold {proposal.threshold:g}: {proposal.cosmics} cosmic(s)"


def source_text(revision, runs_by_id: dict) -> str:
    """A mask revision's source as the history table says it."""
    if revision.proposal_id is None and revision.source not in ("corrected",):
        return revision.source + (f" (run {revision.run_id})" if revision.run_id else "")
    run = runs_by_id.get(revision.run_id)
    model = f"run {revision.run_id}" if revision.run_id else "an uploaded model"
    if run is not None and is_lacosmic(run):
        model += ", LA Cosmic"
    if revision.source == "predicted":
        return f"proposal of {model}, unchanged"
    changed = ""
    if revision.changed_pixels is not None:
        changed = f": {revision.changed_cosmics} cosmic(s), {revision.changed_pixels} px changed"
    return f"proposal of {model} corrected{changed}"


# --- panels ------------------------------------------------------------------------------


def predict_form(dataset, frame) -> None:
    """Start a prediction job: a finished run's model (or LA Cosmic, or an uploaded .keras) on this
    frame, its split, or the whole dataset."""
    import db

    try:
        models = db.prediction_models()
    except db.StoreError as exc:
        show_error(exc, "Could not read the runs")
        return
    by_id = {r.id: r for r in models}
    with st.form("lbl_predict", border=False):
        run_id = st.selectbox(
            "Model", [0, *by_id, BUILT_IN], key="lbl_predict_run",
            format_func=lambda i: "an uploaded .keras file" if i == 0 else
            "LA Cosmic, built in (no run, no masks needed)" if i == BUILT_IN else
            f"{by_id[i].name} · {'LA Cosmic' if is_lacosmic(by_id[i]) else 'trained'} on {by_id[i].dataset_name}",
            index=1,  # the newest run, else LA Cosmic built in
            help="Any finished run, trained on any dataset; LA Cosmic needs no training at all (built in: its "
            "default parameters, the noise measured on each frame).")
        upload = st.file_uploader("Model file (.keras), for an uploaded model", type=["keras"], key="lbl_predict_file")
        splits = [s for s in SPLIT_LABELS if dataset.frames.get(s)]
        scope = st.radio("Frames", ["frame", *splits, "dataset"], key="lbl_predict_scope",
                         format_func=lambda s: "This frame" if s == "frame" else "The whole dataset" if s == "dataset"
                         else f"Split: {SPLIT_LABELS[s]} ({dataset.frames[s]})")
        threshold = st.number_input("Threshold (empty: the model's own)", 0.01, 0.99, value=None, step=0.05,
                                    key="lbl_predict_threshold",
                                    help="Pixels above this probability are proposed. LA Cosmic has none.")
        views = st.select_slider("Views of each frame", VIEWS, value=1, key="lbl_predict_views",
                                 help="A trained model's probabilities averaged over the frame flipped and transposed: "
                                 "8 views find a little more (about +0.01 F1) and take 8 times as long. "
                                 "LA Cosmic looks once.")
        go = st.form_submit_button("Predict", icon=":material/auto_awesome:", type="primary")
    if not go:
        return
    where = dict(frame_ids=[frame.id]) if scope == "frame" else {} if scope == "dataset" else dict(split=scope)
    try:
        if run_id == BUILT_IN:
            job_id = db.start_prediction(dataset.id, lacosmic={}, **where)
        elif run_id == 0:
            if upload is None:
                st.error("Choose a model, or upload a .keras file to predict with.")
                return
            job_id = db.start_prediction(dataset.id, model_file=(upload.name, upload.getvalue()),
                                         threshold=threshold, views=views, **where)
        else:
            lacosmic = is_lacosmic(by_id[run_id])
            job_id = db.start_prediction(dataset.id, run_id, threshold=None if lacosmic else threshold,
                                         views=1 if lacosmic else views, **where)
    except db.StoreError as exc:
        show_error(exc, "Prediction not started")
        return
    flash(f"Prediction job {job_id} started; its proposals appear here as frames are done.", "toast")
    st.rerun()


@st.fragment(run_every=2)
def prediction_jobs(dataset_id: int) -> None:
    """The dataset's latest prediction jobs with their progress; refreshes itself while one runs,
    and reruns the page when one ends so its proposals show."""
    import db

    db.refresh_prediction_states()
    now = datetime.now(timezone.utc)
    # A job whose dataset was deleted while it ran shows everywhere for a while, to say why it failed.
    jobs = [j for j in db.list_predictions() if j.scope != "evaluation" and (j.dataset_id == dataset_id or (
        j.dataset_id is None and (j.active or (j.ended_at and now - j.ended_at < DELETED_DATASET_NOTICE))))][:3]
    active = {j.id for j in jobs if j.active}
    seen = st.session_state.get("_lbl_active_jobs", set())
    st.session_state["_lbl_active_jobs"] = active
    if seen - active:
        st.rerun(scope="app")  # a job ended: its proposals are now stored
    for job in jobs:
        where = "frame" if job.scope == "frame" else "split" if job.scope in db.SPLITS else "dataset"
        views = f", {job.views} views" if job.views > 1 else ""
        text = (f"{STATUS_ICONS.get(job.status, '')} Job {job.id}: {job.model_name}{views}, "
                f"{job.frames_done} of {job.frames_total} frame(s) ({where}), {job.status}")
        if job.active:
            st.progress(job.progress, text=text)
            st.button("Stop", key=f"lbl_stop_job_{job.id}", on_click=db.cancel_prediction, args=(job.id,))
        elif job.status == "failed":
            st.error(f"{text}: {job.error}", icon=":material/error:")
        else:
            st.caption(text)
