"""The Label page's editor panels: where the edit starts (saved mask, a run's prediction, a
proposal), the proposed-cosmics tools, the drawing tools, zoom and display settings, and the
callbacks of their buttons and shortcuts. The unsaved work is an :class:`ui.edit_session.EditSession`
per (frame, start), in ``st.session_state["lbl_works"]``; the one on screen is ``_lbl_key``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

import db
from segcore import io
from segcore.errors import SegcoreError
from segcore.metrics import find_cosmics as count_cosmics, label_cosmics
from segcore.preprocess import excess_significance
from ui.common import show_error
from ui.edit_session import EditSession
from ui.images import Window, zoom_window
from ui.proposals import proposal_label

CANVAS_SIDE = 520
ZOOMS = [1, 2, 4, 8, 16, 32, 64]
TOOLS = {"Brush": "freedraw", "Rectangle": "rect", "Polygon": "polygon", "Pick cosmics": "point"}
BRUSH_SIZES = list(range(1, 26))
#: The page's keyboard shortcuts (not while typing in a field), as listed on the page.
SHORTCUTS = {
    "N / P": "next / previous frame", "S": "save", "U": "undo",
    "K": "choose the next undecided proposed cosmic", "A / X": "accept / reject the chosen cosmic",
    "Shift+A / Shift+X": "accept all / reject all", "E": "set the chosen cosmic's extent at k sigma",
    "B / V": "larger / smaller brush", "I / O": "zoom in / out",
}


@dataclass(frozen=True)
class View:
    """How the frame is shown and drawn on."""

    window: Window
    low: float
    high: float
    gamma: float
    opacity: float
    colour: str
    canvas_side: int
    tool: str
    erase: bool
    brush: int
    click_keeps: bool

    @property
    def picking(self) -> bool:
        return TOOLS[self.tool] == "point"

    def params(self) -> tuple:
        """What the canvas' strokes depend on: a change commits them."""
        return (self.window, self.low, self.high, self.gamma, self.opacity, self.colour, self.tool, self.erase,
                self.brush)


# --- the work on screen ------------------------------------------------------------------------


def canvas_id() -> int:
    return st.session_state.get("_lbl_canvas", 0)


def new_canvas() -> None:
    """A fresh canvas (new key): its strokes are either committed to the mask already or dropped."""
    st.session_state.pop(f"lbl_canvas_{canvas_id()}", None)
    st.session_state["_lbl_canvas"] = canvas_id() + 1


def current_work() -> EditSession:
    return st.session_state["lbl_works"][st.session_state["_lbl_key"]]


def other_unsaved(frame_id: int) -> list[str]:
    """Names of other frames with unsaved edits in this browser tab."""
    return sorted({w.name for k, w in st.session_state.get("lbl_works", {}).items() if k[0] != frame_id and w.has_edits})


def forget_work(frame_id: int) -> None:
    """After a save or restore: the frame's edits are in the store now; start again from its new mask."""
    works = st.session_state.get("lbl_works", {})
    for key in [k for k in works if k[0] == frame_id]:
        del works[key]
    st.session_state["_lbl_reset_base"] = True
    st.session_state.pop("_lbl_key", None)
    new_canvas()


def _load(frame, base: str, key: tuple, proposal) -> EditSession:
    saved = db.current_mask(frame.id)
    if saved is None:
        saved = np.zeros((frame.height, frame.width), bool)
    mask = saved if proposal is None else db.proposal_mask(proposal.id)
    new_canvas()
    return EditSession(key=key, name=frame.name, base=mask, saved=saved, revision=frame.revision_id,
                       proposal=proposal, labels=label_cosmics(mask)[1] if proposal is not None else None)


def choose_work(frame, choice) -> EditSession:
    """The *Start from* radio (saved mask, the chosen run's prediction, the frame's proposals) and the
    edit session for that start, made on first use and kept while the tab is open."""
    result = choice.result_row()
    try:
        proposals = {f"proposal:{p.id}": p for p in db.frame_proposals(frame.id)[:6]}
    except SegcoreError as exc:
        show_error(exc, "Could not read the proposals")
        proposals = {}
    bases = ["current"] + (["prediction"] if result is not None else []) + list(proposals)
    if st.session_state.pop("_lbl_reset_base", False) or st.session_state.get("lbl_base") not in bases:
        st.session_state["lbl_base"] = "current"
    base = st.radio(
        "Start from", bases, key="lbl_base",
        format_func=lambda b: "Saved mask" if b == "current" else
        f"Prediction of run {choice.by_eval[choice.eval_id][0].name} (evaluation {choice.eval_id})"
        if b == "prediction" else proposal_label(proposals[b]),
        help="Correct the frame's saved mask, or start from a proposal: a model's prediction, which becomes "
        "ground truth only when you save it. Make proposals under *Proposals* in the sidebar.",
    )
    # Unsaved edits are kept per frame, so going to another frame and back loses nothing.
    works = st.session_state.setdefault("lbl_works", {})
    key = (frame.id, base, choice.eval_id if base == "prediction" else None)
    if key not in works:
        try:
            proposal = None
            if base == "prediction":
                # The run's prediction is a proposal, never ground truth: saving it records where it came from.
                proposal = db.propose_from_evaluation(int(result["result_id"]))
            elif base.startswith("proposal:"):
                proposal = proposals[base]
            works[key] = _load(frame, base, key, proposal)
        except SegcoreError as exc:
            show_error(exc, f"Could not read the mask of {frame.name}")
            st.stop()
        for old in [k for k, w in works.items() if k != key and not w.has_edits]:
            del works[old]
    elif st.session_state.get("_lbl_key") != key:
        new_canvas()
        works[key].params = None
    st.session_state["_lbl_key"] = key
    return works[key]


# --- button callbacks ------------------------------------------------------------------------------


def undo() -> None:
    current_work().undo()
    new_canvas()


def discard() -> None:
    current_work().discard()
    new_canvas()


def decide(decisions: dict[int, bool]) -> None:
    current_work().decide(decisions)
    new_canvas()


def decide_all(keep: bool) -> None:
    current_work().decide_all(keep)
    new_canvas()


def decide_chosen(keep: bool) -> None:
    chosen = st.session_state.get("lbl_component")
    if chosen:
        decide({int(chosen): keep})


@st.cache_resource(max_entries=2, show_spinner="Measuring the frame's local signal...")
def frame_significance(path: str) -> np.ndarray:
    return excess_significance(io.read_frame(path))


def set_extent(path: str) -> None:
    chosen = st.session_state.get("lbl_component")
    if chosen:
        current_work().resize_cosmic(frame_significance(path), chosen, st.session_state["lbl_extent_k"])
        new_canvas()


def step_setting(name: str, values: list, offset: int) -> None:
    """Move a slider's value ``offset`` steps along ``values`` (for the shortcut buttons)."""
    now = st.session_state.get(name, values[0])
    i = values.index(now) if now in values else 0
    st.session_state[name] = values[max(0, min(len(values) - 1, i + offset))]


def choose_next_undecided() -> None:
    """Choose the next proposed cosmic not decided yet, and centre the view on it."""
    work = current_work()
    k = work.next_undecided(st.session_state.get("lbl_component"))
    if k is not None:
        st.session_state["lbl_component"] = k
        rows, cols = np.nonzero(work.labels == k)
        st.session_state["lbl_row"], st.session_state["lbl_col"] = int(rows.mean()), int(cols.mean())


def centre_on_cosmic(frame_side: int) -> None:
    choice = st.session_state.get("lbl_cosmic")
    if not choice:
        return
    row, col = st.session_state["_lbl_cosmics"][choice - 1]
    st.session_state["lbl_cosmic"] = 0  # the list changes with every edit; the view keeps the centre
    st.session_state["lbl_row"], st.session_state["lbl_col"] = int(row), int(col)
    if st.session_state.get("lbl_zoom", 1) < 4 and frame_side > 128:
        st.session_state["lbl_zoom"] = 8


# --- panels ------------------------------------------------------------------------------------------


def proposal_tools(work: EditSession, frame_path: str) -> bool:
    """Accept or reject the proposal's cosmics, one, all, or by click; set one's extent. Returns
    whether a click with *Pick cosmics* accepts (True) or rejects."""
    n_proposed = work.proposed
    decided = work.decisions
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
    found = count_cosmics(work.base)[:500]
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
    chosen = bool(st.session_state.get("lbl_component"))
    c1, c2, c3 = st.columns(3)
    c1.button("Next", icon=":material/skip_next:", on_click=choose_next_undecided, key="lbl_next_cosmic",
              width="stretch", disabled=len(decided) == n_proposed, shortcut="K",
              help="Choose the next undecided cosmic and centre the view on it.")
    c2.button("Accept", icon=":material/check:", on_click=decide_chosen, args=(True,), key="lbl_accept",
              width="stretch", disabled=not chosen, shortcut="A")
    c3.button("Reject", icon=":material/close:", on_click=decide_chosen, args=(False,), key="lbl_reject",
              width="stretch", disabled=not chosen, shortcut="X")
    g1, g2 = st.columns([2, 1], vertical_alignment="bottom")
    g1.slider("Extent: signal above k sigma", 1.0, 10.0, 3.0, 0.5, key="lbl_extent_k", persist_state="session",
              help="The chosen cosmic's pixels above k times the local noise, with the pixels above it joined "
              "to them (up to 8 pixels out): lower k grows it, higher k shrinks it.")
    g2.button("Set extent", icon=":material/open_in_full:", on_click=set_extent, args=(frame_path,),
              key="lbl_extent", width="stretch", disabled=not chosen, shortcut="E")
    return st.radio("A click with *Pick cosmics*", [True, False], key="lbl_click", horizontal=True,
                    format_func=lambda k: "accepts" if k else "rejects")


def view_tools(frame, work: EditSession, click_keeps: bool) -> View:
    """Drawing tool, brush, zoom, the cosmic list and display settings (the tools column)."""
    st.markdown("#### Draw")
    tools = list(TOOLS) if work.from_proposal else [t for t in TOOLS if TOOLS[t] != "point"]
    if st.session_state.get("lbl_tool") not in tools:
        st.session_state["lbl_tool"] = "Brush"
    tool = st.segmented_control("Tool", tools, default="Brush", key="lbl_tool", persist_state="session",
                                required=True,
                                help="Polygon: click the corners, then click the first corner again to close it. "
                                "Pick cosmics: click a proposed cosmic to accept or reject it whole.")
    erase = st.toggle("Erase (strokes remove cosmic pixels)", key="lbl_erase", persist_state="session")
    brush = st.slider("Brush size (frame pixels)", 1, 25, 1, key="lbl_brush", persist_state="session")
    s1, s2 = st.columns(2)
    s1.button("Smaller brush", on_click=step_setting, args=("lbl_brush", BRUSH_SIZES, -1), key="lbl_brush_down",
              type="tertiary", shortcut="V")
    s2.button("Larger brush", on_click=step_setting, args=("lbl_brush", BRUSH_SIZES, 1), key="lbl_brush_up",
              type="tertiary", shortcut="B")

    st.markdown("#### Zoom")
    height, width = frame.height, frame.width
    zooms = [z for z in ZOOMS if z == 1 or max(height, width) / z >= 8]
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

    cosmics = count_cosmics(work.current)[:500]
    st.session_state["_lbl_cosmics"] = [c.centroid for c in cosmics]
    st.selectbox(
        "Go to cosmic", [0] + list(range(1, len(cosmics) + 1)), key="lbl_cosmic",
        format_func=lambda i: "choose one to centre on it" if i == 0 else
        f"#{i}: {cosmics[i - 1].area} px at row {cosmics[i - 1].centroid[0]:.0f}, "
        f"column {cosmics[i - 1].centroid[1]:.0f}",
        on_change=centre_on_cosmic, args=(max(height, width),), disabled=not cosmics,
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
    return View(window=window, low=low, high=high, gamma=gamma, opacity=opacity, colour=colour,
                canvas_side=canvas_side, tool=tool, erase=erase, brush=brush, click_keeps=click_keeps)
