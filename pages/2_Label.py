"""Label: go through frames, draw and correct cosmic masks, and keep every saved version."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

import db
from segcore import io
from segcore.components import component_at, proposal_changes
from segcore.errors import SegcoreError
from segcore.metrics import count_cosmics, label_cosmics, n_cosmics
from segcore.preprocess import excess_significance
from ui.common import (
    SPLIT_LABELS,
    author_input,
    dataset_selector,
    flash,
    init_store,
    select_dataset,
    show_error,
    show_flash,
    store_key,
)
from ui.images import (
    ADD_COLOR,
    ERASE_COLOR,
    canvas_background,
    canvas_size,
    difference_overlay,
    edited_mask,
    hex_to_rgb,
    outline,
    overlay_mask,
    render_frame,
    resize_nearest,
    thumbnail,
    zoom_window,
)
from ui.label_work import (
    decide_cosmics,
    discard_edits,
    fold_strokes,
    has_edits,
    next_undecided,
    resize_cosmic,
    undo_last,
)
from ui.proposals import (
    clicked_pixels,
    prediction_jobs,
    predict_form,
    proposal_label,
    proposal_overlay,
    source_text,
    window_picture,
)

CANVAS_SIDE = 520
ZOOMS = [1, 2, 4, 8, 16, 32, 64]
TOOLS = {"Brush": "freedraw", "Rectangle": "rect", "Polygon": "polygon", "Pick cosmics": "point"}
#: Splits whose masks score the runs: changing one asks for a confirmation.
SCORED_SPLITS = ("validation", "test")
BRUSH_SIZES = list(range(1, 26))
#: The page's keyboard shortcuts (not while typing in a field), as listed on the page.
SHORTCUTS = {
    "N / P": "next / previous frame", "S": "save", "U": "undo",
    "K": "choose the next undecided proposed cosmic", "A / X": "accept / reject the chosen cosmic",
    "Shift+A / Shift+X": "accept all / reject all", "E": "set the chosen cosmic's extent at k sigma", "B / V": "larger / smaller brush", "I / O": "zoom in / out",
}
METRICS = {"iou": "IoU", "f1": "F1", "count_score": "Count score", "object_recall": "Cosmics found"}

init_store()
st.title("Label")
st.caption("Paint the cosmic-ray hits of a frame, zoomed in down to single pixels, or start from a model's "
           "proposal and accept or reject its cosmics one by one; save the mask as a new revision. Earlier "
           "revisions are kept and can be compared or restored.")
show_flash()

# --- choosing the frame -------------------------------------------------------------------

wanted = st.query_params.get("frame")
if wanted and st.session_state.get("_lbl_query") != wanted:
    # A link from another page (e.g. a result) asks for one frame: show it, whatever the filters were.
    st.session_state["_lbl_query"] = wanted
    try:
        linked = db.get_frame(int(wanted))
    except (ValueError, SegcoreError):
        st.warning(f"The link asks for frame {wanted}, which does not exist (any more).")
    else:
        select_dataset(linked.dataset_id)
        st.session_state.update(lbl_split="all", lbl_missing=False, _lbl_linked=linked.id)

dataset = dataset_selector()
author = author_input()
if dataset is None:
    st.stop()

with st.sidebar:
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
        "Model run",
        [0, *by_eval],
        format_func=lambda i: f"{by_eval[i][0].name} ({by_eval[i][1].split}, evaluation {i})" if i else "none",
        key="lbl_eval",
        persist_state="session",
        help="An evaluated training run: sort frames by where it disagrees most with the masks, "
        "and start corrections from its prediction.",
        disabled=not by_eval,
    ) or None
    order = st.radio("Order", ["name", "disagreement"], key="lbl_order", persist_state="session",
                     disabled=eval_id is None,
                     format_func=lambda o: "By split and name" if o == "name" else "Model disagrees most first")
    if eval_id is None:
        order = "name"
    metric = st.selectbox("Disagreement measure", list(METRICS), format_func=METRICS.get, key="lbl_metric",
                          persist_state="session", disabled=eval_id is None or order != "disagreement",
                          help="Frames with the lowest score against their mask come first.")


@st.cache_data(max_entries=16, show_spinner=False)
def results_table(store: str, evaluation_id: int, created):
    # Results never change once written; the store and creation time tell a reused id apart.
    return db.per_image_results(evaluation_id)


scores: dict[int, float] = {}
results = None
if eval_id is not None:
    try:
        results = results_table(store_key(), eval_id, by_eval[eval_id][1].created)
        scores = {int(r.frame_id): float(getattr(r, metric)) for r in results.itertuples()
                  if r.frame_id == r.frame_id and getattr(r, metric) == getattr(r, metric)}
    except SegcoreError as exc:
        show_error(exc, f"Could not read evaluation {eval_id}")

frames = db.list_frames(dataset.id, None if split == "all" else split)
if only_missing:
    # Real frames have no masks by design; they count only when asked for by split.
    frames = [f for f in frames if f.revision_id is None and (f.split != "real" or split == "real")]
if eval_id is not None and order == "disagreement":
    frames = sorted((f for f in frames if f.id in scores), key=lambda f: (scores[f.id], f.name))
if not frames:
    if only_missing:
        st.success("Every frame in this selection has a mask. Switch off *Only frames without a mask* to "
                   "review them.", icon=":material/check_circle:")
    elif order == "disagreement":
        st.info("The chosen run has no results for frames in this selection.")
    else:
        st.info("No frames here yet. Add some on the Datasets page.")
    st.stop()

ids = [f.id for f in frames]
by_id = {f.id: f for f in frames}
selection = (dataset.id, split, only_missing, eval_id, order, metric)
if st.session_state.get("_lbl_selection") != selection:
    # A new filter or order starts at its first frame (e.g. the one the model gets most wrong).
    if st.session_state.get("_lbl_selection") is not None:
        st.session_state["lbl_frame"] = ids[0]
        st.session_state["_lbl_pos"] = 0
    st.session_state["_lbl_selection"] = selection
if st.session_state.get("_lbl_linked") in by_id:
    st.session_state["lbl_frame"] = st.session_state.pop("_lbl_linked")
if st.session_state.get("lbl_frame") not in by_id:
    # The frame left the list (e.g. it got a mask): take the one that followed it.
    position = min(st.session_state.get("_lbl_pos", 0), len(ids) - 1)
    st.session_state["lbl_frame"] = ids[position]
position = ids.index(st.session_state["lbl_frame"])
st.session_state["_lbl_pos"] = position
st.session_state["lbl_number"] = position + 1


def step(offset: int) -> None:
    i = ids.index(st.session_state["lbl_frame"])
    st.session_state["lbl_frame"] = ids[max(0, min(len(ids) - 1, i + offset))]


def jump() -> None:
    st.session_state["lbl_frame"] = ids[int(st.session_state["lbl_number"]) - 1]


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
    if frame_id in scores:
        text += f" · {METRICS[metric]} {scores[frame_id]:.2f}"
    return text


nav = st.columns([1.3, 1.3, 1.2, 4], vertical_alignment="bottom")
nav[0].button("Previous", icon=":material/chevron_left:", on_click=step, args=(-1,), disabled=position == 0,
              width="stretch", key="lbl_prev", shortcut="P")
nav[1].button("Next", icon=":material/chevron_right:", on_click=step, args=(1,),
              disabled=position == len(ids) - 1, width="stretch", key="lbl_next", shortcut="N")
nav[2].number_input(f"Number (of {len(ids)})", 1, len(ids), key="lbl_number", on_change=jump)
nav[3].selectbox("Frame (type to search by name)", ids, key="lbl_frame", persist_state="session",
                 format_func=frame_label)

frame = by_id[st.session_state["lbl_frame"]]


@st.cache_resource(max_entries=4, show_spinner="Reading the frame...")
def load_frame(path: str) -> np.ndarray:
    # Frames never change after import, so their path is a safe cache key.
    return io.read_frame(path)


@st.cache_data(max_entries=8, show_spinner=False)
def rendered(path: str, low: float, high: float, gamma: float) -> np.ndarray:
    return render_frame(load_frame(path), low, high, gamma)


try:
    pixels = load_frame(str(frame.path))
except (SegcoreError, OSError) as exc:
    show_error(exc, f"Cannot show {frame.name}")
    st.stop()

info = f"**{frame.name}** · {SPLIT_LABELS[frame.split]} · {frame.height}×{frame.width} px, {frame.bit_depth}-bit"
if frame.revision_id is None:
    info += " · no mask yet"
else:
    info += f" · mask revision {frame.revision_id}"
st.markdown(info)
if results is not None and frame.id in set(results["frame_id"].dropna().astype(int)):
    row = results[results["frame_id"] == frame.id].iloc[0]
    st.caption(
        f"Run *{by_eval[eval_id][0].name}* on this frame: IoU {row['iou']:.3f}, F1 {row['f1']:.3f}, "
        f"cosmics in the mask {int(row['true_count'])}, predicted {int(row['pred_count'])}."
    )

with st.sidebar:
    st.markdown("#### Proposals")
    with st.expander("Predict with a model", icon=":material/auto_awesome:"):
        predict_form(dataset, frame)
    prediction_jobs(dataset.id)

# --- the mask being edited ------------------------------------------------------------------

has_prediction = results is not None and frame.id in set(results["frame_id"].dropna().astype(int))
try:
    proposals = {f"proposal:{p.id}": p for p in db.frame_proposals(frame.id)[:6]}
except SegcoreError as exc:
    show_error(exc, "Could not read the proposals")
    proposals = {}
bases = ["current"] + (["prediction"] if has_prediction else []) + list(proposals)
if st.session_state.pop("_lbl_reset_base", False) or st.session_state.get("lbl_base") not in bases:
    st.session_state["lbl_base"] = "current"


def new_canvas() -> None:
    """A fresh canvas (new key): its strokes are either folded into the mask already or dropped."""
    old = f"lbl_canvas_{st.session_state.get('_lbl_canvas', 0)}"
    st.session_state.pop(old, None)
    st.session_state["_lbl_canvas"] = st.session_state.get("_lbl_canvas", 0) + 1


def load_work(base: str) -> dict:
    saved = db.current_mask(frame.id)
    if saved is None:
        saved = np.zeros((frame.height, frame.width), bool)
    proposal = None
    if base == "prediction":
        # The run's prediction is a proposal, never ground truth: saving it records where it came from.
        row = results[results["frame_id"] == frame.id].iloc[0]
        proposal = db.propose_from_evaluation(int(row["result_id"]))
    elif base.startswith("proposal:"):
        proposal = proposals[base]
    mask = saved if proposal is None else db.proposal_mask(proposal.id)
    labels = label_cosmics(mask)[1] if proposal is not None else None
    new_canvas()
    return {"key": (frame.id, base, eval_id if base == "prediction" else None), "name": frame.name,
            "base": mask.astype(bool), "saved": saved,
            "mask": mask.astype(bool).copy(), "undo": [], "edited": None, "params": None,
            "revision": frame.revision_id, "proposal": proposal,
            "labels": labels, "base_labels": labels, "decisions": {}}


def current_work() -> dict:
    return st.session_state["lbl_works"][st.session_state["_lbl_key"]]


def undo() -> None:
    undo_last(current_work())
    new_canvas()


def discard() -> None:
    discard_edits(current_work())
    new_canvas()


def decide(decisions: dict[int, bool]) -> None:
    decide_cosmics(current_work(), decisions)
    new_canvas()


@st.cache_resource(max_entries=2, show_spinner="Measuring the frame's local signal...")
def frame_significance(path: str) -> np.ndarray:
    return excess_significance(io.read_frame(path))


def set_extent() -> None:
    chosen = st.session_state.get("lbl_component")
    if chosen:
        resize_cosmic(current_work(), frame_significance(str(frame.path)), chosen, st.session_state["lbl_extent_k"])
        new_canvas()


def decide_all(keep: bool) -> None:
    decide({k: keep for k in range(1, int(current_work()["labels"].max()) + 1)})


def decide_chosen(keep: bool) -> None:
    chosen = st.session_state.get("lbl_component")
    if chosen:
        decide({int(chosen): keep})


def forget_work(frame_id: int) -> None:
    """After a save or restore: the frame's edits are in the store now; start again from its new mask."""
    works = st.session_state.get("lbl_works", {})
    for key in [k for k in works if k[0] == frame_id]:
        del works[key]
    st.session_state["_lbl_reset_base"] = True
    st.session_state.pop("_lbl_key", None)
    new_canvas()


def zoom_levels() -> list[int]:
    return [z for z in ZOOMS if z == 1 or max(frame.height, frame.width) / z >= 8]


def step_setting(name: str, values: list, offset: int) -> None:
    """Move a slider's value ``offset`` steps along ``values`` (for the shortcut buttons)."""
    now = st.session_state.get(name, values[0])
    i = values.index(now) if now in values else 0
    st.session_state[name] = values[max(0, min(len(values) - 1, i + offset))]


def choose_next_undecided() -> None:
    """Choose the next proposed cosmic not decided yet, and centre the view on it."""
    work = current_work()
    k = next_undecided(work, st.session_state.get("lbl_component"))
    if k is not None:
        st.session_state["lbl_component"] = k
        rows, cols = np.nonzero(work["labels"] == k)
        st.session_state["lbl_row"], st.session_state["lbl_col"] = int(rows.mean()), int(cols.mean())


def centre_on_cosmic() -> None:
    choice = st.session_state.get("lbl_cosmic")
    if not choice:
        return
    row, col = st.session_state["_lbl_cosmics"][choice - 1]
    st.session_state["lbl_cosmic"] = 0  # the list changes with every edit; the view keeps the centre
    st.session_state["lbl_row"], st.session_state["lbl_col"] = int(row), int(col)
    if st.session_state.get("lbl_zoom", 1) < 4 and max(frame.height, frame.width) > 128:
        st.session_state["lbl_zoom"] = 8


canvas_col, tools_col = st.columns([2, 1], gap="medium")

with tools_col:
    base = st.radio(
        "Start from",
        bases,
        key="lbl_base",
        format_func=lambda b: "Saved mask" if b == "current" else
        f"Prediction of run {by_eval[eval_id][0].name} (evaluation {eval_id})" if b == "prediction" else
        proposal_label(proposals[b]),
        help="Correct the frame's saved mask, or start from a proposal: a model's prediction, which becomes "
        "ground truth only when you save it. Make proposals under *Proposals* in the sidebar.",
    )
    # Unsaved edits are kept per frame, so going to another frame and back loses nothing.
    works = st.session_state.setdefault("lbl_works", {})
    key = (frame.id, base, eval_id if base == "prediction" else None)
    if key not in works:
        try:
            works[key] = load_work(base)
        except SegcoreError as exc:
            show_error(exc, f"Could not read the mask of {frame.name}")
            st.stop()
        for old in [k for k, w in works.items() if k != key and not has_edits(w)]:
            del works[old]
    elif st.session_state.get("_lbl_key") != key:
        new_canvas()
        works[key]["params"] = None
    st.session_state["_lbl_key"] = key
    work = works[key]

    from_proposal = work["proposal"] is not None
    if from_proposal:
        labels = work["labels"]
        n_proposed = int(labels.max())
        decided = work["decisions"]
        st.markdown("#### Proposed cosmics")
        st.caption(f"{n_proposed} proposed: {sum(decided.values())} accepted, "
                   f"{sum(not v for v in decided.values())} rejected, **{n_proposed - len(decided)} undecided** "
                   "(orange on the frame; saved as proposed unless rejected). With the *Pick cosmics* tool a "
                   "click on a cosmic decides it.")
        a1, a2 = st.columns(2)
        a1.button("Accept all", icon=":material/done_all:", on_click=decide_all, args=(True,), key="lbl_accept_all",
                  width="stretch", disabled=not n_proposed, shortcut="Shift+A")
        a2.button("Reject all", icon=":material/remove_done:", on_click=decide_all, args=(False,),
                  key="lbl_reject_all", width="stretch", disabled=not n_proposed, shortcut="Shift+X")
        found = count_cosmics(work["base"])[:500]
        state = {True: "accepted", False: "rejected"}
        # Undecided cosmics first: they are what is left to do.
        order = sorted(range(1, len(found) + 1), key=lambda k: (k in decided, k))
        if st.session_state.get("lbl_component") not in [0, *order]:
            st.session_state["lbl_component"] = 0
        st.selectbox("Proposed cosmic", [0, *order], key="lbl_component",
                     format_func=lambda k: "choose one" if k == 0 else
                     f"#{k}: {found[k - 1].area} px at row {found[k - 1].centroid[0]:.0f}, column "
                     f"{found[k - 1].centroid[1]:.0f} · {state.get(decided.get(k), 'undecided')}",
                     disabled=not n_proposed)
        c1, c2, c3 = st.columns(3)
        c1.button("Next", icon=":material/skip_next:", on_click=choose_next_undecided, key="lbl_next_cosmic",
                  width="stretch", disabled=len(decided) == n_proposed, shortcut="K",
                  help="Choose the next undecided cosmic and centre the view on it.")
        c2.button("Accept", icon=":material/check:", on_click=decide_chosen, args=(True,), key="lbl_accept",
                  width="stretch", disabled=not st.session_state.get("lbl_component"), shortcut="A")
        c3.button("Reject", icon=":material/close:", on_click=decide_chosen, args=(False,), key="lbl_reject",
                  width="stretch", disabled=not st.session_state.get("lbl_component"), shortcut="X")
        g1, g2 = st.columns([2, 1], vertical_alignment="bottom")
        g1.slider("Extent: signal above k sigma", 1.0, 10.0, 3.0, 0.5, key="lbl_extent_k", persist_state="session",
                  help="The chosen cosmic's pixels above k times the local noise, with the pixels above it joined "
                  "to them (up to 8 pixels out): lower k grows it, higher k shrinks it.")
        g2.button("Set extent", icon=":material/open_in_full:", on_click=set_extent, key="lbl_extent",
                  width="stretch", disabled=not st.session_state.get("lbl_component"), shortcut="E")
        click_keeps = st.radio("A click with *Pick cosmics*", [True, False], key="lbl_click", horizontal=True,
                               format_func=lambda k: "accepts" if k else "rejects")

    st.markdown("#### Draw")
    tools = list(TOOLS) if from_proposal else [t for t in TOOLS if TOOLS[t] != "point"]
    if st.session_state.get("lbl_tool") not in tools:
        st.session_state["lbl_tool"] = "Brush"
    tool = st.segmented_control("Tool", tools, default="Brush", key="lbl_tool", persist_state="session",
                                required=True,
                                help="Polygon: click the corners, then click the first corner again to close it. "
                                "Pick cosmics: click a proposed cosmic to accept or reject it whole.")
    picking = TOOLS[tool] == "point"
    erase = st.toggle("Erase (strokes remove cosmic pixels)", key="lbl_erase", persist_state="session")
    brush = st.slider("Brush size (frame pixels)", 1, 25, 1, key="lbl_brush", persist_state="session")
    s1, s2 = st.columns(2)
    s1.button("Smaller brush", on_click=step_setting, args=("lbl_brush", BRUSH_SIZES, -1), key="lbl_brush_down",
              type="tertiary", shortcut="V")
    s2.button("Larger brush", on_click=step_setting, args=("lbl_brush", BRUSH_SIZES, 1), key="lbl_brush_up",
              type="tertiary", shortcut="B")

    st.markdown("#### Zoom")
    height, width = frame.height, frame.width
    zooms = zoom_levels()
    if st.session_state.get("lbl_zoom") not in zooms:
        st.session_state["lbl_zoom"] = zooms[0]
    for name, size in (("lbl_row", height), ("lbl_col", width)):
        if not 0 <= st.session_state.get(name, size // 2) < size:
            st.session_state[name] = size // 2
        st.session_state.setdefault(name, size // 2)
    zoom = st.select_slider("Zoom factor", zooms, key="lbl_zoom", persist_state="session",
                            format_func=lambda z: f"{z}×")
    s1, s2 = st.columns(2)
    s1.button("Zoom out", on_click=step_setting, args=("lbl_zoom", zooms, -1), key="lbl_zoom_out", type="tertiary",
              shortcut="O")
    s2.button("Zoom in", on_click=step_setting, args=("lbl_zoom", zooms, 1), key="lbl_zoom_in", type="tertiary",
              shortcut="I")
    z1, z2 = st.columns(2)
    z1.slider("Centre row", 0, height - 1, key="lbl_row", persist_state="session", disabled=zoom == 1)
    z2.slider("Centre column", 0, width - 1, key="lbl_col", persist_state="session", disabled=zoom == 1)
    window = zoom_window((height, width), st.session_state["lbl_row"], st.session_state["lbl_col"], zoom)

    cosmics = count_cosmics(work["edited"] if work["edited"] is not None else work["mask"])[:500]
    st.session_state["_lbl_cosmics"] = [c.centroid for c in cosmics]
    st.selectbox(
        "Go to cosmic",
        [0] + list(range(1, len(cosmics) + 1)),
        key="lbl_cosmic",
        format_func=lambda i: "choose one to centre on it" if i == 0 else
        f"#{i}: {cosmics[i - 1].area} px at row {cosmics[i - 1].centroid[0]:.0f}, "
        f"column {cosmics[i - 1].centroid[1]:.0f}",
        on_change=centre_on_cosmic,
        disabled=not cosmics,
    )

    with st.expander("Keyboard shortcuts", icon=":material/keyboard:"):
        st.markdown("\n".join(["| key | does |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in SHORTCUTS.items()])
                    + "\n\nNot while typing in a field. Click the page outside a field first.")
    with st.expander("Display: contrast, gamma, mask colour", expanded=False):
        low, high = st.slider("Contrast (percentiles)", 0.0, 100.0, (1.0, 99.5), 0.1, key="lbl_contrast",
                              persist_state="session",
                              help="Detector values at the low percentile show black, at the high one white.")
        gamma = st.slider("Gamma", 0.2, 3.0, 1.0, 0.05, key="lbl_gamma", persist_state="session",
                          help="Below 1 brightens faint signal, above 1 darkens it.")
        opacity = st.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key="lbl_opacity", persist_state="session")
        colour = st.color_picker("Mask colour", "#ff2828", key="lbl_colour", persist_state="session")
        canvas_side = st.slider("Drawing area size (screen pixels)", 240, 1600, CANVAS_SIDE, 20, key="lbl_side",
                                persist_state="session",
                                help="Enlarge it on a big screen; the zoom decides how many frame pixels it shows.")

if low >= high:
    with canvas_col:
        st.error("Contrast: the low percentile must be below the high one.")
    st.stop()

gray = rendered(str(frame.path), low, high, gamma)
canvas_hw = canvas_size(window, canvas_side)
params = (window, low, high, gamma, opacity, colour, tool, erase, brush)
if work["params"] != params:
    # The view or tool changed: strokes so far become part of the mask, the canvas starts empty.
    fold_strokes(work)
    if work["params"] is not None:
        new_canvas()
    work["params"] = params
if from_proposal:
    background = window_picture(proposal_overlay(gray, work["mask"], work["labels"], work["decisions"],
                                                 hex_to_rgb(colour), opacity), window, canvas_hw)
else:
    background = canvas_background(gray, work["mask"], window, canvas_hw, opacity, hex_to_rgb(colour))

with canvas_col:
    scale = canvas_hw[1] / window.width
    colour_now = ERASE_COLOR if erase else ADD_COLOR
    result = st_canvas(
        fill_color=colour_now,
        # At least 2 screen pixels, so a thin stroke on a shrunk view still covers whole pixels.
        stroke_width=max(2, round(brush * scale)) if tool == "Brush" else 1,
        point_display_radius=max(2, round(scale / 2)),
        stroke_color=colour_now,
        background_image=background,
        update_streamlit=True,
        height=canvas_hw[0],
        width=canvas_hw[1],
        drawing_mode=TOOLS[tool],
        return_image_data=True,
        key=f"lbl_canvas_{st.session_state.get('_lbl_canvas', 0)}",
    )
    st.caption(f"Showing {window.describe()}; one frame pixel = {scale:.3g} screen pixels. "
               + (f"A click on a proposed cosmic **{'accepts' if click_keeps else 'rejects'}** it. " if picking else
                  "Strokes **remove** cosmic pixels (blue). " if erase else "Strokes **add** cosmic pixels (yellow). ")
               + "Hover over the drawing for its toolbar (undo or redo a stroke, clear).")

if picking:
    clicks = clicked_pixels(result.json_data, window, canvas_hw)
    canvas_id = st.session_state.get("_lbl_canvas", 0)
    seen = work.get("clicks_seen", (canvas_id, 0))
    seen = seen[1] if seen[0] == canvas_id else 0
    reach = max(2, int(np.ceil(4 / scale)))  # a few screen pixels beside a one-pixel hit still hit it
    picked = {component_at(work["labels"], r, c, reach) for r, c in clicks[seen:]} - {0}
    work["clicks_seen"] = (canvas_id, len(clicks))
    if picked:
        decide({k: click_keeps for k in picked})
        st.rerun()

image_data = None if picking else result.image_data
if image_data is not None and image_data[..., 3].any():
    work["edited"] = edited_mask(work["mask"], image_data, window, erase=erase)
else:
    work["edited"] = None
current = work["edited"] if work["edited"] is not None else work["mask"]

with tools_col:
    overview = outline(overlay_mask(gray, current, hex_to_rgb(colour), max(opacity, 0.6)), window,
                       thickness=max(1, max(height, width) // 128))
    st.image(thumbnail(overview, 320), caption="Whole frame; the yellow box is the part shown for drawing.",
             width=220)

with canvas_col:
    # Changes are counted against the saved mask (the ground truth), whatever the start was.
    added = int(np.count_nonzero(current & ~work["saved"]))
    removed = int(np.count_nonzero(work["saved"] & ~current))
    changed = bool(added or removed)
    m1, m2, m3 = st.columns(3)
    m1.metric("Cosmics", n_cosmics(current), help="Connected groups of cosmic pixels (8-connectivity), "
              "counted live on the mask you are editing.")
    m2.metric("Cosmic pixels", int(np.count_nonzero(current)))
    m3.metric("Changed pixels", f"+{added} −{removed}", help="Added and removed against the frame's saved mask.")
    if from_proposal:
        changes = proposal_changes(work["base"], current)
        st.caption(f"Changed from the proposal: **{changes.cosmics} cosmic(s), {changes.pixels} pixel(s)** "
                   f"({changes.added_pixels} added, {changes.removed_pixels} removed); saved with the mask, with the "
                   "proposal it came from.")
    b1, b2, _ = st.columns([1, 1, 1])
    b1.button("Undo", icon=":material/undo:", on_click=undo, width="stretch", key="lbl_undo", shortcut="U",
              disabled=not (work["undo"] or work["edited"] is not None),
              help="Undo the last change. The toolbar over the drawing area (hover over it) undoes single strokes.")
    b2.button("Discard edits", icon=":material/delete_sweep:", on_click=discard, width="stretch",
              key="lbl_discard", disabled=not has_edits(work) and not work["decisions"],
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
            st.error("Type your name under *Your name* in the sidebar first: every revision records who saved it.")
        elif not changed and base == "current" and frame.revision_id is not None:
            st.info("Nothing to save: the mask is the same as the saved one.")
        elif not confirmed and changed:
            st.warning(f"This is a {frame.split} frame: runs are scored on its mask. Tick *Change this "
                       f"{frame.split} mask* to save; evaluations made before stay on the older mask.")
        else:
            try:
                proposal = work["proposal"]
                revision = db.save_mask_revision(frame.id, current, source="drawn", author=author,
                                                 comment=comment or None,
                                                 proposal_id=None if proposal is None else proposal.id)
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

others = sorted({w["name"] for k, w in st.session_state.get("lbl_works", {}).items()
                 if k[0] != frame.id and has_edits(w)})
if others:
    canvas_col.warning("Unsaved edits on " + ", ".join(others) + ". They are kept while this browser tab is open; "
                       "go back to save them.", icon=":material/edit_note:")

# --- history -------------------------------------------------------------------------------

st.markdown("#### Mask history")
history = db.mask_history(frame.id)
runs_by_id = {r.id: r for r in db.list_runs()} if any(r.run_id for r in history) else {}
if not history:
    st.caption("No saved mask yet. Draw the cosmics and press *Save as new revision*.")
    st.stop()
st.dataframe(
    [
        {
            "Revision": r.id,
            "Saved": r.created.strftime("%Y-%m-%d %H:%M:%S"),
            "Source": source_text(r, runs_by_id),
            "Author": r.author,
            "Cosmic pixels": r.cosmic_pixels,
            "Comment": (r.comment or "") + (f" [restored from {r.restored_from_id}]" if r.restored_from_id else ""),
            "Current": "yes" if i == 0 else "",
        }
        for i, r in enumerate(history)
    ],
    hide_index=True,
    width="stretch",
)
revisions = {r.id: r for r in history}
h1, h2, h3 = st.columns([2, 2, 3])
first = h1.selectbox("Revision", list(revisions), index=min(1, len(history) - 1), key=f"lbl_rev_a_{frame.id}",
                     format_func=lambda i: f"{i} ({revisions[i].source}, {revisions[i].author or 'unknown'})")
second = h2.selectbox("Compare with", list(revisions), index=0, key=f"lbl_rev_b_{frame.id}",
                      format_func=lambda i: f"{i}" + (" (current)" if i == history[0].id else ""))
view = h3.segmented_control("View", ["Side by side", "Difference"], default="Side by side", key="lbl_view",
                            required=True)
area = st.radio("Area", ["zoom", "whole"], horizontal=True, key="lbl_area",
                format_func=lambda a: "Zoom window" if a == "zoom" else "Whole frame")
try:
    mask_a, mask_b = db.read_revision(first), db.read_revision(second)
except SegcoreError as exc:
    show_error(exc, "Could not read the revision")
    st.stop()
rows, cols = window.slices if area == "zoom" else (slice(None), slice(None))
size = canvas_hw if area == "zoom" else None


def picture(rgb: np.ndarray) -> np.ndarray:
    return resize_nearest(rgb, *size) if size else rgb


if view == "Side by side":
    p1, p2 = st.columns(2)
    for col, rev, mask in ((p1, first, mask_a), (p2, second, mask_b)):
        col.image(picture(overlay_mask(gray[rows, cols], mask[rows, cols], hex_to_rgb(colour), max(opacity, 0.6))),
                  caption=f"Revision {rev}: {n_cosmics(mask)} cosmic(s), {int(mask.sum())} pixel(s)",
                  width="stretch")
else:
    only_a = int(np.count_nonzero(mask_a & ~mask_b))
    only_b = int(np.count_nonzero(mask_b & ~mask_a))
    st.image(picture(difference_overlay(gray[rows, cols], mask_a[rows, cols], mask_b[rows, cols])),
             caption=f"Red: only in revision {first} ({only_a} px). Blue: only in revision {second} ({only_b} px). "
             "White: in both.", width=min(canvas_side, 900))

if first != history[0].id:
    if st.button(f"Restore revision {first}", icon=":material/restore:", key="lbl_restore",
                 help="Makes it the current mask again, as a new revision; nothing is deleted."):
        if not author:
            st.error("Type your name under *Your name* in the sidebar first: every revision records who saved it.")
        else:
            try:
                restored = db.restore_revision(first, author=author)
            except SegcoreError as exc:
                show_error(exc, "Could not restore the revision")
            else:
                forget_work(frame.id)
                flash(f"Restored revision {first} of {frame.name} as revision {restored.id}.", "toast")
                st.rerun()
