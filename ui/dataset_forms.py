"""The Datasets page's forms that create, fill and delete datasets: *New dataset*, *Upload files*,
*Upload ZIP*, *Server folder* (under ``COSMICS_IMPORT_ROOTS``), *Simulate* and *Delete*. An import
selects the dataset it filled and reports what it stored (``imported``)."""

from __future__ import annotations

import os

import streamlit as st

import db
from segcore.errors import SegcoreError
from ui.common import SPLIT_LABELS, flash, report_lines, select_dataset, show_error

# Detector formats too (segcore.formats): every frame of an HDF5/NeXus stack becomes a frame.
FRAME_TYPES = ["png", "tif", "tiff", "npy", "h5", "hdf5", "hdf", "nxs", "nx5", "cxi", "edf", "cbf", "mccd", "sfrm",
               "gfrm", "img", "kcd", "mar2300", "mar3450"]
TARGETS = ["A new dataset", "The selected dataset"]


def import_target(target: str, dataset) -> int | None:
    """The dataset an import goes into: the selected one when chosen (and there is one), else None (a new one)."""
    return dataset.id if (target == TARGETS[1] and dataset is not None) else None


def imported(report) -> None:
    text, details = report_lines(report)
    select_dataset(report.dataset_id)
    flash(text, "success", details)
    st.rerun()


def new_dataset_form() -> None:
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


def upload_files_form(dataset) -> None:
    if dataset is None:
        st.info("Create a dataset first (tab *New dataset*).")
        return
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
        if not st.form_submit_button("Upload", type="primary"):
            return
        if not frames and not masks:
            st.error("Choose at least one frame or mask file to upload.")
            return
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


def upload_zip_form(dataset) -> None:
    with st.form("upload_zip", clear_on_submit=True):
        st.markdown(
            "A ZIP of a dataset folder in the original layout: `Train/`, `TrainAnnotation/`, `Validation/`, "
            "`ValidationAnnotation/`, `Test/`, `TestAnnotation/` and optionally `Real/` (at the top of the "
            "archive or inside one folder)."
        )
        archive = st.file_uploader("ZIP archive", type=["zip"], key="zip_file")
        target = st.radio("Import into", TARGETS, horizontal=True, disabled=dataset is None, key="zip_target")
        new_name = st.text_input("Name of the new dataset", placeholder="default: the archive's name", key="zip_name")
        if not st.form_submit_button("Import ZIP", type="primary"):
            return
        if archive is None:
            st.error("Choose a ZIP file first.")
            return
        into = import_target(target, dataset)
        try:
            with st.spinner(f"Unpacking and checking {archive.name}..."):
                report = db.import_zip(archive.getvalue(), name=None if into else (new_name.strip() or None),
                                       dataset_id=into, file_name=archive.name,
                                       author=st.session_state.get("author") or "upload")
        except SegcoreError as exc:
            show_error(exc, "ZIP refused, nothing was stored")
        else:
            imported(report)


def server_folder_form(dataset) -> None:
    roots = db.import_roots()
    if not roots:
        st.info(
            "Importing folders from the machine running this app is off, so nobody who reaches the app can read "
            f"its files. To allow it, start the app with `{db.IMPORT_ROOTS_ENV}` set to the folders it may read "
            f"(several separated by `{os.pathsep}`), e.g. `{db.IMPORT_ROOTS_ENV}=/data/beamtime streamlit run app.py`."
        )
        return
    with st.form("import_folder"):
        st.markdown(
            "A folder on the machine running this app, in the original layout (see *Upload ZIP*), under "
            + ", ".join(f"`{root}`" for root in roots) + "."
        )
        folder = st.text_input("Folder path", placeholder=str(roots[0] / "cosmics"), key="folder_path")
        target = st.radio("Import into", TARGETS, horizontal=True, disabled=dataset is None, key="folder_target")
        new_name = st.text_input("Name of the new dataset", placeholder="default: the folder's name",
                                 key="folder_name")
        if not st.form_submit_button("Import folder", type="primary"):
            return
        if not folder.strip():
            st.error("Type the path of a folder first.")
            return
        into = import_target(target, dataset)
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


def simulate_form() -> None:
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
        if not st.form_submit_button("Generate", type="primary"):
            return
        total = int(n_train + n_val + n_test + n_real)
        if total == 0:
            st.error("Ask for at least one frame.")
            return
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


def delete_form(dataset) -> None:
    if dataset is None:
        st.info("No dataset to delete.")
        return
    with st.form("delete_dataset"):
        st.markdown(
            f"Delete **{dataset.name}** with its {dataset.total_frames} frames, every mask revision, "
            "and all training runs and results made from it. This cannot be undone."
        )
        sure = st.checkbox(f"Yes, delete {dataset.name}", key="delete_sure")
        if not st.form_submit_button("Delete dataset"):
            return
        if not sure:
            st.error("Tick the box to confirm first.")
            return
        try:
            db.delete_dataset(dataset.id)
        except SegcoreError as exc:
            show_error(exc, "Could not delete the dataset")
        else:
            st.session_state.pop("dataset_id", None)
            flash(f"Deleted dataset **{dataset.name}**.")
            st.rerun()
