"""Datasets: create them, fill them (upload, ZIP, server folder, simulator), and check them."""

from __future__ import annotations

import streamlit as st

import db
from ui.common import dataset_selector, init_store, show_flash
from ui.dataset_forms import (
    delete_form,
    new_dataset_form,
    server_folder_form,
    simulate_form,
    upload_files_form,
    upload_zip_form,
)
from ui.dataset_overview import datasets_table, overview

init_store()
st.title("Datasets")
st.caption(
    "A dataset holds frames in four splits: **train** (the model learns from these), **validation** "
    "(checked during training), **test** (scored after training) and **real** (frames without masks, "
    "to run the model on). A frame and its mask share a file name."
)
show_flash()
dataset = dataset_selector()
datasets_table(db.list_datasets())

tab_view, tab_new, tab_upload, tab_zip, tab_folder, tab_sim, tab_delete = st.tabs(
    ["Overview", "New dataset", "Upload files", "Upload ZIP", "Server folder", "Simulate", "Delete"]
)
with tab_new:
    new_dataset_form()
with tab_upload:
    upload_files_form(dataset)
with tab_zip:
    upload_zip_form(dataset)
with tab_folder:
    server_folder_form(dataset)
with tab_sim:
    simulate_form()
with tab_delete:
    delete_form(dataset)
# Last: it stops the page's run where there is nothing more to show.
with tab_view:
    overview(dataset)
