"""Datasets: create them, fill them (upload, ZIP, server folder, simulator), and check them."""

from __future__ import annotations

import math
import os

import numpy as np
import streamlit as st

import db
from segcore.errors import SegcoreError
from ui import navigation
from ui.common import (
    SPLIT_LABELS,
    dataset_selector,
    flash,
    init_store,
    report_lines,
    select_dataset,
    show_error,
    show_flash,
)
from ui.images import overlay_mask, render_frame, thumbnail

THUMBS_PER_PAGE = 12
# Detector formats too (segcore.formats): every frame of an HDF5/NeXus stack becomes a frame.
FRAME_TYPES = ["png", "tif", "tiff", "npy", "h5", "hdf5", "hdf", "nxs", "nx5", "cxi", "edf", "cbf", "mccd", "sfrm",
               "gfrm", "img", "kcd", "mar2300", "mar3450"]

init_store()
st.title("Datasets")
st.caption(
    "A dataset holds frames in four splits: **train** (the model learns from these), **validation** "
    "(checked during training), **test** (scored after training) and **real** (frames without masks, "
    "to run the model on). A frame and its mask share a file name."
)
show_flash()
dataset = dataset_selector()


def imported(report) -> None:
    text, details = report_lines(report)
    select_dataset(report.dataset_id)
    flash(text, "success", details)
    st.rerun()


# --- all datasets -------------------------------------------------------------------------

datasets = db.list_datasets()
if datasets:
    st.dataframe(
        [
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
        ],
        hide_index=True,
        width="stretch",
    )

tab_view, tab_new, tab_upload, tab_zip, tab_folder, tab_sim, tab_delete = st.tabs(
    ["Overview", "New dataset", "Upload files", "Upload ZIP", "Server folder", "Simulate", "Delete"]
)

# --- creating ----------------------------------------------------------------------------

with tab_new:
    with st.form("new_dataset", clear_on_submit=True):
        st.markdown("An empty dataset; add frames to it with **Upload files**.")
        name = st.text_input("Name", placeholder="e.g. Detector A, March beamtime", key="new_name")
        if st.form_submit_button("Create dataset", type="primary"):
            try:
                info = db.create_dataset(name)
            except SegcoreError as exc:
                show_error(exc, "Could not create the dataset")
            else:
                select_dataset(info.id)
                flash(f"Created dataset **{info.name}**. Add frames to it with *Upload files*.")
                st.rerun()

with tab_upload:
    if dataset is None:
        st.info("Create a dataset first (tab *New dataset*).")
    else:
        with st.form("upload_files", clear_on_submit=True):
            st.markdown(
                f"Add frames and/or masks to **{dataset.name}**. Masks pair with frames by file name "
                "(`x.png` or `x_mask.png`); a mask for a frame already in the split becomes its new mask "
                "(the old one stays in its history)."
            )
            split = st.selectbox("Split", list(db.SPLITS), format_func=SPLIT_LABELS.get, key="upload_split")
            frames = st.file_uploader("Frames", type=FRAME_TYPES, accept_multiple_files=True, key="upload_frames",
                                      help="8- or 16-bit PNG, TIFF or NPY, 32-bit or float detector files (EDF, CBF, "
                                      "Pilatus/Eiger TIFF, MarCCD, Bruker ...), or HDF5/NeXus stacks: each frame of "
                                      "a stack becomes a frame (file.h5::/entry/data/data#12). NaN and the "
                                      "detector's invalid-pixel values are never counted as cosmics.")
            masks = st.file_uploader("Masks", type=FRAME_TYPES, accept_multiple_files=True, key="upload_masks",
                                     help="0 = background, non-zero = cosmic; same size as the frame. A mask stack "
                                     "(HDF5 of the stack's layout) gives each frame of a stack its mask.")
            if st.form_submit_button("Upload", type="primary"):
                if not frames and not masks:
                    st.error("Choose at least one frame or mask file to upload.")
                else:
                    try:
                        with st.spinner(f"Checking and storing {len(frames or []) + len(masks or [])} file(s)..."):
                            report = db.import_files(
                                dataset.id,
                                split,
                                frames=[(f.name, f.getvalue()) for f in frames or []],
                                masks=[(f.name, f.getvalue()) for f in masks or []],
                                author=st.session_state.get("author") or "upload",
                            )
                    except SegcoreError as exc:
                        show_error(exc, "Upload refused, nothing was stored")
                    else:
                        imported(report)

with tab_zip:
    with st.form("upload_zip", clear_on_submit=True):
        st.markdown(
            "A ZIP of a dataset folder in the original layout: `Train/`, `TrainAnnotation/`, `Validation/`, "
            "`ValidationAnnotation/`, `Test/`, `TestAnnotation/` and optionally `Real/` (at the top of the "
            "archive or inside one folder)."
        )
        archive = st.file_uploader("ZIP archive", type=["zip"], key="zip_file")
        target = st.radio("Import into", ["A new dataset", "The selected dataset"], horizontal=True,
                          disabled=dataset is None, key="zip_target")
        new_name = st.text_input("Name of the new dataset", placeholder="default: the archive's name", key="zip_name")
        if st.form_submit_button("Import ZIP", type="primary"):
            if archive is None:
                st.error("Choose a ZIP file first.")
            else:
                into = dataset.id if (target == "The selected dataset" and dataset is not None) else None
                try:
                    with st.spinner(f"Unpacking and checking {archive.name}..."):
                        report = db.import_zip(archive.getvalue(), name=None if into else (new_name.strip() or None),
                                               dataset_id=into, file_name=archive.name,
                                               author=st.session_state.get("author") or "upload")
                except SegcoreError as exc:
                    show_error(exc, "ZIP refused, nothing was stored")
                else:
                    imported(report)

with tab_folder:
    roots = db.import_roots()
    if not roots:
        st.info(
            "Importing folders from the machine running this app is off, so nobody who reaches the app can read "
            f"its files. To allow it, start the app with `{db.IMPORT_ROOTS_ENV}` set to the folders it may read "
            f"(several separated by `{os.pathsep}`), e.g. `{db.IMPORT_ROOTS_ENV}=/data/beamtime streamlit run app.py`."
        )
    else:
        with st.form("import_folder"):
            st.markdown(
                "A folder on the machine running this app, in the original layout (see *Upload ZIP*), under "
                + ", ".join(f"`{root}`" for root in roots) + "."
            )
            folder = st.text_input("Folder path", placeholder=str(roots[0] / "cosmics"), key="folder_path")
            target = st.radio("Import into", ["A new dataset", "The selected dataset"], horizontal=True,
                              disabled=dataset is None, key="folder_target")
            new_name = st.text_input("Name of the new dataset", placeholder="default: the folder's name",
                                     key="folder_name")
            if st.form_submit_button("Import folder", type="primary"):
                if not folder.strip():
                    st.error("Type the path of a folder first.")
                else:
                    into = dataset.id if (target == "The selected dataset" and dataset is not None) else None
                    try:
                        with st.spinner("Copying and checking the folder..."):
                            report = db.import_server_folder(
                                folder, name=None if into else (new_name.strip() or None), dataset_id=into,
                                author=st.session_state.get("author") or "import",
                            )
                    except (SegcoreError, OSError) as exc:
                        show_error(exc, "Folder refused, nothing was stored")
                    else:
                        imported(report)

with tab_sim:
    with st.form("simulate"):
        st.markdown(
            "Simulated X-ray frames (powder rings, Bragg spots, diffuse scatter, detector gaps, noise) with "
            "cosmic-ray tracks of known shape, and their exact masks. Good for trying the tool out."
        )
        name = st.text_input("Name", value="Simulated set", key="sim_name")
        c = st.columns(4)
        n_train = c[0].number_input("Train frames", 0, 5000, 20, key="sim_train")
        n_val = c[1].number_input("Validation frames", 0, 5000, 4, key="sim_validation")
        n_test = c[2].number_input("Test frames", 0, 5000, 6, key="sim_test")
        n_real = c[3].number_input("Real frames", 0, 5000, 0, help="Frames without masks.", key="sim_real")
        c = st.columns(2)
        size = c[0].select_slider("Frame size (pixels)", [64, 128, 256, 512, 1024, 2048], value=256, key="sim_size")
        seed = c[1].number_input("Seed", 0, 2**31 - 1, 0, help="The same seed gives the same frames.", key="sim_seed")
        if st.form_submit_button("Generate", type="primary"):
            total = int(n_train + n_val + n_test + n_real)
            if total == 0:
                st.error("Ask for at least one frame.")
            else:
                bar = st.progress(0.0, text="Simulating...")

                def progress(done: int, _total: int) -> None:
                    bar.progress(min(done / total, 1.0), text=f"Simulating frame {done} of {total}")

                try:
                    report = db.import_simulated(name, int(n_train), int(n_val), int(n_test), n_real=int(n_real),
                                                 size=int(size), seed=int(seed), progress=progress)
                except (SegcoreError, ValueError) as exc:
                    bar.empty()
                    show_error(exc, "Could not simulate the dataset")
                else:
                    bar.empty()
                    imported(report)

with tab_delete:
    if dataset is None:
        st.info("No dataset to delete.")
    else:
        with st.form("delete_dataset"):
            st.markdown(
                f"Delete **{dataset.name}** with its {dataset.total_frames} frames, every mask revision, "
                "and all training runs and results made from it. This cannot be undone."
            )
            sure = st.checkbox(f"Yes, delete {dataset.name}", key="delete_sure")
            if st.form_submit_button("Delete dataset"):
                if not sure:
                    st.error("Tick the box to confirm first.")
                else:
                    try:
                        db.delete_dataset(dataset.id)
                    except SegcoreError as exc:
                        show_error(exc, "Could not delete the dataset")
                    else:
                        st.session_state.pop("dataset_id", None)
                        flash(f"Deleted dataset **{dataset.name}**.")
                        st.rerun()

# --- the selected dataset ------------------------------------------------------------------


@st.cache_data(max_entries=256, show_spinner=False)
def thumb(path: str, revision_id: int | None, low: float, high: float, show_mask: bool) -> np.ndarray:
    from segcore import io

    gray = render_frame(io.read_frame(path), low, high)
    mask = db.read_revision(revision_id) if (show_mask and revision_id is not None) else None
    return thumbnail(overlay_mask(gray, mask, opacity=0.8), 200)


with tab_view:
    if dataset is None:
        st.info("No dataset yet: create one, upload a ZIP, import a folder or simulate one.")
        st.stop()
    table = db.frames_table(dataset.id)
    st.subheader(dataset.name)
    if dataset.source:
        st.caption(f"Source: {dataset.source}")
    cols = st.columns(4)
    for col, split in zip(cols, db.SPLITS):
        rows = table[table["split"] == split]
        with_mask = int(rows["revision_id"].notna().sum())
        col.metric(SPLIT_LABELS[split], f"{len(rows)} frame{'' if len(rows) == 1 else 's'}",
                   delta=None if split == "real" else f"{with_mask} with mask", delta_color="off", delta_arrow="off")

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

    if table.empty:
        st.info("This dataset has no frames yet. Add some with *Upload files*.")
        st.stop()

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
    else:
        chunk = shown.iloc[(page - 1) * THUMBS_PER_PAGE: page * THUMBS_PER_PAGE]
        grid = st.columns(6)
        paths = {f.id: str(f.path) for f in db.list_frames(dataset.id)}
        for i, row in enumerate(chunk.itertuples()):
            revision = None if row.revision_id is None or row.revision_id != row.revision_id else int(row.revision_id)
            caption = f"{row.name} · {row.split}"
            caption += " · no mask" if revision is None and row.split != "real" else ""
            with grid[i % 6]:
                try:
                    st.image(thumb(paths[row.frame_id], revision, low, high, show_mask), caption=caption,
                             width="stretch")
                except (SegcoreError, OSError) as exc:
                    show_error(exc, row.name)

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
    navigation.link(navigation.LABEL, "Correct masks on the Label page")
