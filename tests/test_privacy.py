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
        cut - 40 * sigma,
        cut,
        epsabs=0,
        epsrel=1e-11,
        limit=200,
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
    return {
        "index": i,
        "n_rows": weight,
        "holdout_score": None,
        "classes": None,
        "seed": None,
        "template": model,
        "init": init,
    }


META = {"n_features_in_": 5, "feature_names_in_": None, "classes": None, "n_partitions": 4}


def _flat(model):
    return np.concatenate([np.ravel(model.coef_), np.ravel(model.intercept_)])


@pytest.mark.parametrize(("neighbouring", "k"), [("replace", 2), ("add-remove", 1)])
def test_noise_standard_deviation_matches_the_calibration(ridge_parts, neighbouring, k):
    # public weights 1, 2, 3, 6: the noise scales with the largest over the total, and
    # with the distance one partition can move its clipped update: 2 clip (replace:
    # from one side of the ball to the other) or clip (add-remove: to zero)
    dp = DP(
        Weighted(by=[1.0, 2.0, 3.0, 6.0]),
        epsilon=0.5,
        delta=1e-5,
        clip=2.0,
        neighbouring=neighbouring,
    )
    summaries = [
        dp.summarize(m, None, None, _info(i, m, w))
        for i, (m, w) in enumerate(zip(ridge_parts, [1.0, 2.0, 3.0, 6.0]))
    ]
    total = dp.combine([dp.combine(summaries[:3]), summaries[3]])
    sigma = dp.noise_std(total)
    assert sigma == pytest.approx(k * 2.0 / gaussian_mu(0.5, 1e-5) * 6 / 12, rel=1e-12)
    assert dp.noise_multiplier == pytest.approx(k / gaussian_mu(0.5, 1e-5), rel=1e-12)
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
    assert_allclose(
        update / clip,
        (_flat(big) - _flat(small)) / np.linalg.norm(_flat(big) - _flat(small)),
        rtol=1e-12,
    )
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
        return (
            _flat(fuse(ridge_parts, dp))
            if round_ == 0
            else _flat(
                dp.finalize(
                    dp.combine(
                        [
                            dp.summarize(m, None, None, _info(i, m))
                            for i, m in enumerate(ridge_parts)
                        ]
                    ),
                    ridge_parts[0],
                    META | {"round": round_},
                )
            )
        )

    assert np.array_equal(fused(3), fused(3))
    assert not np.array_equal(fused(3), fused(4))
    assert not np.array_equal(fused(3), fused(3, round_=1))
    assert not np.array_equal(fused(None), fused(None))


# ---------------------------------------------------------------- empirical audit
# Releases of the real mechanism (DP.release, which finalize calls) on two
# neighbouring datasets; a threshold on the released coefficient tells them apart.
# For each threshold t, "say D when x > t" has FPR = P_D'(x > t) and FNR = P_D(x <= t),
# and (epsilon, delta)-DP forces FPR + e^eps FNR >= 1 - delta (and with the roles
# swapped), so eps >= log((1 - delta - FNR) / FPR). Clopper-Pearson upper bounds on
# FPR and FNR, Bonferroni-corrected over every threshold, make the resulting lower
# bound on epsilon hold with probability >= 1 - AUDIT_ALPHA (Jagielski et al., 2020;
# Nasr et al., 2021).
AUDIT_DRAWS = 200_000
AUDIT_ALPHA = 1e-3


def _ridge(coef, intercept=0.0):
    model = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    model.coef_, model.intercept_ = np.array([float(coef)]), float(intercept)
    return model


def _releases(dp, coefs, rows, seed):
    """AUDIT_DRAWS released coefficients of one-feature models (coefs, rows per
    partition) through summarize, combine and release; the noise-free average; the
    noise standard deviation."""
    models = [_ridge(c, 0.05 * i) for i, c in enumerate(coefs)]
    total = dp.combine(
        [dp.summarize(m, None, None, _info(i, m, r)) for i, (m, r) in enumerate(zip(models, rows))]
    )
    draws = dp.release(total, np.random.default_rng(seed), AUDIT_DRAWS)
    mean = float(total.sums["coef_"][0] / total.weights)
    return draws["coef_"][:, 0], mean, dp.noise_std(total)


def _audit_epsilon(dp, d, d_prime):
    """Empirical lower bound on epsilon from two neighbouring (coefs, rows)."""
    a, mean_a, std_a = _releases(dp, *d, seed=1)
    b, mean_b, std_b = _releases(dp, *d_prime, seed=2)
    # thresholds fixed before looking at the draws: a grid in the noise scale
    scale = max(std_a, std_b)
    lo, hi = sorted([mean_a, mean_b])
    thresholds = np.linspace(lo - 5 * scale, hi + 5 * scale, 101)
    level = AUDIT_ALPHA / (2 * len(thresholds))

    def upper(k, n):  # one-sided Clopper-Pearson upper bound at 1 - level
        return np.where(k < n, stats.beta.ppf(1 - level, k + 1, np.maximum(n - k, 1)), 1.0)

    n = AUDIT_DRAWS
    high, low = (a, b) if mean_a >= mean_b else (b, a)
    miss = upper(np.searchsorted(np.sort(high), thresholds, side="right"), n)
    false = upper(n - np.searchsorted(np.sort(low), thresholds, side="right"), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        bounds = np.concatenate(
            [np.log((1 - dp.delta - miss) / false), np.log((1 - dp.delta - false) / miss)]
        )
    return float(np.nanmax(np.where(np.isfinite(bounds), bounds, np.nan)))


OTHERS = [0.3, -0.2, 0.1]  # the three partitions that do not change (inside the ball)


def test_audit_replacement_stays_within_epsilon():
    # worst case under replacement: one partition's clipped update from +clip to
    # -clip along the coefficient (the others, and every weight, unchanged)
    dp = DP(epsilon=1.0, delta=1e-5, clip=1.0)
    eps = _audit_epsilon(dp, ([10.0, *OTHERS], [1] * 4), ([-10.0, *OTHERS], [1] * 4))
    # observed: 0.54 (at 99.9% confidence): a real leak, but within the budget
    assert 0.4 < eps <= dp.epsilon


def test_audit_catches_noise_sized_for_one_clip_under_replacement():
    # the old sizing: noise for a move of clip (add-remove), against a replacement,
    # which moves the update by 2 clip; the claimed epsilon=1 is really about 2.15
    dp = DP(epsilon=1.0, delta=1e-5, clip=1.0, neighbouring="add-remove")
    eps = _audit_epsilon(dp, ([10.0, *OTHERS], [1] * 4), ([-10.0, *OTHERS], [1] * 4))
    assert eps > dp.epsilon  # observed: 1.28
    assert gaussian_epsilon(2 * gaussian_mu(1.0, 1e-5), 1e-5) == pytest.approx(2.15, abs=0.005)
    # against its own relation (the update removed: zero) it holds
    eps = _audit_epsilon(dp, ([10.0, *OTHERS], [1] * 4), ([0.0, *OTHERS], [1] * 4))
    assert 0.4 < eps <= dp.epsilon


def test_audit_replacement_that_changes_the_row_count():
    # weights are row counts; the replaced partition grows from 100 to 300 rows, and
    # its share from 1/4 to 1/2: the average moves by 2 * clip * 1/2 (the others sit
    # at +clip, the replacement at -clip)
    d = ([10.0, 10.0, 10.0, 10.0], [100] * 4)
    d_prime = ([-10.0, 10.0, 10.0, 10.0], [300, 100, 100, 100])
    bounded = DP("weighted", epsilon=1.0, delta=1e-5, clip=1.0, max_share=0.5)
    assert 0.4 < _audit_epsilon(bounded, d, d_prime) <= bounded.epsilon  # observed: 0.54
    # public weights only (the default): noise from each dataset's own shares, which
    # does not cover the weight change
    public = DP("weighted", epsilon=1.0, delta=1e-5, clip=1.0)
    assert _audit_epsilon(public, d, d_prime) > public.epsilon  # observed: 6
    # a fit (here of models fitted elsewhere) whose largest share exceeds the bound
    models = [_ridge(c) for c in d_prime[0]]
    with pytest.raises(
        FusionError, match=r"carries 0\.5 of the total weight, more than max_share=0\.4"
    ):
        fuse(models, DP("weighted", clip=1.0, max_share=0.4), weights=d_prime[1])
    ok = fuse(models, DP("weighted", clip=1.0, max_share=0.5), weights=d_prime[1])
    assert np.isfinite(ok.coef_).all() and ok.coef_.shape == (1,)


# ---------------------------------------------------------------- fitted models
def test_accuracy_degrades_gracefully_as_epsilon_falls():
    X, y = make_classification_data(n=6000, n_classes=2, seed=4)
    X_test, y_test, X, y = X[4000:], y[4000:], X[:4000], y[:4000]
    models = [LogisticRegression().fit(X[i::8], y[i::8]) for i in range(8)]
    clean = fuse(models, "average").score(X_test, y_test)
    accuracy = {
        eps: np.mean(
            [
                fuse(models, DP(epsilon=eps, clip=2.0, random_state=s)).score(X_test, y_test)
                for s in range(8)
            ]
        )
        for eps in (10.0, 1.0, 0.1)
    }
    # observed (replace, the default): clean 0.954; epsilon 10 -> 0.905, 1 -> 0.62,
    # 0.1 -> 0.49 (chance 0.5). With neighbouring="add-remove" (half the noise):
    # 0.935, 0.74, 0.50
    assert accuracy[10.0] > clean - 0.08
    assert accuracy[10.0] > accuracy[1.0] + 0.05 > accuracy[0.1] + 0.1
    assert accuracy[0.1] < 0.65
    # add-remove needs half the noise: more accurate at the same epsilon
    half = np.mean(
        [
            fuse(
                models, DP(epsilon=1.0, clip=2.0, neighbouring="add-remove", random_state=s)
            ).score(X_test, y_test)
            for s in range(8)
        ]
    )
    assert half > accuracy[1.0] + 0.05


def test_fitted_estimator_reports_privacy_spent(on_cluster, binary_data):
    X, y = binary_data
    X, y, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]
    kw = dict(n_partitions=8, partition="stratified", random_state=0)
    plain = FusedClassifier(LogisticRegression(), fusion="average", **kw).fit(X, y)
    dp = DP(epsilon=8.0, delta=1e-6, clip=5.0, random_state=0)
    clf = FusedClassifier(LogisticRegression(), fusion=dp, **kw).fit(X, y)
    assert clf.privacy_spent_ == (8.0, 1e-6)
    assert not hasattr(plain, "privacy_spent_")
    # observed: 0.849 against 0.953 without noise (one noise draw, 8 partitions)
    assert (
        plain.score(X_test, y_test) - 0.2 < clf.score(X_test, y_test) < plain.score(X_test, y_test)
    )
    again = FusedClassifier(LogisticRegression(), fusion=dp, **kw).fit(X, y)
    # the same noise (the partition fits may differ in the last bits between workers)
    assert_allclose(again.fused_estimator_.coef_, clf.fused_estimator_.coef_, rtol=1e-9)
    report = clf.partition_report_
    assert report["class_counts"].isna().all() and report["train_score"].isna().all()
    assert report["rows"].sum() == len(y)
    reg = FusedRegressor(Ridge(), fusion="dp", n_partitions=4).fit(X, X[:, 0])
    assert reg.privacy_spent_ == (1.0, 1e-5)


def test_noise_that_overflows_is_an_error_and_leaves_the_estimator_unfitted(on_cluster):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 100))
    # the standard deviation is finite (7.5e307) but the noisy coefficients overflow
    reg = FusedRegressor(Ridge(), fusion=DP(clip=2e307, random_state=0), n_partitions=2)
    with pytest.raises(
        FusionError,
        match=r"the noisy coef_ is not finite \(noise standard "
        r"deviation 7\.461e\+307\); lower clip",
    ):
        reg.fit(X, X[:, 0])
    assert not hasattr(reg, "fused_estimator_") and not hasattr(reg, "privacy_spent_")


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
        (
            {"neighbouring": "swap"},
            "DP(neighbouring=...) must be 'replace' or 'add-remove'; got 'swap'",
        ),
        ({"max_share": 1.5}, "DP(max_share=...) must be None or a number in (0, 1]; got 1.5"),
        ({"max_share": 0}, "DP(max_share=...) must be None or a number in (0, 1]; got 0"),
        # the noise standard deviation would overflow to inf
        (
            {"clip": 1e308},
            "DP(clip=1e+308) is too large: the noise standard deviation "
            "clip * 7.461 * share overflows a float64",
        ),
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
    assert DP() == DP(neighbouring="replace") != DP(neighbouring="add-remove")
    assert repr(DP(max_share=0.5)).endswith("neighbouring='replace', max_share=0.5)")
    assert Secure(DP()).privacy_spent(3) == DP().privacy_spent(3)
    # a strategy without a privacy claim spends nothing it could report
    assert Secure().privacy_spent(3) is None


def test_dp_over_huge_given_weights_is_the_dp_over_ordinary_ones():
    """DP summed its inner Weighted's weights unscaled: 1e308 + 1.5e308 overflowed.
    The averaging's exact power-of-two scale now applies inside DP too, so the
    release is the one of the same proportions at ordinary size."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=300)

    def fit(weights):
        dp = DP(inner=Weighted(by=weights), epsilon=1.0, clip=5.0, random_state=0)
        return FusedRegressor(Ridge(), fusion=dp, n_partitions=3, random_state=0).fit(X, y)

    ordinary = fit([1.0, 1.5, 1.7]).fused_estimator_
    extreme = fit([1e308, 1.5e308, 1.7e308]).fused_estimator_
    assert np.all(np.isfinite(extreme.coef_))
    assert_allclose(extreme.coef_, ordinary.coef_, rtol=1e-12)
    assert_allclose(extreme.intercept_, ordinary.intercept_, rtol=1e-12)
