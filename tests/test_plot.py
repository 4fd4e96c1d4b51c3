"""plot_fusion: partition sizes, local against fused scores, the fusion tree."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import dask
import dask.array as da
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.preprocessing import StandardScaler

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer
from daskfuse.fusion import Weighted
from daskfuse.plot import fusion_tree, plot_fusion

matplotlib.use("Agg")


def _stacked_rows(ax):
    """Total bar height per partition in the rows panel (stacked segments summed)."""
    totals = defaultdict(float)
    for patch in ax.patches:
        if patch.get_gid() == "rows":
            totals[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    return [totals[i] for i in sorted(totals)]


def _nodes(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    return 0 if not found else len(found[0].get_offsets())


def _line(ax, gid):
    (line,) = [ln for ln in ax.lines if ln.get_gid() == gid]
    return line


@pytest.fixture
def classifier(multiclass_data):
    X, y = multiclass_data
    clf = FusedClassifier(
        LogisticRegression(), n_partitions=6, partition="random", split_every=3, random_state=0
    )
    return clf.fit(X, y), X, y


@pytest.fixture
def regressor(regression_data):
    X, y = regression_data
    return FusedRegressor(Ridge(), n_partitions=5, fusion="weighted").fit(X, y), X, y


def test_classifier_figure(classifier):
    clf, X, y = classifier
    fig = plot_fusion(clf, X=X, y=y)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    rows_ax, score_ax, tree_ax = fig.axes
    report = clf.partition_report_
    assert_allclose(_stacked_rows(rows_ax), report["rows"])
    # stacked by class: one segment per class and partition
    classes = len(clf.classes_)
    assert len([p for p in rows_ax.patches if p.get_gid() == "rows"]) == classes * 6
    legend = [t.get_text() for t in rows_ax.get_legend().get_texts()]
    assert legend == [f"class {c}" for c in clf.classes_]

    train = _line(score_ax, "train_score")
    assert_allclose(train.get_xdata(), report["partition"])
    assert_allclose(train.get_ydata(), report["train_score"].astype(float))
    fused = _line(score_ax, "fused_score")
    assert_allclose(fused.get_ydata()[0], clf.score(X, y))
    assert not [ln for ln in score_ax.lines if ln.get_gid() == "mean_score"]

    assert _nodes(tree_ax, "daskfuse-fit") == 6
    assert _nodes(tree_ax, "daskfuse-combine") == 2 + 1
    assert _nodes(tree_ax, "daskfuse-finalize") == 1
    assert "LogisticRegression" in fig.get_suptitle()


def test_regressor_figure_without_data_draws_the_mean_of_local_scores(regressor):
    reg, X, y = regressor
    fig = plot_fusion(reg)
    rows_ax, score_ax, tree_ax = fig.axes
    report = reg.partition_report_
    assert_allclose(_stacked_rows(rows_ax), report["rows"])
    assert len([p for p in rows_ax.patches if p.get_gid() == "rows"]) == 5
    assert rows_ax.get_legend() is None
    mean = _line(score_ax, "mean_score")
    expected = np.average(report["train_score"].astype(float), weights=report["rows"])
    assert_allclose(mean.get_ydata()[0], expected)
    assert "not the fused model's score" in mean.get_label()
    assert not [ln for ln in score_ax.lines if ln.get_gid() == "fused_score"]
    assert score_ax.get_ylabel() == "R²"
    assert _nodes(tree_ax, "daskfuse-fit") == 5
    assert _nodes(tree_ax, "daskfuse-combine") == 1

    scored = plot_fusion(reg, X=X, y=y)
    assert_allclose(_line(scored.axes[1], "fused_score").get_ydata()[0], reg.score(X, y))


@pytest.mark.parametrize(
    ("split_every", "combines"), [(2, 4 + 2 + 1), (3, 3 + 1), (8, 1)]
)
def test_tree_panel_has_the_graph_shape(binary_data, split_every, combines):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500)
    clf = FusedClassifier(LogisticRegression(), split_every=split_every)
    with dask.config.set(scheduler="sync"):
        clf.fit(Xd, yd)
    assert clf.n_partitions_ == 8
    tree_ax = plot_fusion(clf).axes[2]
    assert _nodes(tree_ax, "daskfuse-fit") == 8
    assert _nodes(tree_ax, "daskfuse-combine") == combines
    assert _nodes(tree_ax, "daskfuse-finalize") == 1
    assert sum(len(level) for level in fusion_tree(8, split_every)) == combines


@pytest.mark.parametrize(("n", "split_every"), [(1, 2), (2, 2), (7, 2), (8, 3), (9, 3), (20, 4)])
def test_fusion_tree_matches_the_fit_graph(n, split_every):
    """fusion_tree groups the nodes as the combine keys of the real graph do."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40 * n, 2))
    y = (X[:, 0] > 0).astype(int)
    graph = FusedClassifier(
        LogisticRegression(), n_partitions=n, partition="stratified", random_state=0,
        split_every=split_every,
    ).fit_graph(X, y)
    hlg = dict(graph.__dask_graph__())
    combine = {k: v for k, v in hlg.items()
               if isinstance(k, tuple) and k[0].startswith("daskfuse-combine-")}
    levels = fusion_tree(n, split_every)
    assert sorted((k[1], k[2]) for k in combine) == [
        (depth + 1, j) for depth, level in enumerate(levels) for j in range(len(level))
    ]
    for key in combine:
        children = sorted(
            d[-1] for d in dask.core.get_dependencies(hlg, key)
            if isinstance(d, tuple) and d[0].startswith(("daskfuse-fit-", "daskfuse-combine-"))
        )
        assert children == list(levels[key[1] - 1][key[2]])


def test_fusion_tree_validates():
    assert fusion_tree(1, 2) == []
    assert [len(level) for level in fusion_tree(100, 10)] == [10, 1]
    with pytest.raises(ValueError, match="split_every must be an int >= 2"):
        fusion_tree(4, 1)
    with pytest.raises(ValueError, match="n_partitions must be an int >= 1"):
        fusion_tree(0, 2)


def test_held_out_rows_are_shown_and_holdout_scores_drawn(binary_data):
    X, y = binary_data
    clf = FusedClassifier(
        SGDClassifier(), fusion=Weighted(by="score"), n_partitions=4, random_state=0
    ).fit(X, y)
    rows_ax, score_ax, _ = plot_fusion(clf).axes
    assert_allclose(_stacked_rows(rows_ax), clf.partition_report_["rows"])
    labels = [t.get_text() for t in rows_ax.get_legend().get_texts()]
    assert labels[-1] == "held out for scoring"
    hold = _line(score_ax, "holdout_score")
    assert_allclose(hold.get_ydata(), clf.partition_report_["holdout_score"].astype(float))


def test_single_partition_clusterer_and_transformer(regression_data):
    X, _ = regression_data
    km = FusedClusterer(KMeans(n_clusters=3, n_init=2, random_state=0), n_partitions=3)
    km.fit(X)
    fig = plot_fusion(km, X=X)
    # k-means scores (-inertia) are compared per row
    assert_allclose(_line(fig.axes[1], "fused_score").get_ydata()[0], km.score(X) / len(X))
    train = _line(fig.axes[1], "train_score").get_ydata()
    report = km.partition_report_
    assert_allclose(train, report["train_score"] / report["rows"])

    scaler = FusedTransformer(StandardScaler(), n_partitions=1).fit(X)
    fig = plot_fusion(scaler, X=X)
    rows_ax, score_ax, tree_ax = fig.axes
    assert _stacked_rows(rows_ax) == [len(X)]
    assert not score_ax.lines
    assert "no partition scores" in score_ax.texts[0].get_text()
    assert _nodes(tree_ax, "daskfuse-fit") == 1
    assert _nodes(tree_ax, "daskfuse-combine") == 0
    assert _nodes(tree_ax, "daskfuse-finalize") == 1
    assert tree_ax.get_title() == "fusion tree: 1 partition, split_every=8"


def test_dask_inputs_on_the_cluster(on_cluster, binary_data):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    clf = FusedClassifier(LogisticRegression(), split_every=2).fit(Xd, yd)
    fig = plot_fusion(clf, X=Xd, y=yd)
    assert_allclose(_line(fig.axes[1], "fused_score").get_ydata()[0], clf.score(X, y))
    assert _nodes(fig.axes[2], "daskfuse-combine") == 2 + 1


def test_saves_png(classifier, tmp_path):
    clf, X, y = classifier
    path = tmp_path / "fusion.png"
    plot_fusion(clf, X=X, y=y).savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_new_figures_are_not_left_open_in_pyplot(classifier):
    import matplotlib.pyplot as plt

    clf, _, _ = classifier
    before = plt.get_fignums()
    fig = plot_fusion(clf)
    assert plt.get_fignums() == before
    fig.canvas.draw()


def test_draws_into_a_given_figure(classifier):
    clf, _, _ = classifier
    fig = Figure(figsize=(9, 3))
    fig.add_subplot()
    assert plot_fusion(clf, fig=fig) is fig
    assert len(fig.axes) == 3
    sub = Figure().subfigures(2, 1)[1]
    plot_fusion(clf, fig=sub)
    assert len(sub.axes) == 3


def test_errors(classifier):
    clf, X, y = classifier
    with pytest.raises(NotFittedError):
        plot_fusion(FusedClassifier(LogisticRegression()))
    with pytest.raises(NotFittedError):
        plot_fusion(FusedRegressor(Ridge()))
    with pytest.raises(TypeError, match="needs a daskfuse estimator"):
        plot_fusion(clf.fused_estimator_)
    with pytest.raises(ValueError, match="X was given without y"):
        plot_fusion(clf, X=X)
    with pytest.raises(ValueError, match="y was given without X"):
        plot_fusion(clf, y=y)


def test_daskfuse_imports_without_matplotlib():
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import numpy as np\n"
        "from sklearn.linear_model import Ridge\n"
        "import daskfuse, daskfuse.plot\n"
        "X = np.arange(40.0).reshape(20, 2)\n"
        "reg = daskfuse.FusedRegressor(Ridge(), n_partitions=2).fit(X, X[:, 0])\n"
        "try:\n"
        "    daskfuse.plot.plot_fusion(reg)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "plot_fusion needs matplotlib" in out.stdout
