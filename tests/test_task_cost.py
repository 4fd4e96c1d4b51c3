"""Issue 17: what a partition task costs and reports, and loading what daskfuse fits."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from daskfuse import FusedClassifier, FusedClusterer, FusedRegressor, FusedTransformer
from daskfuse.persist import ModelFileError, load, save

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4))
Y_CLASS = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * RNG.normal(size=400)

#: every estimator family the README lists, as daskfuse fits it (its default fusion)
FAMILIES = [
    FusedClassifier(LogisticRegression(), n_partitions=2),
    FusedClassifier(SGDClassifier(random_state=0), n_partitions=2),
    FusedRegressor(LinearRegression(), n_partitions=2),
    FusedClassifier(GaussianNB(), n_partitions=2),
    FusedTransformer(StandardScaler(), n_partitions=2),
    FusedTransformer(PCA(2), n_partitions=2),
    FusedClusterer(KMeans(3, n_init=1, random_state=0), n_partitions=2),
    FusedClusterer(MiniBatchKMeans(3, n_init=1, random_state=0), n_partitions=2),
    FusedClassifier(RandomForestClassifier(5, random_state=0), n_partitions=2),
    FusedClassifier(SVC(), n_partitions=2),
    FusedClassifier(SVC(probability=True, random_state=0), n_partitions=2, fusion="stack"),
    FusedRegressor(SVR(), n_partitions=2),
    FusedClassifier(MLPClassifier((4,), max_iter=30, random_state=0), n_partitions=2),
    FusedClassifier(HistGradientBoostingClassifier(max_iter=5), n_partitions=2),
    FusedRegressor(HistGradientBoostingRegressor(max_iter=5), n_partitions=2),
]


def _fit(model):
    if isinstance(model, FusedClassifier):
        return model.fit(X, Y_CLASS)
    if isinstance(model, FusedRegressor):
        return model.fit(X, Y_REG)
    return model.fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", FAMILIES, ids=lambda m: type(m.estimator).__name__)
def test_every_family_loads_without_trusted(model, client, tmp_path):
    model = _fit(model)
    path = tmp_path / "model.skops"
    save(model, path)
    loaded = load(path)
    fused = model.fused_estimator_
    assert type(loaded.fused_estimator_) is type(fused)
    if hasattr(fused, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    else:
        np.testing.assert_allclose(loaded.transform(X), model.transform(X))


def test_corrupt_hist_gradient_boosting_tree_is_refused(client, tmp_path):
    model = _fit(FusedClassifier(HistGradientBoostingClassifier(max_iter=3), n_partitions=2))
    member = model.fused_estimator_.estimators_[0]
    predictor = member._predictors[0][0]
    inner = np.flatnonzero(~predictor.nodes["is_leaf"].astype(bool))[0]
    predictor.nodes["left"][inner] = 10**6  # a child outside the tree
    path = tmp_path / "bad.skops"
    save(model, path)
    with pytest.raises(ModelFileError, match="corrupt histogram gradient-boosting tree"):
        load(path)
    assert "TreePredictor" in " ".join(skops.io.get_untrusted_types(file=str(path)))
