"""The Home, Datasets and Label pages, run in-process with Streamlit's AppTest, and their picture helpers."""

from __future__ import annotations

import io as bytes_io
import zipfile

import numpy as np
import pytest
from PIL import Image

import db
from segcore import io
from ui import images

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TIMEOUT = 120


def app(page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def by_label(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}; have {[w.label for w in widgets]}"
    return found[0]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = bytes_io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_without_masks(name: str = "Unlabelled", n: int = 3, size: int = 32) -> db.DatasetInfo:
    info = db.create_dataset(name)
    rng = np.random.default_rng(1)
    frames = [(f"img_{i}.png", png_bytes(rng.integers(0, 60000, (size, size)).astype(np.uint16))) for i in range(n)]
    db.import_files(info.id, "train", frames=frames)
    return db.get_dataset(info.id)


def fake_evaluation(dataset_id: int, ious: dict[int, float], predictions: dict[int, np.ndarray]) -> int:
    """An evaluation as a finished run would leave it: per-frame scores and predicted masks."""
    from db.models import Evaluation, EvaluationResultRow, Run
    from db.paths import to_stored

    folder = db.home() / "fake_predictions"
    with db.session_scope() as session:
        run = Run(name="baseline", dataset_id=dataset_id, config={}, status="finished")
        session.add(run)
        session.flush()
        evaluation = Evaluation(run_id=run.id, split="train", threshold=0.5, checkpoint="best.keras",
                                predictions_dir=to_stored(folder.parent), summary={"iou": {"mean": 0.5}}, pooled={})
        session.add(evaluation)
        session.flush()
        for frame_id, iou in ious.items():
            path = folder / f"{frame_id}.png"
            io.write_mask(path, predictions[frame_id])
            session.add(EvaluationResultRow(evaluation_id=evaluation.id, frame_id=frame_id, image=f"{frame_id}.png",
                                         iou=iou, f1=iou, true_count=1, pred_count=1,
                                         prediction_path=to_stored(path)))
        return evaluation.id


# --- Home ------------------------------------------------------------------------------------


def test_home_creates_the_demo_on_first_start_and_shows_counts(first_start_home):
    at = app()
    datasets = db.list_datasets()
    assert [d.name for d in datasets] == ["Simulated demo"]
    assert datasets[0].frames == {"train": 4, "validation": 2, "test": 2, "real": 1}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Datasets"] == "1" and metrics["Frames"] == "9" and metrics["Training runs"] == "0"
    # The demo is said to be simulated, and bringing one's own frames comes first.
    assert "Bring your frames" in texts(at.subheader) and "is **simulated**" in texts(at.markdown)


def test_home_suggests_labelling_when_frames_lack_masks(home):
    app()
    dataset_without_masks()
    at = app()
    assert "Label masks" in texts(at.subheader)
    assert {m.label: m.value for m in at.metric}["Frames without a mask"] == "3"


def test_home_shows_latest_run_and_its_scores(home):
    app()
    demo = db.list_datasets()[0]
    frame = db.list_frames(demo.id, "train")[0]
    fake_evaluation(demo.id, {frame.id: 0.25}, {frame.id: np.zeros((64, 64), bool)})
    at = app()
    assert "baseline" in texts(at.markdown)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["IoU (train)"] == "0.500"
    assert metrics["Count error (train)"] == "n/a"  # an evaluation stored before count errors were kept


def test_demo_is_not_recreated_after_it_was_deleted(first_start_home):
    app()
    db.delete_dataset(db.list_datasets()[0].id)
    at = app()
    assert db.list_datasets() == []
    assert "Add your data" in texts(at.subheader)


def test_pages_explain_what_to_do_when_there_is_no_dataset(home):
    app()
    db.delete_dataset(db.list_datasets()[0].id)
    at = app("pages/1_Datasets.py")
    assert "No dataset yet" in texts(at.info)
    at.switch_page("pages/2_Label.py").run()
    assert not at.exception
    assert "No datasets yet" in texts(at.sidebar.info)


# --- Datasets --------------------------------------------------------------------------------


def test_datasets_page_shows_the_demo_counts_and_a_clean_validation(home):
    at = app("pages/1_Datasets.py")
    assert "Simulated demo" in texts(at.subheader)
    assert {m.label: m.value for m in at.metric}["Train"] == "4 frames"
    assert "every train/validation/test frame has a mask" in texts(at.success)
    assert len(at.image) == 9


def test_create_dataset_makes_an_empty_selected_dataset(home):
    at = app("pages/1_Datasets.py")
    at.text_input(key="new_name").input("Beamtime March")
    by_label(at.button, "Create dataset").click().run()
    assert not at.exception
    assert [d.name for d in db.list_datasets()] == ["Simulated demo", "Beamtime March"]
    assert "Created dataset **Beamtime March**" in texts(at.success)
    assert "no frames yet" in texts(at.info)


def test_create_dataset_with_a_taken_name_explains_why(home):
    at = app("pages/1_Datasets.py")
    at.text_input(key="new_name").input("Simulated demo")
    by_label(at.button, "Create dataset").click().run()
    assert not at.exception
    assert "already exists" in texts(at.error)
    assert len(db.list_datasets()) == 1


def test_simulate_adds_a_dataset_with_the_asked_sizes(home):
    at = app("pages/1_Datasets.py")
    at.text_input(key="sim_name").input("Tiny sim")
    at.number_input(key="sim_train").set_value(2)
    at.number_input(key="sim_validation").set_value(1)
    at.number_input(key="sim_test").set_value(1)
    at.select_slider(key="sim_size").set_value(64)
    by_label(at.button, "Generate").click().run()
    assert not at.exception
    info = db.get_dataset("Tiny sim")
    assert info.frames == {"train": 2, "validation": 1, "test": 1, "real": 0}
    assert "Imported into **Tiny sim**: 4 frame(s)" in texts(at.success)


def test_upload_frames_and_masks_into_a_split(home):
    at = app("pages/1_Datasets.py")
    frame = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 50
    mask = np.zeros((32, 32), np.uint8)
    mask[3, 4] = 1
    at.selectbox(key="upload_split").set_value("test")
    at.file_uploader(key="upload_frames").set_value([("new_a.png", png_bytes(frame), "image/png"),
                                                     ("new_b.png", png_bytes(frame), "image/png")])
    at.file_uploader(key="upload_masks").set_value([("new_a_mask.png", png_bytes(mask), "image/png")])
    by_label(at.button, "Upload").click().run()
    assert not at.exception
    demo = db.list_datasets()[0]
    added = {f.name: f for f in db.list_frames(demo.id, "test")}
    assert {"new_a.png", "new_b.png"} <= set(added)
    assert db.current_mask(added["new_a.png"].id)[3, 4]
    assert added["new_b.png"].revision_id is None
    assert "new_b.png: no mask yet" in texts(at.markdown)


def test_upload_of_a_mask_with_the_wrong_size_names_the_file(home):
    at = app("pages/1_Datasets.py")
    at.file_uploader(key="upload_frames").set_value(("odd.png", png_bytes(np.ones((32, 32), np.uint16)), "image/png"))
    at.file_uploader(key="upload_masks").set_value(("odd.png", png_bytes(np.ones((16, 16), np.uint8)), "image/png"))
    by_label(at.button, "Upload").click().run()
    assert not at.exception
    message = texts(at.error)
    assert "Upload refused" in message and "odd.png" in message
    assert db.list_datasets()[0].total_frames == 9


def test_zip_in_the_original_layout_becomes_a_dataset(home):
    at = app("pages/1_Datasets.py")
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("set/Train/a.png", png_bytes(np.full((16, 16), 900, np.uint16)))
        archive.writestr("set/TrainAnnotation/a.png", png_bytes(np.eye(16, dtype=np.uint8)))
    at.file_uploader(key="zip_file").set_value(("beam.zip", buffer.getvalue(), "application/zip"))
    at.text_input(key="zip_name").input("From zip")
    by_label(at.button, "Import ZIP").click().run()
    assert not at.exception
    info = db.get_dataset("From zip")
    assert info.frames["train"] == 1


def test_a_file_that_is_not_a_zip_gets_a_clear_error(home):
    at = app("pages/1_Datasets.py")
    at.file_uploader(key="zip_file").set_value(("notes.zip", b"hello", "application/zip"))
    by_label(at.button, "Import ZIP").click().run()
    assert not at.exception
    assert "notes.zip" in texts(at.error) and "not a ZIP" in texts(at.error)


def test_server_folder_import_is_off_without_import_roots(home, monkeypatch):
    monkeypatch.delenv(db.IMPORT_ROOTS_ENV, raising=False)
    at = app("pages/1_Datasets.py")
    assert not at.exception
    assert "Importing folders from the machine running this app is off" in texts(at.info)
    assert not [field for field in at.text_input if field.key == "folder_path"]


def test_server_folder_under_a_root_is_imported_and_one_outside_is_refused(home, tmp_path, monkeypatch):
    from db_fixtures import make_layout

    root = tmp_path / "beamtime"
    make_layout(root / "run7", {"Train": 2})
    monkeypatch.setenv(db.IMPORT_ROOTS_ENV, str(root))
    at = app("pages/1_Datasets.py")
    at.text_input(key="folder_path").input(str(root / "nowhere"))
    by_label(at.button, "Import folder").click().run()
    assert not at.exception
    assert "nowhere: folder not found" in texts(at.error)
    at.text_input(key="folder_path").input("/etc")
    by_label(at.button, "Import folder").click().run()
    assert "not under an import root" in texts(at.error) and "/etc" not in texts(at.error)
    at.text_input(key="folder_path").input(str(root / "run7"))
    by_label(at.button, "Import folder").click().run()
    assert not at.exception
    assert db.get_dataset("run7").frames["train"] == 2


def test_validation_report_names_frames_without_masks(home):
    app()
    info = dataset_without_masks()
    at = app()
    at.session_state["dataset_id"] = info.id
    at.switch_page("pages/1_Datasets.py").run()
    assert not at.exception
    assert "3 problem(s) found" in texts(at.warning)
    problems = at.dataframe[-2].value["Problem"].tolist()
    assert "Train/img_0.png: frame has no mask" in problems


# --- Label -----------------------------------------------------------------------------------


def test_label_page_renders_the_first_frame_with_its_mask(home):
    at = app("pages/2_Label.py")
    demo = db.list_datasets()[0]
    first = db.list_frames(demo.id)[0]
    assert at.selectbox(key="lbl_frame").value == first.id
    assert {m.label: m.value for m in at.metric}["Cosmic pixels"] == str(int(db.current_mask(first.id).sum()))
    assert not at.error


def test_next_previous_and_jump_move_through_the_frames(home):
    at = app("pages/2_Label.py")
    ids = [f.id for f in db.list_frames(db.list_datasets()[0].id)]
    at.button(key="lbl_next").click().run()
    at.button(key="lbl_next").click().run()
    assert at.selectbox(key="lbl_frame").value == ids[2]
    at.button(key="lbl_prev").click().run()
    assert at.selectbox(key="lbl_frame").value == ids[1]
    at.number_input(key="lbl_number").set_value(5).run()
    assert at.selectbox(key="lbl_frame").value == ids[4]
    assert not at.exception


def test_split_filter_and_no_mask_filter(home):
    app()
    info = dataset_without_masks()
    at = app()
    at.session_state["dataset_id"] = info.id
    at.switch_page("pages/2_Label.py").run()
    assert len(at.selectbox(key="lbl_frame").options) == 3
    at.toggle(key="lbl_missing").set_value(True).run()
    assert len(at.selectbox(key="lbl_frame").options) == 3
    at.session_state["dataset_id"] = db.list_datasets()[0].id
    at.run()
    assert "Every frame in this selection has a mask" in texts(at.success)
    at.toggle(key="lbl_missing").set_value(False).run()
    at.selectbox(key="lbl_split").set_value("validation").run()
    assert len(at.selectbox(key="lbl_frame").options) == 2


def test_saving_without_a_name_is_refused_with_a_message(home):
    app()
    info = dataset_without_masks()
    at = app()
    at.session_state["dataset_id"] = info.id
    at.switch_page("pages/2_Label.py").run()
    by_label(at.button, "Save as new revision").click().run()
    assert "Type your name" in texts(at.error)
    assert db.mask_history(db.list_frames(info.id)[0].id) == []


def test_saving_a_frame_without_mask_stores_a_revision_by_the_author(home):
    app()
    info = dataset_without_masks()
    at = app()
    at.session_state["dataset_id"] = info.id
    at.switch_page("pages/2_Label.py").run()
    at.text_input(key="_author_box").input("Ada").run()
    by_label(at.button, "Save as new revision").click().run()
    assert not at.exception
    frame = db.list_frames(info.id)[0]
    history = db.mask_history(frame.id)
    assert len(history) == 1 and history[0].author == "Ada" and history[0].source == "drawn"
    assert "Saved revision" in texts(at.toast)


def test_disagreement_order_and_starting_from_a_prediction(home):
    app()
    demo = db.list_datasets()[0]
    frames = db.list_frames(demo.id, "train")
    prediction = np.zeros((64, 64), bool)
    prediction[10:12, 20:23] = True
    ious = {frames[0].id: 0.9, frames[1].id: 0.1, frames[2].id: 0.5}
    evaluation = fake_evaluation(demo.id, ious, {f: prediction for f in ious})
    at = app("pages/2_Label.py")
    at.selectbox(key="lbl_eval").set_value(evaluation).run()
    at.radio(key="lbl_order").set_value("disagreement").run()
    assert at.selectbox(key="lbl_frame").options == [
        at.selectbox(key="lbl_frame").format_func(i) for i in (frames[1].id, frames[2].id, frames[0].id)
    ]
    at.radio(key="lbl_base").set_value("prediction").run()
    assert {m.label: m.value for m in at.metric}["Cosmic pixels"] == "6"
    at.text_input(key="_author_box").input("Ada").run()
    by_label(at.button, "Save as new revision").click().run()
    current = db.current_revision(frames[1].id)
    assert current.source == "predicted" and current.author == "Ada"
    assert np.array_equal(db.current_mask(frames[1].id), prediction)


def test_restore_an_earlier_revision(home):
    app()
    demo = db.list_datasets()[0]
    frame = db.list_frames(demo.id)[0]
    original = db.current_mask(frame.id)
    db.save_mask_revision(frame.id, np.zeros_like(original), author="someone")
    at = app("pages/2_Label.py")
    at.text_input(key="_author_box").input("Ada").run()
    at.segmented_control(key="lbl_view").set_value("Difference").run()
    assert not at.exception
    by_label(at.button, f"Restore revision {db.mask_history(frame.id)[1].id}").click().run()
    assert not at.exception
    history = db.mask_history(frame.id)
    assert len(history) == 3 and history[0].restored_from_id == history[2].id
    assert np.array_equal(db.current_mask(frame.id), original)


# --- picture helpers -------------------------------------------------------------------------


def test_strokes_on_an_enlarged_window_map_back_to_the_frame_pixels():
    mask = np.zeros((64, 64), bool)
    window = images.zoom_window((64, 64), 40, 40, 4)  # 16x16 pixels at rows 32.., columns 32..
    assert (window.top, window.left, window.height, window.width) == (32, 32, 16, 16)
    canvas = np.zeros((160, 160, 4), np.uint8)  # 10 screen pixels per frame pixel
    canvas[50:60, 30:80, 3] = 255  # covers window row 5, columns 3..7
    edited = images.edited_mask(mask, canvas, window)
    expected = np.zeros_like(mask)
    expected[37, 35:40] = True
    assert np.array_equal(edited, expected)


def test_erase_strokes_remove_only_the_painted_pixels():
    mask = np.ones((8, 8), bool)
    window = images.Window(0, 0, 8, 8)
    canvas = np.zeros((8, 8, 4), np.uint8)
    canvas[2, 3, 3] = 191
    edited = images.edited_mask(mask, canvas, window, erase=True)
    assert edited.sum() == 63 and not edited[2, 3]
    assert mask.all(), "the input mask is left untouched"


def test_the_faint_antialiased_edge_of_a_stroke_is_not_paint():
    canvas = np.zeros((4, 4, 4), np.uint8)
    canvas[1, :, 3] = 191  # the stroke
    canvas[0, :, 3] = 71  # its anti-aliased fringe
    painted = images.painted_pixels(canvas, (4, 4))
    assert painted[1].all() and not painted[0].any()
    assert images.painted_pixels(canvas, (4, 4), min_alpha=1)[0].all()


def test_zoom_window_stays_inside_the_frame():
    window = images.zoom_window((100, 200), 0, 199, 4)
    assert (window.top, window.left, window.height, window.width) == (0, 150, 25, 50)
    with pytest.raises(ValueError):
        images.zoom_window((100, 200), 0, 0, 0.5)


def test_canvas_size_uses_whole_number_enlargement_or_shrinks_big_windows():
    assert images.canvas_size(images.Window(0, 0, 64, 32), 520) == (512, 256)
    assert images.canvas_size(images.Window(0, 0, 2048, 1024), 512) == (512, 256)


def test_thumbnail_keeps_single_bright_pixels_visible():
    image = np.zeros((400, 400), np.uint8)
    image[201, 333] = 255
    small = images.thumbnail(image, 100)
    assert small.shape == (100, 100) and small.max() == 255


def test_overlay_blends_only_mask_pixels():
    gray = np.full((4, 4), 100, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    rgb = images.overlay_mask(gray, mask, (255, 0, 0), 0.5)
    assert tuple(rgb[1, 2]) == (178, 50, 50) and tuple(rgb[0, 0]) == (100, 100, 100)


def test_sixteen_bit_frames_are_stretched_not_truncated():
    frame = np.linspace(1000, 1100, 64 * 64).reshape(64, 64).astype(np.uint16)
    gray = images.render_frame(frame, 0, 100)
    assert gray.min() == 0 and gray.max() == 255


def test_difference_colours():
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[1, 0, 1, 0]], bool)
    rgb = images.difference_image(a, b)
    assert [tuple(p) for p in rgb[0]] == [images.BOTH_COLOR, images.ONLY_A_COLOR, images.ONLY_B_COLOR, (0, 0, 0)]


def test_a_link_with_a_frame_id_opens_that_frame(home):
    app()
    other = dataset_without_masks()
    target = db.list_frames(other.id)[2]
    at = app()
    at.query_params["frame"] = str(target.id)
    at.switch_page("pages/2_Label.py").run()
    assert not at.exception
    assert at.selectbox(key="lbl_frame").value == target.id
    assert at.session_state["dataset_id"] == other.id
