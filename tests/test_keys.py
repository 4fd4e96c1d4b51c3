"""Task keys: deterministic for one estimator and input, distinct for different ones.

The token of a fit comes from the real parameter values, never from their printed
form: NumPy prints large arrays shortened (``[1., 1., ..., 1.]``) and scikit-learn
shortens long estimator reprs, so two estimators that differ only there would share
their keys, and a cluster would hand one fit the other's model.
"""

from __future__ import annotations

import os
import subprocess
import sys

import dask
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from daskfuse import FusedClassifier, FusedClusterer, _rows
from daskfuse.fusion import Stack, Weighted
from daskfuse.partition import Columns


def _counts():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(40, 1500)).astype(float)
    return X, np.arange(40) % 2


def _alphas():
    """Two alpha vectors of 1500 values that print the same (they differ in the middle)."""
    a = np.ones(1500)
    b = a.copy()
    b[700] = 100.0
    assert repr(a) == repr(b)
    return a, b


def _inits():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 30))
    b = a.copy()
    b[25, 15] += 5.0
    assert repr(a) == repr(b)
    return a, b


def _kmeans(init):
    return FusedClusterer(KMeans(50, init=init, n_init=1, max_iter=5), n_partitions=2)


def test_array_parameters_that_print_alike_get_their_own_models(on_cluster):
    X, y = _counts()
    a, b = _alphas()
    expected = [MultinomialNB(alpha=alpha).fit(X, y).feature_log_prob_ for alpha in (a, b)]
    assert np.abs(expected[0] - expected[1]).max() > 1
    fits = [FusedClassifier(MultinomialNB(alpha=alpha), n_partitions=2) for alpha in (a, b)]
    graphs = [f.fit_graph(X, y) for f in fits]
    assert graphs[0].key != graphs[1].key
    # in one compute
    together = dask.compute(*graphs)
    for (model, _), want in zip(together, expected):
        assert_allclose(model.feature_log_prob_, want, rtol=1e-12)
    # one after the other on the same client
    for fit, want in zip(fits, expected):
        assert_allclose(fit.fit(X, y).fused_estimator_.feature_log_prob_, want, rtol=1e-12)


def test_kmeans_init_arrays_that_print_alike_get_their_own_models(on_cluster):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 30))
    inits = _inits()
    with dask.config.set(scheduler="sync"):
        expected = [_kmeans(init).fit(X).fused_estimator_.cluster_centers_ for init in inits]
    graphs = [_kmeans(init).fit_graph(X) for init in inits]
    assert graphs[0].key != graphs[1].key
    together = dask.compute(*graphs)
    later = [_kmeans(init).fit(X).fused_estimator_ for init in inits]
    for models in ([m for m, _ in together], later):
        for model, init, want in zip(models, inits, expected):
            # the fused model is this fit's own: it carries its own init array
            np.testing.assert_array_equal(model.init, init)
            assert_allclose(model.cluster_centers_, want, rtol=1e-10)


def test_vertical_keys_come_from_the_parameter_values():
    X, y = _counts()
    keys = [
        FusedClassifier(MultinomialNB(alpha=alpha), partition=Columns(n_blocks=2), fusion="stack")
        .fit_graph(X, y)
        .key
        for alpha in (*_alphas(), _alphas()[0].copy())
    ]
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_later_passes_have_keys_of_their_own():
    """The keys of the passes after the first derive from the fit's token: estimators
    that differ only in what those passes compute (local_epochs, proximal) must not
    share them when they fit at once on one cluster."""
    X, y = _counts()

    def token(**kwargs):
        est = FusedClassifier(SGDClassifier(random_state=0), rounds=3, n_partitions=2, **kwargs)
        return _rows.prepare(est._train_spec(), X, y).token

    assert token(local_epochs=1) == token(local_epochs=1)
    assert token(local_epochs=1) != token(local_epochs=3)
    assert token(proximal=0.1) != token(proximal=0.2)


def test_auto_partition_counts_are_in_the_keys():
    """``n_partitions`` None/"auto" resolves to the scheduler's threads: fits that split
    the same data into different numbers of partitions must not share keys."""
    X = np.random.default_rng(0).integers(0, 5, size=(400, 5)).astype(float)
    y = np.arange(400) % 2
    graphs, counts = [], []
    for threads in (2, 4):
        with dask.config.set(scheduler="threads", num_workers=threads):
            clf = FusedClassifier(MultinomialNB())
            graphs.append(clf.fit_graph(X, y).key)
            counts.append(clf.fit(X, y).n_partitions_)
    assert counts == [2, 4]
    assert graphs[0] != graphs[1]


def _pipeline(class_weight):
    return Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(class_weight=class_weight))]
    )


def test_keys_are_deterministic_and_reach_nested_estimators():
    X, y = _counts()
    a, b = _alphas()
    # equal values, separate objects: the same keys
    key = FusedClassifier(MultinomialNB(alpha=a), n_partitions=2).fit_graph(X, y).key
    assert key == FusedClassifier(MultinomialNB(alpha=a.copy()), n_partitions=2).fit_graph(X, y).key
    # an estimator inside a Pipeline's steps list (the row trainer's graph of a Pipeline
    # fused as a whole: fit_graph refuses one that is fused step by step)
    weights = [{0: 1.0, 1: 2.0}, {0: 1.0, 1: 3.0}]
    specs = [
        FusedClassifier(_pipeline(w), fusion="vote", n_partitions=2)._train_spec()
        for w in weights + weights[:1]
    ]
    keys = [_rows.graph(spec, X, y).key for spec in specs]
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_strategies_compare_and_tokenize_by_their_values():
    long_a = {i: 1.0 for i in range(2000)}
    long_b = {**long_a, 1000: 2.0}
    stack_a = Stack(final_estimator=LogisticRegression(class_weight=long_a))
    stack_b = Stack(final_estimator=LogisticRegression(class_weight=long_b))
    assert repr(stack_a) == repr(stack_b)  # scikit-learn shortens the long repr
    assert stack_a != stack_b
    assert dask.base.tokenize(stack_a) != dask.base.tokenize(stack_b)
    same = Stack(final_estimator=LogisticRegression(class_weight=dict(long_a)))
    assert stack_a == same and hash(stack_a) == hash(same)
    assert dask.base.tokenize(stack_a) == dask.base.tokenize(same)
    by = np.ones(1500)
    assert Weighted(by=by) != Weighted(by=np.r_[by[:700], 2.0, by[701:]])
    assert Weighted(by=by) == Weighted(by=by.copy())


_KEY_SCRIPT = """
import numpy as np
from sklearn.naive_bayes import MultinomialNB
from daskfuse import FusedClassifier
from daskfuse.fusion import Stack
from sklearn.linear_model import LogisticRegression, SGDClassifier
X = np.arange(400.0).reshape(40, 10) % 7
y = np.arange(40) % 2
est = MultinomialNB(alpha=np.linspace(0.5, 2.0, 10))
fusion = Stack(final_estimator=LogisticRegression(C=0.5))
print(FusedClassifier(est, fusion=fusion, n_partitions=2).fit_graph(X, y).key)
"""


@pytest.mark.timeout(120)
def test_keys_are_the_same_in_another_process():
    env = dict(os.environ)
    keys = set()
    for seed in ("1", "2"):
        env["PYTHONHASHSEED"] = seed
        out = subprocess.run(
            [sys.executable, "-c", _KEY_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys.add(out.stdout.strip().splitlines()[-1])
    assert len(keys) == 1, keys
