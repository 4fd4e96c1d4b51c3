"""The Fuser protocol (daskfuse.fusion.base): a new strategy plugs in with four
methods and a tags answer; the capability questions live in one FuserTags object."""

from __future__ import annotations

import dataclasses
import warnings

import dask.array as da
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.svm import SVC

from daskfuse import FusedRegressor, fuse
from daskfuse._adapters import fitted_train_score, stamp_inputs, updates_per_partition
from daskfuse.fusion import (
    DP,
    FUSERS,
    Cascade,
    Fuser,
    FuserTags,
    Recluster,
    Secure,
    Trees,
    Vote,
    Weighted,
)
from daskfuse.fusion.robust import Median


# ------------------------------------------------- an example strategy, end to end
class Midrange(Fuser):
    """Each coefficient halfway between its smallest and largest over the partitions."""

    name = "midrange"
    requirement = "midrange needs a LinearRegression"

    def supports(self, estimator):
        return isinstance(estimator, LinearRegression)

    def tags(self, estimator):  # fitted models can be fused too (daskfuse.fuse)
        return dataclasses.replace(super().tags(estimator), from_models=True)

    def summarize(self, estimator, X, y, info):  # (lowest, highest) so far
        theta = np.append(estimator.coef_, estimator.intercept_)
        return theta, theta

    def combine(self, summaries):
        lows, highs = zip(*summaries)
        return np.min(lows, axis=0), np.max(highs, axis=0)

    def finalize(self, summary, template, meta):
        model, theta = clone(template), (summary[0] + summary[1]) / 2
        model.coef_, model.intercept_ = theta[:-1], theta[-1]
        return stamp_inputs(model, meta)


def _midrange(models):
    thetas = np.array([np.append(m.coef_, m.intercept_) for m in models])
    return (thetas.min(axis=0) + thetas.max(axis=0)) / 2


def test_example_strategy_plugs_in(on_cluster):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3 + rng.normal(size=90)
    # three blocks of 30 rows, one partition each
    Xd, yd = da.from_array(X, chunks=(30, 3)), da.from_array(y, chunks=30)
    reg = FusedRegressor(
        LinearRegression(), partition="chunks", fusion=Midrange(), split_every=2
    ).fit(Xd, yd)
    parts = [LinearRegression().fit(X[r], y[r]) for r in np.array_split(np.arange(90), 3)]
    fused = reg.fused_estimator_
    assert type(fused) is LinearRegression and fused.n_features_in_ == 3
    assert_allclose(np.append(fused.coef_, fused.intercept_), _midrange(parts), rtol=1e-12)
    # no report weight from this strategy; the report has the column all the same
    assert reg.partition_report_["weight"].isna().all()
    # and models fitted elsewhere fuse the same way (tags: from_models)
    again = fuse(parts, fusion=Midrange())
    assert_allclose(again.coef_, fused.coef_, rtol=1e-12)


# ------------------------------------------------------------- the tags object
OLD_MEMBERS = (
    "needs_fit",
    "needs_classes",
    "shared_seed",
    "from_models",
    "single_class_partitions",
    "holdout",
    "needs_fit_for",
    "needs_classes_for",
    "from_models_for",
    "shares_seed",
    "rounds_reason",
    "proximal_reason",
    "given_weights_reason",
)


@pytest.mark.parametrize("name", sorted(FUSERS))
def test_capabilities_only_through_tags(name):
    fuser = FUSERS[name]()
    leftover = [m for m in OLD_MEMBERS if hasattr(fuser, m)]
    assert leftover == [], f"{name} still answers {leftover} outside tags()"
    estimator = LogisticRegression() if fuser.supports(LogisticRegression()) else None
    if estimator is not None:
        assert isinstance(fuser.tags(estimator), FuserTags)


def test_tags_answers():
    logit, sgd, svc = LogisticRegression(), SGDClassifier(), SVC()
    assert Weighted().tags(sgd).rounds_reason is None
    assert Weighted().tags(sgd).proximal_reason is None
    assert "liblinear" in Weighted().tags(LogisticRegression(solver="liblinear")).rounds_reason
    assert Weighted(by="score").tags(logit).holdout == 0.2
    assert Weighted().tags(logit).holdout == 0.0
    assert Vote(weights="score", holdout=0.3).tags(svc).holdout == 0.3
    assert "max_passes" in Cascade().tags(svc).rounds_reason
    assert Recluster().tags(KMeans()).rounds_reason is None
    assert Trees().tags(RandomForestClassifier()).needs_classes
    assert "counts every model once" in Median().tags(logit).given_weights_reason
    assert "has no proximal term" in Vote().tags(svc).proximal_reason


def test_wrapping_strategies_pass_the_inner_tags_through():
    logit, sgd = LogisticRegression(), SGDClassifier()
    masked = Secure(Weighted(by="score", holdout=0.25)).tags(logit)
    assert masked.holdout == 0.25 and masked.needs_classes and masked.from_models
    assert Secure("average").tags(logit).given_weights_reason is not None
    assert Secure().tags(sgd).rounds_reason is None
    private = DP().tags(logit)
    assert private.from_models and private.needs_classes and private.holdout == 0.0
    assert Secure(DP()).tags(logit).from_models


def test_privacy_spent_is_declared_on_the_protocol():
    assert Fuser().privacy_spent(2) is None
    assert Weighted().privacy_spent() is None
    assert Secure().privacy_spent(3) is None
    assert Secure(DP()).privacy_spent(3) == DP().privacy_spent(3)


# ---------------------------------------------- summarize returns what it produces
def _models():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    models = [LogisticRegression().fit(X[:30], y[:30]), LogisticRegression().fit(X[30:], y[30:])]
    return X, y, models


@pytest.mark.parametrize(
    "fuser, expected",
    [(Weighted(), 30.0), (Median(), 1.0), (Vote(), 30.0), (DP(Weighted()), 30.0)],
    ids=repr,
)
def test_summarize_leaves_info_alone_and_carries_its_weight(fuser, expected):
    X, y, models = _models()
    info = {
        "index": 0,
        "n_rows": 30,
        "holdout_score": None,
        "classes": np.array([0, 1]),
        "seed": None,
        "template": models[0],
        "secret": None,
    }
    before = dict(info)
    summary = fuser.summarize(models[0], None, None, info)
    assert info.keys() == before.keys()
    assert summary.report_weight == expected


def test_report_weight_reaches_the_partition_report(on_cluster):
    X, y, _ = _models()
    Xd = da.from_array(X, chunks=(30, 2))
    reg = FusedRegressor(LinearRegression(), partition="chunks", fusion="weighted").fit(
        Xd, Xd @ np.array([1.0, 2.0])
    )
    assert_array_equal(reg.partition_report_["weight"], [30.0, 30.0])


# ------------------------------------------------- family knowledge in the adapters
def test_stamp_inputs():
    model = LinearRegression()
    names = np.array(["a", "b"], dtype=object)
    assert stamp_inputs(model, {"n_features_in_": 2, "feature_names_in_": names}) is model
    assert model.n_features_in_ == 2 and list(model.feature_names_in_) == ["a", "b"]
    bare = stamp_inputs(LinearRegression(), {"n_features_in_": None})
    assert not hasattr(bare, "n_features_in_") and not hasattr(bare, "feature_names_in_")


def test_fitted_train_score():
    X = np.random.default_rng(2).normal(size=(40, 2))
    km = KMeans(3, n_init=1, random_state=0).fit(X)
    assert fitted_train_score(km, X, None) == pytest.approx(km.score(X), rel=1e-9)
    assert fitted_train_score(km, X[:10], None) is None  # not the rows it was fitted on
    assert fitted_train_score(LinearRegression().fit(X, X[:, 0]), X, X[:, 0]) is None


def test_updates_per_partition():
    reports = [{"n_iter": 3, "rows": 10}, {"n_iter": None, "rows": 30}]
    assert updates_per_partition(reports, 2) == (3 * 10 + 2 * 30) / 2


def test_mlp_seed_warning_comes_from_its_adapter():
    from sklearn.neural_network import MLPRegressor

    X = np.random.default_rng(3).normal(size=(40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [
            MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=s).fit(X, X[:, 0])
            for s in (0, 1)
        ]
    with pytest.warns(UserWarning, match="one shared initialisation") as record:
        fuse(models, fusion="average")
    assert record[0].filename == __file__  # points at the caller of fuse


def test_a_strategy_on_the_old_protocol_is_refused():
    with pytest.raises(TypeError, match=r"Stale defines needs_fit, shares_seed.*tags\(estimator\)"):

        class Stale(Weighted):
            needs_fit = False

            def shares_seed(self, estimator):
                return False
