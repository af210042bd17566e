"""The command line, run in-process on a tiny simulated dataset."""

import csv
import json

import numpy as np
import pytest

from segcore import io
from segcore.__main__ import main
from segcore.data import pair_split
from segcore.evaluator import evaluate_pairs
from segcore.model import load_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "data"
    assert main(["synth", str(root), "--n", "10", "--size", "64", "--seed", "4", "--real", "2"]) == 0
    return root


@pytest.fixture(scope="module")
def model_path(dataset):
    """A trained model for the commands that use one: the tiny backbone (ResNet50 would cost each command minutes of
    inference here; ``test_train_writes_model_and_checkpoints`` trains the default network)."""
    out = dataset.parent / "model.keras"
    code = main(
        ["train", "--data", str(dataset), "--out", str(out), "--crop-size", "64", "--batch-size", "2", "--epochs", "1",
         "--steps-per-epoch", "2", "--backbone", "tiny", "--backbone-weights", "none"]
    )
    assert code == 0
    return out


def test_synth_writes_the_layout_with_a_70_15_15_split(dataset):
    counts = {split: len(pair_split(dataset, split).pairs) for split in ("Train", "Validation", "Test")}
    assert counts == {"Train": 6, "Validation": 2, "Test": 2}
    assert len(list((dataset / "Real").iterdir())) == 2


def test_synth_refuses_to_mix_into_an_existing_dataset(dataset, capsys):
    assert main(["synth", str(dataset), "--n", "4", "--size", "64"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_train_writes_model_and_checkpoints(dataset, tmp_path, capsys):
    # The default network (ResNet50 DeepLabV3+, full-resolution head), one step, end to end.
    out = tmp_path / "model.keras"
    assert main(["train", "--data", str(dataset), "--out", str(out), "--crop-size", "64", "--batch-size", "2",
                 "--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1", "--backbone-weights", "none"]) == 0
    printed = capsys.readouterr().out  # the progress lines, then the run's end as JSON
    printed = json.loads(printed[printed.rindex('{\n  "'):])
    assert printed["status"] == "finished" and printed["backbone_weights"] == "random"
    assert (out.parent / "model_checkpoints" / "best.keras").exists()
    from segcore.inference_graph import deeplab_architecture

    architecture = deeplab_architecture(load_model(out, compile=False))
    assert architecture["backbone"] == "resnet50" and architecture["full_resolution"]


@pytest.mark.slow
def test_evaluate_json_matches_the_evaluator(dataset, model_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model_path), "--data", str(dataset), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ("iou", "dice", "pixel_accuracy", "precision", "recall", "f1", "count_score"):
        assert key in printed
    assert set(printed["pooled"]) >= {"precision", "recall", "f1"}
    reference = evaluate_pairs(load_model(model_path, compile=False), pair_split(dataset, "Test").pairs)
    assert printed["iou"] == pytest.approx(reference.per_image["iou"].mean())
    assert printed["pooled"]["f1"] == pytest.approx(reference.pooled["f1"])


@pytest.mark.slow
def test_evaluate_and_predict_average_over_views(dataset, model_path, tmp_path, capsys):
    from segcore.inference import load_inference_model, model_threshold, predict_probabilities

    capsys.readouterr()
    assert main(["evaluate", "--model", str(model_path), "--data", str(dataset), "--json", "--views", "4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["views"] == 4
    model = load_model(model_path, compile=False)
    reference = evaluate_pairs(model, pair_split(dataset, "Test").pairs, views=4)
    assert printed["pooled"]["f1"] == pytest.approx(reference.pooled["f1"])
    # predict: the mask is the 4-view mean above the model's threshold
    frame_path = pair_split(dataset, "Test").pairs[0][0]
    assert main(["predict", "--model", str(model_path), str(frame_path), "--out", str(tmp_path), "--views", "4",
                 "--precision", "float32"]) == 0
    fast = load_inference_model(model_path, "float32")
    expected = predict_probabilities(fast, io.read_frame(frame_path), views=4) > model_threshold(fast)
    np.testing.assert_array_equal(io.read_mask(tmp_path / f"{frame_path.stem}.png"), expected)
    with pytest.raises(SystemExit) as refused:
        main(["predict", "--model", str(model_path), str(frame_path), "--out", str(tmp_path / "x"), "--views", "3"])
    assert refused.value.code == 2 and "--views: invalid choice: 3" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_table_and_csv(dataset, model_path, tmp_path, capsys):
    table = tmp_path / "per_image.csv"
    assert main(["evaluate", "--model", str(model_path), "--data", str(dataset), "--split", "Validation", "--csv", str(table)]) == 0
    assert "pooled over 2 frames" in capsys.readouterr().out
    with table.open() as handle:
        assert len(list(csv.DictReader(handle))) == 2


@pytest.mark.slow
def test_predict_writes_masks_and_counts(dataset, model_path, tmp_path):
    frames = sorted((dataset / "Real").iterdir())
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model_path), *map(str, frames), "--out", str(out), "--overlays"]) == 0
    with (out / "counts.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == [str(f) for f in frames]
    for row, frame in zip(rows, frames):
        mask = io.read_mask(row["mask"], shape=io.image_shape(frame))
        from segcore.metrics import n_cosmics

        assert int(row["cosmics"]) == n_cosmics(mask)
        assert int(row["cosmic_pixels"]) == int(mask.sum())
        assert (out / f"{frame.stem}_overlay.png").exists()


@pytest.mark.slow
def test_predict_reports_a_bad_file_by_name_and_goes_on(dataset, model_path, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = sorted((dataset / "Real").iterdir())[0]
    assert main(["predict", "--model", str(model_path), str(bad), str(good), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}" in err and "Traceback" not in err
    assert (tmp_path / "o" / f"{good.stem}.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--model", "{tmp}/missing.keras", "--data", "{data}"], "missing.keras"),
        (["evaluate", "--model", "{model}", "--data", "{tmp}/empty"], "no frames with masks"),
        (["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/m.keras", "--backbone-weights", "none"], "not found"),
        (["train", "--data", "{data}", "--out", "{tmp}/m.keras", "--crop-size", "100"], "multiple of 16"),
        (["synth", "{tmp}/s", "--n", "2", "--validation", "1", "--test", "1"], "no training frames"),
        (["synth", "{tmp}/s", "--n", "3", "--size", "100000"], "at most 8192"),
        (["synth", "{model}", "--n", "3"], "is a file, not a folder"),
        (["evaluate", "--model", "{model}", "--data", "{data}", "--csv", "{tmp}"], "is a folder"),
        (["evaluate", "--model", "{model}", "--data", "{data}", "--csv", "{tmp}/no/such/dir/x.csv"], "does not exist"),
        (["train", "--data", "{data}", "--out", "{tmp}/m.keras", "--steps-per-epoch", "-3"], "steps per epoch"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, dataset, model_path, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, data=dataset, model=model_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # One error line, on a line of its own (after any progress bar).
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error:") and message in errors[0] and "Traceback" not in err


def test_module_runs_as_a_program(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "segcore", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "synth" in done.stdout and "predict" in done.stdout
    np.testing.assert_equal(done.stderr.count("Traceback"), 0)


def test_lacosmic_tunes_on_a_labelled_split_then_writes_masks_and_counts(dataset, tmp_path, capsys):
    from segcore.classical import lacosmic_mask, tune_lacosmic

    files = sorted((dataset / "Test").iterdir())
    out = tmp_path / "lacosmic"
    assert main(["lacosmic", *map(str, files), "--out", str(out), "--tune", str(dataset)]) == 0
    pairs = [(io.read_frame(f), io.read_mask(m)) for f, m in pair_split(dataset, "Validation").pairs]
    best, _ = tune_lacosmic(pairs)
    assert f"sigclip {best.sigclip}, objlim {best.objlim}, sigfrac {best.sigfrac}" in capsys.readouterr().out
    with open(out / "counts.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == list(map(str, files))
    for path, row in zip(files, rows):
        expected = lacosmic_mask(io.read_frame(path), best)
        np.testing.assert_array_equal(io.read_mask(out / f"{path.stem}.png"), expected)
        assert int(row["cosmic_pixels"]) == expected.sum()


def test_lacosmic_without_tuning_takes_the_given_parameters(dataset, tmp_path):
    from segcore.classical import LACosmicParams, lacosmic_mask

    frame_path = sorted((dataset / "Test").iterdir())[0]
    out = tmp_path / "fixed"
    assert main(["lacosmic", str(frame_path), "--out", str(out), "--sigclip", "3", "--objlim", "1"]) == 0
    expected = lacosmic_mask(io.read_frame(frame_path), LACosmicParams(sigclip=3.0, objlim=1.0))
    np.testing.assert_array_equal(io.read_mask(out / f"{frame_path.stem}.png"), expected)


def test_lacosmic_bad_parameter_is_one_clear_line(dataset, tmp_path, capsys):
    frame_path = sorted((dataset / "Test").iterdir())[0]
    assert main(["lacosmic", str(frame_path), "--out", str(tmp_path / "x"), "--sigclip", "-1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: sigclip must be positive") and "Traceback" not in err


@pytest.mark.slow
def test_predict_refuses_two_frames_that_would_write_the_same_mask(dataset, model_path, tmp_path, capsys):
    import shutil

    frame = sorted((dataset / "Real").iterdir())[0]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(frame, tmp_path / folder / frame.name)
    out = tmp_path / "o"
    argv = ["predict", "--model", str(model_path), str(tmp_path / "a" / frame.name), str(tmp_path / "b" / frame.name)]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "would both be written as" in err and "separate --out" in err
    assert not out.exists()


@pytest.mark.slow
def test_an_error_midway_starts_its_own_line_after_the_progress_bar(dataset, model_path, tmp_path, capsys):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    second = sorted((copy / "TestAnnotation").iterdir())[1]
    second.write_bytes(b"broken")
    assert main(["evaluate", "--model", str(model_path), "--data", str(copy)]) == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: {second}") and "Traceback" not in "\n".join(lines)


@pytest.mark.parametrize("damage", ["truncated png", "nan npy", "colour png"])
def test_train_names_a_damaged_frame_before_building_anything(damage, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    assert main(["synth", str(root), "--n", "6", "--validation", "1", "--test", "1", "--size", "64", "--seed", "5"]) == 0
    victim = sorted((root / "Train").iterdir())[1]
    if damage == "truncated png":
        victim.write_bytes(victim.read_bytes()[:200])
        bad = victim
    elif damage == "colour png":  # refused by every reader, training included (no silent conversion to grey)
        import cv2

        frame = io.read_frame(victim).astype(np.uint16)
        assert cv2.imwrite(str(victim), np.dstack([frame, frame // 2, frame]))
        bad = victim
    else:
        frame = io.read_frame(victim).astype(np.float32)
        frame[:] = np.nan  # NaN pixels are invalid pixels; a frame without a valid one is refused
        bad = victim.with_suffix(".npy")
        np.save(bad, frame)
        victim.unlink()
    shutil.rmtree(root / "Validation")  # the held-out frames come from Train/ too
    shutil.rmtree(root / "ValidationAnnotation")
    code = main(["train", "--data", str(root), "--out", str(tmp_path / "m.keras"), "--crop-size", "64",
                 "--epochs", "1", "--steps-per-epoch", "1", "--backbone", "tiny", "--backbone-weights", "none"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: ") and "Traceback" not in err
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("kind", ["corrupt", "wrong kind"])
def test_a_model_file_that_is_not_a_cosmic_model_is_one_clear_line(kind, dataset, tmp_path, capsys):
    import keras

    path = tmp_path / "m.keras"
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
        message = "not a Keras model: a .keras file is a ZIP archive"
    else:
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
        message = "not a cosmic segmentation model: it maps (4,) to (2,)"
    frames = sorted(str(p) for p in (dataset / "Test").iterdir())
    assert main(["predict", "--model", str(path), *frames, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [f"error: {path}: {message}" + errors[0].split(message, 1)[1]] and "Traceback" not in err
