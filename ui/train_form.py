"""The Train page's *Start a new run* form: the training settings (``TrainConfig``'s defaults), the
backbone weights (ImageNet, none, a file uploaded or typed, the tiny network), the evaluation
threshold, and the checks made before ``db.start_run``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

import db
from segcore.errors import SegcoreError
from segcore.preprocess import INPUT_RECIPES
from segcore.trainer import TrainConfig
from ui import navigation
from ui.run_text import INPUT_RECIPE_LABELS

DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
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


def config_problems(values: dict, weights_file: str | None) -> list[str]:
    """What ``TrainConfig`` refuses in ``values`` (one sentence each, capitalised), and a missing weights file."""
    problems = []
    try:
        TrainConfig(data_dir=".", out="model.keras", **values)
    except ValueError as exc:
        problems += [p[0].upper() + p[1:] for p in str(exc).split("; ")]
    if values["backbone_weights"] == "file" and not weights_file:
        problems.append("Upload a weights file or type its path, or choose another backbone.")
    return problems


def weights_file_choice(backbone: str, uploaded: bool, typed_path: str) -> str | None:
    """For the *weights file* backbone: ``"upload"`` when a file was uploaded, else the typed path (stripped);
    None when neither was given or another backbone was chosen."""
    if backbone != "file":
        return None
    if uploaded:
        return "upload"
    return typed_path.strip() or None


def backbone_values(backbone: str) -> dict:
    """The ``TrainConfig`` fields a *Backbone weights* choice sets (the tiny network starts from random weights)."""
    if backbone == "tiny":
        return {"backbone": "tiny", "backbone_weights": "none"}
    return {"backbone_weights": backbone}


def choose_dataset(datasets: list, container, key: str, help: str):
    """A dataset select box (the page's chosen dataset first), each with its frames per split."""
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


def new_run_form(datasets: list, active: list) -> None:
    """The form's contents (the page puts them in the *Start a new run* expander); starts the run on submit."""
    if active:
        st.warning("A run is already going. A new one trains at the same time on the same computer, which slows both.")
    if not datasets:
        st.info("There is no dataset yet. Import one on the Datasets page first.")
        navigation.link(navigation.DATASETS, "Datasets", ":material/folder:")
        return
    auto_threshold = st.checkbox(
        "Choose on validation frames (recommended)",
        value=True,
        key="train_auto_threshold",
        help="When training ends, the probability threshold with the best pixel F1 on the validation frames "
        "is chosen, stored with the model and the run, and used for the test evaluation.",
    )
    with st.form("new_run"):
        left, right = st.columns(2)
        dataset = choose_dataset(
            datasets, left, "train_dataset",
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
        zero_init = c1.checkbox(
            "Residual blocks start as the identity",
            value=bool(DEFAULTS["zero_init_residuals"]),
            help="When the backbone starts from random weights, each ResNet50 residual block starts as its "
            "shortcut (its last batch norm's scale set to 0): a network trained from scratch then starts shallow "
            "and learns faster per step (bench/RESULTS.md). Loaded weights are never changed.",
        )
        prior_output = c1.checkbox(
            "Output starts at the cosmic prior",
            value=bool(DEFAULTS["prior_output"]),
            help="The last layer starts by calling every pixel a cosmic with probability 0.01, whatever the random "
            "network below it says. Without it some random starts call every pixel a cosmic and spend hundreds "
            "of steps unlearning that (bench/RESULTS.md).",
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

    if not submitted:
        return
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
        zero_init_residuals=bool(zero_init),
        prior_output=bool(prior_output),
        steps_per_epoch=int(steps) or None,
        loss=loss,
        cosmic_crop_fraction=float(cosmic_crops),
        input_recipe=recipe,
        time_limit_minutes=float(time_limit) or None,
    )
    values.update(backbone_values(backbone))
    weights_file = weights_file_choice(backbone, weights_upload is not None, weights_path)
    problems = config_problems(values, weights_file)
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
        return
    try:
        run_id = db.start_run(values, dataset.id, name=name.strip() or None, threshold=None if threshold is None else float(threshold))
    except (ValueError, SegcoreError) as exc:
        st.error(f"The run could not start: {exc}")
    else:
        st.success(f"Run #{run_id} started.")
        st.rerun()
