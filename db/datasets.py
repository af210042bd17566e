"""Datasets and their frames: listing, reading, checking, creating and deleting.

Frames are never changed after import; their masks live in :mod:`db.masks` as
revisions. Imports are in :mod:`db.imports` and :mod:`db.zipimport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from segcore import io
from segcore.data import SPLIT_FOLDERS

from .errors import NotFound, StoreError
from .models import ACTIVE_STATUSES, SPLITS, Dataset, Frame, MaskRevisionRow, PredictionJob, Run
from .paths import from_stored, remove_tree, slug, to_stored, token
from .session import home, session_scope

__all__ = [
    "SPLITS",
    "SPLIT_FOLDERS",
    "DatasetInfo",
    "FrameRecord",
    "ImportReport",
    "ValidationReport",
    "count_frames_without_mask",
    "create_dataset",
    "delete_dataset",
    "first_start",
    "first_start_done",
    "frame_path",
    "frames_table",
    "get_dataset",
    "get_frame",
    "list_datasets",
    "list_frames",
    "read_frame",
    "validation_report",
]



@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    folder: Path
    source: str | None
    created: datetime
    frames: dict[str, int]

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())


@dataclass(frozen=True)
class FrameRecord:
    id: int
    dataset_id: int
    split: str
    name: str
    stem: str
    path: Path
    height: int
    width: int
    dtype: str
    bit_depth: int
    created: datetime
    revision_id: int | None  # the current mask revision; None when the frame has no mask


@dataclass(frozen=True)
class ImportReport:
    dataset_id: int
    dataset_name: str
    frames_added: dict[str, int]
    masks_added: int
    frames_without_mask: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def total_frames(self) -> int:
        return sum(self.frames_added.values())


@dataclass(frozen=True)
class ValidationReport:
    dataset_id: int
    frames: dict[str, int]
    missing_masks: list[str]
    size_mismatches: list[str]
    missing_files: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing_masks or self.size_mismatches or self.missing_files)

    def problems(self) -> list[str]:
        """One readable line per problem, naming the file."""
        return (
            [f"{name}: frame has no mask" for name in self.missing_masks]
            + list(self.size_mismatches)
            + [f"{name}: file is missing from the data folder" for name in self.missing_files]
        )


# --- reading -------------------------------------------------------------------


def check_split(split: str) -> str:
    value = (split or "").lower()
    if value not in SPLITS:
        raise StoreError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return value


def _dataset_info(session, dataset: Dataset) -> DatasetInfo:
    counts = dict(
        session.execute(
            select(Frame.split, func.count(Frame.id)).where(Frame.dataset_id == dataset.id).group_by(Frame.split)
        ).all()
    )
    return DatasetInfo(
        id=dataset.id,
        name=dataset.name,
        folder=from_stored(dataset.folder),
        source=dataset.source,
        created=dataset.created,
        frames={split: int(counts.get(split, 0)) for split in SPLITS},
    )


def get_dataset_row(session, id_or_name: int | str) -> Dataset:
    if isinstance(id_or_name, str) and not id_or_name.isdigit():
        dataset = session.scalars(select(Dataset).where(Dataset.name == id_or_name)).first()
    else:
        dataset = session.get(Dataset, int(id_or_name))
    if dataset is None:
        raise NotFound(f"dataset {id_or_name!r} does not exist")
    return dataset


def list_datasets() -> list[DatasetInfo]:
    """Every dataset, oldest first, with its frame count per split."""
    with session_scope(write=False) as session:
        return [_dataset_info(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.id))]


def get_dataset(id_or_name: int | str) -> DatasetInfo:
    with session_scope(write=False) as session:
        return _dataset_info(session, get_dataset_row(session, id_or_name))


#: Written into ``COSMICS_HOME`` when its first start is done (the app's demo dataset made), so
#: deleting every dataset later does not bring the demo back.
FIRST_START_MARKER = ".demo_created"


def first_start() -> bool:
    """Whether this store never had a dataset: none is stored and its first start was never marked done."""
    return not (home() / FIRST_START_MARKER).exists() and not list_datasets()


def first_start_done() -> None:
    """Mark the store's first start done: :func:`first_start` is False from now on."""
    home().mkdir(parents=True, exist_ok=True)
    (home() / FIRST_START_MARKER).touch()


def count_frames_without_mask(dataset_id: int | None = None) -> int:
    """Train, validation and test frames that have no mask yet (of one dataset, or all); Real frames never need one."""
    with session_scope(write=False) as session:
        query = (
            select(func.count(Frame.id))
            .where(Frame.split != "real", ~select(MaskRevisionRow.id).where(MaskRevisionRow.frame_id == Frame.id).exists())
        )
        if dataset_id is not None:
            query = query.where(Frame.dataset_id == dataset_id)
        return int(session.scalar(query))


def _current_revisions(dataset_id: int):
    """Subquery: frame_id -> id of its newest revision."""
    return (
        select(MaskRevisionRow.frame_id, func.max(MaskRevisionRow.id).label("revision_id"))
        .join(Frame, Frame.id == MaskRevisionRow.frame_id)
        .where(Frame.dataset_id == dataset_id)
        .group_by(MaskRevisionRow.frame_id)
        .subquery()
    )


def _frame_record(frame: Frame, revision_id: int | None) -> FrameRecord:
    return FrameRecord(
        id=frame.id,
        dataset_id=frame.dataset_id,
        split=frame.split,
        name=frame.name,
        stem=frame.stem,
        path=from_stored(frame.path),
        height=frame.height,
        width=frame.width,
        dtype=frame.dtype,
        bit_depth=frame.bit_depth,
        created=frame.created,
        revision_id=revision_id,
    )


def list_frames(dataset_id: int, split: str | None = None) -> list[FrameRecord]:
    """The dataset's frames (of one split, or all) ordered by split and name."""
    with session_scope(write=False) as session:
        get_dataset_row(session, dataset_id)
        current = _current_revisions(dataset_id)
        query = (
            select(Frame, current.c.revision_id)
            .outerjoin(current, current.c.frame_id == Frame.id)
            .where(Frame.dataset_id == dataset_id)
        )
        if split is not None:
            query = query.where(Frame.split == check_split(split))
        rows = session.execute(query).all()
    order = {s: i for i, s in enumerate(SPLITS)}
    records = [_frame_record(frame, revision_id) for frame, revision_id in rows]
    return sorted(records, key=lambda r: (order[r.split], r.name))


def get_frame(frame_id: int) -> FrameRecord:
    with session_scope(write=False) as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            raise NotFound(f"frame {frame_id} does not exist")
        revision_id = session.scalar(select(func.max(MaskRevisionRow.id)).where(MaskRevisionRow.frame_id == frame_id))
        return _frame_record(frame, revision_id)


def frame_path(frame_id: int) -> Path:
    return get_frame(frame_id).path


def read_frame(frame_id: int) -> np.ndarray:
    """The frame's pixels as float32 (H, W) detector values."""
    return io.read_frame(frame_path(frame_id))


def dataset_hot_pixels(dataset_id: int) -> dict:
    """The dataset's hot pixels (:mod:`segcore.hotpixels`: single pixels that stand out in at least half of
    its frames of one size, from at least ten), which its proposals and evaluations keep out of the masks."""
    from segcore.hotpixels import hot_pixels_of_set

    with session_scope(write=False) as session:
        rows = session.execute(
            select(Frame.path, Frame.height, Frame.width).where(Frame.dataset_id == dataset_id).order_by(Frame.id)
        ).all()
    shapes = {str(from_stored(path)): (height, width) for path, height, width in rows}
    return hot_pixels_of_set(list(shapes), io.read_frame, shapes.get)[0]  # unreadable frames: their own job says so


def frames_table(dataset_id: int, split: str | None = None) -> pd.DataFrame:
    """One row per frame with its current mask's provenance, for tables in the app."""
    frames = list_frames(dataset_id, split)
    revision_ids = [f.revision_id for f in frames if f.revision_id is not None]
    revisions: dict[int, MaskRevisionRow] = {}
    if revision_ids:
        with session_scope(write=False) as session:
            rows = session.scalars(select(MaskRevisionRow).where(MaskRevisionRow.id.in_(revision_ids)))
            revisions = {row.id: row for row in rows}
    records = []
    for f in frames:
        rev = revisions.get(f.revision_id) if f.revision_id is not None else None
        records.append(
            {
                "frame_id": f.id,
                "split": f.split,
                "name": f.name,
                "height": f.height,
                "width": f.width,
                "bit_depth": f.bit_depth,
                "revision_id": f.revision_id,
                "mask_source": rev.source if rev else None,
                "mask_run_id": rev.run_id if rev else None,
                "mask_author": rev.author if rev else None,
                "mask_saved": rev.created if rev else None,
                "cosmic_pixels": rev.cosmic_pixels if rev else None,
            }
        )
    columns = ["frame_id", "split", "name", "height", "width", "bit_depth", "revision_id", "mask_source",
               "mask_run_id", "mask_author", "mask_saved", "cosmic_pixels"]
    return pd.DataFrame.from_records(records, columns=columns)


def validation_report(dataset_id: int) -> ValidationReport:
    """What would stop or distort training: frames without masks, size mismatches, lost files.

    Mask sizes are read from the PNG headers, so this is quick even for large datasets.
    """
    frames = list_frames(dataset_id)
    with session_scope(write=False) as session:
        ids = [f.revision_id for f in frames if f.revision_id is not None]
        paths = dict(session.execute(select(MaskRevisionRow.id, MaskRevisionRow.path).where(MaskRevisionRow.id.in_(ids))).all()) if ids else {}
    counts = {split: 0 for split in SPLITS}
    missing_masks, mismatches, missing_files = [], [], []
    for f in frames:
        counts[f.split] += 1
        label = f"{SPLIT_FOLDERS[f.split]}/{f.name}"
        if not io.frame_file(f.path).exists():
            missing_files.append(label)
            continue
        if f.revision_id is None:
            if f.split != "real":
                missing_masks.append(label)
            continue
        mask_path = from_stored(paths[f.revision_id])
        if not mask_path.exists():
            missing_files.append(f"{label} (mask revision {f.revision_id})")
            continue
        shape = io.image_shape(mask_path)
        if tuple(shape) != (f.height, f.width):
            mismatches.append(f"{label}: mask is {shape[0]}x{shape[1]} but the frame is {f.height}x{f.width}")
    return ValidationReport(dataset_id, counts, missing_masks, mismatches, missing_files)


# --- creating and deleting --------------------------------------------------------


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise StoreError("a dataset needs a name")
    if len(name) > 200:
        raise StoreError(f"dataset name is {len(name)} characters long; at most 200 are allowed")
    return name


def name_taken(session, name: str) -> bool:
    return session.scalar(select(func.count(Dataset.id)).where(Dataset.name == name)) > 0


def create_dataset(name: str, source: str | None = None) -> DatasetInfo:
    """A new empty dataset (frames come later through :func:`import_files`)."""
    name = clean_name(name)
    folder = from_stored("datasets") / f"{slug(name)}-{token()}"
    folder.mkdir(parents=True)
    try:
        with session_scope() as session:
            if name_taken(session, name):
                raise StoreError(f"a dataset named {name!r} already exists")
            dataset = Dataset(name=name, folder=to_stored(folder), source=source)
            session.add(dataset)
            session.flush()
            return _dataset_info(session, dataset)
    except BaseException:
        remove_tree(folder)
        raise


def delete_dataset(dataset_id: int) -> None:
    """Remove a dataset, its frames, masks, runs and their files. Refused while a run trains on it."""
    with session_scope() as session:
        dataset = get_dataset_row(session, dataset_id)
        active = session.scalar(
            select(func.count(Run.id)).where(Run.dataset_id == dataset.id, Run.status.in_(ACTIVE_STATUSES))
        )
        if active:
            raise StoreError(f"dataset {dataset.name!r} has {active} active training run(s); cancel them first")
        run_dirs = [from_stored(d) for d in session.scalars(select(Run.run_dir).where(Run.dataset_id == dataset.id)) if d]
        # Ended prediction jobs go with their proposals; a running one stays, to fail saying why.
        ended_jobs = session.scalars(
            select(PredictionJob).where(PredictionJob.dataset_id == dataset.id, PredictionJob.status.not_in(ACTIVE_STATUSES))
        ).all()
        job_dirs = [from_stored(job.folder) for job in ended_jobs if job.folder]
        for job in ended_jobs:
            session.delete(job)
        folder = from_stored(dataset.folder)
        session.delete(dataset)
    # Files go after the commit: a failed delete must not lose data the rows still point to.
    remove_tree(folder)
    for run_dir in run_dirs + job_dirs:
        remove_tree(run_dir)
