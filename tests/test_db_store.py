"""The store on SQLite and PostgreSQL: imports, mask revisions, results, migrations."""

from __future__ import annotations

import io as bytes_io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import inspect, select, text, update

import db
from db.models import Base, EpochMetric, Evaluation, EvaluationResultRow, Run, utcnow
from db.session import get_engine, session_scope
from db_fixtures import make_layout, postgres_cluster, sqlite_store, store  # noqa: F401
from segcore import io


def _zip_folder(folder: Path, prefix: str = "") -> bytes:
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


# --- imports -----------------------------------------------------------------------


def test_import_folder_copies_frames_and_masks_under_home(store, tmp_path):
    source = tmp_path / "original"
    make_layout(source, {"Train": 2, "Validation": 1, "Test": 1}, real=1)

    report = db.import_folder(source, name="beamtime 7")

    assert report.frames_added == {"train": 2, "validation": 1, "test": 1, "real": 1}
    assert report.masks_added == 4
    assert report.frames_without_mask == []
    frames = db.list_frames(report.dataset_id)
    assert [(f.split, f.name) for f in frames] == [
        ("train", "frame_000.png"),
        ("train", "frame_001.png"),
        ("validation", "frame_002.png"),
        ("test", "frame_003.png"),
        ("real", "real_000.png"),
    ]
    for f in frames:
        assert f.path.is_relative_to(store)  # copied, never referenced where it came from
        assert (f.height, f.width, f.dtype, f.bit_depth) == (64, 64, "uint16", 16)
        np.testing.assert_array_equal(io.read_raw(f.path), io.read_raw(source / db.SPLIT_FOLDERS[f.split] / f.name))
    train = frames[0]
    np.testing.assert_array_equal(db.current_mask(train.id), io.read_mask(source / "TrainAnnotation" / train.name))
    assert db.current_revision(train.id).source == "uploaded"
    assert db.current_mask(frames[-1].id) is None  # Real frames have no mask
    info = db.get_dataset("beamtime 7")
    assert info.frames == {"train": 2, "validation": 1, "test": 1, "real": 1}
    assert db.validation_report(report.dataset_id).ok


def test_imported_files_survive_removal_of_the_source(store, tmp_path):
    source = tmp_path / "upload"
    make_layout(source, {"Train": 1})
    report = db.import_folder(source, name="kept")
    import shutil

    shutil.rmtree(source)
    frame = db.list_frames(report.dataset_id)[0]
    assert db.read_frame(frame.id).shape == (64, 64)
    assert db.current_mask(frame.id).sum() > 0


def test_import_uploaded_files_and_later_masks(store, tmp_path):
    source = tmp_path / "src"
    make_layout(source, {"Train": 2})
    dataset = db.create_dataset("uploads")
    frames = [(p.name, p.read_bytes()) for p in sorted((source / "Train").iterdir())]

    first = db.import_files(dataset.id, "train", frames=frames)

    assert first.frames_added["train"] == 2 and first.masks_added == 0
    assert first.frames_without_mask == ["frame_000.png", "frame_001.png"]
    assert [f.revision_id for f in db.list_frames(dataset.id)] == [None, None]
    # Masks uploaded later attach to the stored frames by name; "_mask" suffix allowed.
    mask_bytes = (source / "TrainAnnotation" / "frame_001.png").read_bytes()
    second = db.import_files(dataset.id, "train", masks=[("frame_001_mask.png", mask_bytes)], author="ana")
    assert second.masks_added == 1 and second.total_frames == 0
    frame = db.list_frames(dataset.id)[1]
    revision = db.current_revision(frame.id)
    assert (revision.source, revision.author) == ("uploaded", "ana")
    np.testing.assert_array_equal(db.current_mask(frame.id), io.read_mask(source / "TrainAnnotation" / "frame_001.png"))
    assert db.validation_report(dataset.id).missing_masks == ["Train/frame_000.png"]


def test_validation_report_names_lost_frame_and_mask_files(store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 2, "Test": 1})
    dataset_id = db.import_folder(tmp_path / "src", name="t").dataset_id
    first, second, _ = db.list_frames(dataset_id)
    first.path.unlink()
    db.current_revision(second.id).path.unlink()
    report = db.validation_report(dataset_id)
    assert report.missing_files == [
        "Train/frame_000.png", f"Train/frame_001.png (mask revision {db.current_revision(second.id).id})"
    ]
    assert not report.ok


def test_import_zip_with_layout_inside_one_folder(store, tmp_path):
    source = tmp_path / "src"
    make_layout(source, {"Train": 2, "Test": 1})
    payload = _zip_folder(source, prefix="run42/")

    report = db.import_zip(payload, file_name="run42.zip")

    assert report.dataset_name == "run42"
    assert report.frames_added == {"train": 2, "validation": 0, "test": 1, "real": 0}
    assert report.masks_added == 3
    test_frame = db.list_frames(report.dataset_id, "test")[0]
    np.testing.assert_array_equal(db.current_mask(test_frame.id), io.read_mask(source / "TestAnnotation" / "frame_002.png"))
    assert not list((store / "tmp").glob("*")), "the unpacked archive must not be left behind"


def test_import_zip_from_a_file_path(store, tmp_path):
    source = tmp_path / "src"
    make_layout(source, {"Train": 1})
    archive = tmp_path / "set.zip"
    archive.write_bytes(_zip_folder(source))
    report = db.import_zip(archive, name="from path")
    assert (report.dataset_name, report.frames_added["train"]) == ("from path", 1)


def test_import_simulated_dataset(store):
    report = db.import_simulated("demo", n_train=2, n_validation=1, n_test=1, size=64, seed=3)

    assert report.frames_added == {"train": 2, "validation": 1, "test": 1, "real": 0}
    assert report.masks_added == 4
    info = db.get_dataset(report.dataset_id)
    assert info.source.startswith("simulator")
    frames = db.list_frames(report.dataset_id)
    assert all(f.bit_depth == 16 and (f.height, f.width) == (64, 64) for f in frames)
    assert sum(db.current_revision(f.id).cosmic_pixels for f in frames) > 0
    assert db.current_revision(frames[0].id).author == "simulator"


def test_import_folder_into_an_existing_dataset(store, tmp_path):
    make_layout(tmp_path / "first", {"Train": 1})
    report = db.import_folder(tmp_path / "first", name="growing")
    make_layout(tmp_path / "second", {"Test": 2}, seed=1)  # names frame_000, frame_001 again, other split

    added = db.import_folder(tmp_path / "second", dataset_id=report.dataset_id)

    assert added.dataset_id == report.dataset_id
    assert added.frames_added == {"train": 0, "validation": 0, "test": 2, "real": 0}
    assert db.get_dataset(report.dataset_id).frames == {"train": 1, "validation": 0, "test": 2, "real": 0}
    assert len(db.list_datasets()) == 1


def test_dataset_names_are_unique(store, tmp_path):
    db.create_dataset("one")
    with pytest.raises(db.StoreError, match="already exists"):
        db.create_dataset("one")


def test_delete_dataset_removes_rows_and_files(store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 1})
    report = db.import_folder(tmp_path / "src", name="gone")
    frame = db.list_frames(report.dataset_id)[0]
    run_id = _fake_run(report.dataset_id)
    _fake_evaluation(run_id, frame, 0.5, np.zeros((64, 64), bool), store)
    folder = db.get_dataset(report.dataset_id).folder

    db.delete_dataset(report.dataset_id)

    assert db.list_datasets() == [] and db.list_runs() == [] and db.list_evaluations() == []
    with session_scope(write=False) as session:
        for table in ("frames", "mask_revisions", "evaluation_results", "run_revisions", "epoch_metrics"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    assert not folder.exists()


# --- mask revisions ------------------------------------------------------------------


def _one_frame(tmp_path) -> db.FrameRecord:
    make_layout(tmp_path / "src", {"Train": 1})
    report = db.import_folder(tmp_path / "src", name="masks")
    return db.list_frames(report.dataset_id)[0]


def test_every_saved_mask_is_kept_and_the_newest_is_current(store, tmp_path):
    frame = _one_frame(tmp_path)
    original = db.current_mask(frame.id)
    drawn = original.copy()
    drawn[0:5, 0:5] = True

    saved = db.save_mask_revision(frame.id, drawn.astype(np.uint8) * 255, source="drawn", author="ana", comment="corner")

    history = db.mask_history(frame.id)
    assert [r.id for r in history] == [saved.id, history[1].id]
    assert [(r.source, r.author) for r in history] == [("drawn", "ana"), ("uploaded", "import")]
    assert history[0].comment == "corner"
    assert history[0].cosmic_pixels == int(drawn.sum())
    np.testing.assert_array_equal(db.current_mask(frame.id), drawn)
    np.testing.assert_array_equal(db.read_revision(history[1].id), original)  # the old one is still readable
    assert history[0].path != history[1].path
    assert db.list_frames(frame.dataset_id)[0].revision_id == saved.id


def test_restore_makes_a_new_revision_copying_the_old_one(store, tmp_path):
    frame = _one_frame(tmp_path)
    original = db.current_revision(frame.id)
    db.save_mask_revision(frame.id, np.zeros((64, 64), bool), author="bob")

    restored = db.restore_revision(original.id, author="ana")

    assert restored.id > original.id
    assert restored.restored_from_id == original.id
    assert restored.comment == f"restored revision {original.id}"
    assert [r.id for r in db.mask_history(frame.id)][0] == restored.id
    assert len(db.mask_history(frame.id)) == 3
    np.testing.assert_array_equal(db.current_mask(frame.id), db.read_revision(original.id))
    assert original.path.exists()  # never overwritten


def test_predicted_mask_needs_its_run(store, tmp_path):
    frame = _one_frame(tmp_path)
    with pytest.raises(db.StoreError, match="run"):
        db.save_mask_revision(frame.id, np.zeros((64, 64), bool), source="predicted")
    with pytest.raises(db.StoreError, match="mask source"):
        db.save_mask_revision(frame.id, np.zeros((64, 64), bool), source="guessed")
    assert len(db.mask_history(frame.id)) == 1


# --- results, with rows written as a worker writes them -----------------------------------


def _fake_run(dataset_id: int, name: str = "r") -> int:
    with session_scope() as session:
        run = Run(name=name, dataset_id=dataset_id, config={"epochs": 2}, status="finished", run_dir="runs/x",
                  epochs_total=2, epochs_run=2)
        session.add(run)
        session.flush()
        return run.id


def test_epoch_metrics_one_row_per_epoch(store, tmp_path):
    from db.worker import StoreListener

    frame = _one_frame(tmp_path)
    run_id = _fake_run(frame.dataset_id)
    listener = StoreListener(run_id, tmp_path / "checkpoints")
    listener.on_epoch_end(0, {"loss": 0.9, "val_loss": 1.0, "iou": 0.1, "learning_rate": 1e-4})
    listener.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.7, "iou": 0.3, "learning_rate": 1e-4})
    listener.on_epoch_end(1, {"loss": 0.4, "val_loss": 0.6, "iou": 0.35, "learning_rate": 1e-4})  # a repeated epoch replaces

    table = db.epoch_metrics(run_id)

    assert list(table.columns) == ["epoch", "loss", "val_loss", "iou", "learning_rate"]
    assert table["epoch"].tolist() == [0, 1]
    assert table["loss"].tolist() == pytest.approx([0.9, 0.4])
    run = db.get_run(run_id)
    assert (run.best_epoch, run.best_val_loss) == (1, pytest.approx(0.6))


def _fake_evaluation(run_id: int, frame: db.FrameRecord, iou: float, pred: np.ndarray, home: Path) -> int:
    path = home / "runs" / str(run_id) / "pred.png"
    io.write_mask(path, pred)
    with session_scope() as session:
        evaluation = Evaluation(run_id=run_id, split="train", threshold=0.5, checkpoint="c", predictions_dir="p",
                                summary={"iou": {"mean": iou, "std": 0.0}}, pooled={"iou": iou})
        session.add(evaluation)
        session.flush()
        session.add(EvaluationResultRow(evaluation_id=evaluation.id, frame_id=frame.id, image=frame.name, iou=iou,
                                     precision=None, true_count=3, pred_count=2,
                                     prediction_path=path.relative_to(home).as_posix()))
        return evaluation.id


def test_evaluations_compare_and_adopt_a_prediction(store, tmp_path):
    frame = _one_frame(tmp_path)
    runs = [_fake_run(frame.dataset_id, "a"), _fake_run(frame.dataset_id, "b")]
    predicted = np.zeros((64, 64), bool)
    predicted[10:12, 10:14] = True
    evaluations = [_fake_evaluation(runs[0], frame, 0.25, predicted, store), _fake_evaluation(runs[1], frame, 0.75, predicted, store)]

    table = db.per_image_results(evaluations[0])
    assert table.loc[0, ["image", "true_count", "pred_count"]].tolist() == [frame.name, 3, 2]
    assert table.loc[0, "iou"] == 0.25 and np.isnan(table.loc[0, "precision"])
    compared = db.compare_runs(runs, split="train")
    assert compared["iou"].tolist() == [0.25, 0.75]
    per_image = db.compare_per_image(evaluations)
    assert per_image.iloc[0, 1:].tolist() == [0.25, 0.75]

    adopted = db.adopt_prediction(int(table.loc[0, "result_id"]), author="ana")
    assert (adopted.source, adopted.run_id) == ("predicted", runs[0])
    np.testing.assert_array_equal(db.current_mask(frame.id), predicted)


def test_the_latest_evaluation_of_a_run_and_every_evaluation_of_a_dataset(store, tmp_path):
    frame = _one_frame(tmp_path)
    elsewhere = db.create_dataset("elsewhere")
    a, b, c = _fake_run(frame.dataset_id, "a"), _fake_run(frame.dataset_id, "b"), _fake_run(elsewhere.id, "c")
    predicted = np.zeros((64, 64), bool)
    first = _fake_evaluation(a, frame, 0.25, predicted, store)
    second = _fake_evaluation(b, frame, 0.5, predicted, store)
    _fake_evaluation(c, frame, 0.1, predicted, store)
    third = _fake_evaluation(a, frame, 0.75, predicted, store)

    assert db.latest_evaluation(a).id == third and db.latest_evaluation(a, "train").id == third
    assert db.latest_evaluation(b).id == second
    assert db.latest_evaluation(a, "test") is None
    assert [(run.id, e.id) for run, e in db.dataset_evaluations(frame.dataset_id)] == [(a, third), (b, second), (a, first)]
    assert [run.name for run, _ in db.dataset_evaluations(elsewhere.id)] == ["c"]
    assert db.dataset_evaluations(db.create_dataset("empty").id) == []


def test_frames_without_a_mask_are_counted_per_dataset_and_in_all(store, tmp_path):
    make_layout(tmp_path / "src", {"Train": 2, "Test": 1}, real=2)
    first = db.import_folder(tmp_path / "src", name="first").dataset_id  # masks for all but the Real frames
    for name in ("a.png", "b.png", "c.png"):
        io.write_frame(tmp_path / name, np.full((16, 16), 100, np.uint16))
    db.import_files(first, "train", [tmp_path / "a.png"])
    second = db.create_dataset("second").id
    db.import_files(second, "validation", [tmp_path / "a.png", tmp_path / "b.png"])
    db.import_files(second, "real", [tmp_path / "c.png"])

    assert db.count_frames_without_mask(first) == 1
    assert db.count_frames_without_mask(second) == 2
    assert db.count_frames_without_mask() == 3
    frame = next(f for f in db.list_frames(second) if f.split == "validation")
    db.save_mask_revision(frame.id, np.zeros((16, 16), bool))
    assert db.count_frames_without_mask() == 2


def test_the_first_start_of_a_store_is_over_once_it_had_a_dataset_or_was_marked_done(store):
    assert db.first_start()
    created = db.create_dataset("mine")
    assert not db.first_start()
    db.delete_dataset(created.id)
    assert db.first_start()
    db.first_start_done()
    assert not db.first_start()


def test_uploaded_weights_keep_their_suffix_and_refuse_others(store):
    path = db.save_weights_file("my weights.weights.h5", b"abc")
    assert path.parent == db.home() / "weights" and path.name == "my_weights.weights.h5"
    assert path.read_bytes() == b"abc"
    assert db.save_weights_file("my weights.weights.h5", b"abc") == path  # the same file is reused
    other = db.save_weights_file("my weights.weights.h5", b"abcd")  # another of that name is kept apart
    assert other != path and other.name.endswith(".weights.h5") and other.read_bytes() == b"abcd"
    with pytest.raises(db.StoreError, match="must end in"):
        db.save_weights_file("notes.txt", b"abc")


# --- schema and migrations ----------------------------------------------------------------


def test_migrations_create_exactly_the_model_schema(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert differences == []
    assert version == "0011"


def test_existing_database_survives_restart_and_upgrade(store, tmp_path):
    frame = _one_frame(tmp_path)
    db.save_mask_revision(frame.id, np.ones((64, 64), bool), author="ana")
    db.reset()

    db.init_db()  # as on the next start-up

    assert [d.name for d in db.list_datasets()] == ["masks"]
    assert len(db.mask_history(frame.id)) == 2
    tables = set(inspect(get_engine()).get_table_names())
    assert {"datasets", "frames", "mask_revisions", "runs", "run_revisions", "epoch_metrics", "evaluations",
            "evaluation_results"} <= tables


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_store):
    with get_engine().connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    assert (sqlite_store / "cosmics.db").exists()


def test_timestamps_come_back_in_utc(store, tmp_path):
    before = utcnow()
    frame = _one_frame(tmp_path)
    created = db.current_revision(frame.id).created
    assert created.tzinfo is not None and created >= before.replace(microsecond=0)
    with session_scope(write=False) as session:
        assert session.scalars(select(EpochMetric)).all() == []


def test_a_later_migration_that_rebuilds_a_table_keeps_every_row(store, tmp_path):
    """A user's data survives an upgrade, even one that copies a table (SQLite's way to alter it)."""
    import shutil

    from alembic import command
    from alembic.config import Config

    from db.session import migration_connection

    frame = _one_frame(tmp_path)
    db.save_mask_revision(frame.id, np.ones((64, 64), bool), author="ana")
    scripts = tmp_path / "migrations"
    shutil.copytree(Path(db.__file__).with_name("migrations"), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(scripts))
    head = ScriptDirectory.from_config(config).get_current_head()
    (scripts / "versions" / "0099_frame_note.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"revision = '0099'\ndown_revision = '{head}'\nbranch_labels = None\ndepends_on = None\n"
        "def upgrade():\n"
        "    sqlite = op.get_bind().dialect.name == 'sqlite'\n"
        "    with op.batch_alter_table('frames', recreate='always' if sqlite else 'never') as batch:\n"
        "        batch.add_column(sa.Column('note', sa.Text(), nullable=True))\n"
        "def downgrade():\n"
        "    with op.batch_alter_table('frames') as batch:\n"
        "        batch.drop_column('note')\n"
    )

    with migration_connection(get_engine()) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    with get_engine().connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0099"
        assert connection.execute(text("SELECT count(*) FROM mask_revisions")).scalar() == 2
        assert connection.execute(text("SELECT note FROM frames")).scalar() is None
    assert [r.author for r in db.mask_history(frame.id)] == ["ana", "import"]


def _migrate(engine, revision: str, direction: str = "upgrade") -> None:
    from alembic import command
    from alembic.config import Config

    from db.session import migration_connection

    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def test_migrations_keep_a_0002_run_a_training_run_with_its_threshold_fixed(tmp_path, monkeypatch):
    """A database made at 0002 with a run in it: after the upgrade the run keeps its threshold, "fixed"
    (0003), and is a training run (0004)."""
    from db.session import make_engine

    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'cosmics.db'}"
    engine = make_engine(url)
    _migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO datasets (id, name, folder, created) VALUES (1, 'old', 'datasets/old', '2026-01-01 00:00:00')"
        ))
        connection.execute(text(
            "INSERT INTO runs (id, name, dataset_id, config, threshold, precision, status, created, run_dir, "
            "epochs_run, attempts) VALUES (7, 'old run', 1, '{\"epochs\": 3}', 0.35, 'float32', 'finished', "
            "'2026-01-01 00:00:00', 'runs/7', 3, 1)"
        ))
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    engine.dispose()
    monkeypatch.setenv("COSMICS_HOME", str(home))
    monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    db.reset()
    try:
        db.init_db()  # the app's start-up upgrades to head

        run = db.get_run(7)
        assert (run.threshold, run.threshold_source, run.precision_reason) == (0.35, "fixed", None)
        assert (run.evaluation_threshold, run.threshold_fallback) == (0.35, False)
        assert (run.name, run.config, run.precision, run.epochs_run) == ("old run", {"epochs": 3}, "float32", 3)
        assert (run.kind, run.trains) == ("train", True)
        with get_engine().connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0011"
            # The source and the kind are checked by the database too.
            with pytest.raises(Exception, match="(?i)check"):
                connection.execute(text("UPDATE runs SET threshold_source = 'guessed' WHERE id = 7"))
        with get_engine().connect() as connection, pytest.raises(Exception, match="(?i)check"):
            connection.execute(text("UPDATE runs SET kind = 'guessed' WHERE id = 7"))
    finally:
        db.reset()


def test_migration_0004_downgrades_and_upgrades_keeping_an_la_cosmic_run(store, tmp_path, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # no process: only the record
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 1})
    run_id = db.start_lacosmic_run(db.import_folder(tmp_path / "src", name="t").dataset_id, tune=False)

    _migrate(get_engine(), "0003", "downgrade")
    assert "kind" not in {c["name"] for c in inspect(get_engine()).get_columns("runs")}
    _migrate(get_engine(), "head")

    # Without the column it read as a training run; that is what it is again.
    assert (db.get_run(run_id).kind, len(db.list_runs())) == ("train", 1)


def test_a_resumed_run_starts_its_interrupted_epoch_from_the_first_batch(store, tmp_path, monkeypatch):
    from db import runs as run_manager
    from db.models import Run

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # no process: only the record
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 1})
    run_id = db.start_run({"epochs": 4, "steps_per_epoch": 100}, db.import_folder(tmp_path / "src", name="t").dataset_id)
    with db.session_scope() as session:  # killed 80 batches into its third epoch
        session.execute(update(Run).where(Run.id == run_id).values(
            status="failed", epochs_run=2, current_step=80, epochs_total=4, steps_per_epoch=100))
    assert db.get_run(run_id).progress == 0.5  # ended runs count whole epochs
    db.resume_run(run_id)
    resumed = db.get_run(run_id)
    assert (resumed.status, resumed.current_step, resumed.progress) == ("queued", 0, 0.5)


def test_ids_are_never_handed_out_twice(store, tmp_path, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # no process: only the record
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 1})
    dataset_id = db.import_folder(tmp_path / "src", name="t").dataset_id
    first, newest = (db.start_lacosmic_run(dataset_id, tune=False) for _ in range(2))
    for run_id in (first, newest):
        db.cancel_run(run_id)
    db.delete_run(newest)
    again = db.start_lacosmic_run(dataset_id, tune=False)
    assert again == newest + 1
    db.cancel_run(again)

    # Before migration 0006, SQLite gave the deleted id again; after it, runs made earlier keep their ids.
    _migrate(get_engine(), "0005", "downgrade")
    _migrate(get_engine(), "head")
    assert sorted(r.id for r in db.list_runs()) == [first, again]
    db.delete_dataset(dataset_id)
    assert db.import_folder(tmp_path / "src", name="u").dataset_id == dataset_id + 1


def test_every_migration_downgrades_to_an_empty_store_and_upgrades_again(store):
    _migrate(get_engine(), "base", "downgrade")
    assert set(inspect(get_engine()).get_table_names()) <= {"alembic_version"}
    _migrate(get_engine(), "head")
    assert {"datasets", "frames", "runs"} <= set(inspect(get_engine()).get_table_names())
    assert db.list_datasets() == []


def test_start_run_records_where_its_threshold_comes_from(store, tmp_path, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # no process: only the record
    make_layout(tmp_path / "src", {"Train": 1, "Validation": 1, "Test": 1})
    dataset_id = db.import_folder(tmp_path / "src", name="t").dataset_id

    chosen = db.get_run(db.start_run({"epochs": 1}, dataset_id))
    fixed = db.get_run(db.start_run({"epochs": 1}, dataset_id, threshold=0.3))

    assert (chosen.threshold, chosen.threshold_source, chosen.evaluation_threshold) == (None, "validation", 0.5)
    assert chosen.threshold_fallback
    assert (fixed.threshold, fixed.threshold_source, fixed.evaluation_threshold) == (0.3, "fixed", 0.3)
    table = db.runs_table().set_index("run_id")
    assert table.loc[fixed.id, "threshold_source"] == "fixed" and table.loc[chosen.id, "threshold_source"] == "validation"
    for bad in (0.0, 1.0, float("nan"), "half"):
        with pytest.raises(db.StoreError, match="threshold"):
            db.start_run({"epochs": 1}, dataset_id, threshold=bad)
