"""Home: what the tool does, what is in the store, and the next sensible step."""

from __future__ import annotations

import streamlit as st

import db
from db.models import ACTIVE_STATUSES
from ui import navigation
from ui.common import init_store, show_error, show_flash
from ui.run_text import is_lacosmic


def simulated(dataset) -> bool:
    """Whether a dataset was made by the simulator (the demo, or one simulated on the Datasets page)."""
    return (getattr(dataset, "source", None) or "").startswith("simulator")


def next_step(datasets, frames_missing: int, runs, evaluated) -> tuple[str, str, navigation.AppPage, str]:
    """(headline, explanation, page, link label) for what to do next."""
    if not datasets or not any(d.total_frames for d in datasets):
        return ("Add your data", "Upload frames and masks, or generate a simulated set.",
                navigation.DATASETS, "Go to Datasets")
    if not runs and all(simulated(d) for d in datasets):
        names = ", ".join(f"*{d.name}*" for d in datasets)
        return ("Bring your frames",
                f"{names} is **simulated**: made on first start so that every page has something to show, its "
                "frames, cosmics and masks are generated, not measured. Upload your own frames on the Datasets page "
                "(masks are optional: LA Cosmic proposes the first ones on the Label page, no training needed). "
                "Or try the tool on the demo first: train a first model on it on the Train page.",
                navigation.DATASETS, "Bring your frames")
    active = [r for r in runs if r.status in ACTIVE_STATUSES]
    if active:
        return ("Training is running", f"Run **{active[0].name}** is {active[0].status}. Watch its progress.",
                navigation.TRAIN, "Watch training")
    if frames_missing:
        text = (f"{frames_missing} frame(s) have no mask yet. Draw them on the Label page "
                "(or train a model first and correct its predictions).")
        return ("Label masks", text, navigation.LABEL, "Label masks")
    if not runs:
        return ("Train a first model", "Every frame has a mask. Train a model on the dataset.",
                navigation.TRAIN, "Train a model")
    if len(evaluated) >= 2:
        return ("Compare runs", "Several runs are evaluated: see which finds and counts cosmics best.",
                navigation.COMPARE, "Compare runs")
    if evaluated:
        text = ("See where the model finds cosmics and where it misses them; "
                "correct the worst frames on the Label page.")
        return ("Look at the results", text, navigation.RESULTS, "Look at results")
    return ("Evaluate a run", "Your runs have no evaluation yet. Evaluate one to see how well it works.",
            navigation.RESULTS, "Go to Results")


def home() -> None:
    init_store()
    show_flash()
    st.title("Cosmics")
    st.markdown(
        "Find **cosmic-ray hits** in X-ray detector frames. Bring frames (8- or 16-bit PNG, TIFF or NPY) "
        "with masks of their cosmics, correct the masks by hand, train a segmentation network "
        "(DeepLabV3+) on them, and see how well each trained model finds and **counts** the hits, "
        "frame by frame, at full resolution."
    )

    try:
        datasets = db.list_datasets()
        db.refresh_run_states()
        runs = db.list_runs()
        evaluations = db.list_evaluations()
        missing = db.count_frames_without_mask()
    except db.StoreError as exc:
        show_error(exc, "Could not read the store")
        return

    frames = sum(d.total_frames for d in datasets)
    evaluated = sorted({e.run_id for e in evaluations})
    cols = st.columns(4)
    cols[0].metric("Datasets", len(datasets))
    cols[1].metric("Frames", frames, help="All splits, including Real frames without masks.")
    cols[2].metric("Frames without a mask", missing, help="Train, validation and test frames only.")
    cols[3].metric("Training runs", len(runs))

    headline, text, page, label = next_step(datasets, missing, runs, evaluated)
    with st.container(border=True):
        st.subheader(f"Next step: {headline}")
        st.markdown(text)
        navigation.link(page, label=label, icon=":material/arrow_forward:")

    left, right = st.columns(2)
    with left:
        st.subheader("Datasets")
        if datasets:
            st.dataframe(
                [
                    {"Dataset": d.name, "Frames": "simulated" if simulated(d) else "yours", "Train": d.frames.get("train", 0), "Validation": d.frames.get("validation", 0),
                     "Test": d.frames.get("test", 0), "Real": d.frames.get("real", 0)}
                    for d in datasets
                ],
                hide_index=True,
                width="stretch",
            )
        else:
            st.info("No datasets yet.")
    with right:
        st.subheader("Latest run")
        if runs:
            active = any(r.status in ACTIVE_STATUSES for r in runs)
            # While a run trains, this panel refreshes itself; the rest of the page stays put.
            st.fragment(latest_run, run_every=5 if active else None)()
        else:
            st.info("No training runs yet.")

    st.subheader("Workflow")
    steps = [
        (navigation.DATASETS, "upload frames and masks, import a folder or ZIP, simulate data"),
        (navigation.LABEL, "draw and correct masks down to single pixels; every save is kept"),
        (navigation.TRAIN, "train a model in the background; watch its metrics per epoch"),
        (navigation.RESULTS, "per-frame scores, predicted masks, missed and false hits"),
        (navigation.COMPARE, "compare runs side by side"),
    ]
    for number, (page, text) in enumerate(steps, start=1):
        cols = st.columns([1, 4])
        with cols[0]:
            navigation.link(page, label=f"{number}. {page.title}")
        cols[1].markdown(text)


def latest_run() -> None:
    try:
        db.refresh_run_states()
        runs = db.list_runs()
        latest = max(runs, key=lambda r: r.id)
        own = db.list_evaluations(latest.id)
    except (db.StoreError, ValueError) as exc:
        st.caption(f"Could not read the latest run: {exc}")
        return
    st.markdown(f"**{latest.name}** on *{latest.dataset_name}*: status **{latest.status}**")
    if latest.status in ACTIVE_STATUSES:
        work = "frames" if is_lacosmic(latest) else "planned training"
        st.progress(float(latest.progress), text=f"{latest.progress:.0%} of the {work} done")
    if latest.error:
        st.caption(f"Error: {latest.error.splitlines()[0]}")
    if own:
        show_evaluation(max(own, key=lambda e: e.id))
    else:
        st.caption("Not evaluated yet.")


def show_evaluation(evaluation) -> None:
    summary = getattr(evaluation, "summary", None) or {}

    def mean(name: str):
        value = summary.get(name)
        if isinstance(value, dict):
            value = value.get("mean")
        return value

    split = getattr(evaluation, "split", "test")
    shown = (("f1", "F1"), ("iou", "IoU"), ("abs_count_error", "Count error"), ("count_score", "Count score"))
    explained = {"abs_count_error": "Mean of |predicted - true| / true cosmics per frame: 0 is exact, 1 is off by as "
                 "many as there are (counts each false cosmic as a whole error on a frame without true ones)."}
    cols = st.columns(len(shown))
    for col, (name, label) in zip(cols, shown):
        value = mean(name)
        col.metric(f"{label} ({split})", "n/a" if value is None else f"{value:.3f}", help=explained.get(name))


home()
