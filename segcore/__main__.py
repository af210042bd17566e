"""Command line: ``python -m segcore {synth,train,evaluate,predict,lacosmic,clean} ...``.

Bad input ends with one line ``error: <file>: <problem>`` and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .errors import SegcoreError  # noqa: E402
from .outputs import FrameOutput, MaskOutput, refuse_clashes  # noqa: E402
from .inference import VIEWS  # noqa: E402
from .tiles import DEFAULT_OVERLAP, DEFAULT_TILE  # noqa: E402
from .precision import PRECISION_POLICIES  # noqa: E402

EXIT_BAD_INPUT = 2


_open_bars: list = []


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="frame")
    _open_bars.append(bar)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done >= _total:
            bar.close()

    return update


def cmd_synth(args) -> int:
    from .synth import generate_dataset

    n_validation = args.validation if args.validation is not None else round(args.n * 0.15)
    n_test = args.test if args.test is not None else round(args.n * 0.15)
    n_train = args.n - n_validation - n_test
    if n_train < 1:
        raise ValueError(f"--n {args.n} leaves no training frames after {n_validation} validation and {n_test} test")
    total = n_train + n_validation + n_test + args.real
    summary = generate_dataset(
        args.out,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
        n_real=args.real,
        size=args.size,
        seed=args.seed,
        progress=_progress_bar(total, "simulating"),
        overwrite=args.overwrite,
        frames_per_camera=args.frames_per_camera,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train_config(args):
    from .trainer import TrainConfig

    return TrainConfig(
        data_dir=args.data,
        out=args.out,
        crop_size=args.crop_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        flat_epochs=args.flat_epochs,
        decay_rate=args.decay_rate,
        patience=args.patience,
        backbone=args.backbone,
        backbone_weights=args.backbone_weights,
        freeze_backbone=args.freeze_backbone,
        decoder_kernel=args.decoder_kernel,
        separable=args.separable,
        full_resolution=args.full_resolution,
        seed=args.seed,
        steps_per_epoch=args.steps_per_epoch,
        validation_steps=args.validation_steps,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        mixed_precision=args.mixed_precision,
        time_limit_minutes=args.time_limit,
        loss=args.loss,
        cosmic_crop_fraction=args.cosmic_crop_fraction,
        cosmic_crop_choice=args.cosmic_crop_choice,
        input_recipe=args.input_recipe,
        decay_frames=args.decay_frames,
        schedule=args.schedule,
        final_rate_fraction=args.final_rate_fraction,
        choose_threshold=not args.no_threshold_search,
        zero_init_residuals=args.zero_init_residuals,
        prior_output=args.prior_output,
    )


def cmd_train(args) -> int:
    from .listeners import CancelToken, ConsoleProgress
    from .trainer import train

    config = _train_config(args)
    end = train(config, listeners=[ConsoleProgress()], cancel=CancelToken(args.cancel_file))
    print(json.dumps({k: v for k, v in vars(end).items() if k != "history"}, indent=2, default=str))
    return 0 if end.status == "finished" else 1


def cmd_evaluate(args) -> int:
    from .data import pair_split
    from .evaluator import evaluate_pairs
    from .model import load_model

    if args.csv:
        _check_output_file(args.csv)
    pairing = pair_split(args.data, args.split)
    for problem in pairing.problems():
        print(f"warning: {problem}", file=sys.stderr)
    if not pairing.pairs:
        raise SegcoreError(f"{Path(args.data) / args.split}: no frames with masks to evaluate")
    hot_pixels = _set_hot_pixels(args, [str(image) for image, _ in pairing.pairs])
    model = load_model(args.model, compile=False)
    result = evaluate_pairs(
        model,
        pairing.pairs,
        hot_pixels=hot_pixels,
        threshold=args.threshold,
        progress=_progress_bar(len(pairing.pairs), f"evaluating {args.split}"),
        predictions_dir=args.predictions,
        tile=args.tile,
        overlap=args.overlap,
        precision=args.precision,
        dilation=args.dilate,
        views=args.views,
    )
    if args.csv:
        result.per_image.to_csv(args.csv, index=False)
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=2))
    else:
        print(result.summary().to_string(float_format=lambda v: f"{v:.4f}"))
        pooled = ", ".join(f"{k} {v:.4f}" for k, v in result.pooled.items())
        print(f"pooled over {len(pairing.pairs)} frames: {pooled}")
        if args.dilate:
            print(f"predicted masks grown by {args.dilate} pixels")
    return 0


def _network_detector(args):
    """frame -> mask of the model ``--model`` with the command's threshold, tiling and views."""
    from .inference import load_inference_model, model_threshold, predict_mask

    model = load_inference_model(args.model, args.precision)
    threshold = model_threshold(model) if args.threshold is None else args.threshold
    return lambda frame: predict_mask(model, frame, threshold=threshold, tile=args.tile, overlap=args.overlap,
                                      views=args.views)


def cmd_predict(args) -> int:
    if args.dask:
        return _on_cluster(args, model=args.model)
    return _write_masks(args.files, Path(args.out), args.overlays, _grown(_network_detector(args), args),
                        args.mask_format, lambda addresses, out: _set_hot_pixels(args, addresses, out))


def cmd_lacosmic(args) -> int:
    from .classical import LACosmicParams, lacosmic_mask, tune_lacosmic, tuning_grid
    from .data import pair_split, read_pairs

    params = LACosmicParams(
        sigclip=args.sigclip, sigfrac=args.sigfrac, objlim=args.objlim, niter=args.niter, gain=args.gain,
        read_noise=args.read_noise, offset=args.offset, saturation=args.saturation,
    )
    if args.tune:
        pairing = pair_split(args.tune, args.tune_split)
        if not pairing.pairs:
            raise SegcoreError(f"{Path(args.tune) / args.tune_split}: no frames with masks to tune on")
        pairs = read_pairs(pairing.pairs)
        total = len(pairing.pairs)
        update = _progress_bar(total, f"tuning on {args.tune_split}")
        params, ranking = tune_lacosmic(pairs, tuning_grid(params), lambda done: update(done, total))
        best = ranking[0][1]
        print(f"tuned on {len(pairing.pairs)} frames: sigclip {params.sigclip}, objlim {params.objlim}, "
              f"sigfrac {params.sigfrac} (pooled F1 {best['f1']:.4f}, precision {best['precision']:.4f}, "
              f"recall {best['recall']:.4f})")
    if args.dask:
        from dataclasses import asdict

        return _on_cluster(args, lacosmic=asdict(params))
    return _write_masks(
        args.files, Path(args.out), args.overlays, _grown(lambda frame: lacosmic_mask(frame, params), args), args.mask_format,
        lambda addresses, out: _set_hot_pixels(args, addresses, out),
    )


def _grown(detect, args):
    """``detect`` with its masks grown by ``--dilate`` pixels."""
    from .postprocess import check_dilation, dilate

    pixels = check_dilation(args.dilate)
    return detect if pixels == 0 else (lambda frame: dilate(detect(frame), pixels))


def cmd_clean(args) -> int:
    from tqdm.auto import tqdm

    from . import formats, io
    from .postprocess import clean_frame

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SegcoreError(f"{out}: is a file; give a folder for the cleaned frames")
    for path in args.files:
        if formats.frame_file(path).parent.resolve() == out.resolve():
            raise SegcoreError(f"{path}: is in --out {out}; its cleaned copy would overwrite it")
    addresses, failures = _expand(args.files)
    masks = MaskOutput(out, args.mask_format, "_mask")
    frames = FrameOutput(out)
    refuse_clashes(addresses, frames.target, frames.group, "cleaned frames")
    refuse_clashes(addresses, masks.target, masks.group, "masks")
    if {frames.target(a) for a in addresses} & {masks.target(a) for a in addresses}:
        raise SegcoreError("a cleaned frame and a mask would be written to the same file; use another --mask-format")
    if args.dask:
        return _on_cluster(args, model=args.model, clean=True, addresses=addresses, failures=failures)
    if args.model:
        detect = _grown(_network_detector(args), args)
    else:
        from .classical import lacosmic_mask

        detect = _grown(lacosmic_mask, args)
    hot = _set_hot_pixels(args, addresses, out)
    out.mkdir(parents=True, exist_ok=True)
    cleaned = 0
    try:
        with tqdm(addresses, desc="cleaning", unit="frame") as bar:
            for address in bar:
                try:
                    raw = io.read_raw(address)
                    frame, invalid = io.read_frame_and_invalid(address, hot)
                except SegcoreError as exc:
                    bar.write(f"error: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                mask = formats.clear_invalid(detect(frame), invalid)
                frames.write(address, clean_frame(raw, mask, invalid))
                masks.write(address, mask)
                cleaned += 1
    except BaseException:
        frames.abort()
        masks.abort()
        raise
    frames.close()
    masks.close()
    print(f"{cleaned} cleaned frames and their masks written to {out}" + (f"; {failures} files failed" if failures else ""))
    return EXIT_BAD_INPUT if failures else 0


def _on_cluster(args, model=None, lacosmic=None, clean=False, addresses=None, failures=0) -> int:
    """predict, lacosmic or clean with ``--dask``: the frames spread over a Dask cluster's workers
    (:mod:`segcore.cluster`); a rerun into the same --out skips the frames already done."""
    from tqdm.auto import tqdm

    from . import cluster
    from .postprocess import check_dilation

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SegcoreError(f"{out}: is a file; give a folder for the results")
    if model is not None and not Path(model).is_file():
        raise SegcoreError(f"{model}: no such model file")
    if addresses is None:
        addresses, failures = _expand(args.files)
        masks = MaskOutput(out, args.mask_format)
        refuse_clashes(addresses, masks.target, masks.group, "masks", "would both be written as")
    job = cluster.FrameJob(
        out=str(out.absolute()), model=None if model is None else str(Path(model).absolute()), lacosmic=lacosmic,
        threshold=getattr(args, "threshold", None), tile=getattr(args, "tile", DEFAULT_TILE),
        overlap=getattr(args, "overlap", DEFAULT_OVERLAP), precision=getattr(args, "precision", "auto"),
        views=getattr(args, "views", 1),
        dilate=check_dilation(args.dilate), mask_format=args.mask_format, overlays=getattr(args, "overlays", False),
        clean=clean, hot_pixels=_set_hot_pixels(args, [cluster.absolute_address(a) for a in addresses], out),
    )
    with cluster.connect(args.dask, args.dask_workers) as client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        print(f"{len(addresses)} frames on the Dask cluster at {args.dask} ({workers} workers)", file=sys.stderr)
        result = cluster.run_frames(
            client, job, addresses, progress=_progress_bar(len(addresses), "cleaning" if clean else "predicting"),
            report=lambda line: tqdm.write(f"error: {line}", file=sys.stderr), display_out=out,
        )
    _close_bars()
    failures += len(result.errors)
    done = f"{len(result.rows)} cleaned frames and their masks written to {out}" if clean else \
        f"{len(result.rows)} masks and counts.csv written to {out}"
    print(done + (f" ({result.skipped} done by an earlier run)" if result.skipped else "")
          + (f"; {failures} files failed" if failures else ""))
    return EXIT_BAD_INPUT if failures else 0


def _expand(files) -> tuple[list[str], int]:
    """Every frame of ``files`` (a stack gives one address per frame); files that cannot be opened are reported."""
    from . import io

    addresses, failures = [], 0
    for path in files:
        try:
            addresses.extend(io.frame_addresses(path))
        except SegcoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
    return list(dict.fromkeys(addresses)), failures


def _set_hot_pixels(args, addresses, out: Path | None = None) -> dict:
    """The hot pixels ``--hot-pixels`` asks for: found in ``addresses`` (auto), none, or read from a file.

    Found ones are reported and, with ``out``, written to ``out/hot_pixels.json`` (a file ``--hot-pixels`` reads)."""
    from . import io
    from .hotpixels import HOT_FRACTION, count_hot, hot_pixels_of_set, read_hot_pixels

    choice = getattr(args, "hot_pixels", "none")
    if choice == "none":
        return {}
    if choice != "auto":
        hot = read_hot_pixels(choice)
        print(f"{count_hot(hot)} hot pixels from {choice} treated as invalid", file=sys.stderr)
        return hot

    bar = None

    def progress(done, total):
        nonlocal bar
        bar = bar or _progress_bar(total, "finding hot pixels")
        bar(done, total)

    hot, looked = hot_pixels_of_set(addresses, io.read_frame, io.image_shape, progress)
    if not looked:  # fewer than MIN_FRAMES frames of any one size
        return hot
    print(f"hot pixels: {count_hot(hot)} stand out alone in at least {HOT_FRACTION:.0%} of {looked} frames looked at; "
          "treated as invalid (--hot-pixels none keeps them)", file=sys.stderr)
    if out is not None and hot:
        out.mkdir(parents=True, exist_ok=True)
        (out / "hot_pixels.json").write_text(json.dumps(hot))
    return hot


def _write_masks(files, out: Path, overlays: bool, detect, mask_format: str = "auto", hot_pixels_of=None) -> int:
    """Masks (by ``mask_format``; ``auto``: the input's own kind), optional overlays and counts.csv for every frame
    of ``files``; unreadable files are reported."""
    from tqdm.auto import tqdm

    from . import formats, io
    from .hotpixels import shape_key
    from .overlays import prediction_overlay
    from .metrics import find_cosmics

    addresses, failures = _expand(files)
    masks = MaskOutput(out, mask_format)
    refuse_clashes(addresses, masks.target, masks.group, "masks", "would both be written as")
    hot = hot_pixels_of(addresses, out) if hot_pixels_of is not None else {}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        with tqdm(addresses, desc="predicting", unit="frame") as bar:
            for address in bar:
                try:
                    frame, invalid = io.read_frame_and_invalid(address, hot)
                except SegcoreError as exc:
                    bar.write(f"error: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                mask = formats.clear_invalid(detect(frame), invalid)
                written = masks.write(address, mask)
                if overlays:
                    overlay = prediction_overlay(frame, mask)[..., ::-1]
                    (out / f"{io.frame_stem(address)}_overlay.png").write_bytes(io.encode_png(overlay))
                cosmics = find_cosmics(mask)
                rows.append({"file": address, "mask": written, "cosmics": len(cosmics), "cosmic_pixels": int(mask.sum()),
                             "invalid_pixels": 0 if invalid is None else int(invalid.sum()),
                             "hot_pixels": len(hot.get(shape_key(frame.shape), []))})
    except BaseException:
        masks.abort()
        raise
    masks.close()
    with open(out / "counts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "mask", "cosmics", "cosmic_pixels", "invalid_pixels",
                                                    "hot_pixels"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} masks and counts.csv written to {out}" + (f"; {failures} files failed" if failures else ""))
    return EXIT_BAD_INPUT if failures else 0


def _add_tiling(parser) -> None:
    parser.add_argument(
        "--threshold", type=float,
        help="cosmic probability threshold (default: the model's own, chosen on validation frames, else 0.5)",
    )
    parser.add_argument(
        "--tile", type=int, default=DEFAULT_TILE,
        help=f"largest inference tile side, multiple of 16 (default {DEFAULT_TILE}: frames up to that size run whole)",
    )
    parser.add_argument(
        "--overlap", type=int, default=DEFAULT_OVERLAP,
        help=f"overlap between tiles, multiple of 16 (default {DEFAULT_OVERLAP})",
    )
    parser.add_argument(
        "--views", type=int, default=1, choices=VIEWS,
        help="average the probabilities over the frame seen in 1 (default), 2, 4 or 8 of its flips and rotations: "
        "a little more accurate, that many times slower",
    )
    parser.add_argument(
        "--precision", default="auto", choices=PRECISION_POLICIES,
        help="arithmetic of the network: auto (default) is bfloat16 on CPUs with AMX bfloat16 matrix units "
        "(faster there; without AMX it is slower than float32), float16 on GPUs, float32 elsewhere",
    )


def _add_mask_format(parser) -> None:
    from .formats import MASK_FORMATS

    parser.add_argument(
        "--mask-format", default="auto", choices=("auto", *MASK_FORMATS),
        help="how masks are written: auto (default) writes the input's own kind: for an HDF5/NeXus stack one "
        "compressed .h5 per stack with one mask per frame at the input's dataset path and the NeXus pixel_mask, "
        ".edf for EDF, CBF and the other detector formats, .png otherwise; png, npy, edf, tif or h5 for every frame",
    )


def _add_dask(parser) -> None:
    parser.add_argument(
        "--dask", metavar="SCHEDULER",
        help="spread the frames over a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for worker "
        "processes on this machine; results are written as frames finish and a rerun into the same --out skips "
        "the frames already done",
    )
    parser.add_argument(
        "--dask-workers", type=int, metavar="N", help="with --dask local: worker processes (default: one per core)",
    )


def _add_hot_pixels(parser) -> None:
    parser.add_argument(
        "--hot-pixels", default="auto", metavar="auto|none|FILE",
        help="pixels never taken for cosmics, filled from their neighbours: auto (default) finds them in the frames "
             "given, as single pixels that stand out in at least half of them (frames of one size are one detector; "
             "at least 10 frames); none; or a hot_pixels.json written by an earlier run, or a mask image "
             "(non-zero = hot)",
    )


def _add_dilate(parser) -> None:
    parser.add_argument(
        "--dilate", type=int, default=0, metavar="N",
        help="grow every predicted mask by N pixels in every direction, a safety margin around hits (default 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    from .data import COSMIC_CROP_CHOICES, SPLITS
    from .preprocess import INPUT_RECIPES
    from .trainer import BACKBONES, LOSSES, SCHEDULES, TrainConfig

    def default(name):
        return TrainConfig.__dataclass_fields__[name].default

    parser = argparse.ArgumentParser(prog="python -m segcore", description="Find and count cosmic-ray hits in X-ray detector frames.")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="simulate a demo dataset in the Train/Validation/Test layout")
    synth.add_argument("out", help="folder to write")
    synth.add_argument("--n", type=int, default=100, help="frames with masks in all (default 100; 70/15/15 split)")
    synth.add_argument("--validation", type=int, help="validation frames (default 15%% of --n)")
    synth.add_argument("--test", type=int, help="test frames (default 15%% of --n)")
    synth.add_argument("--real", type=int, default=0, help="extra frames without masks in Real/")
    synth.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames-per-camera", type=int, default=1,
                       help="consecutive frames that share one detector, its gaps and hot pixels (default 1: each its own)")
    synth.add_argument("--overwrite", action="store_true", help="replace frames already in OUT")
    synth.set_defaults(run=cmd_synth)

    train = commands.add_parser("train", help="train DeepLabV3+ on a dataset folder")
    train.add_argument("--data", required=True, help="dataset folder (Train/, TrainAnnotation/, Validation/, ...)")
    train.add_argument("--out", required=True, help="where to save the best model (.keras)")
    train.add_argument("--crop-size", type=int, default=default("crop_size"))
    train.add_argument("--batch-size", type=int, default=default("batch_size"))
    train.add_argument("--epochs", type=int, default=default("epochs"))
    train.add_argument("--learning-rate", type=float, default=default("learning_rate"))
    train.add_argument(
        "--flat-epochs", type=int, default=default("flat_epochs"),
        help="original epochs (of --decay-frames frames) at the initial learning rate",
    )
    train.add_argument(
        "--decay-rate", type=float, default=default("decay_rate"),
        help="learning rate x exp(-rate) per later original epoch",
    )
    train.add_argument(
        "--decay-frames", type=int, default=default("decay_frames"),
        help="frames per original epoch, the decay step (default %(default)s, the original script's epoch)",
    )
    train.add_argument(
        "--schedule", default=default("schedule"), choices=SCHEDULES,
        help="learning-rate schedule: step (the original decay by frames seen) or cosine (anneals over the "
        "planned epochs or the --time-limit, whichever ends first); default %(default)s",
    )
    train.add_argument(
        "--final-rate-fraction", type=float, default=default("final_rate_fraction"),
        help="cosine schedule: the last rate as a fraction of the first (default %(default)s)",
    )
    train.add_argument("--patience", type=int, default=default("patience"), help="early stopping patience on val_loss")
    train.add_argument(
        "--backbone", default=default("backbone"), choices=BACKBONES,
        help="default %(default)s; tiny builds and trains in seconds (with --backbone-weights none), to try a pipeline",
    )
    train.add_argument("--backbone-weights", default="imagenet", help="imagenet, none, or a weights file")
    train.add_argument("--freeze-backbone", action="store_true")
    train.add_argument("--decoder-kernel", type=int, default=3)
    train.add_argument(
        "--separable", action=argparse.BooleanOptionalAction, default=default("separable"),
        help="atrous separable convolutions in the pyramid and decoder, as published DeepLabV3+ "
        "(default %(default)s; --no-separable gives standard 3x3 convolutions, 2x slower to train on a CPU)",
    )
    train.add_argument(
        "--full-resolution", action=argparse.BooleanOptionalAction, default=default("full_resolution"),
        help="decide each pixel at the frame's own resolution (default); --no-full-resolution gives the published "
        "DeepLabV3+ layout, logits at 1/4 size upsampled",
    )
    train.add_argument(
        "--zero-init-residuals", action=argparse.BooleanOptionalAction, default=default("zero_init_residuals"),
        help="with random ResNet50 weights, start each residual block as the identity (its last batch norm's scale 0; "
        "default %(default)s, which learnt faster per step in bench/RESULTS.md)",
    )
    train.add_argument(
        "--prior-output", action=argparse.BooleanOptionalAction, default=default("prior_output"),
        help="start the output layer at the class prior, every pixel a cosmic with probability 0.01, whatever the "
        "random network below says (default %(default)s, which learnt faster on every seed in bench/RESULTS.md)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps-per-epoch", type=int, help="default: enough crops to cover the training pixels once")
    train.add_argument("--validation-steps", type=int, help="default: all validation tiles")
    train.add_argument("--checkpoint-dir", help="default: <out>_checkpoints/")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--mixed-precision", default="auto", choices=PRECISION_POLICIES,
        help="auto (default): bfloat16 on CPUs with AMX, float16 on GPUs, float32 elsewhere "
        "(COSMICS_PRECISION overrides auto)",
    )
    train.add_argument(
        "--loss", default=default("loss"), choices=LOSSES, help="default %(default)s; cross_entropy is the original"
    )
    train.add_argument(
        "--cosmic-crop-fraction", type=float, default=default("cosmic_crop_fraction"),
        help="share of crops placed around a cosmic (default %(default)s)",
    )
    train.add_argument(
        "--cosmic-crop-choice", default=default("cosmic_crop_choice"), choices=COSMIC_CROP_CHOICES,
        help="how a crop around a cosmic picks it: pixel (large cosmics more often) or cosmic (each alike); "
        "default %(default)s",
    )
    train.add_argument(
        "--input-recipe", default=default("input_recipe"), choices=INPUT_RECIPES,
        help="how frames become the network's channels (default %(default)s; stretch is the original)",
    )
    train.add_argument(
        "--no-threshold-search", action="store_true",
        help="do not choose the decision threshold on the validation frames after training",
    )
    train.add_argument("--time-limit", type=float, help="minutes; training ends in time for its last validation and checkpoints, mid-epoch if need be")
    train.add_argument("--cancel-file", help="training stops after the batch in which this file appears")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score a model on a split with masks")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--split", default="Test", choices=SPLITS)
    evaluate.add_argument("--json", action="store_true", help="print the aggregate metrics as JSON")
    evaluate.add_argument("--csv", help="write the per-image table here")
    evaluate.add_argument("--predictions", help="write predicted masks into this folder")
    _add_tiling(evaluate)
    _add_dilate(evaluate)
    _add_hot_pixels(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="write cosmic masks and counts for frames")
    predict.add_argument("--model", required=True)
    predict.add_argument("files", nargs="+", help="frames: files (PNG, TIFF, NPY, HDF5/NeXus, EDF, CBF, MarCCD, mar345, Bruker, ...; every frame of a "
        "stack) or frame addresses FILE::/dataset#INDEX")
    predict.add_argument("--out", required=True, help="folder for masks and counts.csv")
    predict.add_argument("--overlays", action="store_true", help="also write <stem>_overlay.png")
    _add_tiling(predict)
    _add_dilate(predict)
    _add_hot_pixels(predict)
    _add_mask_format(predict)
    _add_dask(predict)
    predict.set_defaults(run=cmd_predict)

    classical = commands.add_parser(
        "lacosmic", help="masks and counts by LA Cosmic, the detector that needs no training",
        description="LA Cosmic (astroscrappy). The offset, read noise and gain are measured on each frame unless "
        "given. With --tune, sigclip, objlim and sigfrac are chosen for the best pooled pixel F1 on a labelled split.",
    )
    classical.add_argument("files", nargs="+", help="frames: files (PNG, TIFF, NPY, HDF5/NeXus, EDF, CBF, MarCCD, mar345, Bruker, ...; every frame of a "
        "stack) or frame addresses FILE::/dataset#INDEX")
    classical.add_argument("--out", required=True, help="folder for masks and counts.csv")
    classical.add_argument("--overlays", action="store_true", help="also write <stem>_overlay.png")
    classical.add_argument("--sigclip", type=float, default=4.5, help="Laplacian significance of a cosmic pixel")
    classical.add_argument("--sigfrac", type=float, default=0.3, help="neighbours above sigfrac x sigclip join")
    classical.add_argument("--objlim", type=float, default=5.0, help="how much sharper than the light around")
    classical.add_argument("--niter", type=int, default=4)
    classical.add_argument("--gain", type=float, help="quanta per ADU (default: measured on each frame)")
    classical.add_argument("--read-noise", type=float, help="ADU (default: measured on each frame)")
    classical.add_argument("--offset", type=float, help="bias level, ADU (default: measured on each frame)")
    classical.add_argument("--saturation", type=float, help="saturation level, ADU (default: none)")
    classical.add_argument("--tune", metavar="DATA", help="dataset folder whose labelled split tunes the parameters")
    classical.add_argument("--tune-split", default="Validation", choices=SPLITS)
    _add_dilate(classical)
    _add_hot_pixels(classical)
    _add_mask_format(classical)
    _add_dask(classical)
    classical.set_defaults(run=cmd_lacosmic)

    clean = commands.add_parser(
        "clean", help="frames with their cosmics replaced from the pixels around them, and the masks",
        description="Each frame is written to OUT under its own name, in its own format and pixel type, with every "
        "masked pixel replaced by the median of the unmasked pixels around it (5x5, or a larger window where "
        "those are masked too); unmasked pixels are copied unchanged. The mask goes beside it as <stem>_mask.<format> (--mask-format). The frames "
        "of an HDF5 stack become one stack file of the same name, layout and pixel type; invalid pixels stay as they are.",
    )
    clean.add_argument("files", nargs="+", help="frames: files (PNG, TIFF, NPY, HDF5/NeXus, EDF, CBF, MarCCD, mar345, Bruker, ...; every frame of a "
        "stack) or frame addresses FILE::/dataset#INDEX")
    detector = clean.add_mutually_exclusive_group(required=True)
    detector.add_argument("--model", help="a trained model (.keras) finds the cosmics")
    detector.add_argument("--lacosmic", action="store_true", help="LA Cosmic finds them (parameters measured per frame)")
    clean.add_argument("--out", required=True, help="folder for the cleaned frames and their masks")
    _add_tiling(clean)
    _add_dilate(clean)
    _add_hot_pixels(clean)
    _add_mask_format(clean)
    _add_dask(clean)
    clean.set_defaults(run=cmd_clean)
    return parser


def _close_bars() -> None:
    """End any progress bar, so that an error starts on its own line."""
    while _open_bars:
        _open_bars.pop().close()


def _check_output_file(path) -> None:
    """Refuse an output file that cannot be written, before the work that fills it."""
    path = Path(path)
    if path.is_dir():
        raise SegcoreError(f"{path}: is a folder; give a file name to write")
    if not path.parent.is_dir():
        raise SegcoreError(f"{path}: its folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SegcoreError(f"{path}: cannot be written here (permission denied)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("default", category=RuntimeWarning)
    try:
        return args.run(args)
    except (SegcoreError, ValueError, OSError) as exc:  # OSError: FileExistsError, unwritable outputs, ...
        _close_bars()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
