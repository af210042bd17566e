"""The Datasets page's views of what is stored: the table of all datasets, and the *Overview* of the
selected one (frames and masks per split, the validation report, a page of thumbnails with their
masks, the export ZIP in a chosen mask format, every frame as a table)."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui import navigation
from ui.common import SPLIT_LABELS, show_error
from ui.images import overlay_mask, render_frame, thumbnail

THUMBS_PER_PAGE = 12


def dataset_rows(datasets: list) -> list[dict]:
    """One row per dataset for the table at the top of the page."""
    return [
        {
            "Dataset": d.name,
            "Train": d.frames.get("train", 0),
            "Validation": d.frames.get("validation", 0),
            "Test": d.frames.get("test", 0),
            "Real": d.frames.get("real", 0),
            "Created": d.created.strftime("%Y-%m-%d %H:%M"),
            "Source": d.source or "",
        }
        for d in datasets
    ]


def datasets_table(datasets: list) -> None:
    if datasets:
        st.dataframe(dataset_rows(datasets), hide_index=True, width="stretch")


def thumb_label(row) -> tuple[int | None, str]:
    """(the mask revision to show, or None; the caption) of a row of ``db.frames_table``."""
    revision = None if row.revision_id is None or row.revision_id != row.revision_id else int(row.revision_id)
    caption = f"{row.name} · {row.split}"
    caption += " · no mask" if revision is None and row.split != "real" else ""
    return revision, caption


@st.cache_data(max_entries=256, show_spinner=False)
def thumb(path: str, revision_id: int | None, low: float, high: float, show_mask: bool) -> np.ndarray:
    from segcore import io

    gray = render_frame(io.read_frame(path), low, high)
    mask = db.read_revision(revision_id) if (show_mask and revision_id is not None) else None
    return thumbnail(overlay_mask(gray, mask, opacity=0.8), 200)


def _split_counts(table) -> None:
    cols = st.columns(4)
    for col, split in zip(cols, db.SPLITS):
        rows = table[table["split"] == split]
        with_mask = int(rows["revision_id"].notna().sum())
        col.metric(SPLIT_LABELS[split], f"{len(rows)} frame{'' if len(rows) == 1 else 's'}",
                   delta=None if split == "real" else f"{with_mask} with mask", delta_color="off", delta_arrow="off")


def _validation(dataset) -> None:
    report = db.validation_report(dataset.id)
    if report.ok:
        st.success(f"All {dataset.total_frames} frames are readable, and every train/validation/test frame "
                   "has a mask of its size.", icon=":material/check_circle:")
    else:
        problems = report.problems()
        st.warning(f"{len(problems)} problem(s) found: training uses only frames with a mask of the right size.",
                   icon=":material/warning:")
        with st.expander("Validation report", expanded=len(problems) <= 10):
            st.dataframe({"Problem": problems}, hide_index=True, width="stretch")


def _thumbnails(dataset, table) -> None:
    st.markdown("#### Frames")
    c = st.columns([2, 2, 2, 1])
    split = c[0].selectbox("Show split", ["all"] + [s for s in db.SPLITS if (table["split"] == s).any()],
                           format_func=lambda s: "All splits" if s == "all" else SPLIT_LABELS[s])
    low, high = c[1].slider("Contrast (percentiles)", 0.0, 100.0, (1.0, 99.5), 0.5,
                            help="Detector values at the low percentile show black, at the high one white. "
                            "16-bit frames need this: most of their range is empty.")
    show_mask = c[2].toggle("Show masks", value=True, help="Cosmic pixels in red.")
    shown = table if split == "all" else table[table["split"] == split]
    pages = max(1, math.ceil(len(shown) / THUMBS_PER_PAGE))
    page = c[3].number_input("Page", 1, pages, 1, help=f"{pages} page(s) of {THUMBS_PER_PAGE} frames")
    if low >= high:
        st.error("The low percentile must be below the high one.")
        return
    chunk = shown.iloc[(page - 1) * THUMBS_PER_PAGE: page * THUMBS_PER_PAGE]
    grid = st.columns(6)
    paths = {f.id: str(f.path) for f in db.list_frames(dataset.id)}
    for i, row in enumerate(chunk.itertuples()):
        revision, caption = thumb_label(row)
        with grid[i % 6]:
            try:
                st.image(thumb(paths[row.frame_id], revision, low, high, show_mask), caption=caption,
                         width="stretch")
            except (SegcoreError, OSError) as exc:
                show_error(exc, row.name)


def _export(dataset) -> None:
    with st.expander("Export (ZIP of frames and current masks)"):
        st.caption("Frames as imported (a stack file once) in the original layout; masks as the X-ray tools "
                   "read them: PNG, NumPy .npy, EDF (pyFAI, Dioptas), TIFF, or HDF5 (one file per stack with one "
                   "mask per frame in the stack's own layout, plus the NeXus pixel_mask).")
        e = st.columns([2, 1])
        export_format = e[0].selectbox("Mask format", list(db.EXPORT_MASK_FORMATS), key="export_mask_format")
        if e[1].button("Prepare ZIP", key="export_prepare"):
            try:
                with st.spinner("Writing the ZIP..."):
                    zip_path = db.export_dataset(dataset.id, export_format)
                    st.session_state["export_zip"] = (dataset.id, zip_path.name, zip_path.read_bytes())
                    zip_path.unlink()
            except (SegcoreError, OSError) as exc:
                show_error(exc, "Could not export the dataset")
        ready = st.session_state.get("export_zip")
        if ready and ready[0] == dataset.id:
            st.download_button("Download the ZIP", ready[2], file_name=ready[1], mime="application/zip",
                               key="export_download")


def _frames_table(table) -> None:
    with st.expander("All frames as a table"):
        st.dataframe(
            table.drop(columns=["frame_id"]),
            hide_index=True,
            width="stretch",
            column_config={
                "revision_id": st.column_config.NumberColumn("Mask revision"),
                "mask_saved": st.column_config.DatetimeColumn("Mask saved", format="YYYY-MM-DD HH:mm"),
                "cosmic_pixels": st.column_config.NumberColumn("Cosmic pixels"),
            },
        )


def overview(dataset) -> None:
    """The *Overview* tab. It ends the page's run where there is nothing more to show (``st.stop``)."""
    if dataset is None:
        st.info("No dataset yet: create one, upload a ZIP, import a folder or simulate one.")
        st.stop()
    table = db.frames_table(dataset.id)
    st.subheader(dataset.name)
    if dataset.source:
        st.caption(f"Source: {dataset.source}")
    _split_counts(table)
    _validation(dataset)
    if table.empty:
        st.info("This dataset has no frames yet. Add some with *Upload files*.")
        st.stop()
    _thumbnails(dataset, table)
    _export(dataset)
    _frames_table(table)
    navigation.link(navigation.LABEL, "Correct masks on the Label page")
