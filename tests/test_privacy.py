"""Differential privacy (fusion.DP): calibration, noise scale, clipping, accuracy."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, stats
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPRegressor

from daskfuse import FusedClassifier, FusedRegressor, fuse
from daskfuse.exceptions import FusionError
from daskfuse.fusion import DP, Average, Secure, Weighted, resolve_fusion
from daskfuse.fusion.privacy import _gdp_delta, gaussian_epsilon, gaussian_mu
from tests.conftest import make_classification_data


# ---------------------------------------------------------------- calibration
def _hockey_stick(epsilon, sigma):
    """delta of the Gaussian mechanism (sensitivity 1) by numerical integration:
    the integral of max(0, p(x) - e^eps q(x)) for p = N(0, sigma^2), q = N(1, sigma^2)."""
    p, q = stats.norm(0, sigma), stats.norm(1, sigma)
    # p > e^eps q exactly left of this point
    cut = 0.5 - epsilon * sigma**2
    return integrate.quad(
        lambda x: p.pdf(x) - math.exp(epsilon) * q.pdf(x),
        cut - 40 * sigma, cut, epsabs=0, epsrel=1e-11, limit=200,
    )[0]


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 4.0, 10.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-8])
def test_calibration_is_the_exact_gaussian_tradeoff(epsilon, delta):
    mu = gaussian_mu(epsilon, delta)
    sigma = 1 / mu
    # the calibrated noise meets (epsilon, delta) with equality: no slack, no violation
    assert _hockey_stick(epsilon, sigma) == pytest.approx(delta, rel=1e-5)
    assert gaussian_epsilon(mu, delta) == pytest.approx(epsilon, rel=1e-9)
    # tighter than the classical sqrt(2 ln(1.25/delta)) / epsilon (valid for eps < 1)
    if epsilon < 1:
        assert sigma < math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def test_privacy_spent_composes_over_releases():
    dp = DP(epsilon=1.0, delta=1e-6)
    assert dp.privacy_spent() == (1.0, 1e-6)
    assert dp.privacy_spent(0) == (0.0, 0.0)
    spent = [dp.privacy_spent(k)[0] for k in (1, 2, 4, 16, 64)]
    assert spent == sorted(spent) and spent[0] == 1.0
    mu = gaussian_mu(1.0, 1e-6)
    for k, eps in zip((1, 2, 4, 16, 64), spent):
        # k Gaussian releases are one Gaussian mechanism with sqrt(k) times the
        # sensitivity: the hockey-stick divergence at the reported epsilon is delta
        assert _hockey_stick(eps, 1 / (math.sqrt(k) * mu)) == pytest.approx(1e-6, rel=1e-4)
        # better than basic composition, and than the zCDP bound
        rho = k * mu**2 / 2
        assert eps <= k * 1.0 + 1e-9
        assert eps <= rho + 2 * math.sqrt(rho * math.log(1 / 1e-6)) + 1e-9
    assert _gdp_delta(spent[-1], 8 * mu) == pytest.approx(1e-6, rel=1e-6)


# ---------------------------------------------------------------- summaries by hand
@pytest.fixture
def ridge_parts():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 5))
    y = X @ np.array([0.3, -0.2, 0.1, 0.0, 0.25]) + 0.1 + 0.05 * rng.normal(size=400)
    parts = np.array_split(np.arange(400), 4)
    return [Ridge().fit(X[p], y[p]) for p in parts]


def _info(i, model, weight=1.0, init=None):
    return {"index": i, "n_rows": weight, "holdout_score": None, "classes": None,
            "seed": None, "template": model, "init": init}


META = {"n_features_in_": 5, "feature_names_in_": None, "classes": None, "n_partitions": 4}


def _flat(model):
    return np.concatenate([np.ravel(model.coef_), np.ravel(model.intercept_)])


def test_noise_standard_deviation_matches_the_calibration(ridge_parts):
    # public weights 1, 2, 3, 6: the noise scales with the largest over the total
    dp = DP(Weighted(by=[1.0, 2.0, 3.0, 6.0]), epsilon=0.5, delta=1e-5, clip=2.0)
    summaries = [dp.summarize(m, None, None, _info(i, m, w))
                 for i, (m, w) in enumerate(zip(ridge_parts, [1.0, 2.0, 3.0, 6.0]))]
    total = dp.combine([dp.combine(summaries[:3]), summaries[3]])
    sigma = dp.noise_std(total)
    assert sigma == pytest.approx(2.0 / gaussian_mu(0.5, 1e-5) * 6 / 12)
    # every norm is below the clip here: the noise-free result is the weighted average
    mean = _flat(fuse(ridge_parts, "weighted", weights=[1, 2, 3, 6]))
    draws = np.array([_flat(dp.finalize(total, ridge_parts[0], META)) for _ in range(400)])
    noise = draws - mean
    n = noise.size
    # sum of squares / sigma^2 is chi-square(n): two-sided bounds at 1e-6
    chi2 = float(np.sum(noise**2) / sigma**2)
    assert stats.chi2.ppf(1e-6, n) < chi2 < stats.chi2.isf(1e-6, n)
    # centred, and independent across parameters
    assert abs(noise.mean()) < 5 * sigma / math.sqrt(n)
    corr = np.corrcoef(noise.T)[np.triu_indices(noise.shape[1], 1)]
    assert np.all(np.abs(corr) < 5 / math.sqrt(len(noise)))


def test_updates_are_clipped_to_the_bound(ridge_parts):
    big = Ridge().fit(np.eye(5), 100 * np.arange(5.0))
    clip = 1.5
    dp = DP("average", epsilon=1.0, clip=clip)
    s = dp.summarize(big, None, None, _info(0, big))
    clipped = np.concatenate([np.ravel(v) for v in s.sums.values()])
    assert np.linalg.norm(clipped) == pytest.approx(clip, rel=1e-12)
    # the direction is kept
    assert_allclose(clipped / clip, _flat(big) / np.linalg.norm(_flat(big)), rtol=1e-12)
    # a vector inside the ball is left alone
    small = ridge_parts[0]
    s = dp.summarize(small, None, None, _info(0, small))
    assert_allclose(np.concatenate([np.ravel(v) for v in s.sums.values()]), _flat(small))
    # with a previous global model, the update from it is clipped and added back
    s = dp.summarize(big, None, None, _info(0, big, init=small))
    update = np.concatenate([np.ravel(v) for v in s.sums.values()])
    assert np.linalg.norm(update) == pytest.approx(clip, rel=1e-12)
    assert_allclose(update / clip, (_flat(big) - _flat(small))
                    / np.linalg.norm(_flat(big) - _flat(small)), rtol=1e-12)
    # the root adds the previous model back (little noise at a large epsilon)
    init = Ridge().fit(np.eye(5), 10 * np.arange(5.0))
    loose = DP("average", epsilon=200.0, clip=clip)
    total = loose.combine([loose.summarize(big, None, None, _info(0, big, init=init))])
    update = np.concatenate([np.ravel(v) for v in total.sums.values()])
    result = _flat(loose.finalize(total, small, META))
    std = loose.noise_std(total)
    assert np.all(np.abs(result - (_flat(init) + update)) < 6 * std)
    assert np.linalg.norm(_flat(init)) > 50 * std


def test_noise_is_reproducible_with_random_state(ridge_parts):
    def fused(random_state, round_=0):
        dp = DP(epsilon=1.0, clip=1.0, random_state=random_state)
        return _flat(fuse(ridge_parts, dp)) if round_ == 0 else _flat(
            dp.finalize(dp.combine([dp.summarize(m, None, None, _info(i, m))
                                    for i, m in enumerate(ridge_parts)]),
                        ridge_parts[0], META | {"round": round_})
        )

    assert np.array_equal(fused(3), fused(3))
    assert not np.array_equal(fused(3), fused(4))
    assert not np.array_equal(fused(3), fused(3, round_=1))
    assert not np.array_equal(fused(None), fused(None))


# ---------------------------------------------------------------- fitted models
def test_accuracy_degrades_gracefully_as_epsilon_falls():
    X, y = make_classification_data(n=6000, n_classes=2, seed=4)
    X_test, y_test, X, y = X[4000:], y[4000:], X[:4000], y[:4000]
    models = [LogisticRegression().fit(X[i::8], y[i::8]) for i in range(8)]
    clean = fuse(models, "average").score(X_test, y_test)
    accuracy = {
        eps: np.mean([fuse(models, DP(epsilon=eps, clip=2.0, random_state=s))
                      .score(X_test, y_test) for s in range(8)])
        for eps in (10.0, 1.0, 0.1)
    }
    # observed: clean 0.954; epsilon 10 -> 0.93, 1 -> 0.72, 0.1 -> 0.52 (chance 0.5)
    assert accuracy[10.0] > clean - 0.05
    assert accuracy[10.0] > accuracy[1.0] + 0.05 > accuracy[0.1] + 0.1
    assert accuracy[0.1] < 0.65


def test_fitted_estimator_reports_privacy_spent(on_cluster, binary_data):
    X, y = binary_data
    X, y, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]
    kw = dict(n_partitions=8, partition="stratified", random_state=0)
    plain = FusedClassifier(LogisticRegression(), fusion="average", **kw).fit(X, y)
    dp = DP(epsilon=8.0, delta=1e-6, clip=10.0, random_state=0)
    clf = FusedClassifier(LogisticRegression(), fusion=dp, **kw).fit(X, y)
    assert clf.privacy_spent_ == (8.0, 1e-6)
    assert not hasattr(plain, "privacy_spent_")
    # observed: 0.849 against 0.953 without noise (one noise draw, 8 partitions)
    assert plain.score(X_test, y_test) - 0.2 < clf.score(X_test, y_test) < plain.score(
        X_test, y_test
    )
    again = FusedClassifier(LogisticRegression(), fusion=dp, **kw).fit(X, y)
    # the same noise (the partition fits may differ in the last bits between workers)
    assert_allclose(again.fused_estimator_.coef_, clf.fused_estimator_.coef_, rtol=1e-9)
    report = clf.partition_report_
    assert report["class_counts"].isna().all() and report["train_score"].isna().all()
    assert report["rows"].sum() == len(y)
    reg = FusedRegressor(Ridge(), fusion="dp", n_partitions=4).fit(X, X[:, 0])
    assert reg.privacy_spent_ == (1.0, 1e-5)


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0}, "DP(epsilon=...) must be a finite number > 0; got 0"),
        ({"epsilon": float("inf")}, "DP(epsilon=...) must be a finite number > 0"),
        ({"delta": 1.0}, "DP(delta=...) must be a number in (0, 1); got 1.0"),
        ({"clip": -1.0}, "DP(clip=...) must be a finite number > 0; got -1.0"),
        ({"inner": "median"}, "DP(inner=...) must be 'average', 'weighted'"),
        ({"inner": Weighted(by="score")}, "cannot weight by holdout scores"),
        ({"random_state": -1}, "DP(random_state=...) must be None or an int >= 0"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        DP(**kwargs)


def test_unsupported_and_misused():
    with pytest.raises(FusionError, match="differentially private averaging needs a linear"):
        resolve_fusion(DP(), MLPRegressor())
    with pytest.raises(ValueError, match="n_releases must be an int >= 0; got -1"):
        DP().privacy_spent(-1)
    assert DP(Average()) == DP("average") != DP("weighted")
    assert Secure(DP()).privacy_spent(3) == DP().privacy_spent(3)
    assert not hasattr(Secure(), "privacy_spent")
