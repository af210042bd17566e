"""The Train, Results and Compare pages, driven through Streamlit's AppTest.

An empty store (a tiny dataset, no runs) checks that every page says what to do
next. The populated store holds one real tiny training run (trained once for the
module) and a copy of it with other settings and scores, so Compare has two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import db
from segcore.metrics import THRESHOLD_GRID
from ui import charts
from ui.result_curves import operating_point_text
from ui.train_form import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
TRAIN, RESULTS, COMPARE = (str(ROOT / "pages" / name) for name in ("3_Train.py", "4_Results.py", "5_Compare.py"))
# The pages need a trained run, not a good one: the tiny backbone trains in seconds.
# Four steps from the cosmic prior leave every probability under the slider's 0.01; a Glorot output layer
# spreads them, so the Results page's curves and slider have marked pixels to show.
TINY_RUN = dict(crop_size=64, batch_size=2, epochs=2, steps_per_epoch=2, backbone="tiny", backbone_weights="none",
                prior_output=False)


def _use_store(monkeypatch, home: Path) -> None:
    monkeypatch.setenv("COSMICS_HOME", str(home))
    monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    # Should the demo ever be made, keep it tiny.
    monkeypatch.setenv("COSMICS_DEMO_FRAMES", "2,1,2,0")
    monkeypatch.setenv("COSMICS_DEMO_SIZE", "64")
    db.reset()
    db.init_db()


def _page(path: str) -> AppTest:
    return AppTest.from_file(path, default_timeout=120)


def _texts(at: AppTest, kind: str) -> str:
    return "\n".join(element.value for element in getattr(at, kind))


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    _use_store(monkeypatch, tmp_path / "home")
    dataset = db.import_simulated("Tiny", 2, 1, 2, size=64, seed=1)
    yield dataset
    for run in db.list_runs():
        if run.status in ("queued", "running"):
            db.cancel_run(run.id)
            db.wait_for_run(run.id, timeout=180)
    db.reset()


def _copy_run(run_id: int, name: str, config_changes: dict, score_shift: float) -> int:
    """A finished run like ``run_id`` with other settings and every score moved by ``score_shift``."""
    from db.models import EpochMetric, Evaluation, EvaluationResultRow, Run
    from segcore.metrics import PER_IMAGE_SCORES

    def moved(value):
        return None if value is None else float(np.clip(value + score_shift, 0.0, 1.0))

    with db.session_scope() as session:
        source = session.get(Run, run_id)
        copy = Run(
            name=name,
            dataset_id=source.dataset_id,
            config={**source.config, **config_changes},
            threshold=0.5,
            threshold_source="fixed",
            backbone_weights=source.backbone_weights,
            status="finished",
            started_at=source.started_at,
            ended_at=source.ended_at,
            run_dir="runs/copy",
            epochs_total=source.epochs_total,
            steps_per_epoch=source.steps_per_epoch,
            epochs_run=source.epochs_run,
            best_epoch=source.best_epoch,
            best_val_loss=source.best_val_loss,
        )
        session.add(copy)
        session.flush()
        for row in session.query(EpochMetric).filter_by(run_id=run_id):
            session.add(EpochMetric(run_id=copy.id, epoch=row.epoch, metric=row.metric, value=row.value * 0.8))
        for evaluation in session.query(Evaluation).filter_by(run_id=run_id):
            new = Evaluation(
                run_id=copy.id,
                split=evaluation.split,
                threshold=0.5,
                checkpoint=evaluation.checkpoint,
                predictions_dir=evaluation.predictions_dir,
                summary={k: {"mean": moved(v["mean"]) if k in PER_IMAGE_SCORES else v["mean"], "std": v["std"]} for k, v in evaluation.summary.items()},
                pooled=evaluation.pooled,
            )
            session.add(new)
            session.flush()
            for result in session.query(EvaluationResultRow).filter_by(evaluation_id=evaluation.id):
                session.add(
                    EvaluationResultRow(
                        evaluation_id=new.id,
                        frame_id=result.frame_id,
                        revision_id=result.revision_id,
                        image=result.image,
                        true_count=result.true_count,
                        pred_count=result.pred_count,
                        prediction_path=result.prediction_path,
                        **{m: moved(getattr(result, m)) for m in PER_IMAGE_SCORES},
                    )
                )
        return copy.id


@pytest.fixture(scope="module")
def populated_home(tmp_path_factory):
    """A store with an LA Cosmic run, one really trained tiny run and a changed copy of it (the two newest)."""
    home = tmp_path_factory.mktemp("populated") / "home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use_store(monkeypatch, home)
        dataset = db.import_simulated("Tiny", 2, 1, 2, size=64, seed=1)
        lacosmic = db.start_lacosmic_run(dataset.dataset_id, name="la cosmic")
        trained = db.start_run(TINY_RUN, dataset.dataset_id, name="tiny baseline")
        for run_id in (lacosmic, trained):
            run = db.wait_for_run(run_id, timeout=600)
            assert run.status == "finished", run.error
        copy = _copy_run(trained, "tiny copy", {"learning_rate": 0.001, "crop_size": 128}, 0.25)
        db.reset()
    return home, trained, copy, lacosmic


@pytest.fixture
def populated(populated_home, monkeypatch):
    home, trained, copy, _ = populated_home
    _use_store(monkeypatch, home)
    yield trained, copy
    db.reset()


@pytest.fixture
def lacosmic(populated, populated_home):
    """The populated store's finished LA Cosmic run."""
    return populated_home[3]


# --------------------------------------------------------------------------- #
# Empty store: every page says what to do next
# --------------------------------------------------------------------------- #


def test_train_page_without_runs_offers_the_form_and_says_none_ended(empty_store):
    at = _page(TRAIN).run()
    _no_exception(at)
    assert "No run has ended yet" in _texts(at, "info")
    assert any(b.label == "Start training" for b in at.button)
    assert at.selectbox[0].options[0].startswith("Tiny (2 train")


def test_results_page_without_runs_points_to_training(empty_store):
    at = _page(RESULTS).run()
    _no_exception(at)
    assert "No model has been trained yet" in _texts(at, "info")


def test_compare_page_without_runs_says_two_evaluated_runs_are_needed(empty_store):
    at = _page(COMPARE).run()
    _no_exception(at)
    assert "comparing needs two" in _texts(at, "info")


# --------------------------------------------------------------------------- #
# Train
# --------------------------------------------------------------------------- #


def _fill_train_form(at: AppTest, **values) -> None:
    for label, value in values.items():
        widget = next(w for w in [*at.number_input, *at.text_input] if w.label.startswith(label))
        widget.set_value(value)


def _backbone(at: AppTest):
    return next(r for r in at.radio if r.label == "Backbone weights")


def test_train_form_refuses_a_crop_size_that_is_not_a_multiple_of_16(empty_store):
    at = _page(TRAIN).run()
    _fill_train_form(at, **{"Crop size": 100})
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)
    assert "Crop size must be a positive multiple of 16 (got 100)" in _texts(at, "error")
    assert db.list_runs() == []


def test_train_form_asks_for_a_weights_file_when_that_backbone_is_chosen(empty_store):
    at = _page(TRAIN).run()
    _backbone(at).set_value("file")
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)
    assert "Upload a weights file or type its path" in _texts(at, "error")
    at.text_input[1].set_value("/no/such/weights.h5")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert "/no/such/weights.h5: no such file." in _texts(at, "error")
    assert db.list_runs() == []


def test_train_form_starts_a_run_the_page_then_shows_and_can_stop(empty_store):
    at = _page(TRAIN).run()
    _fill_train_form(at, **{"Run name": "from the form", "Crop size": 64, "Batch size": 2, "Epochs": 1, "Batches per epoch": 2})
    _backbone(at).set_value("none")
    next(c for c in at.checkbox if c.label.startswith("Lighter model")).check()
    prior_default = DEFAULTS["prior_output"]
    next(c for c in at.checkbox if c.label == "Output starts at the cosmic prior").set_value(not prior_default)
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)
    runs = db.list_runs()
    assert [r.name for r in runs] == ["from the form"]
    run = runs[0]
    assert run.status in ("queued", "running")
    assert run.config["crop_size"] == 64 and run.config["backbone_weights"] == "none"
    assert run.config["separable"] is True
    # The recommended defaults: the 3-channel recipe, and the threshold chosen on validation frames.
    assert run.config["input_recipe"] == "stretch_log_count_excess"
    assert run.config["loss"] == "dice_cross_entropy" and run.config["cosmic_crop_fraction"] == 0.5
    assert run.config["decay_frames"] == 31860
    # Recorded with the run, so a rerun starts its residual blocks the same way whatever the default becomes.
    assert run.config["zero_init_residuals"] is DEFAULTS["zero_init_residuals"]
    assert run.config["prior_output"] is (not prior_default)  # the box the user changed
    assert (run.threshold, run.threshold_source) == (None, "validation")
    assert "Running now" in _texts(at, "subheader")
    assert "to be chosen on the validation frames when training ends" in _texts(at, "markdown")

    # A second visit (another tab) shows the same run and starts nothing.
    again = _page(TRAIN).run()
    _no_exception(again)
    assert "Running now" in _texts(again, "subheader")
    assert len(db.list_runs()) == 1

    again.button(key=f"stop_{run.id}").click().run()
    _no_exception(again)
    ended = db.wait_for_run(run.id, timeout=300)
    assert ended.status in ("cancelled", "finished")
    assert len(db.list_runs()) == 1


def test_train_form_submits_the_original_recipe_and_a_fixed_threshold(empty_store, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # the record only, no process
    at = _page(TRAIN).run()
    recipe = next(s for s in at.selectbox if s.label == "Input recipe")
    assert recipe.value == "stretch_log_count_excess"
    assert recipe.options == [
        "Stretch + log counts + local excess, counting-aware (recommended)",
        "Stretch only (the original script)",
        "Stretch + log counts + local excess",
        "Stretch + log counts + local excess, counting-aware, noise of bright spots measured",
    ]
    assert not any(s.label == "Threshold for the final evaluation" for s in at.slider)  # chosen on validation
    loss = next(r for r in at.radio if r.label == "Loss")
    assert loss.value == "dice_cross_entropy"
    schedule = next(r for r in at.radio if r.label == "Schedule")
    default_schedule = DEFAULTS["schedule"]
    assert schedule.value == default_schedule and len(schedule.options) == 2
    other_schedule = "step" if default_schedule == "cosine" else "cosine"
    assert next(s for s in at.slider if s.label.startswith("Crops placed")).value == 0.5

    at.checkbox(key="train_auto_threshold").uncheck().run()
    _no_exception(at)
    next(s for s in at.slider if s.label == "Threshold for the final evaluation").set_value(0.3)
    next(s for s in at.selectbox if s.label == "Input recipe").set_value("stretch")
    next(r for r in at.radio if r.label == "Schedule").set_value(other_schedule)
    _fill_train_form(at, **{"Run name": "original recipe", "Decay every": 1000})
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_exception(at)

    (run,) = db.list_runs()
    assert run.name == "original recipe"
    assert (run.config["input_recipe"], run.config["decay_frames"]) == ("stretch", 1000)
    assert run.config["schedule"] == other_schedule
    assert (run.threshold, run.threshold_source) == (0.3, "fixed")


def _crashed_run(dataset_id: int) -> None:
    """A run recorded as running whose process is gone, as after a power cut."""
    from db.models import Run, utcnow

    with db.session_scope() as session:
        session.add(
            Run(
                name="crashed",
                dataset_id=dataset_id,
                config=dict(TINY_RUN),
                status="running",
                pid=2**22 + 12345,  # no such process
                started_at=utcnow(),
                heartbeat=utcnow(),
                run_dir="runs/crashed",
                epochs_total=2,
            )
        )


def test_train_page_shows_a_crashed_run_as_failed_with_a_resume_button(empty_store):
    _crashed_run(empty_store.dataset_id)
    at = _page(TRAIN).run()
    _no_exception(at)
    assert db.list_runs()[0].status == "failed"
    assert "The run failed" in _texts(at, "error")
    assert any(b.label == "Resume this run" for b in at.button)


def test_results_page_with_only_a_failed_run_says_none_is_evaluated(empty_store):
    _crashed_run(empty_store.dataset_id)
    at = _page(RESULTS).run()
    _no_exception(at)
    assert "No run has been evaluated yet" in _texts(at, "info")


def _number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label.startswith(label))


def test_lacosmic_section_starts_a_run_with_the_parameters_given(empty_store, monkeypatch):
    from db import runs as run_manager

    monkeypatch.setattr(run_manager, "_launch", lambda run_id, resume: None)  # the record only, no process
    at = _page(TRAIN).run()
    assert at.checkbox(key="lacosmic_tune").value is True  # tuning on by default
    assert [_number(at, label).value for label in ("Gain", "Read noise", "Offset", "Saturation")] == [None] * 4

    _number(at, "sigclip").set_value(6.0)
    _number(at, "niter").set_value(2)
    _number(at, "Gain").set_value(2.5)
    next(t for t in at.text_input if t.label == "LA Cosmic run name").set_value("la form")
    at.checkbox(key="lacosmic_tune").uncheck()
    next(b for b in at.button if b.label == "Start LA Cosmic").click().run()
    _no_exception(at)

    (run,) = db.list_runs()
    assert (run.name, run.kind, run.status) == ("la form", "lacosmic", "queued")
    assert run.config == dict(
        sigclip=6.0, sigfrac=0.3, objlim=5.0, niter=2, gain=2.5, read_noise=None, offset=None, saturation=None, tune=False
    )


def test_lacosmic_run_started_from_the_train_page_shows_its_progress_then_its_parameters(empty_store):
    at = _page(TRAIN).run()
    next(b for b in at.button if b.label == "Start LA Cosmic").click().run()
    _no_exception(at)
    (run,) = db.list_runs()
    assert run.kind == "lacosmic" and run.config["tune"] is True
    shown = _texts(at, "subheader")
    # Three tiny frames can be done before the page has drawn: a run still active now was active then.
    if db.get_run(run.id).active:
        assert "Running now" in shown
        assert "LA Cosmic (no training)" in _texts(at, "markdown")
    else:
        assert "Running now" in shown or "Earlier runs" in shown

    ended = db.wait_for_run(run.id, timeout=300)
    assert ended.status == "finished", ended.error
    again = _page(TRAIN).run()
    again.selectbox(key="train_earlier_run").set_value(run.id).run()
    _no_exception(again)
    assert f"#{run.id} run {run.id} (LA Cosmic, finished)" in _texts(again, "markdown")
    caption = _texts(again, "caption")
    assert f"Parameters: sigclip {ended.config['sigclip']:g}" in caption
    assert "gain, read noise, offset, saturation measured on each frame" in caption
    assert "tuned on 1 validation frame (pooled F1" in caption
    metrics = {m.label: m.value for m in again.metric}
    assert metrics["Frames done"] == "3 / 3"  # 1 validation frame tuned on, 2 test frames
    assert metrics["Pooled F1 on validation"] == f"{ended.config['tuned_f1']:.3f}"
    assert len(again.get("plotly_chart")) == 0  # no learning curves


def test_train_page_shows_the_curves_and_timing_of_an_ended_run(populated):
    trained, _ = populated
    at = _page(TRAIN).run()
    _no_exception(at)
    at.selectbox(key="train_earlier_run").set_value(trained).run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epochs done"] == "2 / 2"
    assert metrics["Time per epoch"] != "–"
    assert "backbone weights used: **random**" in _texts(at, "markdown")
    run = db.get_run(trained)
    assert run.threshold is not None and run.threshold_source == "validation"
    assert f"evaluation threshold **{run.threshold:g} (chosen on validation)**" in _texts(at, "markdown")
    assert f"Arithmetic: {run.precision_reason}" in _texts(at, "caption")


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #


def _results_page_of(run_id: int):
    """The Results page showing a run's newest evaluation: its summary, boxplots and overlay checked
    against the stored per-image scores. Returns the page, the evaluation and those scores."""
    at = _page(RESULTS).run()
    at.selectbox(key="results_run").set_value(run_id).run()
    _no_exception(at)
    evaluation = db.list_evaluations(run_id)[0]
    expected = db.per_image_results(evaluation.id)
    summary = at.dataframe[0].value
    iou = summary.set_index("metric").loc["IoU", "mean ± std"]
    assert iou == f"{expected['iou'].mean():.3f} ± {expected['iou'].std(ddof=0):.3f}"
    # the PR and ROC curves, every score together, then each alone (13 with object F1 and the count errors)
    assert len(at.get("plotly_chart")) == 2 + 1 + 13
    assert len(at.get("image")) == 4  # overlay, frame, true mask, prediction
    return at, evaluation, expected


def test_results_page_shows_the_summary_boxplots_table_and_overlay_of_a_run(populated):
    trained, _ = populated
    at, evaluation, expected = _results_page_of(trained)
    table = at.dataframe[1].value
    assert list(table["image"]) == list(expected["image"])
    np.testing.assert_allclose(table["iou"], expected["iou"])
    counts = {m.label: m.value for m in at.metric}
    assert counts["True cosmics"] == str(int(expected.sort_values("iou")["true_count"].iloc[0]))
    assert any(b.label == "Download the per-image table (CSV)" for b in at.get("download_button"))
    chosen = f"{db.get_run(trained).threshold:g} (chosen on validation)"
    assert f"Threshold of this evaluation: **{chosen}** · the run's threshold: **{chosen}**" in _texts(at, "caption")
    assert counts["Threshold"] == f"{evaluation.threshold:g}"


def test_results_page_shows_the_headline_numbers_and_a_point_that_follows_the_slider(populated):
    trained, _ = populated
    at, evaluation, _ = _results_page_of(trained)
    shown = {m.label: m.value for m in at.metric}
    for key in ("precision_at_95_recall", "tpr_at_0.01%_fpr", "roc_auc"):
        value = evaluation.pooled[key]
        assert shown[charts.label(key)] == ("–" if value is None else f"{value:.3f}")
    curves = db.evaluation_curves(evaluation.id)
    inspect = next(s for s in at.slider if s.label == "Threshold to inspect")
    assert inspect.value == pytest.approx(evaluation.threshold)
    # A slider position other than the evaluation's at which the model marks pixels (a point to draw).
    marking = [t for t in THRESHOLD_GRID
               if abs(t - evaluation.threshold) > 0.005 and np.isfinite(curves.histogram.at_threshold(t)["precision"])]
    assert marking, "the trained model marks no pixel at any slider position"
    threshold = float(marking[len(marking) // 2])
    inspect.set_value(threshold).run()
    _no_exception(at)
    point = curves.histogram.at_threshold(threshold)
    assert operating_point_text(threshold, point) in _texts(at, "markdown")
    pr = at.get("plotly_chart")[0]
    assert f"{threshold:g} (slider)" in pr.proto.spec
    assert any(b.label == "Download this frame cleaned" for b in at.get("download_button"))


def test_results_page_shows_an_lacosmic_run_like_a_trained_one(lacosmic):
    at, evaluation, _ = _results_page_of(lacosmic)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Detector"] == "LA Cosmic" and "Threshold" not in metrics
    assert "**LA Cosmic (no training)** · parameters: sigclip" in _texts(at, "caption")
    assert not any(s.label == "Threshold" for s in at.slider)  # no threshold to re-score at

    before = {e.id for e in db.list_evaluations(lacosmic)}
    next(b for b in at.button if b.label == "Re-score").click().run()
    _no_exception(at)
    (new,) = [e for e in db.list_evaluations(lacosmic) if e.id not in before]
    assert (new.checkpoint, new.threshold, new.split) == ("lacosmic", 0.5, "test")
    assert new.pooled == pytest.approx(evaluation.pooled)  # the same parameters on the same masks


def test_results_page_rescores_at_a_new_threshold_as_a_new_evaluation(populated):
    trained, _ = populated
    at = _page(RESULTS).run()
    at.selectbox(key="results_run").set_value(trained).run()
    before = {e.id for e in db.list_evaluations(trained)}
    next(s for s in at.slider if s.label == "Threshold").set_value(0.3)
    next(b for b in at.button if b.label == "Re-score").click().run()
    _no_exception(at)
    new = [e for e in db.list_evaluations(trained) if e.id not in before]
    assert len(new) == 1 and new[0].threshold == pytest.approx(0.3)
    assert at.selectbox(key="results_evaluation").value == new[0].id
    assert {m.label: m.value for m in at.metric}["Threshold"] == "0.3"
    assert "Threshold of this evaluation: **0.3 (set by hand)**" in _texts(at, "caption")


# --------------------------------------------------------------------------- #
# Compare
# --------------------------------------------------------------------------- #


def test_compare_page_shows_differences_scores_curves_and_per_image_changes(populated):
    trained, copy = populated
    at = _page(COMPARE).run()
    _no_exception(at)
    assert sorted(at.multiselect(key="compare_runs").value) == sorted([trained, copy])

    differences = at.dataframe[0].value
    assert differences.loc["Crop size"].tolist() == ["128", "64"]  # newest run first
    assert differences.loc["Learning rate"].tolist() == ["0.001", "0.0005"]  # the default, filled in
    assert "Epochs" not in differences.index  # the same in both
    chosen = f"{db.get_run(trained).threshold:g} (chosen on validation)"
    assert differences.loc["Run threshold"].tolist() == ["0.5 (fixed)", chosen]

    side = at.dataframe[2].value  # after the full settings table
    assert set(side.columns) == {f"#{trained} tiny baseline", f"#{copy} tiny copy"}
    compared = db.compare_runs([trained, copy]).set_index("run_id")
    assert side.loc["IoU", f"#{copy} tiny copy"] == pytest.approx(compared.loc[copy, "iou"])

    assert len(at.get("plotly_chart")) == 5  # PR and ROC curves, grouped boxes, learning curves, difference bars
    at.selectbox(key="compare_a").set_value(trained)
    at.selectbox(key="compare_b").set_value(copy).run()
    difference = at.dataframe[3].value
    assert (difference["difference"] > 0).all()  # every score of the copy was raised
    assert "B is better on" in _texts(at, "markdown")
    # The newest test evaluation's threshold: the run's own, or one set by hand (a re-score before this test).
    from ui.run_text import evaluation_threshold_text

    shown = evaluation_threshold_text(db.latest_evaluation(trained, "test"), db.get_run(trained))
    assert shown in (chosen, "0.3 (set by hand)")
    assert f"#{trained} tiny baseline **{shown}**" in _texts(at, "markdown")
    assert f"#{copy} tiny copy **0.5 (fixed)**" in _texts(at, "markdown")


def test_compare_page_asks_for_two_runs_when_one_is_chosen(populated):
    trained, _ = populated
    at = _page(COMPARE).run()
    at.multiselect(key="compare_runs").set_value([trained]).run()
    _no_exception(at)
    assert "Choose at least two runs." in _texts(at, "info")


def test_compare_page_shows_an_lacosmic_run_next_to_a_trained_one(populated, lacosmic):
    trained, _ = populated
    at = _page(COMPARE).run()
    at.multiselect(key="compare_runs").set_value([trained, lacosmic]).run()
    _no_exception(at)
    la_name, trained_name = f"#{lacosmic} la cosmic", f"#{trained} tiny baseline"

    differences = at.dataframe[0].value
    assert differences.loc["Method", la_name] == "LA Cosmic (no training)"
    assert differences.loc["Method", trained_name] == "DeepLabV3+ (trained)"
    assert differences.loc["Backbone weights used", la_name] == "LA Cosmic (no training)"
    assert differences.loc["Gain", la_name] == "measured on each frame"
    side = at.dataframe[2].value
    compared = db.compare_runs([trained, lacosmic]).set_index("run_id")
    assert side.loc["IoU", la_name] == pytest.approx(compared.loc[lacosmic, "iou"])
    at.selectbox(key="compare_a").set_value(trained)
    at.selectbox(key="compare_b").set_value(lacosmic).run()
    _no_exception(at)
    # PR and ROC curves of both, grouped boxes, the trained run's learning curves, difference bars
    assert len(at.get("plotly_chart")) == 5
    difference = at.dataframe[3].value
    per_image = db.compare_per_image(
        [db.list_evaluations(trained)[0].id, db.list_evaluations(lacosmic)[0].id], metric="iou"
    )
    assert len(difference) == len(per_image) == 2
    assert f"{la_name}: LA Cosmic (no training), no learning curves; parameters: sigclip" in _texts(at, "caption")
    assert f"{la_name} **none: LA Cosmic (no training) gives masks**" in _texts(at, "markdown")
