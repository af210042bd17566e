"""Eiger-16M-sized frames from a compressed HDF5 stack: seconds and peak memory to import, predict and train.

    python bench/eiger_stack.py --model /work/race3/long45/model.keras --frames 3 --threads 1 --train-steps 2

Writes a NeXus stack of ``--frames`` uint32 frames of 4371 x 4150 pixels (an Eiger 16M) with
module gaps and dead pixels at 2^32-1, compressed with bitshuffle/LZ4 through hdf5plugin as
the detector writes it, with a few cosmic tracks on a sparse photon-counting background. Then,
each in a process of its own (its peak resident memory is its own ``ru_maxrss``):

* import: ``db.import_files`` of the stack into a fresh store (every frame decoded and checked);
* read: one frame through ``segcore.io.read_frame_and_invalid`` (only that frame is read);
* predict: ``python -m segcore predict --model M stack.h5::/entry/data/data#1`` (tiles of 2048 px);
* train (``--train-steps``): ``python -m segcore train`` on a folder holding the stack and a mask
  stack, tiny backbone, 256 px crops.

TensorFlow runs with ``--threads`` intra-op threads (the machine is shared). Appends a section
to bench/RESULTS.md unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    append_results,
    load_average,
    load_line,
    section_header,
    table,
    versions_line,
)

HEIGHT, WIDTH = 4371, 4150  # Eiger 16M
INVALID = 2**32 - 1


def write_stack(path: Path, frames: int, seed: int = 0, masks: Path | None = None) -> float:
    """The NeXus stack (and optionally its mask stack); seconds to write."""
    import h5py
    import hdf5plugin
    import numpy as np

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = h5.create_group("entry")
        entry.attrs.update({"NX_class": "NXentry", "default": "data"})
        data = entry.create_group("data")
        data.attrs.update({"NX_class": "NXdata", "signal": "data"})
        dataset = data.create_dataset("data", shape=(frames, HEIGHT, WIDTH), dtype=np.uint32,
                                      chunks=(1, HEIGHT, WIDTH), **hdf5plugin.Bitshuffle(cname="lz4"))
        mask_file = h5py.File(masks, "w") if masks else None
        mask_set = None
        if mask_file is not None:
            mask_set = mask_file.create_dataset("entry/data/data", shape=(frames, HEIGHT, WIDTH), dtype=np.uint8,
                                                chunks=(1, HEIGHT, WIDTH), compression="gzip")
        for i in range(frames):
            frame = rng.poisson(0.3, (HEIGHT, WIDTH)).astype(np.uint32)
            cosmic = np.zeros((HEIGHT, WIDTH), bool)
            for _ in range(40):  # tracks of 5-60 px, a few hundred counts per pixel
                y, x = rng.integers(100, HEIGHT - 100), rng.integers(100, WIDTH - 100)
                length, angle = rng.integers(5, 60), rng.uniform(0, np.pi)
                ys = (y + np.arange(length) * np.sin(angle)).astype(int)
                xs = (x + np.arange(length) * np.cos(angle)).astype(int)
                frame[ys, xs] += rng.integers(100, 600, length).astype(np.uint32)
                cosmic[ys, xs] = True
            for x0 in range(1030, WIDTH, 1040):  # vertical module gaps
                frame[:, x0:x0 + 10] = INVALID
            for y0 in range(514, HEIGHT, 551):  # horizontal module gaps
                frame[y0:y0 + 37, :] = INVALID
            dead = rng.integers(0, HEIGHT * WIDTH, 2000)
            frame.flat[dead] = INVALID
            cosmic &= frame != INVALID
            dataset[i] = frame
            if mask_set is not None:
                mask_set[i] = cosmic
        if mask_file is not None:
            mask_file.close()
    return time.perf_counter() - start


def child(stage: str, args) -> dict:
    """Run one stage in this process; its seconds and peak RSS."""
    import resource

    if stage in ("predict", "train"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    start = time.perf_counter()
    extra = {}
    if stage == "import":
        import db

        db.init_db()
        dataset = db.create_dataset("eiger")
        report = db.import_files(dataset.id, "real", frames=[args.stack])
        extra["frames"] = report.total_frames
    elif stage == "read":
        from segcore import io

        frame, invalid = io.read_frame_and_invalid(f"{args.stack}::/entry/data/data#1")
        extra["invalid_pixels"] = int(invalid.sum())
    elif stage == "predict":
        from segcore.__main__ import main

        code = main(["predict", "--model", args.model, f"{args.stack}::/entry/data/data#1", "--out", args.pred_out,
                     "--precision", "float32"])
        extra["exit"] = code
    elif stage == "train":
        from segcore.__main__ import main

        code = main(["train", "--data", args.train_data, "--out", args.train_out, "--backbone", "tiny",
                     "--backbone-weights", "none", "--crop-size", "256", "--batch-size", "2", "--epochs", "1",
                     "--steps-per-epoch", str(args.train_steps), "--validation-steps", "1", "--no-threshold-search",
                     "--mixed-precision", "float32"])
        extra["exit"] = code
    seconds = time.perf_counter() - start
    return {"stage": stage, "seconds": seconds, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            **extra}


def run_stage(stage: str, args, env: dict) -> dict:
    argv = [sys.executable, __file__, "--child", stage, "--stack", str(args.stack), "--model", str(args.model or ""),
            "--threads", str(args.threads), "--pred-out", str(args.pred_out), "--train-data", str(args.train_data),
            "--train-out", str(args.train_out), "--train-steps", str(args.train_steps)]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"stage {stage} failed")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained model (.keras) for predict; omitted: predict is skipped")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stack", help=argparse.SUPPRESS)
    parser.add_argument("--pred-out", help=argparse.SUPPRESS)
    parser.add_argument("--train-data", help=argparse.SUPPRESS)
    parser.add_argument("--train-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="eiger-bench-") as folder:
        folder = Path(folder)
        args.stack = folder / "series_master.h5"
        args.pred_out = folder / "pred"
        args.train_data = folder / "data"
        args.train_out = folder / "model.keras"
        write_s = write_stack(args.stack, args.frames)
        size = args.stack.stat().st_size
        env = {**os.environ, "COSMICS_HOME": str(folder / "home"), "OMP_NUM_THREADS": str(args.threads),
               "TF_NUM_INTRAOP_THREADS": str(args.threads)}
        results = [run_stage("read", args, env), run_stage("import", args, env)]
        if args.model:
            results.append(run_stage("predict", args, env))
        if args.train_steps:
            for split in ("Train", "Validation"):
                (args.train_data / split).mkdir(parents=True)
                (args.train_data / f"{split}Annotation").mkdir()
                write_stack(args.train_data / split / "run.h5", 2 if split == "Train" else 1, seed=1 if split == "Train" else 2,
                            masks=args.train_data / f"{split}Annotation" / "run_mask.h5")
            results.append(run_stage("train", args, env))
    load_after = load_average()
    if args.no_record:
        return
    labels = {
        "read": "read one frame (h5py slice, bitshuffle/LZ4, invalid pixels found and filled)",
        "import": f"import the {args.frames}-frame stack into a fresh store (every frame decoded and checked)",
        "predict": "predict one frame (`python -m segcore predict`, 2048 px tiles, float32)",
        "train": f"train {args.train_steps} steps, tiny backbone, 256 px crops of 2 frames (validation on 1)",
    }
    rows = [[labels[r["stage"]], f"{r['seconds']:.1f}", f"{r['process_seconds']:.1f}", f"{r['peak_rss_gib']:.2f}"]
            for r in results]
    lines = section_header("Eiger 16M frames from a compressed HDF5 stack: import, predict, train", "eiger_stack.py")
    lines += [
        versions_line("tensorflow", "h5py", "hdf5plugin", "fabio"),
        load_line(load_before, load_after),
        "",
        f"A NeXus stack of {args.frames} uint32 frames of {HEIGHT} x {WIDTH} pixels (module gaps and 2,000 dead pixels "
        f"at 2^32-1, sparse counts, 40 tracks per frame), bitshuffle/LZ4 through hdf5plugin: {size / 2**20:.0f} MiB, "
        f"written in {write_s:.1f} s. Each stage ran in a process of its own with {args.threads} TensorFlow thread(s); "
        "seconds inside the process (after imports), seconds of the whole process (with Python and TensorFlow start-up), "
        f"and the process's peak resident memory. Model for predict: `{args.model}`.",
        "",
        *table(["stage", "seconds", "process seconds", "peak memory (GiB)"], rows),
        "",
    ]
    append_results(lines)


if __name__ == "__main__":
    main()
