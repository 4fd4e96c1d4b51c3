"""Vertical partitioning: Columns strategies, backfitting, column stacking, locality."""

from __future__ import annotations

import pickle
import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from daskfuse import FusedClassifier, FusedRegressor, FusedTransformer, FusionError
from daskfuse.models import ColumnStackingClassifier, ColumnStackingRegressor
from daskfuse.partition import Columns
from daskfuse.vertical import Backfit, ColumnStack, GlobalGradient, column_groups

# ------------------------------------------------------------------------ data


def _correlated(n, n_features=9, seed=0, strength=2.0):
    """Features in three correlated families, interleaved (0, 3, 6 are one family)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    return rng.normal(size=(n, n_features)) + strength * latent[:, np.arange(n_features) % 3]


@pytest.fixture
def ls_data():
    """Regression on correlated features (correlation across blocks: real rounds)."""
    rng = np.random.default_rng(1)
    X = _correlated(600, seed=1)
    y = X @ rng.normal(size=X.shape[1]) + 2.0 + 0.5 * rng.normal(size=len(X))
    return X, y


@pytest.fixture
def mild_data():
    """Regression on mildly correlated features: backfitting takes a few rounds."""
    rng = np.random.default_rng(5)
    X = _correlated(600, seed=5, strength=0.3)
    return X, X @ rng.normal(size=X.shape[1]) + 1.0 + 0.5 * rng.normal(size=len(X))


@pytest.fixture
def logit_data():
    rng = np.random.default_rng(2)
    X = _correlated(800, seed=2, strength=1.0)
    eta = X @ rng.normal(size=X.shape[1]) * 0.5 - 0.4
    return X, (eta + rng.logistic(size=len(X)) > 0).astype(int)


@pytest.fixture
def three_class_data():
    rng = np.random.default_rng(3)
    X = _correlated(900, seed=3, strength=0.5)
    logits = X @ rng.normal(size=(X.shape[1], 3)) * 0.5
    return X, np.array(["a", "b", "c"])[np.argmax(logits + rng.gumbel(size=logits.shape), 1)]


@pytest.fixture
def spread_data():
    """Binary labels from a linear rule whose weight is spread over all 12 features."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 12))
    return X, (X @ np.linspace(1.0, 0.5, 12) + 0.5 * rng.logistic(size=len(X)) > 0).astype(int)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _tight_backfit():
    return Backfit(max_rounds=400, tol=1e-9)


# ------------------------------------------------------------------ strategies


def test_chunks_strategy_takes_the_column_chunks():
    X = da.zeros((40, 7), chunks=(20, (3, 2, 2)))
    groups, strategy = column_groups(Columns(), X, 7, None)
    assert strategy == "chunks"
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4], [5, 6]]
    # one column chunk: auto splits uniformly
    groups, strategy = column_groups(Columns(n_blocks=2), da.zeros((4, 5), chunks=2), 5, None)
    assert strategy == "uniform"
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4]]


def test_groups_by_index_and_by_name():
    X = np.zeros((5, 5))
    groups, strategy = column_groups(Columns(groups=[[4, 0], [1, 2, 3]]), X, 5, None)
    assert strategy == "groups"
    assert [g.tolist() for g in groups] == [[0, 4], [1, 2, 3]]
    names = np.array(["a", "b", "c", "d", "e"], dtype=object)
    frame = pd.DataFrame(X, columns=names)
    groups, _ = column_groups(Columns(groups=[["e", "b"], ["a", "c", "d"]]), frame, 5, names)
    assert [g.tolist() for g in groups] == [[0, 2, 3], [1, 4]]


def test_dtype_strategy_groups_columns_by_dtype():
    frame = pd.DataFrame(
        {"x": [1.0, 2.0], "k": [1, 2], "y": [0.5, 0.1], "flag": [True, False], "j": [3, 4]}
    )
    groups, _ = column_groups(Columns(strategy="dtype"), frame, 5, None)
    assert [g.tolist() for g in groups] == [[0, 2], [1, 4], [3]]
    dframe = dd.from_pandas(frame, npartitions=1)
    dgroups, _ = column_groups(Columns(strategy="dtype"), dframe, 5, None)
    assert [g.tolist() for g in dgroups] == [[0, 2], [1, 4], [3]]


def test_correlation_strategy_puts_correlated_features_together():
    X = _correlated(2000, n_features=9, seed=5)
    families = [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    cols = Columns(n_blocks=3, strategy="correlation")
    groups, _ = column_groups(cols, X, 9, None)
    assert [g.tolist() for g in groups] == families
    # the same on the workers' moments of a column-chunked dask array
    dgroups, _ = column_groups(cols, da.from_array(X, chunks=(500, 4)), 9, None)
    assert [g.tolist() for g in dgroups] == families


def test_uniform_and_random_strategies_cover_every_column_once():
    X = np.zeros((3, 10))
    uniform, _ = column_groups(Columns(n_blocks=3), X, 10, None)
    assert [g.tolist() for g in uniform] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    a, _ = column_groups(Columns(n_blocks=3, strategy="random", random_state=7), X, 10, None)
    b, _ = column_groups(Columns(n_blocks=3, strategy="random", random_state=7), X, 10, None)
    assert [g.tolist() for g in a] == [g.tolist() for g in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    assert [g.tolist() for g in a] != [g.tolist() for g in uniform]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"strategy": "rows"}, ValueError, "strategy=...\\) must be one of"),
        ({"n_blocks": 0}, ValueError, "n_blocks=...\\) must be >= 1"),
        ({"n_blocks": 2.5}, TypeError, "n_blocks=...\\) must be a positive int"),
        ({"strategy": "groups"}, ValueError, "needs groups"),
        ({"groups": [[0], [1]], "strategy": "dtype"}, ValueError, "only used by strategy"),
        ({"groups": [[0, 1], [1]]}, ValueError, "column 1 is in groups\\[0\\] and groups\\[1\\]"),
        ({"groups": [[0], []]}, ValueError, "groups\\[1\\] is empty"),
        ({"groups": [[0], ["b"]]}, TypeError, "mixes column indices and names"),
        ({"groups": [[0.5]]}, TypeError, "expected column indices"),
        ({"groups": [[-1]]}, ValueError, "negative column index"),
        ({"groups": "abc"}, TypeError, "non-empty list of lists"),
        ({"random_state": -1}, ValueError, "random_state"),
    ],
)
def test_bad_columns_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        Columns(**kwargs)


@pytest.mark.parametrize(
    ("columns", "X", "match"),
    [
        (Columns(groups=[["a"], ["b"]]), np.zeros((4, 2)), "X has no column names"),
        (Columns(groups=[[0], [5]]), np.zeros((4, 2)), "X has 2 columns"),
        (Columns(groups=[[0], [1]]), np.zeros((4, 3)), "leaves column\\(s\\) \\[2\\] in no group"),
        (Columns(strategy="chunks"), np.zeros((4, 3)), "needs a dask array chunked"),
        (Columns(n_blocks=4), np.zeros((4, 3)), "larger than the number of columns"),
        (Columns(groups=[[0], [1, 2]], n_blocks=3), np.zeros((4, 3)), "contradicts"),
    ],
)
def test_columns_that_do_not_fit_the_data(columns, X, match):
    with pytest.raises(ValueError, match=match):
        FusedRegressor(Ridge(), partition=columns).fit(X, np.arange(4.0))


def test_unknown_column_names_are_listed():
    frame = pd.DataFrame(np.zeros((4, 2)), columns=["a", "b"])
    with pytest.raises(ValueError, match="names columns \\['z'\\] that X does not have"):
        FusedRegressor(Ridge(), partition=Columns(groups=[["a", "b"], ["z"]])).fit(
            frame, np.arange(4.0)
        )


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: FusedRegressor(Ridge(), partition=Columns(), n_partitions=3),
            ValueError,
            "n_partitions=3 counts row partitions",
        ),
        (
            lambda: FusedRegressor(Ridge(), partition=Columns(), fusion="weighted"),
            ValueError,
            "fusion must be 'auto', 'gradient', 'backfit', 'stack'",
        ),
        (
            lambda: FusedClassifier(
                DecisionTreeClassifier(), partition=Columns(), fusion="backfit"
            ),
            FusionError,
            "backfitting fuses LinearRegression.*'stack'",
        ),
        (
            lambda: FusedClassifier(
                LogisticRegression(l1_ratio=1.0, solver="saga"),
                partition=Columns(),
                fusion="backfit",
            ),
            FusionError,
            "an L1 term",
        ),
        (
            lambda: FusedClassifier(
                LogisticRegression(solver="liblinear"), partition=Columns(), fusion="backfit"
            ),
            FusionError,
            "penalises the intercept",
        ),
        (
            lambda: FusedTransformer(StandardScaler(), partition=Columns()),
            TypeError,
            "needs a FusedClassifier or FusedRegressor",
        ),
    ],
)
def test_bad_vertical_estimator_settings(make, error, match, logit_data):
    X, y = logit_data
    with pytest.raises(error, match=match):
        make().fit(X, y)


# ----------------------------------------------------------------- backfitting


@pytest.mark.parametrize(
    "estimator",
    [LinearRegression(), Ridge(alpha=30.0), Ridge(alpha=1.0, fit_intercept=False)],
    ids=["ols", "ridge", "ridge-no-intercept"],
)
def test_backfit_least_squares_equals_centralized(estimator, ls_data):
    X, y = ls_data
    reg = FusedRegressor(estimator, partition=Columns(n_blocks=3), fusion=_tight_backfit())
    with dask.config.set(scheduler="sync"):
        reg.fit(X, y)
    central = estimator.fit(X, y)
    fused = reg.fused_estimator_
    assert type(fused) is type(estimator)
    assert fused.coef_.shape == central.coef_.shape
    assert _rel(fused.coef_, central.coef_) < 1e-4
    assert fused.intercept_ == pytest.approx(central.intercept_, rel=1e-4, abs=1e-8)
    # the features are correlated across blocks: convergence takes several rounds,
    # each lowering the objective
    history = reg.history_
    assert len(history) > 3
    assert history["max_change"].iloc[-1] < 1e-9
    assert np.all(np.diff(history["objective"]) <= 1e-9 * history["objective"].iloc[0])


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(C=0.3),
        LogisticRegression(C=2.0, class_weight="balanced"),
        LogisticRegression(C=np.inf),
    ],
    ids=["C=0.3", "balanced", "unpenalised"],
)
def test_backfit_logistic_equals_centralized(estimator, logit_data):
    X, y = logit_data
    clf = FusedClassifier(estimator, partition=Columns(n_blocks=3), fusion=_tight_backfit())
    with dask.config.set(scheduler="sync"):
        clf.fit(X, y)
    central = estimator.set_params(tol=1e-12, max_iter=10_000).fit(X, y)
    fused = clf.fused_estimator_
    assert fused.coef_.shape == (1, X.shape[1])
    assert _rel(fused.coef_, central.coef_) < 1e-4
    assert_allclose(fused.intercept_, central.intercept_, rtol=1e-4)
    assert_array_equal(clf.classes_, [0, 1])
    assert np.all(np.diff(clf.history_["objective"]) <= 1e-9 * clf.history_["objective"].iloc[0])


def test_backfit_multinomial_with_string_labels(three_class_data):
    X, y = three_class_data
    clf = FusedClassifier(
        LogisticRegression(C=0.5),
        partition=Columns(groups=[[0, 1, 2, 3], [4, 5, 6, 7, 8]]),
        fusion=_tight_backfit(),
    )
    with dask.config.set(scheduler="sync"):
        clf.fit(X, y)
    central = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(X, y)
    assert_array_equal(clf.classes_, ["a", "b", "c"])
    assert _rel(clf.fused_estimator_.coef_, central.coef_) < 1e-4
    assert _rel(clf.fused_estimator_.intercept_, central.intercept_) < 1e-4
    assert_allclose(clf.predict_proba(X), central.predict_proba(X), atol=1e-5)


def test_backfit_on_the_cluster_from_a_rows_by_columns_grid(on_cluster, mild_data):
    """A dask array chunked both ways: each block concatenates its row pieces."""
    X, y = mild_data
    Xd = da.from_array(X, chunks=(200, (4, 5)))
    yd = da.from_array(y, chunks=200)
    reg = FusedRegressor(Ridge(alpha=10.0), partition=Columns(), fusion=Backfit(tol=1e-9))
    reg.fit(Xd, yd)
    assert isinstance(reg.fusion_, Backfit)
    assert reg.partition_.groups == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    central = Ridge(alpha=10.0).fit(X, y)
    assert _rel(reg.fused_estimator_.coef_, central.coef_) < 1e-4
    report = reg.partition_report_
    assert report["rows"].tolist() == [len(X), len(X)]
    assert set(report["worker"]) <= set(on_cluster.nthreads())
    assert (report["rounds"] == len(reg.history_)).all() and report["converged"].all()
    lazy = reg.predict(Xd)
    assert isinstance(lazy, da.Array)
    assert_allclose(lazy.compute(), reg.predict(X))


def test_fit_graph_unrolls_the_rounds_and_matches_fit(ls_data):
    X, y = ls_data
    reg = FusedRegressor(Ridge(), partition=Columns(n_blocks=3), fusion=Backfit(max_rounds=60))
    with dask.config.set(scheduler="sync"):
        model, reports = reg.fit_graph(X, y).compute()
        reg.fit(X, y)
    assert_allclose(model.coef_, reg.fused_estimator_.coef_, rtol=1e-12)
    assert reports[0]["rounds"] == len(reg.history_) < 60


def test_too_few_rounds_warn(ls_data):
    X, y = ls_data
    reg = FusedRegressor(Ridge(), partition=Columns(n_blocks=3), fusion=Backfit(max_rounds=2))
    with dask.config.set(scheduler="sync"), pytest.warns(ConvergenceWarning, match="2 rounds"):
        reg.fit(X, y)
    assert len(reg.history_) == 2


def test_same_model_from_numpy_pandas_and_dask(scheduler, mild_data):
    X, y = mild_data
    names = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    groups = [names[:4], names[4:]]
    inputs = {
        "numpy": (X, y, Columns(groups=[list(range(4)), list(range(4, 9))])),
        "pandas": (frame, pd.Series(y), Columns(groups=groups)),
        "dask array": (
            da.from_array(X, chunks=(250, (4, 5))),
            da.from_array(y, chunks=250),
            Columns(),
        ),
        "dask dataframe": (
            dd.from_pandas(frame, npartitions=3, sort=False),
            dd.from_pandas(pd.Series(y), npartitions=3, sort=False),
            Columns(groups=groups),
        ),
    }
    coefs = {}
    for name, (Xi, yi, columns) in inputs.items():
        reg = FusedRegressor(Ridge(), partition=columns).fit(Xi, yi)
        assert reg.partition_.groups == [[0, 1, 2, 3], [4, 5, 6, 7, 8]], name
        coefs[name] = reg.fused_estimator_.coef_
        if name in ("pandas", "dask dataframe"):
            assert list(reg.feature_names_in_) == names
            assert list(reg.fused_estimator_.feature_names_in_) == names
    for name, coef in coefs.items():
        assert_allclose(coef, coefs["numpy"], rtol=1e-10, err_msg=name)


# -------------------------------------------------------------------- stacking


def test_stacking_is_close_to_centralized_on_spread_features(spread_data):
    X, y = spread_data
    train, test = slice(0, 1000), slice(1000, None)
    central = LogisticRegression().fit(X[train], y[train]).score(X[test], y[test])
    clf = FusedClassifier(
        LogisticRegression(), partition=Columns(n_blocks=4), fusion="stack", random_state=0
    )
    with dask.config.set(scheduler="sync"):
        clf.fit(X[train], y[train])
    fused = clf.fused_estimator_
    assert isinstance(fused, ColumnStackingClassifier)
    assert [b.tolist() for b in fused.blocks_] == clf.partition_.groups
    assert fused.final_estimator_.coef_.shape == (1, 4)
    assert clf.score(X[test], y[test]) > central - 0.04
    # each block alone knows a third of the rule, and is worse
    assert clf.partition_report_["train_score"].max() < central - 0.05


def test_stacking_any_estimator_with_names_and_string_labels(three_class_data):
    X, y = three_class_data
    names = [f"c{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    clf = FusedClassifier(
        DecisionTreeClassifier(max_depth=3),
        partition=Columns(groups=[names[:5], names[5:]]),
        fusion=ColumnStack(cv=3),
        random_state=0,
    )
    with dask.config.set(scheduler="sync"):
        clf.fit(frame, y)
    assert_array_equal(clf.classes_, ["a", "b", "c"])
    proba = clf.predict_proba(frame)
    assert proba.shape == (len(X), 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(frame)) <= {"a", "b", "c"}
    # the seeds reach the block models: the same fit twice gives the same model
    again = clone(clf).fit(frame, y)
    assert_array_equal(again.predict_proba(frame), proba)
    with pytest.warns(UserWarning, match="feature names"):
        clf.fused_estimator_.predict(X)


def test_stacking_regressor_on_the_cluster(on_cluster, mild_data):
    X, y = mild_data
    Xd = da.from_array(X, chunks=(300, 3))
    yd = da.from_array(y, chunks=300)
    reg = FusedRegressor(DecisionTreeRegressor(max_depth=4), partition=Columns(), random_state=0)
    reg.fit(Xd, yd)
    assert isinstance(reg.fusion_, ColumnStack)
    assert isinstance(reg.fused_estimator_, ColumnStackingRegressor)
    assert reg.n_partitions_ == 3
    assert reg.score(X, y) > 0.5
    assert not hasattr(reg, "history_")


def test_fused_models_pickle_and_predict_without_dask(spread_data):
    X, y = spread_data
    with dask.config.set(scheduler="sync"):
        models = [
            FusedClassifier(LogisticRegression(), partition=Columns(n_blocks=3), fusion=f)
            .fit(X, y)
            .fused_estimator_
            for f in ("backfit", "stack")
        ]
    for model in models:
        loaded = pickle.loads(pickle.dumps(model))
        assert_array_equal(loaded.predict(X), model.predict(X))
        assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert type(models[0]) is LogisticRegression


def test_column_stacking_models_check_their_blocks():
    X = np.arange(12.0).reshape(6, 2)
    y = X[:, 0]
    a = LinearRegression().fit(X[:, :1], y)
    with pytest.raises(ValueError, match="every column 0 .. 1 exactly once"):
        ColumnStackingRegressor([a, a], [[0], [0]]).fit(X, y)
    with pytest.raises(ValueError, match="one list of column indices per estimator"):
        ColumnStackingRegressor([a, a], [[0, 1]]).fit(X, y)


# -------------------------------------------------------------------- locality


def _direct_dependents(graph):
    deps = dask.core.get_dependencies
    hlg = dict(graph.__dask_graph__())
    users = {}
    for key in hlg:
        for dep in deps(hlg, key):
            users.setdefault(dep, set()).add(key)
    return hlg, users


def _assert_only_block_tasks_read(raw, users, b):
    """Every task that reads block ``b``'s columns is a daskfuse task of block ``b``."""
    readers = users.get(raw, set())
    assert readers, raw
    for key in readers:
        assert isinstance(key, tuple) and key[0].startswith("daskfuse-"), key
        assert key[-1] == b, (raw, key)
    return readers


@pytest.mark.parametrize("fusion", ["backfit", "stack"])
def test_no_task_outside_a_block_reads_its_columns(fusion, logit_data):
    X, y = logit_data
    Xd = da.from_array(X, chunks=(200, (3, 3, 3)))
    yd = da.from_array(y, chunks=200)
    clf = FusedClassifier(
        LogisticRegression(),
        partition=Columns(),
        fusion=Backfit(max_rounds=3) if fusion == "backfit" else "stack",
    )
    graph = clf.fit_graph(Xd, yd)
    hlg, users = _direct_dependents(graph)
    grid = Xd.to_delayed()
    for b in range(3):
        for i in range(grid.shape[0]):
            readers = _assert_only_block_tasks_read(grid[i, b].key, users, b)
            # and what holds the block's columns (the persisted block) is read by
            # that block's round steps only
            for key in readers:
                if key[0].startswith("daskfuse-block-"):
                    steps = _assert_only_block_tasks_read(key, users, b)
                    assert {k[0].split("-")[1] for k in steps} == {"step"}
    # what the other tasks get: n-vectors, coefficients, fitted models
    finalize = [k for k in hlg if isinstance(k, tuple) and "finalize" in k[0]]
    assert len(finalize) == 1


def test_in_memory_and_dataframe_pieces_stay_in_their_block(logit_data):
    X, y = logit_data
    names = [f"c{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    clf = FusedClassifier(LogisticRegression(), partition=Columns(n_blocks=3), fusion="stack")
    _, users = _direct_dependents(clf.fit_graph(X, y))
    data = sorted(k for k in users if isinstance(k, tuple) and k[0].startswith("daskfuse-data-"))
    assert [k[1] for k in data] == [0, 1, 2]
    for key in data:
        _assert_only_block_tasks_read(key, users, key[1])

    ddf = dd.from_pandas(frame, npartitions=2, sort=False)
    ys = dd.from_pandas(pd.Series(y), npartitions=2, sort=False)
    clf = FusedClassifier(
        LogisticRegression(),
        partition=Columns(groups=[names[::2], names[1::2]]),
        fusion=Backfit(max_rounds=2),
    )
    _, users = _direct_dependents(clf.fit_graph(ddf, ys))
    cut = [k for k in users if isinstance(k, tuple) and k[0].startswith("daskfuse-columns-")]
    assert sorted((k[1], k[2]) for k in cut) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for key in cut:
        _assert_only_block_tasks_read(key, users, key[2])


def test_failed_fit_leaves_the_estimator_unfitted(ls_data):
    X, y = ls_data
    reg = FusedRegressor(Ridge(), partition=Columns(n_blocks=2)).fit(X, y)
    X = X.copy()
    X[3, 4] = np.nan
    with warnings.catch_warnings(), pytest.raises(ValueError, match="NaN"):
        reg.fit(X, y)
    assert not hasattr(reg, "fused_estimator_")


def test_save_and_load_a_vertical_fit(tmp_path, spread_data):
    """daskfuse.save/load (skops) trust Columns, the vertical fusions and their models."""
    from daskfuse import load, save

    X, y = spread_data
    with dask.config.set(scheduler="sync"):
        for fusion in (Backfit(), ColumnStack(cv=3), GlobalGradient()):
            clf = FusedClassifier(
                LogisticRegression(), partition=Columns(n_blocks=2), fusion=fusion
            ).fit(X, y)
            path = tmp_path / f"{fusion.name}.skops"
            save(clf, path)
            loaded = load(path)
            assert loaded.partition_ == clf.partition_
            assert loaded.fusion_ == fusion
            assert_array_equal(loaded.predict(X), clf.predict(X))


# ------------------------------------------- column groups that are not contiguous

SCATTERED = [
    Columns(groups=[[6, 0, 3], [1, 7, 4], [8, 2, 5]]),
    Columns(n_blocks=3, strategy="random", random_state=2),
    Columns(n_blocks=3, strategy="correlation"),
]
SCATTERED_IDS = ["interleaved-groups", "random", "correlation"]


def _scattered(reg):
    """The fitted column groups, after checking that none is a contiguous run."""
    groups = [list(g) for g in reg.partition_.groups]
    assert len(groups) == 3
    assert all(np.any(np.diff(g) != 1) for g in groups), groups
    return groups


@pytest.mark.parametrize("columns", SCATTERED, ids=SCATTERED_IDS)
@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=30.0)], ids=["ols", "ridge"])
def test_backfit_scattered_groups_equal_centralized(columns, estimator, ls_data):
    """Coefficients go back to their columns, not to block order."""
    X, y = ls_data
    reg = FusedRegressor(estimator, partition=columns, fusion=_tight_backfit())
    with dask.config.set(scheduler="sync"):
        reg.fit(X, y)
    _scattered(reg)
    central = clone(estimator).fit(X, y)
    assert _rel(reg.fused_estimator_.coef_, central.coef_) < 1e-6
    assert reg.fused_estimator_.intercept_ == pytest.approx(central.intercept_, rel=1e-6)
    assert_allclose(reg.predict(X), central.predict(X), rtol=1e-6, atol=1e-8)
    # and from a dask array chunked across the groups' columns
    with dask.config.set(scheduler="sync"):
        lazy = clone(reg).fit(da.from_array(X, chunks=(200, 4)), da.from_array(y, chunks=200))
    assert _rel(lazy.fused_estimator_.coef_, central.coef_) < 1e-6


@pytest.mark.parametrize("columns", SCATTERED, ids=SCATTERED_IDS)
def test_backfit_logistic_scattered_groups_equal_centralized(columns, three_class_data):
    X, y = three_class_data
    clf = FusedClassifier(LogisticRegression(C=0.5), partition=columns, fusion=_tight_backfit())
    with dask.config.set(scheduler="sync"):
        clf.fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y)
    _scattered(clf)
    central = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(X, y)
    assert _rel(clf.fused_estimator_.coef_, central.coef_) < 1e-4
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    assert_allclose(clf.predict_proba(frame), central.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("columns", SCATTERED, ids=SCATTERED_IDS)
def test_stacking_scattered_groups_equal_the_same_blocks_made_contiguous(columns, ls_data):
    """Stacking is not exact: compare it with the columns permuted into block order."""
    X, y = ls_data
    reg = FusedRegressor(Ridge(), partition=columns, fusion=ColumnStack())
    with dask.config.set(scheduler="sync"):
        reg.fit(X, y)
        groups = _scattered(reg)
        order = np.concatenate(groups)
        edges = np.cumsum([0] + [len(g) for g in groups])
        blocks = [list(range(a, b)) for a, b in zip(edges[:-1], edges[1:])]
        contiguous = FusedRegressor(Ridge(), partition=Columns(groups=blocks), fusion=ColumnStack())
        contiguous.fit(X[:, order], y)
    assert_allclose(reg.predict(X), contiguous.predict(X[:, order]), rtol=1e-10)
    assert reg.score(X, y) == pytest.approx(contiguous.score(X[:, order], y), rel=1e-10)


# ------------------------------------------------------- found by tests/test_fuzz.py


@pytest.mark.parametrize("estimator", [LogisticRegression(), DecisionTreeClassifier(max_depth=2)])
@pytest.mark.parametrize("container", ["dask-array", "dask-frame"])
def test_classifier_takes_a_dask_column_vector_y(estimator, container, logit_data):
    """A one-column dask y is a label vector, as an in-memory one is (with a warning)."""
    X, y = logit_data
    X, y = X[:300], y[:300]
    if container == "dask-array":
        Xd, yd = da.from_array(X, chunks=100), da.from_array(y[:, None], chunks=100)
    else:
        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])]).assign(t=y)
        ddf = dd.from_pandas(frame, npartitions=3)
        Xd, yd = ddf.drop(columns="t").to_dask_array(lengths=True), ddf[["t"]]
    model = FusedClassifier(estimator, partition=Columns(n_blocks=3))
    with dask.config.set(scheduler="sync"):
        with pytest.warns(DataConversionWarning, match="column-vector y"):
            model.fit(Xd, yd)
        with pytest.warns(DataConversionWarning):
            in_memory = clone(model).fit(X, y[:, None])
    assert_array_equal(model.classes_, [0, 1])
    assert_allclose(model.predict_proba(X), in_memory.predict_proba(X), rtol=1e-10)


def test_classifier_on_zero_dask_rows_says_so():
    X, y = da.zeros((0, 4), chunks=(0, 4)), da.zeros((0,), dtype=int, chunks=0)
    model = FusedClassifier(LogisticRegression(), partition=Columns(n_blocks=2))
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match="no class"):
        model.fit(X, y)
    assert not hasattr(model, "fused_estimator_")


@pytest.mark.parametrize("strategy", ["uniform", "correlation"])
def test_stacking_a_dask_frame_with_missing_nullable_values(strategy, mild_data):
    """pd.NA in a nullable column is NaN, as in the numpy version (trees take NaN)."""
    X, y = mild_data
    X, y = np.round(X[:200] * 4), y[:200]
    X[::7, 1] = np.nan
    frame = pd.DataFrame({f"f{j}": pd.array(X[:, j], dtype="Int64") for j in range(9)})
    ddf = dd.from_pandas(frame.assign(t=y), npartitions=2)
    model = FusedRegressor(
        DecisionTreeRegressor(max_depth=3, random_state=0),
        partition=Columns(n_blocks=3, strategy=strategy),
        fusion="stack",
    )
    with dask.config.set(scheduler="sync"):
        model.fit(ddf[list(frame.columns)], ddf["t"])
        numpy_version = clone(model).fit(
            da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
        )
    assert model.partition_.groups == numpy_version.partition_.groups
    named = pd.DataFrame(X, columns=frame.columns)
    assert_allclose(model.predict(named), numpy_version.predict(X), rtol=1e-12)
