"""Train a model: set up a run, start it, and watch it learn."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

import db
from segcore.classical import LACosmicParams
from segcore.errors import SegcoreError
from segcore.preprocess import INPUT_RECIPES
from segcore.trainer import TrainConfig
from ui import charts, navigation
from ui.common import init_store
from ui.run_admin import stop_text
from ui.run_text import (
    ACTIVE_STATUSES,
    INPUT_RECIPE_LABELS,
    LACOSMIC_LABEL,
    MEASURED_PARAMETERS,
    STATUS_ICONS,
    batch_progress,
    format_duration,
    is_lacosmic,
    lacosmic_parameters_text,
    readable_log,
    run_label,
    seconds_since,
    threshold_text,
    timing,
)

DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
LACOSMIC_DEFAULTS = LACosmicParams()
LOSSES = {"cross_entropy": "Cross-entropy (the original)", "dice_cross_entropy": "Cross-entropy + Dice (recommended)"}
SCHEDULE_LABELS = {
    "cosine": "Cosine: anneal over the run or its time limit",
    "step": "Step: the original decay by frames seen",
}
# The recommended recipe (TrainConfig's default) first.
RECIPES = {
    recipe: INPUT_RECIPE_LABELS.get(recipe, recipe)
    for recipe in sorted(INPUT_RECIPES, key=lambda r: r != DEFAULTS["input_recipe"])
}

BACKBONES = {
    "imagenet": "ImageNet (pre-trained; random start if it cannot be loaded)",
    "none": "None (random start)",
    "file": "A weights file (upload or path)",
    "tiny": "No ResNet50: a tiny network that trains in seconds, to try the whole loop (it finds cosmics poorly)",
}

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


def _status_line(run) -> None:
    icon = STATUS_ICONS.get(run.shown_status, "")
    weights, _, reason = (run.backbone_weights or "decided when training starts").partition(":")
    if weights == "file":
        weights = f"file {reason.strip()}"
    st.markdown(
        f"{icon} **{run_label(run)}** on dataset *{run.dataset_name}* · backbone weights used: **{weights}** · "
        f"arithmetic: **{run.precision or 'decided when training starts'}** · "
        f"evaluation threshold **{threshold_text(run)}**"
    )
    if run.precision_reason:
        st.caption(f"Arithmetic: {run.precision_reason}")
    if reason and weights == "random":
        st.caption(f"The backbone started from random weights: {reason.strip()}")


def _run_footer(run, live: bool) -> None:
    """What every run shows below its progress: a warning when its process falls silent, and its error."""
    if live and run.status == "running":
        quiet = seconds_since(run.heartbeat)
        if quiet is not None and quiet > 30:
            st.warning(f"No sign of life from the run's process for {format_duration(quiet)}.")
    if run.status == "failed" and run.error:
        st.error(f"The run failed: {run.error}")
    stopped = stop_text(run)
    if stopped:
        (st.warning if run.stop_reason == "time limit" else st.caption)(stopped)


def _run_log(run) -> None:
    with st.expander("Log (last lines)" if is_lacosmic(run) else "Training log (last lines)"):
        log = readable_log(db.run_log(run.id, tail=2000))
        st.code(log or "(nothing written yet)", language=None)


def _lacosmic_view(run, live: bool) -> None:
    """Status, frames done, time and log of an LA Cosmic run (it has no epochs or curves)."""
    icon = STATUS_ICONS.get(run.shown_status, "")
    st.markdown(f"{icon} **{run_label(run)}** on dataset *{run.dataset_name}* · **{LACOSMIC_LABEL}**")
    st.caption(f"Parameters: {lacosmic_parameters_text(run)}")
    done, total = run.current_step or 0, run.steps_per_epoch
    if live:
        if run.status == "queued" or not total:
            st.progress(0.0, text="Waiting for the LA Cosmic process to start...")
        else:
            tuning = " (the validation frames it tunes on, then the test frames)" if run.config.get("tune") else ""
            st.progress(run.progress, text=f"Frames: {done} of {total} done{tuning}")
    columns = st.columns(3)
    columns[0].metric("Frames done", f"{done} / {total}" if total else "–")
    columns[1].metric("Time so far" if live else "Time taken", format_duration(timing(run)["elapsed"]))
    f1 = run.config.get("tuned_f1")
    columns[2].metric("Pooled F1 on validation", "–" if f1 is None else f"{f1:.3f}", help="Of the tuned parameters.")
    _run_footer(run, live)
    _run_log(run)


def _run_view(run, live: bool) -> None:
    """Status, progress, timing, curves and log of one run."""
    if is_lacosmic(run):
        _lacosmic_view(run, live)
        return
    _status_line(run)
    epochs = db.epoch_metrics(run.id)
    clock = timing(run, epochs)
    total = clock["total"] or 1
    step, steps = batch_progress(run)
    if live:
        if run.status == "queued":
            st.progress(0.0, text="Waiting for the training process to start (loading TensorFlow takes a while)...")
        else:
            st.progress(min(clock["done"] / total, 1.0), text=f"Epochs: {clock['done']} of {total} done")
            if steps:
                st.progress(min((step or 0) / steps, 1.0), text=f"Epoch {clock['done'] + 1}: batch {step or 0} of {steps}")
    columns = st.columns(4)
    columns[0].metric("Epochs done", f"{clock['done']} / {clock['total']}")
    columns[1].metric("Time per epoch", format_duration(clock["per_epoch"]))
    if live:
        columns[2].metric("Time left (at most)", format_duration(clock["left"]), help="Early stopping may end the run sooner.")
    else:
        columns[2].metric("Time taken", format_duration(clock["elapsed"]))
    best = run.best_epoch
    columns[3].metric(
        "Best epoch",
        "–" if best is None else best + 1,
        help="The epoch with the lowest validation loss"
        + ("" if run.best_val_loss is None else f" ({run.best_val_loss:.4f})")
        + "; its weights are the ones kept.",
    )
    _run_footer(run, live)
    if epochs.empty:
        st.info("The learning curves appear here when the first epoch ends.")
    else:
        st.plotly_chart(charts.learning_curves(epochs), key=f"curves_{run.id}_{live}")
    _run_log(run)


@st.fragment(run_every=2)
def live_run(run_id: int) -> None:
    """Refreshes itself every 2 s while the run is queued or running."""
    run = db.get_run(run_id)
    if run.status not in ACTIVE_STATUSES:
        # Redraw the whole page with the ended run shown below.
        st.session_state["train_show_run"] = run_id
        st.rerun()
    _run_view(run, live=True)
    step = "frame" if is_lacosmic(run) else "batch"
    if st.button(
        "Stop this run",
        key=f"stop_{run_id}",
        icon=":material/stop_circle:",
        help="Stops after the current frame; no evaluation is stored." if is_lacosmic(run)
        else "Stops after the current batch and keeps the best weights so far.",
    ):
        try:
            db.cancel_run(run_id)
        except db.StoreError as exc:
            st.warning(str(exc))  # it ended in the meantime
        else:
            st.toast(f"Stopping run #{run_id} after the current {step}...")


if active:
    st.subheader("Running now")
    for run in active:
        with st.container(border=True):
            live_run(run.id)


# --------------------------------------------------------------------------- #
# New run
# --------------------------------------------------------------------------- #


def _config_problems(values: dict, weights_file: str | None) -> list[str]:
    problems = []
    try:
        TrainConfig(data_dir=".", out="model.keras", **values)
    except ValueError as exc:
        problems += [p[0].upper() + p[1:] for p in str(exc).split("; ")]
    if values["backbone_weights"] == "file" and not weights_file:
        problems.append("Upload a weights file or type its path, or choose another backbone.")
    return problems


def _choose_dataset(container, key: str, help: str):
    by_id = {d.id: d for d in datasets}
    ids = list(by_id)
    preferred = st.session_state.get("dataset_id")
    return by_id[
        container.selectbox(
            "Dataset",
            ids,
            index=ids.index(preferred) if preferred in ids else 0,
            format_func=lambda i: f"{by_id[i].name} ({by_id[i].frames.get('train', 0)} train, "
            f"{by_id[i].frames.get('validation', 0)} validation, {by_id[i].frames.get('test', 0)} test frames)",
            help=help,
            key=key,
        )
    ]


datasets = db.list_datasets()
with st.expander("Start a new run", expanded=not active):
    if active:
        st.warning("A run is already going. A new one trains at the same time on the same computer, which slows both.")
    if not datasets:
        st.info("There is no dataset yet. Import one on the Datasets page first.")
        navigation.link(navigation.DATASETS, "Datasets", ":material/folder:")
    else:
        auto_threshold = st.checkbox(
            "Choose on validation frames (recommended)",
            value=True,
            key="train_auto_threshold",
            help="When training ends, the probability threshold with the best pixel F1 on the validation frames "
            "is chosen, stored with the model and the run, and used for the test evaluation.",
        )
        with st.form("new_run"):
            left, right = st.columns(2)
            dataset = _choose_dataset(
                left, "train_dataset",
                "Training uses the current mask of every frame; masks you correct later do not change this run.",
            )
            name = right.text_input("Run name", placeholder="e.g. baseline-256px", help="Leave empty for an automatic name.")
            st.markdown("**Crops and batches**")
            c1, c2, c3, c4 = st.columns(4)
            crop_size = c1.number_input("Crop size (pixels)", min_value=16, max_value=4096, value=DEFAULTS["crop_size"], step=16, help="Side of the square crops cut from the frames at native resolution; a multiple of 16.")
            batch_size = c2.number_input("Batch size", min_value=1, max_value=256, value=DEFAULTS["batch_size"], help="Crops per training step. Lower it if memory runs out.")
            epochs = c3.number_input("Epochs (at most)", min_value=1, max_value=10_000, value=DEFAULTS["epochs"])
            steps = c4.number_input("Batches per epoch", min_value=0, max_value=1_000_000, value=0, help="0: enough crops to cover every training pixel about once per epoch.")
            st.markdown("**Learning rate schedule**")
            decay_every = DEFAULTS["decay_frames"]
            schedule = st.radio(
                "Schedule",
                list(SCHEDULE_LABELS),
                index=list(SCHEDULE_LABELS).index(DEFAULTS["schedule"]),
                format_func=SCHEDULE_LABELS.get,
                horizontal=True,
                help="Cosine lowers the rate smoothly to 1 % of it by the last epoch, or by the time limit if that "
                "comes first. Step keeps the original script's decay; flat epochs, decay rate and decay every apply "
                "to it only.",
            )
            c1, c2, c3, c4, c5 = st.columns(5)
            learning_rate = c1.number_input("Learning rate", min_value=0.0, max_value=1.0, value=DEFAULTS["learning_rate"], step=1e-5, format="%.1e")
            flat_epochs = c2.number_input("Flat epochs", min_value=0, max_value=10_000, value=DEFAULTS["flat_epochs"], help=f"Counted in frames seen, not in this run's epochs: the rate stays full for this many x "
                f"'decay every' frames (of {decay_every:,} by default, one epoch of the original script).")
            decay_rate = c3.number_input("Decay rate", min_value=0.0, max_value=10.0, value=DEFAULTS["decay_rate"], step=0.01, help="After the flat part the rate is multiplied by exp(-decay rate) every 'decay every' frames seen, "
                "however many batches this run's epochs have.")
            decay_frames = c4.number_input(
                "Decay every (frames)",
                min_value=1,
                max_value=100_000_000,
                value=decay_every,
                step=1000,
                help=f"The schedule counts training frames (crops) seen; {decay_every:,} is one epoch of the original "
                "script, so the rate falls as it did there whatever the length of this run's epochs.",
            )
            patience = c5.number_input("Early-stopping patience", min_value=1, max_value=10_000, value=DEFAULTS["patience"], help="Stop when the validation loss has not improved for this many epochs.")
            st.markdown("**Loss, sampling and time**")
            c1, c2, c3 = st.columns(3)
            loss = c1.radio(
                "Loss",
                list(LOSSES),
                index=list(LOSSES).index(DEFAULTS["loss"]),
                format_func=LOSSES.get,
                help="Cosmics cover about 0.1 % of a frame; adding the Dice loss keeps the network from predicting no cosmic at all.",
            )
            cosmic_crops = c2.slider(
                "Crops placed around a cosmic",
                0.0,
                1.0,
                float(DEFAULTS["cosmic_crop_fraction"]),
                0.05,
                help="Share of training crops centred near a cosmic pixel instead of anywhere in the frame.",
            )
            time_limit = c3.number_input(
                "Time limit (minutes)", min_value=0.0, value=0.0, step=5.0, help="0: no limit. Training stops after the last epoch that fits."
            )
            st.markdown("**Model**")
            recipe = st.selectbox(
                "Input recipe",
                list(RECIPES),
                index=list(RECIPES).index(DEFAULTS["input_recipe"]),
                format_func=RECIPES.get,
                help="How a frame becomes the network's 3 input channels. Recommended: the original stretch, counts "
                "on a log scale, and the excess over the local background in units of the expected noise (what LA "
                "Cosmic looks at). The recipe is stored in the model file and used again for every prediction.",
            )
            c1, c2 = st.columns(2)
            backbone = c1.radio("Backbone weights", list(BACKBONES), format_func=BACKBONES.get)
            weights_upload = c2.file_uploader("Weights file (.h5, .weights.h5 or .keras)", type=list(db.WEIGHT_SUFFIXES), help="ResNet50 weights without the classification top.")
            weights_path = c2.text_input("...or the path of a weights file on this computer")
            c1, c2 = st.columns(2)
            freeze = c1.checkbox("Freeze the backbone", help="Train only the decoder (faster; the original script did this).")
            separable = c1.checkbox(
                "Lighter model (separable convolutions)",
                value=bool(DEFAULTS["separable"]),
                help="Atrous depthwise-separable convolutions in the pyramid pooling and the decoder, as in the "
                "DeepLabV3+ paper: about 1.8x more training steps per minute and inference about 1.2x faster on a "
                "CPU; in one 40-minute CPU benchmark it scored as well per step and better per minute "
                "(bench/RESULTS.md).",
            )
            full_resolution = c1.checkbox(
                "Full-resolution head",
                value=bool(DEFAULTS["full_resolution"]),
                help="Decide each pixel at the frame's own resolution, with a light head that also reads the frame. "
                "Published DeepLabV3+ decides on a grid 4x coarser and upsamples, which cannot outline cosmics of "
                "1-4 pixels (bench/RESULTS.md). Recommended.",
            )
            if auto_threshold:
                threshold = None
                c2.caption(
                    "Evaluation threshold: chosen on the validation frames when training ends "
                    "(untick *Choose on validation frames* above to fix one)."
                )
            else:
                threshold = c2.slider(
                    "Threshold for the final evaluation",
                    0.01,
                    0.99,
                    0.5,
                    0.01,
                    help="Pixels with a cosmic probability above it count as cosmic. You can re-score at another "
                    "threshold later on the Results page.",
                )
            submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")

        if submitted:
            values = dict(
                crop_size=int(crop_size),
                batch_size=int(batch_size),
                epochs=int(epochs),
                learning_rate=float(learning_rate),
                flat_epochs=int(flat_epochs),
                decay_rate=float(decay_rate),
                decay_frames=int(decay_frames),
                schedule=schedule,
                patience=int(patience),
                backbone_weights=backbone,
                freeze_backbone=bool(freeze),
                separable=bool(separable),
                full_resolution=bool(full_resolution),
                steps_per_epoch=int(steps) or None,
                loss=loss,
                cosmic_crop_fraction=float(cosmic_crops),
                input_recipe=recipe,
                time_limit_minutes=float(time_limit) or None,
            )
            weights_file = None
            if backbone == "file":
                if weights_upload is not None:
                    weights_file = "upload"
                elif weights_path.strip():
                    weights_file = weights_path.strip()
            if backbone == "tiny":
                values.update(backbone="tiny", backbone_weights="none")
            problems = _config_problems(values, weights_file)
            if not problems and backbone == "file":
                try:
                    if weights_upload is not None:
                        weights_file = str(db.save_weights_file(weights_upload.name, weights_upload.getvalue()))
                    elif not Path(weights_file).expanduser().is_file():
                        problems.append(f"{weights_file}: no such file.")
                except (OSError, db.StoreError) as exc:
                    problems.append(str(exc))
                values["backbone_weights"] = weights_file
            if not dataset.frames.get("train"):
                problems.append(f"Dataset {dataset.name} has no training frames.")
            if problems:
                st.error("Please fix these settings:\n\n" + "\n".join(f"- {p}" for p in problems))
            else:
                try:
                    run_id = db.start_run(values, dataset.id, name=name.strip() or None, threshold=None if threshold is None else float(threshold))
                except (ValueError, SegcoreError) as exc:
                    st.error(f"The run could not start: {exc}")
                else:
                    st.success(f"Run #{run_id} started.")
                    st.rerun()


# --------------------------------------------------------------------------- #
# No training: LA Cosmic
# --------------------------------------------------------------------------- #

with st.expander("No training: LA Cosmic"):
    st.markdown(
        "LA Cosmic (van Dokkum 2001) marks pixels that stand out from their neighbours by more than the noise, "
        "sharper than the light around them. It needs no training: it runs in the background like a training run, "
        "is evaluated on the test split, and shows on Results and Compare next to the trained models."
    )
    if not datasets:
        st.info("There is no dataset yet. Import one on the Datasets page first.")
    else:
        with st.form("lacosmic_run"):
            left, right = st.columns(2)
            lacosmic_dataset = _choose_dataset(
                left, "lacosmic_dataset", "LA Cosmic runs on the current mask of every frame, like a training run."
            )
            lacosmic_name = right.text_input("LA Cosmic run name", placeholder="e.g. lacosmic-tuned", help="Leave empty for an automatic name.")
            st.markdown("**Detection**")
            c1, c2, c3, c4 = st.columns(4)
            sigclip = c1.number_input("sigclip", min_value=0.1, max_value=100.0, value=LACOSMIC_DEFAULTS.sigclip, step=0.5, help="How many noise sigmas a cosmic pixel's sharpness must exceed.")
            sigfrac = c2.number_input("sigfrac", min_value=0.01, max_value=10.0, value=LACOSMIC_DEFAULTS.sigfrac, step=0.05, help="Neighbours above sigfrac x sigclip join a detected cosmic.")
            objlim = c3.number_input("objlim", min_value=0.1, max_value=100.0, value=LACOSMIC_DEFAULTS.objlim, step=0.5, help="How much sharper than the blurred light around it a cosmic must be (high: fewer stars or Bragg spots taken).")
            niter = c4.number_input("niter", min_value=1, max_value=20, value=LACOSMIC_DEFAULTS.niter, help="Detection passes.")
            st.markdown("**Noise** (leave empty: measured on each frame)")
            noise_inputs = {}
            for column, (name, label) in zip(st.columns(4), MEASURED_PARAMETERS.items()):
                unit = "quanta per ADU" if name == "gain" else "ADU"
                noise_inputs[name] = column.number_input(
                    f"{label.capitalize()} ({unit})", min_value=0.0, value=None, placeholder="measured on each frame"
                )
            tune = st.checkbox(
                "Tune sigclip, objlim and sigfrac on the validation frames",
                value=True,
                key="lacosmic_tune",
                help="Tries sigclip 3-10, objlim 1-5 and sigfrac 0.1-0.5 and keeps the set with the best pooled pixel "
                "F1 on the validation frames (the values above are then replaced; niter and the noise are kept).",
            )
            start_lacosmic = st.form_submit_button("Start LA Cosmic", type="primary", icon=":material/flare:")

        if start_lacosmic:
            params = dict(sigclip=float(sigclip), sigfrac=float(sigfrac), objlim=float(objlim), niter=int(niter))
            params.update({name: None if value is None else float(value) for name, value in noise_inputs.items()})
            try:
                run_id = db.start_lacosmic_run(lacosmic_dataset.id, name=lacosmic_name.strip() or None, params=params, tune=tune)
            except (ValueError, SegcoreError) as exc:
                st.error(f"LA Cosmic could not start: {exc}")
            else:
                st.success(f"Run #{run_id} (LA Cosmic) started.")
                st.rerun()


# --------------------------------------------------------------------------- #
# Earlier runs
# --------------------------------------------------------------------------- #

st.subheader("Earlier runs")
if not ended:
    st.info("No run has ended yet. Finished runs appear here and on the Results page.")
else:
    ended_by_id = {r.id: r for r in ended}
    if st.session_state.get("train_show_run") in ended_by_id:
        st.session_state["train_earlier_run"] = st.session_state.pop("train_show_run")
    run_id = st.selectbox("Run", list(ended_by_id), format_func=lambda i: run_label(ended_by_id[i]), key="train_earlier_run")
    run = ended_by_id[run_id]
    with st.container(border=True):
        _run_view(run, live=False)
        if run.status in ("failed", "cancelled"):
            resume_help = (
                "Run LA Cosmic again, on the same masks." if is_lacosmic(run)
                else "Continue from the last saved epoch, on the same masks."
            )
            if st.button("Resume this run", icon=":material/replay:", help=resume_help):
                try:
                    new_id = db.resume_run(run.id)
                except (ValueError, SegcoreError) as exc:
                    st.error(f"The run could not be resumed: {exc}")
                else:
                    st.success(f"Run #{new_id} resumed.")
                    st.rerun()
        elif run.status == "finished":
            navigation.link(navigation.RESULTS, "See its results")
