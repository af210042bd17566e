"""Train a model: set up a run, start it, and watch it learn."""

from __future__ import annotations

import streamlit as st

import db
from ui.common import init_store
from ui.lacosmic_form import lacosmic_form
from ui.run_monitor import earlier_runs, live_run
from ui.run_text import ACTIVE_STATUSES
from ui.train_form import new_run_form

init_store()
st.title("Train a model")
st.caption(
    "Training runs in the background: you may leave this page, close the tab or open it twice; "
    "the run goes on and this page finds it again."
)

db.refresh_run_states()
runs = db.list_runs()
active = [r for r in runs if r.status in ACTIVE_STATUSES]
ended = [r for r in runs if r.status not in ACTIVE_STATUSES]

if active:
    st.subheader("Running now")
    for run in active:
        with st.container(border=True):
            live_run(run.id)

datasets = db.list_datasets()
with st.expander("Start a new run", expanded=not active):
    new_run_form(datasets, active)

with st.expander("No training: LA Cosmic"):
    lacosmic_form(datasets)

st.subheader("Earlier runs")
earlier_runs(ended)
