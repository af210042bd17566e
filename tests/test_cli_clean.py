"""``python -m segcore clean`` and ``--dilate``, run in-process on tiny simulated frames."""

import numpy as np
import pytest
from model_support import intensity_model

from segcore import io
from segcore.__main__ import main
from segcore.classical import lacosmic_mask
from segcore.inference import predict_mask
from segcore.model import save_model
from segcore.postprocess import clean_frame, dilate
from segcore.synth import simulate_frame


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Two simulated 80 px frames with cosmics, as a 16-bit PNG and a float32 NPY."""
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for seed, suffix in ((0, ".png"), (2, ".npy")):
        sample = simulate_frame(np.random.default_rng(seed), 80, n_cosmics=4, family="integrating")
        frame = sample.frame if suffix == ".png" else sample.frame.astype(np.float32)
        path = folder / f"frame_{seed}{suffix}"
        io.write_frame(path, frame)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A 1x1 network whose cosmic probability rises with brightness: fast, and its masks are known."""
    path = tmp_path_factory.mktemp("model") / "bright.keras"
    save_model(intensity_model(6.0, 3.0), path)
    return path


def test_clean_with_lacosmic_writes_cleaned_frames_in_their_format_and_the_masks(frames, tmp_path, capsys):
    out = tmp_path / "clean"
    assert main(["clean", "--lacosmic", *map(str, frames), "--out", str(out)]) == 0
    assert "2 cleaned frames" in capsys.readouterr().out
    for path in frames:
        raw = io.read_raw(path)
        mask = lacosmic_mask(io.read_frame(path))
        cleaned = io.read_raw(out / path.name)
        assert cleaned.dtype == raw.dtype
        np.testing.assert_array_equal(cleaned, clean_frame(raw, mask))
        np.testing.assert_array_equal(io.read_mask(out / f"{path.stem}_mask.png"), mask)
        assert cleaned[~mask].tobytes() == raw[~mask].tobytes()


def test_clean_with_a_model_uses_its_masks_grown_by_dilate(frames, model_path, tmp_path):
    from segcore.model import load_model

    out = tmp_path / "clean"
    assert main(["clean", "--model", str(model_path), str(frames[0]), "--out", str(out), "--dilate", "1"]) == 0
    model = load_model(model_path, compile=False)
    mask = dilate(predict_mask(model, io.read_frame(frames[0]), threshold=0.5), 1)
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(io.read_mask(out / f"{frames[0].stem}_mask.png"), mask)
    np.testing.assert_array_equal(io.read_raw(out / frames[0].name), clean_frame(io.read_raw(frames[0]), mask))


def test_predict_dilate_grows_the_written_masks(frames, model_path, tmp_path):
    from segcore.model import load_model

    out = tmp_path / "masks"
    assert main(["predict", "--model", str(model_path), str(frames[0]), "--out", str(out), "--dilate", "2"]) == 0
    mask = predict_mask(load_model(model_path, compile=False), io.read_frame(frames[0]), threshold=0.5)
    np.testing.assert_array_equal(io.read_mask(out / f"{frames[0].stem}.png"), dilate(mask, 2))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dilate", "-1"], "dilation must be a whole number"),
        (["--out", "{frame}"], "is a file"),
        (["--out", "{folder}"], "would overwrite it"),
    ],
    ids=["negative-dilation", "out-is-a-file", "out-is-the-frames-folder"],
)
def test_bad_clean_input_is_one_clear_line(argv, message, frames, tmp_path, capsys):
    argv = [a.format(frame=frames[0], folder=frames[0].parent) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    assert main(["clean", "--lacosmic", str(frames[0]), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_clean_refuses_two_frames_that_would_write_one_file(frames, tmp_path, capsys):
    twin = tmp_path / "twin" / frames[0].name
    twin.parent.mkdir()
    twin.write_bytes(frames[0].read_bytes())
    assert main(["clean", "--lacosmic", str(frames[0]), str(twin), "--out", str(tmp_path / "out")]) == 2
    assert "would both write" in capsys.readouterr().err


def test_clean_reports_an_unreadable_frame_by_name_and_cleans_the_others(frames, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["clean", "--lacosmic", str(broken), str(frames[0]), "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err and (out / frames[0].name).exists()


def test_clean_needs_a_model_or_lacosmic(frames, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["clean", str(frames[0]), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "one of the arguments --model --lacosmic is required" in capsys.readouterr().err


def test_evaluate_dilate_grows_the_masks_it_scores_and_says_so(model_path, tmp_path, capsys):
    import json

    from segcore.data import pair_split
    from segcore.evaluator import evaluate_pairs
    from segcore.model import load_model

    data = tmp_path / "data"
    assert main(["synth", str(data), "--n", "7", "--size", "64", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model_path), "--data", str(data), "--json", "--dilate", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    reference = evaluate_pairs(load_model(model_path, compile=False), pair_split(data, "Test").pairs, dilation=1)
    assert printed["dilation"] == 1
    assert printed["pooled"]["f1"] == pytest.approx(reference.pooled["f1"])
    assert printed["pooled"]["average_precision"] == pytest.approx(reference.pooled["average_precision"], nan_ok=True)
