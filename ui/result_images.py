"""The Results page's per-image views of one evaluation: its table (``per_image``, cached), the
sortable per-image table, and the overlay browser (worst IoU first: frame, true and predicted masks,
the overlay of hits, misses and false alarms, a link to the frame, the frame cleaned)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui import charts
from ui.common import store_key
from ui.evaluation_views import frame_link
from ui.images import enlarge
from ui.run_text import is_lacosmic


@st.cache_data(show_spinner=False, max_entries=20)
def per_image(store: str, evaluation_id: int) -> pd.DataFrame:
    # An evaluation never changes once stored, so its table can be kept.
    return db.per_image_results(evaluation_id)


def image_choices(table: pd.DataFrame) -> dict[str, str]:
    """Image name -> how the overlay chooser shows it, the worst IoU first (table order without IoU)."""
    if "iou" not in table.columns:
        return {name: name for name in table["image"]}
    order = table.sort_values("iou", kind="stable")
    return {name: f"{name} (IoU {iou:.3f})" for name, iou in zip(order["image"], order["iou"])}


def per_image_table(table: pd.DataFrame) -> None:
    st.caption("Click a column header to sort, e.g. by IoU to find the worst images.")
    shown = [c for c in ("image", *charts.SUMMARY_METRICS, "true_count", "pred_count") if c in table.columns]
    st.dataframe(
        table[shown],
        hide_index=True,
        column_config={
            "image": st.column_config.TextColumn("Image", pinned=True),
            **{m: st.column_config.NumberColumn(charts.label(m), format="%.3f") for m in charts.SUMMARY_METRICS},
            "true_count": st.column_config.NumberColumn("True cosmics"),
            "pred_count": st.column_config.NumberColumn("Predicted cosmics"),
        },
    )


def _true_mask(row) -> np.ndarray | None:
    revision = row.get("revision_id")
    if revision is not None and not pd.isna(revision):
        return db.read_revision(int(revision))
    return db.current_mask(int(row["frame_id"]))


@st.cache_data(show_spinner="Drawing the overlay...", max_entries=32)
def _pictures(store: str, evaluation_id: int, image: str):
    from segcore.overlays import overlay
    from segcore.preprocess import display_image

    row = per_image(store, evaluation_id).set_index("image").loc[image].copy()
    row["image"] = image
    frame = db.read_frame(int(row["frame_id"]))
    true = _true_mask(row)
    pred = db.prediction_mask(int(row["result_id"]))
    return (
        display_image(frame),
        None if true is None else true.astype(np.uint8) * 255,
        pred.astype(np.uint8) * 255,
        overlay(frame, true, pred),
    )


@st.cache_data(show_spinner="Cleaning the frame...", max_entries=8)
def _cleaned(store: str, result_id: int) -> tuple[str, bytes]:
    return db.cleaned_frame(result_id)


def overlay_browser(run, evaluation, table: pd.DataFrame) -> None:
    """The *Overlays* tab: one image at a time, chosen worst IoU first."""
    choices = image_choices(table)
    image = st.selectbox(
        "Image (worst IoU first)",
        list(choices),
        format_func=choices.get,
        key=f"results_image_{evaluation.id}",
    )
    row = table.set_index("image").loc[image]
    c1, c2, c3 = st.columns(3)
    c1.metric("True cosmics", int(row["true_count"]))
    c2.metric("Predicted cosmics", int(row["pred_count"]), delta=int(row["pred_count"]) - int(row["true_count"]), delta_color="off")
    c3.metric("IoU", f"{row['iou']:.3f}" if "iou" in row else "–")
    try:
        frame_img, true_img, pred_img, over_img = _pictures(store_key(), evaluation.id, image)
    except (SegcoreError, OSError, KeyError, ValueError) as exc:
        st.error(f"The overlay of {image} cannot be drawn: {exc}")
        return
    big, small = st.columns([2, 1])
    big.image(
        enlarge(over_img),
        caption="Green: cosmic found · red: false alarm · blue: missed. Numbers count the predicted cosmics.",
        width="stretch",
    )
    small.image(enlarge(frame_img, 256), caption="Frame", width="stretch")
    if true_img is None:
        small.info("This frame has no true mask.")
    else:
        small.image(enlarge(true_img, 256), caption="True mask", width="stretch")
    predicted_by = "LA Cosmic's mask" if is_lacosmic(run) else f"Prediction at threshold {evaluation.threshold:g}"
    small.image(enlarge(pred_img, 256), caption=predicted_by, width="stretch")
    with small:
        frame_link(row.get("frame_id"), image)
    if "result_id" in row and not pd.isna(row["result_id"]):
        try:
            name, data = _cleaned(store_key(), int(row["result_id"]))
        except (SegcoreError, OSError, ValueError) as exc:
            small.caption(f"No cleaned frame: {exc}")
        else:
            small.download_button(
                "Download this frame cleaned", data, file_name=f"cleaned_{name}", icon=":material/download:",
                help="The frame in its own format, every predicted cosmic pixel replaced by the median of the "
                "unmasked pixels around it; the other pixels unchanged.",
            )
