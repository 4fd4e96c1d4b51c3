"""Secure aggregation (fusion.Secure): exact results, masked intermediates, failures."""

from __future__ import annotations

import math
import re

import dask
import dask.array as da
import numpy as np
import pytest
from dask.delayed import Delayed
from dask.utils import key_split
from numpy.testing import assert_allclose
from scipy import stats
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.neural_network import MLPClassifier

from daskfuse import FusedClassifier, FusedRegressor, fuse
from daskfuse.exceptions import FusionError
from daskfuse.fusion import DP, Average, Median, Secure, Weighted, resolve_fusion
from daskfuse.fusion.secure import MAX_ABS, MaskedSum, PairSeeds, decode, encode
from tests.conftest import make_classification_data

N_PARTS = 7


def _assert_same_model(a, b):
    # "equal to 1e-9": relative to the size of the parameters
    for name in ("coef_", "intercept_"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.shape == y.shape
        assert_allclose(x, y, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(y).max()))


@pytest.fixture
def small_binary():
    return make_classification_data(n=1400, n_classes=2, seed=5)


@pytest.fixture
def small_multiclass():
    return make_classification_data(n=1400, n_classes=3, seed=6)


@pytest.fixture
def small_regression():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(1400, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.7 + 0.3 * rng.normal(size=1400)
    return X, y


CASES = [
    ("logistic", "small_binary"),
    ("logistic", "small_multiclass"),
    ("sgd", "small_binary"),
    ("sgd", "small_multiclass"),
    ("ridge", "small_regression"),
]
ESTIMATORS = {
    "logistic": LogisticRegression(),
    "sgd": SGDClassifier(random_state=0),
    "ridge": Ridge(alpha=1.0),
}


@pytest.mark.parametrize(("est", "data"), CASES)
def test_secure_equals_unmasked_fusion(request, est, data):
    X, y = request.getfixturevalue(data)
    Meta = FusedRegressor if est == "ridge" else FusedClassifier
    # the sync scheduler keeps this loop cheap; the cluster runs the tests below
    with dask.config.set(scheduler="sync"):
        for split_every, inner in [(2, "weighted"), (3, "average"), (8, "weighted")]:
            kw = dict(n_partitions=N_PARTS, split_every=split_every, random_state=0)
            plain = Meta(ESTIMATORS[est], fusion=inner, **kw).fit(X, y)
            secure = Meta(ESTIMATORS[est], fusion=Secure(inner), **kw).fit(X, y)
            _assert_same_model(secure.fused_estimator_, plain.fused_estimator_)
            assert secure.fusion_ == Secure(inner)
            assert not hasattr(secure, "privacy_spent_")


def test_secure_aligns_a_partition_that_lacks_a_class(on_cluster, small_multiclass):
    X, y = small_multiclass
    # the first contiguous chunk holds classes 1 and 2 only
    first = np.flatnonzero(y != 0)[:200]
    order = np.concatenate([first, np.setdiff1d(np.arange(len(y)), first)])
    Xd = da.from_array(X[order], chunks=(200, -1))
    yd = da.from_array(y[order], chunks=200)
    kw = dict(split_every=3, random_state=0)
    plain = FusedClassifier(LogisticRegression(), fusion="weighted", **kw).fit(Xd, yd)
    secure = FusedClassifier(LogisticRegression(), fusion="secure", **kw).fit(Xd, yd)
    assert plain.partition_report_["class_counts"][0].keys() == {1, 2}
    _assert_same_model(secure.fused_estimator_, plain.fused_estimator_)


def test_secure_with_dask_input_and_score_weights(on_cluster, small_multiclass):
    X, y = small_multiclass
    Xd, yd = da.from_array(X, chunks=(200, -1)), da.from_array(y, chunks=200)
    inner = Weighted(by="score", holdout=0.25)
    plain = FusedClassifier(LogisticRegression(), fusion=inner, random_state=1).fit(Xd, yd)
    secure = FusedClassifier(LogisticRegression(), fusion=Secure(inner), random_state=1).fit(Xd, yd)
    _assert_same_model(secure.fused_estimator_, plain.fused_estimator_)


def _graph_parts(graph):
    """Leaf and combine keys of a fit graph, and each leaf's secret."""
    hlg = dict(graph.__dask_graph__())
    leaves = sorted(k for k in hlg if key_split(k) == "daskfuse-fit")
    combines = sorted(k for k in hlg if key_split(k) == "daskfuse-combine")
    secrets = [hlg[k].kwargs.get("secret") for k in leaves]
    return hlg, leaves, combines, secrets


def test_every_summary_below_the_root_is_masked(on_cluster, small_multiclass):
    X, y = small_multiclass
    kw = dict(n_partitions=N_PARTS, split_every=3, random_state=0)
    graph = FusedClassifier(LogisticRegression(), fusion=Secure(), **kw).fit_graph(X, y)
    hlg, leaves, combines, secrets = _graph_parts(graph)
    plain_graph = FusedClassifier(LogisticRegression(), fusion="weighted", **kw).fit_graph(X, y)
    plain_hlg, plain_leaves, plain_combines, _ = _graph_parts(plain_graph)

    masked = dask.compute(*[Delayed(k, hlg) for k in leaves + combines])
    plain = dask.compute(*[Delayed(k, plain_hlg) for k in plain_leaves + plain_combines])

    # each fit task holds its own partition's seeds and no other partition's
    assert [s.index for s in secrets] == list(range(N_PARTS))
    for i, s in enumerate(secrets):
        assert s.seeds[i] is None
        for j in range(N_PARTS):
            if j != i:
                assert s.seeds[j] == secrets[j].seeds[i]
        others = {
            secrets[j].seeds[k]
            for j in range(N_PARTS)
            for k in range(N_PARTS)
            if i not in (j, k) and j != k
        }
        assert not others & set(s.seeds)
    assert "seeds=" not in repr(secrets[0]) and repr(secrets[0]).startswith("PairSeeds(")

    root = combines[-1]
    for key, node, clear in zip(leaves + combines, masked, plain):
        summary = node.summary
        assert isinstance(summary, MaskedSum)
        values = decode(summary.words.view(np.int64))
        truth = np.concatenate(
            [np.ravel(clear.summary.sums[k]) for k in ("coef_", "intercept_")]
            + [np.ravel(clear.summary.weights)]
        )
        if key == root:
            # the masks cancel only in the sum over every partition
            assert summary.included == tuple(range(N_PARTS))
            assert_allclose(values, truth, rtol=1e-12, atol=1e-12)
        else:
            assert len(summary.included) < N_PARTS
            assert np.all(np.abs(values - truth) > 1e6)
            # the masked words are uniform: the top bit is set about half the time
            top = (summary.words >> np.uint64(63)).astype(int)
            assert stats.binomtest(int(top.sum()), top.size).pvalue > 1e-6
    for node in masked[: len(leaves)]:
        report = node.reports[0]
        assert report["rows"] == 200
        assert all(report[k] is None for k in ("class_counts", "train_score", "weight"))


def test_fresh_masks_for_every_fit(on_cluster, small_regression):
    X, y = small_regression
    reg = FusedRegressor(Ridge(), fusion="secure", n_partitions=4, random_state=0)
    first, second = (_graph_parts(reg.fit_graph(X, y)) for _ in range(2))
    assert first[3][0].seeds[1] != second[3][0].seeds[1]
    # and fresh keys: a cluster holding one graph's leaves must not serve another's
    assert not set(first[1]) & set(second[1])
    a, b = (dask.compute(Delayed(p[1][0], p[0]))[0].summary.words for p in (first, second))
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------- failed partitions
@pytest.fixture
def partition_models(small_multiclass):
    X, y = small_multiclass
    parts = np.array_split(np.arange(len(y)), 6)
    # unequal sizes, so that "weighted" differs from "average"
    parts = [p[: 120 + 20 * i] for i, p in enumerate(parts)]
    models = [LogisticRegression().fit(X[p], y[p]) for p in parts]
    return models, [len(p) for p in parts]


def _summaries(fuser, models, rows, failed, classes):
    secrets = fuser.partition_secrets(len(models))
    out = []
    for i, model in enumerate(models):
        if i in failed:
            out.append(fuser.summarize_failed(i, secrets[i]))
            continue
        info = {
            "index": i,
            "n_rows": rows[i],
            "holdout_score": None,
            "classes": classes,
            "seed": None,
            "template": model,
            "secret": secrets[i],
        }
        out.append(fuser.summarize(model, None, None, info))
    return out


def _tree(fuser, summaries, split_every):
    nodes = list(summaries)
    while len(nodes) > 1:
        nodes = [
            fuser.combine(nodes[i : i + split_every]) for i in range(0, len(nodes), split_every)
        ]
    return nodes[0]


@pytest.mark.parametrize("failed", [{0}, {5}, {1, 4}, {0, 2, 3, 5}])
@pytest.mark.parametrize("split_every", [2, 4])
def test_failed_partitions_masks_are_removed(partition_models, failed, split_every):
    models, rows = partition_models
    classes = np.array([0, 1, 2])
    fuser = Secure("weighted")
    summaries = _summaries(fuser, models, rows, failed, classes)
    root = _tree(fuser, summaries, split_every)
    assert set(root.released) == failed
    meta = {
        "n_features_in_": 6,
        "feature_names_in_": None,
        "classes": classes,
        "n_partitions": len(models),
    }
    fused = fuser.finalize(root, models[0], meta)
    survivors = [i for i in range(len(models)) if i not in failed]
    expected = fuse(
        [models[i] for i in survivors], "weighted", weights=[rows[i] for i in survivors]
    )
    _assert_same_model(fused, expected)
    # a partial sum that includes a failed partition's seeds stays masked
    partial = fuser.combine(summaries[:3])
    if partial.words is not None and len(partial.included) > 1:
        truth = fuser.inner.combine(
            [
                fuser.inner.summarize(
                    models[i], None, None, {"index": i, "n_rows": rows[i], "classes": classes}
                )
                for i in partial.included
            ]
        )
        assert np.all(
            np.abs(decode(partial.words.view(np.int64))[:3] - np.ravel(truth.sums["coef_"])[:3])
            > 1e6
        )


def test_a_partition_that_sends_nothing_is_an_error(partition_models):
    models, rows = partition_models
    classes = np.array([0, 1, 2])
    fuser = Secure()
    summaries = _summaries(fuser, models, rows, set(), classes)
    meta = {
        "n_features_in_": 6,
        "feature_names_in_": None,
        "classes": classes,
        "n_partitions": len(models),
    }
    root = fuser.combine([s for i, s in enumerate(summaries) if i not in (2, 4)])
    with pytest.raises(FusionError, match=r"partition\(s\) \[2, 4\] sent neither"):
        fuser.finalize(root, models[0], meta)
    with pytest.raises(FusionError, match="arrived twice"):
        fuser.combine([summaries[0], summaries[0]])
    all_failed = fuser.combine(_summaries(fuser, models, rows, set(range(6)), classes))
    with pytest.raises(FusionError, match="every partition failed"):
        fuser.finalize(all_failed, models[0], meta)


def test_fuse_fitted_models_securely(partition_models):
    models, rows = partition_models
    # uniform averaging refuses weights (it would ignore them)
    for inner, weights in (("weighted", rows), ("average", None)):
        expected = fuse(models, inner, weights=weights)
        _assert_same_model(fuse(models, Secure(inner), weights=weights), expected)


@pytest.mark.parametrize("scale", [1e-15, 1e-19, 1e-300, 1e300])
def test_secure_is_exact_for_any_positive_weights(partition_models, scale):
    # the weights are divided by their largest (public) before the fixed-point step:
    # at 1e-15 the products weight * parameter lost 2.3e-4 to the 2**-60 resolution,
    # at 1e-19 every weight rounded to 0, at 1e300 they overflowed the range
    models, rows = partition_models
    weights = [scale * r for r in rows]
    expected = fuse(models, "weighted", weights=weights)
    _assert_same_model(fuse(models, Secure("weighted"), weights=weights), expected)
    _assert_same_model(fuse(models, Secure(Weighted(by=weights))), expected)
    # under DP the share of the largest weight (the noise) is unchanged by the scale
    dp = DP(Weighted(by=weights), epsilon=1.0, clip=5.0, random_state=0)
    _assert_same_model(fuse(models, Secure(dp)), fuse(models, dp))


# ---------------------------------------------------------------- encoding, parameters
def test_fixed_point_sums_are_exact():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 200)) * 10.0 ** rng.integers(-12, 12, size=(50, 200))
    values[:, :3] = [0.0, -0.0, 1e-300]
    limbs = sum(encode(v).view(np.uint64) for v in values)
    total = decode(limbs.view(np.int64))
    exact = np.array([math.fsum(col) for col in values.T])
    # each value is rounded to 2**-60 once; the sum itself is exact
    assert np.all(np.abs(total - exact) <= 50 * 2.0**-61 + 2 * np.spacing(np.abs(exact)))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Secure("median"), ValueError, re.escape("Secure(inner=...) must be")),
        (lambda: Secure(Median()), ValueError, re.escape("instance; got Median()")),
        (
            lambda: resolve_fusion(Secure(), MLPClassifier()),
            FusionError,
            "secure aggregation needs a linear model",
        ),
    ],
)
def test_bad_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_secure_needs_seeds_and_finite_parameters(partition_models):
    models, rows = partition_models
    fuser = Secure(Average())
    info = {"index": 0, "n_rows": 10, "classes": np.array([0, 1, 2]), "secret": None}
    with pytest.raises(FusionError, match="partition 0 got no mask seeds"):
        fuser.summarize(models[0], None, None, info)
    big = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    big.coef_ = np.array([[4 * MAX_ABS]])
    info = {
        "index": 1,
        "n_rows": 10,
        "classes": np.array([0, 1]),
        "secret": fuser.partition_secrets(2)[1],
    }
    with pytest.raises(FusionError, match="exceed the fixed-point range"):
        fuser.summarize(big, None, None, info)
    assert isinstance(info["secret"], PairSeeds)


def test_secure_dp_reports_its_privacy(on_cluster, small_binary):
    X, y = small_binary
    dp = DP(epsilon=2.0, clip=10.0, random_state=3)
    kw = dict(n_partitions=4, random_state=0)
    clear = FusedClassifier(LogisticRegression(), fusion=dp, **kw).fit(X, y)
    masked = FusedClassifier(LogisticRegression(), fusion=Secure(dp), **kw).fit(X, y)
    # same clipped updates, same noise: the masks change nothing
    _assert_same_model(masked.fused_estimator_, clear.fused_estimator_)
    assert masked.privacy_spent_ == clear.privacy_spent_ == (2.0, 1e-5)
