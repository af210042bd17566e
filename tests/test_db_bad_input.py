"""Bad input is refused with a message naming the file, and nothing already stored changes."""

from __future__ import annotations

import io as bytes_io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import db
from db_fixtures import make_layout, postgres_cluster, sqlite_store, store, write_png_bomb  # noqa: F401
from segcore import io


def _snapshot(home: Path):
    """Everything the store holds: rows as the app sees them, and every file under home."""
    datasets = db.list_datasets()
    tables = {d.id: db.frames_table(d.id).to_dict("records") for d in datasets}
    files = sorted(
        (p.relative_to(home).as_posix(), p.stat().st_size)
        for p in home.rglob("*")
        if p.is_file() and not p.name.startswith("cosmics.db")
    )
    return datasets, tables, files


@pytest.fixture
def stored(store, tmp_path):
    """A store already holding one dataset, and a function telling whether anything changed."""
    make_layout(tmp_path / "existing", {"Train": 2, "Test": 1})
    report = db.import_folder(tmp_path / "existing", name="existing")
    before = _snapshot(store)

    def unchanged() -> bool:
        return _snapshot(store) == before

    return report.dataset_id, unchanged


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    return io.encode_png(array)


FRAME = np.full((64, 64), 150, np.uint16)
MASK = np.zeros((64, 64), np.uint8)


# --- ZIP ---------------------------------------------------------------------------


@pytest.mark.parametrize("evil", ["../escaped.png", "Train/../../escaped.png", "/tmp/escaped.png", "C:/escaped.png"])
def test_zip_entry_escaping_the_folder_is_refused(stored, tmp_path, evil):
    dataset_id, unchanged = stored
    payload = _zip({"Train/frame_100.png": _png(FRAME), evil: _png(FRAME)})

    with pytest.raises(db.RefusedFile) as refused:
        db.import_zip(payload, name="evil", file_name="evil.zip")

    assert refused.value.file == f"evil.zip:{evil}"
    assert "outside the import folder" in str(refused.value)
    assert unchanged()
    assert not (tmp_path / "escaped.png").exists() and not Path("/tmp/escaped.png").exists()


def test_zip_symlink_entry_is_refused(stored):
    _, unchanged = stored
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("Train/frame_100.png")
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(db.RefusedFile, match="symbolic link") as refused:
        db.import_zip(buffer.getvalue(), file_name="links.zip")
    assert refused.value.file == "links.zip:Train/frame_100.png"
    assert unchanged()


def test_zip_entry_larger_than_any_frame_is_refused_before_anything_is_unpacked(stored, monkeypatch):
    _, unchanged = stored
    monkeypatch.setenv("COSMICS_MAX_FRAME_PIXELS", str(64 * 64))  # a frame file needs at most 32 kB + 1 MiB
    payload = _zip({"Train/frame_100.png": _png(FRAME), "Train/frame_101.npy": b"\0" * 2_000_000})
    assert len(payload) < 50_000
    with pytest.raises(db.RefusedFile, match=r"2,000,000 bytes, more than a frame within the size limit \(4,096"):
        db.import_zip(payload, file_name="big.zip")
    assert unchanged()


def test_zip_that_unpacks_too_many_times_its_size_is_refused_before_anything_is_unpacked(stored, monkeypatch):
    from db import zipimport

    _, unchanged = stored
    monkeypatch.setattr(zipimport, "RATIO_CHECK_BYTES", 1_000_000)  # the same rule, at a test's scale
    payload = _zip({"Train/frame_100.png": _png(FRAME), "Train/frame_101.npy": b"\0" * 3_000_000})
    with pytest.raises(db.RefusedFile, match=r"more than 200 times as much"):
        db.import_zip(payload, file_name="packed.zip")
    assert unchanged()


def test_zip_size_limit_comes_from_the_setting(stored, monkeypatch):
    _, unchanged = stored
    monkeypatch.setenv("COSMICS_MAX_ZIP_BYTES", "1000000")
    with pytest.raises(db.RefusedFile, match="more than the limit of 1,000,000 bytes"):
        db.import_zip(_zip({"Train/frame_100.npy": b"\0" * 1_500_000}), file_name="bomb.zip")
    monkeypatch.setenv("COSMICS_MAX_ZIP_BYTES", "lots")
    with pytest.raises(db.StoreError, match="COSMICS_MAX_ZIP_BYTES must be a positive whole number"):
        db.import_zip(_zip({"Train/frame_100.png": _png(FRAME)}), file_name="small.zip")
    assert unchanged()


@pytest.mark.parametrize(
    "name, problem",
    [
        ("frame\0.png", "control characters"),
        ("f" * 300 + ".png", "at most 200 bytes"),
        ("...png", "needs a name before its extension"),
        (".hidden.png", "must not start with"),
    ],
)
def test_upload_names_that_cannot_be_stored_are_refused(stored, name, problem):
    dataset_id, unchanged = stored
    with pytest.raises(db.RefusedFile, match=problem):
        db.import_files(dataset_id, "train", frames=[(name, _png(FRAME))])
    assert unchanged()


def test_uploaded_file_larger_than_any_frame_is_refused_unread(stored, monkeypatch):
    dataset_id, unchanged = stored
    monkeypatch.setenv("COSMICS_MAX_FRAME_PIXELS", str(64 * 64))
    with pytest.raises(db.RefusedFile, match=r"frame_100.npy: file of 2,000,000 bytes is larger than any frame"):
        db.import_files(dataset_id, "train", frames=[("frame_100.npy", b"\0" * 2_000_000)])
    assert unchanged()


def test_zip_bomb_is_stopped_at_the_size_limit(stored):
    _, unchanged = stored
    payload = _zip({"Train/frame_100.npy": b"\0" * 5_000_000})  # 5 MB of zeros packs to a few kB
    assert len(payload) < 50_000
    with pytest.raises(db.RefusedFile, match="more than the limit") as refused:
        db.import_zip(payload, file_name="bomb.zip", max_bytes=1_000_000)
    assert refused.value.file == "bomb.zip"
    assert unchanged()


def test_not_a_zip_is_refused(stored):
    _, unchanged = stored
    with pytest.raises(db.RefusedFile, match="not a ZIP") as refused:
        db.import_zip(b"just some text", file_name="notes.zip")
    assert refused.value.file == "notes.zip"
    assert unchanged()


# --- files that are not images, or are dangerous ones ----------------------------------


def test_text_file_among_frames_is_refused(stored, tmp_path):
    _, unchanged = stored
    make_layout(tmp_path / "new", {"Train": 1})
    (tmp_path / "new" / "Train" / "notes.txt").write_text("beamtime notes")
    with pytest.raises(db.RefusedFile, match="not an image file") as refused:
        db.import_folder(tmp_path / "new", name="new")
    assert refused.value.file.endswith("Train/notes.txt")
    assert unchanged()


def test_file_named_png_that_is_not_an_image_is_refused(stored):
    dataset_id, unchanged = stored
    with pytest.raises(db.RefusedFile, match="unreadable or corrupt") as refused:
        db.import_files(dataset_id, "train", frames=[("frame_100.png", _png(FRAME)), ("frame_101.png", b"<html>")])
    assert refused.value.file == "frame_101.png"
    assert unchanged()


def test_png_decompression_bomb_is_refused(stored, tmp_path):
    dataset_id, unchanged = stored
    bomb = tmp_path / "bomb" / "Train" / "frame_100.png"
    write_png_bomb(bomb)
    assert bomb.stat().st_size < 1000

    with pytest.raises(db.RefusedFile) as refused:
        db.import_folder(tmp_path / "bomb", name="bomb")
    assert refused.value.file == str(bomb)
    assert "too large" in str(refused.value) or "larger than the limit" in str(refused.value)

    with pytest.raises(db.RefusedFile) as refused_in_zip:
        db.import_zip(_zip({"Train/frame_100.png": bomb.read_bytes()}), file_name="bomb.zip")
    assert refused_in_zip.value.file == "bomb.zip:Train/frame_100.png"
    assert unchanged()


# --- sizes, names, mask values ----------------------------------------------------------


def test_mask_of_another_size_is_refused(stored, tmp_path):
    _, unchanged = stored
    make_layout(tmp_path / "new", {"Train": 2})
    io.write_mask(tmp_path / "new" / "TrainAnnotation" / "frame_001.png", np.zeros((32, 48), np.uint8))
    with pytest.raises(db.RefusedFile, match="mask is 32x48 but its frame is 64x64") as refused:
        db.import_folder(tmp_path / "new", name="new")
    assert refused.value.file.endswith("TrainAnnotation/frame_001.png")
    assert unchanged()


def test_two_frames_with_one_name_are_refused(stored, tmp_path):
    _, unchanged = stored
    make_layout(tmp_path / "new", {"Train": 1})
    io.write_frame(tmp_path / "new" / "Train" / "frame_000.tif", FRAME)
    with pytest.raises(db.RefusedFile, match="same name") as refused:
        db.import_folder(tmp_path / "new", name="new")
    assert Path(refused.value.file).name in ("frame_000.png", "frame_000.tif")
    assert unchanged()


def test_frame_already_in_the_split_is_refused(stored):
    dataset_id, unchanged = stored
    with pytest.raises(db.RefusedFile, match="already in the train split") as refused:
        db.import_files(dataset_id, "train", frames=[("frame_000.png", _png(FRAME))])
    assert refused.value.file == "frame_000.png"
    with pytest.raises(db.RefusedFile, match="uploaded twice"):
        db.import_files(dataset_id, "test", frames=[("x.png", _png(FRAME)), ("x.png", _png(FRAME))])
    assert unchanged()


def test_mask_without_a_frame_is_refused(stored):
    dataset_id, unchanged = stored
    with pytest.raises(db.RefusedFile, match="no frame named 'frame_999'") as refused:
        db.import_files(dataset_id, "train", masks=[("frame_999.png", _png(MASK))])
    assert refused.value.file == "frame_999.png"
    assert unchanged()


@pytest.mark.parametrize(
    "mask, problem",
    [
        (np.full((64, 64), 0.5, np.float32), "values other than whole numbers"),
        (np.full((64, 64), -1, np.int16), "negative values"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
        (np.zeros((64, 64), np.complex64), "complex"),
    ],
    ids=["probabilities", "negative", "nan", "complex"],
)
def test_mask_with_unexpected_values_is_refused(stored, mask, problem):
    dataset_id, unchanged = stored
    payload = bytes_io.BytesIO()
    np.save(payload, mask)
    with pytest.raises(db.RefusedFile, match=problem) as refused:
        db.import_files(dataset_id, "train", masks=[("frame_000.npy", payload.getvalue())])
    assert refused.value.file == "frame_000.npy"
    assert unchanged()


def test_saving_a_bad_mask_array_changes_nothing(stored):
    dataset_id, unchanged = stored
    frame = db.list_frames(dataset_id)[0]
    with pytest.raises(db.RefusedFile, match="values other than whole numbers") as refused:
        db.save_mask_revision(frame.id, np.full((64, 64), 0.3))
    assert refused.value.file == f"mask for {frame.name}"
    with pytest.raises(db.RefusedFile, match="mask is 64x32"):
        db.save_mask_revision(frame.id, np.zeros((64, 32), bool))
    assert unchanged()


def test_uploaded_name_with_folders_is_refused(stored):
    dataset_id, unchanged = stored
    with pytest.raises(db.RefusedFile, match="without folders"):
        db.import_files(dataset_id, "train", frames=[("../../frame_100.png", _png(FRAME))])
    assert unchanged()


# --- crashes while saving a mask ----------------------------------------------------------


def test_failed_mask_write_leaves_previous_revision_current(stored, monkeypatch):
    dataset_id, unchanged = stored
    frame = db.list_frames(dataset_id)[0]
    previous = db.current_mask(frame.id)

    def broken_write(path, data):
        Path(path).write_bytes(b"\x89PNG half")  # what a crash mid-write would leave...
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(io, "_atomic_write", broken_write)
        with pytest.raises(db.StoreError, match="frame_000: the mask could not be saved: disk full"):
            db.save_mask_revision(frame.id, np.ones((64, 64), bool))

    assert unchanged()  # ...is removed again, and no row points at it
    np.testing.assert_array_equal(db.current_mask(frame.id), previous)


@pytest.mark.slow
def test_process_killed_mid_save_leaves_previous_revision_current_and_readable(stored):
    dataset_id, _ = stored
    frame = db.list_frames(dataset_id)[0]
    previous = db.current_revision(frame.id)
    # A process that dies (no clean-up at all) after writing the new file, before committing its row.
    script = textwrap.dedent(
        f"""
        import os, numpy as np, db, db.masks
        db.masks.revision_row = lambda *a, **k: os._exit(9)
        db.save_mask_revision({frame.id}, np.ones((64, 64), bool), author="crash")
        """
    )
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=repo, timeout=120, capture_output=True)
    assert result.returncode == 9, result.stderr.decode()[-2000:]

    db.reset()
    current = db.current_revision(frame.id)
    assert current.id == previous.id
    np.testing.assert_array_equal(db.current_mask(frame.id), io.read_mask(previous.path))
    assert len(db.mask_history(frame.id)) == 1


def test_server_folders_are_off_unless_import_roots_are_configured(stored, tmp_path, monkeypatch):
    _, unchanged = stored
    make_layout(tmp_path / "roots" / "allowed", {"Train": 1})
    monkeypatch.delenv(db.IMPORT_ROOTS_ENV, raising=False)
    assert db.import_roots() == []
    with pytest.raises(db.StoreError, match="importing folders on the server is off"):
        db.import_server_folder(tmp_path / "roots" / "allowed")
    assert unchanged()


def test_server_folder_outside_the_roots_is_refused_without_echoing_it(stored, tmp_path, monkeypatch):
    _, unchanged = stored
    root = tmp_path / "roots"
    make_layout(root / "allowed", {"Train": 1})
    make_layout(tmp_path / "secret", {"Train": 1})
    (root / "escape").symlink_to(tmp_path / "secret")
    monkeypatch.setenv(db.IMPORT_ROOTS_ENV, os.pathsep.join([str(root), str(tmp_path / "other")]))
    assert db.import_roots() == [root.resolve(), (tmp_path / "other").resolve()]
    for typed in (tmp_path / "secret", root / "escape", root / ".." / "secret", "relative/path", "\x00"):
        with pytest.raises(db.StoreError) as refused:
            db.import_server_folder(typed)
        assert "secret" not in str(refused.value) and "relative" not in str(refused.value)
    assert unchanged()
    report = db.import_server_folder(f"  {root / 'allowed'}  ", name="allowed")
    assert report.frames_added["train"] == 1 and db.get_dataset("allowed").frames["train"] == 1


# --- the store under faults ------------------------------------------------------


def test_a_read_only_store_lists_its_data_and_refuses_writes_with_a_store_error(sqlite_store, tmp_path, monkeypatch):
    make_layout(tmp_path / "src", {"Train": 2})
    dataset_id = db.import_folder(tmp_path / "src", name="kept").dataset_id
    before = [d.name for d in db.list_datasets()], db.frames_table(dataset_id).to_dict("records")

    # The same file opened read-only: reads work, no migration is attempted.
    monkeypatch.setenv("COSMICS_DB_URL", f"sqlite:///file:{sqlite_store / 'cosmics.db'}?mode=ro&uri=true")
    db.reset()
    assert ([d.name for d in db.list_datasets()], db.frames_table(dataset_id).to_dict("records")) == before
    with pytest.raises(db.StoreUnavailable, match=r"cannot be used: attempt to write a readonly database"):
        db.create_dataset("new")

    monkeypatch.delenv("COSMICS_DB_URL")
    db.reset()
    assert [d.name for d in db.list_datasets()] == before[0]


def test_an_unreachable_database_is_a_store_error_without_its_password(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMICS_HOME", str(tmp_path / "home"))
    # a port nothing listens on; connect_timeout keeps a silent server from hanging the call
    monkeypatch.setenv("COSMICS_DB_URL", "postgresql+psycopg://user:secret@127.0.0.1:9/none?connect_timeout=2")
    db.reset()
    try:
        with pytest.raises(db.StoreUnavailable, match=r"the store postgresql\+psycopg://user:\*\*\*@127.0.0.1:9/none") as error:
            db.list_datasets()
        assert "secret" not in str(error.value)
    finally:
        db.reset()


def test_a_database_server_that_never_answers_is_given_up_after_the_connect_timeout(tmp_path, monkeypatch):
    import socket

    from db import session

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # connections complete, but nothing is ever said
    monkeypatch.setattr(session, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setenv("COSMICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COSMICS_DB_URL", f"postgresql+psycopg://user@127.0.0.1:{silent.getsockname()[1]}/none")
    db.reset()
    try:
        with pytest.raises(db.StoreUnavailable, match="timeout"):
            db.list_datasets()
    finally:
        silent.close()
        db.reset()


def test_a_mask_credited_to_a_run_that_does_not_exist_is_refused(stored):
    dataset_id, unchanged = stored
    frame = db.list_frames(dataset_id)[0]
    with pytest.raises(db.NotFound, match="run 999 does not exist; the mask of frame"):
        db.save_mask_revision(frame.id, np.zeros((frame.height, frame.width), bool), source="predicted", run_id=999)
    assert unchanged()


def test_an_import_names_every_bad_file_not_only_the_first(stored, tmp_path):
    _, unchanged = stored
    source = tmp_path / "several"
    make_layout(source, {"Train": 3, "Test": 1})
    (source / "Train" / "frame_001.png").write_bytes(b"<html>not a frame</html>")
    (source / "Train" / "frame_002.png").write_bytes((source / "Test" / "frame_003.png").read_bytes()[:100])
    io.write_mask(source / "TestAnnotation" / "frame_003.png", np.zeros((10, 10), bool))
    with pytest.raises(db.RefusedFiles) as refused:
        db.import_folder(source, name="several")
    names = [Path(r.file).relative_to(source).as_posix() for r in refused.value.refused]
    assert names == ["Train/frame_001.png", "Train/frame_002.png", "TestAnnotation/frame_003.png"]
    message = str(refused.value)
    assert message.startswith("3 files refused:") and str(db.home()) not in message  # never the staging copy
    assert refused.value.file == str(source / "Train" / "frame_001.png")
    assert unchanged()


def test_a_full_disk_while_saving_a_mask_keeps_every_earlier_revision(stored, monkeypatch):
    import errno

    from segcore import io as segcore_io

    dataset_id, unchanged = stored
    frame = db.list_frames(dataset_id)[0]

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segcore_io.os, "fsync", disk_full)
    with pytest.raises(db.StoreError, match=r"the mask could not be saved: No space left on device"):
        db.save_mask_revision(frame.id, np.ones((frame.height, frame.width), bool), author="ana")
    assert unchanged()  # no new revision, no half-written or temporary file left
