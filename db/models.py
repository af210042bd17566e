"""The tables. Paths are stored relative to ``COSMICS_HOME`` so the data folder can move.

Schema changes go through a new Alembic revision in ``db/migrations/versions``
(``alembic -c db/alembic.ini revision --autogenerate -m "..."``), never by
editing an applied one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from segcore.data import SPLIT_FOLDERS

#: A frame's split as the store names it: the layout's folders (segcore.data.SPLIT_FOLDERS) in lower case.
SPLITS = tuple(SPLIT_FOLDERS)
#: Where a saved mask came from: a file, the brush, a proposal saved as it was, or a proposal the
#: expert corrected (components accepted or rejected, pixels painted).
MASK_SOURCES = ("uploaded", "drawn", "predicted", "corrected")
RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
#: Where a run's evaluation threshold comes from: chosen on the validation frames when
#: training ends (the default), or a number fixed when the run was started.
THRESHOLD_SOURCES = ("validation", "fixed")
#: The threshold used when none was chosen (training ended before it could choose one).
FALLBACK_THRESHOLD = 0.5
#: What a run does: train a network ("train"), or detect with LA Cosmic, which needs no training.
RUN_KINDS = ("train", "lacosmic")
#: Where a frame stands in the labeling loop: a model proposed a mask and nobody saved one yet
#: ("proposed"), an expert saved a mask (drawn, or a proposal accepted or corrected: "corrected"),
#: an expert looked at the saved mask again and confirmed it ("reviewed").
REVIEW_STATUSES = ("proposed", "corrected", "reviewed")
#: What an LA Cosmic run's evaluations record as their checkpoint: it has no model file.
LACOSMIC_CHECKPOINT = "lacosmic"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC out, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use utcnow()")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


#: Ids users see and folders are named by are never handed out twice, also on SQLite (migration 0006).
NEVER_REUSED_IDS = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them on SQLite too.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    folder: Mapped[str] = mapped_column(String(1000))
    source: Mapped[Optional[str]] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    frames: Mapped[list[Frame]] = relationship(back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True)


class Frame(Base):
    __tablename__ = "frames"
    __table_args__ = (
        UniqueConstraint("dataset_id", "split", "stem", name="uq_frames_dataset_split_stem"),
        CheckConstraint(_one_of("split", SPLITS), name="split"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    stem: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1000))
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    bit_depth: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="frames")
    revisions: Mapped[list[MaskRevisionRow]] = relationship(
        back_populates="frame", cascade="all, delete-orphan", passive_deletes=True, order_by="MaskRevisionRow.id"
    )


class MaskRevisionRow(Base):
    """One mask a frame had. The frame's current mask is its revision with the highest id."""

    __tablename__ = "mask_revisions"
    __table_args__ = (CheckConstraint(_one_of("source", MASK_SOURCES), name="source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    restored_from_id: Mapped[Optional[int]] = mapped_column(ForeignKey("mask_revisions.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[Optional[str]] = mapped_column(Text)
    cosmic_pixels: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The proposal the expert started from, and how much was changed from it.
    proposal_id: Mapped[Optional[int]] = mapped_column(ForeignKey("proposals.id", ondelete="SET NULL"))
    changed_pixels: Mapped[Optional[int]] = mapped_column(Integer)
    changed_cosmics: Mapped[Optional[int]] = mapped_column(Integer)

    frame: Mapped[Frame] = relationship(back_populates="revisions")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
        CheckConstraint(_one_of("threshold_source", THRESHOLD_SOURCES), name="threshold_source"),
        CheckConstraint(_one_of("kind", RUN_KINDS), name="kind"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    # Training options, or for an LA Cosmic run its parameters (and how they were tuned).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The test evaluation's threshold; None while it is still to be chosen on validation frames.
    threshold: Mapped[Optional[float]] = mapped_column(Float)
    threshold_source: Mapped[str] = mapped_column(String(16), default="fixed", server_default="fixed")
    backbone_weights: Mapped[Optional[str]] = mapped_column(Text)
    # The Keras dtype policy training really computed in ("auto" resolved), and why.
    precision: Mapped[Optional[str]] = mapped_column(String(32))
    precision_reason: Mapped[Optional[str]] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    # The process' start time tells a recycled pid from ours.
    process_started: Mapped[Optional[float]] = mapped_column(Float)
    heartbeat: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    run_dir: Mapped[str] = mapped_column(String(1000), default="")
    checkpoint_dir: Mapped[Optional[str]] = mapped_column(String(1000))
    best_checkpoint: Mapped[Optional[str]] = mapped_column(String(1000))
    last_checkpoint: Mapped[Optional[str]] = mapped_column(String(1000))
    model_path: Mapped[Optional[str]] = mapped_column(String(1000))
    # Progress, for the app's bars: the epoch and batch the run is at, out of how many.
    epochs_total: Mapped[Optional[int]] = mapped_column(Integer)
    steps_per_epoch: Mapped[Optional[int]] = mapped_column(Integer)
    current_epoch: Mapped[Optional[int]] = mapped_column(Integer)
    current_step: Mapped[Optional[int]] = mapped_column(Integer)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[Optional[int]] = mapped_column(Integer)
    best_val_loss: Mapped[Optional[float]] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[str]] = mapped_column(Text)
    #: the user's notes on the run and its tags (short words, e.g. "baseline", "paper")
    notes: Mapped[Optional[str]] = mapped_column(Text)
    tags: Mapped[Optional[list[str]]] = mapped_column(JSON)
    #: why training ended (segcore's TrainingEnd.stop_reason): "epochs", "early stopping", "time limit",
    #: "cancelled" or "error"; None before it ended, for LA Cosmic, and for runs made before 0009
    stop_reason: Mapped[Optional[str]] = mapped_column(String(32))

    revisions: Mapped[list[RunRevision]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class RunRevision(Base):
    """The mask revision a run trained (and validated and tested) on, per frame."""

    __tablename__ = "run_revisions"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("mask_revisions.id", ondelete="CASCADE"), index=True)


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "metric", name="uq_epoch_metrics_run_epoch_metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[Optional[float]] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (CheckConstraint(_one_of("split", SPLITS), name="split"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Float)
    # The Keras dtype policy the network computed in.
    precision: Mapped[Optional[str]] = mapped_column(String(32))
    checkpoint: Mapped[str] = mapped_column(String(1000))
    predictions_dir: Mapped[str] = mapped_column(String(1000))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    pooled: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    results: Mapped[list[EvaluationResultRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class EvaluationResultRow(Base):
    """One image of an evaluation: every metric and the true and predicted cosmic counts."""

    __tablename__ = "evaluation_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    frame_id: Mapped[Optional[int]] = mapped_column(ForeignKey("frames.id", ondelete="SET NULL"))
    revision_id: Mapped[Optional[int]] = mapped_column(ForeignKey("mask_revisions.id", ondelete="SET NULL"))
    image: Mapped[str] = mapped_column(String(255))
    iou: Mapped[Optional[float]] = mapped_column(Float)
    dice: Mapped[Optional[float]] = mapped_column(Float)
    pixel_accuracy: Mapped[Optional[float]] = mapped_column(Float)
    precision: Mapped[Optional[float]] = mapped_column(Float)
    recall: Mapped[Optional[float]] = mapped_column(Float)
    f1: Mapped[Optional[float]] = mapped_column(Float)
    specificity: Mapped[Optional[float]] = mapped_column(Float)
    count_score: Mapped[Optional[float]] = mapped_column(Float)
    object_recall: Mapped[Optional[float]] = mapped_column(Float)
    object_precision: Mapped[Optional[float]] = mapped_column(Float)
    true_count: Mapped[int] = mapped_column(Integer)
    pred_count: Mapped[int] = mapped_column(Integer)
    prediction_path: Mapped[Optional[str]] = mapped_column(String(1000))


#: What made a prediction job's proposals: a training run's model, an LA Cosmic run's
#: parameters, or a model file the user uploaded.
MODEL_SOURCES = ("train", "lacosmic", "file")


class PredictionJob(Base):
    """Proposals for a set of frames, made by one model in a background process."""

    __tablename__ = "prediction_jobs"
    __table_args__ = (
        CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
        CheckConstraint(_one_of("model_source", MODEL_SOURCES), name="model_source"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kept (as None) when the dataset is deleted, so the job can say what happened to it.
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    dataset_name: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    model_source: Mapped[str] = mapped_column(String(16))
    #: what the proposals say made them, e.g. "run 3 (LA Cosmic)"
    model_name: Mapped[str] = mapped_column(String(300))
    model_path: Mapped[Optional[str]] = mapped_column(String(1000))
    #: LA Cosmic's parameters
    params: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    #: None until the worker reads it from the model file (an uploaded model's own)
    threshold: Mapped[Optional[float]] = mapped_column(Float)
    #: views of each frame the network's probabilities are averaged over (segcore.inference.VIEWS)
    views: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: "frame", a split name, or "dataset"
    scope: Mapped[str] = mapped_column(String(16))
    frame_ids: Mapped[list[int]] = mapped_column(JSON)
    folder: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    precision: Mapped[Optional[str]] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    process_started: Mapped[Optional[float]] = mapped_column(Float)
    heartbeat: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    error: Mapped[Optional[str]] = mapped_column(Text)


class ProposalRow(Base):
    """One frame's proposed mask from a prediction job: never ground truth until an expert saves it."""

    __tablename__ = "proposals"
    __table_args__ = (UniqueConstraint("job_id", "frame_id", name="uq_proposals_job_frame"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("prediction_jobs.id", ondelete="CASCADE"), index=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    threshold: Mapped[float] = mapped_column(Float)
    mask_path: Mapped[str] = mapped_column(String(1000))
    #: float16 cosmic probabilities (.npy); None for LA Cosmic, whose masks have none
    probabilities_path: Mapped[Optional[str]] = mapped_column(String(1000))
    cosmic_pixels: Mapped[int] = mapped_column(Integer)
    cosmics: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: pixels whose probability is in ``UNCERTAIN_RANGE`` (where the model hesitates); None for a
    #: detector without probabilities, or a proposal made before it was counted (0007)
    uncertain_pixels: Mapped[Optional[int]] = mapped_column(Integer)
    #: pixels where this model proposal and the frame's LA Cosmic proposal ``disagreement_with``
    #: differ, counted when the labeling queue first needs them (0010); None: not counted yet
    disagreement: Mapped[Optional[int]] = mapped_column(Integer)
    disagreement_with: Mapped[Optional[int]] = mapped_column(Integer)


class FrameReview(Base):
    """Where a frame stands in the labeling loop (``REVIEW_STATUSES``); frames without a row have none yet."""

    __tablename__ = "frame_reviews"
    __table_args__ = (CheckConstraint(_one_of("status", REVIEW_STATUSES), name="status"),)

    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200), default="")
    changed: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
