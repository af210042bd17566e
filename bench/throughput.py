"""Inference throughput: frames per second with tiled full-resolution inference, where the time goes, what helps.

    python bench/throughput.py --model bench/out/quality/model.keras    # the recorded configuration
    python bench/throughput.py --model M.keras --sizes 512 --frames 2 1 --no-threads --no-record   # a quick look

1. Breakdown at segcore's defaults (``segcore.inference_graph.inference_model`` with the
   "auto" precision, largest tile 2048, overlap 64, tiles per batch by pixel
   budget) of one frame from its 16-bit PNG file to its cosmic count: reading, normalising,
   tile assembly, network, stitching, thresholding and counting; the network
   split by stage (ResNet50 stem+conv2, conv3, conv4, then ASPP + decoder).
2. Variants of the inference, each timed on the same frames: XLA
   (``jit_compile=True`` on the predict step), the mixed_bfloat16 policy (the
   model rebuilt under it, weights copied), folded batch norm, tile sizes and
   tiles per batch, the separable architecture (random weights: speed only),
   and thread settings (separate processes, as TensorFlow fixes them at start).
   Each variant's probabilities are compared with the default's.

Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import common
from common import append_results, fmt_s, load_average, load_line, section_header, table, versions_line, wait_for_quiet

SEED = 31337
STAGES = ("read PNG", "normalise", "tile assembly", "network", "stitching", "threshold + count")
NETWORK_CUTS = (
    ("stem + conv2 (stride 4)", "conv2_block3_out"),
    ("conv3 (stride 8)", "conv3_block4_out"),
    ("conv4 to the ASPP input (stride 16)", "conv4_block6_2_relu"),
)


def simulate(size: int, count: int):
    from segcore.synth import simulate_frame

    return [simulate_frame(np.random.default_rng([SEED, size, i]), size) for i in range(count)]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


# --------------------------------------------------------------------------- #
# 1. Breakdown
# --------------------------------------------------------------------------- #


def breakdown(model, sims, paths, repeats):
    """Seconds per stage for the frames of one size (mean over frames of the median over repeats)."""
    from segcore import metrics
    from segcore.inference import predict_probabilities
    from segcore.io import read_frame
    from variants import StepCache, default_layout, tiled_probabilities, warm_up

    steps = StepCache(model)
    stage = defaultdict(list)
    for sim, path in zip(sims, paths):
        frame = read_frame(path)
        layout = default_layout(frame.shape)
        warm_up(frame, steps, **layout)
        stage["read PNG"].append(median_time(lambda: read_frame(path), repeats))
        runs = []
        for _ in range(repeats):
            t = defaultdict(float)
            probs = tiled_probabilities(frame, steps, timings=t, **layout)
            runs.append(t)
        for key in ("normalise", "tile assembly", "network", "stitching"):
            stage[key].append(float(np.median([r[key] for r in runs])))
        stage["threshold + count"].append(median_time(lambda: metrics.n_cosmics(probs > 0.5), repeats))
        stage["find_cosmics (with area, bbox, centroid)"].append(
            median_time(lambda: metrics.find_cosmics(probs > 0.5), repeats))
        reference = predict_probabilities(model, frame)
        assert np.allclose(reference, probs, atol=1e-5), "step-by-step inference differs from segcore's"
        stage["segcore predict_probabilities"].append(median_time(lambda: predict_probabilities(model, frame), repeats))
        stage["tiles"].append(runs[0]["tiles"])
    return {k: float(np.mean(v)) for k, v in stage.items()}


def network_split(model, tile: int, repeats: int):
    """Cumulative seconds of the network cut after each ResNet50 stage, on one batch of 1 tile."""
    import keras
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(-1, 1, (1, tile, tile, 3)).astype(np.float32)
    cumulative = []
    for label, layer in NETWORK_CUTS:
        part = keras.Model(model.input, model.get_layer(layer).output)
        fn = tf.function(lambda z, part=part: part(z, training=False))
        fn(x)
        fn(x)
        cumulative.append((label, median_time(lambda: fn(x).numpy(), repeats)))
    full = tf.function(lambda z: model(z, training=False))
    full(x)
    full(x)
    cumulative.append(("ASPP + decoder + upsampling", median_time(lambda: full(x).numpy(), repeats)))
    parts, before = [], 0.0
    for label, seconds in cumulative:
        parts.append((label, max(seconds - before, 0.0)))
        before = seconds
    return parts, before


# --------------------------------------------------------------------------- #
# 2. Variants
# --------------------------------------------------------------------------- #


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux), GiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def run_variant(steps, sims, tile, overlap, batch, repeats):
    """Mean seconds per frame (median over repeats) and the probabilities of each frame."""
    from variants import default_layout, tiled_probabilities, warm_up

    seconds, probs = [], []
    for sim in sims:
        frame = sim.frame.astype(np.float32)
        if batch is None:  # segcore's choice for the default tiles
            batch = default_layout(frame.shape)["batch_size"]
        warm_up(frame, steps, tile, overlap, batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            p = tiled_probabilities(frame, steps, tile, overlap, batch)
            times.append(time.perf_counter() - started)
        seconds.append(float(np.median(times)))
        probs.append(p)
    return float(np.mean(seconds)), probs


def agreement(probs, reference, sims, threshold=0.5):
    from segcore import metrics

    diff = max(float(np.abs(p - r).max()) for p, r in zip(probs, reference))
    changed = sum(int(np.count_nonzero((p > threshold) != (r > threshold))) for p, r in zip(probs, reference))
    f1 = metrics.pooled_scores((s.mask, p > threshold) for s, p in zip(sims, probs))["f1"]
    return diff, changed, f1


def variant_specs(model, sizes):
    """(name, factory of the step cache, tile, overlap, batch, sizes it runs at, note)."""
    from variants import StepCache, logits_before_upsampling, rebuild

    cache = {}

    def bf16():
        if "bf16" not in cache:
            cache["bf16"] = rebuild(model, "mixed_bfloat16")
        return cache["bf16"]

    def separable():
        if "sep" not in cache:
            cache["sep"] = rebuild(None, "float32", separable=True, decoder_kernel=3)
        return cache["sep"]

    large = [s for s in sizes if s > 512]
    small = [s for s in sizes if s <= 512]
    xla_note = "XLA only at 512: at 2048 it ran 2.3-3x slower than the default and took up to 16 GiB in an earlier run"
    from segcore.inference_graph import fold_batch_norms, inference_model, model_precision
    from segcore.tiles import DEFAULT_OVERLAP, DEFAULT_TILE

    prepared = inference_model(model)
    return [
        (f"segcore's defaults now: inference_model ({model_precision(prepared)}, logits before upsampling, "
         "batch norms folded), "
         f"largest tile {DEFAULT_TILE}", lambda: StepCache(prepared), DEFAULT_TILE, DEFAULT_OVERLAP, None, sizes,
         "tiles per batch by pixel budget"),
        ("float32, XLA (jit_compile=True)", lambda: StepCache(model, jit=True), 512, 64, 4, small, xla_note),
        ("mixed_bfloat16 policy", lambda: StepCache(bf16()), 512, 64, 4, sizes, "model rebuilt under the policy, weights copied"),
        ("mixed_bfloat16 + XLA", lambda: StepCache(bf16(), jit=True), 512, 64, 4, small, xla_note),
        ("folded batch norm", lambda: StepCache(fold_batch_norms(model)), 512, 64, 4, sizes, "BN folded into the convolutions"),
        ("logits before the last upsampling", lambda: StepCache(logits_before_upsampling(model)), 512, 64, 4, sizes,
         "same weights, same output: 1x1 logits conv at stride 4, then upsample 2 channels instead of 256"),
        ("mixed_bfloat16 + logits first", lambda: StepCache(logits_before_upsampling(bf16())), 512, 64, 4, sizes, "combination"),
        ("mixed_bfloat16 + logits first + folded BN", lambda: StepCache(logits_before_upsampling(fold_batch_norms(bf16()))),
         512, 64, 4, sizes, "combination"),
        ("1 tile per batch", lambda: StepCache(model), 512, 64, 1, large, ""),
        ("2 tiles per batch", lambda: StepCache(model), 512, 64, 2, large, ""),
        ("8 tiles per batch", lambda: StepCache(model), 512, 64, 8, large, ""),
        ("tile 256", lambda: StepCache(model), 256, 64, 4, sizes, ""),
        ("tile 576 (4x4 tiles at 2048)", lambda: StepCache(model), 576, 64, 4, large, ""),
        ("tile 1024", lambda: StepCache(model), 1024, 64, 4, large, ""),
        ("tile 1088 (2x2 tiles at 2048)", lambda: StepCache(model), 1088, 64, 1, large, ""),
        ("whole frame as one tile", lambda: StepCache(model), 16384, 64, 1, large, "tile clipped to the frame"),
        ("separable=True architecture", lambda: StepCache(separable()), 512, 64, 4, sizes,
         "random weights: speed only, accuracy not measured here"),
        ("separable=True + XLA", lambda: StepCache(separable(), jit=True), 512, 64, 4, small, "random weights; " + xla_note),
        ("separable=True + mixed_bfloat16", lambda: StepCache(rebuild(separable(), "mixed_bfloat16")), 512, 64, 4, sizes,
         "random weights"),
        ("mixed_bfloat16, tile 1088, 1 per batch", lambda: StepCache(bf16()), 1088, 64, 1, large, "combination"),
        ("mixed_bfloat16, whole frame", lambda: StepCache(bf16()), 16384, 64, 1, large, "combination"),
        ("mixed_bfloat16 + logits first, whole frame", lambda: StepCache(logits_before_upsampling(bf16())), 16384, 64, 1,
         large, "combination"),
        ("float32 + logits first, whole frame", lambda: StepCache(logits_before_upsampling(model)), 16384, 64, 1, large,
         "combination, no precision change"),
    ]


# --------------------------------------------------------------------------- #
# 3. Threads (one process per setting)
# --------------------------------------------------------------------------- #


THREAD_SETTINGS = ((1, 1), (2, 1), (2, 2), (4, 1), (0, 0))


def thread_worker(args) -> int:
    """Child process: set TensorFlow's threads, time the network on one 512 frame, print JSON."""
    import tensorflow as tf

    intra, inter = args.worker_threads
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    from segcore.model import load_model
    from variants import StepCache, tiled_probabilities, warm_up

    model = load_model(args.model, compile=False)
    sim = simulate(512, 1)[0]
    frame = sim.frame.astype(np.float32)
    steps = StepCache(model)
    warm_up(frame, steps)
    seconds = median_time(lambda: tiled_probabilities(frame, steps), args.repeats)
    print("RESULT " + json.dumps({"seconds": seconds}), flush=True)
    return 0


# "segcore": segcore.inference_graph.inference_model with its default tiles (whole frame up to 2048, batch by pixels).
MEMORY_LAYOUTS = (("float32", 512, 4), ("float32", 1088, 1), ("float32", 16384, 1), ("mixed_bfloat16", 16384, 1),
                  ("segcore", 2048, 1))


def memory_worker(args) -> int:
    """Child process: peak memory of inference on one frame with one layout, print JSON."""
    from segcore.model import load_model
    from variants import StepCache, rebuild, tiled_probabilities

    from segcore.inference_graph import inference_model

    policy, tile, batch, size = args.worker_memory
    model = load_model(args.model, compile=False)
    model = inference_model(model) if policy == "segcore" else rebuild(model, policy)
    frame = simulate(int(size), 1)[0].frame.astype(np.float32)
    loaded = peak_rss_gib()
    tiled_probabilities(frame, StepCache(model), int(tile), 64, int(batch))
    print("RESULT " + json.dumps({"loaded": loaded, "peak": peak_rss_gib()}), flush=True)
    return 0


def memory_runs(args, size: int):
    rows = []
    for policy, tile, batch in MEMORY_LAYOUTS:
        command = [sys.executable, __file__, "--model", str(args.model), "--worker-memory", policy, str(tile), str(batch), str(size)]
        done = subprocess.run(command, capture_output=True, text=True)
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        result = json.loads(found[-1][7:]) if found else {"loaded": float("nan"), "peak": float("nan")}
        if not found:
            print(done.stderr[-2000:], file=sys.stderr)
        label = f"{policy}, {'whole frame' if tile >= size else f'tile {tile}'}, {batch} per batch"
        print(f"memory {size} {label}: {result}", flush=True)
        rows.append((label, result["loaded"], result["peak"]))
    return rows


def thread_runs(args):
    rows = []
    settings = [(f"intra {a}, inter {b}" if a else "TensorFlow default (0, 0)", a, b, {}) for a, b in THREAD_SETTINGS]
    settings.append(("default threads, oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", 0, 0, {"TF_ENABLE_ONEDNN_OPTS": "0"}))
    for label, intra, inter, env in settings:
        command = [sys.executable, __file__, "--model", str(args.model), "--repeats", str(args.repeats),
                   "--worker-threads", str(intra), str(inter)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        seconds = json.loads(found[-1][7:])["seconds"] if found else float("nan")
        if not found:
            print(done.stderr[-2000:], file=sys.stderr)
        print(f"threads {label}: {fmt_s(seconds)}", flush=True)
        rows.append((label, seconds))
    return rows


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="trained .keras model (default: the quality benchmark's model)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 1], help="frames per size (one number or one per size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-threads", action="store_true", help="skip the thread settings")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--worker-threads", type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker-memory", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak memory of the tile layouts")
    parser.add_argument("--wait-quiet", type=float, default=0)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--results", default=str(common.RESULTS))
    args = parser.parse_args()

    if args.model is None:
        from compare_detectors import find_model

        args.model = find_model(None)
    if args.model is None or not Path(args.model).exists():
        print(f"NO TRAINED MODEL: {args.model or 'none given'}; pass --model PATH (python bench/quality.py makes one). "
              "Timings do not depend on the weights, but the agreement columns do.", file=sys.stderr)
        return 2
    if args.worker_threads:
        return thread_worker(args)
    if args.worker_memory:
        return memory_worker(args)

    counts = args.frames if len(args.frames) > 1 else args.frames * len(args.sizes)
    from segcore.io import write_frame
    from segcore.model import load_model

    print("simulating frames ...", flush=True)
    sims = {size: simulate(size, n) for size, n in zip(args.sizes, counts)}
    tmp = Path(tempfile.mkdtemp(prefix="throughput-"))
    paths = {}
    for size, frames in sims.items():
        paths[size] = []
        for i, sim in enumerate(frames):
            path = tmp / f"frame_{size}_{i}.png"
            write_frame(path, sim.frame)
            paths[size].append(path)
    from segcore.inference_graph import inference_model, model_precision

    from variants import rebuild

    # Variants are measured against the model in float32 as it was trained (its layout, no folding).
    model = rebuild(load_model(args.model, compile=False), "float32")
    prepared = inference_model(model)
    print(f"segcore's inference model: {model_precision(prepared)}", flush=True)

    load_before = wait_for_quiet(args.wait_quiet) if args.wait_quiet else load_average()
    stages = {}
    for size in args.sizes:
        print(f"breakdown {size}x{size} ...", flush=True)
        stages[size] = breakdown(prepared, sims[size], paths[size], args.repeats)
        print({k: round(v, 4) for k, v in stages[size].items()}, flush=True)
    split, split_total = network_split(prepared, 512, args.repeats)

    variant_rows = {}
    if not args.no_variants:
        from variants import StepCache

        baseline = {}
        for size in args.sizes:
            print(f"variant default {size} ...", flush=True)
            baseline[size] = run_variant(StepCache(model), sims[size], 512, 64, 4, args.repeats)
        variant_rows["float32, tile 512, overlap 64, batch 4 (segcore's defaults before 2026-11-25, with the model's layout)"] = (
            {size: (baseline[size][0], 0.0, 0, agreement(baseline[size][1], baseline[size][1], sims[size])[2])
             for size in args.sizes},
            "")
        for name, factory, tile, overlap, batch, sizes, note in variant_specs(model, args.sizes):
            if not sizes:
                continue
            steps = None
            row = {}
            for size in sizes:
                print(f"variant {name} {size} ...", flush=True)
                steps = steps or factory()
                seconds, probs = run_variant(steps, sims[size], tile, overlap, batch, args.repeats)
                diff, changed, f1 = agreement(probs, baseline[size][1], sims[size])
                row[size] = (seconds, diff, changed, f1)
                print(f"  {fmt_s(seconds)} (default {fmt_s(baseline[size][0])}), max |dp| {diff:.2g}, "
                      f"{changed} mask pixels changed, F1 {f1:.4f}", flush=True)
            variant_rows[name] = (row, note)
        row = {}
        for size in args.sizes:
            print(f"variant default again {size} ...", flush=True)
            seconds, probs = run_variant(StepCache(model), sims[size], 512, 64, 4, args.repeats)
            row[size] = (seconds, *agreement(probs, baseline[size][1], sims[size]))
        variant_rows["segcore default, measured again at the end (drift check)"] = (row, "")
    threads = [] if args.no_threads else thread_runs(args)
    largest = max(args.sizes)
    memory = [] if args.no_memory else memory_runs(args, largest)
    load_after = load_average()

    lines = record(args, prepared, sims, stages, split, split_total, variant_rows, threads, load_before, load_after)
    if memory:
        lines += [f"### Peak memory of inference on one {largest}x{largest} frame (separate process each)", ""]
        lines += table(["layout", "resident memory with the model loaded", "peak resident memory"],
                       [[label, f"{loaded:.2f} GiB", f"{peak:.2f} GiB"] for label, loaded, peak in memory])
        lines.append("")
    if args.no_record:
        print("\n".join(lines))
    else:
        append_results(lines, args.results)
    return 0


def record(args, model, sims, stages, split, split_total, variant_rows, threads, load_before, load_after):
    from segcore.inference_graph import model_precision
    from segcore.tiles import BATCH_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE
    from variants import conv_macs, rebuild, tiling_cost

    lines = section_header("Inference throughput on the CPU", "throughput.py")
    lines += [
        versions_line("numpy", "tensorflow", "keras", "cv2"),
        load_line(load_before, load_after),
        "",
        f"Model `{args.model}`. Frames simulated (segcore.synth, seed {SEED}): "
        + ", ".join(f"{len(v)} of {s}x{s}" for s, v in sims.items())
        + f"; each time the median of {args.repeats} runs after a warm-up, mean over the frames.",
        "",
        f"### Where the time goes (segcore defaults: {model_precision(model)}, logits before the last upsampling, batch norms folded, "
        f"largest tile {DEFAULT_TILE}, overlap {DEFAULT_OVERLAP}, tiles per batch up to {BATCH_PIXELS} pixels)",
        "",
    ]
    header = ["stage"] + [f"{s}x{s}: s per frame" for s in stages] + [f"{s}x{s}: share" for s in stages]
    rows = []
    totals = {s: sum(stages[s][k] for k in STAGES) for s in stages}
    for key in STAGES:
        rows.append([key] + [fmt_s(stages[s][key]) for s in stages] + [f"{100 * stages[s][key] / totals[s]:.1f} %" for s in stages])
    rows.append(["**total, file to count**"] + [f"**{fmt_s(totals[s])}**" for s in stages] + ["100 %" for s in stages])
    rows.append(["**frames per second**"] + [f"**{1 / totals[s]:.3g}**" for s in stages] + ["" for s in stages])
    rows.append(["tiles per frame (network pixels / frame pixels)"]
                + [f"{int(stages[s]['tiles'])} ({tiling_cost((s, s), DEFAULT_TILE, DEFAULT_OVERLAP)[1]:.2f}x)" for s in stages] + ["" for s in stages])
    rows.append(["segcore.inference.predict_probabilities alone"] + [fmt_s(stages[s]["segcore predict_probabilities"]) for s in stages] + ["" for s in stages])
    rows.append(["find_cosmics with area, bbox, centroid (instead of n_cosmics)"]
                + [fmt_s(stages[s]["find_cosmics (with area, bbox, centroid)"]) for s in stages] + ["" for s in stages])
    lines += table(header, rows)
    macs = conv_macs(model, 512)
    total_macs = sum(macs.values())
    groups = [("stem + conv2",), ("conv3",), ("conv4",), ("ASPP", "decoder")]
    lines += ["", f"The network on one 512x512 tile ({fmt_s(split_total)}), by part (cumulative cuts of the graph), "
              "with the convolutions' multiply-accumulates:", ""]
    lines += table(["part", "seconds", "share of time", "GMACs", "share of MACs"],
                   [[label, fmt_s(sec), f"{100 * sec / split_total:.0f} %", f"{sum(macs.get(g, 0) for g in group) / 1e9:.1f}",
                     f"{100 * sum(macs.get(g, 0) for g in group) / total_macs:.0f} %"]
                    for (label, sec), group in zip(split, groups)])
    lines += ["", f"Of the ASPP + decoder's {(macs.get('ASPP', 0) + macs.get('decoder', 0)) / 1e9:.1f} GMACs, "
              f"the decoder (two 3x3 convolutions at stride 4 and the logits) has {macs.get('decoder', 0) / 1e9:.1f}; "
              f"the separable variant needs {sum(conv_macs(rebuild(None, 'float32', separable=True), 512).values()) / 1e9:.1f} "
              f"GMACs per tile in all, against {total_macs / 1e9:.1f}.", ""]
    if variant_rows:
        sizes = list(sims)
        lines += ["### Variants", "",
                  "Seconds per frame from the frame in memory to the probability map (normalise, tiles, network, "
                  "stitching); speed-up against the default; max |dp| and changed mask pixels against the default's "
                  "probabilities; pixel F1 against the simulated truth on these few frames.", ""]
        header = ["variant"]
        for s in sizes:
            header += [f"{s}: s/frame", f"{s}: speed-up", f"{s}: max abs dp / changed px", f"{s}: F1"]
        header.append("note")
        default = next(iter(variant_rows.values()))[0]
        rows = []
        for name, (row, note) in variant_rows.items():
            cells = [name]
            for s in sizes:
                if s in row:
                    sec, diff, changed, f1 = row[s]
                    cells += [fmt_s(sec), f"{default[s][0] / sec:.2f}x", f"{diff:.2g} / {changed}", f"{f1:.4f}"]
                else:
                    cells += ["", "", "", ""]
            cells.append(note)
            rows.append(cells)
        lines += table(header, rows)
        lines.append("")
    if threads:
        base = next((sec for label, sec in threads if label.startswith("TensorFlow default")), float("nan"))
        lines += ["### Thread settings (one 512x512 frame, inference, separate process each)", ""]
        lines += table(["tf.config.threading", "s per frame", "vs default"],
                       [[label, fmt_s(sec), f"{base / sec:.2f}x"] for label, sec in threads])
        lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
