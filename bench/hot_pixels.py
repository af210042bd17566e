"""Hot pixels found in sets of frames from one camera, and what keeping them out of the masks buys.

    python bench/hot_pixels.py --data DATA [--cameras 20] [--frames-per-camera 10] [--seed 1] \
        [--model M.keras ...] [--lacosmic] [--results bench/RESULTS.md]

DATA holds (or receives) a Test split simulated with ``frames_per_camera``: frames ``10k .. 10k+9``
share one camera (``segcore.synth.draw_camera``: its parameters, module gaps and hot pixels), as a
series from one detector does. For each camera the hot pixels are found in its frames
(``segcore.hotpixels.hot_pixels_of_set``, the rule ``--hot-pixels auto`` applies) and compared with
the simulator's list; each model (and LA Cosmic with its defaults) is then scored on every frame
with the camera's hot pixels filled and kept out of the masks, and without. The truth is the same
in both (the simulator never masks a hot pixel).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, load_average, load_line, section_header, table, versions_line  # noqa: E402

from segcore import io  # noqa: E402
from segcore.data import pair_split  # noqa: E402
from segcore.evaluator import COUNT_COLUMNS, MATCHED_COLUMN, evaluate_detector, evaluate_pairs  # noqa: E402
from segcore.hotpixels import count_hot, hot_mask, hot_pixels_of_set  # noqa: E402
from segcore.metrics import object_scores_from_counts, scores_from_counts  # noqa: E402
from segcore.synth import draw_camera, generate_dataset  # noqa: E402


def simulate(data: Path, n_test: int, per_camera: int, seed: int) -> None:
    marker = data / "synth.json"
    wanted = {"n_test": n_test, "frames_per_camera": per_camera, "seed": seed, "size": 512}
    if marker.exists():
        if json.loads(marker.read_text()) != wanted:
            sys.exit(f"{data} holds other frames ({marker.read_text().strip()}); give another --data")
        return
    from tqdm import tqdm

    with tqdm(total=n_test, desc="simulating", unit="frame") as bar:
        generate_dataset(data, 0, 0, n_test, size=512, seed=seed, frames_per_camera=per_camera,
                         progress=lambda done, _: bar.update(done - bar.n))
    marker.write_text(json.dumps(wanted))


def pooled(tables) -> dict:
    import pandas as pd

    table_ = pd.concat(tables, ignore_index=True)
    scores = scores_from_counts(*[int(table_[c].sum()) for c in COUNT_COLUMNS])
    objects = object_scores_from_counts(int(table_["true_count"].sum()), int(table_["pred_count"].sum()),
                                        int(table_[MATCHED_COLUMN].sum()))
    return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
            "count_score": float(table_["count_score"].mean()), "object_precision": objects["object_precision"],
            "false_cosmics": int(table_["pred_count"].sum() - table_[MATCHED_COLUMN].sum()),
            "zero_frames_clean": int(((table_["true_count"] == 0) & (table_["pred_count"] == 0)).sum()),
            "zero_frames": int((table_["true_count"] == 0).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--frames-per-camera", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--lacosmic", action="store_true", help="also LA Cosmic with its default parameters")
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = parser.parse_args()

    data = Path(args.data)
    per = args.frames_per_camera
    simulate(data, args.cameras * per, per, args.seed)
    pairs = pair_split(data, "Test").pairs
    groups = [pairs[k * per:(k + 1) * per] for k in range(args.cameras)]
    before = load_average()

    found = []
    finding = {"true": 0, "found": 0, "false": 0}
    for k, group in enumerate(groups):
        images = [str(image) for image, _ in group]
        hot, _ = hot_pixels_of_set(images, io.read_frame, io.image_shape)
        camera = draw_camera(np.random.default_rng([args.seed, k, 1]), 512)
        truth = np.zeros((512, 512), bool)
        for y, x, _ in camera.hot_pixels:
            truth[y, x] = True
        got = hot_mask(hot, (512, 512))
        got = np.zeros_like(truth) if got is None else got
        finding["true"] += int(truth.sum())
        finding["found"] += int((got & truth).sum())
        finding["false"] += int((got & ~truth).sum())
        found.append(hot)
        print(f"camera {k} ({camera.detector['family']}): {int(truth.sum())} hot, found {count_hot(hot)}", flush=True)

    detectors = {}
    for path in args.model:
        from segcore.inference import load_inference_model

        model = load_inference_model(path, "auto")
        detectors[Path(path).parent.name or path] = lambda group, hot, model=model: evaluate_pairs(
            model, group, hot_pixels=hot, precision=None).per_image
    if args.lacosmic:
        from segcore.classical import lacosmic_mask

        detectors["LA Cosmic (defaults)"] = lambda group, hot: evaluate_detector(
            lacosmic_mask, group, hot_pixels=hot).per_image

    rows = []
    for name, score in detectors.items():
        with_hot, without = [], []
        for k, group in enumerate(groups):
            without.append(score(group, None))
            with_hot.append(score(group, found[k]))
            print(f"{name}: camera {k} scored", flush=True)
        for label, tables in (("none", without), ("auto", with_hot)):
            s = pooled(tables)
            rows.append([name, label, f"{s['f1']:.3f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}",
                         f"{s['count_score']:.3f}", f"{s['object_precision']:.3f}", s["false_cosmics"],
                         f"{s['zero_frames_clean']} of {s['zero_frames']}"])

    lines = section_header("Hot pixels of a set kept out of the masks", "hot_pixels.py")
    lines += [versions_line("tensorflow", "keras", "numpy", "cv2"), load_line(before), ""]
    lines += [f"{len(pairs)} test frames of 512x512 (seed {args.seed}), {per} per camera, {args.cameras} cameras. "
              f"Hot pixels found in each camera's frames against the simulator's list: {finding['found']} of "
              f"{finding['true']} found, {finding['false']} pixels taken for hot that are not.", ""]
    if rows:
        lines += table(["detector", "--hot-pixels", "pooled F1", "precision", "recall", "mean count score",
                        "object precision", "false cosmics", "frames without cosmics predicted clean"], rows)
    append_results(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
