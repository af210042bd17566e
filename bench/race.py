"""The fair race (issue 9): ours, deepCR, LA Cosmic and Cosmic-CoNN trained/tuned on the same frames.

    # the full race: ours and deepCR at the same time, one thread each, then the rest
    python bench/race.py DATA --only ours   --minutes 45 --threads 1 &
    python bench/race.py DATA --only deepcr --minutes 45 --threads 1 &
    wait
    python bench/race.py DATA --only lacosmic --threads 1
    python bench/race.py DATA --only cosmic-conn --minutes 45 --threads 1   # see COSMIC_CONN below
    python bench/race.py DATA --table            # the markdown table of everything in --out

    # rescore saved snapshots (e.g. after a scoring fix), no training:
    python bench/race.py DATA --only deepcr --score-only bench/out/race

DATA is a dataset folder in the project layout (Train/ TrainAnnotation/ Validation/
ValidationAnnotation/ Test/ TestAnnotation/; ``python -m segcore synth DATA``).

Every contestant trains on the Train split for ``--minutes`` of wall-clock time on
``--threads`` CPU threads, saving a snapshot every ``--snapshot-minutes`` of training
time (the time spent writing snapshots is not counted), and stops at the budget. After
training (not counted) every snapshot is scored on the Test split with the same scorer:
pooled pixel precision/recall/F1, mean count score and object recall/precision
(segcore.metrics, 8-connectivity), and seconds per 512x512 frame of prediction.

- ours: ``segcore.trainer.train`` with ``TrainConfig``'s defaults for everything the
  command line does not set. A listener copies the model being trained (given to it by
  the trainer through ``set_model``) every snapshot interval and cancels the run at the budget;
  ``time_limit_minutes`` is left unset so that the trainer's "next epoch would overrun"
  rule does not stop it early. Snapshots are scored with ``load_inference_model`` and
  ``predict_probabilities`` at the threshold the model's card records; a snapshot taken
  mid-run records none (the trainer chooses it after training, which a cancelled run skips),
  so it gets what the trainer would choose: the best pooled-F1 threshold on Validation
  (``segcore.metrics.ThresholdSearch``). deepCR and Cosmic-CoNN snapshots get the same
  search. F1 at 0.5 is reported beside it.
- deepCR: ``deepCR.training.train`` (0.3.1), its UNet2Sigmoid(hidden 32), BCE loss, Adam
  lr 0.005, batch 16, ReduceLROnPlateau as its constructor sets it up, phase 0 (batch
  statistics) for the first 40 % of the budget then phase 1 (frozen BN statistics, lr/2.5)
  as its ``train()`` does after 40 % of the epochs. Its ``train()`` only knows epochs, so
  the loop of ``train_phase0``/``train_phase1`` is driven here one batch at a time with its
  own ``optimize_network``, ``validate_mask``, ``save``/``load`` and the clock checked
  between batches. Input: each frame standardised over the frame ((x - mean) / std of the
  float ADU values) and cut into ``--deepcr-stamp`` stamps; at inference deepCR's own
  ``clean(..., segment=True)`` with ``norm=True`` does the same standardisation per frame.
- LA Cosmic: the product's classical detector, ``segcore.classical.lacosmic_mask`` (astroscrappy
  with the offset, read noise and gain measured on each frame); sigclip x objlim x sigfrac chosen
  by pooled F1 on Validation.
- Cosmic-CoNN: ``Cosmic_CoNN.initialize``/``update_model`` (its model class; see ``COSMIC_CONN``)
  with its defaults (UNet, group norm, hidden 32, Adam lr 0.001, constant rate) on the same
  standardised stamps as deepCR, batch 16, loss ``--cosmic-conn-loss`` (BCE: its median-weighted
  BCE needs a clean/median frame per stamp, which our datasets do not have), HST_dataset's rotations
  and flips; scored with ``cosmic_conn.init_model(snapshot.pth).detect_cr`` on the standardised frame.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import common
from common import cpu_flags, cpu_name, table

from segcore import metrics  # noqa: E402
from segcore.classical import OBJLIM_GRID, SIGCLIP_GRID, SIGFRAC_GRID  # noqa: E402
from segcore.data import pair_split  # noqa: E402
from segcore.io import read_frame, read_mask  # noqa: E402

CONTESTANTS = ("ours", "deepcr", "lacosmic", "cosmic-conn")
TIMING_SIZE = 512
DEFAULT_OUT = common.ROOT / "bench" / "out" / "race"
LACOSMIC_GRID = dict(sigclip=SIGCLIP_GRID, objlim=OBJLIM_GRID, sigfrac=SIGFRAC_GRID)

COSMIC_CONN = (
    "Cosmic-CoNN 0.6.1 has no training function for arrays: cosmic_conn.train.main parses sys.argv "
    "(dl_framework.options.TrainingOptions) and reads data only through dl_framework.dataloader.CreateDataLoader "
    "(LCO multi-frame FITS under 'masked_fits' folders, or HST .npz patches with raw/clean/crmask/badmask/exp/gain/sky); "
    "but its model class dl_framework.cosmic_conn.Cosmic_CoNN trains from Python with initialize(opt) and "
    "update_model(batch, epoch) on a batch in HST_dataset's layout, which is what this race does (train.py's "
    "epoch loop: update_model per batch, update_learning_rate per epoch; its per-epoch validation only picks "
    "checkpoints, so it is skipped)"
)


# --------------------------------------------------------------------------- #
# Machine, data, scoring
# --------------------------------------------------------------------------- #


def machine(threads: int) -> dict:
    flags = cpu_flags()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "flags": [f for f in wanted if f in flags],
        "threads": threads,
        "load_average": common.load_average(),
        "python": sys.version.split()[0],
    }


def load_split(data_dir: Path, split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, float32 frame in ADU, bool mask) of every pair of a split."""
    out = []
    for image, mask in pair_split(data_dir, split).pairs:
        frame = read_frame(image)
        out.append((image.name, frame, read_mask(mask, shape=frame.shape)))
    if not out:
        raise SystemExit(f"{data_dir}/{split}: no frame/mask pairs")
    return out


def timing_frame(frames) -> np.ndarray:
    """A 512x512 frame for timing: a test frame, reflected/cropped to 512x512 if it is another size."""
    frame = frames[0][1]
    h, w = frame.shape
    if h < TIMING_SIZE or w < TIMING_SIZE:
        frame = np.pad(frame, ((0, max(0, TIMING_SIZE - h)), (0, max(0, TIMING_SIZE - w))), mode="symmetric")
    return np.ascontiguousarray(frame[:TIMING_SIZE, :TIMING_SIZE])


class Tally:
    """Pooled pixel counts and per-frame object scores over a split."""

    def __init__(self):
        self.counts = np.zeros(4, np.int64)
        self.count_scores, self.object_recall, self.object_precision = [], [], []
        self.n_true = self.n_pred = self.matched_true = self.matched_pred = 0

    def add(self, true: np.ndarray, pred: np.ndarray) -> None:
        self.counts += np.asarray(metrics.confusion_counts(true, pred), np.int64)
        o = metrics.object_scores(true, pred)
        self.count_scores.append(metrics.count_score(o["true_count"], o["pred_count"]))
        self.object_recall.append(o["object_recall"])
        self.object_precision.append(o["object_precision"])
        self.n_true += o["true_count"]
        self.n_pred += o["pred_count"]
        self.matched_true += o["matched_true"]
        self.matched_pred += o["matched_pred"]

    def result(self) -> dict:
        pooled = metrics.scores_from_counts(*(int(c) for c in self.counts))
        return {
            "pixel_precision": pooled["precision"],
            "pixel_recall": pooled["recall"],
            "pixel_f1": pooled["f1"],
            "count_score": float(np.mean(self.count_scores)),
            "object_recall": float(np.mean(self.object_recall)),
            "object_precision": float(np.mean(self.object_precision)),
            "object_recall_pooled": self.matched_true / self.n_true if self.n_true else float("nan"),
            "object_precision_pooled": self.matched_pred / self.n_pred if self.n_pred else float("nan"),
            "cosmics_true": self.n_true,
            "cosmics_predicted": self.n_pred,
            "frames": len(self.count_scores),
        }


def score(predict, frames, timing: np.ndarray, repeats: int = 3) -> dict:
    """Scores of ``predict(frame) -> bool mask`` on frames, and its seconds per 512x512 frame."""
    tally = Tally()
    for _, frame, mask in frames:
        tally.add(mask, np.asarray(predict(frame), bool))
    result = tally.result() if frames else {}
    predict(timing)  # warm-up (graph tracing, allocations)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(timing)
        seconds.append(time.perf_counter() - started)
    result["seconds_per_512"] = float(np.median(seconds))
    return result


def choose_threshold(probabilities, frames) -> tuple[float, float | None]:
    """The threshold with the best pooled pixel F1 on ``frames`` (segcore.metrics.ThresholdSearch, as the trainer does)."""
    search = metrics.ThresholdSearch()
    for _, frame, mask in frames:
        search.add(mask, probabilities(frame))
    threshold, f1 = search.best()
    return float(threshold), float(f1)


def score_probabilities(probabilities, test, validation, timing, threshold: float | None = None) -> dict:
    """Scores of a probability map on Test at ``threshold`` (None: chosen on Validation) and at 0.5."""
    source = "given"
    validation_f1 = None
    if threshold is None:
        threshold, validation_f1 = choose_threshold(probabilities, validation)
        source = "best pooled F1 on Validation"
    tally, tally_half = Tally(), Tally()
    for _, frame, mask in test:
        probs = probabilities(frame)
        tally.add(mask, probs > threshold)
        tally_half.add(mask, probs > 0.5)
    result = tally.result()
    half = tally_half.result()
    result.update(threshold=threshold, threshold_source=source, validation_f1=validation_f1,
                  pixel_f1_at_05=half["pixel_f1"], count_score_at_05=half["count_score"])
    result["seconds_per_512"] = score(lambda f: probabilities(f) > threshold, [], timing)["seconds_per_512"]
    return result


def set_threads(threads: int, name: str) -> None:
    """Limit the framework a contestant uses (torch for deepCR/Cosmic-CoNN, TensorFlow for ours) to ``threads``."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if name in ("deepcr", "cosmic-conn"):
        import torch

        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)
    if name == "ours":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if name == "lacosmic":
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=threads)


class Clock:
    """Training time: wall clock since start, minus the time spent writing snapshots."""

    def __init__(self, minutes: float, snapshot_minutes: float):
        self.budget = 60.0 * minutes
        self.every = 60.0 * snapshot_minutes
        self.started = time.perf_counter()
        self.paused = 0.0
        self.next_snapshot = self.every

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.paused

    def over(self) -> bool:
        return self.elapsed() >= self.budget

    def snapshot_due(self) -> bool:
        return self.elapsed() >= min(self.next_snapshot, self.budget)

    def take_snapshot(self) -> float:
        """The training time a due snapshot stands for (the budget once over it); schedules the next one."""
        elapsed = self.elapsed()
        label = self.budget if elapsed >= self.budget else self.next_snapshot
        while self.next_snapshot <= elapsed:
            self.next_snapshot += self.every
        return min(label, self.budget)

    @contextlib.contextmanager
    def pause(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - started


def save_torch_snapshot(clock, snaps: Path, network, info: dict, epoch: int, name: str) -> None:
    """Save a torch contestant's weights when a snapshot is due, the clock paused while writing."""
    import torch

    if not clock.snapshot_due():
        return
    elapsed = clock.elapsed()
    label = clock.take_snapshot()
    with clock.pause():
        path = snaps / snapshot_name(label, ".pth")
        torch.save(network.state_dict(), path)
    info["snapshots"].append({"path": str(path), "train_seconds": elapsed, "steps": info["steps"], "epoch": epoch})
    print(f"[{name}] snapshot {path.name} after {info['steps']} steps", flush=True)


def snapshot_name(seconds: float, suffix: str) -> str:
    return f"snap_{seconds / 60:07.2f}min{suffix}"


def snapshot_minutes(path: Path) -> float:
    return float(path.name.split("_", 1)[1].split("min", 1)[0])


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)


# --------------------------------------------------------------------------- #
# Ours
# --------------------------------------------------------------------------- #


def train_ours(args, run: Path) -> dict:
    from segcore.listeners import CancelToken, TrainingListener
    from segcore.model import save_model
    from segcore.trainer import TrainConfig, train

    snaps = run / "snapshots"
    if snaps.exists():
        shutil.rmtree(snaps)
    snaps.mkdir(parents=True)
    cancel = CancelToken()
    clock_box = {}
    info = {"steps": 0, "epochs_started": 0, "snapshot_write_seconds": 0.0, "snapshots": []}

    class Snapshots(TrainingListener):
        def on_train_begin(self, start):
            info["precision"] = start.precision
            info["steps_per_epoch"] = start.steps_per_epoch
            info["config"] = start.config
            info["backbone_weights"] = start.backbone_weights
            info["setup_seconds"] = clock_box["clock"].elapsed()

        def on_epoch_begin(self, epoch):
            info["epochs_started"] = epoch + 1

        def on_epoch_end(self, epoch, logs):
            info.setdefault("history", []).append({"epoch": epoch, "minutes": clock_box["clock"].elapsed() / 60, **logs})
            print(f"[ours] epoch {epoch + 1} ended at {clock_box['clock'].elapsed() / 60:.2f} min: "
                  + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()), flush=True)

        def on_batch_end(self, epoch, step, steps, logs):
            info["steps"] += 1
            clock = clock_box["clock"]
            if cancel.cancelled or not clock.snapshot_due():
                return
            elapsed = clock.elapsed()
            label = clock.take_snapshot()
            with clock.pause():
                started = time.perf_counter()
                model = self.model  # set by the trainer before training begins
                path = snaps / snapshot_name(label, ".keras")
                save_model(model, path)
                info["snapshot_write_seconds"] += time.perf_counter() - started
            info["snapshots"].append({"path": str(path), "train_seconds": elapsed, "steps": info["steps"]})
            print(f"[ours] snapshot {path.name} after {info['steps']} steps", flush=True)
            if clock.over():
                cancel.cancel()

    overrides = {"crop_size": args.crop, "batch_size": args.batch, "learning_rate": args.lr, "loss": args.loss,
                 "cosmic_crop_fraction": args.cosmic_crop_fraction, "mixed_precision": args.precision,
                 "backbone_weights": args.backbone_weights, "steps_per_epoch": args.steps_per_epoch,
                 "epochs": args.epochs, "seed": args.seed, "separable": args.separable or None,
                 "validation_steps": args.validation_steps}
    config = TrainConfig(data_dir=str(args.data), out=str(run / "model.keras"), time_limit_minutes=None,
                         **{k: v for k, v in overrides.items() if v is not None})
    clock = clock_box["clock"] = Clock(args.minutes, args.snapshot_minutes)
    end = train(config, listeners=[Snapshots()], cancel=cancel)
    info["train_seconds"] = clock.elapsed()
    info["stop"] = "budget" if cancel.cancelled else f"trainer stopped first ({end.stop_reason}, {end.status})"
    final = end.model_path or end.last_checkpoint
    if not cancel.cancelled and final and Path(final).exists():
        # stopped before the budget (early stopping, epoch cap): its output model is the last snapshot
        path = snaps / snapshot_name(min(info["train_seconds"], clock.budget), ".keras")
        shutil.copyfile(final, path)
        info["snapshots"].append({"path": str(path), "train_seconds": info["train_seconds"], "steps": info["steps"],
                                  "copied_from": final})
    info["epochs_run"] = end.epochs_run
    info["end_precision"] = end.precision
    if end.error:
        info["error"] = end.error
    return info


def score_ours(args, run: Path, test, validation, timing) -> list[dict]:
    from segcore.inference import load_inference_model, predict_probabilities
    from segcore.inference_graph import model_precision

    try:
        from segcore.model import model_card
    except ImportError:  # older segcore
        model_card = None
    rows = []
    for path in sorted((run / "snapshots").glob("snap_*.keras")):
        model = load_inference_model(path)
        recorded = model_card(model).get("threshold") if model_card else None
        if recorded is None and args.fixed_threshold is not None:
            recorded = args.fixed_threshold
        print(f"[ours] scoring {path.name} ...", flush=True)
        result = score_probabilities(lambda f: predict_probabilities(model, f), test, validation, timing, recorded)
        if recorded is not None and model_card and model_card(model).get("threshold") is not None:
            result["threshold_source"] = "model card"
        result.update(snapshot=path.name, minutes=snapshot_minutes(path), inference_precision=model_precision(model))
        rows.append(result)
        print(f"  F1 {result['pixel_f1']:.4f} at threshold {result['threshold']} ({result['threshold_source']}); "
              f"F1 {result['pixel_f1_at_05']:.4f} at 0.5", flush=True)
    return rows


# --------------------------------------------------------------------------- #
# deepCR
# --------------------------------------------------------------------------- #


def standardise(frame: np.ndarray) -> np.ndarray:
    frame = frame.astype(np.float32)
    return (frame - frame.mean()) / max(float(frame.std()), 1e-6)


def stamps(frames, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised frames cut into size x size stamps (frames smaller than size are reflected up)."""
    images, masks = [], []
    for _, frame, mask in frames:
        image = standardise(frame)
        h, w = image.shape
        ph, pw = (-h) % size, (-w) % size
        if ph or pw:
            image = np.pad(image, ((0, ph), (0, pw)), mode="symmetric")
            mask = np.pad(mask, ((0, ph), (0, pw)), mode="symmetric")
        for y in range(0, image.shape[0], size):
            for x in range(0, image.shape[1], size):
                images.append(image[y : y + size, x : x + size])
                masks.append(mask[y : y + size, x : x + size])
    return np.stack(images).astype(np.float32), np.stack(masks).astype(np.float32)


def train_deepcr(args, run: Path, train_frames, validation_frames) -> dict:
    import torch
    from torch.optim.lr_scheduler import ReduceLROnPlateau
    from torch.utils.data import DataLoader

    from deepCR.dataset import dataset
    from deepCR.training import train

    seed = 0 if args.seed is None else args.seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    snaps = run / "snapshots"
    if snaps.exists():
        shutil.rmtree(snaps)
    snaps.mkdir(parents=True)
    work = run / "work"
    work.mkdir(parents=True, exist_ok=True)
    images, masks = stamps(train_frames, args.deepcr_stamp)
    val_images, val_masks = stamps(validation_frames, args.deepcr_stamp)
    clock = Clock(args.minutes, args.snapshot_minutes)
    # auto_lr_decay=False: deepCR 0.3.1 passes verbose=True to ReduceLROnPlateau, which torch 2.13
    # no longer accepts; the same scheduler is set up below without it.
    trainer = train(images, mask=masks, ignore=np.zeros_like(images), epoch=10**6, batch_size=args.deepcr_batch,
                    lr=args.deepcr_lr, hidden=32, auto_lr_decay=False, verbose=False, directory=str(work) + "/",
                    plot_every=10**9, name="deepcr")
    trainer.lr_scheduler = ReduceLROnPlateau(trainer.optimizer, factor=0.1, patience=4, cooldown=2, threshold=0.005)
    # All stamps train (no 10 % held out); deepCR's validation runs on our Validation split.
    # No worker processes: they would take the cores the race shares.
    trainer.TrainLoader = DataLoader(dataset(images, masks, np.zeros_like(images), part=None),
                                     batch_size=args.deepcr_batch, shuffle=True, num_workers=0)
    trainer.ValLoader = DataLoader(dataset(val_images, val_masks, np.zeros_like(val_images), part=None),
                                   batch_size=args.deepcr_batch, shuffle=False, num_workers=0)
    info = {"stamps": int(len(images)), "stamp": args.deepcr_stamp, "batch": args.deepcr_batch, "lr": args.deepcr_lr,
            "validation_stamps": int(len(val_images)), "steps": 0, "epochs": 0, "snapshots": [],
            "phase1_from_epoch": None, "validation_loss": [], "setup_seconds": clock.elapsed()}
    phase = 0
    trainer.network.train()
    while not clock.over():
        for dat in trainer.TrainLoader:
            trainer.optimize_network(dat)
            info["steps"] += 1
            save_torch_snapshot(clock, snaps, trainer.network, info, trainer.epoch_mask, "deepcr")
            if clock.over():
                break
        else:
            # a whole epoch: what train_phase0/1 do after each epoch
            trainer.epoch_mask += 1
            loss = trainer.validate_mask(trainer.epoch_mask)
            trainer.validation_loss.append(loss)
            trainer.lr_scheduler.step(loss)
            if phase == 1:
                trainer.network.eval()  # validate_mask leaves it as it is; phase 1 trains in eval mode
            info["epochs"] = trainer.epoch_mask
            info["validation_loss"].append(loss)
            print(f"[deepcr] epoch {trainer.epoch_mask} at {clock.elapsed() / 60:.2f} min, "
                  f"validation loss {loss:.5f}", flush=True)
            if phase == 0 and clock.elapsed() >= args.deepcr_phase0 * clock.budget:
                # what train() does between the phases
                filename = trainer.save()
                trainer.load(filename)
                trainer.optimizer = torch.optim.Adam(trainer.network.parameters(), lr=trainer.lr / 2.5)
                trainer.set_to_eval()
                trainer.lr_scheduler._reset()
                phase = 1
                info["phase1_from_epoch"] = trainer.epoch_mask
                print(f"[deepcr] phase 1 (frozen batch-norm statistics, lr {trainer.lr / 2.5:g})", flush=True)
    info["train_seconds"] = clock.elapsed()
    if not info["snapshots"] or info["snapshots"][-1]["path"] != str(snaps / snapshot_name(clock.budget, ".pth")):
        # the budget ran out during deepCR's validation at an epoch's end
        path = snaps / snapshot_name(clock.budget, ".pth")
        torch.save(trainer.network.state_dict(), path)
        info["snapshots"].append({"path": str(path), "train_seconds": info["train_seconds"], "steps": info["steps"],
                                  "epoch": trainer.epoch_mask})
    info["stop"] = "budget"
    return info


def score_deepcr(args, run: Path, test, validation, timing) -> list[dict]:
    from deepCR import deepCR

    rows = []
    for path in sorted((run / "snapshots").glob("snap_*.pth")):
        net = deepCR(mask=str(path), hidden=32, device="CPU")
        net.norm = True  # standardise each frame as the training stamps were

        def probabilities(frame):
            return np.asarray(net.clean(frame, binary=False, inpaint=False, segment=True, patch=args.deepcr_stamp))

        print(f"[deepcr] scoring {path.name} ...", flush=True)
        result = score_probabilities(probabilities, test, validation, timing, args.fixed_threshold)
        result.update(snapshot=path.name, minutes=snapshot_minutes(path))
        rows.append(result)
        print(f"  F1 {result['pixel_f1']:.4f} at threshold {result['threshold']}; "
              f"F1 {result['pixel_f1_at_05']:.4f} at 0.5", flush=True)
    return rows


# --------------------------------------------------------------------------- #
# Cosmic-CoNN
# --------------------------------------------------------------------------- #


class _HSTLayout:
    """Our stamps as Cosmic-CoNN's HST_dataset gives them: (raw, crmask, badmask, clean, filenames), mini-batch 1."""

    def __init__(self, images, masks):
        self.images, self.masks = images, masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        rotation, flip = np.random.randint(0, 4), np.random.randint(0, 3)  # HST_dataset's augmentation
        image, mask = np.rot90(self.images[i], rotation), np.rot90(self.masks[i], rotation)
        if flip < 2:
            image, mask = (np.flipud(image), np.flipud(mask)) if flip == 0 else (np.fliplr(image), np.fliplr(mask))
        image = np.ascontiguousarray(image)[None].astype(np.float32)
        mask = np.ascontiguousarray(mask)[None].astype(np.float32)
        # the 'clean' frame is only read by the median-weighted loss, which is not used here
        return image, mask, np.zeros_like(mask), image.copy(), [f"hst_{i}"]


def train_cosmic_conn(args, run: Path, train_frames) -> dict:
    import logging

    import torch
    from torch.utils.data import DataLoader

    from cosmic_conn.dl_framework.cosmic_conn import Cosmic_CoNN
    from cosmic_conn.dl_framework.options import ModelOptions

    logging.getLogger().setLevel(logging.WARNING)
    seed = 0 if args.seed is None else args.seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    snaps = run / "snapshots"
    if snaps.exists():
        shutil.rmtree(snaps)
    snaps.mkdir(parents=True)
    images, masks = stamps(train_frames, args.deepcr_stamp)
    clock = Clock(args.minutes, args.snapshot_minutes)
    opt = ModelOptions()
    for key, value in dict(mode="train", model="hst", loss=args.cosmic_conn_loss, batch=args.deepcr_batch,
                           expr_dir=str(run / "work"), continue_train="", load_model="").items():
        setattr(opt, key, value)
    model = Cosmic_CoNN()
    model.initialize(opt)
    loader = DataLoader(_HSTLayout(images, masks), batch_size=opt.batch, shuffle=True, drop_last=True, num_workers=0)
    if len(loader) == 0:  # drop_last: otherwise every epoch is empty and the clock runs out untrained
        raise SystemExit(f"cosmic-conn: {len(images)} stamps make no full batch of {opt.batch}; lower --deepcr-batch")
    info = {"stamps": int(len(images)), "stamp": args.deepcr_stamp, "batch": opt.batch, "lr": opt.lr,
            "loss": opt.loss, "norm": opt.norm, "steps": 0, "epochs": 0, "snapshots": [],
            "setup_seconds": clock.elapsed()}
    epoch = 0
    while not clock.over():
        epoch += 1  # their loop counts epochs from 1 for training
        for data in loader:
            model.update_model(data, epoch)
            info["steps"] += 1
            save_torch_snapshot(clock, snaps, model.network, info, epoch, "cosmic-conn")
            if clock.over():
                break
        else:
            model.update_learning_rate(epoch)
            info["epochs"] = epoch
            print(f"[cosmic-conn] epoch {epoch} at {clock.elapsed() / 60:.2f} min", flush=True)
    info["train_seconds"] = clock.elapsed()
    info["stop"] = "budget"
    return info


def score_cosmic_conn(args, run: Path, test, validation, timing) -> list[dict]:
    import logging

    from cosmic_conn import init_model

    rows = []
    for path in sorted((run / "snapshots").glob("snap_*.pth")):
        net = init_model(str(path))
        logging.getLogger().setLevel(logging.WARNING)

        def probabilities(frame):
            # standardised as the training stamps were; detect_cr subtracts each stamp's median itself
            return np.asarray(net.detect_cr(standardise(frame), ret_numpy=True))

        print(f"[cosmic-conn] scoring {path.name} ...", flush=True)
        result = score_probabilities(probabilities, test, validation, timing, args.fixed_threshold)
        result.update(snapshot=path.name, minutes=snapshot_minutes(path))
        rows.append(result)
        print(f"  F1 {result['pixel_f1']:.4f} at threshold {result['threshold']}; "
              f"F1 {result['pixel_f1_at_05']:.4f} at 0.5", flush=True)
    return rows


# --------------------------------------------------------------------------- #
# LA Cosmic
# --------------------------------------------------------------------------- #


def lacosmic_predict(frame, params):
    from segcore.classical import LACosmicParams, lacosmic_mask

    return lacosmic_mask(frame, LACosmicParams(**params))


def run_lacosmic(args, validation_frames, frames, timing) -> dict:
    grid = [dict(sigclip=s, objlim=o, sigfrac=f) for s in args.sigclips for o in args.objlims for f in args.sigfracs]
    tallies = [Tally() for _ in grid]
    started = time.perf_counter()
    for i, (_, frame, mask) in enumerate(validation_frames):
        for params, tally in zip(grid, tallies):
            tally.add(mask, lacosmic_predict(frame, params))
        print(f"[lacosmic] tuning: {i + 1}/{len(validation_frames)} validation frames", flush=True)
    ranked = sorted(((p, t.result()["pixel_f1"]) for p, t in zip(grid, tallies)), key=lambda item: -item[1])
    best = ranked[0][0]
    tune_seconds = time.perf_counter() - started
    print(f"[lacosmic] best on Validation: {best} (F1 {ranked[0][1]:.4f}); scoring Test ...", flush=True)
    result = score(lambda f: lacosmic_predict(f, best), frames, timing)
    result.update(params=best, minutes=0.0, snapshot="tuned")
    return {"grid_size": len(grid), "tuning_seconds": tune_seconds, "validation_ranking": ranked[:10],
            "rows": [result]}


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def fmt(value, digits=4):
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def markdown(out: Path) -> list[str]:
    results = {}
    for name in CONTESTANTS:
        path = out / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    lines = [f"## Fair race: trained on the same frames ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", ""]
    for name, r in results.items():
        m = r.get("machine", {})
        lines.append(f"- {name}: {m.get('cpu')} ({', '.join(m.get('flags', [])) or 'no AVX-512/AMX'}), "
                     f"{m.get('threads')} thread(s), load {fmt(m.get('load_average'), 2)} at start; "
                     f"data `{r.get('data')}`; {r.get('note', '')}")
    lines.append("")
    curves = {n: {round(row["minutes"], 2): row["pixel_f1"] for row in results[n].get("rows", [])}
              for n in ("ours", "deepcr", "cosmic-conn") if n in results and results[n].get("rows")}
    minutes = sorted({m for c in curves.values() for m in c})
    if minutes:
        lines.append("Pooled pixel F1 on Test against training minutes (threshold of each snapshot chosen on "
                     "Validation unless its model records one):")
        lines.append("")
        lines += table(["minutes"] + list(curves), [[f"{m:g}"] + [fmt(curves[n].get(m)) for n in curves]
                                                     for m in minutes])
        lines.append("")
    rows = []
    for name, r in results.items():
        if not r.get("rows"):
            rows.append([name, r.get("verdict", "not run")] + [""] * 9)
            continue
        last = max(r["rows"], key=lambda row: row["minutes"])
        taken = f" ({last['train_seconds'] / 60:.1f} actual)" if "train_seconds" in last else ""
        rows.append([name, f"{last['minutes']:g}{taken}" if name in ("ours", "deepcr", "cosmic-conn") else "tuned",
                     fmt(last["pixel_precision"]), fmt(last["pixel_recall"]), fmt(last["pixel_f1"]),
                     fmt(last["count_score"]), f"{fmt(last['object_recall'], 3)} / {fmt(last['object_precision'], 3)}",
                     f"{last['cosmics_predicted']} / {last['cosmics_true']}", fmt(last["seconds_per_512"], 3),
                     fmt(last.get("threshold"), 2), fmt(last.get("pixel_f1_at_05"))])
    lines.append("Final row per contestant (Test split):")
    lines.append("")
    lines += table(["contestant", "train min", "pixel precision", "pixel recall", "pixel F1", "count score",
                    "object recall / precision", "cosmics predicted / true", "s per 512x512", "threshold",
                    "pixel F1 at 0.5"], rows)
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="dataset folder (Train/ Validation/ Test/ with annotations)")
    parser.add_argument("--only", choices=CONTESTANTS, action="append",
                        help="run this contestant only (repeatable; default: all, one after the other)")
    parser.add_argument("--minutes", type=float, default=45.0, help="training budget (wall clock)")
    parser.add_argument("--snapshot-minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--score-only", type=Path, metavar="DIR",
                        help="no training: (re)score the snapshots saved under DIR/<contestant>/snapshots")
    parser.add_argument("--table", action="store_true", help="only print the markdown table of --out")
    parser.add_argument("--max-test", type=int, help="score on the first N test frames only (quick looks)")
    parser.add_argument("--seed", type=int)
    # ours: None = TrainConfig's default
    parser.add_argument("--crop", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--loss")
    parser.add_argument("--cosmic-crop-fraction", type=float)
    parser.add_argument("--precision")
    parser.add_argument("--backbone-weights", help="TrainConfig default if unset (ImageNet cannot be downloaded "
                        "here: the trainer then falls back as it does)")
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument("--separable", action="store_true", help="ours: separable convolutions in the pyramid and decoder")
    parser.add_argument("--validation-steps", type=int, help="ours: validation batches per epoch (default: all tiles)")
    parser.add_argument("--epochs", type=int, default=10000,
                        help="ours: epoch cap, large so that the clock ends the run")
    # deepCR
    parser.add_argument("--deepcr-stamp", type=int, default=256)
    parser.add_argument("--deepcr-batch", type=int, default=16)
    parser.add_argument("--deepcr-lr", type=float, default=0.005)
    parser.add_argument("--deepcr-phase0", type=float, default=0.4, help="share of the budget in phase 0")
    parser.add_argument("--fixed-threshold", type=float,
                        help="threshold for every network snapshot (default: ours uses its card's threshold if it "
                             "records one; otherwise each snapshot gets the best pooled-F1 threshold on Validation)")
    parser.add_argument("--cosmic-conn-loss", default="bce", choices=["bce", "dice", "mse"],
                        help="Cosmic-CoNN's loss (its median-weighted BCE needs clean frames we do not have)")
    # LA Cosmic
    parser.add_argument("--sigclips", type=float, nargs="+", default=list(LACOSMIC_GRID["sigclip"]))
    parser.add_argument("--objlims", type=float, nargs="+", default=list(LACOSMIC_GRID["objlim"]))
    parser.add_argument("--sigfracs", type=float, nargs="+", default=list(LACOSMIC_GRID["sigfrac"]))
    args = parser.parse_args()

    out = args.score_only or args.out
    if args.table:
        report = "\n".join(markdown(out))
        (out / "race.md").write_text(report + "\n")
        print(report)
        return 0
    which = args.only or list(CONTESTANTS)
    test = load_split(args.data, "Test")[: args.max_test]
    validation = load_split(args.data, "Validation")
    timing = timing_frame(test)
    for name in which:
        set_threads(args.threads, name)
        run = out / name
        result_path = out / f"{name}.json"
        previous = json.loads(result_path.read_text()) if result_path.exists() else {}
        result = {"contestant": name, "data": str(args.data), "machine": machine(args.threads),
                  "command": common.command_line("race.py"), "minutes": args.minutes,
                  "snapshot_minutes": args.snapshot_minutes}
        if name == "lacosmic":
            result.update(run_lacosmic(args, validation, test, timing))
            best = result["rows"][0]["params"]
            result["note"] = (f"segcore.classical (astroscrappy; offset, read noise and gain measured on each "
                              f"frame), {result['grid_size']} parameter sets tried, best pooled F1 on Validation: " + ", ".join(f"{k} {v:g}" for k, v in best.items()))
            write_json(result_path, result)
            continue
        if args.score_only:
            result["training"] = previous.get("training", {})
        elif name == "ours":
            result["training"] = train_ours(args, run)
        elif name == "deepcr":
            result["training"] = train_deepcr(args, run, load_split(args.data, "Train"), validation)
        else:
            result["training"] = train_cosmic_conn(args, run, load_split(args.data, "Train"))
            result["how"] = COSMIC_CONN
        write_json(result_path, result)
        scorer = {"ours": score_ours, "deepcr": score_deepcr, "cosmic-conn": score_cosmic_conn}[name]
        result["rows"] = scorer(args, run, test, validation, timing)
        for row in result["rows"]:  # the training time the snapshot was actually taken at
            taken = [x for x in result["training"].get("snapshots", []) if Path(x["path"]).name == row["snapshot"]]
            if taken:
                row.update(train_seconds=taken[0]["train_seconds"], steps=taken[0]["steps"])
        t = result["training"]
        result["note"] = (f"{t.get('steps')} training steps in {fmt(t.get('train_seconds', float('nan')) / 60, 1)} min"
                          + (f", {t.get('epochs_run')} epochs done, precision {t.get('precision')}" if name == "ours"
                             else f", {t.get('epochs')} epochs of {t.get('stamps')} stamps"))
        write_json(result_path, result)
    report = "\n".join(markdown(out))
    (out / "race.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
