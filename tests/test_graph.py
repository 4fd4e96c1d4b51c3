"""The task graph: names, shape, locality, schedulers, lazy prediction."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.utils import key_split
from distributed import wait
from distributed.utils import key_split_group
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.naive_bayes import GaussianNB

from daskfuse import FusedClassifier, FusedRegressor


def _keys(graph):
    return set(dict(graph.__dask_graph__()))


def _step(key):
    return key_split(key)


def test_key_names_are_deterministic_and_grouped(binary_data):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500)
    clf = FusedClassifier(LogisticRegression(), split_every=3)
    keys = _keys(clf.fit_graph(Xd, yd))
    assert keys == _keys(clf.fit_graph(Xd, yd))
    assert keys == _keys(FusedClassifier(LogisticRegression(), split_every=3).fit_graph(Xd, yd))

    ours = [k for k in keys if isinstance(k, tuple) and k[0].startswith("daskfuse-")]
    # distributed names task groups after a tuple key's first element
    groups = {key_split_group(k).rsplit("-", 1)[0] for k in ours}
    assert groups == {"daskfuse-fit", "daskfuse-combine", "daskfuse-finalize"}
    fits = sorted(k for k in ours if _step(k) == "daskfuse-fit")
    assert [k[1] for k in fits] == list(range(8))
    combines = sorted(k for k in ours if _step(k) == "daskfuse-combine")
    # 8 leaves, fan-in 3: 3 nodes on level 1, 1 on level 2
    assert [(k[1], k[2]) for k in combines] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    finalize = [k for k in ours if k[0].startswith("daskfuse-finalize-")]
    assert finalize == [(finalize[0][0], 0)]
    token = finalize[0][0].rsplit("-", 1)[1]
    assert all(k[0].endswith(token) for k in ours)

    other = _keys(FusedClassifier(LogisticRegression(C=0.5), split_every=3).fit_graph(Xd, yd))
    assert not {k for k in other if str(k).startswith("('daskfuse-")} & set(ours)


def test_fit_tasks_read_only_their_own_partition(binary_data):
    X, y = binary_data
    Xd, yd = da.from_array(X, chunks=(1000, -1)), da.from_array(y, chunks=1000)
    graph = FusedClassifier(LogisticRegression()).fit_graph(Xd, yd)
    deps = dask.core.get_dependencies
    hlg = dict(graph.__dask_graph__())
    x_blocks = [b.key for b in Xd.to_delayed().ravel()]
    for key in hlg:
        if _step(key) == "daskfuse-fit":
            i = key[1]
            data = {d for d in deps(hlg, key) if d != key}
            assert x_blocks[i] in data
            assert not (set(x_blocks) - {x_blocks[i]}) & data


def test_fits_run_where_the_blocks_are(on_cluster, binary_data):
    """Each fit task depends on its own row block and no other, so the scheduler can
    run it where the block is; most do (work stealing may move a few to an idle
    worker, more so on a loaded machine, so the runtime check is loose)."""
    X, y = binary_data
    Xd = da.from_array(X, chunks=(500, -1)).persist()
    yd = da.from_array(y, chunks=500).persist()
    wait([Xd, yd])
    holders = on_cluster.who_has(Xd)
    block_keys = [b.key for b in Xd.to_delayed().ravel()]
    est = FusedClassifier(LogisticRegression())
    graph = dict(est.fit_graph(Xd, yd).__dask_graph__())
    fit_keys = sorted(k for k in graph if isinstance(k, tuple) and "daskfuse-fit" in k[0])
    assert len(fit_keys) == len(block_keys)
    for key in fit_keys:
        deps = set(graph[key].dependencies)
        assert deps & set(block_keys) == {block_keys[key[1]]}
    clf = est.fit(Xd, yd)
    report = clf.partition_report_
    assert set(report["worker"]) <= set(on_cluster.nthreads())
    local = [w in holders[k] for w, k in zip(report["worker"], block_keys)]
    assert sum(local) >= len(local) / 2, local

def test_processes_scheduler(binary_data):
    X, y = binary_data
    with dask.config.set(scheduler="processes", num_workers=2):
        clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    reference = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    assert_allclose(clf.fused_estimator_.coef_, reference.fused_estimator_.coef_, rtol=1e-12)


def test_the_issue_example_runs(on_cluster):
    X = da.random.random((200_000, 20), chunks=(25_000, 20))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    clf = FusedClassifier(SGDClassifier(random_state=0), fusion="weighted").fit(X, y)
    assert type(clf.fused_estimator_) is SGDClassifier
    pred = clf.predict(X)
    assert isinstance(pred, da.Array)
    assert pred.chunks[0] == X.chunks[0]
    Xs, ys = dask.compute(X[:1000], y[:1000])
    assert isinstance(clf.predict(Xs), np.ndarray)
    assert_array_equal(pred[:1000].compute(), clf.predict(Xs))
    score = clf.score(X, y)
    assert isinstance(score, float) and score > 0.95
    assert clf.n_partitions_ == 8
    assert set(clf.partition_report_.columns) >= {
        "partition", "rows", "class_counts", "train_score", "fit_seconds", "worker",
    }


def test_lazy_methods_match_in_memory(scheduler, multiclass_data):
    X, y = multiclass_data
    clf = FusedClassifier(LogisticRegression(), n_partitions=3).fit(X, y)
    Xd = da.from_array(X, chunks=(700, -1))
    ddf = dd.from_pandas(pd.DataFrame(X), npartitions=3, sort=False)
    for method in ["predict", "predict_proba", "decision_function", "predict_log_proba"]:
        expected = getattr(clf, method)(X)
        lazy = getattr(clf, method)(Xd)
        assert isinstance(lazy, da.Array)
        assert_allclose(lazy.compute(), expected, err_msg=method)
        assert_allclose(np.asarray(getattr(clf, method)(ddf).compute()), expected)
    assert clf.score(Xd, da.from_array(y, chunks=700)) == pytest.approx(clf.score(X, y))


def test_binary_decision_function_is_one_dimensional(binary_data):
    X, y = binary_data
    clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    out = clf.decision_function(da.from_array(X, chunks=(1000, -1)))
    assert out.ndim == 1 and out.shape == (len(X),)


def test_regressor_dask_score_is_r2(scheduler, regression_data):
    X, y = regression_data
    reg = FusedRegressor(Ridge(), n_partitions=3).fit(X, y)
    lazy = reg.score(da.from_array(X, chunks=(400, -1)), da.from_array(y, chunks=400))
    assert isinstance(lazy, float)
    assert lazy == pytest.approx(reg.score(X, y), rel=1e-10)


class _NeedsAligned(Ridge):
    """A Ridge that refuses arrays whose data NumPy flags as not aligned."""

    def fit(self, X, y, sample_weight=None):
        for name, a in (("X", X), ("y", y)):
            if not a.flags.aligned:
                raise ValueError(f"{name} is not aligned")
        return super().fit(X, y, sample_weight)


def _unaligned(a):
    """A copy of ``a`` whose data start one byte into a buffer, as a deserialized
    array can (distributed hands such arrays to tasks)."""
    buffer = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.frombuffer(buffer.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def _unaligned_blocks(a, rows):
    """A dask array whose every block a task computes is unaligned."""
    blocks = [
        da.from_delayed(
            dask.delayed(_unaligned)(a[i : i + rows]),
            shape=a[i : i + rows].shape,
            dtype=a.dtype,
        )
        for i in range(0, len(a), rows)
    ]
    return da.concatenate(blocks)


def test_unaligned_blocks_are_realigned_before_the_fit(scheduler):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = X @ np.arange(1.0, 5.0) + rng.normal(size=600)
    Xd, yd = _unaligned_blocks(X, 150), _unaligned_blocks(y, 150)
    # the blocks do reach a task unaligned
    flags = Xd.map_blocks(lambda b: np.array([[b.flags.aligned]]), chunks=(1, 1))
    assert not flags.compute(scheduler="sync").any()
    with pytest.raises(ValueError, match="not aligned"):
        _NeedsAligned().fit(_unaligned(X), y)

    model = FusedRegressor(_NeedsAligned(), fusion="vote").fit(Xd, yd)
    parts = [Ridge().fit(X[i : i + 150], y[i : i + 150]) for i in range(0, 600, 150)]
    expected = np.mean([part.predict(X) for part in parts], axis=0)
    assert_allclose(model.predict(X), expected, rtol=1e-10)


def _filtered_frames():
    """A dask DataFrame with a block of 0 rows (a filter emptied it), and the same rows
    in memory."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame["a"] + frame["b"] > 0).astype(int)
    frame.loc[20:39, "a"] = -5.0  # the whole second block
    ddf = dd.from_pandas(frame, npartitions=3, sort=False)
    kept = ddf[ddf["a"] > -4]
    assert kept.map_partitions(len).compute().tolist() == [20, 0, 20]
    return kept, frame[frame["a"] > -4]


def test_blocks_without_rows_give_empty_output(scheduler):
    from sklearn.decomposition import PCA

    from daskfuse import FusedTransformer

    kept, memory = _filtered_frames()
    features = ["a", "b", "c"]
    X, y = memory[features], memory["y"]
    clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    for method in ["predict", "predict_proba", "decision_function"]:
        lazy = getattr(clf, method)(kept[features])
        blocks = [np.asarray(b) for b in dask.compute(*lazy.to_delayed().ravel())]
        expected = getattr(clf, method)(X)
        assert blocks[1].shape == (0, *expected.shape[1:]), method
        assert all(b.dtype == expected.dtype for b in blocks), method
        assert_allclose(np.concatenate(blocks), expected, err_msg=method)
    assert clf.score(kept[features], kept["y"]) == pytest.approx(clf.score(X, y))

    reg = FusedRegressor(Ridge(), n_partitions=2).fit(X, memory["a"])
    assert reg.score(kept[features], kept["a"]) == pytest.approx(reg.score(X, memory["a"]))

    pca = FusedTransformer(PCA(n_components=2), n_partitions=2).fit(X)
    out = pca.transform(kept[features])
    blocks = dask.compute(*out.to_delayed().ravel())
    assert blocks[1].shape == (0, 2)
    assert_allclose(np.concatenate(blocks), pca.transform(X))
    back = pca.inverse_transform(out).compute()
    assert_allclose(back, pca.inverse_transform(pca.transform(X)))


def test_dask_score_with_a_column_vector_y_is_the_accuracy(scheduler):
    from sklearn.exceptions import DataConversionWarning

    kept, memory = _filtered_frames()
    features = ["a", "b", "c"]
    X, y = memory[features].to_numpy(), memory["y"].to_numpy()
    clf = FusedClassifier(LogisticRegression(), n_partitions=2).fit(X, y)
    expected = clf.score(X, y)
    Xd = da.from_array(X, chunks=(13, -1))
    columns = [
        da.from_array(y[:, None], chunks=(13, 1)),
        y[:, None],
        kept[["y"]],  # a one-column dask DataFrame
    ]
    for X_, y_ in zip([Xd, Xd, kept[features]], columns):
        with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
            assert clf.score(X_, y_) == pytest.approx(expected)
    assert clf.score(kept[features], kept["y"]) == pytest.approx(expected)
    assert clf.score(Xd, pd.Series(y)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="y must be 1-dimensional .* with 2 columns"):
        clf.score(kept[features], kept[["y", "b"]])


def _combine_levels(graph):
    """Combine nodes of a fit graph per level: {level: count}."""
    levels = {}
    for key in _keys(graph):
        if isinstance(key, tuple) and _step(key) == "daskfuse-combine":
            levels[key[1]] = levels.get(key[1], 0) + 1
    return dict(sorted(levels.items()))


@pytest.mark.parametrize(
    "n, split_every, levels",
    # n % split_every == 1: a lone leftover node at the first level
    [(5, 4, {1: 2, 2: 1}), (9, 4, {1: 3, 2: 1}), (7, 3, {1: 3, 2: 1})],
)
def test_tree_reduce_with_a_lone_leftover_keeps_every_partition(n, split_every, levels):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(n)
    X = rng.normal(size=(20 * n, 3))
    y_reg = X @ [1.0, -2.0, 0.5] + 0.3 + 0.1 * rng.normal(size=len(X))
    y_clf = (X[:, 0] + 0.3 * rng.normal(size=len(X)) > 0).astype(int)

    reg = FusedRegressor(LinearRegression(), n_partitions=n, split_every=split_every)
    assert _combine_levels(reg.fit_graph(X, y_reg)) == levels
    reg.fit(X, y_reg)
    report = reg.partition_report_
    assert report["partition"].tolist() == list(range(n))
    assert report["rows"].tolist() == [20] * n and not report["skipped"].any()
    exact = LinearRegression().fit(X, y_reg)
    assert_allclose(reg.fused_estimator_.coef_, exact.coef_, rtol=1e-10)
    assert_allclose(reg.fused_estimator_.intercept_, exact.intercept_, rtol=1e-10)

    models = {}
    for fan_in in (split_every, 2):
        clf = FusedClassifier(
            LogisticRegression(), fusion="weighted", n_partitions=n, split_every=fan_in
        ).fit(X, y_clf)
        assert clf.partition_report_["partition"].tolist() == list(range(n))
        assert clf.partition_report_["weight"].sum() == pytest.approx(len(X))
        models[fan_in] = clf.fused_estimator_
    assert_allclose(models[split_every].coef_, models[2].coef_, rtol=1e-12)
    assert_allclose(models[split_every].intercept_, models[2].intercept_, rtol=1e-12)


def test_predict_on_a_dask_frame_with_missing_nullable_values():
    """pd.NA in a nullable column is NaN at predict, as at fit (it raised TypeError)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from daskfuse import FusedClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": pd.array(rng.normal(size=60), dtype="Float64"), "b": rng.normal(size=60)}
    )
    frame.loc[[3, 40], "a"] = pd.NA
    y = pd.Series((frame["b"] > 0).astype(int))
    X, Y = dd.from_pandas(frame, npartitions=2), dd.from_pandas(y, npartitions=2)
    with dask.config.set(scheduler="sync"):
        model = FusedClassifier(
            HistGradientBoostingClassifier(max_iter=5), fusion="vote", n_partitions=None
        ).fit(X, Y)
        got = model.predict(X).compute()
        score = model.score(X, Y)
    expected = model.predict(frame.astype(float))
    np.testing.assert_array_equal(got, expected)
    assert score == pytest.approx(np.mean(expected == y.to_numpy()))


@pytest.mark.parametrize("fusion", ["weighted", "secure", "exact"])
def test_a_block_without_rows_is_left_out_of_the_fit(fusion):
    """A filter leaves a dask DataFrame with an empty block: the default fit failed
    with 'partition 1: the partition is empty'. It is left out, and the model is the
    one of the other blocks."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
    frame["y"] = (frame.a + frame.b > 0).astype(int)
    frame.loc[100:199, "c"] = 5.0  # the second block is filtered away whole
    ddf = dd.from_pandas(frame, npartitions=3, sort=False)
    kept = ddf[ddf.c < 4]
    estimator = LogisticRegression() if fusion != "exact" else GaussianNB()
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "skipped" warning for it
        model = FusedClassifier(estimator, fusion=fusion).fit(kept[["a", "b", "c"]], kept.y)
    report = model.partition_report_
    assert report["rows"].tolist() == [100, 0, 100]
    assert report["skipped"].tolist() == [False, True, False]
    assert report["error"].iloc[1] == "the partition is empty (0 rows)"
    rest = frame[frame.c < 4]
    parts = [rest.iloc[:100], rest.iloc[100:]]
    expected = FusedClassifier(clone(estimator), fusion=fusion, partition="chunks")
    with dask.config.set(scheduler="sync"):
        expected.fit(
            dd.from_pandas(rest[["a", "b", "c"]], npartitions=2, sort=False),
            dd.from_pandas(rest.y, npartitions=2, sort=False),
        )
    assert [len(p) for p in parts] == expected.partition_report_["rows"].tolist()
    probe = frame[["a", "b", "c"]].to_numpy()
    assert_allclose(model.predict_proba(probe), expected.predict_proba(probe), rtol=1e-12)


def test_only_blocks_without_rows_is_an_error():
    X = da.zeros((0, 2), chunks=(0, 2))
    y = da.zeros((0,), chunks=(0,))
    with dask.config.set(scheduler="sync"), pytest.raises(Exception, match="empty"):
        FusedRegressor(Ridge()).fit(X, y)
