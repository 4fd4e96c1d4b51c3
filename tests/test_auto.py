"""``fusion="auto"``: the right strategy per family, and clear errors for the wrong one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer, FusionError
from daskfuse.fusion import Cascade, Exact, Recluster, Trees, Vote, Weighted, available_fusions


@pytest.mark.parametrize(
    "meta, estimator, expected",
    [
        (FusedRegressor, LinearRegression(), Exact()),
        (FusedRegressor, Ridge(), Exact()),
        (FusedClassifier, GaussianNB(), Exact()),
        (FusedTransformer, StandardScaler(), Exact()),
        (FusedTransformer, PCA(n_components=2), Exact()),
        (FusedClassifier, LogisticRegression(), Weighted()),
        (FusedClassifier, SGDClassifier(), Weighted()),
        (FusedClassifier, MLPClassifier(max_iter=20), Weighted()),
        (FusedClusterer, KMeans(3, n_init=1), Recluster()),
        (FusedClusterer, MiniBatchKMeans(3, n_init=1), Recluster()),
        (FusedRegressor, RandomForestRegressor(n_estimators=3), Trees()),
        (FusedClassifier, KNeighborsClassifier(), Vote(voting="soft")),
        (FusedClassifier, GradientBoostingClassifier(n_estimators=5), Vote(voting="soft")),
        (FusedClassifier, SVC(), Cascade()),
        (FusedRegressor, SVR(), Cascade()),
        (FusedRegressor, KNeighborsRegressor(), Vote()),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, type) else v.__name__,
)
def test_auto_picks_the_family_strategy(meta, estimator, expected):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) if meta is FusedClassifier else X @ [1, 2, 0, 1.0]
    fitted = meta(estimator, n_partitions=2, random_state=0).fit(X, y)
    assert fitted.fusion_ == expected
    assert repr(fitted.fusion_) == repr(expected)


def test_explicit_strategy_that_cannot_apply_lists_those_that_can():
    with pytest.raises(FusionError) as err:
        FusedClassifier(SVC(), fusion="weighted").fit(np.eye(4), [0, 1, 0, 1])
    message = str(err.value)
    assert "cannot fuse SVC" in message
    assert "Strategies that apply to SVC: 'vote', 'stack', 'cascade'" in message
    assert available_fusions(SVC()) == ["vote", "stack", "cascade"]
    assert available_fusions(SVC(), from_models=True) == ["vote"]


def test_auto_without_a_strategy_gives_each_strategys_reason():
    X = np.random.default_rng(0).normal(size=(40, 4))
    estimator = PCA(n_components="mle")
    with pytest.raises(FusionError) as err:
        FusedTransformer(estimator, n_partitions=2).fit(X)
    message = str(err.value)
    assert message.startswith("fusion='auto' found no strategy for PCA(n_components='mle'): ")
    # the same reason that an explicit fusion="exact" gives
    exact = Exact().unsupported_reason(estimator)
    assert "mle" in exact
    assert f"exact: {exact}" in message
    assert "average, weighted, median, trimmed_mean, krum: parameter averaging needs" in message
    assert "recluster: reclustering needs a KMeans" in message
    assert "vote, stack: ensemble fusion needs a classifier or a regressor" in message
    with pytest.raises(FusionError) as explicit:
        FusedTransformer(estimator, fusion="exact", n_partitions=2).fit(X)
    assert f"cannot fuse PCA(n_components='mle'): {exact}." in str(explicit.value)
