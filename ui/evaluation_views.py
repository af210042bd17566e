"""Which evaluation a page shows, said and chosen: instant re-scoring from stored probabilities on
Results, the evaluation of each run on Compare, and links from an evaluated image to its frame on
the Label page (``?frame=ID``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.common import show_error
from ui.run_text import evaluation_label, is_lacosmic


def instant_rescore(run, evaluation) -> None:
    """Another threshold from the probabilities the evaluation kept: a new evaluation at once, shown next."""
    if is_lacosmic(run):
        return
    try:
        possible = db.can_rescore(evaluation.id)
    except SegcoreError:
        possible = False
    if not possible:
        st.caption(f"Evaluation #{evaluation.id} kept no probabilities (made before they were kept): another "
                   "threshold runs the model again below. Evaluations made from now on re-score instantly.")
        return
    with st.form("instant_rescore"):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        threshold = c1.slider("Threshold, from the stored probabilities", 0.01, 0.99, float(evaluation.threshold), 0.01,
                              key="instant_threshold",
                              help="A pixel is cosmic when its stored probability is above this.")
        go = c2.form_submit_button("Re-score now", type="primary", icon=":material/bolt:")
    st.caption(f"From the probabilities evaluation #{evaluation.id} stored: the same frames and masks, no model run. "
               "Stored as a new evaluation of this run.")
    if go:
        try:
            result = db.rescore_evaluation(evaluation.id, threshold)
        except SegcoreError as exc:
            show_error(exc, "Not re-scored")
            return
        st.session_state["results_pending"] = (run.id, result.id)
        st.rerun()


def choose_evaluations(runs, split: str, names: dict[int, str]) -> dict:
    """run id -> the evaluation on ``split`` to compare (newest unless chosen otherwise), or None; says which."""
    options = {r.id: [e for e in db.list_evaluations(r.id) if e.split == split] for r in runs}
    for run_id in options:
        options[run_id].sort(key=lambda e: e.id, reverse=True)
    chosen = {run_id: (found[0] if found else None) for run_id, found in options.items()}
    several = [r for r in runs if len(options[r.id]) > 1]
    if several:
        with st.expander("Which evaluation of each run (newest unless chosen)", icon=":material/rule:"):
            for r in several:
                by_id = {e.id: e for e in options[r.id]}
                picked = st.selectbox(names[r.id], list(by_id), key=f"compare_eval_{r.id}_{split}",
                                      format_func=lambda i, by_id=by_id: evaluation_label(by_id[i])
                                      + (f", masks grown {by_id[i].dilation} px" if by_id[i].dilation else ""))
                chosen[r.id] = by_id[picked]
    shown = [f"{names[i]}: evaluation #{e.id} at threshold {e.threshold:g}" + (f", grown {e.dilation} px" if e.dilation
             else "") for i, e in chosen.items() if e is not None]
    if shown:
        st.caption("Shown: " + "; ".join(shown) + ".")
    thresholds = {e.threshold for e in chosen.values() if e is not None}
    if len(thresholds) > 1:
        st.caption("The runs are compared at different thresholds (each at its own); choose other evaluations "
                   "above, or re-score on Results.")
    return chosen


def label_links(evaluation_id: int, images: pd.Series) -> pd.Series:
    """For each evaluated image name, the address of its frame on the Label page (None for a deleted frame)."""
    frames = db.per_image_results(evaluation_id).set_index("image")["frame_id"]
    return images.map(lambda name: None if pd.isna(frames.get(name)) else f"Label?frame={int(frames.get(name))}")


def frame_link(frame_id, name: str) -> None:
    """A link to the frame on the Label page."""
    from ui import navigation

    if frame_id is None or pd.isna(frame_id):
        return
    try:
        st.page_link(navigation.LABEL.page(), label=f"Open {name} on the Label page", icon=":material/brush:",
                     query_params={"frame": str(int(frame_id))})
    except Exception:  # a page run on its own has no navigation: say where instead
        st.caption(f"{name} is frame {int(frame_id)} on the Label page.")
