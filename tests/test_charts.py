"""The app's figures carry exactly the data they are given, with image names on hover."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from segcore.metrics import BOUNDED_SCORES
from ui import charts


@pytest.fixture
def per_image():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"image": [f"frame_{i:03d}.png" for i in range(7)]})
    for metric in BOUNDED_SCORES:
        table[metric] = rng.uniform(0, 1, len(table))
    table["true_count"] = rng.integers(0, 9, len(table))
    table["pred_count"] = rng.integers(0, 9, len(table))
    return table


@pytest.fixture
def epochs():
    return pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "loss": [0.9, 0.5, 0.3],
            "val_loss": [1.0, 0.6, 0.4],
            "precision": [0.1, 0.4, 0.6],
            "val_precision": [0.1, 0.3, 0.5],
            "recall": [0.2, 0.5, 0.7],
            "val_recall": [0.1, 0.4, 0.6],
            "specificity": [0.99, 0.995, 0.999],
            "iou": [0.05, 0.3, 0.5],
            "val_iou": [0.04, 0.25, 0.45],
            "learning_rate": [1e-4, 1e-4, 9e-5],
        }
    )


def test_learning_curves_draw_training_and_validation_of_every_panel(epochs):
    figure = charts.learning_curves(epochs)
    # loss, precision, recall, iou with validation twins; specificity alone
    assert len(figure.data) == 9
    by_name = {(t.name, tuple(t.y)) for t in figure.data}
    assert ("Validation", tuple(epochs["val_loss"])) in by_name
    assert ("Training", tuple(epochs["specificity"])) in by_name


def test_learning_curves_count_epochs_from_one(epochs):
    figure = charts.learning_curves(epochs)
    assert list(figure.data[0].x) == [1, 2, 3]


def test_learning_curves_legend_names_training_and_validation_once(epochs):
    figure = charts.learning_curves(epochs)
    assert sorted(t.name for t in figure.data if t.showlegend) == ["Training", "Validation"]


def test_learning_curves_of_a_run_without_epochs_is_an_empty_figure():
    figure = charts.learning_curves(pd.DataFrame(columns=["epoch", "loss"]))
    assert len(figure.data) == 0


def test_overlaid_learning_curves_draw_one_colour_per_run(epochs):
    other = epochs.assign(loss=epochs["loss"] / 2)
    figure = charts.overlaid_learning_curves({"run a": epochs, "run b": other}, panels=("loss", "iou"))
    assert len(figure.data) == 8
    colours = {t.legendgroup: t.line.color for t in figure.data}
    assert colours["run a"] != colours["run b"]
    run_b_loss = [t for t in figure.data if t.name == "run b (training)" and tuple(t.y) == tuple(other["loss"])]
    assert len(run_b_loss) == 1


def test_overlaid_learning_curves_skip_a_run_with_no_epochs_yet(epochs):
    figure = charts.overlaid_learning_curves({"a": epochs, "b": pd.DataFrame()}, panels=("loss",))
    assert {t.legendgroup for t in figure.data} == {"a"}


def test_metrics_boxplot_has_one_box_per_metric_with_the_values(per_image):
    figure = charts.metrics_boxplot(per_image)
    assert len(figure.data) == len(BOUNDED_SCORES)
    assert all(isinstance(t, go.Box) for t in figure.data)
    for trace, metric in zip(figure.data, BOUNDED_SCORES):
        assert trace.name == charts.label(metric)
        np.testing.assert_allclose(trace.y, per_image[metric])


def test_metrics_boxplot_hover_names_the_image(per_image):
    figure = charts.metrics_boxplot(per_image)
    for trace in figure.data:
        assert list(trace.text) == list(per_image["image"])
        assert "%{text}" in trace.hovertemplate
        assert trace.boxpoints == "all"


def test_metrics_boxplot_leaves_out_metrics_with_no_values(per_image):
    figure = charts.metrics_boxplot(per_image.assign(object_recall=np.nan))
    assert "Object recall" not in [t.name for t in figure.data]


def test_metric_boxplot_shows_one_metric_alone(per_image):
    figure = charts.metric_boxplot(per_image, "dice")
    assert len(figure.data) == 1
    np.testing.assert_allclose(figure.data[0].y, per_image["dice"])
    assert list(figure.data[0].text) == list(per_image["image"])


def test_metric_boxplot_refuses_an_unknown_metric(per_image):
    with pytest.raises(ValueError, match="no column 'bogus'"):
        charts.metric_boxplot(per_image, "bogus")


def test_grouped_boxplot_has_one_trace_per_run_over_all_metrics(per_image):
    other = per_image.assign(iou=per_image["iou"] / 2)
    figure = charts.grouped_boxplot({"run 1": per_image, "run 2": other}, metrics=("iou", "f1"))
    assert [t.name for t in figure.data] == ["run 1", "run 2"]
    assert figure.layout.boxmode == "group"
    second = figure.data[1]
    n = len(per_image)
    assert list(second.x) == ["IoU"] * n + ["F1"] * n
    np.testing.assert_allclose(second.y, list(other["iou"]) + list(other["f1"]))
    assert list(second.text) == list(per_image["image"]) * 2


def test_per_image_difference_sorts_where_b_beats_a_most_first():
    wide = pd.DataFrame({"image": ["x", "y", "z", "w"], "A": [0.5, 0.9, 0.2, np.nan], "B": [0.6, 0.1, 0.9, 0.3]})
    table = charts.per_image_difference(wide, "A", "B")
    assert list(table["image"]) == ["z", "x", "y"]
    np.testing.assert_allclose(table["difference"], [0.7, 0.1, -0.8])


def test_per_image_difference_reads_images_from_the_index():
    wide = pd.DataFrame({"A": [0.1, 0.5], "B": [0.2, 0.2]}, index=pd.Index(["p", "q"], name="image"))
    table = charts.per_image_difference(wide, "A", "B")
    assert list(table["image"]) == ["p", "q"]


def test_difference_bars_show_the_differences_per_image():
    wide = pd.DataFrame({"image": ["x", "y", "z"], "A": [0.5, 0.9, 0.2], "B": [0.6, 0.1, 0.9]})
    table = charts.per_image_difference(wide, "A", "B")
    figure = charts.difference_bars(table, "A", "B", "iou")
    bars = figure.data[0]
    assert list(bars.y) == ["z", "x", "y"]
    np.testing.assert_allclose(bars.x, [0.7, 0.1, -0.8])
    assert bars.marker.color[0] != bars.marker.color[2]  # better and worse read differently
    assert "%{y}" in bars.hovertemplate


def test_metric_summary_is_mean_and_population_std(per_image):
    table = charts.metric_summary(per_image)
    assert list(table.index) == list(BOUNDED_SCORES)
    assert table.loc["iou", "mean"] == pytest.approx(per_image["iou"].mean())
    assert table.loc["iou", "std"] == pytest.approx(np.std(per_image["iou"]))
    assert table.loc["f1", "mean ± std"] == f"{per_image['f1'].mean():.3f} ± {np.std(per_image['f1']):.3f}"


def test_config_differences_keep_only_keys_that_differ():
    table = charts.config_differences(
        {"a": {"epochs": 10, "crop_size": 256, "learning_rate": 1e-4}, "b": {"epochs": 10, "crop_size": 128}}
    )
    assert list(table.index) == ["crop_size", "learning_rate"]
    assert table.loc["crop_size"].tolist() == ["256", "128"]
    assert table.loc["learning_rate"].tolist() == ["0.0001", "-"]


def test_labels_read_like_words():
    assert charts.label("val_iou") == "Validation IoU"
    assert charts.label("pixel_accuracy") == "Pixel accuracy"
    assert charts.label("some_new_metric") == "Some new metric"


def test_loss_is_drawn_on_a_log_axis(epochs):
    figure = charts.learning_curves(epochs)
    assert figure.layout.yaxis.type == "log"  # the first panel is the loss
    assert figure.layout.yaxis2.type != "log"


# --- precision-recall and ROC curves ----------------------------------------------------


@pytest.fixture
def histogram():
    from segcore.curves import ProbabilityHistogram

    rng = np.random.default_rng(3)
    true = rng.random((60, 60)) < 0.05
    probabilities = np.where(true, rng.beta(5, 2, true.shape), rng.beta(1, 8, true.shape))
    counts = ProbabilityHistogram()
    counts.add(true, probabilities)
    return counts, true, probabilities


def test_curve_table_rows_are_the_histograms_exact_points(histogram):
    counts, true, probabilities = histogram
    table = charts.curve_table(counts)
    assert table["threshold"].is_monotonic_decreasing
    row = table[table["threshold"] == 0.5].iloc[0] if (table["threshold"] == 0.5).any() else None
    point = counts.at_threshold(0.5)
    if row is not None:
        assert (row["precision"], row["recall"], row["fpr"]) == pytest.approx((point["precision"], point["recall"], point["fpr"]))
    # consecutive rows differ: empty bins leave no repeated points
    assert not (table[["recall", "fpr"]].diff().iloc[1:] == 0).all(axis=1).any()
    assert (table["recall"].iloc[0], table["recall"].iloc[-1]) == (0.0, 1.0)


def test_pr_curves_draw_one_line_per_run_and_mark_the_thresholds(histogram):
    counts = histogram[0]
    table = charts.curve_table(counts)
    points = [
        {"run": "A", "kind": "evaluation", "threshold": 0.5, **counts.at_threshold(0.5)},
        {"run": "B", "kind": "slider", "threshold": 0.3, **counts.at_threshold(0.3)},
    ]
    figure = charts.pr_curves({"A": table, "B": table}, points)
    lines = [t for t in figure.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["A (pixels)", "B (pixels)"]
    np.testing.assert_allclose(lines[0].x, table.dropna(subset=["precision"])["recall"])
    markers = [t for t in figure.data if t.mode == "markers"]
    assert [(t.x[0], t.y[0]) for t in markers] == [
        (points[0]["recall"], points[0]["precision"]), (points[1]["recall"], points[1]["precision"])
    ]
    assert [t.marker.symbol for t in markers] == ["diamond", "circle"]
    assert markers[1].marker.color == lines[1].line.color  # the point has its run's colour


def test_pr_curves_draw_the_object_curve_dashed(histogram):
    from segcore.curves import ObjectCurve

    _, true, probabilities = histogram
    objects = ObjectCurve()
    objects.add(true, probabilities)
    table = charts.object_curve_table(objects)
    figure = charts.pr_curves({"A": charts.curve_table(histogram[0])}, objects={"A": table})
    dashed = [t for t in figure.data if t.line.dash == "dash"]
    assert len(dashed) == 1 and dashed[0].name == "A (cosmics)"
    np.testing.assert_allclose(dashed[0].y, table["object_precision"])


def test_roc_curves_use_a_log_axis_for_the_false_positive_rate(histogram):
    counts = histogram[0]
    table = charts.curve_table(counts)
    point = {"run": "A", "kind": "slider", "threshold": 0.5, **counts.at_threshold(0.5)}
    figure = charts.roc_curves({"A": table}, [point])
    assert figure.layout.xaxis.type == "log"
    line = figure.data[0]
    assert min(line.x) > 0  # no zero on a log axis
    np.testing.assert_allclose(line.y, table[table["fpr"] > 0]["recall"])
    assert (figure.data[1].x[0], figure.data[1].y[0]) == (point["fpr"], point["recall"])


def test_count_errors_come_before_the_count_score_in_the_summary():
    table = pd.DataFrame({"image": ["a", "b"], "count_error": [-0.5, 2.0], "abs_count_error": [0.5, 2.0],
                          "count_score": [0.5, 1.0], "f1": [0.2, 0.4]})
    summary = charts.metric_summary(table)
    assert list(summary.index) == ["f1", "count_error", "abs_count_error", "count_score"]
    assert summary.loc["abs_count_error", "mean"] == 1.25
    figure = charts.metric_boxplot(table, "count_error")
    assert figure.layout.yaxis.range is None  # not clipped to [0, 1]
