"""The Label page's frame picker: which frames (split, without a mask, the labeling queue, a run's
disagreement), in which order, and which one is on screen, kept across reruns and reloads.

State (``st.session_state``): the filter widgets ``lbl_split``, ``lbl_missing``, ``lbl_eval``,
``lbl_order``, ``lbl_metric``; the frame ``lbl_frame`` and its number ``lbl_number``;
``_lbl_selection`` (the filters the list was made for: a new one starts at its first frame),
``_lbl_pos`` (the position, so a frame that leaves the list is followed by the next one),
``_lbl_query``/``_lbl_linked`` (the frame a link or the URL asks for). The frame on screen is
written to the URL (``?frame=ID``), so a reload or a shared link opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.common import SPLIT_LABELS, select_dataset, show_error, store_key

METRICS = {"iou": "IoU", "f1": "F1", "count_score": "Count score", "object_recall": "Cosmics found"}
ORDERS = {
    "name": "By split and name",
    "uncertain": "Most uncertain first (frames without a mask)",
    "disagreement": "Model disagrees most first",
}
STATUS_WORDS = {"proposed": "proposed", "corrected": "corrected", "reviewed": "reviewed"}


@dataclass
class FrameChoice:
    """What the picker chose, and what it learnt about the frames on the way."""

    frame: db.FrameRecord
    position: int
    count: int
    #: the chosen run's evaluation: its per-image results, id and (run, evaluation) by id
    results: pd.DataFrame | None = None
    eval_id: int | None = None
    by_eval: dict = field(default_factory=dict)
    queue: dict = field(default_factory=dict)

    def result_row(self):
        """The chosen evaluation's row for the frame on screen, or None."""
        if self.results is None:
            return None
        rows = self.results[self.results["frame_id"] == self.frame.id]
        return None if rows.empty else rows.iloc[0]


def follow_link() -> None:
    """A link (or the URL after a reload) asks for one frame: show it, whatever the filters were."""
    wanted = st.query_params.get("frame")
    if not wanted or st.session_state.get("_lbl_query") == wanted:
        return
    st.session_state["_lbl_query"] = wanted
    try:
        linked = db.get_frame(int(wanted))
    except (ValueError, SegcoreError):
        st.warning(f"The link asks for frame {wanted}, which does not exist (any more).")
    else:
        select_dataset(linked.dataset_id)
        st.session_state.update(lbl_split="all", lbl_missing=False, _lbl_linked=linked.id)


@st.cache_data(max_entries=16, show_spinner=False)
def _results_table(store: str, evaluation_id: int, created):
    # Results never change once written; the store and creation time tell a reused id apart.
    return db.per_image_results(evaluation_id)


def _filters(dataset) -> tuple:
    """The sidebar's filters: (split, only_missing, eval_id, order, metric, by_eval)."""
    st.markdown("#### Which frames")
    splits = ["all"] + [s for s in db.SPLITS if dataset.frames.get(s)]
    if st.session_state.get("lbl_split") not in splits:
        st.session_state["lbl_split"] = "all"  # the split is empty in this dataset
    split = st.selectbox("Split", splits, key="lbl_split", persist_state="session",
                         format_func=lambda s: "All splits" if s == "all" else SPLIT_LABELS[s])
    only_missing = st.toggle("Only frames without a mask", key="lbl_missing", persist_state="session",
                             help="Train, validation and test frames that still need a mask.")
    try:
        evaluations = db.dataset_evaluations(dataset.id)
    except SegcoreError as exc:
        show_error(exc, "Could not read the runs")
        evaluations = []
    by_eval = {e.id: (run, e) for run, e in evaluations}
    if st.session_state.get("lbl_eval") not in [0, *by_eval]:
        st.session_state["lbl_eval"] = 0  # an evaluation of another dataset
    eval_id = st.selectbox(
        "Model run", [0, *by_eval],
        format_func=lambda i: f"{by_eval[i][0].name} ({by_eval[i][1].split}, evaluation {i})" if i else "none",
        key="lbl_eval", persist_state="session", disabled=not by_eval,
        help="An evaluated training run: sort frames by where it disagrees most with the masks, "
        "and start corrections from its prediction.",
    ) or None
    orders = [o for o in ORDERS if o != "disagreement" or eval_id is not None]
    if st.session_state.get("lbl_order") not in orders:
        st.session_state["lbl_order"] = "name"
    order = st.radio("Order", orders, key="lbl_order", persist_state="session", format_func=ORDERS.get,
                     help="*Most uncertain first*: the frames without a mask where the newest model proposal has "
                     "the most pixels of probability 0.2-0.8, plus the pixels where it and LA Cosmic differ. "
                     "Make proposals under *Proposals* below.")
    metric = st.selectbox("Disagreement measure", list(METRICS), format_func=METRICS.get, key="lbl_metric",
                          persist_state="session", disabled=order != "disagreement",
                          help="Frames with the lowest score against their mask come first.")
    return split, only_missing, eval_id, order, metric, by_eval


def pick_frame(dataset) -> FrameChoice:
    """The sidebar filters, the navigation row and the frame chooser; stops the page when no frame is left."""
    with st.sidebar:
        split, only_missing, eval_id, order, metric, by_eval = _filters(dataset)

    scores: dict[int, float] = {}
    results = None
    if eval_id is not None:
        try:
            results = _results_table(store_key(), eval_id, by_eval[eval_id][1].created)
            scores = {int(r.frame_id): float(getattr(r, metric)) for r in results.itertuples()
                      if r.frame_id == r.frame_id and getattr(r, metric) == getattr(r, metric)}
        except SegcoreError as exc:
            show_error(exc, f"Could not read evaluation {eval_id}")
    try:
        statuses = db.review_statuses(dataset.id)
    except SegcoreError:
        statuses = {}
    queue = {}
    frames = db.list_frames(dataset.id, None if split == "all" else split)
    if only_missing:
        # Real frames have no masks by design; they count only when asked for by split.
        frames = [f for f in frames if f.revision_id is None and (f.split != "real" or split == "real")]
    if order == "disagreement":
        frames = sorted((f for f in frames if f.id in scores), key=lambda f: (scores[f.id], f.name))
    elif order == "uncertain":
        try:
            queue = {e.frame_id: e for e in db.labeling_queue(dataset.id, None if split == "all" else split)}
        except SegcoreError as exc:
            show_error(exc, "Could not read the labeling queue")
        position = {frame_id: i for i, frame_id in enumerate(queue)}
        frames = sorted((f for f in frames if f.id in queue), key=lambda f: position[f.id])
    if not frames:
        if "frame" in st.query_params:
            del st.query_params["frame"]  # a reload stays on this dataset, not on the frame shown before
        if order == "uncertain":
            st.success("Every frame in this selection has a mask. Mark them reviewed, or retrain on them.",
                       icon=":material/check_circle:")
        elif only_missing:
            st.success("Every frame in this selection has a mask. Switch off *Only frames without a mask* to "
                       "review them.", icon=":material/check_circle:")
        elif order == "disagreement":
            st.info("The chosen run has no results for frames in this selection.")
        else:
            st.info("No frames here yet. Add some on the Datasets page.")
        st.stop()

    ids = [f.id for f in frames]
    by_id = {f.id: f for f in frames}
    _keep_position(ids, (dataset.id, split, only_missing, eval_id, order, metric))
    position = ids.index(st.session_state["lbl_frame"])

    try:
        proposed = db.proposed_frames(dataset.id)
    except SegcoreError:
        proposed = set()

    def frame_label(frame_id: int) -> str:
        f = by_id[frame_id]
        text = f"{f.name} · {f.split}"
        if f.revision_id is None and f.split != "real":
            text += " · no mask"
        if frame_id in proposed:
            text += " · proposal to review"
        if frame_id in statuses and statuses[frame_id] != "proposed":
            text += f" · {statuses[frame_id]}"
        if frame_id in queue and queue[frame_id].doubt is not None:
            text += f" · {queue[frame_id].doubt} px in doubt"
        if frame_id in scores:
            text += f" · {METRICS[metric]} {scores[frame_id]:.2f}"
        return text

    def step(offset: int) -> None:
        # From the position shown, not the chooser's value: when the frame's label changed (it got a mask),
        # the browser may send back the old label, which is no frame id.
        i = st.session_state.get("_lbl_pos", 0)
        st.session_state["lbl_frame"] = ids[max(0, min(len(ids) - 1, i + offset))]

    def jump() -> None:
        st.session_state["lbl_frame"] = ids[int(st.session_state["lbl_number"]) - 1]

    nav = st.columns([1.3, 1.3, 1.2, 4], vertical_alignment="bottom")
    nav[0].button("Previous", icon=":material/chevron_left:", on_click=step, args=(-1,), disabled=position == 0,
                  width="stretch", key="lbl_prev", shortcut="P")
    nav[1].button("Next", icon=":material/chevron_right:", on_click=step, args=(1,),
                  disabled=position == len(ids) - 1, width="stretch", key="lbl_next", shortcut="N")
    nav[2].number_input(f"Number (of {len(ids)})", 1, len(ids), key="lbl_number", on_change=jump)
    nav[3].selectbox("Frame (type to search by name)", ids, key="lbl_frame", persist_state="session",
                     format_func=frame_label)
    frame = by_id[st.session_state["lbl_frame"]]
    # The frame on screen is in the URL: a reload, or the link copied from the address bar, opens it again.
    st.query_params["frame"] = str(frame.id)
    st.session_state["_lbl_query"] = str(frame.id)
    return FrameChoice(frame=frame, position=position, count=len(ids), results=results, eval_id=eval_id,
                       by_eval=by_eval, queue=queue)


def _keep_position(ids: list[int], selection: tuple) -> None:
    """Set ``lbl_frame`` for this list: the first frame of a new selection, the frame a link asked
    for, else the same frame, or the one that followed it when it left the list."""
    if st.session_state.get("_lbl_selection") != selection:
        # A new filter or order starts at its first frame (e.g. the one the model gets most wrong).
        if st.session_state.get("_lbl_selection") is not None:
            st.session_state["lbl_frame"] = ids[0]
            st.session_state["_lbl_pos"] = 0
        st.session_state["_lbl_selection"] = selection
    if st.session_state.get("_lbl_linked") in ids:
        st.session_state["lbl_frame"] = st.session_state.pop("_lbl_linked")
    if st.session_state.get("lbl_frame") not in ids:
        # The frame left the list (e.g. it got a mask): take the one that followed it.
        position = min(st.session_state.get("_lbl_pos", 0), len(ids) - 1)
        st.session_state["lbl_frame"] = ids[position]
    position = ids.index(st.session_state["lbl_frame"])
    st.session_state["_lbl_pos"] = position
    st.session_state["lbl_number"] = position + 1
