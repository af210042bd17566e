"""The store and the run manager: everything a user uploads, edits, trains and evaluates.

SQLAlchemy 2.x on SQLite by default (``<COSMICS_HOME>/cosmics.db``, WAL mode), or any
SQLAlchemy URL in ``COSMICS_DB_URL`` (e.g. ``postgresql+psycopg://user@host/cosmics``).
Files (frames, masks, checkpoints, predictions) live under ``COSMICS_HOME`` (default
``./data``); the database stores their paths relative to it. Every function opens and
closes its own short transaction and returns plain frozen dataclasses or pandas
DataFrames, never live ORM objects, so callers need no session.

Bad input raises :class:`StoreError` (a ``segcore.errors.SegcoreError``); a refused file
raises its subclass :class:`RefusedFile` whose message starts with the file's name (for a
ZIP, ``archive.zip:Train/x.png``); nothing stored is changed then. A missing id raises
:class:`NotFound`.

Set-up
------
``init_db(url=None) -> Engine``        engine + Alembic ``upgrade head``; call once at start-up
                                       (every other function calls it too, once per process).
``home() -> Path``                     the data directory (``COSMICS_HOME``); ``database_url()``.
``reset()``                            forget the cached engine (after changing the environment).
``session_scope(write=True)``          for code inside ``db`` only: one short transaction.

Datasets and frames (``db.datasets``)
-------------------------------------
``SPLITS = ("train", "validation", "test", "real")``; ``SPLIT_FOLDERS`` (``segcore.data.SPLIT_FOLDERS``: split ->
    folder name ``Train/`` ..., masks in ``TrainAnnotation/`` ...)
``create_dataset(name) -> DatasetInfo``
``import_folder(folder, name=None, dataset_id=None, author="import") -> ImportReport``
    a folder in the original layout (Train/, TrainAnnotation/, ..., optional Real/); into a new
    dataset ``name`` (default: the folder's name) or an existing ``dataset_id``. ImportReport:
    dataset_id, dataset_name, frames_added per split, masks_added, frames_without_mask, ignored.
``import_roots() -> list[Path]`` the server folders the app may import from (``COSMICS_IMPORT_ROOTS``,
    ``os.pathsep``-separated, resolved); none by default.
``import_server_folder(folder, name=None, dataset_id=None, author="import") -> ImportReport``
    ``import_folder`` for a path typed in the app: refused (StoreError, the path not echoed) unless it
    resolves, symbolic links followed, under an import root.
``import_files(dataset_id, split, frames, masks=(), author="upload") -> ImportReport``
    ``frames``/``masks``: paths, or ``(file_name, bytes)`` pairs as from ``st.file_uploader``
    (``(f.name, f.getvalue())``); masks pair with frames by file stem (``x.png`` or ``x_mask.png``).
``import_zip(zip_file, name=None, dataset_id=None, author="upload", max_bytes=MAX_ZIP_BYTES,
    file_name=None) -> ImportReport``  a ZIP (path, bytes or binary file object such as Streamlit's
    UploadedFile) holding the original layout, at its root or in one folder; ``file_name`` names
    it in messages when given as bytes.
``import_simulated(name, n_train, n_validation, n_test, n_real=0, size=512, seed=0, progress=None) -> ImportReport``
    Frames and masks may be detector files (HDF5/NeXus, EDF, CBF ...; ``segcore.formats``): each frame of a
    stack becomes a frame whose path is its address (``<file>::/entry/data/data#12``) and whose name is
    ``<file stem>_00012<suffix>``; a mask stack of the same layout gives each frame the mask of its index.
``export_dataset(dataset_id, mask_format="png", target=None) -> Path`` (``db.exports``) a ZIP of the frames
    as imported (a stack file once) and the current masks as ``EXPORT_MASK_FORMATS`` png, npy, edf, tif, or
    h5 (one file per stack, one mask per frame in the stack's layout, plus the NeXus pixel_mask).
``list_datasets() -> list[DatasetInfo]``; ``get_dataset(id_or_name) -> DatasetInfo``
``first_start() -> bool`` (the store never had a dataset); ``first_start_done()`` (never again, even when every
    dataset is deleted: a marker file in ``COSMICS_HOME``)
``count_frames_without_mask(dataset_id=None) -> int`` train, validation and test frames with no mask yet
``list_frames(dataset_id, split=None) -> list[FrameRecord]``; ``get_frame(frame_id) -> FrameRecord``
``frames_table(dataset_id, split=None) -> DataFrame`` (one row per frame, with its current revision)
``frame_path(frame_id) -> Path``; ``read_frame(frame_id) -> float32 (H, W)``
``dataset_hot_pixels(dataset_id) -> {"HxW": [[row, column], ...]}`` (single pixels that stand out in at least half
    of its frames of one size, from ten; its proposals and evaluations keep them out of the masks)
``validation_report(dataset_id) -> ValidationReport`` (frames per split, frames without a mask, size
    mismatches, files missing on disk, by file name; ``.ok``, ``.problems()`` -> lines)
``delete_dataset(dataset_id)`` (its runs, and its ended prediction jobs with their files; a running job fails)

Masks (``db.masks``): every mask a frame ever had; never overwritten in place
-------------------------------------------------------------------------------
``MASK_SOURCES = ("uploaded", "drawn", "predicted", "corrected")``
``save_mask_revision(frame_id, mask, source="drawn", author="", comment=None, run_id=None, proposal_id=None) -> MaskRevision``
    ``mask``: 2-D array of the frame's size, non-zero = cosmic (bool, integers >= 0, or whole-number
    floats; probabilities are refused). MaskRevision: id, frame_id, source, run_id, author, comment,
    created (UTC), path, cosmic_pixels, restored_from_id, proposal_id, changed_pixels, changed_cosmics.
``current_revision(frame_id) -> MaskRevision | None``; ``current_mask(frame_id) -> bool (H, W) | None``
``mask_history(frame_id) -> list[MaskRevision]`` (newest first); ``read_revision(revision_id) -> bool (H, W)``
``restore_revision(revision_id, author="", comment=None) -> MaskRevision`` (a new revision copying an old one)
``adopt_prediction(result_id, author="", comment=None) -> MaskRevision`` (an evaluation's predicted mask becomes
    current, through a proposal the revision records)
``evaluations_on_older_masks(dataset_id, frame_id=None) -> {evaluation id: frames}`` evaluations that scored masks
    changed since (the frames whose current revision is not the one scored)

Runs (``db.runs``): training in its own process, never inside a web request
---------------------------------------------------------------------------
``RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled")``
``THRESHOLD_SOURCES = ("validation", "fixed")``; ``FALLBACK_THRESHOLD = 0.5``
``start_run(config, dataset_id, name=None, threshold=None) -> int``
    ``config``: a ``segcore.trainer.TrainConfig`` or a dict of its fields (``data_dir``/``out``/
    ``checkpoint_dir``/``resume`` are set by the store; bad options raise StoreError at once).
    Records the current mask revision of every train/validation/test frame, then launches
    ``python -m db.worker RUN_ID`` detached (log: ``<COSMICS_HOME>/runs/<id>/worker.log``); it
    trains on those revisions, writes epoch metrics as it goes, and evaluates the best model on
    the test split when training ends. ``threshold=None`` (default): the threshold that
    maximises pooled pixel F1 on the validation frames, chosen by the trainer when training
    ends (``TrainingEnd.threshold``, also in the model file's card) and stored on the run
    (``threshold_source="validation"``; until then, or when training ended before choosing,
    ``threshold`` is None and evaluations fall back to 0.5); a number is kept as given
    (``threshold_source="fixed"``; runs made before 0003 are "fixed").
``cancel_run(run_id) -> RunInfo``  stops at the end of the current batch, keeps the best checkpoint.
``resume_run(run_id) -> int``  continues a failed or cancelled run from its last checkpoint, on
    the same mask revisions it started with.
``RUN_KINDS = ("train", "lacosmic")``: ``RunInfo.kind``; ``RunInfo.trains`` is False for LA Cosmic.
``refresh_run_states(stale_after=120.0) -> list[int]``  marks runs whose process died or whose
    heartbeat is older than ``stale_after`` seconds as failed (with the reason); call it when
    showing runs. Returns the ids it marked.
``get_run(run_id) -> RunInfo`` (status, progress 0..1, epochs_run/epochs_total, current_epoch/step,
    heartbeat, pid, checkpoints, backbone_weights and precision (Keras dtype policy) really used and
    precision_reason (why), threshold (None until chosen), threshold_source, evaluation_threshold
    (threshold, else 0.5), threshold_fallback (no threshold was chosen), error);
    ``wait_for_run(run_id, timeout)``
``run_log(run_id, tail=200) -> str``  the worker's log
``save_weights_file(file_name, data) -> Path``  an uploaded backbone weights file kept under
    ``<COSMICS_HOME>/weights/`` for ``TrainConfig.backbone_weights`` (suffix one of ``WEIGHT_SUFFIXES``, else StoreError)
``delete_run(run_id)``  (refused while active)
``set_run_notes(run_id, notes=None, tags=None)`` (``db.curation``) a run's notes and tags (``RunInfo.notes``,
    ``RunInfo.tags``; migration 0008); ``delete_frame(frame_id) -> name`` one frame with its masks, proposals
    and files, refused (naming them) while a run's recorded revisions need it
``evaluate_run(run_id, split="test", threshold=None, checkpoint="best", masks="current", progress=None,
    dilation=0) -> EvaluationInfo``  (``threshold=None``: the run's ``evaluation_threshold``) evaluates in the calling process (segcore's inference defaults) and stores the
    result with the precision the network computed in; ``masks="run"`` uses the revisions the run
    trained on, ``"current"`` the frames' masks now; ``dilation`` grows every predicted mask by that
    many pixels before scoring and writing (``EvaluationInfo.dilation``). ``EvaluationInfo.pooled``
    holds ``segcore.evaluator.POOLED_KEYS`` (pixel and object scores over the split, average precision,
    ROC AUC, precision at 95 % recall, TPR at 0.01 % / 0.1 % FPR); the curves are in
    ``EvaluationInfo.curves_path`` (``curves.json`` beside the predicted masks).

LA Cosmic runs (``db.classical``): a detector that needs no training, as a run like any other
----------------------------------------------------------------------------------------------
``start_lacosmic_run(dataset_id, name=None, params=None, tune=True, grid=None) -> int``
    ``params``: ``segcore.classical.LACosmicParams`` fields (``LACOSMIC_PARAMETERS``; None = measured
    on each frame; bad ones raise StoreError naming them). Records the run (kind "lacosmic", config =
    the parameters, ``tune``, ``tuning_grid``; threshold 0.5 "fixed": its masks are 0/1) with the mask
    revision of every frame, and launches the same worker. It tunes sigclip, objlim and sigfrac on the
    validation frames (``tune`` and frames with masks; ``grid`` = values tried per parameter, default
    ``TUNED_PARAMETERS``), storing the chosen ones, ``tuned``, ``tuned_f1`` and ``tuning_frames`` in
    ``config``, then evaluates the test split (checkpoint "lacosmic", threshold 0.5, precision None).
    Progress: ``current_step`` of ``steps_per_epoch`` frames (validation, then test); ``RunInfo.progress``.
    A dataset without test frames with masks is refused. ``evaluate_run`` re-evaluates it with its
    stored parameters (a threshold other than 0.5, or a checkpoint other than "best": StoreError).

Predictions (``db.predictions``): proposals for any frames, kept apart from ground truth
-----------------------------------------------------------------------------------------
``start_prediction(dataset_id, run_id=None, *, model_file=None, split=None, frame_ids=None, threshold=None, lacosmic=None, views=1) -> int``
    a job applying a run's model (a training run with a model file, or a finished LA Cosmic run with
    its parameters), or an uploaded ``.keras`` (path or ``(name, bytes)``), to a dataset, one split
    (``real`` too) or chosen frames, in its own process (``python -m db.prediction_worker JOB_ID``).
    Frames of any size; per frame a proposal: 0/1 mask, float16 probabilities (none for LA Cosmic),
    threshold (default: the run's, an uploaded model's own, else 0.5); ``views`` (1, 2, 4 or 8, LA Cosmic 1;
    migration 0011 ``prediction_jobs.views``) averages the network over the frame flipped and transposed.
``get_prediction(job_id) -> PredictionInfo`` (status as a run's, frames_done/frames_total, progress,
    model_name, model_source "train"/"lacosmic"/"file", threshold, views, precision, error);
    ``list_predictions(dataset_id=None)``; ``cancel_prediction(job_id)``; ``wait_for_prediction(job_id, timeout)``;
    ``refresh_prediction_states()`` (dead or silent jobs marked failed); ``prediction_log(job_id)``
``prediction_models() -> list[RunInfo]`` the runs (any dataset) that can predict now.
``propose_from_evaluation(result_id) -> Proposal`` an evaluation's predicted mask of a frame as a proposal
    (once; a finished job of scope "evaluation").
Proposals (``db.proposals``): ``frame_proposals(frame_id) -> list[Proposal]`` (newest first); ``get_proposal(id)``;
    ``proposal_mask(id) -> bool (H, W)``; ``proposal_probabilities(id) -> float32 (H, W) | None``;
    ``proposed_frames(dataset_id) -> set[frame id]`` (a proposal newer than the frame's saved mask)
``save_mask_revision(..., proposal_id=N)`` records the proposal, its run and the pixels and cosmics
    changed from it (source "predicted" when unchanged, else "corrected").

Where to label next (``db.review``)
-----------------------------------
``REVIEW_STATUSES = ("proposed", "corrected", "reviewed")``: a frame's place in the labeling loop, kept up
    by itself (a proposal for a frame without a mask: "proposed"; a mask saved from the app: "corrected").
``review_statuses(dataset_id) -> {frame id: status}``; ``set_review_status(frame_id, status, author="")``
    ("reviewed"/"corrected" need a saved mask).
``labeling_queue(dataset_id, split=None) -> list[QueueEntry]`` frames without a saved mask, most doubt
    first (``QueueEntry.doubt``: the newest model proposal's pixels with probability in ``UNCERTAIN_RANGE``
    (0.2-0.8) plus the pixels where it and the newest LA Cosmic proposal differ).
``start_retraining(dataset_id, name=None, defaults=None) -> int`` a training run (``start_run``) on the
    masks as they are now, with the options of the dataset's newest training run (else ``defaults``);
    ``retraining_config(dataset_id) -> (options, run id | None)``.

Results (``db.results``): what the app shows
---------------------------------------------
``list_runs(dataset_id=None) -> list[RunInfo]``; ``runs_table(dataset_id=None) -> DataFrame`` (with the run's
    kind, threshold and threshold_source)
``epoch_metrics(run_id) -> DataFrame`` (one row per epoch: epoch, loss, val_loss, accuracy,
    precision, recall, specificity, iou, learning_rate, and any val_* the trainer reports)
``run_revisions(run_id) -> DataFrame`` (frame, split, the mask revision the run trained on)
``list_evaluations(run_id=None) -> list[EvaluationInfo]``; ``get_evaluation(evaluation_id)``
``latest_evaluation(run_id, split=None) -> EvaluationInfo | None``
``dataset_evaluations(dataset_id) -> list[(RunInfo, EvaluationInfo)]`` every evaluation of the dataset's runs, newest first
``per_image_results(evaluation_id) -> DataFrame`` (image, frame_id, iou, dice, pixel_accuracy, precision,
    recall, f1, specificity, count_score, true_count, pred_count, object_recall, object_precision,
    prediction_path, and from those object_f1, count_error, abs_count_error)
``rescore_evaluation(evaluation_id, threshold, progress=None) -> EvaluationInfo`` (``db.rescoring``) a new evaluation
    at another threshold from the probabilities a training run's evaluation keeps
    (``<predictions_dir>/probabilities/<image>.npy``), against the masks it scored: no network runs.
    ``can_rescore(evaluation_id)``; older evaluations and LA Cosmic's are refused (StoreError).
``evaluation_curves(evaluation_id) -> segcore.curves.SplitCurves | None`` (pixel histogram and object curve;
    None for evaluations stored before curves were kept)
``compare_runs(run_ids, split="test") -> DataFrame`` (one row per run: kind, latest evaluation's mean metrics,
    training_precision, evaluation_precision, threshold (the evaluation's), run_threshold, threshold_source,
    dilation, ``pooled_<key>`` for each of ``POOLED_KEYS``)
``compare_per_image(evaluation_ids, metric="iou") -> DataFrame`` (images x evaluations)
``prediction_mask(result_id) -> bool (H, W)``
``cleaned_frame(result_id) -> (file name, bytes)`` the evaluated frame with its predicted cosmics replaced by the
    median of unmasked neighbours (``segcore.postprocess.clean_frame``), in the frame's own format and pixel type

Dataclasses returned: ``DatasetInfo``, ``FrameRecord``, ``ImportReport``, ``ValidationReport``,
``MaskRevision``, ``RunInfo``, ``EvaluationInfo``.
"""

from __future__ import annotations

from .errors import NotFound, RefusedFile, RefusedFiles, StoreError, StoreUnavailable
from .session import database_url, home, init_db, reset, session_scope
from .datasets import (
    SPLIT_FOLDERS,
    SPLITS,
    DatasetInfo,
    FrameRecord,
    ImportReport,
    ValidationReport,
    count_frames_without_mask,
    create_dataset,
    dataset_hot_pixels,
    delete_dataset,
    first_start,
    first_start_done,
    frame_path,
    frames_table,
    get_dataset,
    get_frame,
    list_datasets,
    list_frames,
    read_frame,
    validation_report,
)
from .imports import IMPORT_ROOTS_ENV, import_files, import_folder, import_roots, import_server_folder, import_simulated
from .zipimport import import_zip
from .exports import EXPORT_MASK_FORMATS, export_dataset
from .masks import (
    MASK_SOURCES,
    MaskRevision,
    adopt_prediction,
    current_mask,
    current_revision,
    mask_history,
    read_revision,
    restore_revision,
    save_mask_revision,
)
from .runs import (
    FALLBACK_THRESHOLD,
    RUN_KINDS,
    RUN_STATUSES,
    THRESHOLD_SOURCES,
    STALE_AFTER,
    WEIGHT_SUFFIXES,
    RunInfo,
    cancel_run,
    delete_run,
    get_run,
    refresh_run_states,
    resume_run,
    run_log,
    save_weights_file,
    start_run,
    wait_for_run,
)
from .evaluations import EvaluationInfo, evaluate_run, evaluations_on_older_masks
from .classical import LACOSMIC_PARAMETERS, TUNED_PARAMETERS, start_lacosmic_run
from .predictions import (
    PredictionInfo,
    cancel_prediction,
    get_prediction,
    list_predictions,
    prediction_log,
    prediction_models,
    refresh_prediction_states,
    start_prediction,
    wait_for_prediction,
)
from .proposals import (
    Proposal,
    frame_proposals,
    get_proposal,
    proposal_mask,
    proposal_probabilities,
    proposed_frames,
    propose_from_evaluation,
)
from .review import (
    REVIEW_STATUSES,
    UNCERTAIN_RANGE,
    QueueEntry,
    count_uncertain,
    labeling_queue,
    retraining_config,
    review_statuses,
    set_review_status,
    start_retraining,
)
from .rescoring import can_rescore, rescore_evaluation
from .curation import delete_frame, set_run_notes
from .results import (
    cleaned_frame,
    compare_per_image,
    compare_runs,
    dataset_evaluations,
    epoch_metrics,
    evaluation_curves,
    get_evaluation,
    latest_evaluation,
    list_evaluations,
    list_runs,
    per_image_results,
    prediction_mask,
    run_revisions,
    runs_table,
)

__all__ = [
    "FALLBACK_THRESHOLD", "LACOSMIC_PARAMETERS", "MASK_SOURCES", "RUN_KINDS", "RUN_STATUSES", "SPLITS",
    "THRESHOLD_SOURCES", "SPLIT_FOLDERS", "STALE_AFTER", "TUNED_PARAMETERS", "WEIGHT_SUFFIXES",
    "DatasetInfo", "EvaluationInfo", "FrameRecord", "ImportReport", "MaskRevision", "RunInfo", "ValidationReport",
    "NotFound", "RefusedFile", "RefusedFiles", "StoreError", "StoreUnavailable",
    "database_url", "home", "init_db", "reset", "session_scope",
    "count_frames_without_mask", "create_dataset", "delete_dataset", "first_start", "first_start_done", "frame_path", "frames_table", "get_dataset", "get_frame", "list_datasets",
    "list_frames", "read_frame", "validation_report", "dataset_hot_pixels",
    "IMPORT_ROOTS_ENV", "import_files", "import_folder", "import_roots", "import_server_folder", "import_simulated",
    "import_zip", "EXPORT_MASK_FORMATS", "export_dataset",
    "adopt_prediction", "current_mask", "current_revision", "mask_history", "read_revision", "restore_revision",
    "save_mask_revision",
    "cancel_run", "delete_run", "evaluate_run", "evaluations_on_older_masks", "get_run", "refresh_run_states",
    "resume_run", "run_log", "save_weights_file", "start_run",
    "start_lacosmic_run", "wait_for_run",
    "cleaned_frame", "compare_per_image", "compare_runs", "dataset_evaluations", "epoch_metrics", "evaluation_curves",
    "get_evaluation", "latest_evaluation", "list_evaluations", "list_runs",
    "per_image_results", "prediction_mask", "run_revisions", "runs_table",
    "PredictionInfo", "Proposal", "cancel_prediction", "frame_proposals", "get_prediction", "get_proposal",
    "list_predictions", "prediction_log", "prediction_models", "propose_from_evaluation", "proposal_mask",
    "proposal_probabilities", "proposed_frames", "refresh_prediction_states",
    "start_prediction", "wait_for_prediction",
    "REVIEW_STATUSES", "UNCERTAIN_RANGE", "QueueEntry", "count_uncertain", "labeling_queue", "retraining_config",
    "review_statuses", "set_review_status", "start_retraining", "can_rescore", "rescore_evaluation",
    "delete_frame", "set_run_notes",
]
