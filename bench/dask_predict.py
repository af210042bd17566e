"""Frames per second of predict and clean in one process and on a Dask LocalCluster, and seconds per training step
on one and two local workers (#13).

    python bench/dask_predict.py --frames 200 --size 512 --workers 2 [--model M.keras] [--skip-training]

Frames come from ``segcore synth``. Without ``--model`` a tiny-backbone network is trained for a few steps (a
ResNet50 model would take minutes per frame on two cores). Timing is steady-state: one process is timed in-process
(``python -m segcore predict``'s main on N frames minus the same on one frame: TensorFlow imported and the model
loaded once in both); the Dask path on a LocalCluster that was started and warmed first (every worker has loaded
the model), so start-up is reported apart. The Dask overhead per frame is its per-frame time on one worker minus the
one-process per-frame time. Training: ``tests/multiworker_support.py`` on 1 and 2 local worker processes at the
same global batch, the median batch time after the first two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if f in flags)
    return "?"


def frames_of(data: Path) -> list[str]:
    return sorted(str(p) for split in ("Train", "Validation", "Test") for p in (data / split).glob("*.png"))


def one_process(command: list[str], frames: list[str], out: Path) -> float:
    """Seconds per frame of the one-process command line (in this process)."""
    from segcore.__main__ import main

    def timed(files, folder):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        assert main([*command, *files, "--out", str(folder)]) == 0
        return time.perf_counter() - started

    timed(frames[:1], out / "warm")
    single = timed(frames[:1], out / "one1")
    whole = timed(frames, out / "oneN")
    return (whole - single) / (len(frames) - 1)


def on_cluster(job_kwargs: dict, frames: list[str], out: Path, workers: int) -> tuple[float, float]:
    """(seconds to start the LocalCluster and load the model on every worker, seconds per frame after that)."""
    import distributed

    from segcore import cluster

    started = time.perf_counter()
    with cluster.local_cluster(workers) as local, distributed.Client(local) as client:
        warm = cluster.FrameJob(out=str(out / f"warm{workers}"), **job_kwargs)
        shutil.rmtree(warm.out, ignore_errors=True)
        cluster.run_frames(client, warm, frames[: 2 * workers])
        start_up = time.perf_counter() - started
        job = cluster.FrameJob(out=str(out / f"dask{workers}"), **job_kwargs)
        shutil.rmtree(job.out, ignore_errors=True)
        began = time.perf_counter()
        result = cluster.run_frames(client, job, frames)
        seconds = time.perf_counter() - began
        assert len(result.rows) == len(frames) and not result.errors
    return start_up, seconds / len(frames)


def training(data: Path, out: Path, workers: int, batch: int, steps: int) -> float:
    """Median seconds per training step (after the first two) with ``workers`` local worker processes."""
    from segcore.multiworker import localhost_tf_configs

    config = dict(data_dir=str(data), out=str(out / f"train{workers}" / "m.keras"), backbone="tiny",
                  backbone_weights="none", crop_size=64, batch_size=batch, epochs=1, steps_per_epoch=steps,
                  validation_steps=1, dropout=0.0, mixed_precision="float32", choose_threshold=False)
    processes = []
    for index, tf_config in enumerate(localhost_tf_configs(workers)):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = tf_config
        prefix = out / f"train{workers}_{index}"
        processes.append((prefix, subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "multiworker_support.py"), json.dumps(config), str(prefix)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    for _, process in processes:
        assert process.wait() == 0
    seconds = json.loads(Path(f"{processes[0][0]}.json").read_text())["batch_seconds"]
    return statistics.median(seconds[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", help="a trained .keras (default: a tiny-backbone network trained a few steps)")
    parser.add_argument("--out", default="bench/out/dask_predict")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()

    from segcore.__main__ import main as segcore

    out = Path(args.out)
    data = out / "data"
    load_before = os.getloadavg()
    if len(frames_of(data)) != args.frames:
        shutil.rmtree(data, ignore_errors=True)
        segcore(["synth", str(data), "--n", str(args.frames), "--size", str(args.size)])
    frames = frames_of(data)
    model = args.model
    if model is None:
        model = str(out / "tiny.keras")
        if not Path(model).exists():
            segcore(["train", "--data", str(data), "--out", model, "--backbone", "tiny", "--backbone-weights", "none",
                     "--epochs", "1", "--steps-per-epoch", "5", "--crop-size", "64", "--batch-size", "4",
                     "--validation-steps", "2", "--no-threshold-search"])
    rows = []
    for name, command, job in (
        ("predict", ["predict", "--model", model], dict(model=str(Path(model).absolute()))),
        ("clean", ["clean", "--model", model], dict(model=str(Path(model).absolute()), clean=True)),
    ):
        per_frame = one_process(command, frames, out / name)
        start_one, per_frame_one = on_cluster(job, frames, out / name, 1)
        start_many, per_frame_many = on_cluster(job, frames, out / name, args.workers)
        rows.append((name, per_frame, per_frame_one, per_frame_many, start_one, start_many))
        print(name, rows[-1], flush=True)
    steps = {}
    if not args.skip_training:
        for workers in (1, 2):
            steps[workers] = training(data, out, workers, args.train_batch, args.train_steps)
            print("training", workers, steps[workers], flush=True)
    load_after = os.getloadavg()

    print(f"\nMachine: {os.cpu_count()} CPU cores ({cpu_model()}; {cpu_flags()}), Python {platform.python_version()}. "
          f"Load average (1, 5, 15 min) {', '.join(f'{v:.1f}' for v in load_before)} before, "
          f"{', '.join(f'{v:.1f}' for v in load_after)} after.")
    print(f"Frames: {len(frames)} simulated {args.size}x{args.size}; model {'tiny backbone, a few steps' if args.model is None else model}.\n")
    print(f"| command | one process (frames/s) | Dask, 1 worker (frames/s) | Dask, {args.workers} workers (frames/s) | "
          "Dask overhead per frame (ms) | start-up, 1 / N workers (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, one, dask_one, dask_many, start_one, start_many in rows:
        print(f"| {name} | {1 / one:.2f} | {1 / dask_one:.2f} | {1 / dask_many:.2f} | {1000 * (dask_one - one):.0f} | "
              f"{start_one:.0f} / {start_many:.0f} |")
    if steps:
        print(f"\nTraining (tiny backbone, crop 64, global batch {args.train_batch}): "
              f"{steps[1]:.3f} s/step on 1 worker, {steps[2]:.3f} s/step on 2 local workers.")


if __name__ == "__main__":
    main()
