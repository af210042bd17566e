"""The Train page's *No training: LA Cosmic* form: LA Cosmic's parameters (measured noise where left
empty), tuning on the validation frames, and ``db.start_lacosmic_run``."""

from __future__ import annotations

import streamlit as st

import db
from segcore.classical import LACosmicParams
from segcore.errors import SegcoreError
from ui.run_text import MEASURED_PARAMETERS
from ui.train_form import choose_dataset

LACOSMIC_DEFAULTS = LACosmicParams()


def lacosmic_params(detection: dict, noise: dict) -> dict:
    """The parameters ``db.start_lacosmic_run`` takes from the form's numbers: detection ones as floats
    (``niter`` an int), noise ones as floats or None (measured on each frame)."""
    params = {name: int(value) if name == "niter" else float(value) for name, value in detection.items()}
    params.update({name: None if value is None else float(value) for name, value in noise.items()})
    return params


def lacosmic_form(datasets: list) -> None:
    """The section's contents (the page puts them in an expander); starts the run on submit."""
    st.markdown(
        "LA Cosmic (van Dokkum 2001) marks pixels that stand out from their neighbours by more than the noise, "
        "sharper than the light around them. It needs no training: it runs in the background like a training run, "
        "is evaluated on the test split, and shows on Results and Compare next to the trained models."
    )
    if not datasets:
        st.info("There is no dataset yet. Import one on the Datasets page first.")
        return
    with st.form("lacosmic_run"):
        left, right = st.columns(2)
        dataset = choose_dataset(
            datasets, left, "lacosmic_dataset", "LA Cosmic runs on the current mask of every frame, like a training run."
        )
        run_name = right.text_input("LA Cosmic run name", placeholder="e.g. lacosmic-tuned", help="Leave empty for an automatic name.")
        st.markdown("**Detection**")
        c1, c2, c3, c4 = st.columns(4)
        detection = dict(
            sigclip=c1.number_input("sigclip", min_value=0.1, max_value=100.0, value=LACOSMIC_DEFAULTS.sigclip, step=0.5, help="How many noise sigmas a cosmic pixel's sharpness must exceed."),
            sigfrac=c2.number_input("sigfrac", min_value=0.01, max_value=10.0, value=LACOSMIC_DEFAULTS.sigfrac, step=0.05, help="Neighbours above sigfrac x sigclip join a detected cosmic."),
            objlim=c3.number_input("objlim", min_value=0.1, max_value=100.0, value=LACOSMIC_DEFAULTS.objlim, step=0.5, help="How much sharper than the blurred light around it a cosmic must be (high: fewer stars or Bragg spots taken)."),
            niter=c4.number_input("niter", min_value=1, max_value=20, value=LACOSMIC_DEFAULTS.niter, help="Detection passes."),
        )
        st.markdown("**Noise** (leave empty: measured on each frame)")
        noise = {}
        for column, (name, label) in zip(st.columns(4), MEASURED_PARAMETERS.items()):
            unit = "quanta per ADU" if name == "gain" else "ADU"
            noise[name] = column.number_input(
                f"{label.capitalize()} ({unit})", min_value=0.0, value=None, placeholder="measured on each frame"
            )
        tune = st.checkbox(
            "Tune sigclip, objlim and sigfrac on the validation frames",
            value=True,
            key="lacosmic_tune",
            help="Tries sigclip 3-10, objlim 1-5 and sigfrac 0.1-0.5 and keeps the set with the best pooled pixel "
            "F1 on the validation frames (the values above are then replaced; niter and the noise are kept).",
        )
        start = st.form_submit_button("Start LA Cosmic", type="primary", icon=":material/flare:")

    if not start:
        return
    try:
        run_id = db.start_lacosmic_run(
            dataset.id, name=run_name.strip() or None, params=lacosmic_params(detection, noise), tune=tune
        )
    except (ValueError, SegcoreError) as exc:
        st.error(f"LA Cosmic could not start: {exc}")
    else:
        st.success(f"Run #{run_id} (LA Cosmic) started.")
        st.rerun()
