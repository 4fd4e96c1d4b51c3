"""Global-gradient fusion over column blocks (``fusion="gradient"``, issue 15 item 2)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from daskfuse import FusedClassifier, FusedRegressor
from daskfuse.partition import Columns
from daskfuse.vertical import Backfit, ColumnStack, GlobalGradient


def _tight(estimator):
    """The central reference, solved far below the 1e-6 the tests ask for."""
    if isinstance(estimator, LogisticRegression):
        return estimator.set_params(solver="newton-cg", tol=1e-14, max_iter=10_000)
    return estimator


@pytest.fixture(scope="module")
def correlated():
    """12 features with every pairwise correlation above 0.95, and three targets."""
    rng = np.random.default_rng(0)
    n, p = 900, 12
    X = rng.normal(size=(n, 1)) + 0.15 * rng.normal(size=(n, p)) + rng.normal(size=p)
    assert np.corrcoef(X.T).min() > 0.95
    y = X @ rng.normal(size=p) + 1.0 + rng.normal(size=n)
    binary = (X @ rng.normal(size=p) * 0.5 - 0.3 + rng.logistic(size=n) > 0).astype(int)
    logits = X @ rng.normal(size=(p, 3)) * 0.5 + rng.gumbel(size=(n, 3))
    three = np.array(["a", "b", "c"])[np.argmax(logits, axis=1)]
    return X, y, binary, three


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    "estimator",
    [LinearRegression(), Ridge(alpha=5.0), Ridge(alpha=0.5, fit_intercept=False)],
    ids=["ols", "ridge", "ridge-no-intercept"],
)
def test_least_squares_equal_central_on_correlated_features(estimator, correlated):
    X, y, _, _ = correlated
    central = _tight(estimator).fit(X, y)
    with dask.config.set(scheduler="sync"):
        reg = FusedRegressor(estimator, partition=Columns(n_blocks=3)).fit(X, y)
    assert isinstance(reg.fusion_, GlobalGradient)  # auto's choice
    assert _rel(reg.fused_estimator_.coef_, central.coef_) < 1e-6
    assert abs(reg.fused_estimator_.intercept_ - central.intercept_) < 1e-6 * max(
        1.0, abs(central.intercept_)
    )


@pytest.mark.parametrize(
    "kwargs, target",
    [
        ({}, "binary"),
        ({"C": 0.3, "class_weight": "balanced"}, "binary"),
        ({"fit_intercept": False}, "binary"),
        ({}, "three"),
        ({"C": 2.0, "class_weight": {"a": 1.0, "b": 3.0, "c": 0.5}}, "three"),
    ],
    ids=["binary", "binary-weighted", "binary-no-intercept", "multinomial", "multi-weighted"],
)
def test_logistic_equals_central_on_correlated_features(kwargs, target, correlated):
    X, _, binary, three = correlated
    y = binary if target == "binary" else three
    central = _tight(LogisticRegression(**kwargs)).fit(X, y)
    with dask.config.set(scheduler="sync"):
        clf = FusedClassifier(LogisticRegression(**kwargs), partition=Columns(n_blocks=4))
        clf.fit(X, y)
    fused = clf.fused_estimator_
    assert isinstance(clf.fusion_, GlobalGradient)
    assert _rel(fused.coef_, central.coef_) < 1e-6
    scale = max(1.0, float(np.max(np.abs(central.intercept_))))
    assert_allclose(fused.intercept_, central.intercept_, rtol=0, atol=1e-6 * scale)
    assert list(clf.classes_) == list(central.classes_)
    history = clf.history_
    assert list(history.columns) == ["pass", "loss", "grad_norm", "step", "seconds"]
    assert clf.n_rounds_ == len(history) and history["pass"].tolist() == list(range(len(history)))
    # an exact line search: the objective never goes up
    assert (np.diff(history["loss"]) <= 1e-15).all()
    assert clf.partition_report_["converged"].all()


def test_backfit_stays_selectable_and_is_slower_on_correlated_blocks(correlated):
    """Backfitting (one block after another) needs many more rounds here."""
    X, y, _, _ = correlated
    with dask.config.set(scheduler="sync"):
        grad = FusedRegressor(Ridge(), partition=Columns(n_blocks=3), fusion="gradient")
        back = FusedRegressor(Ridge(), partition=Columns(n_blocks=3), fusion="backfit")
        grad.fit(X, y)
        with pytest.warns(ConvergenceWarning):
            back.fit(X, y)
    assert isinstance(back.fusion_, Backfit) and isinstance(grad.fusion_, GlobalGradient)
    assert grad.n_rounds_ < 30 < back.n_rounds_
    central = Ridge().fit(X, y)
    assert _rel(grad.fused_estimator_.coef_, central.coef_) < 1e-6


def test_auto_stacks_what_the_gradient_cannot_fuse(correlated):
    X, y, _, _ = correlated
    reg = FusedRegressor(DecisionTreeRegressor(max_depth=2), partition=Columns(n_blocks=2))
    with dask.config.set(scheduler="sync"):
        reg.fit(X, y)
    assert isinstance(reg.fusion_, ColumnStack)
    with pytest.raises(Exception, match="the global-gradient fusion fuses LinearRegression"):
        FusedRegressor(
            DecisionTreeRegressor(), partition=Columns(n_blocks=2), fusion="gradient"
        ).fit(X, y)


def test_on_the_cluster_from_a_rows_by_columns_grid(on_cluster, correlated):
    X, _, _, three = correlated
    Xd = da.from_array(X, chunks=(300, (4, 4, 4)))
    yd = da.from_array(three, chunks=300)
    clf = FusedClassifier(LogisticRegression(C=0.5), partition=Columns()).fit(Xd, yd)
    assert clf.partition_.groups == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    central = _tight(LogisticRegression(C=0.5)).fit(X, three)
    assert _rel(clf.fused_estimator_.coef_, central.coef_) < 1e-6
    report = clf.partition_report_
    assert report["rows"].tolist() == [len(X)] * 3
    assert set(report["worker"]) <= set(on_cluster.nthreads())


def test_fit_graph_unrolls_the_passes_and_matches_fit(correlated):
    X, y, _, _ = correlated
    reg = FusedRegressor(
        Ridge(alpha=2.0), partition=Columns(n_blocks=3), fusion=GlobalGradient(max_passes=40)
    )
    with dask.config.set(scheduler="sync"):
        model, reports = reg.fit_graph(X, y).compute()
        reg.fit(X, y)
    assert_allclose(model.coef_, reg.fused_estimator_.coef_, rtol=1e-12)
    assert reports[0]["rounds"] == reg.n_rounds_ - 1 < 40


def test_too_few_passes_warn_and_bad_parameters(correlated):
    X, y, _, _ = correlated
    reg = FusedRegressor(
        Ridge(), partition=Columns(n_blocks=3), fusion=GlobalGradient(max_passes=2)
    )
    with dask.config.set(scheduler="sync"), pytest.warns(ConvergenceWarning, match="2 passes"):
        reg.fit(X, y)
    assert reg.n_rounds_ == 3  # the gradient at zero, then two passes
    with pytest.raises(ValueError, match=r"GlobalGradient\(max_passes=...\)"):
        GlobalGradient(max_passes=0)
    with pytest.raises(ValueError, match=r"GlobalGradient\(tol=...\)"):
        GlobalGradient(tol=0)


def _readers(graph):
    dsk = dict(graph.__dask_graph__())
    users = {}
    for key in dsk:
        for dep in dask.core.get_dependencies(dsk, key):
            users.setdefault(dep, set()).add(key)
    return users


def test_no_task_outside_a_block_reads_its_columns(correlated):
    """Raw columns are read by their block's task; that block by its margin and grad only."""
    X, _, binary, _ = correlated
    Xd = da.from_array(X, chunks=(300, (4, 4, 4)))
    clf = FusedClassifier(
        LogisticRegression(), partition=Columns(), fusion=GlobalGradient(max_passes=3)
    )
    users = _readers(clf.fit_graph(Xd, da.from_array(binary, chunks=300)))
    grid = Xd.to_delayed()
    for b in range(3):
        for i in range(grid.shape[0]):
            (block,) = users[grid[i, b].key]
            assert block[0].startswith("daskfuse-block-") and block[-1] == b
            readers = users[block]
            assert {k[0].split("-")[1] for k in readers} == {"margin", "grad"}
            assert all(k[-1] == b for k in readers)
            assert len(readers) == 2 * 3 + 1  # 3 passes of margins, 4 of gradients


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    labels=st.lists(st.integers(0, 4), min_size=12, max_size=12),
    logistic=st.booleans(),
)
def test_any_grouping_of_the_columns_gives_the_central_model(labels, logistic, correlated):
    """Property: whatever blocks the columns fall into (scattered, 1 to 5 blocks)."""
    X, y, binary, _ = correlated
    groups = [[c for c, lab in enumerate(labels) if lab == g] for g in sorted(set(labels))]
    if logistic:
        estimator, target, fused = LogisticRegression(C=0.7), binary, FusedClassifier
    else:
        estimator, target, fused = Ridge(alpha=0.3), y, FusedRegressor
    central = _tight(clone(estimator)).fit(X, target)
    with dask.config.set(scheduler="sync"):
        model = fused(estimator, partition=Columns(groups=groups)).fit(X, target)
    assert model.partition_.groups == sorted(groups)
    assert _rel(model.fused_estimator_.coef_, central.coef_) < 1e-6


def test_a_line_search_along_a_nearly_flat_line_ends_in_a_few_evaluations(monkeypatch):
    # the last passes search along very short directions: the summed log-loss over
    # many rows cannot tell their steps' values apart (equal values taken as lower
    # kept such a search going for hundreds of evaluations, most of a fit's time);
    # the slope still can, and Newton's method on it ends in a few
    from daskfuse.vertical import _gradient

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 6))
    y = (X @ rng.normal(size=6) + rng.logistic(size=len(X)) > 0).astype(float)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(X, y)
    away = 1e-8 * rng.normal(size=6)  # a point a short step from the optimum
    z = (X @ (ref.coef_[0] + away) + ref.intercept_[0])[:, None]
    state = {"kind": "logistic", "target": y[:, None], "weights": None, "total": float(len(y))}
    state["z"] = z
    u = -(X @ away)[:, None]  # the direction back toward it
    line = {"penalty": (0.0, 0.0, 0.0), "d_intercept": np.zeros(1)}
    calls = []
    terms = _gradient._terms
    monkeypatch.setattr(_gradient, "_terms", lambda *a: calls.append(1) or terms(*a))
    _, residual, info = _gradient.line_search(state, u, line)
    assert len(calls) <= 10
    # the minimum along the line is found: its slope is a thousandth of the start's
    _, at_zero, _ = terms("logistic", z, y[:, None], None)  # not yet over the rows
    assert abs(np.sum(residual * u)) * len(y) <= 1e-3 * abs(np.sum(at_zero * u))
    assert 0.5 < info["t"] < 1.5
